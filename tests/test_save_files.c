/* test_save_files.c — what loom_model_save does to the files around it (issue 14, section 4): a
 * file saved over keeps its mode, symbolic links are followed (dangling ones refused), targets
 * that are not regular files are refused and left alone, temporaries that killed saves left are
 * cleaned by the next save (not those a live save holds), and two threads may save for the first
 * time at once (the CRC table; run under -fsanitize=thread to see the race it had). */
#define _DEFAULT_SOURCE /* mkdtemp, flock, symlink */
#include "check.h"
#include "loom.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static char dir[64];

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static loom_model *small_model(uint64_t seed) {
    loom_graph *g = loom_graph_new(seed);
    int d4 = 4;
    loom_tensor *x = loom_input(g, "x", 1, &d4);
    loom_tensor *y = loom_call(loom_dense(g, "y", 3, LOOM_SOFTMAX, NULL), x);
    loom_model *m = loom_model_new(g, 1, &x, 1, &y);
    if (!m) loom_graph_free(g);
    return m;
}

static int loads(const char *path) {
    char err[256];
    loom_model *r = loom_model_load(path, err, sizeof err);
    loom_model_free(r);
    return r != NULL;
}

static mode_t mode_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

/* entries of dir whose name starts with prefix */
static int count_prefixed(const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    return n;
}

static int has(const char *s, const char *part) { return s && strstr(s, part) != NULL; }

typedef struct saver {
    loom_model *m;
    char path[128];
    loom_status s;
} saver;

static void *save_thread(void *p) {
    saver *v = p;
    v->s = loom_model_save(v->m, v->path);
    return NULL;
}

/* Runs first, so that these two saves are the process's first CRC computations. */
static void test_two_threads(void) {
    saver v[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        v[i].m = small_model(10 + (uint64_t)i);
        char name[32];
        snprintf(name, sizeof name, "thread%d.loom", i);
        path_in(v[i].path, sizeof v[i].path, name);
    }
    if (!v[0].m || !v[1].m) {
        CHECK(0);
        return;
    }
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, save_thread, &v[i]) == 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        CHECK_STATUS(v[i].s, LOOM_OK);
        CHECK(loads(v[i].path));
        loom_model_free(v[i].m);
    }
}

static void test_mode_kept(loom_model *m) {
    char p[128];
    path_in(p, sizeof p, "private.loom");
    CHECK_STATUS(loom_model_save(m, p), LOOM_OK);
    CHECK(mode_of(p) == 0644); /* a new file: 0666 less the umask (022, set in main) */
    CHECK(chmod(p, 0600) == 0);
    CHECK_STATUS(loom_model_save(m, p), LOOM_OK);
    CHECK(mode_of(p) == 0600);
    CHECK(chmod(p, 0640) == 0);
    CHECK_STATUS(loom_model_save(m, p), LOOM_OK);
    CHECK(mode_of(p) == 0640);
    CHECK(loads(p));
}

static void test_symlinks(loom_model *m) {
    char real[128], link[128], dangling[128];
    path_in(real, sizeof real, "real.loom");
    path_in(link, sizeof link, "link.loom");
    path_in(dangling, sizeof dangling, "dangling.loom");
    CHECK_STATUS(loom_model_save(m, real), LOOM_OK);
    CHECK(chmod(real, 0600) == 0);
    CHECK(symlink("real.loom", link) == 0);
    CHECK_STATUS(loom_model_save(m, link), LOOM_OK);
    struct stat st;
    CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode)); /* the link stays a link */
    CHECK(mode_of(real) == 0600 && loads(link) && loads(real));
    CHECK(count_prefixed("link.loom.tmp") == 0);
    /* a link to nothing is refused, and nothing is created */
    CHECK(symlink("missing/nowhere.loom", dangling) == 0);
    CHECK_STATUS(loom_model_save(m, dangling), LOOM_ERR_IO);
    CHECK(has(loom_model_error(m), "symbolic link to a missing file"));
    CHECK(lstat(dangling, &st) == 0 && S_ISLNK(st.st_mode));
    /* a good save clears that message */
    CHECK_STATUS(loom_model_save(m, real), LOOM_OK);
    CHECK(strcmp(loom_model_error(m), "") == 0);
}

static void test_not_regular(loom_model *m) {
    char fifo[128], folder[128];
    path_in(fifo, sizeof fifo, "pipe.loom");
    path_in(folder, sizeof folder, "folder.loom");
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(mkdir(folder, 0700) == 0);
    struct stat st;
    CHECK_STATUS(loom_model_save(m, fifo), LOOM_ERR_IO);
    CHECK(has(loom_model_error(m), "not a regular file") && has(loom_model_error(m), "FIFO"));
    CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode));
    CHECK_STATUS(loom_model_save(m, folder), LOOM_ERR_IO);
    CHECK(has(loom_model_error(m), "a folder"));
    CHECK(lstat(folder, &st) == 0 && S_ISDIR(st.st_mode));
    /* a device node (as root the old code replaced /dev/null's node with a file): a null device
     * made in the test's own folder, never a system one, which a broken save could destroy */
    char dev[128], dev_link[128];
    path_in(dev, sizeof dev, "null_device.loom");
    path_in(dev_link, sizeof dev_link, "null_link.loom");
    if (mknod(dev, S_IFCHR | 0666, makedev(1, 3)) == 0) {
        CHECK_STATUS(loom_model_save(m, dev), LOOM_ERR_IO);
        CHECK(has(loom_model_error(m), "a device"));
        CHECK(lstat(dev, &st) == 0 && S_ISCHR(st.st_mode));
        /* a link to a device is a device */
        CHECK(symlink("null_device.loom", dev_link) == 0);
        CHECK_STATUS(loom_model_save(m, dev_link), LOOM_ERR_IO);
        CHECK(has(loom_model_error(m), "a device"));
        CHECK(lstat(dev, &st) == 0 && S_ISCHR(st.st_mode));
    } else {
        printf("test_save_files: not allowed to make a device node here; the device case is skipped\n");
    }
    CHECK(count_prefixed("pipe.loom.tmp") == 0 && count_prefixed("folder.loom.tmp") == 0);
}

static void touch(const char *name) {
    char p[128];
    path_in(p, sizeof p, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
}

static int exists(const char *name) {
    char p[128];
    path_in(p, sizeof p, name);
    return access(p, F_OK) == 0;
}

static void test_stale_temporaries(loom_model *m) {
    char p[128];
    path_in(p, sizeof p, "stale.loom");
    /* what killed saves leave, beside look-alikes that are not theirs */
    touch("stale.loom.tmpAbC123");
    touch("stale.loom.tmpzz9ZZ0");
    touch("stale.loom.tmp12");       /* not six characters */
    touch("stale.loom.tmpAB-123");   /* not mkstemp's alphabet */
    touch("other.loom.tmpAbC123");   /* another target */
    touch("stale.loomx.tmpAbC123");  /* another target */
    /* one held by a save in progress (its lock): left alone */
    char held[128];
    path_in(held, sizeof held, "stale.loom.tmpLIVE00");
    int fd = open(held, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0);
    CHECK_STATUS(loom_model_save(m, p), LOOM_OK);
    CHECK(!exists("stale.loom.tmpAbC123") && !exists("stale.loom.tmpzz9ZZ0"));
    CHECK(exists("stale.loom.tmp12") && exists("stale.loom.tmpAB-123") && exists("other.loom.tmpAbC123") &&
          exists("stale.loomx.tmpAbC123"));
    CHECK(exists("stale.loom.tmpLIVE00"));
    if (fd >= 0) close(fd); /* its writer "dies" */
    CHECK_STATUS(loom_model_save(m, p), LOOM_OK);
    CHECK(!exists("stale.loom.tmpLIVE00"));
    CHECK(count_prefixed("stale.loom.tmp") == 2); /* the two look-alikes */
    CHECK(loads(p));
    /* through a link, the temporaries sit beside the file it names */
    char link[128];
    path_in(link, sizeof link, "stale_link.loom");
    CHECK(symlink("stale.loom", link) == 0);
    touch("stale.loom.tmpQwErTy");
    CHECK_STATUS(loom_model_save(m, link), LOOM_OK);
    CHECK(!exists("stale.loom.tmpQwErTy"));
}

/* A path without a folder: the temporaries are looked for in the current one (the folder name
 * "./" is made up; ASan caught it written one byte past its buffer). */
static void test_bare_name(loom_model *m) {
    char cwd[512];
    CHECK(getcwd(cwd, sizeof cwd) != NULL && chdir(dir) == 0);
    touch("bare.loom.tmpAbC123");
    CHECK_STATUS(loom_model_save(m, "bare.loom"), LOOM_OK);
    CHECK(!exists("bare.loom.tmpAbC123") && loads("bare.loom"));
    CHECK(chdir(cwd) == 0);
}

static void remove_dir(void) {
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[384];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) != 0) rmdir(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

int main(void) {
    umask(022);
    snprintf(dir, sizeof dir, "/tmp/loom_save_XXXXXX");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "cannot make a temporary folder\n");
        return 1;
    }
    test_two_threads();
    loom_model *m = small_model(1);
    CHECK(m != NULL);
    if (m) {
        test_mode_kept(m);
        test_symlinks(m);
        test_not_regular(m);
        test_stale_temporaries(m);
        test_bare_name(m);
        loom_model_free(m);
    }
    remove_dir();
    return check_report("test_save_files");
}
