/*
 * text.c - the policy engine's two text helpers: a strict UTF-8 decoder
 * (used by the glob matcher to step over code points and by the path
 * canonicaliser to reject invalid and overlong sequences) and the escaper
 * that turns untrusted values into one printable line for decisions,
 * audit rows and error messages (CWE-117: no raw CR, LF or ESC).
 */
#include "policy/text.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Bounds of the second byte after each lead byte (RFC 3629 table 3.7). */
static bool second_byte_ok(unsigned char lead, unsigned char b)
{
    if (lead == 0xE0)
        return b >= 0xA0 && b <= 0xBF;
    if (lead == 0xED)
        return b >= 0x80 && b <= 0x9F; /* no UTF-16 surrogates */
    if (lead == 0xF0)
        return b >= 0x90 && b <= 0xBF;
    if (lead == 0xF4)
        return b >= 0x80 && b <= 0x8F; /* nothing above U+10FFFF */
    return b >= 0x80 && b <= 0xBF;
}

uint32_t mcpd__policy_utf8_next(const char *s, size_t len, size_t *i)
{
    const unsigned char *p = (const unsigned char *)s + *i;
    size_t left = len - *i, need;
    uint32_t cp;

    if (p[0] < 0x80) {
        *i += 1;
        return p[0];
    }
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        need = 2;
        cp = p[0] & 0x1F;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        need = 3;
        cp = p[0] & 0x0F;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        need = 4;
        cp = p[0] & 0x07;
    } else {
        goto bad; /* continuation byte, C0/C1 overlong lead, F5..FF */
    }
    if (left < need || !second_byte_ok(p[0], p[1]))
        goto bad;
    for (size_t k = 1; k < need; k++) {
        if ((p[k] & 0xC0) != 0x80)
            goto bad;
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    *i += need;
    return cp;
bad:
    *i += 1;
    return MCPD__POLICY_BAD_BYTE | p[0];
}

/* The escape for one code point, or "" when it is printed as it is. */
static void escape_piece(char piece[16], uint32_t cp)
{
    piece[0] = '\0';
    if (cp & MCPD__POLICY_BAD_BYTE)
        snprintf(piece, 16, "\\x%02x", (unsigned)(cp & 0xFF));
    else if (cp == '\\' || cp == '\'')
        snprintf(piece, 16, "\\%c", (char)cp);
    else if (cp < 0x20 || cp == 0x7F)
        snprintf(piece, 16, "\\x%02x", (unsigned)cp);
    else if ((cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029)
        snprintf(piece, 16, "\\u%04x", (unsigned)cp);
}

void mcpd__policy_escape(char *out, size_t cap, const char *s, size_t len)
{
    size_t i = 0, o = 0, keep = 0;

    if (cap == 0)
        return;
    out[0] = '\0';
    while (i < len) {
        size_t start = i, n;
        char piece[16];
        const char *src;
        uint32_t cp = mcpd__policy_utf8_next(s, len, &i);

        escape_piece(piece, cp);
        src = piece[0] ? piece : s + start;
        n = piece[0] ? strlen(piece) : i - start;
        if (o + n + 1 > cap) {
            /* does not fit: cut at the last piece boundary leaving room for "..." */
            if (cap >= 4) {
                memcpy(out + keep, "...", 3);
                out[keep + 3] = '\0';
            } else {
                out[0] = '\0';
            }
            return;
        }
        memcpy(out + o, src, n);
        o += n;
        out[o] = '\0';
        if (o + 4 <= cap)
            keep = o;
    }
}

void mcpd__policy_copy(char *out, size_t cap, const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (cap == 0)
        return;
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* never cut a UTF-8 sequence */
    }
    if (n)
        memcpy(out, s, n);
    out[n] = '\0';
}
