# mcpd-demo-server: the small stdio MCP server used by the README's demo
# config (tools echo, add, now, reverse). Placed at the top of the build tree.
add_executable(mcpd-demo-server ${CMAKE_CURRENT_LIST_DIR}/demo_server.c)
target_link_libraries(mcpd-demo-server PRIVATE PkgConfig::JANSSON)
mcpd_target_warnings(mcpd-demo-server)
set_target_properties(mcpd-demo-server PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
