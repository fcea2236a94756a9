/*
 * crypto.c - AES-256-GCM seal/open, random bytes and the master key (see
 * crypto.h).
 */
#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <uv.h>

#include "error.h"

int mcpd_crypto_random(void *out, size_t n)
{
    if (n > (size_t)INT32_MAX || RAND_bytes(out, (int)n) != 1)
        return UV_EIO;
    return 0;
}

void mcpd_crypto_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        OPENSSL_cleanse(p, n);
}

void mcpd_crypto_free_str(char *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

/* One GCM pass; enc selects seal or open. The tag is read (open) or written (seal). */
static int gcm(const unsigned char key[32], const unsigned char *nonce, const void *aad,
               size_t aadlen, const unsigned char *in, size_t len, unsigned char *out,
               unsigned char *tag, int enc)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, ok = 0;

    if (ctx == NULL)
        return MCPD_ENOMEM;
    if (len > (size_t)INT32_MAX || aadlen > (size_t)INT32_MAX)
        goto out;
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, MCPD_CRYPTO_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1)
        goto out;
    if (aadlen > 0 && EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
        goto out;
    if (len > 0 && EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)
        goto out;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, MCPD_CRYPTO_TAG_LEN, tag) != 1)
        goto out;
    if (EVP_CipherFinal_ex(ctx, out + len, &n) != 1)
        goto out;
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, MCPD_CRYPTO_TAG_LEN, tag) != 1)
        goto out;
    ok = 1;
out:
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : enc ? UV_EIO : MCPD_EPROTO;
}

int mcpd_crypto_seal(unsigned char **out, size_t *outlen, const unsigned char key[32],
                     const void *aad, size_t aadlen, const void *pt, size_t len)
{
    unsigned char *b;
    int r;

    *out = NULL;
    *outlen = 0;
    if (len > (size_t)INT32_MAX - MCPD_CRYPTO_OVERHEAD - 32)
        return MCPD_ETOOBIG;
    if ((b = malloc(len + MCPD_CRYPTO_OVERHEAD + 32)) == NULL)
        return MCPD_ENOMEM;
    b[0] = MCPD_CRYPTO_VERSION;
    if ((r = mcpd_crypto_random(b + 1, MCPD_CRYPTO_NONCE_LEN)) != 0 ||
        (r = gcm(key, b + 1, aad, aadlen, pt, len, b + 1 + MCPD_CRYPTO_NONCE_LEN,
                 b + 1 + MCPD_CRYPTO_NONCE_LEN + len, 1)) != 0) {
        free(b);
        return r;
    }
    *out = b;
    *outlen = len + MCPD_CRYPTO_OVERHEAD;
    return 0;
}

int mcpd_crypto_open(unsigned char **out, size_t *outlen, const unsigned char key[32],
                     const void *aad, size_t aadlen, const unsigned char *blob, size_t bloblen)
{
    unsigned char *p;
    size_t len;
    int r;

    *out = NULL;
    *outlen = 0;
    if (blob == NULL || bloblen < MCPD_CRYPTO_OVERHEAD || blob[0] != MCPD_CRYPTO_VERSION)
        return MCPD_EPROTO;
    len = bloblen - MCPD_CRYPTO_OVERHEAD;
    /* room for EVP's final block (none for GCM) and the NUL */
    if ((p = malloc(len + 32)) == NULL)
        return MCPD_ENOMEM;
    {
        unsigned char tag[MCPD_CRYPTO_TAG_LEN];

        memcpy(tag, blob + 1 + MCPD_CRYPTO_NONCE_LEN + len, sizeof(tag));
        r = gcm(key, blob + 1, aad, aadlen, blob + 1 + MCPD_CRYPTO_NONCE_LEN, len, p, tag, 0);
    }
    if (r != 0) {
        OPENSSL_cleanse(p, len + 32);
        free(p);
        return r;
    }
    p[len] = '\0';
    *out = p;
    *outlen = len;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int mcpd_crypto_unhex(unsigned char *out, const char *hex, size_t nbytes)
{
    for (size_t i = 0; i < nbytes; i++) {
        int hi = hexval(hex[2 * i]), lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static int key_from_text(unsigned char key[32], const char *text, size_t len)
{
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (len != 2 * MCPD_CRYPTO_KEY_LEN)
        return -1;
    return mcpd_crypto_unhex(key, text, MCPD_CRYPTO_KEY_LEN);
}

static int create_key_file(unsigned char key[32], const char *path, char *err, size_t errcap)
{
    static const char digits[] = "0123456789abcdef";
    char text[2 * MCPD_CRYPTO_KEY_LEN + 1];
    int fd, r = 0;

    if (mcpd_crypto_random(key, MCPD_CRYPTO_KEY_LEN) != 0) {
        snprintf(err, errcap, "no random bytes for a master key");
        return UV_EIO;
    }
    for (size_t i = 0; i < MCPD_CRYPTO_KEY_LEN; i++) {
        text[2 * i] = digits[key[i] >> 4];
        text[2 * i + 1] = digits[key[i] & 15];
    }
    text[2 * MCPD_CRYPTO_KEY_LEN] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        r = -errno;
        snprintf(err, errcap, "%s: cannot create the master key file: %s", path, strerror(errno));
        goto out;
    }
    /* umask cannot widen 0600, but a pre-set ACL default could: make sure */
    if (fchmod(fd, 0600) != 0 || write(fd, text, sizeof(text)) != (ssize_t)sizeof(text) ||
        fsync(fd) != 0) {
        r = errno ? -errno : UV_EIO;
        snprintf(err, errcap, "%s: cannot write the master key file: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        goto out;
    }
    close(fd);
out:
    OPENSSL_cleanse(text, sizeof(text));
    if (r != 0)
        OPENSSL_cleanse(key, MCPD_CRYPTO_KEY_LEN);
    return r;
}

static int read_key_file(unsigned char key[32], const char *path, char *err, size_t errcap)
{
    char text[2 * MCPD_CRYPTO_KEY_LEN + 4];
    struct stat sb;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), r = 0;

    if (fd < 0) {
        r = -errno;
        snprintf(err, errcap, "%s: cannot open the master key file: %s", path, strerror(errno));
        return r;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errcap, "%s: the master key file is not a regular file", path);
        r = MCPD_ECONFIG;
        goto out;
    }
    if ((sb.st_mode & 077) != 0) {
        snprintf(err, errcap,
                 "%s: the master key file is accessible by group or others (mode %03o); "
                 "run chmod 600 on it",
                 path, (unsigned)(sb.st_mode & 0777));
        r = MCPD_ECONFIG;
        goto out;
    }
    n = read(fd, text, sizeof(text));
    if (n < 0 || key_from_text(key, text, (size_t)n) != 0) {
        snprintf(err, errcap, "%s: the master key file must hold 64 hex digits", path);
        r = MCPD_ECONFIG;
    }
out:
    OPENSSL_cleanse(text, sizeof(text));
    close(fd);
    return r;
}

int mcpd_crypto_master_key(unsigned char key[32], const char *key_file, bool create, bool *created,
                           char *err, size_t errcap)
{
    const char *env = getenv(MCPD_MASTER_KEY_ENV);
    int r;

    if (created)
        *created = false;
    if (env != NULL && env[0] != '\0') {
        if (key_from_text(key, env, strlen(env)) != 0) {
            OPENSSL_cleanse(key, MCPD_CRYPTO_KEY_LEN);
            snprintf(err, errcap, "%s must be 64 hex digits (32 bytes)", MCPD_MASTER_KEY_ENV);
            return MCPD_ECONFIG;
        }
        return 0;
    }
    if (key_file == NULL) {
        snprintf(err, errcap, "no master key: set %s or master_key_file:", MCPD_MASTER_KEY_ENV);
        return MCPD_ECONFIG;
    }
    r = read_key_file(key, key_file, err, errcap);
    if (r == UV_ENOENT && create) {
        r = create_key_file(key, key_file, err, errcap);
        if (r == UV_EEXIST) /* lost a race with another process: use its key */
            r = read_key_file(key, key_file, err, errcap);
        else if (r == 0 && created)
            *created = true;
    } else if (r == UV_ENOENT) {
        snprintf(err, errcap, "%s: no master key file (and %s is not set)", key_file,
                 MCPD_MASTER_KEY_ENV);
    }
    if (r != 0)
        OPENSSL_cleanse(key, MCPD_CRYPTO_KEY_LEN);
    return r;
}

int mcpd_crypto_derive(unsigned char out[32], const unsigned char master[32], const char *info)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t n = 32;
    int ok =
        ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 &&
        EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) == 1 &&
        EVP_PKEY_CTX_set1_hkdf_key(ctx, master, 32) == 1 &&
        EVP_PKEY_CTX_add1_hkdf_info(ctx, (const unsigned char *)info, (int)strlen(info)) == 1 &&
        EVP_PKEY_derive(ctx, out, &n) == 1 && n == 32;

    EVP_PKEY_CTX_free(ctx);
    if (!ok)
        OPENSSL_cleanse(out, 32);
    return ok ? 0 : UV_EIO;
}
