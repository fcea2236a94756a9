# callers.awk: `perf script` output -> for each sample whose stack holds the
# function SYM, the chain from SYM up DEPTH frames ("f <- caller <- ...").
# Pipe through `sort | uniq -c | sort -rn` to count the distinct chains.
#   perf script -i perf.data | awk -v SYM=mcpd_policy_glob -v DEPTH=4 -f callers.awk
BEGIN { RS = ""; FS = "\n" }
{
  found = 0; s = ""; c = 0
  for (i = 2; i <= NF; i++) {
    g = $i
    sub(/^[ \t]*[0-9a-f]+ /, "", g); sub(/\+0x[0-9a-f]+.*/, "", g); sub(/ \(.*/, "", g)
    if (!found && g == SYM) found = 1
    if (found && c < DEPTH) { s = s (c ? " <- " : "") g; c++ }
  }
  if (found) print s
}
