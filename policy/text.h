/*
 * text.h - UTF-8 decoding and printable escaping shared by the policy
 * engine's files (internal to policy/).
 */
#ifndef MCPD_POLICY_TEXT_H
#define MCPD_POLICY_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Marks a byte that does not start a valid UTF-8 sequence (ORed with the byte). */
#define MCPD__POLICY_BAD_BYTE 0x80000000u

/*
 * Decodes the code point at s[*i] (i < len) strictly: no overlong forms, no
 * surrogates, nothing above U+10FFFF. Advances *i past it and returns it; for
 * an invalid byte returns MCPD__POLICY_BAD_BYTE | byte and advances by one.
 */
uint32_t mcpd__policy_utf8_next(const char *s, size_t len, size_t *i);

/*
 * Writes s[0..len) into out (cap bytes) as one printable line: C0 and C1
 * controls, DEL, U+2028/U+2029, invalid bytes, '\\' and '\'' are escaped;
 * when the result does not fit it ends in "...". Always NUL-terminates when
 * cap > 0. Borrows s.
 */
void mcpd__policy_escape(char *out, size_t cap, const char *s, size_t len);

/* Copies the C string s into out (cap > 0), cut to fit; always NUL-terminates. */
void mcpd__policy_copy(char *out, size_t cap, const char *s);

#endif
