# End-to-end tests (label e2e) and the official conformance suite (label
# conformance). They run real processes on 127.0.0.1 and need the test cache
# that scripts/deps.sh fills (Node 22, @modelcontextprotocol/sdk, conformance,
# server-everything; MCPD_TEST_CACHE, default $HOME/.cache/mcpd-test).
#
# Each tests/e2e/<name>.mjs is one CTest test "e2e.<name>", run through
# run_node.sh with the binaries under test in the environment.

set(MCPD_E2E_DIR ${CMAKE_CURRENT_LIST_DIR})

function(mcpd_e2e_test name timeout)
  add_test(NAME e2e.${name}
    COMMAND bash ${MCPD_E2E_DIR}/run_node.sh ${MCPD_E2E_DIR}/${name}.mjs)
  math(EXPR watchdog_ms "(${timeout} - 15) * 1000")
  set_tests_properties(e2e.${name} PROPERTIES LABELS e2e TIMEOUT ${timeout}
    ENVIRONMENT "MCPD_BIN=$<TARGET_FILE:mcpd>;MCPD_FIXTURE=$<TARGET_FILE:mcpd-fixture>;MCPD_DEMO=$<TARGET_FILE:mcpd-demo-server>;MCPD_FIXTURE_MODERN=$<TARGET_FILE:mcpd-fixture-modern>;MCPD_E2E_TIMEOUT_MS=${watchdog_ms}")
endfunction()

mcpd_e2e_test(proxy 120)
mcpd_e2e_test(http_errors 120)
mcpd_e2e_test(upstream_failures 120)
mcpd_e2e_test(list_changed 90)
mcpd_e2e_test(shutdown 90)
mcpd_e2e_test(cli 90)

# conformance.<setup>: the official server suite against mcpd serve with
# mcpd-fixture behind it over stdio, over remote streamable HTTP, and with a
# second upstream present; tests/conformance/expected-failures.txt is the baseline.
# conformance.modern: the 2026-07-28 requirements of the newer suite
# (0.2.0-alpha.12), baseline tests/conformance/expected-failures-2026-07-28.txt.
foreach(setup stdio remote multi modern)
  add_test(NAME conformance.${setup}
    COMMAND bash ${CMAKE_SOURCE_DIR}/tests/conformance/run_conformance.sh ${CMAKE_BINARY_DIR} ${setup})
  set_tests_properties(conformance.${setup} PROPERTIES LABELS conformance TIMEOUT 400)
endforeach()

# Features, isolation, remote upstreams and misbehaving upstreams (tests/e2e/*.mjs),
# and the official suite's client scenarios with mcpd as the client.
mcpd_e2e_test(features 120)
mcpd_e2e_test(isolation 90)
mcpd_e2e_test(remote 90)
mcpd_e2e_test(failures 120)
mcpd_e2e_test(modern 90)
mcpd_e2e_test(modern_upstream 90)
mcpd_e2e_test(reload 60)
add_test(NAME conformance.client
  COMMAND bash ${MCPD_E2E_DIR}/client_conformance.sh)
set_tests_properties(conformance.client PROPERTIES LABELS conformance TIMEOUT 180
  ENVIRONMENT "MCPD_BIN=$<TARGET_FILE:mcpd>")

mcpd_e2e_test(resume 90)

mcpd_e2e_test(policy 180)

# The same end-to-end tests with mcpd under valgrind memcheck (label valgrind):
# the proxy path, HTTP error handling, and bots/policy/audit (threads, sqlite).
find_program(MCPD_VALGRIND valgrind)
if(MCPD_VALGRIND)
  foreach(name proxy http_errors policy)
    add_test(NAME valgrind.${name}
      COMMAND bash ${MCPD_E2E_DIR}/run_node.sh ${MCPD_E2E_DIR}/${name}.mjs)
    set_tests_properties(valgrind.${name} PROPERTIES LABELS valgrind TIMEOUT 600
      ENVIRONMENT "MCPD_BIN=${MCPD_E2E_DIR}/valgrind_mcpd.sh;MCPD_REAL=$<TARGET_FILE:mcpd>;MCPD_FIXTURE=$<TARGET_FILE:mcpd-fixture>;MCPD_DEMO=$<TARGET_FILE:mcpd-demo-server>;MCPD_E2E_TIMEOUT_MS=580000")
  endforeach()
endif()
mcpd_e2e_test(tls 120)
# TLS on the listener under valgrind memcheck too (OpenSSL through memory BIOs).
if(MCPD_VALGRIND)
  add_test(NAME valgrind.tls
    COMMAND bash ${MCPD_E2E_DIR}/run_node.sh ${MCPD_E2E_DIR}/tls.mjs)
  set_tests_properties(valgrind.tls PROPERTIES LABELS valgrind TIMEOUT 600
    ENVIRONMENT "MCPD_BIN=${MCPD_E2E_DIR}/valgrind_mcpd.sh;MCPD_REAL=$<TARGET_FILE:mcpd>;MCPD_FIXTURE=$<TARGET_FILE:mcpd-fixture>;MCPD_DEMO=$<TARGET_FILE:mcpd-demo-server>;MCPD_E2E_TIMEOUT_MS=580000")
endif()

mcpd_e2e_test(agents 180)
# The agent program (mcpd agent) against mcpd with TLS, bridged filesystem server.
mcpd_e2e_test(agent_program 150)

# Plugins (issue 6): like mcpd_e2e_test, plus where the example plugins are.
mcpd_e2e_test(plugins 150)
set_property(TEST e2e.plugins APPEND PROPERTY ENVIRONMENT
  "MCPD_PLUGINS_DIR=${CMAKE_SOURCE_DIR}/examples/plugins")
# Credentials and OAuth against oidc-provider and a protected remote MCP server.
mcpd_e2e_test(credentials_oauth 180)

# Plugins under valgrind memcheck too (the adapter lives in curl's callbacks),
# the credential step included (the credential workers free OpenSSL's per-thread state).
if(MCPD_VALGRIND)
  add_test(NAME valgrind.plugins
    COMMAND bash ${MCPD_E2E_DIR}/run_node.sh ${MCPD_E2E_DIR}/plugins.mjs)
  set_tests_properties(valgrind.plugins PROPERTIES LABELS valgrind TIMEOUT 600
    ENVIRONMENT "MCPD_BIN=${MCPD_E2E_DIR}/valgrind_mcpd.sh;MCPD_REAL=$<TARGET_FILE:mcpd>;MCPD_FIXTURE=$<TARGET_FILE:mcpd-fixture>;MCPD_DEMO=$<TARGET_FILE:mcpd-demo-server>;MCPD_E2E_TIMEOUT_MS=580000;MCPD_PLUGINS_DIR=${CMAKE_SOURCE_DIR}/examples/plugins")
endif()
