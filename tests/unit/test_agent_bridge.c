/*
 * test_agent_bridge.c - a bridged local stdio MCP server (agent/bridge.c)
 * on a real loop with the conformance fixture (build/mcpd-fixture) as the
 * child: tools exposed as "<group>.<tool>" with io.mcpd/group and
 * io.mcpd/tool; a forwarded call answered under mcpd's id (ids remapped);
 * progress notifications relayed with mcpd's token; a cancellation
 * forwarded with the child's id; calls of an old connection dropped; a
 * killed child restarted with `changed` fired both ways and its pending
 * call failed; a clean close (uv_loop_close == 0).
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "agent/bridge.h"
#include "mcpd/error.h"

struct seen {
    json_t *msgs; /* every message sent to "mcpd" */
    int changed;
    bool closed;
};

static uv_loop_t loop;
static struct seen seen;
static char fixture[PATH_MAX], logpath[PATH_MAX];

static void on_send(json_t *msg, unsigned gen, void *data)
{
    struct seen *s = data;
    json_t *c = json_deep_copy(msg);
    json_object_set_new(c, "_gen", json_integer(gen));
    json_array_append_new(s->msgs, c);
}

static void on_changed(struct mcpd_agent_bridge *br, void *data)
{
    struct seen *s = data;
    (void)br;
    s->changed++;
}

static void on_closed(void *data)
{
    struct seen *s = data;
    s->closed = true;
}

/* Runs the loop until pred() or 10 s. */
static bool run_until(bool (*pred)(void *), void *arg)
{
    uint64_t end;
    uv_update_time(&loop);
    end = uv_now(&loop) + 10000;
    while (!pred(arg)) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        if (uv_now(&loop) > end)
            return false;
    }
    return true;
}

static bool time_passed(void *arg)
{
    return uv_now(&loop) >= *(uint64_t *)arg;
}

static void on_tick(uv_timer_t *t)
{
    (void)t; /* only wakes the loop */
}

/* Runs the loop for ms milliseconds. */
static void spin(unsigned ms)
{
    uint64_t until;
    uv_update_time(&loop);
    until = uv_now(&loop) + ms;
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_tick, ms, 0);
    run_until(time_passed, &until);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static bool changed_at_least(void *arg)
{
    return seen.changed >= *(int *)arg;
}

/* The response to mcpd id `id`, or NULL. */
static json_t *response(json_int_t id)
{
    size_t i;
    json_t *m;
    json_array_foreach (seen.msgs, i, m) {
        json_t *mid = json_object_get(m, "id");
        if (json_is_integer(mid) && json_integer_value(mid) == id && !json_object_get(m, "method"))
            return m;
    }
    return NULL;
}

static bool has_response(void *arg)
{
    return response(*(json_int_t *)arg) != NULL;
}

static size_t count_method(const char *method)
{
    size_t i, n = 0;
    json_t *m;
    json_array_foreach (seen.msgs, i, m) {
        const char *mm = json_string_value(json_object_get(m, "method"));
        n += mm && strcmp(mm, method) == 0;
    }
    return n;
}

static bool log_has(void *arg)
{
    char buf[65536] = "";
    FILE *f = fopen(logpath, "r");
    size_t n;
    if (f == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strstr(buf, (const char *)arg) != NULL;
}

static int setup(void **state)
{
    const char *b = getenv("MCPD_BUILD_DIR");
    snprintf(fixture, sizeof(fixture), "%s/mcpd-fixture", b ? b : ".");
    snprintf(logpath, sizeof(logpath), "/tmp/mcpd-test-bridge-%d.log", (int)getpid());
    unlink(logpath);
    seen.msgs = json_array();
    uv_loop_init(&loop);
    return access(fixture, X_OK);
}

static int teardown(void **state)
{
    json_decref(seen.msgs);
    unlink(logpath);
    return 0;
}

static void test_bridge(void **state)
{
    struct mcpd_kv env = { .key = "FIXTURE_LOG", .value = logpath };
    struct mcpd_agent_server srv = { .name = "fx", .command = fixture, .env = &env, .nenv = 1 };
    struct mcpd_agent_bridge_cbs cbs = { .send = on_send, .changed = on_changed };
    struct mcpd_agent_bridge *br = NULL;
    json_t *tools, *t, *id, *params, *r;
    json_int_t want;
    int one = 1, two = 2, three = 3;
    size_t i, progress0;
    bool found = false;

    assert_int_equal(mcpd_agent_bridge_new(&br, &loop, &srv, 5000, &cbs, &seen), 0);
    assert_string_equal(mcpd_agent_bridge_name(br), "fx");
    /* not ready yet: a call is refused, not queued */
    id = json_integer(1);
    assert_int_equal(mcpd_agent_bridge_call(br, id, 1, "echo", NULL), MCPD_EUNAVAIL);
    json_decref(id);
    assert_true(run_until(changed_at_least, &one));

    tools = json_array();
    mcpd_agent_bridge_tools(br, tools);
    assert_true(json_array_size(tools) > 5);
    json_array_foreach (tools, i, t) {
        json_t *meta = json_object_get(t, "_meta");
        const char *name = json_string_value(json_object_get(t, "name"));
        assert_true(strncmp(name, "fx.", 3) == 0);
        assert_string_equal(json_string_value(json_object_get(meta, "io.mcpd/group")), "fx");
        assert_string_equal(json_string_value(json_object_get(meta, "io.mcpd/tool")), name + 3);
        found |= strcmp(name, "fx.echo") == 0;
    }
    assert_true(found);
    json_decref(tools);

    /* a call under mcpd's id 77 (a string id works the same way) */
    id = json_integer(77);
    params = json_pack("{s:s,s:{s:s}}", "name", "fx.echo", "arguments", "text", "bridged");
    assert_int_equal(mcpd_agent_bridge_call(br, id, 1, "echo", params), 0);
    want = 77;
    assert_true(run_until(has_response, &want));
    r = response(77);
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(json_object_get(r, "result"), "content"), 0), "text")),
        "bridged");
    assert_int_equal(json_integer_value(json_object_get(r, "_gen")), 1);
    json_decref(params);
    json_decref(id);

    /* progress with mcpd's token is relayed */
    progress0 = count_method("notifications/progress");
    id = json_integer(78);
    params = json_pack("{s:s,s:{s:s}}", "name", "x", "_meta", "progressToken", "tok-1");
    assert_int_equal(mcpd_agent_bridge_call(br, id, 1, "test_tool_with_progress", params), 0);
    want = 78;
    assert_true(run_until(has_response, &want));
    assert_true(count_method("notifications/progress") > progress0);
    json_decref(params);
    json_decref(id);

    /* a cancellation reaches the child with the child's id, not mcpd's */
    id = json_string("call-79");
    params = json_pack("{s:s}", "name", "x");
    assert_int_equal(mcpd_agent_bridge_call(br, id, 1, "test_reconnection", params), 0);
    mcpd_agent_bridge_cancel(br, id, 1);
    assert_true(run_until(log_has, "notifications/cancelled"));
    assert_false(log_has("call-79"));
    json_decref(params);
    json_decref(id);

    /* calls of an old connection are dropped: no answer under that generation */
    id = json_integer(80);
    params = json_pack("{s:s}", "name", "x");
    assert_int_equal(mcpd_agent_bridge_call(br, id, 1, "test_reconnection", params), 0);
    mcpd_agent_bridge_drop(br, 2);
    assert_true(run_until(log_has, "the connection to mcpd was lost"));
    spin(400); /* the fixture answers after 100 ms: that answer must be dropped */
    assert_null(response(80));
    json_decref(params);
    json_decref(id);

    /* a killed child: changed (gone), its pending call failed, restarted, changed (back) */
    id = json_integer(81);
    params = json_pack("{s:s}", "name", "x");
    assert_int_equal(mcpd_agent_bridge_call(br, id, 3, "test_reconnection", params), 0);
    json_decref(params);
    json_decref(id);
    {
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "pkill -KILL -P %d -x mcpd-fixture", (int)getpid());
        assert_int_equal(system(cmd), 0);
    }
    assert_true(run_until(changed_at_least, &two));
    r = response(81);
    if (r != NULL) /* the answer may have won the race against the kill */
        assert_true(json_object_get(r, "error") != NULL || json_object_get(r, "result") != NULL);
    tools = json_array();
    mcpd_agent_bridge_tools(br, tools);
    assert_int_equal(json_array_size(tools), 0);
    json_decref(tools);
    assert_true(run_until(changed_at_least, &three));
    tools = json_array();
    mcpd_agent_bridge_tools(br, tools);
    assert_true(json_array_size(tools) > 5);
    json_decref(tools);

    mcpd_agent_bridge_close(br, on_closed, &seen);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(seen.closed);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bridge),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
