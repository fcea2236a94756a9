/*
 * fileops.c - file_ops: containment (see fileops.h) and the three
 * operations. Every open goes through open_beneath(), which walks from the
 * root with O_NOFOLLOW; nothing here follows a symbolic link.
 */
#include "agent/fileops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mcpd/error.h"
#include "mcpd/limits.h"
#include "policy/policy.h"

/* Does canonical path p lie within canonical root r (segment-wise)? Returns the offset of the rest.
 */
static int within(const char *r, const char *p)
{
    size_t n = strlen(r);
    if (strcmp(r, "/") == 0)
        return 1;
    if (strncmp(r, p, n) != 0)
        return -1;
    if (p[n] == '\0')
        return (int)n;
    if (p[n] == '/')
        return (int)n + 1;
    return -1;
}

/* realpath(3) of the longest existing prefix of canonical path p, plus the rest. */
static int real_prefix(const char *p, char *out, size_t cap, char *why, size_t whycap)
{
    char work[PATH_MAX], real[PATH_MAX];
    size_t cut;

    if (strlen(p) >= sizeof(work)) {
        snprintf(why, whycap, "path too long");
        return MCPD_EDENIED;
    }
    strncpy(work, p, sizeof(work) - 1);
    work[sizeof(work) - 1] = '\0';
    cut = strlen(work);
    for (;;) {
        if (realpath(work, real) != NULL)
            break;
        if (errno != ENOENT) {
            snprintf(why, whycap, "'%.200s': %s", p, strerror(errno));
            return -errno;
        }
        char *slash = strrchr(work, '/');
        if (slash == NULL || slash == work) {
            strncpy(real, "/", sizeof(real));
            cut = 0;
            break;
        }
        *slash = '\0';
        cut = (size_t)(slash - work);
    }
    /* p[cut..] is the part that does not exist (starts with '/' or is empty). */
    if (snprintf(out, cap, "%s%s", strcmp(real, "/") == 0 && p[cut] ? "" : real, p + cut) >=
        (int)cap) {
        snprintf(why, whycap, "path too long");
        return MCPD_EDENIED;
    }
    if (out[0] == '\0')
        snprintf(out, cap, "/");
    return 0;
}

int mcpd_agent_files_resolve(const struct mcpd_agent_files *f, const char *path, size_t plen,
                             char *out, size_t cap, char *why, size_t whycap)
{
    char canon[MCPD_POLICY_MAX_PATH + 1];
    const char *w = "invalid path";
    int rc;

    if (path == NULL || memchr(path, '\0', plen) != NULL) {
        snprintf(why, whycap, "path refused: it contains a NUL byte");
        return MCPD_EDENIED;
    }
    if (plen == 0 || path[0] != '/') {
        snprintf(why, whycap, "path refused: '%.200s' is not absolute", path ? path : "");
        return MCPD_EDENIED;
    }
    if (mcpd_policy_path_canon(canon, sizeof(canon), path, plen, &w) != 0) {
        snprintf(why, whycap, "path refused: %s", w);
        return MCPD_EDENIED;
    }
    if ((rc = real_prefix(canon, out, cap, why, whycap)) != 0)
        return rc;
    for (size_t i = 0; i < f->nroots; i++)
        if (within(f->roots[i], out) >= 0)
            return (int)i;
    snprintf(why, whycap, "path refused: '%.200s' is outside the allowed roots", out);
    return MCPD_EDENIED;
}

/*
 * Opens the resolved path below root i: every directory component with
 * O_NOFOLLOW|O_DIRECTORY, the last one with flags|O_NOFOLLOW.
 */
static int open_beneath(const struct mcpd_agent_files *f, const char *path, size_t plen, int flags,
                        mode_t mode, char *why, size_t whycap)
{
    char real[PATH_MAX], *rest, *seg, *next;
    int i, dfd, fd, off;

    if ((i = mcpd_agent_files_resolve(f, path, plen, real, sizeof(real), why, whycap)) < 0)
        return i;
    off = within(f->roots[i], real);
    rest = real + (strcmp(f->roots[i], "/") == 0 ? 1 : off);
    if ((dfd = open(f->roots[i], O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        goto sys;
    for (seg = rest; *seg && (next = strchr(seg, '/')) != NULL; seg = next + 1) {
        *next = '\0';
        fd = openat(dfd, seg, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(dfd);
        if (fd < 0) {
            if (errno == ENOTDIR || errno == ELOOP) {
                snprintf(
                    why, whycap,
                    "path refused: '%.200s' is not a directory (symbolic links are not followed)",
                    seg);
                return MCPD_EDENIED;
            }
            goto sys;
        }
        dfd = fd;
    }
    fd = openat(dfd, *seg ? seg : ".", flags | O_NOFOLLOW | O_CLOEXEC, mode);
    close(dfd);
    if (fd < 0 && errno == ELOOP) {
        snprintf(why, whycap, "path refused: '%.200s' is a symbolic link", path);
        return MCPD_EDENIED;
    }
    if (fd < 0)
        goto sys;
    return fd;
sys:
    snprintf(why, whycap, "'%.200s': %s", path, strerror(errno));
    return -errno ? -errno : MCPD_EDENIED;
}

int mcpd_agent_files_read(const struct mcpd_agent_files *f, const char *path, size_t plen,
                          char **data, size_t *len, char *why, size_t whycap)
{
    struct stat st;
    char *p = NULL;
    size_t got = 0;
    ssize_t n;
    int fd, rc = 0;

    *data = NULL;
    *len = 0;
    if ((fd = open_beneath(f, path, plen, O_RDONLY | O_NONBLOCK, 0, why, whycap)) < 0)
        return fd;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, whycap, "'%.200s' is not a regular file", path);
        rc = MCPD_EDENIED;
        goto out;
    }
    if ((size_t)st.st_size > f->max_bytes) {
        snprintf(why, whycap, "'%.200s' is %lld bytes, more than the limit of %zu", path,
                 (long long)st.st_size, f->max_bytes);
        rc = MCPD_ETOOBIG;
        goto out;
    }
    if ((p = malloc(f->max_bytes + 1)) == NULL) {
        rc = MCPD_ENOMEM;
        goto out;
    }
    /* Read up to the cap even if the file grew since fstat. */
    while (got <= f->max_bytes && (n = read(fd, p + got, f->max_bytes + 1 - got)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, whycap, "'%.200s': %s", path, strerror(errno));
            rc = -errno;
            goto out;
        }
        got += (size_t)n;
        if (got > f->max_bytes) {
            snprintf(why, whycap, "'%.200s' grew past the limit of %zu bytes", path, f->max_bytes);
            rc = MCPD_ETOOBIG;
            goto out;
        }
    }
    p[got] = '\0';
    *data = p;
    *len = got;
    p = NULL;
out:
    free(p);
    close(fd);
    return rc;
}

int mcpd_agent_files_write(const struct mcpd_agent_files *f, const char *path, size_t plen,
                           const char *data, size_t len, char *why, size_t whycap)
{
    struct stat st;
    size_t put = 0;
    ssize_t n;
    int fd, rc = 0;

    if (len > f->max_bytes) {
        snprintf(why, whycap, "content is %zu bytes, more than the limit of %zu", len,
                 f->max_bytes);
        return MCPD_ETOOBIG;
    }
    fd = open_beneath(f, path, plen, O_WRONLY | O_CREAT | O_NONBLOCK, 0644, why, whycap);
    if (fd < 0)
        return fd;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, whycap, "'%.200s' is not a regular file", path);
        close(fd);
        return MCPD_EDENIED;
    }
    /* Truncate only once the descriptor is known to be a regular file. */
    if (ftruncate(fd, 0) != 0)
        goto sys;
    while (put < len) {
        if ((n = write(fd, data + put, len - put)) < 0) {
            if (errno == EINTR)
                continue;
            goto sys;
        }
        put += (size_t)n;
    }
    close(fd);
    return rc;
sys:
    snprintf(why, whycap, "'%.200s': %s", path, strerror(errno));
    rc = -errno;
    close(fd);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    return strcmp(json_string_value(json_object_get(x, "name")),
                  json_string_value(json_object_get(y, "name")));
}

int mcpd_agent_files_list(const struct mcpd_agent_files *f, const char *path, size_t plen,
                          json_t **entries, char *why, size_t whycap)
{
    json_t **v = NULL, *arr;
    struct dirent *e;
    size_t n = 0;
    DIR *d;
    int fd;

    *entries = NULL;
    if ((fd = open_beneath(f, path, plen, O_RDONLY | O_DIRECTORY, 0, why, whycap)) < 0)
        return fd;
    if ((d = fdopendir(fd)) == NULL) {
        close(fd);
        snprintf(why, whycap, "'%.200s': %s", path, strerror(errno));
        return MCPD_EDENIED;
    }
    if ((v = calloc(MCPD_AGENT_MAX_DIR_ENTRIES, sizeof(*v))) == NULL) {
        closedir(d);
        return MCPD_ENOMEM;
    }
    while ((e = readdir(d)) != NULL && n < MCPD_AGENT_MAX_DIR_ENTRIES) {
        const char *type = e->d_type == DT_DIR   ? "directory"
                           : e->d_type == DT_REG ? "file"
                           : e->d_type == DT_LNK ? "symlink"
                                                 : "other";
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((v[n] = json_pack("{s:s,s:s}", "name", e->d_name, "type", type)) != NULL)
            n++; /* a name that is not UTF-8 is skipped */
    }
    closedir(d);
    qsort(v, n, sizeof(*v), by_name);
    arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, v[i]);
    free(v);
    *entries = arr;
    return 0;
}
