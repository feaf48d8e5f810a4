/* shared_library.c — CMake needs one source for libloom.so; all of loom's code comes from the
 * static library linked whole into it (cmake/shared_library.cmake). */
typedef int loom_shared_library_has_no_code_of_its_own;
