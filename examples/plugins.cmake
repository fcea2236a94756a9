# `cmake --build build --target plugins`: the example plugins packed as .mst
# archives (build/plugins/<name>.mst) with `mcpd plugin pack`, which checks
# each manifest first.
set(MCPD_PLUGIN_ARCHIVES "")
foreach(p github httpbin hello)
  set(out ${CMAKE_BINARY_DIR}/plugins/${p}.mst)
  file(GLOB_RECURSE deps CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/plugins/${p}/*)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/plugins
    COMMAND $<TARGET_FILE:mcpd> plugin pack ${CMAKE_CURRENT_SOURCE_DIR}/plugins/${p} ${out}
    DEPENDS mcpd ${deps}
    COMMENT "packing examples/plugins/${p} -> plugins/${p}.mst")
  list(APPEND MCPD_PLUGIN_ARCHIVES ${out})
endforeach()
add_custom_target(plugins DEPENDS ${MCPD_PLUGIN_ARCHIVES})
