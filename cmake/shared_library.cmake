# shared_library.cmake — libloom.so, made of the static library `loom` linked whole, so that every
# source, include path, definition and dependency given to `loom` (CMakeLists.txt) is in both and
# the sources are compiled once. Included from CMakeLists.txt after `loom` is defined; what is
# added to `loom` later reaches libloom.so too (link dependencies are read at generate time).
#
# - The objects are position-independent (also what lets other shared libraries link libloom.a).
#   -fno-semantic-interposition keeps GCC inlining and calling loom's own functions directly, as
#   without -fPIC: nothing outside may replace a loom function.
# - Only the functions declared in include/loom.h are exported: a version script made from the
#   header at configure time hides the internal loom_* functions that the files share.
# - SONAME: libloom.so.MAJOR, or libloom.so.0.MINOR while the major version is 0 (a 0.x minor
#   release may change the ABI).

set_target_properties(loom PROPERTIES POSITION_INDEPENDENT_CODE ON)
check_c_compiler_flag(-fno-semantic-interposition LOOM_HAVE_NO_SEMANTIC_INTERPOSITION)
if(LOOM_HAVE_NO_SEMANTIC_INTERPOSITION)
  target_compile_options(loom PRIVATE -fno-semantic-interposition)
endif()

if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(LOOM_SOVERSION "0.${PROJECT_VERSION_MINOR}")
else()
  set(LOOM_SOVERSION "${PROJECT_VERSION_MAJOR}")
endif()

# CMake wants a source for a shared library; everything else comes from the static library.
add_library(loom_shared SHARED ${CMAKE_CURRENT_LIST_DIR}/shared_library.c)
if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.24)
  target_link_libraries(loom_shared PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,loom>")
else()
  target_link_libraries(loom_shared PRIVATE -Wl,--whole-archive loom -Wl,--no-whole-archive)
endif()
target_include_directories(loom_shared PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
                                              $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
set_target_properties(loom_shared PROPERTIES OUTPUT_NAME loom VERSION ${PROJECT_VERSION}
                      SOVERSION ${LOOM_SOVERSION} EXPORT_NAME loom)
if(NOT PROJECT_IS_TOP_LEVEL)
  set_target_properties(loom_shared PROPERTIES EXCLUDE_FROM_ALL ON) # built when the parent links it
endif()

# The exported functions: every loom_name( that the public header mentions (names that are no
# symbol, such as a type used in a function-pointer declaration, are ignored by the linker).
file(READ ${CMAKE_CURRENT_SOURCE_DIR}/include/loom.h LOOM_HEADER_TEXT)
string(REGEX MATCHALL "loom_[a-z0-9_]+[ \t]*\\(" LOOM_PUBLIC_FUNCTIONS "${LOOM_HEADER_TEXT}")
string(REGEX REPLACE "[ \t]*\\(" "" LOOM_PUBLIC_FUNCTIONS "${LOOM_PUBLIC_FUNCTIONS}")
list(REMOVE_DUPLICATES LOOM_PUBLIC_FUNCTIONS)
list(SORT LOOM_PUBLIC_FUNCTIONS)
string(REPLACE ";" ";\n    " LOOM_EXPORT_LINES "${LOOM_PUBLIC_FUNCTIONS}")
set(LOOM_VERSION_SCRIPT ${CMAKE_CURRENT_BINARY_DIR}/loom.map)
file(WRITE ${LOOM_VERSION_SCRIPT}.new
     "/* made by cmake/shared_library.cmake from include/loom.h */\n{\n  global:\n    ${LOOM_EXPORT_LINES};\n  local: *;\n};\n")
configure_file(${LOOM_VERSION_SCRIPT}.new ${LOOM_VERSION_SCRIPT} COPYONLY) # unchanged: no relink
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/include/loom.h)
target_link_options(loom_shared PRIVATE "LINKER:--version-script=${LOOM_VERSION_SCRIPT}")
set_property(TARGET loom_shared APPEND PROPERTY LINK_DEPENDS ${LOOM_VERSION_SCRIPT})
if(NOT LOOM_SANITIZE) # sanitizer runtimes leave symbols for the executable to provide
  target_link_options(loom_shared PRIVATE "LINKER:--no-undefined")
endif()

add_library(loom::loom_static ALIAS loom)
add_library(loom::loom_shared ALIAS loom_shared)
add_library(loom::loom ALIAS loom) # a subproject embeds the static library
