/*
 * crypto.h - secrets at rest: AES-256-GCM under the master key, random
 * bytes, and the master key itself (MCPD_MASTER_KEY or a 0600 key file).
 *
 * Sealed blob, version 1 (all binary, stored as a sqlite BLOB):
 *   0x01 | nonce (12 bytes, fresh from RAND_bytes per seal) | ciphertext | tag (16 bytes)
 * The AAD is chosen by the caller and binds a blob to where it belongs (the
 * store uses "<credential name>\0<field>"): a blob copied to another row or
 * field fails to open, as does any flipped bit in version, nonce,
 * ciphertext or tag. Opening never returns unauthenticated bytes.
 *
 * Key material is wiped (OPENSSL_cleanse) by the functions that handled it;
 * callers wipe their own copies with mcpd_crypto_wipe.
 */
#ifndef MCPD_CRYPTO_H
#define MCPD_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#define MCPD_CRYPTO_KEY_LEN   32
#define MCPD_CRYPTO_NONCE_LEN 12
#define MCPD_CRYPTO_TAG_LEN   16
#define MCPD_CRYPTO_VERSION   0x01
/* bytes a sealed blob adds to its plaintext */
#define MCPD_CRYPTO_OVERHEAD (1 + MCPD_CRYPTO_NONCE_LEN + MCPD_CRYPTO_TAG_LEN)
/* the environment variable holding the master key as 64 hex digits */
#define MCPD_MASTER_KEY_ENV "MCPD_MASTER_KEY"

/* n random bytes from OpenSSL's CSPRNG; 0 or UV_EIO. */
int mcpd_crypto_random(void *out, size_t n);

/*
 * Seals len bytes of pt: *out is a new blob (free()) of *outlen =
 * len + MCPD_CRYPTO_OVERHEAD bytes. Returns 0, MCPD_ENOMEM or UV_EIO.
 */
int mcpd_crypto_seal(unsigned char **out, size_t *outlen, const unsigned char key[32],
                     const void *aad, size_t aadlen, const void *pt, size_t len);

/*
 * Opens a blob sealed with the same key and AAD: *out is a new buffer
 * (free() after mcpd_crypto_wipe) of *outlen bytes, followed by a NUL not
 * counted in *outlen. Returns 0; MCPD_EPROTO when the blob is malformed,
 * of an unknown version, tampered with, or sealed under another key or AAD
 * (GCM cannot tell these apart); MCPD_ENOMEM; UV_EIO.
 */
int mcpd_crypto_open(unsigned char **out, size_t *outlen, const unsigned char key[32],
                     const void *aad, size_t aadlen, const unsigned char *blob, size_t bloblen);

/* OPENSSL_cleanse; NULL or 0 is a no-op. */
void mcpd_crypto_wipe(void *p, size_t n);
/* Wipes a NUL-terminated string and frees it; NULL is a no-op. */
void mcpd_crypto_free_str(char *s);

/*
 * The master key into key: from MCPD_MASTER_KEY when set (exactly 64 hex
 * digits, else an error), otherwise from key_file (64 hex digits and an
 * optional newline). A missing key file is created, when `create`, with 32
 * fresh random bytes, O_CREAT|O_EXCL and mode 0600 (*created set). A key
 * file that is not a regular file, or is readable or writable by group or
 * others, is refused. Returns 0 or a negative code with err filled (one
 * line, never key material).
 */
int mcpd_crypto_master_key(unsigned char key[32], const char *key_file, bool create, bool *created,
                           char *err, size_t errcap);

/*
 * A key for one purpose from the master key: HKDF-SHA256 (RFC 5869, no
 * salt) with `info` naming the purpose ("mcpd audit chain v1"), so that
 * keys for different uses never coincide. Returns 0 or UV_EIO.
 */
int mcpd_crypto_derive(unsigned char out[32], const unsigned char master[32], const char *info);

/* 64 hex digits into 32 bytes; 0 or -1. */
int mcpd_crypto_unhex(unsigned char *out, const char *hex, size_t nbytes);

#endif
