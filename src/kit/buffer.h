/*
 * kit/buffer.h - the growable byte buffer and array growth, reused between
 * calls (no allocation once large enough). Internal (not installed); part
 * of the adapter kit (src/kit). Failures record a message with
 * fs_adapter_error and return FS_ENOMEM.
 */
#ifndef FS_KIT_BUFFER_H
#define FS_KIT_BUFFER_H

#include <stddef.h>

/** A byte buffer; zero-initialise it. `data` is NUL-terminated after every put. */
typedef struct fs_kit_buf {
    char *data;
    size_t len;
    size_t cap;
} fs_kit_buf;

/** Make room for `extra` more bytes (and the NUL after them). */
int fs_kit_buf_reserve(fs_kit_buf *b, size_t extra);

/** Append bytes. */
int fs_kit_buf_put(fs_kit_buf *b, const void *p, size_t n);

/** Free the bytes and reset the buffer. */
void fs_kit_buf_free(fs_kit_buf *b);

/**
 * Grow the array *arr of *cap elements of `size` bytes to hold at least
 * `need` (doubling; no-op when it already does). FS_ENOMEM leaves it as it was.
 */
int fs_kit_grow(void **arr, size_t *cap, size_t need, size_t size);

#endif
