# install.cmake — what `cmake --install` puts under the prefix (GNUInstallDirs layout):
#   include/loom.h
#   lib/libloom.a, lib/libloom.so.VERSION (+ SONAME and development links)
#   lib/pkgconfig/loom.pc                 cc prog.c $(pkg-config --cflags --libs loom)
#   lib/cmake/loom/loomConfig.cmake, loomConfigVersion.cmake, loomTargets*.cmake
#                                         find_package(loom) -> loom::loom (shared), loom::loom_static
#   bin/loom                              the program (when LOOM_BUILD_TOOLS)
#   share/loom/digits.csv, digits_diag.npz the demo's data (bin/loom looks there first)
#   share/doc/loom/                       README, CHANGELOG, LICENSE, THIRD_PARTY
# Included from CMakeLists.txt when LOOM_INSTALL is on.
include(CMakePackageConfigHelpers)

set(LOOM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/loom)
set_target_properties(loom PROPERTIES EXPORT_NAME loom_static)
install(TARGETS loom loom_shared EXPORT loomTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/include/loom.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET loom_cli)
  install(TARGETS loom_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/data/digits.csv ${CMAKE_CURRENT_SOURCE_DIR}/data/digits_diag.npz
          DESTINATION ${CMAKE_INSTALL_DATADIR}/loom)
endif()
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/README.md ${CMAKE_CURRENT_SOURCE_DIR}/CHANGELOG.md
              ${CMAKE_CURRENT_SOURCE_DIR}/LICENSE ${CMAKE_CURRENT_SOURCE_DIR}/THIRD_PARTY.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ---- CMake package: the targets, and a config that finds what the static library needs.
# The static library's link interface names some libraries by file (cJSON, libm, OpenBLAS): in the
# package each becomes loom::system_NAME, which loomConfig.cmake finds again by name on the user's
# machine (first where loom found it), so the package does not depend on this machine's paths.
get_target_property(LOOM_LINK_INTERFACE loom INTERFACE_LINK_LIBRARIES)
set(LOOM_EXPORTED_LINK_INTERFACE "")
set(LOOM_SYSTEM_LIBRARIES "")
foreach(dep ${LOOM_LINK_INTERFACE})
  if(IS_ABSOLUTE "${dep}")
    get_filename_component(dir ${dep} DIRECTORY)
    get_filename_component(name ${dep} NAME_WE)
    string(REGEX REPLACE "^lib" "" name ${name})
    list(APPEND LOOM_EXPORTED_LINK_INTERFACE "$<BUILD_INTERFACE:${dep}>" "$<INSTALL_INTERFACE:loom::system_${name}>")
    string(APPEND LOOM_SYSTEM_LIBRARIES "loom_system_library(${name} \"${dir}\")\n")
  else()
    list(APPEND LOOM_EXPORTED_LINK_INTERFACE "${dep}")
  endif()
endforeach()
set_target_properties(loom PROPERTIES INTERFACE_LINK_LIBRARIES "${LOOM_EXPORTED_LINK_INTERFACE}")
install(EXPORT loomTargets NAMESPACE loom:: DESTINATION ${LOOM_CMAKE_DIR})
if(OPENBLAS_INCLUDE_DIR AND OPENBLAS_LIBRARY AND LOOM_USE_OPENBLAS)
  set(LOOM_WITH_OPENBLAS ON)
else()
  set(LOOM_WITH_OPENBLAS OFF)
endif()
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/loomConfig.cmake.in
                              ${CMAKE_CURRENT_BINARY_DIR}/loomConfig.cmake
                              INSTALL_DESTINATION ${LOOM_CMAKE_DIR})
# 0.x: a minor release may change the API, so 0.1 accepts 0.1.y only; from 1.0 on, the same major.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(LOOM_COMPATIBILITY SameMinorVersion)
else()
  set(LOOM_COMPATIBILITY SameMajorVersion)
endif()
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/loomConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY ${LOOM_COMPATIBILITY})
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/loomConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/loomConfigVersion.cmake
        DESTINATION ${LOOM_CMAKE_DIR})

# ---- pkg-config. Libs.private: what a static link needs besides libloom.a, as -l flags (with -L
# for a library outside the compiler's own directories). A new dependency of `loom` goes here too;
# scripts/test_install.sh links statically with these flags and fails if one is missing.
set(LOOM_PC_LIBS_PRIVATE "")
set(LOOM_PC_LIBRARY_FILES ${CJSON_LIBRARY} ${ZLIB_LIBRARIES})
if(LOOM_WITH_OPENBLAS)
  list(APPEND LOOM_PC_LIBRARY_FILES ${OPENBLAS_LIBRARY})
endif()
if(LOOM_USE_ONNX)
  list(APPEND LOOM_PC_LIBRARY_FILES ${PROTOBUF_C_LIBRARY})
endif()
if(LOOM_USE_MPI)
  list(APPEND LOOM_PC_LIBRARY_FILES ${MPI_C_LIBRARIES})
endif()
if(LOOM_USE_DNNL)
  list(APPEND LOOM_PC_LIBRARY_FILES ${DNNL_LIBRARY})
endif()
if(LOOM_USE_HDF5 AND HDF5_FOUND)
  list(APPEND LOOM_PC_LIBRARY_FILES ${HDF5_C_LIBRARIES})
endif()
if(LOOM_USE_LIBZIP AND LIBZIP_FOUND)
  list(APPEND LOOM_PC_LIBRARY_FILES ${LIBZIP_LINK_LIBRARIES})
endif()
foreach(lib ${LOOM_PC_LIBRARY_FILES} ${MATH_LIBRARY})
  get_filename_component(dir ${lib} DIRECTORY)
  get_filename_component(name ${lib} NAME_WE)
  string(REGEX REPLACE "^lib" "" name ${name})
  list(FIND CMAKE_C_IMPLICIT_LINK_DIRECTORIES "${dir}" implicit)
  if(dir AND implicit LESS 0)
    string(APPEND LOOM_PC_LIBS_PRIVATE " -L${dir}")
  endif()
  string(APPEND LOOM_PC_LIBS_PRIVATE " -l${name}")
endforeach()
if(CMAKE_USE_PTHREADS_INIT)
  string(APPEND LOOM_PC_LIBS_PRIVATE " -pthread")
endif()
string(STRIP "${LOOM_PC_LIBS_PRIVATE}" LOOM_PC_LIBS_PRIVATE)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(LOOM_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  set(LOOM_PC_LIBDIR "\${exec_prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(LOOM_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(LOOM_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
# The prefix is the one given at install time (cmake --install build --prefix DIR), so the file
# is written in two steps: everything else now, the prefix when installing.
set(LOOM_PC_PREFIX "@CMAKE_INSTALL_PREFIX@")
configure_file(${CMAKE_CURRENT_LIST_DIR}/loom.pc.in ${CMAKE_CURRENT_BINARY_DIR}/loom.pc.in @ONLY)
install(CODE "configure_file(\"${CMAKE_CURRENT_BINARY_DIR}/loom.pc.in\" \"${CMAKE_CURRENT_BINARY_DIR}/loom.pc\" @ONLY)")
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/loom.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
