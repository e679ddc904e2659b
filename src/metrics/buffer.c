/* fs_buffer: a growable byte buffer with amortised (doubling) growth. */
#include "metrics_internal.h"

#include <stdlib.h>

int fs__buf_grow(fs_buffer *b, size_t extra)
{
    size_t need = b->len + extra + 1; /* room for the terminating NUL */
    if (need < b->len)
        return fs__error(FS_ENOMEM, "buffer size overflow");
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return fs__error(FS_ENOMEM, "buffer size overflow");
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p)
        return fs__error(FS_ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
    b->data = p;
    b->cap = cap;
    return FS_OK;
}

void *fs__array_grow(void *arr, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need <= *cap)
        return arr;
    size_t n = *cap ? *cap : first;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return NULL;
        n *= 2;
    }
    if (n > SIZE_MAX / size)
        return NULL;
    void *p = realloc(arr, n * size);
    if (p)
        *cap = n;
    return p;
}

void fs_buffer_free(fs_buffer *buf)
{
    if (!buf)
        return;
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

/* Length of the valid UTF-8 sequence starting s[0] (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    /* overlong forms, UTF-16 surrogates, beyond U+10FFFF */
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return len;
}

static size_t put(char *out, size_t o, const char *p, size_t n)
{
    if (out)
        memcpy(out + o, p, n);
    return n;
}

size_t fs__escape_into(char *out, const char *s, size_t n, bool quote)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        size_t take = 1;
        if (c == '\\') {
            o += put(out, o, "\\\\", 2);
        } else if (c == '\n') {
            o += put(out, o, "\\n", 2);
        } else if (quote && c == '"') {
            o += put(out, o, "\\\"", 2);
        } else if (c < 0x80) {
            o += put(out, o, s + i, 1);
        } else if ((take = utf8_len(u + i, n - i)) == 0) {
            /* not UTF-8: U+FFFD and the byte in hex, "\xFE" -> "\uFFFDFE" */
            char rep[5] = {'\xEF', '\xBF', '\xBD', hex[c >> 4], hex[c & 15]};
            o += put(out, o, rep, 5);
            take = 1;
        } else if (take == 3 && memcmp(u + i, "\xEF\xBF\xBD", 3) == 0) {
            o += put(out, o, "\xEF\xBF\xBD\xEF\xBF\xBD", 6); /* U+FFFD itself: doubled */
        } else {
            o += put(out, o, s + i, take);
        }
        i += take;
    }
    return o;
}

char *fs__escape(const char *s, size_t n, bool quote, size_t *out_len)
{
    size_t len = fs__escape_into(NULL, s, n, quote);
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    fs__escape_into(out, s, n, quote);
    out[len] = '\0';
    if (out_len)
        *out_len = len;
    return out;
}
