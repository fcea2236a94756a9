/*
 * fuzz_egress_cidr.c - libFuzzer target for egress.allowPrivateCidrs
 * (mcpd/net/egress.c): mcpd_egress_cidr_parse and mcpd_egress_cidr_match.
 *
 * Input: bytes up to the first NUL are the range text; the next 16 bytes
 * (zero-filled) are an address to match, IPv4 when the range is.
 *
 * Invariants checked:
 *   - a parsed range has a prefix length within its family and no host
 *     bits; printed back (inet_ntop + "/n") it parses to the same range;
 *   - the range matches its own network address, and its IPv4-mapped form
 *     for IPv4 ranges; /0 matches any address of its family;
 *   - an address matches a range exactly when its first n bits agree.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "mcpd/net/egress.h"

#define CAP 80

static bool bits_agree(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    for (unsigned i = 0; i < bits; i++)
        if (((a[i / 8] >> (7 - i % 8)) & 1) != ((b[i / 8] >> (7 - i % 8)) & 1))
            return false;
    return true;
}

static bool match_bytes(const struct mcpd_cidr *c, const uint8_t *addr, bool mapped)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (c->family == AF_INET && !mapped) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, addr, 4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        if (mapped) {
            s6->sin6_addr.s6_addr[10] = 0xff;
            s6->sin6_addr.s6_addr[11] = 0xff;
            memcpy(s6->sin6_addr.s6_addr + 12, addr, 4);
        } else {
            memcpy(s6->sin6_addr.s6_addr, addr, 16);
        }
    }
    return mcpd_egress_cidr_match(c, 1, (struct sockaddr *)&ss);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[CAP + 1], back[INET6_ADDRSTRLEN + 8];
    uint8_t addr[16] = { 0 };
    struct mcpd_cidr c, again;
    size_t n = 0, nbytes;

    while (n < size && n < CAP && data[n] != 0)
        n++;
    memcpy(text, data, n);
    text[n] = '\0';
    if (size > n + 1)
        memcpy(addr, data + n + 1, size - n - 1 < 16 ? size - n - 1 : 16);
    if (!mcpd_egress_cidr_parse(text, &c))
        return 0;
    nbytes = c.family == AF_INET ? 4 : 16;
    FUZZ_CHECK(c.family == AF_INET || c.family == AF_INET6);
    FUZZ_CHECK(c.bits <= nbytes * 8);
    for (unsigned i = c.bits; i < nbytes * 8; i++)
        FUZZ_CHECK(((c.addr[i / 8] >> (7 - i % 8)) & 1) == 0);
    FUZZ_CHECK(inet_ntop(c.family, c.addr, back, sizeof(back)) != NULL);
    snprintf(back + strlen(back), 8, "/%u", c.bits);
    FUZZ_CHECK(mcpd_egress_cidr_parse(back, &again));
    FUZZ_CHECK(again.family == c.family && again.bits == c.bits &&
               memcmp(again.addr, c.addr, nbytes) == 0);
    FUZZ_CHECK(match_bytes(&c, c.addr, false));
    if (c.family == AF_INET)
        FUZZ_CHECK(match_bytes(&c, c.addr, true));
    FUZZ_CHECK(match_bytes(&c, addr, false) == bits_agree(c.addr, addr, c.bits));
    return 0;
}
