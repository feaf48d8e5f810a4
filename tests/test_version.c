/* test_version.c — one version everywhere: the header's macros, the library's loom_version(),
 * CMake's project(VERSION) (LOOM_PROJECT_VERSION, which names the shared library and the CMake and
 * pkg-config packages) and the newest release in CHANGELOG.md. */
#include "check.h"

#include <loom.h>
#include <stdio.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* The first "## [X.Y.Z]" heading of the changelog (the "## [Unreleased]" one is skipped). */
static int newest_release(const char *path, char *out, size_t outlen) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    int rc = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned a, b, c;
        if (sscanf(line, "## [%u.%u.%u]", &a, &b, &c) == 3) {
            snprintf(out, outlen, "%u.%u.%u", a, b, c);
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

int main(void) {
    CHECK(strcmp(LOOM_VERSION, STR(LOOM_VERSION_MAJOR) "." STR(LOOM_VERSION_MINOR) "." STR(LOOM_VERSION_PATCH)) == 0);
    CHECK(LOOM_VERSION_NUMBER == LOOM_VERSION_MAJOR * 10000 + LOOM_VERSION_MINOR * 100 + LOOM_VERSION_PATCH);
    CHECK(strcmp(loom_version(), LOOM_VERSION) == 0);
    if (strcmp(LOOM_VERSION, LOOM_PROJECT_VERSION) != 0)
        fprintf(stderr, "include/loom.h says %s, CMakeLists.txt's project(VERSION) %s\n", LOOM_VERSION,
                LOOM_PROJECT_VERSION);
    CHECK(strcmp(LOOM_VERSION, LOOM_PROJECT_VERSION) == 0);
    char released[64] = "";
    CHECK(newest_release(LOOM_CHANGELOG, released, sizeof released) == 0);
    if (strcmp(released, LOOM_VERSION) != 0)
        fprintf(stderr, "%s: the newest release is [%s], include/loom.h says %s\n", LOOM_CHANGELOG, released,
                LOOM_VERSION);
    CHECK(strcmp(released, LOOM_VERSION) == 0);
    return check_report("version");
}
