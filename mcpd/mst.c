/*
 * mst.c - .mst plugin archives (tar + gzip) read and written with libarchive
 * (see manifest.h). Extraction is strict: only regular files and
 * directories, relative paths without "..", size and count caps; files are
 * created with O_EXCL|O_NOFOLLOW under a fresh directory, so an entry can
 * never land outside it.
 *
 * libarchive is loaded with dlopen() on first use, not linked: its dependency
 * chain (libxml2, ICU, libstdc++, the compressors...) costs ~2 MiB of RSS in
 * every daemon, and most daemons never open a .mst file.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "limits.h"
#include "manifest.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return MCPD_ECONFIG;
}

/* ---- libarchive, loaded on first use -----------------------------------------------------------
 */

#define MCPD_LIBARCHIVE_SONAME "libarchive.so.13"

/* Every libarchive function this file calls, through la.<name> (types from the headers). */
#define MCPD_ARCHIVE_FUNCTIONS(X)       \
    X(archive_error_string)             \
    X(archive_entry_filetype)           \
    X(archive_entry_free)               \
    X(archive_entry_hardlink)           \
    X(archive_entry_new)                \
    X(archive_entry_pathname)           \
    X(archive_entry_perm)               \
    X(archive_entry_set_filetype)       \
    X(archive_entry_set_mtime)          \
    X(archive_entry_set_pathname)       \
    X(archive_entry_set_perm)           \
    X(archive_entry_set_size)           \
    X(archive_entry_size)               \
    X(archive_entry_size_is_set)        \
    X(archive_entry_symlink)            \
    X(archive_read_data)                \
    X(archive_read_free)                \
    X(archive_read_new)                 \
    X(archive_read_next_header)         \
    X(archive_read_open_filename)       \
    X(archive_read_support_filter_gzip) \
    X(archive_read_support_format_tar)  \
    X(archive_write_add_filter_gzip)    \
    X(archive_write_close)              \
    X(archive_write_data)               \
    X(archive_write_free)               \
    X(archive_write_header)             \
    X(archive_write_new)                \
    X(archive_write_open_filename)      \
    X(archive_write_set_format_pax_restricted)

static struct {
    void *handle; /* NULL until la_load() succeeds; never closed after that */
#define X(f) __typeof__(f) *f;
    MCPD_ARCHIVE_FUNCTIONS(X)
#undef X
} la;

/*
 * Loads libarchive and resolves la.* once; 0, or MCPD_ECONFIG with the reason in err.
 * Not locked: it runs only at config load and in the "mcpd plugin" CLI, both single-threaded.
 * A failure leaves la.handle NULL, so the next call tries again.
 */
static int la_load(char *err, size_t errlen)
{
    const char *sym, *e;
    void *h;
    int rc;

    if (la.handle != NULL)
        return 0;
    if ((h = dlopen(MCPD_LIBARCHIVE_SONAME, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        e = dlerror();
        return fail(err, errlen, "cannot load " MCPD_LIBARCHIVE_SONAME ": %.300s",
                    e ? e : "unknown error");
    }
#define X(f)                                               \
    if ((la.f = (__typeof__(la.f))dlsym(h, #f)) == NULL) { \
        sym = #f;                                          \
        goto missing;                                      \
    }
    MCPD_ARCHIVE_FUNCTIONS(X)
#undef X
    la.handle = h;
    return 0;
missing: /* the message is formatted before dlclose(), which may reuse dlerror()'s buffer */
    e = dlerror();
    rc = fail(err, errlen, "cannot load " MCPD_LIBARCHIVE_SONAME ": %.300s", e ? e : sym);
    dlclose(h);
    return rc;
}

/* A relative path of non-empty segments, none "." or "..", printable, not too long. */
static const char *check_entry_path(const char *p)
{
    size_t len = strlen(p);
    if (len == 0 || len > 1024)
        return "empty or too long path";
    if (p[0] == '/')
        return "absolute path";
    for (const char *s = p; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '\\')
            return "control character or backslash in path";
    for (const char *seg = p; *seg;) {
        const char *sl = strchr(seg, '/');
        size_t n = sl ? (size_t)(sl - seg) : strlen(seg);
        if ((n == 2 && seg[0] == '.' && seg[1] == '.'))
            return "'..' segment";
        if (sl == NULL)
            break;
        seg = sl + 1;
    }
    return NULL;
}

/* Creates the parent directories of rel under dest (each must be a real directory). */
static int make_parents(const char *dest, const char *rel)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", dest, rel);
    if (n < 0 || (size_t)n >= sizeof(path))
        return -1;
    for (char *s = path + strlen(dest) + 1; (s = strchr(s, '/')) != NULL; s++) {
        struct stat st;
        *s = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -1;
        if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            return -1;
        *s = '/';
    }
    return 0;
}

static int extract_file(struct archive *a, const char *dest, const char *rel, mode_t mode,
                        unsigned long long *total, char *err, size_t errlen)
{
    char path[4096], buf[16384];
    unsigned long long size = 0;
    la_ssize_t r;
    int fd, rc = 0;

    if (make_parents(dest, rel) != 0)
        return fail(err, errlen, "archive entry '%.200s': cannot create its directory", rel);
    snprintf(path, sizeof(path), "%s/%s", dest, rel);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              (mode & 0111) ? 0755 : 0644);
    if (fd < 0)
        return fail(err, errlen, "archive entry '%.200s': cannot create (duplicate entry?)", rel);
    while ((r = la.archive_read_data(a, buf, sizeof(buf))) > 0) {
        size += (unsigned long long)r;
        *total += (unsigned long long)r;
        if (size > MCPD_MAX_MST_ENTRY) {
            rc = fail(err, errlen, "archive entry '%.200s': larger than the entry cap", rel);
            break;
        }
        if (*total > MCPD_MAX_MST_TOTAL) {
            rc = fail(err, errlen, "archive larger than the total cap (at '%.200s')", rel);
            break;
        }
        if (write(fd, buf, (size_t)r) != r) {
            rc = fail(err, errlen, "archive entry '%.200s': write failed", rel);
            break;
        }
    }
    if (rc == 0 && r < 0)
        rc = fail(err, errlen, "corrupt archive: %.200s", la.archive_error_string(a));
    close(fd);
    return rc;
}

int mcpd_mst_extract(const char *archive, const char *dest, char *err, size_t errlen)
{
    struct archive *a;
    struct archive_entry *e;
    unsigned long long total = 0;
    unsigned count = 0;
    int r, rc = 0;

    if (la_load(err, errlen) != 0)
        return MCPD_ECONFIG;
    if ((a = la.archive_read_new()) == NULL)
        return MCPD_ENOMEM;
    la.archive_read_support_format_tar(a);
    la.archive_read_support_filter_gzip(a);
    if (la.archive_read_open_filename(a, archive, 16384) != ARCHIVE_OK) {
        rc = fail(err, errlen, "cannot read archive: %.200s", la.archive_error_string(a));
        goto out;
    }
    while ((r = la.archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *p = la.archive_entry_pathname(e), *why;
        mode_t type = la.archive_entry_filetype(e);
        char rel[1100];
        size_t n;

        if (++count > MCPD_MAX_MST_ENTRIES) {
            rc = fail(err, errlen, "archive has more than %u entries", MCPD_MAX_MST_ENTRIES);
            goto out;
        }
        if (p == NULL) {
            rc = fail(err, errlen, "archive entry without a path");
            goto out;
        }
        while (p[0] == '.' && p[1] == '/')
            p += 2; /* "./x" is "x" */
        if ((why = check_entry_path(p)) != NULL) {
            snprintf(err, errlen, "archive entry '%.200s' refused: %s",
                     la.archive_entry_pathname(e), why);
            rc = MCPD_ECONFIG;
            goto out;
        }
        if (la.archive_entry_hardlink(e) != NULL || la.archive_entry_symlink(e) != NULL ||
            (type != AE_IFREG && type != AE_IFDIR)) {
            rc = fail(err, errlen,
                      "archive entry '%.200s' refused: not a regular file or directory", p);
            goto out;
        }
        if (la.archive_entry_size_is_set(e) &&
            la.archive_entry_size(e) > (la_int64_t)MCPD_MAX_MST_ENTRY) {
            rc = fail(err, errlen, "archive entry '%.200s' refused: larger than the entry cap", p);
            goto out;
        }
        snprintf(rel, sizeof(rel), "%s", p);
        n = strlen(rel);
        while (n > 0 && rel[n - 1] == '/')
            rel[--n] = '\0';
        if (n == 0 || strcmp(rel, ".") == 0)
            continue;
        if (type == AE_IFDIR) {
            char path[4096];
            struct stat st;
            if (make_parents(dest, rel) != 0)
                goto mkfail;
            snprintf(path, sizeof(path), "%s/%s", dest, rel);
            if ((mkdir(path, 0755) != 0 && errno != EEXIST) || lstat(path, &st) != 0 ||
                !S_ISDIR(st.st_mode))
                goto mkfail;
            continue;
        mkfail:
            rc = fail(err, errlen, "archive entry '%.200s': cannot create the directory", rel);
            goto out;
        }
        if ((rc = extract_file(a, dest, rel, la.archive_entry_perm(e), &total, err, errlen)) != 0)
            goto out;
    }
    if (r != ARCHIVE_EOF)
        rc = fail(err, errlen, "corrupt archive: %.200s", la.archive_error_string(a));
out:
    la.archive_read_free(a);
    return rc;
}

/* ---- pack ------------------------------------------------------------------------------------ */

static struct archive *pack_out;
static size_t pack_prefix;
static int pack_rc;

static int pack_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    struct archive_entry *e;
    const char *rel = path + pack_prefix;
    (void)ftw;
    if (*rel == '/')
        rel++;
    if (*rel == '\0')
        return 0;
    if (flag != FTW_F && flag != FTW_D) {
        pack_rc = MCPD_ECONFIG; /* links and the like are not packed */
        return 1;
    }
    if (flag == FTW_F && !S_ISREG(st->st_mode)) {
        pack_rc = MCPD_ECONFIG;
        return 1;
    }
    if ((e = la.archive_entry_new()) == NULL) {
        pack_rc = MCPD_ENOMEM;
        return 1;
    }
    la.archive_entry_set_pathname(e, rel);
    la.archive_entry_set_filetype(e, flag == FTW_D ? AE_IFDIR : AE_IFREG);
    la.archive_entry_set_perm(e, flag == FTW_D ? 0755 : ((st->st_mode & 0111) ? 0755 : 0644));
    la.archive_entry_set_size(e, flag == FTW_D ? 0 : st->st_size);
    la.archive_entry_set_mtime(e, 0, 0); /* reproducible */
    if (la.archive_write_header(pack_out, e) != ARCHIVE_OK)
        pack_rc = MCPD_ECONFIG;
    if (pack_rc == 0 && flag == FTW_F) {
        char buf[16384];
        ssize_t r;
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            pack_rc = MCPD_ECONFIG;
        while (pack_rc == 0 && (r = read(fd, buf, sizeof(buf))) > 0)
            if (la.archive_write_data(pack_out, buf, (size_t)r) != r)
                pack_rc = MCPD_ECONFIG;
        if (fd >= 0)
            close(fd);
    }
    la.archive_entry_free(e);
    return pack_rc != 0;
}

int mcpd_mst_pack(const char *dir, const char *archive, char *err, size_t errlen)
{
    struct archive *a;

    if (la_load(err, errlen) != 0)
        return MCPD_ECONFIG;
    if ((a = la.archive_write_new()) == NULL)
        return MCPD_ENOMEM;
    la.archive_write_set_format_pax_restricted(a);
    la.archive_write_add_filter_gzip(a);
    if (la.archive_write_open_filename(a, archive) != ARCHIVE_OK) {
        snprintf(err, errlen, "cannot write %.200s: %.200s", archive, la.archive_error_string(a));
        la.archive_write_free(a);
        return MCPD_ECONFIG;
    }
    pack_out = a;
    pack_prefix = strlen(dir);
    pack_rc = 0;
    if (nftw(dir, pack_one, 16, FTW_PHYS) != 0 && pack_rc == 0)
        pack_rc = MCPD_ECONFIG;
    if (pack_rc != 0)
        snprintf(err, errlen, "cannot pack %.200s (only regular files and directories)", dir);
    if (la.archive_write_close(a) != ARCHIVE_OK && pack_rc == 0) {
        snprintf(err, errlen, "cannot write %.200s", archive);
        pack_rc = MCPD_ECONFIG;
    }
    la.archive_write_free(a);
    return pack_rc;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void mcpd_mst_remove_tree(const char *dir)
{
    if (dir)
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int mcpd_mst_cli(int argc, char **argv)
{
    struct mcpd_manifest *m = NULL;
    struct mcpd_diag diag;
    char err[512], tmpl[4096];
    const char *dir;
    struct stat st;
    bool extracted = false;
    int rc;

    if (argc == 5 && strcmp(argv[2], "pack") == 0) {
        if (mcpd_manifest_load(&m, argv[3], &diag) != 0) {
            fprintf(stderr, "mcpd: %s\n", diag.msg);
            return 1;
        }
        mcpd_manifest_free(m);
        if ((rc = mcpd_mst_pack(argv[3], argv[4], err, sizeof(err))) != 0) {
            fprintf(stderr, "mcpd: %s\n", err);
            return 1;
        }
        printf("%s: packed %s\n", argv[4], argv[3]);
        return 0;
    }
    if (argc != 4 || strcmp(argv[2], "check") != 0) {
        fprintf(stderr, "usage: mcpd plugin pack DIR OUT.mst | mcpd plugin check DIR|FILE.mst\n");
        return 2;
    }
    dir = argv[3];
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "mcpd: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (mcpd_mst_tempdir(tmpl, sizeof(tmpl)) != 0) {
            fprintf(stderr, "mcpd: cannot create a temporary directory\n");
            return 1;
        }
        extracted = true;
        if (mcpd_mst_extract(argv[3], tmpl, err, sizeof(err)) != 0) {
            fprintf(stderr, "mcpd: %s: %s\n", argv[3], err);
            mcpd_mst_remove_tree(tmpl);
            return 1;
        }
        dir = tmpl;
    }
    rc = mcpd_manifest_load(&m, dir, &diag);
    if (rc != 0)
        fprintf(stderr, "mcpd: %s\n", diag.msg);
    else
        printf("%s: ok (%s %s, %zu operations%s)\n", argv[3], m->name, m->version, m->nops,
               m->exec_command ? ", exec" : "");
    mcpd_manifest_free(m);
    if (extracted)
        mcpd_mst_remove_tree(tmpl);
    return rc == 0 ? 0 : 1;
}

int mcpd_mst_tempdir(char *out, size_t cap)
{
    const char *t = getenv("TMPDIR");
    int n = snprintf(out, cap, "%s/mcpd-plugin-XXXXXX", t && *t ? t : "/tmp");

    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    return mkdtemp(out) != NULL ? 0 : -errno;
}
