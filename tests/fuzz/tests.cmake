# Fuzz targets (STYLE.md 2.11, 2.12). Each tests/fuzz/fuzz_<target>.c is
# built twice:
#   replay_<target>  with any compiler, linked with standalone_driver.c, and
#                    registered as CTest "fuzz-replay.<target>" over
#                    corpus/<target>/, so the targets cannot rot;
#   fuzz_<target>    with MCPD_BUILD_FUZZERS=ON (clang only): a libFuzzer
#                    binary with ASan and UBSan; the core libraries then get
#                    -fsanitize=fuzzer-no-link for coverage feedback.
# scripts/fuzz.sh builds and runs the fuzzers by hand.
set(MCPD_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
file(GLOB MCPD_FUZZ_SOURCES CONFIGURE_DEPENDS ${MCPD_FUZZ_DIR}/fuzz_*.c)

if(MCPD_BUILD_FUZZERS)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "MCPD_BUILD_FUZZERS needs clang (CC=clang), not ${CMAKE_C_COMPILER_ID}")
  endif()
  foreach(lib mcpd_core mcpd_policy llhttp_static)
    if(TARGET ${lib})
      target_compile_options(${lib} PRIVATE -fsanitize=fuzzer-no-link)
    endif()
  endforeach()
endif()

foreach(src ${MCPD_FUZZ_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" t ${name})

  add_executable(replay_${t} ${src} ${MCPD_FUZZ_DIR}/standalone_driver.c)
  target_include_directories(replay_${t} PRIVATE ${MCPD_FUZZ_DIR})
  target_link_libraries(replay_${t} PRIVATE mcpd_core)
  if(t MATCHES "^agent_")
    target_link_libraries(replay_${t} PRIVATE mcpd_agent)
  endif()
  mcpd_target_warnings(replay_${t})
  add_test(NAME fuzz-replay.${t} COMMAND replay_${t} ${MCPD_FUZZ_DIR}/corpus/${t})
  set_tests_properties(fuzz-replay.${t} PROPERTIES LABELS fuzz-replay TIMEOUT 120)

  if(MCPD_BUILD_FUZZERS)
    add_executable(fuzz_${t} ${src})
    target_include_directories(fuzz_${t} PRIVATE ${MCPD_FUZZ_DIR})
    target_compile_options(fuzz_${t} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(fuzz_${t} PRIVATE mcpd_core)
    if(t MATCHES "^agent_")
      target_link_libraries(fuzz_${t} PRIVATE mcpd_agent)
    endif()
    mcpd_target_warnings(fuzz_${t})
  endif()
endforeach()
