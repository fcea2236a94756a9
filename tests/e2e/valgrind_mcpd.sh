#!/usr/bin/env bash
# valgrind_mcpd.sh - stands in for build/mcpd in the e2e tests run under
# valgrind (CTest valgrind.<test>): memcheck errors and definite or indirect
# leaks make mcpd exit 99, which the tests' clean-exit checks catch.
exec valgrind -q --error-exitcode=99 --leak-check=full \
  --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
  --trace-children=no "${MCPD_REAL:?MCPD_REAL names the real mcpd}" "$@"
