# Conformance fixtures: mcpd-fixture is a stdio MCP server implementing the
# fixture names of the official conformance suite (plus proxy robustness
# tools); tests put it behind mcpd as an upstream. Placed at the top of the
# build tree next to mcpd.
add_executable(mcpd-fixture ${CMAKE_CURRENT_LIST_DIR}/fixture_server.c)
target_link_libraries(mcpd-fixture PRIVATE PkgConfig::JANSSON)
mcpd_target_warnings(mcpd-fixture)
set_target_properties(mcpd-fixture PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
# mcpd-fixture-modern: a stdio server that speaks only 2026-07-28 (the MRTR fixtures).
add_executable(mcpd-fixture-modern ${CMAKE_CURRENT_LIST_DIR}/fixture_modern.c)
target_link_libraries(mcpd-fixture-modern PRIVATE PkgConfig::JANSSON)
mcpd_target_warnings(mcpd-fixture-modern)
set_target_properties(mcpd-fixture-modern PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

# fixture.smoke: pipe a few requests into each stdio server and grep the answers.
add_test(NAME fixture.smoke
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/fixture_smoke.sh
          $<TARGET_FILE:mcpd-fixture> $<TARGET_FILE:mcpd-demo-server>)
set_tests_properties(fixture.smoke PROPERTIES LABELS unit TIMEOUT 30)
