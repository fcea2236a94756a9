/*
 * images.c - the `images` dimension (security.md 6.5): container image
 * references parsed with the distribution grammar
 *
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [ host [ ":" port ] "/" ] path-component { "/" path-component }
 *   path-component := [a-z0-9]+ { ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ }
 *   tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
 *   digest     := "sha256:" 64 lowercase hex | "sha512:" 128 lowercase hex
 *
 * and normalised the way docker does: the first component is a registry
 * only when a '/' follows it and it holds '.' or ':' or is "localhost";
 * otherwise the registry is docker.io, where a one-component path gets
 * "library/"; "index.docker.io" and "registry-1.docker.io" become
 * "docker.io"; with neither tag nor digest the tag is "latest". So
 * "python:3" -> "docker.io/library/python:3". Refused rather than guessed:
 * uppercase outside the tag (docker would take "Foo/bar" for a registry),
 * whitespace, controls and non-ASCII (homoglyph hosts), a leading '-' (a
 * flag such as "--privileged"), "." and ".." components, IPv6 hosts.
 *
 * Patterns are normalised the same way with glob characters allowed in the
 * components ("python:*" -> "docker.io/library/python:*").
 */
#include "policy/images.h"

#include <string.h>

#include "policy/policy.h"

#define MAX_NAME 255 /* distribution's NameTotalLengthMax */
#define MAX_TAG  128

/* One parsed reference; all slices point into the input. */
struct ref {
    const char *host, *path, *tag, *digest;
    size_t hostlen, pathlen, taglen, digestlen;
    bool pattern;
};

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_glob(char c)
{
    return c != '\0' && strchr("*?[]!^\\", c) != NULL;
}

/* Byte-level screening of the whole reference. */
static const char *screen(const char *s, size_t len, bool pattern)
{
    if (len == 0)
        return "empty image reference";
    if (len > 512)
        return "image reference too long";
    if (s[0] == '-')
        return "leading '-' (a flag, not an image)";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
            return "whitespace";
        if (c < 0x20 || c == 0x7F)
            return "control character";
        if (c >= 0x80)
            return "non-ASCII character";
        if (!(c >= 'A' && c <= 'Z') && !is_lower_alnum((char)c) && !strchr("._-:/@", c) &&
            !(pattern && is_glob((char)c)))
            return "invalid character";
    }
    return NULL;
}

/* Checks one path component against the grammar (or, for patterns, its shape). */
static const char *check_component(const char *s, size_t n, bool pattern)
{
    size_t i = 0;

    if (n == 0)
        return "empty path component";
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return "'.' or '..' path component";
    for (i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            return "uppercase repository name";
    if (pattern)
        return NULL;
    /* alphanumerics, then separator + alphanumerics, repeated */
    for (i = 0;;) {
        if (i == n || !is_lower_alnum(s[i]))
            return "invalid repository path component";
        while (i < n && is_lower_alnum(s[i]))
            i++;
        if (i == n)
            return NULL;
        if (s[i] == '.')
            i++;
        else if (s[i] == '_')
            i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
        else if (s[i] == '-')
            while (i < n && s[i] == '-')
                i++;
        else
            return "invalid repository path component";
    }
}

static const char *check_path(const char *s, size_t n, bool pattern)
{
    size_t i = 0;

    while (i <= n) {
        size_t start = i;
        const char *why;
        while (i < n && s[i] != '/')
            i++;
        if ((why = check_component(s + start, i - start, pattern)) != NULL)
            return why;
        i++;
    }
    return NULL;
}

/* One DNS label: [a-z0-9]([a-z0-9-]*[a-z0-9])? */
static bool label_ok(const char *s, size_t n)
{
    if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_lower_alnum(s[i]) && s[i] != '-')
            return false;
    return true;
}

static const char *check_port(const char *s, size_t n, bool pattern)
{
    long port = 0;

    if (n == 0 || n > 5 || s[0] == '0')
        return "invalid registry port";
    for (size_t i = 0; i < n; i++) {
        if (pattern && is_glob(s[i]))
            return NULL;
        if (s[i] < '0' || s[i] > '9')
            return "invalid registry port";
        port = port * 10 + (s[i] - '0');
    }
    return port > 65535 ? "invalid registry port" : NULL;
}

/* host[:port]: dot-separated DNS labels, port 1..65535. */
static const char *check_host(const char *s, size_t n, bool pattern)
{
    const char *colon = memchr(s, ':', n);
    size_t hn = colon ? (size_t)(colon - s) : n, i = 0;

    if (hn == 0)
        return "empty registry host";
    for (size_t k = 0; k < hn; k++)
        if (s[k] >= 'A' && s[k] <= 'Z')
            return "uppercase registry host";
    while (!pattern && i <= hn) {
        size_t start = i;
        while (i < hn && s[i] != '.')
            i++;
        if (!label_ok(s + start, i - start))
            return "invalid registry host";
        i++;
    }
    if (pattern && memchr(s, '/', n))
        return "invalid registry host";
    return colon ? check_port(colon + 1, n - hn - 1, pattern) : NULL;
}

static const char *check_tag(const char *s, size_t n, bool pattern)
{
    if (n == 0)
        return "empty tag";
    if (n > MAX_TAG)
        return "tag longer than 128 characters";
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool word = (c >= 'A' && c <= 'Z') || is_lower_alnum(c) || c == '_';
        if (!word && !(i > 0 && (c == '.' || c == '-')) && !(pattern && is_glob(c)))
            return "invalid tag";
    }
    return NULL;
}

static const char *check_digest(const char *s, size_t n, bool pattern)
{
    size_t hex;

    if (pattern) /* "@*", "@sha256:..." or any glob over it */
        return n == 0 || memchr(s, '/', n) ? "invalid digest" : NULL;
    if (n > 7 && memcmp(s, "sha256:", 7) == 0)
        hex = 64;
    else if (n > 7 && memcmp(s, "sha512:", 7) == 0)
        hex = 128;
    else
        return "unsupported digest (sha256:<64 hex> or sha512:<128 hex>)";
    if (n != 7 + hex)
        return "invalid digest length";
    for (size_t i = 7; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return "invalid digest (lowercase hex expected)";
    return NULL;
}

/* Splits s into registry, path, tag and digest; returns NULL or why not. */
static const char *split(struct ref *r, const char *s, size_t len)
{
    const char *at = memchr(s, '@', len), *slash, *colon = NULL;
    size_t nlen = at ? (size_t)(at - s) : len;

    if (at) {
        r->digest = at + 1;
        r->digestlen = len - nlen - 1;
        if (memchr(r->digest, '@', r->digestlen))
            return "more than one '@'";
    }
    for (size_t i = nlen; i > 0; i--) {
        if (s[i - 1] == '/')
            break;
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    }
    if (colon) {
        r->tag = colon + 1;
        r->taglen = nlen - (size_t)(colon - s) - 1;
        nlen = (size_t)(colon - s);
    }
    slash = memchr(s, '/', nlen);
    if (slash && (memchr(s, '.', (size_t)(slash - s)) || memchr(s, ':', (size_t)(slash - s)) ||
                  (slash - s == 9 && memcmp(s, "localhost", 9) == 0))) {
        r->host = s;
        r->hostlen = (size_t)(slash - s);
        s = slash + 1;
        nlen -= r->hostlen + 1;
    }
    r->path = s;
    r->pathlen = nlen;
    return NULL;
}

static const char *check_ref(const struct ref *r)
{
    const char *why = NULL;

    if (r->host && (why = check_host(r->host, r->hostlen, r->pattern)) != NULL)
        return why;
    if ((why = check_path(r->path, r->pathlen, r->pattern)) != NULL)
        return why;
    if (r->tag && (why = check_tag(r->tag, r->taglen, r->pattern)) != NULL)
        return why;
    if (r->digest && (why = check_digest(r->digest, r->digestlen, r->pattern)) != NULL)
        return why;
    return NULL;
}

static bool host_is_docker_hub(const struct ref *r)
{
    static const char *const hub[] = { "docker.io", "index.docker.io", "registry-1.docker.io" };

    if (r->host == NULL)
        return true;
    for (size_t i = 0; i < 3; i++)
        if (strlen(hub[i]) == r->hostlen && memcmp(hub[i], r->host, r->hostlen) == 0)
            return true;
    return false;
}

/* Appends s[0..n) to out[0..*o) and NUL-terminates; false when it does not fit. */
static bool put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    if (*o + n >= cap)
        return false;
    memcpy(out + *o, s, n);
    *o += n;
    out[*o] = '\0';
    return true;
}

/* Writes the normalised form; returns NULL or why not. */
static const char *render(char *out, size_t cap, const struct ref *r)
{
    bool hub = host_is_docker_hub(r);
    bool library = hub && memchr(r->path, '/', r->pathlen) == NULL;
    size_t o = 0;
    bool ok;

    ok = (hub ? put(out, cap, &o, "docker.io", 9) : put(out, cap, &o, r->host, r->hostlen)) &&
         put(out, cap, &o, "/", 1) && (!library || put(out, cap, &o, "library/", 8)) &&
         put(out, cap, &o, r->path, r->pathlen);
    if (ok && o > MAX_NAME)
        return "image name longer than 255 characters";
    if (r->tag)
        ok = ok && put(out, cap, &o, ":", 1) && put(out, cap, &o, r->tag, r->taglen);
    else if (r->digest == NULL)
        ok = ok && put(out, cap, &o, ":latest", 7);
    if (r->digest)
        ok = ok && put(out, cap, &o, "@", 1) && put(out, cap, &o, r->digest, r->digestlen);
    return ok ? NULL : "image reference too long";
}

int mcpd__policy_image_norm(char *out, size_t cap, const char *ref, size_t len, bool pattern,
                            const char **why)
{
    struct ref r;
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    if (out == NULL || cap == 0 || ref == NULL) {
        *why = "empty image reference";
        return -1;
    }
    out[0] = '\0';
    memset(&r, 0, sizeof(r));
    r.pattern = pattern;
    if ((*why = screen(ref, len, pattern)) != NULL || (*why = split(&r, ref, len)) != NULL ||
        (*why = check_ref(&r)) != NULL || (*why = render(out, cap, &r)) != NULL) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

int mcpd_policy_image_normalise(char *out, size_t cap, const char *ref, size_t len,
                                const char **why)
{
    return mcpd__policy_image_norm(out, cap, ref, len, false, why);
}
