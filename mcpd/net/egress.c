/* egress.c - address classification and host globs for plugin egress (see egress.h). */
#include "egress.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static const char *classify_v4(uint32_t a)
{
    uint8_t b0 = (uint8_t)(a >> 24), b1 = (uint8_t)(a >> 16);
    if (a == 0xA9FEA9FEu) /* 169.254.169.254: cloud metadata */
        return "metadata";
    if (b0 == 0)
        return "unspecified"; /* 0.0.0.0/8 "this network" */
    if (b0 == 127)
        return "loopback";
    if (b0 == 10 || (b0 == 172 && (b1 & 0xF0) == 16) || (b0 == 192 && b1 == 168))
        return "private";
    if (b0 == 169 && b1 == 254)
        return "link-local";
    if (b0 == 100 && (b1 & 0xC0) == 64)
        return "cgnat"; /* 100.64.0.0/10 */
    if (b0 >= 224 && b0 <= 239)
        return "multicast";
    if (b0 >= 240)
        return "reserved"; /* 240/4 and 255.255.255.255 */
    if (b0 == 192 && b1 == 0 && (uint8_t)(a >> 8) == 0)
        return "reserved"; /* 192.0.0.0/24 IETF protocol assignments */
    if (b0 == 198 && (b1 & 0xFE) == 18)
        return "reserved"; /* 198.18.0.0/15 benchmarking */
    return NULL;
}

static uint32_t v4_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const char *classify_v6(const uint8_t *p)
{
    static const uint8_t zero[16];
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };
    static const uint8_t nat64_local[6] = { 0, 0x64, 0xff, 0x9b, 0, 0x01 };
    static const uint8_t translated[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0 };
    static const uint8_t ec2[16] = {
        0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54
    };

    if (memcmp(p, zero, 16) == 0)
        return "unspecified";
    if (memcmp(p, zero, 15) == 0 && p[15] == 1)
        return "loopback";
    if (memcmp(p, ec2, 16) == 0)
        return "metadata"; /* fd00:ec2::254 */
    if (memcmp(p, mapped, 12) == 0 || memcmp(p, nat64, 12) == 0)
        return classify_v4(v4_at(p + 12)); /* ::ffff:a.b.c.d, 64:ff9b::a.b.c.d */
    if (memcmp(p, translated, 12) == 0)
        return classify_v4(v4_at(p + 12)); /* ::ffff:0:a.b.c.d (SIIT, RFC 6052 2.1) */
    if (memcmp(p, nat64_local, 6) == 0)
        return "reserved"; /* 64:ff9b:1::/48 local-use NAT64 (RFC 8215): any IPv4 behind it */
    if (p[0] == 0x20 && p[1] == 0x01 && p[2] == 0 && p[3] == 0)
        return "reserved"; /* 2001::/32 Teredo: tunnels to an obfuscated IPv4 */
    if (memcmp(p, zero, 12) == 0)
        return "reserved";            /* deprecated IPv4-compatible ::a.b.c.d */
    if (p[0] == 0x20 && p[1] == 0x02) /* 6to4 2002:AABB:CCDD::/48 */
        return classify_v4(v4_at(p + 2));
    if ((p[0] & 0xFE) == 0xFC)
        return "private"; /* fc00::/7 unique local */
    if (p[0] == 0xFE && (p[1] & 0xC0) == 0x80)
        return "link-local"; /* fe80::/10 */
    if (p[0] == 0xFE && (p[1] & 0xC0) == 0xC0)
        return "private"; /* fec0::/10 deprecated site-local */
    if (p[0] == 0xFF)
        return "multicast";
    return NULL;
}

const char *mcpd_egress_addr_class(const struct sockaddr *sa)
{
    if (sa == NULL)
        return "unsupported address family";
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof(in));
        return classify_v4(ntohl(in.sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof(in6));
        return classify_v6(in6.sin6_addr.s6_addr);
    }
    return "unsupported address family";
}

/* One label: `*` matches any run of non-dot characters (linear: at most one backtrack point). */
static bool label_match(const char *p, size_t plen, const char *h, size_t hlen)
{
    size_t pi = 0, hi = 0, star = (size_t)-1, mark = 0;
    while (hi < hlen) {
        if (pi < plen && p[pi] == '*') {
            star = pi++;
            mark = hi;
        } else if (pi < plen && tolower((unsigned char)p[pi]) == tolower((unsigned char)h[hi])) {
            pi++;
            hi++;
        } else if (star != (size_t)-1) {
            pi = star + 1;
            hi = ++mark;
        } else {
            return false;
        }
    }
    while (pi < plen && p[pi] == '*')
        pi++;
    return pi == plen;
}

bool mcpd_egress_host_match(const char *pattern, const char *host)
{
    size_t hl;
    if (pattern == NULL || host == NULL || *host == '\0')
        return false;
    hl = strlen(host);
    if (hl > 1 && host[hl - 1] == '.')
        hl--; /* "example.com." is "example.com" */
    for (const char *p = pattern, *h = host, *hend = host + hl;;) {
        const char *pd = strchr(p, '.');
        const char *hd = memchr(h, '.', (size_t)(hend - h));
        size_t plen = pd ? (size_t)(pd - p) : strlen(p);
        size_t hlen = hd ? (size_t)(hd - h) : (size_t)(hend - h);
        if (!label_match(p, plen, h, hlen) || hlen == 0)
            return false;
        if (pd == NULL || hd == NULL)
            return pd == NULL && hd == NULL;
        p = pd + 1;
        h = hd + 1;
    }
}

bool mcpd_egress_host_allowed(char *const *patterns, size_t n, const char *host)
{
    for (size_t i = 0; i < n; i++)
        if (mcpd_egress_host_match(patterns[i], host))
            return true;
    return false;
}

bool mcpd_egress_pattern_is_valid(const char *pattern)
{
    size_t label = 0;
    if (pattern == NULL || *pattern == '\0' || strlen(pattern) > 253)
        return false;
    for (const char *s = pattern;; s++) {
        if (*s == '.' || *s == '\0') {
            if (label == 0 || label > 63)
                return false;
            if (*s == '\0')
                return true;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '*' && *s != '_')
            return false;
        label++;
    }
}

/* ---- allowPrivateCidrs --------------------------------------------------- */

/* True when the first `bits` bits of a and b agree. */
static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;

    if (memcmp(a, b, whole) != 0)
        return false;
    return rest == 0 || ((a[whole] ^ b[whole]) & (uint8_t)(0xFF << (8 - rest))) == 0;
}

bool mcpd_egress_cidr_parse(const char *text, struct mcpd_cidr *out)
{
    const char *slash = strchr(text, '/');
    char addr[INET6_ADDRSTRLEN];
    unsigned long bits;
    size_t len, nbytes;
    char *end;

    memset(out, 0, sizeof(*out));
    if (slash == NULL || (len = (size_t)(slash - text)) == 0 || len >= sizeof(addr) ||
        slash[1] < '0' || slash[1] > '9' || (slash[1] == '0' && slash[2] != '\0') ||
        strlen(slash + 1) > 3)
        return false;
    memcpy(addr, text, len);
    addr[len] = '\0';
    bits = strtoul(slash + 1, &end, 10);
    if (*end != '\0')
        return false;
    if (memchr(addr, ':', len) != NULL) {
        out->family = AF_INET6;
        nbytes = 16;
    } else {
        out->family = AF_INET;
        nbytes = 4;
    }
    if (inet_pton(out->family, addr, out->addr) != 1 || bits > nbytes * 8)
        return false;
    out->bits = (unsigned)bits;
    /* no host bits: the range is what it says */
    for (size_t i = 0; i < nbytes; i++) {
        unsigned first = (unsigned)i * 8;
        uint8_t keep = first >= out->bits       ? 0
                       : first + 8 <= out->bits ? 0xFF
                                                : (uint8_t)(0xFF << (8 - (out->bits - first)));
        if ((out->addr[i] & (uint8_t)~keep) != 0)
            return false;
    }
    return true;
}

bool mcpd_egress_cidr_match(const struct mcpd_cidr *ranges, size_t n, const struct sockaddr *sa)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    const uint8_t *v4 = NULL, *v6 = NULL;

    if (sa->sa_family == AF_INET) {
        v4 = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        v6 = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        if (memcmp(v6, mapped, 12) == 0)
            v4 = v6 + 12;
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const struct mcpd_cidr *c = &ranges[i];
        if ((c->family == AF_INET && v4 && prefix_equal(c->addr, v4, c->bits)) ||
            (c->family == AF_INET6 && v6 && prefix_equal(c->addr, v6, c->bits)))
            return true;
    }
    return false;
}
