/*
 * Basic auth of the HTTP endpoint, and reading the TLS files.
 *
 * Both the user name and the password are compared as SHA-256 digests with
 * a constant-time comparison, so neither their content nor their length
 * shows in the time a refusal takes. A crypt(3) hash (bcrypt "$2b$", or
 * "$5$", "$6$", "$y$": whatever the system's libxcrypt verifies) is checked
 * with crypt_rn(); since bcrypt costs tens of milliseconds by design, the
 * digest of the last password it accepted is remembered and a scraper
 * repeating that password is answered without recomputing it.
 */
#include "common/internal.h"
#include "http/http_internal.h"

#include <crypt.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest TLS file accepted: a certificate chain is a few KiB. */
#define MAX_TLS_FILE (1024 * 1024)

void fs__http_sha256(const void *data, size_t len, uint8_t out[32])
{
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out) != 0)
        memset(out, 0, 32); /* cannot happen with GnuTLS' built-in SHA-256 */
}

static bool digest_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    volatile uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool parse_sha256_hex(const char *hex, uint8_t out[32])
{
    if (strlen(hex) != 64)
        return false;
    for (size_t i = 0; i < 32; i++) {
        int hi = hexval((unsigned char)hex[2 * i]);
        int lo = hexval((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    return true;
}

/* A complete hash, not only a setting: hashing with it gives a string as long. */
static bool whole_crypt_hash(const char *hash)
{
    struct crypt_data *data = calloc(1, sizeof *data);
    if (!data)
        return false;
    const char *out = crypt_rn("", hash, data, (int)sizeof *data);
    bool ok = out && out[0] != '*' && strlen(out) == strlen(hash);
    free(data);
    return ok;
}

int fs__http_auth_init(fs__http_auth *a, const char *user, const char *password, const char *hash)
{
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->cache_lock, NULL);
    if (!user) {
        FS_CHECK_ARG(!password && !hash,
                     "http: basic_auth_password or basic_auth_hash set without basic_auth_user");
        return FS_OK;
    }
    FS_CHECK_ARG(user[0] && !strchr(user, ':'),
                 "http: basic_auth_user must be non-empty and contain no ':'");
    FS_CHECK_ARG(!password != !hash,
                 "http: basic auth wants exactly one of basic_auth_password and basic_auth_hash");
    fs__http_sha256(user, strlen(user), a->user_digest);
    if (password) {
        fs__http_sha256(password, strlen(password), a->pass_digest);
    } else if (strncmp(hash, "sha256:", 7) == 0) {
        if (!parse_sha256_hex(hash + 7, a->pass_digest))
            return fs__error(FS_EINVAL, "http: basic_auth_hash \"sha256:...\" wants 64 hex "
                                        "digits of SHA-256(password)");
    } else {
        if (crypt_checksalt(hash) != CRYPT_SALT_OK || !whole_crypt_hash(hash))
            return fs__error(FS_EINVAL,
                             "http: basic_auth_hash is neither \"sha256:HEX\" nor a crypt(3) hash "
                             "(bcrypt $2b$...) that this system's libcrypt verifies");
        a->crypt_hash = strdup(hash);
        if (!a->crypt_hash)
            return fs__error(FS_ENOMEM, "http: out of memory");
    }
    a->enabled = true;
    return FS_OK;
}

void fs__http_auth_destroy(fs__http_auth *a)
{
    free(a->crypt_hash);
    pthread_mutex_destroy(&a->cache_lock);
    memset(a, 0, sizeof *a);
}

static bool crypt_matches(fs__http_auth *a, const char *password, const uint8_t digest[32])
{
    pthread_mutex_lock(&a->cache_lock);
    bool hit = a->cached && digest_equal(digest, a->cache_digest, 32);
    pthread_mutex_unlock(&a->cache_lock);
    if (hit)
        return true;
    struct crypt_data *data = calloc(1, sizeof *data);
    if (!data)
        return false;
    const char *out = crypt_rn(password, a->crypt_hash, data, (int)sizeof *data);
    size_t n = strlen(a->crypt_hash);
    bool ok = out && strlen(out) == n &&
              digest_equal((const uint8_t *)out, (const uint8_t *)a->crypt_hash, n);
    free(data);
    if (ok) {
        pthread_mutex_lock(&a->cache_lock);
        memcpy(a->cache_digest, digest, 32);
        a->cached = true;
        pthread_mutex_unlock(&a->cache_lock);
    }
    return ok;
}

bool fs__http_auth_check(fs__http_auth *a, const char *user, const char *password)
{
    if (!a->enabled)
        return true;
    if (!user || !password)
        return false;
    uint8_t ud[32], pd[32];
    fs__http_sha256(user, strlen(user), ud);
    fs__http_sha256(password, strlen(password), pd);
    bool user_ok = digest_equal(ud, a->user_digest, 32);
    /* The password is checked whatever the user: a refusal takes as long
     * for an unknown user as for a wrong password. */
    bool pass_ok =
        a->crypt_hash ? crypt_matches(a, password, pd) : digest_equal(pd, a->pass_digest, 32);
    return user_ok & pass_ok;
}

int fs__http_read_file(const char *what, const char *path, char **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fs__error(FS_EIO, "http: cannot open %s \"%s\": %s", what, path, strerror(errno));
    char *buf = malloc(MAX_TLS_FILE + 1);
    if (!buf) {
        fclose(f);
        return fs__error(FS_ENOMEM, "http: out of memory reading %s", what);
    }
    size_t n = fread(buf, 1, MAX_TLS_FILE + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > MAX_TLS_FILE || n == 0) {
        free(buf);
        return fs__error(err ? FS_EIO : FS_EINVAL, "http: %s \"%s\" is %s", what, path,
                         err ? "unreadable"
                         : n ? "larger than 1 MiB"
                             : "empty");
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        free(buf);
        return fs__error(FS_EINVAL, "http: %s \"%s\" is not PEM text", what, path);
    }
    char *shrunk = realloc(buf, n + 1);
    *out = shrunk ? shrunk : buf;
    return FS_OK;
}
