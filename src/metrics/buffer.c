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

void fs_buffer_free(fs_buffer *buf)
{
    if (!buf)
        return;
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

char *fs__escape(const char *s, size_t n, bool quote, size_t *out_len)
{
    size_t extra = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\\' || s[i] == '\n' || (quote && s[i] == '"'))
            extra++;
    char *out = malloc(n + extra + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') {
            *o++ = '\\';
            *o++ = '\\';
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (quote && c == '"') {
            *o++ = '\\';
            *o++ = '"';
        } else {
            *o++ = c;
        }
    }
    *o = '\0';
    if (out_len)
        *out_len = (size_t)(o - out);
    return out;
}
