/*
 * fileops.h - the `file_ops` builtins (read_file, write_file,
 * list_directory) confined to configured roots. Sans loop: plain blocking
 * system calls on local files, bounded by max_bytes.
 *
 * Containment: the argument must be an absolute path; it is canonicalised
 * lexically by the policy engine (NUL, controls, '\\', percent-encodings
 * and look-alike characters refused; "." and ".." resolved), then the
 * longest existing prefix is resolved with realpath(3) so that a symbolic
 * link inside a root that points outside it is caught, and the result must
 * lie within a root (segment-wise: /srv/data never admits /srv/database).
 * The file is then opened by walking from the root's directory descriptor
 * with openat(2) and O_NOFOLLOW on every component, so a link swapped in
 * after the check is refused instead of followed.
 */
#ifndef MCPD_AGENT_FILEOPS_H
#define MCPD_AGENT_FILEOPS_H

#include <stddef.h>

#include <jansson.h>

struct mcpd_agent_files {
    char *const *roots; /* canonical absolute directories (borrowed) */
    size_t nroots;
    size_t max_bytes; /* read and write size cap */
};

/*
 * Each returns 0 or a negative code with a one-line reason in why (the
 * caller turns it into an isError result): MCPD_EDENIED for a path outside
 * the roots or refused, MCPD_ETOOBIG past max_bytes, or a libuv-style
 * -errno for a failed system call.
 */
/* *data (new, NUL-terminated, free()) and *len. */
int mcpd_agent_files_read(const struct mcpd_agent_files *f, const char *path, size_t plen,
                          char **data, size_t *len, char *why, size_t whycap);
/* Creates or truncates; the parent directory must exist. */
int mcpd_agent_files_write(const struct mcpd_agent_files *f, const char *path, size_t plen,
                           const char *data, size_t len, char *why, size_t whycap);
/* *entries: new array of {"name", "type": "file"|"directory"|"symlink"|"other"}, sorted. */
int mcpd_agent_files_list(const struct mcpd_agent_files *f, const char *path, size_t plen,
                          json_t **entries, char *why, size_t whycap);

/*
 * The containment check alone: resolves path into out (cap bytes) and
 * returns the index of the root containing it, or MCPD_EDENIED with why.
 */
int mcpd_agent_files_resolve(const struct mcpd_agent_files *f, const char *path, size_t plen,
                             char *out, size_t cap, char *why, size_t whycap);

#endif
