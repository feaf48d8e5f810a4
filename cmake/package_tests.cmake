# package_tests.cmake — tests of what a user of the package sees (included when LOOM_BUILD_TESTS):
#   test_version         LOOM_VERSION = project(VERSION) = loom_version() = CHANGELOG.md's release
#   test_readme_example  the README's "seed model in C" snippet, compiled as C and run
#   test_cxx_header      loom.h and the same snippet compiled as C++20 and run
# The snippet is taken from README.md at configure time (a README edit re-runs CMake), so the
# README shows exactly the code that these tests compile.

target_compile_definitions(test_version PRIVATE LOOM_PROJECT_VERSION="${PROJECT_VERSION}"
                           LOOM_CHANGELOG="${CMAKE_CURRENT_SOURCE_DIR}/CHANGELOG.md")

file(READ ${CMAKE_CURRENT_SOURCE_DIR}/README.md LOOM_README)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/README.md)
string(FIND "${LOOM_README}" "## The seed model in C" at)
if(at LESS 0)
  message(FATAL_ERROR "loom: README.md has no \"## The seed model in C\" section for test_readme_example")
endif()
string(SUBSTRING "${LOOM_README}" ${at} -1 LOOM_README)
string(FIND "${LOOM_README}" "```c\n" at)
if(at LESS 0)
  message(FATAL_ERROR "loom: README.md's \"The seed model in C\" has no ```c block")
endif()
math(EXPR at "${at} + 5")
string(SUBSTRING "${LOOM_README}" ${at} -1 LOOM_README)
string(FIND "${LOOM_README}" "```" at)
string(SUBSTRING "${LOOM_README}" 0 ${at} LOOM_README_SNIPPET)
set(LOOM_SNIPPET_DIR ${CMAKE_CURRENT_BINARY_DIR}/readme)
file(WRITE ${LOOM_SNIPPET_DIR}/readme_seed_model.inc.new
     "/* README.md, \"The seed model in C\" (taken by cmake/package_tests.cmake) */\n${LOOM_README_SNIPPET}")
configure_file(${LOOM_SNIPPET_DIR}/readme_seed_model.inc.new ${LOOM_SNIPPET_DIR}/readme_seed_model.inc COPYONLY)
target_include_directories(test_readme_example PRIVATE ${LOOM_SNIPPET_DIR})

# C++ only for this test, and only when there is a C++ compiler: a message otherwise.
include(CheckLanguage)
check_language(CXX)
if(CMAKE_CXX_COMPILER)
  enable_language(CXX)
  add_executable(test_cxx_header ${CMAKE_CURRENT_SOURCE_DIR}/tests/test_cxx_header.cpp)
  # C++20: the first standard with designated initialisers, which the README uses
  set_target_properties(test_cxx_header PROPERTIES CXX_STANDARD 20 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF)
  # -Wextra would flag every member a designated initialiser leaves out, which C++20 code does on
  # purpose (the C build of the same snippet keeps that warning where C has it)
  target_compile_options(test_cxx_header PRIVATE -Wpedantic -Wno-missing-field-initializers)
  target_include_directories(test_cxx_header PRIVATE ${LOOM_SNIPPET_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/tests)
  target_link_libraries(test_cxx_header PRIVATE loom)
  add_test(NAME test_cxx_header COMMAND test_cxx_header)
else()
  message(WARNING "loom: no C++ compiler, so test_cxx_header (loom.h and the README example as C++) is not built")
endif()
