/*
 * Label keys: label values with their lengths and hash, computed once and
 * used for lookups in several families (see metrics.h). The hash is the one
 * lookups by values compute (metrics_internal.h), so both find the same child.
 */
#include "metrics_internal.h"

static void key_unusable(fs_label_key *k)
{
    k->count = FS_KEY_UNUSABLE;
    k->packed_len = 0; /* read first by the lookup's fast path (valgrind saw it unset) */
}

int fs_label_key_init(fs_label_key *k, size_t count, const char *const *values)
{
    FS_CHECK_ARG(k, "fs_label_key_init: key is NULL");
    key_unusable(k);
    FS_CHECK_ARG(count <= FS_LABEL_KEY_MAX,
                 "fs_label_key_init: %zu values, a label key holds at most %d", count,
                 FS_LABEL_KEY_MAX);
    FS_CHECK_ARG(count == 0 || values, "fs_label_key_init: values are NULL (count %zu)", count);
    size_t bad = fs__key_fill(k, count, values);
    if (FS_UNLIKELY(bad != count))
        return fs__error(FS_EINVAL, "fs_label_key_init: value %zu is %s", bad,
                         values[bad] ? "too long (4 GiB or more)" : "NULL");
    return FS_OK;
}

int fs_label_key_extend(fs_label_key *dst, const fs_label_key *base, const char *value)
{
    FS_CHECK_ARG(dst, "fs_label_key_extend: dst is NULL");
    if (!base) {
        key_unusable(dst);
        return fs__error(FS_EINVAL, "fs_label_key_extend: base is NULL");
    }
    uint32_t n = base->count;
    const char *why = NULL;
    size_t len = 0;
    if (n == FS_KEY_UNUSABLE)
        why = "the base key is unusable (its init or extend failed)";
    else if (n >= FS_LABEL_KEY_MAX)
        why = "the base key is full (it holds FS_LABEL_KEY_MAX values)";
    else if (!value)
        why = "the value is NULL";
    else if ((len = strlen(value)) > UINT32_MAX)
        why = "the value is too long (4 GiB or more)";
    if (why) {
        key_unusable(dst);
        return fs__error(FS_EINVAL, "fs_label_key_extend: %s", why);
    }
    uint64_t h = fs__hash_step(base->state, value, len);
    /* A base with values but no packed copy: they did not fit, nor will these. */
    size_t packed = base->packed_len;
    bool fits = n == 0 || packed != 0;
    if (dst != base) {
        /* Fixed-size blocks of 4 (inline moves; a variable-length memcpy is
         * compiled to `rep movs`, slow to start): at most 3 spare entries of
         * the arrays are copied, still inside them. */
        _Static_assert(FS_LABEL_KEY_MAX % 4 == 0, "whole blocks of 4");
        for (uint32_t i = 0; i < n; i += 4) {
            memcpy(&dst->values[i], &base->values[i], 4 * sizeof base->values[0]);
            memcpy(&dst->lens[i], &base->lens[i], 4 * sizeof base->lens[0]);
        }
        _Static_assert(FS_LABEL_KEY_BYTES % 32 == 0, "whole blocks of 32");
        for (size_t i = 0; i < packed; i += 32)
            memcpy(dst->packed + i, base->packed + i, 32);
    }
    if (fits && len < FS_LABEL_KEY_BYTES - packed) {
        fs__copy_value(dst->packed + packed, value, len);
        dst->packed[packed + len] = '\0';
        packed += len + 1;
    } else {
        packed = 0; /* the values do not fit: lookups compare them one by one */
    }
    dst->values[n] = value;
    dst->lens[n] = (uint32_t)len;
    dst->packed_len = (uint32_t)packed;
    dst->state = h;
    dst->hash = fs__hash_finish(h);
    dst->count = n + 1;
    return FS_OK;
}
