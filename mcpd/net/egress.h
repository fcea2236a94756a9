/*
 * egress.h - what a plugin's declarative HTTP operations may reach (sans-I/O).
 *
 * Two checks, both pure functions:
 *  - the host of every request URL (first request and each redirect hop)
 *    must match one of the plugin's `egress.allowedHosts` globs: anchored,
 *    case-insensitive, `*` matches within one DNS label ("*.github.com"
 *    matches "api.github.com", not "github.com" nor "a.b.github.com");
 *  - every address curl is about to connect to is classified: loopback,
 *    private (RFC 1918, ULA), link-local, CGNAT, unspecified, multicast,
 *    reserved and cloud metadata addresses, and the IPv4-mapped/compatible,
 *    NAT64 and 6to4 IPv6 forms of IPv4 ones, are refused unless the plugin
 *    sets `egress.allowPrivate: true`, or the address falls in one of its
 *    `egress.allowPrivateCidrs` (an IPv4-mapped IPv6 address is matched as
 *    the IPv4 address it maps). The adapter runs this check from
 *    curl's open-socket callback, so the address checked is the address
 *    connected to (no DNS rebinding window).
 */
#ifndef MCPD_EGRESS_H
#define MCPD_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

/*
 * NULL when `sa` (AF_INET or AF_INET6; borrowed) is a public unicast
 * address; otherwise a static word naming why it is not ("loopback",
 * "private", "link-local", "cgnat", "unspecified", "multicast", "reserved",
 * "metadata", or "unsupported address family").
 */
const char *mcpd_egress_addr_class(const struct sockaddr *sa);

/* True when `host` matches the glob `pattern` (see above). Both borrowed. */
bool mcpd_egress_host_match(const char *pattern, const char *host);

/* True when `host` matches one of the n patterns. */
bool mcpd_egress_host_allowed(char *const *patterns, size_t n, const char *host);

/* Checks a glob at config time: labels of [A-Za-z0-9-] or "*", dot-separated. */
bool mcpd_egress_pattern_is_valid(const char *pattern);

/* An address range: `bits` leading bits of `addr` (4 bytes for AF_INET, 16 for AF_INET6). */
struct mcpd_cidr {
    int family;
    uint8_t addr[16];
    unsigned bits;
};

/*
 * Parses "a.b.c.d/n" (n 0..32) or an IPv6 address "/n" (0..128). The
 * prefix length is required and the host bits must be zero ("10.0.0.1/8"
 * is refused: it reads like one address). False when not valid.
 */
bool mcpd_egress_cidr_parse(const char *text, struct mcpd_cidr *out);

/* True when `sa` (AF_INET or AF_INET6; borrowed) falls in one of the n ranges. */
bool mcpd_egress_cidr_match(const struct mcpd_cidr *ranges, size_t n, const struct sockaddr *sa);

#endif
