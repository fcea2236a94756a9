# Builds llhttp as a static library from the C sources that Debian's
# node-llhttp package ships (/usr/share/llhttp/*.c, header in
# /usr/share/include/llhttp). Nothing of llhttp is copied into this repo.
find_path(LLHTTP_INCLUDE_DIR llhttp.h PATHS /usr/share/include/llhttp /usr/include NO_DEFAULT_PATH)
find_path(LLHTTP_SOURCE_DIR llhttp.c PATHS /usr/share/llhttp NO_DEFAULT_PATH)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(LLHTTP REQUIRED_VARS LLHTTP_INCLUDE_DIR LLHTTP_SOURCE_DIR)
if(LLHTTP_FOUND AND NOT TARGET llhttp::llhttp)
  add_library(llhttp_static STATIC
    ${LLHTTP_SOURCE_DIR}/llhttp.c ${LLHTTP_SOURCE_DIR}/api.c ${LLHTTP_SOURCE_DIR}/http.c)
  target_include_directories(llhttp_static SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
  set_target_properties(llhttp_static PROPERTIES POSITION_INDEPENDENT_CODE ON C_STANDARD 99)
  target_compile_options(llhttp_static PRIVATE -w)
  add_library(llhttp::llhttp ALIAS llhttp_static)
endif()
