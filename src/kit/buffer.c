/* kit/buffer.c - see buffer.h. */
#include "kit/buffer.h"

#include "faststream/adapter.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int fs_kit_grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return FS_OK;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    if (n > SIZE_MAX / size)
        return fs_adapter_error(FS_ENOMEM, "array size overflow");
    void *p = realloc(*arr, n * size);
    if (!p)
        return fs_adapter_error(FS_ENOMEM, "out of memory (%zu elements)", n);
    *arr = p;
    *cap = n;
    return FS_OK;
}

int fs_kit_buf_reserve(fs_kit_buf *b, size_t extra)
{
    if (b->cap - b->len > extra)
        return FS_OK;
    size_t need = b->len + extra + 1;
    if (need < b->len)
        return fs_adapter_error(FS_ENOMEM, "buffer size overflow");
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return fs_adapter_error(FS_ENOMEM, "out of memory (%zu bytes)", cap);
    b->data = p;
    b->cap = cap;
    return FS_OK;
}

int fs_kit_buf_put(fs_kit_buf *b, const void *p, size_t n)
{
    int rc = fs_kit_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return FS_OK;
}

void fs_kit_buf_free(fs_kit_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
