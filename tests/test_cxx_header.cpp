// test_cxx_header.cpp — loom.h from C++ (ISO C++20, -Wpedantic): it compiles on its own, its
// functions link with C linkage, and the README's C example compiles and trains unchanged.
#include <loom.h> // first, alone: the header needs nothing included before it

#include <cstring>
#include <string>

#include "readme_example.h"

static_assert(LOOM_VERSION_NUMBER == LOOM_VERSION_MAJOR * 10000 + LOOM_VERSION_MINOR * 100 + LOOM_VERSION_PATCH,
              "LOOM_VERSION_NUMBER");

int main() {
    CHECK(std::string(loom_version()) == LOOM_VERSION);
    // a status name, an enum used as C++ does, and a function pointer to a C function
    const char *(*name_of)(loom_status) = &loom_status_name;
    CHECK(std::strcmp(name_of(LOOM_ERR_SHAPE), "LOOM_ERR_SHAPE") == 0);
    run_readme_example();
    return check_report("cxx_header");
}
