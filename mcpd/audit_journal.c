/*
 * audit_journal.c - the audit's journal files (see audit.c): where a record
 * is durable, and acknowledged, before the helper thread chains it into
 * sqlite.
 *
 * A journal belongs to one running mcpd: it is named
 * "<db>-audit-<instance>-<seq>.jnl" (instance: 16 random hex digits per
 * open, seq: 4 hex digits, so names sort in writing order), created 0600
 * with O_EXCL, and held with flock(LOCK_EX) for as long as it is written.
 * A journal nobody holds belongs to an mcpd that died: the next writer (or
 * an `mcpd audit` command) chains what it holds past its watermark
 * (audit_meta key "j:<name>": the bytes already chained) and removes it.
 * The same scan removes a stale, empty "<name>.new" (drop_stale_new).
 *
 * Text, one record per line, never a raw newline inside one (JSON escapes
 * them):
 *     R <handle> <row>\n      a record; row: mcpd__audit_row_json with an
 *                             empty hash; handle > 0 for calls (an outcome's key)
 *     O <handle> <latency_us> <status>\n    a call's outcome
 * A write cut short by a crash leaves an incomplete last line, which is
 * not a record (its write never returned, so nothing was acknowledged).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit_int.h"
#include "error.h"
#include "log.h"

#define JNL_SUFFIX     ".jnl"
#define NEW_SUFFIX     ".jnl.new"
#define NEW_STALE_SECS 60 /* a ".jnl.new" this old was left by a kill (see drop_stale_new) */

static void jnl_name(char *out, size_t cap, const char *db, const char *instance, unsigned seq)
{
    snprintf(out, cap, "%s-audit-%s-%04x" JNL_SUFFIX, db, instance, seq & 0xffffu);
}

/* fsyncs the directory holding path (a new name in it). */
static int sync_dir(const char *path)
{
    char dir[4096];
    const char *base = mcpd__jnl_basename(path);
    int fd, r = 0;

    if (base == path)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(base - path > 1 ? base - path - 1 : 1), path);
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -errno;
    if (fsync(fd) != 0)
        r = -errno;
    close(fd);
    return r;
}

int mcpd__jnl_create(struct audit_jnl *j, const char *db, const char *instance, unsigned seq,
                     bool sync, char *err, size_t errcap)
{
    char path[4096], tmp[4096 + 8];
    int fd, e;

    /*
     * Made under another name, locked, then renamed: a scan for journals
     * left behind never sees one that is not locked yet.
     */
    jnl_name(path, sizeof(path), db, instance, seq);
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        e = errno;
        snprintf(err, errcap, "%s: cannot create the audit journal: %s", tmp, strerror(e));
        return -e;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || rename(tmp, path) != 0 ||
        (sync && (errno = -sync_dir(path)) != 0) || (j->path = strdup(path)) == NULL) {
        e = errno ? errno : ENOMEM;
        snprintf(err, errcap, "%s: cannot set up the audit journal: %s", path, strerror(e));
        close(fd);
        unlink(tmp);
        unlink(path);
        return -e;
    }
    j->fd = fd;
    j->bytes = 0;
    return 0;
}

void mcpd__jnl_close(struct audit_jnl *j, bool remove)
{
    if (j->fd >= 0) {
        if (remove)
            unlink(j->path);
        close(j->fd);
    }
    j->fd = -1;
    free(j->path);
    j->path = NULL;
    j->bytes = 0;
}

int mcpd__jnl_append(struct audit_jnl *j, const char *p, size_t n, bool sync)
{
    size_t done = 0;

    while (done < n) {
        ssize_t w = write(j->fd, p + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            /* no torn line stays behind a line written later: this is the last write */
            if (done > 0 && ftruncate(j->fd, (off_t)j->bytes) != 0)
                e = errno ? e : EIO;
            return -e;
        }
        done += (size_t)w;
    }
    if (sync && fdatasync(j->fd) != 0) {
        int e = errno;
        /* refused: its lines must not be chained later as if they had been acknowledged */
        if (ftruncate(j->fd, (off_t)j->bytes) != 0)
            e = e ? e : EIO;
        return -e;
    }
    j->bytes += n;
    return 0;
}

const char *mcpd__jnl_basename(const char *path)
{
    const char *b = strrchr(path, '/');

    return b ? b + 1 : path;
}

/*
 * A "<journal>.new" is created, locked and renamed within microseconds
 * (mcpd__jnl_create); one that nobody holds, is empty and is older than
 * NEW_STALE_SECS was left by a kill between its creation and its rename,
 * and goes. Names are never reused (a random instance per open), so the
 * name cannot have been taken again meanwhile.
 */
static void drop_stale_new(const char *dir, const char *name)
{
    char path[4096 + 512];
    struct stat st;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        st.st_size == 0 && st.st_nlink > 0 && time(NULL) - st.st_mtime > NEW_STALE_SECS) {
        if (unlink(path) == 0)
            LOG_INFO("audit", "%s: removed, an empty journal left by a stopped mcpd", path);
        else
            LOG_WARN("audit", "%s: cannot remove it: %s", path, strerror(errno));
    }
    close(fd);
}

static int cmp_names(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

int mcpd__jnl_orphans(const char *db, int (*fn)(void *arg, const char *path, int fd), void *arg)
{
    char dir[4096], prefix[512];
    const char *base = mcpd__jnl_basename(db);
    char **names = NULL;
    size_t n = 0, cap = 0, plen, slen = strlen(JNL_SUFFIX);
    struct dirent *de;
    DIR *d;
    int r = 0;

    if (base == db)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(base - db - 1 > 0 ? base - db - 1 : 1), db);
    snprintf(prefix, sizeof(prefix), "%s-audit-", base);
    plen = strlen(prefix);
    if ((d = opendir(dir)) == NULL)
        return errno == ENOENT ? 0 : -errno;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name), nlen = strlen(NEW_SUFFIX);
        if (len <= plen + slen || strncmp(de->d_name, prefix, plen) != 0)
            continue;
        if (len > plen + nlen && strcmp(de->d_name + len - nlen, NEW_SUFFIX) == 0) {
            drop_stale_new(dir, de->d_name);
            continue;
        }
        if (strcmp(de->d_name + len - slen, JNL_SUFFIX) != 0)
            continue;
        if (n == cap) {
            char **m = realloc(names, (cap = cap ? cap * 2 : 8) * sizeof(*m));
            if (m == NULL) {
                r = MCPD_ENOMEM;
                break;
            }
            names = m;
        }
        if ((names[n] = strdup(de->d_name)) == NULL) {
            r = MCPD_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n && r == 0; i++) {
        char path[4096 + 512];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        struct stat held, named;

        if ((fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) < 0)
            continue;
        /*
         * Nobody holds it: its mcpd is gone. Unless it was removed (by its
         * writer, or another recovery) between the open and the lock: then
         * the inode is no longer the one the name points to.
         */
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &held) == 0 && held.st_nlink > 0 &&
            stat(path, &named) == 0 && named.st_ino == held.st_ino && named.st_dev == held.st_dev)
            r = fn(arg, path, fd);
        close(fd);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return r;
}

/* Reads a decimal number at p[*i] (at most 18 digits), then one space or newline. */
static bool read_num(const char *p, size_t len, size_t *i, int64_t *out)
{
    int64_t v = 0;
    size_t k = *i, start = *i;

    while (k < len && p[k] >= '0' && p[k] <= '9' && k - start < 18)
        v = v * 10 + (p[k++] - '0');
    if (k == start || k >= len || (p[k] != ' ' && p[k] != '\n'))
        return false;
    *out = v;
    *i = k;
    return true;
}

/*
 * A record's text fields are written as submitted, so one holding bytes
 * that are not UTF-8 makes a line jansson refuses. Rather than strand the
 * records after it, such a line is read with every byte of an invalid
 * sequence replaced by '?' (the chain is computed over what is read).
 */
static json_t *load_sanitised(const char *p, size_t len)
{
    char *c = malloc(len ? len : 1);
    size_t i = 0;
    json_t *row;

    if (c == NULL)
        return NULL;
    while (i < len) {
        unsigned char b = (unsigned char)p[i];
        size_t need = b < 0x80                 ? 1
                      : b >= 0xC2 && b <= 0xDF ? 2
                      : b >= 0xE0 && b <= 0xEF ? 3
                      : b >= 0xF0 && b <= 0xF4 ? 4
                                               : 0;
        bool ok = need > 0 && i + need <= len;

        for (size_t k = 1; ok && k < need; k++)
            ok = ((unsigned char)p[i + k] & 0xC0) == 0x80;
        if (ok && need == 3) /* no overlongs, no surrogates */
            ok = !(b == 0xE0 && (unsigned char)p[i + 1] < 0xA0) &&
                 !(b == 0xED && (unsigned char)p[i + 1] >= 0xA0);
        if (ok && need == 4)
            ok = !(b == 0xF0 && (unsigned char)p[i + 1] < 0x90) &&
                 !(b == 0xF4 && (unsigned char)p[i + 1] >= 0x90);
        if (!ok) {
            c[i++] = '?';
            continue;
        }
        memcpy(c + i, p + i, need);
        i += need;
    }
    row = json_loadb(c, len, JSON_ALLOW_NUL, NULL);
    free(c);
    return row;
}

int mcpd__jnl_parse(const char *p, size_t len, size_t *used, const struct jnl_sink *s)
{
    size_t off = 0;

    *used = 0;
    while (off < len) {
        const char *nl = memchr(p + off, '\n', len - off);
        size_t end, i = off + 2;
        int64_t handle, lat;

        if (nl == NULL)
            return 0; /* an incomplete last line: a write that never returned */
        end = (size_t)(nl - p);
        if (end - off < 4 || p[off + 1] != ' ' || !read_num(p, end + 1, &i, &handle) || p[i] != ' ')
            return -1;
        i++;
        if (p[off] == 'R') {
            json_error_t je;
            json_t *row = json_loadb(p + i, end - i, JSON_ALLOW_NUL, &je);
            int r;

            if (row == NULL)
                row = load_sanitised(p + i, end - i);
            if (row == NULL)
                return -1;
            r = s->record(s->arg, handle, row);
            json_decref(row);
            if (r != 0)
                return r < 0 ? r : -1;
        } else if (p[off] == 'O') {
            if (!read_num(p, end + 1, &i, &lat) || p[i] != ' ')
                return -1;
            i++;
            if (s->outcome(s->arg, handle, lat, p + i, end - i) != 0)
                return -1;
        } else {
            return -1;
        }
        off = end + 1;
        *used = off;
    }
    return 0;
}
