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

size_t fs__escape_into(char *out, const char *s, size_t n, bool quote)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        const char *rep = NULL;
        size_t take = 1;
        if (c == '\\')
            rep = "\\\\";
        else if (c == '\n')
            rep = "\\n";
        else if (quote && c == '"')
            rep = "\\\"";
        else if (c >= 0x80 && (take = utf8_len(u + i, n - i)) == 0) {
            rep = "\xEF\xBF\xBD"; /* U+FFFD for a byte that is not UTF-8 */
            take = 1;
        }
        if (rep) {
            size_t rl = strlen(rep);
            if (out)
                memcpy(out + o, rep, rl);
            o += rl;
        } else {
            if (out)
                memcpy(out + o, s + i, take);
            o += take;
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
