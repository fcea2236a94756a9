#!/bin/sh
# Smoke test of the two stdio test servers: pipe a few JSON-RPC lines into
# each one and grep the answers.
# Usage: fixture_smoke.sh <mcpd-fixture> <mcpd-demo-server>
set -u

FIXTURE=${1:?usage: fixture_smoke.sh FIXTURE DEMO}
DEMO=${2:?usage: fixture_smoke.sh FIXTURE DEMO}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fixture_smoke.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM
fails=0

INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"sampling":{},"elicitation":{}},"clientInfo":{"name":"smoke","version":"1"}}}'
INITED='{"jsonrpc":"2.0","method":"notifications/initialized"}'

# expect FILE TEXT: FILE must contain TEXT (a fixed string).
expect() {
    if grep -qF -- "$2" "$1"; then
        echo "ok   $(basename "$1"): $2"
    else
        echo "FAIL $(basename "$1"): missing $2"
        fails=$((fails + 1))
    fi
}

# reject FILE TEXT: FILE must not contain TEXT.
reject() {
    if grep -qF -- "$2" "$1"; then
        echo "FAIL $(basename "$1"): unexpected $2"
        fails=$((fails + 1))
    else
        echo "ok   $(basename "$1"): no $2"
    fi
}

# --- mcpd-fixture --------------------------------------------------------
# The sampling response (id 1 = the fixture's first request to the client) is
# sent in advance; the fixture reads lines in order, so it arrives after the
# request. The sleep keeps stdin open until the timed jobs have answered.
{
    printf '%s\n' "$INIT" "$INITED" \
        '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' \
        '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}' \
        '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":100}}}' \
        '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"tok-7"}}}' \
        '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"test_sampling","arguments":{"prompt":"hi"}}}' \
        '{"jsonrpc":"2.0","id":1,"result":{"role":"assistant","content":{"type":"text","text":"canned answer"},"model":"m"}}' \
        '{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":"test://template/123/data"}}' \
        '{"jsonrpc":"2.0","id":8,"method":"prompts/get","params":{"name":"test_prompt_with_arguments","arguments":{"arg1":"v1","arg2":"v2"}}}' \
        '{"jsonrpc":"2.0","id":9,"method":"no/such/method"}' \
        'not json' \
        '{"jsonrpc":"2.0","id":10,"method":"ping"}'
    sleep 0.5
} | FIXTURE_LOG="$TMP/fixture.log" FIXTURE_NAME=smoke-fixture "$FIXTURE" >"$TMP/fixture.out" 2>"$TMP/fixture.err"
rc=$?
[ "$rc" -eq 0 ] || { echo "FAIL mcpd-fixture exited with $rc"; fails=$((fails + 1)); }
F="$TMP/fixture.out"
expect "$F" '"id":1,"result":{"protocolVersion":"2025-06-18"'
expect "$F" '"serverInfo":{"name":"smoke-fixture"'
expect "$F" '"name":"json_schema_2020_12_tool"'
expect "$F" '"additionalProperties":false'
expect "$F" '"id":3,"result":{"content":[{"type":"text","text":"This is a simple text response for testing."}]}'
expect "$F" '"id":4,"result":{"content":[{"type":"text","text":"slept 100 ms"}]}'
expect "$F" '"progressToken":"tok-7","progress":100,"total":100'
expect "$F" '"method":"sampling/createMessage"'
expect "$F" '"id":6,"result":{"content":[{"type":"text","text":"LLM response: canned answer"}]}'
expect "$F" 'Data for ID: 123'
expect "$F" "arg1='v1', arg2='v2'"
expect "$F" '"id":9,"error":{"code":-32601'
expect "$F" '"id":null,"error":{"code":-32700'
expect "$F" '"id":10,"result":{}'
reject "$F" '"id":2,"error"'
expect "$TMP/fixture.log" '"method":"notifications/initialized"'
expect "$TMP/fixture.log" 'not json'
# The sleep answer must come after the ping that was sent later (no blocking).
if [ "$(grep -n '"id":10,' "$F" | cut -d: -f1)" -lt "$(grep -n '"id":4,' "$F" | cut -d: -f1)" ]; then
    echo "ok   fixture.out: sleep did not block ping"
else
    echo "FAIL fixture.out: sleep blocked later requests"
    fails=$((fails + 1))
fi

# Tool name prefix.
printf '%s\n' "$INIT" '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"p__echo","arguments":{"text":"pre"},"_meta":{"k":"v"}}}' |
    FIXTURE_TOOL_PREFIX=p__ "$FIXTURE" >"$TMP/prefix.out" 2>/dev/null
expect "$TMP/prefix.out" '"id":2,"result":{"content":[{"type":"text","text":"pre"}],"structuredContent":{"meta":{"k":"v"}}}'

# crash exits with status 3 without answering.
printf '%s\n' "$INIT" '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"crash"}}' |
    "$FIXTURE" >"$TMP/crash.out" 2>/dev/null
rc=$?
[ "$rc" -eq 3 ] && echo "ok   crash exit status 3" || { echo "FAIL crash exit status $rc"; fails=$((fails + 1)); }
reject "$TMP/crash.out" '"id":2'

# --- mcpd-demo-server ----------------------------------------------------
printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1999-01-01","capabilities":{},"clientInfo":{"name":"smoke","version":"1"}}}' \
    "$INITED" \
    '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' \
    '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}' \
    '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":3.5}}}' \
    '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"reverse","arguments":{"text":"abc"}}}' \
    '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"add","arguments":{"a":"x"}}}' \
    '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"now"}}' \
    '{"jsonrpc":"2.0","id":8,"method":"ping"}' |
    "$DEMO" >"$TMP/demo.out" 2>"$TMP/demo.err"
rc=$?
[ "$rc" -eq 0 ] || { echo "FAIL mcpd-demo-server exited with $rc"; fails=$((fails + 1)); }
D="$TMP/demo.out"
expect "$D" '"id":1,"result":{"protocolVersion":"2025-11-25"'
expect "$D" '"serverInfo":{"name":"mcpd-demo"'
expect "$D" '"name":"add","description":'
expect "$D" '"outputSchema":{"type":"object","properties":{"sum":{"type":"number"}}'
expect "$D" '"id":3,"result":{"content":[{"type":"text","text":"hello"}]}'
expect "$D" '"id":4,"result":{"content":[{"type":"text","text":"5.5"}],"structuredContent":{"sum":5.5}}'
expect "$D" '"id":5,"result":{"content":[{"type":"text","text":"cba"}]}'
expect "$D" '"id":6,"result":{"content":[{"type":"text","text":"add: arguments'
expect "$D" '"isError":true'
expect "$D" '"id":7,"result":{"content":[{"type":"text","text":"20'
expect "$D" '"id":8,"result":{}'

if [ "$fails" -ne 0 ]; then
    echo "fixture_smoke: $fails check(s) failed; outputs:"
    for f in "$TMP"/*.out; do
        echo "== $f"
        cat "$f"
    done
    exit 1
fi
echo "fixture_smoke: all checks passed"
