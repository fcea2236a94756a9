# Warnings, -Werror switch and the sanitizer build types (STYLE.md 2.12).
set(MCPD_WARNINGS -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wformat=2 -Wvla -Wno-unused-parameter)
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  # snprintf truncation is intended wherever mcpd uses it
  list(APPEND MCPD_WARNINGS -Wno-format-truncation)
endif()
if(MCPD_WERROR)
  list(APPEND MCPD_WARNINGS -Werror)
endif()

set(CMAKE_C_FLAGS_ASAN
    "-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
    CACHE STRING "" FORCE)
set(CMAKE_EXE_LINKER_FLAGS_ASAN "-fsanitize=address,undefined" CACHE STRING "" FORCE)
set(CMAKE_C_FLAGS_TSAN "-O1 -g -fno-omit-frame-pointer -fsanitize=thread" CACHE STRING "" FORCE)
set(CMAKE_EXE_LINKER_FLAGS_TSAN "-fsanitize=thread" CACHE STRING "" FORCE)
set(CMAKE_C_FLAGS_DEBUG "-O0 -g3 -DMCPD_DEBUG" CACHE STRING "" FORCE)

# Apply project warnings to a target (third-party llhttp is built without them).
function(mcpd_target_warnings tgt)
  target_compile_options(${tgt} PRIVATE ${MCPD_WARNINGS})
endfunction()
