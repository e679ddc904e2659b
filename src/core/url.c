/*
 * Helpers for adapters: URL parsing, error recording and logging.
 */
#include "core/core.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The byte of the %-escape at s[i] (i < n), or -1 when it is malformed. */
static int escape_at(const char *s, size_t i, size_t n)
{
    int hi = i + 1 < n ? fs_kit_hexval((unsigned char)s[i + 1]) : -1;
    int lo = i + 2 < n ? fs_kit_hexval((unsigned char)s[i + 2]) : -1;
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/*
 * Copy [s, s+n) into a new string, percent-decoded when `decode`. NULL with
 * *bad set on a malformed escape or a %00 (a NUL would cut the string
 * short: "pass%00word" must not become "pass"), or NULL with *oom set when
 * out of memory.
 */
static char *copy_n(const char *s, size_t n, bool decode, bool *bad, bool *oom)
{
    char *out = malloc(n + 1);
    if (!out) {
        *oom = true;
        return NULL;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (decode && s[i] == '%') {
            int c = escape_at(s, i, n);
            if (c <= 0) {
                *bad = true;
                free(out);
                return NULL;
            }
            out[j++] = (char)c;
            i += 2;
            continue;
        }
        out[j++] = s[i];
    }
    out[j] = '\0';
    return out;
}

/* True when every %-escape in [s, s+n) is well formed and none is %00. */
static bool escapes_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '%' && escape_at(s, i, n) <= 0)
            return false;
    return true;
}

void fs_url_free(fs_url *u)
{
    if (!u)
        return;
    free(u->scheme);
    free(u->user);
    free(u->password);
    free(u->hosts);
    free(u->host);
    free(u->path);
    free(u->query);
    memset(u, 0, sizeof *u);
    u->port = -1;
}

/* fs_url_parse's failure: free what was parsed and record why. */
static int url_fail(fs_url *out, const char *url, const char *why)
{
    fs_url_free(out);
    return fs__error(FS_EINVAL, "malformed URL '%s': %s", url, why);
}

int fs_url_parse(const char *url, fs_url *out)
{
    FS_CHECK_ARG(out, "fs_url_parse: out is NULL");
    memset(out, 0, sizeof *out);
    out->port = -1;
    FS_CHECK_ARG(url, "fs_url_parse: url is NULL");
    const char *sep = strstr(url, "://");
    if (!sep || sep == url)
        return fs__error(FS_EINVAL, "malformed URL '%s': expected SCHEME://...", url);
    for (const char *c = url; c < sep; c++)
        if (!isalnum((unsigned char)*c) && *c != '+' && *c != '-' && *c != '.')
            return fs__error(FS_EINVAL, "malformed URL '%s': invalid scheme", url);
    /* RFC 3986: a URL holds no space or control character; they are %-escaped. */
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return fs__error(FS_EINVAL,
                             "malformed URL: a space or control character (0x%02x) at offset %zu; "
                             "%%-escape it",
                             (unsigned)(unsigned char)*c, (size_t)(c - url));
    bool bad = false, oom = false;
    out->scheme = copy_n(url, (size_t)(sep - url), false, &bad, &oom);
    const char *p = sep + 3;
    const char *end_auth = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *c = p; c < end_auth; c++)
        if (*c == '@')
            at = c;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *user_end = colon ? colon : at;
        out->user = copy_n(p, (size_t)(user_end - p), true, &bad, &oom);
        if (colon && out->user)
            out->password = copy_n(colon + 1, (size_t)(at - colon - 1), true, &bad, &oom);
        if (bad)
            return url_fail(out, url, "bad %-escape (or a %00) in the credentials");
        p = at + 1;
    }
    out->hosts = copy_n(p, (size_t)(end_auth - p), false, &bad, &oom);
    /* the first host */
    const char *first_end = memchr(p, ',', (size_t)(end_auth - p));
    if (!first_end)
        first_end = end_auth;
    if (first_end > p) {
        const char *hs = p, *he, *port = NULL;
        if (*hs == '[') {
            const char *rb = memchr(hs, ']', (size_t)(first_end - hs));
            if (!rb)
                return url_fail(out, url, "unterminated '[' in the host");
            out->host = copy_n(hs + 1, (size_t)(rb - hs - 1), false, &bad, &oom);
            he = rb + 1;
            if (he < first_end) {
                if (*he != ':')
                    return url_fail(out, url, "junk after ']'");
                port = he + 1;
            }
        } else {
            const char *colon = memchr(hs, ':', (size_t)(first_end - hs));
            he = colon ? colon : first_end;
            out->host = copy_n(hs, (size_t)(he - hs), false, &bad, &oom);
            if (colon)
                port = colon + 1;
        }
        if (port) {
            long v = 0;
            if (port == first_end)
                return url_fail(out, url, "empty port");
            for (const char *c = port; c < first_end; c++) {
                if (!isdigit((unsigned char)*c) || v > 65535)
                    return url_fail(out, url, "invalid port");
                v = v * 10 + (*c - '0');
            }
            if (v > 65535 || v == 0) {
                fs_url_free(out);
                return fs__error(FS_EINVAL, "malformed URL '%s': port %ld out of range (1-65535)",
                                 url, v);
            }
            out->port = (int)v;
        }
    }
    p = end_auth;
    if (*p == '/') {
        size_t n = strcspn(p + 1, "?#");
        out->path = copy_n(p + 1, n, false, &bad, &oom);
        p += 1 + n;
    }
    if (*p == '?') {
        size_t n = strcspn(p + 1, "#");
        if (!escapes_valid(p + 1, n))
            return url_fail(out, url, "bad %-escape (or a %00) in the query");
        out->query = copy_n(p + 1, n, false, &bad, &oom);
    }
    if (oom) {
        fs_url_free(out);
        return fs__error(FS_ENOMEM, "out of memory parsing a URL");
    }
    return FS_OK;
}

/* One parameter of a query string such as "a=1&flag&b=x%20y". */
typedef struct query_param {
    const char *name;
    size_t name_len;
    const char *value; /* raw (%-escapes kept); NULL when the parameter has no '=' */
    size_t value_len;
} query_param;

/* The parameter at `*p` in a query string, moving `*p` past it; false at the end. */
static bool query_next(const char **p, query_param *out)
{
    const char *s = *p;
    if (!*s)
        return false;
    size_t n = strcspn(s, "&");
    const char *eq = memchr(s, '=', n);
    out->name = s;
    out->name_len = eq ? (size_t)(eq - s) : n;
    out->value = eq ? eq + 1 : NULL;
    out->value_len = eq ? n - out->name_len - 1 : 0;
    *p = s[n] == '&' ? s + n + 1 : s + n;
    return true;
}

bool fs_url_query_next(const fs_url *url, size_t *pos, const char **name, size_t *name_len,
                       const char **value, size_t *value_len)
{
    if (!url || !url->query || !pos || *pos > strlen(url->query))
        return false;
    const char *p = url->query + *pos;
    query_param q;
    if (!query_next(&p, &q))
        return false;
    *pos = (size_t)(p - url->query);
    if (name)
        *name = q.name;
    if (name_len)
        *name_len = q.name_len;
    if (value)
        *value = q.value;
    if (value_len)
        *value_len = q.value_len;
    return true;
}

int fs_url_query_get(const fs_url *url, const char *key, char **value)
{
    FS_CHECK_ARG(value, "fs_url_query_get: value is NULL");
    *value = NULL;
    FS_CHECK_ARG(url && key, "fs_url_query_get: url and key are required");
    if (!url->query)
        return FS_ENOTFOUND;
    size_t klen = strlen(key);
    const char *p = url->query;
    query_param q;
    while (query_next(&p, &q)) {
        if (q.name_len != klen || memcmp(q.name, key, klen) != 0)
            continue;
        bool bad = false, oom = false;
        char *v = q.value ? copy_n(q.value, q.value_len, true, &bad, &oom)
                          : copy_n("", 0, false, &bad, &oom);
        if (!v)
            return fs__error(oom ? FS_ENOMEM : FS_EINVAL, "query parameter '%s': %s", key,
                             oom ? "out of memory" : "bad %-escape (or a %00)");
        *value = v;
        return FS_OK;
    }
    return FS_ENOTFOUND;
}

char *fs_url_query_param(const fs_url *url, const char *key)
{
    char *v = NULL;
    fs_url_query_get(url, key, &v);
    return v;
}

int fs_url_check_query(const fs_url *url, const char *what, const char *const *known)
{
    FS_CHECK_ARG(url && known, "fs_url_check_query: url and known are required");
    if (!what)
        what = url->scheme ? url->scheme : "broker";
    const char *p = url->query ? url->query : "";
    query_param q;
    while (query_next(&p, &q)) {
        size_t i = 0;
        while (known[i] && (strlen(known[i]) != q.name_len || memcmp(known[i], q.name, q.name_len)))
            i++;
        if (!known[i]) {
            char list[256] = "";
            for (size_t k = 0; known[k]; k++) {
                size_t n = strlen(list);
                snprintf(list + n, sizeof list - n, "%s%s", k ? ", " : "", known[k]);
            }
            return fs__error(FS_EINVAL, "%s URL: unknown parameter '%.*s' (known: %s)", what,
                             (int)q.name_len, q.name, known[0] ? list : "none");
        }
        /* Given twice: which one would win is anybody's guess. */
        const char *r = p;
        query_param later;
        while (query_next(&r, &later))
            if (later.name_len == q.name_len && memcmp(later.name, q.name, q.name_len) == 0)
                return fs__error(FS_EINVAL, "%s URL: parameter '%.*s' is given more than once",
                                 what, (int)q.name_len, q.name);
    }
    return FS_OK;
}

bool fs_url_parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    if (!s || n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (v > max)
        return false;
    if (out)
        *out = v;
    return true;
}

int fs_url_query_uint(const fs_url *url, const char *key, uint64_t max, uint64_t *out)
{
    FS_CHECK_ARG(out, "fs_url_query_uint: out is NULL");
    char *v = NULL;
    int rc = fs_url_query_get(url, key, &v);
    if (rc != FS_OK)
        return rc;
    uint64_t n;
    if (!fs_url_parse_uint(v, strlen(v), max, &n))
        rc = fs__error(FS_EINVAL,
                       "query parameter %s=%s: expected a whole number from 0 to %llu (digits "
                       "only)",
                       key, v, (unsigned long long)max);
    else
        *out = n;
    free(v);
    return rc;
}

int fs_url_query_text(const fs_url *url, const char *key, char **value)
{
    FS_CHECK_ARG(value, "fs_url_query_text: value is NULL");
    int rc = fs_url_query_get(url, key, value);
    if (rc != FS_OK)
        return rc;
    for (const unsigned char *c = (const unsigned char *)*value; *c; c++)
        if (*c < 0x20 || *c == 0x7f) {
            rc =
                fs__error(FS_EINVAL, "query parameter '%s': control character 0x%02x at offset %zu",
                          key, (unsigned)*c, (size_t)(c - (const unsigned char *)*value));
            free(*value);
            *value = NULL;
            return rc;
        }
    return FS_OK;
}
