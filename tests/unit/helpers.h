/*
 * helpers.h - what several unit tests share: a fresh temporary directory
 * per test and its removal, whether a file holds some bytes (keys and
 * secrets at rest), running a loop until a counter moves, and a store
 * opened in a fresh directory. Header-only (static inline); include it
 * after cmocka.h.
 */
#ifndef MCPD_TEST_HELPERS_H
#define MCPD_TEST_HELPERS_H

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "mcpd/store.h"

/* A new directory "$TMPDIR/mcpd-<tag>-XXXXXX" (/tmp without TMPDIR) into dir; asserts it exists. */
static inline void test_make_dir(char *dir, size_t cap, const char *tag)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, cap, "%s/mcpd-%s-XXXXXX", tmp && tmp[0] ? tmp : "/tmp", tag);
    assert_non_null(mkdtemp(dir));
}

/* Removes dir and the files directly in it (the tests make no subdirectories). */
static inline void test_remove_dir(const char *dir)
{
    char p[512];
    struct dirent *e;
    DIR *d = opendir(dir);

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

/* Whether the n bytes of needle occur anywhere in the file; false when it cannot be opened. */
static inline bool test_file_contains(const char *path, const void *needle, size_t n)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long size;
    bool found;

    if (fp == NULL)
        return false;
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    size = ftell(fp);
    assert_true(size >= 0);
    rewind(fp);
    buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, fp), (size_t)size);
    fclose(fp);
    found = memmem(buf, (size_t)size, needle, n) != NULL;
    free(buf);
    return found;
}

static inline void test_on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *counter reaches want or timeout_ms passes (a 5 ms tick keeps it turning). */
static inline void test_run_until(uv_loop_t *loop, const int *counter, int want,
                                  unsigned timeout_ms)
{
    uv_timer_t tick;
    uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;

    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, test_on_tick, 5, 5);
    while (*counter < want && uv_hrtime() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* A store (mcpd.db) in a fresh directory, for cmocka's setup and teardown. */
struct store_fixture {
    char dir[64];
    char path[128];
    struct mcpd_store *st;
    char err[256];
};

static inline int test_store_setup(void **state, const char *tag)
{
    struct store_fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    test_make_dir(f->dir, sizeof(f->dir), tag);
    snprintf(f->path, sizeof(f->path), "%s/mcpd.db", f->dir);
    assert_int_equal(mcpd_store_open(&f->st, f->path, f->err, sizeof(f->err)), 0);
    *state = f;
    return 0;
}

static inline int test_store_teardown(void **state)
{
    struct store_fixture *f = *state;

    mcpd_store_close(f->st);
    test_remove_dir(f->dir);
    free(f);
    return 0;
}

#endif
