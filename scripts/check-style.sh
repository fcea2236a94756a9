#!/usr/bin/env bash
# check-style.sh - the house rules that a machine can check (STYLE.md):
# clang-format clean, no banned functions, and the dependency rule between
# the libraries (core includes neither transports/ nor adapters/; those two
# never include each other; policy/ includes nothing of mcpd/ but its own).
set -u
cd "$(dirname "$0")/.."
fail=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find mcpd transports adapters policy examples tests bench -name '*.[ch]')
if command -v clang-format >/dev/null 2>&1; then
  for f in $files; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || { echo "style: $f is not clang-format clean"; fail=1; }
  done
else
  echo "style: clang-format not installed"; fail=1
fi
for f in $(echo "$files" | tr ' ' '\n' | grep -E '^(mcpd|transports|adapters|policy|agent)/'); do
  if grep -nE '\b(sprintf|strcpy|strcat|gets|atoi|atol|strtok)\(' "$f" | grep -v '^\s*[0-9]*:\s*\*' ; then
    echo "style: $f uses a banned function"; fail=1
  fi
done
if grep -lE '#include "(\.\./)*(transports|adapters)/' mcpd/*.c mcpd/*.h mcpd/net/*.[ch] 2>/dev/null | grep -v '^mcpd/main.c$'; then
  echo "style: the core includes transports/ or adapters/"; fail=1
fi
grep -l '#include "adapters/' transports/*.[ch] && { echo "style: a transport includes adapters/"; fail=1; }
grep -l '#include "transports/' adapters/*.[ch] && { echo "style: an adapter includes transports/"; fail=1; }
grep -l '#include "mcpd/' policy/*.[ch] && { echo "style: policy/ includes the core"; fail=1; }
# agent/ (the `mcpd agent` program) uses the core and policy only; only main.c includes it.
grep -lE '#include "(\.\./)*(transports|adapters)/' agent/*.[ch] 2>/dev/null && { echo "style: agent/ includes transports/ or adapters/"; fail=1; }
grep -lE '#include "(\.\./)*agent/' mcpd/*.[ch] mcpd/net/*.[ch] transports/*.[ch] adapters/*.[ch] policy/*.[ch] 2>/dev/null | grep -v '^mcpd/main.c$' && { echo "style: only main.c may include agent/"; fail=1; }
[ "$fail" = 0 ] && echo "style: ok"
exit "$fail"
