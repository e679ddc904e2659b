/*
 * Internal structures of the Prometheus client. Not installed.
 *
 * Layout (like Prometheus' Go client): a registry holds families sorted by
 * name; a family holds its children in a lock-free open-addressing hash table
 * (for lookups by label values, table.h) and in its render order: a sorted
 * array plus the children created since the last scrape, which the scrape
 * sorts in (family.c). Children live in per-family arenas (child.c). Every
 * child starts with a read-only header whose first cache line is all a
 * lookup reads; the owner's cell follows on the second line, so updates never
 * bounce the line that lookups read.
 *
 * Memory reclamation is deliberately simple: nothing reachable by a reader
 * (tables, removed children, unregistered families) is freed before the
 * registry itself, so kept handles and concurrent lookups never see freed
 * memory.
 */
#ifndef FS_METRICS_INTERNAL_H
#define FS_METRICS_INTERNAL_H

#include "common/internal.h"
#include "faststream/exposition.h"
#include "faststream/metrics.h"
#include "kit/seqlock.h"
#include "kit/slot.h"
#include "kit/str.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

#if defined(__GNUC__)
#define FS_HIDDEN __attribute__((visibility("hidden")))
#define FS_ALWAYS_INLINE inline __attribute__((always_inline))
#define FS_NOINLINE __attribute__((noinline))
#else
#define FS_HIDDEN
#define FS_ALWAYS_INLINE inline
#define FS_NOINLINE
#endif
/* FS_LIKELY / FS_UNLIKELY and FS_TLS_MODEL: kit/compiler.h, through common/internal.h. */

#define FS_CACHE_LINE 64

/** Room fs__format_double and fs__format_le may need. */
#define FS_NUM_MAX 40

/** Most label names a family may have. */
#define FS_MAX_LABELS 32

/* ------------------------------------------------------------------------ */
/* Thread tokens and shards                                                 */
/*
 * Every counter and histogram child has one cell (the owner's) inline: the
 * first thread that updates it owns it and updates it with a plain relaxed
 * load and store. A thread is known by its token, its kit slot (kit/slot.h):
 * 1 .. fs_kit_slot_count() while it holds one of the exclusive slots (taken
 * on its first update, given back when it exits), FS_TOKEN_SHARED beyond. Other exclusive threads
 * update the child in a shards array allocated on the first such update (one
 * cache-line-padded cell per token), again with plain stores: a child updated
 * from one thread costs no memory for shards. Threads without an exclusive
 * token (and every update when that array cannot be allocated, and every
 * update of an overflow child) use the child's shared cell with atomic
 * read-modify-writes. A reader sums the cells with relaxed loads.
 */

/** No owner yet (no token equals it). */
#define FS_TOKEN_NONE UINT32_MAX
/** The token of threads beyond the exclusive ones; never owns a cell. */
#define FS_TOKEN_SHARED FS_KIT_SLOT_SHARED
/** The owner of a child that must never be owned (an overflow child). */
#define FS_TOKEN_NEVER (UINT32_MAX - 2)

/** At most this many exclusive tokens. */
#define FS_MAX_SHARDS FS_KIT_MAX_SLOTS

/* ------------------------------------------------------------------------ */
/* Atomic doubles (stored as their bit pattern in a uint64).                */

static inline double fs__bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static inline uint64_t fs__double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static inline void fs__atomic_add_double(_Atomic uint64_t *bits, double v)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old,
                                                  fs__double_to_bits(fs__bits_to_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

static inline double fs__atomic_load_double(const _Atomic uint64_t *bits)
{
    return fs__bits_to_double(atomic_load_explicit((_Atomic uint64_t *)bits, memory_order_relaxed));
}

/* ------------------------------------------------------------------------ */
/* Hashing label values (shared by fs_label_key and the lookups by values,   */
/* so that both find the same child).                                       */

_Static_assert(FS_LABEL_KEY_MAX == FS_MAX_LABELS, "a label key holds any family's values");

/** Marks a label key whose init or extend failed. */
#define FS_KEY_UNUSABLE UINT32_MAX

/* Fixed-size loads: fs_kit_load64 / fs_kit_load32 (kit/str.h); never past the string's end. */
static inline void fs__store64(char *p, uint64_t w)
{
    memcpy(p, &w, sizeof w);
}

static inline void fs__store32(char *p, uint64_t w)
{
    uint32_t v = (uint32_t)w;
    memcpy(p, &v, sizeof v);
}

/* Copy n bytes of a label value: fixed-size (overlapping) moves up to 16
 * bytes, memcpy beyond. */
static inline void fs__copy_value(char *d, const char *s, size_t n)
{
    if (n > 16) {
        memcpy(d, s, n);
    } else if (n >= 8) {
        uint64_t a = fs_kit_load64(s), b = fs_kit_load64(s + n - 8);
        fs__store64(d, a);
        fs__store64(d + n - 8, b);
    } else if (n >= 4) {
        uint64_t a = fs_kit_load32(s), b = fs_kit_load32(s + n - 4);
        fs__store32(d, a);
        fs__store32(d + n - 4, b);
    } else if (n > 0) {
        char a = s[0], b = s[n / 2], c = s[n - 1];
        d[0] = a;
        d[n / 2] = b;
        d[n - 1] = c;
    }
}

/* Equality of label bytes: fs_kit_mem_equal (inline for every packed key) and its _short twin. */
_Static_assert(FS_LABEL_KEY_BYTES == FS_KIT_MEM_INLINE, "packed keys are compared inline");

static inline uint64_t fs__rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

#define FS_HASH_K1 0x9E3779B97F4A7C15ULL
#define FS_HASH_K2 0xC2B2AE3D27D4EB4FULL
#define FS_HASH_K3 0x165667B19E3779F9ULL

/** The hash state before any value. */
#define FS_HASH_SEED 0x243F6A8885A308D3ULL

/*
 * One value: short strings are read with two overlapping loads (first and
 * last 8, 4 or 1 bytes), longer ones 8 bytes at a time. The two halves are
 * multiplied independently, so the CPU overlaps the work. The length is mixed
 * in, so that "a","bc" and "ab","c" differ.
 */
static inline uint64_t fs__hash_value(const char *s, size_t n)
{
    uint64_t a, b;
    if (n >= 8) {
        a = fs_kit_load64(s);
        b = fs_kit_load64(s + n - 8);
        for (size_t i = 8; i + 8 < n; i += 8)
            a = fs__rotl(a * FS_HASH_K1, 29) ^ fs_kit_load64(s + i);
    } else if (n >= 4) {
        a = fs_kit_load32(s);
        b = fs_kit_load32(s + n - 4);
    } else if (n > 0) {
        a = (uint64_t)(unsigned char)s[0] << 16 | (uint64_t)(unsigned char)s[n / 2] << 8;
        b = (unsigned char)s[n - 1];
    } else {
        a = b = 0;
    }
    return (a ^ FS_HASH_K2) * FS_HASH_K1 ^ fs__rotl((b ^ n) * FS_HASH_K3, 31);
}

/** The hash state after one more value (of length n). */
static inline uint64_t fs__hash_step(uint64_t state, const char *s, size_t n)
{
    return fs__rotl(state * FS_HASH_K3, 23) ^ fs__hash_value(s, n);
}

/**
 * The hash of a state, with every bit of it reaching the low (index) bits:
 * the two halves of a 128-bit product folded together (as wyhash does; one
 * multiplication), or murmur3's finaliser where there is no 128-bit type.
 */
static inline uint64_t fs__hash_finish(uint64_t h)
{
#ifdef __SIZEOF_INT128__
    __uint128_t m = (__uint128_t)(h ^ FS_HASH_K2) * FS_HASH_K1;
    return (uint64_t)m ^ (uint64_t)(m >> 64);
#else
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
#endif
}

/*
 * Fill key k with values[0..count) (count <= FS_LABEL_KEY_MAX): lengths,
 * hash, and the packed copy when the values fit. The one place where label
 * values are hashed, for keys and for lookups by values alike. Returns
 * count, or the index of a value that is NULL or of 4 GiB or more (k is
 * then unusable).
 */
static FS_ALWAYS_INLINE size_t fs__key_fill(fs_label_key *k, size_t count,
                                            const char *const *values)
{
    uint64_t h = FS_HASH_SEED;
    size_t packed = 0;
    bool fits = true;
    for (size_t i = 0; i < count; i++) {
        const char *v = values[i];
        size_t len;
        if (FS_UNLIKELY(!v || (len = strlen(v)) > UINT32_MAX)) {
            k->count = FS_KEY_UNUSABLE;
            return i;
        }
        k->values[i] = v;
        k->lens[i] = (uint32_t)len;
        h = fs__hash_step(h, v, len);
        if (FS_LIKELY(fits) && len < FS_LABEL_KEY_BYTES - packed) {
            fs__copy_value(k->packed + packed, v, len);
            k->packed[packed + len] = '\0';
            packed += len + 1;
        } else {
            fits = false;
        }
    }
    k->packed_len = fits ? (uint32_t)packed : 0;
    k->state = h;
    k->hash = fs__hash_finish(h);
    k->count = (uint32_t)count;
    return count;
}

/* ------------------------------------------------------------------------ */
/* Families and children                                                    */

typedef struct fs_family fs_family;

/** Packed label values up to this many bytes live in the child's first cache line. */
#define FS_CHILD_INLINE 48

/** fs_child.flags */
#define FS_CHILD_DEAD 1u     /* removed or cleared: no longer exposed */
#define FS_CHILD_OVERFLOW 2u /* the overflow child of a family past its limit */

/** The label value of every label of an overflow child. */
#define FS_OVERFLOW_VALUE "__overflow__"

/**
 * The header every child starts with (children are cache-line aligned, in
 * their family's arena). Its first cache line holds what a lookup reads: the
 * hash and, when they fit, the packed values themselves, so a lookup that
 * hits reads one line of the child and follows no pointer. The second line
 * holds what rendering and updates read; the owner's cell follows on a line
 * of its own (a gauge's value, updated atomically by all, on the second):
 * updates never write the line lookups read.
 */
typedef struct fs_child {
    uint64_t hash;
    uint32_t values_len; /* bytes of the packed values, NULs included (UINT32_MAX: 4 GiB+) */
    uint32_t labels_len;
    char inline_values[FS_CHILD_INLINE]; /* the packed values when values_len fits */
    fs_family *fam;
    const char *values;     /* packed "v1\0v2\0..." (inline_values when they fit) */
    const char *labels;     /* escaped `k1="v1",k2="v2"` (no braces), "" without labels */
    int64_t created_us;     /* Unix microseconds at creation (the _created sample) */
    _Atomic uint32_t owner; /* the token owning the inline cell, FS_TOKEN_NONE/NEVER */
    _Atomic uint32_t flags; /* FS_CHILD_* (written under the family lock) */
    void *_Atomic shards;   /* the exclusive cells of other threads, or NULL */
} fs_child;

_Static_assert(offsetof(fs_child, fam) == FS_CACHE_LINE, "lookups read the first line only");
_Static_assert(sizeof(fs_child) == FS_CACHE_LINE + 48, "16 bytes of the second line left");

/** One counter cell: integer and float parts (Go's valInt/valBits). */
typedef struct fs_counter_cell {
    _Atomic uint64_t n;
    _Atomic uint64_t fbits;
} fs_counter_cell;

/** A counter cell alone on its cache line (in a shards array). */
typedef struct fs_counter_shard {
    alignas(FS_CACHE_LINE) fs_counter_cell cell;
} fs_counter_shard;

/*
 * A counter child. The owner's cell has the third line to itself: the second
 * holds what every other thread reads on each update (owner, shards), which
 * the owner's stores must not keep taking away from them.
 */
struct fs_counter {
    fs_child hdr;
    fs_counter_cell shared;                     /* atomic read-modify-writes only */
    alignas(FS_CACHE_LINE) fs_counter_cell own; /* plain stores by the owner */
};

_Static_assert(sizeof(struct fs_counter) == 3 * FS_CACHE_LINE, "three lines per counter");

FS_HIDDEN double fs__counter_total(const struct fs_counter *c);

struct fs_gauge {
    fs_child hdr;
    _Atomic uint64_t bits; /* on the second line */
};

/*
 * A histogram child. A shard is `stride` words (whole cache lines): [0] the
 * observations begun, [1] those done, [2 .. 2+nb] the bucket counts (nb =
 * the +Inf bucket; per bucket, not cumulative), [nb+3] the sum's bits. A
 * writer bumps begun, writes, then publishes done (release); a reader takes
 * a shard when done equals begun before and begun is unchanged after its
 * reads (a seqlock): it never sees half an observation and never blocks a
 * writer. The owner's shard and the shared one follow the header.
 */
struct fs_histogram {
    fs_child hdr;
    const double *bounds;
    uint32_t nb;     /* finite bounds */
    uint32_t stride; /* words per shard, a multiple of a cache line */
    alignas(FS_CACHE_LINE) _Atomic uint64_t words[]; /* own shard, then the shared one */
};

#define FS_H_BEGUN FS_KIT_SEQ_BEGUN
#define FS_H_DONE FS_KIT_SEQ_DONE
#define FS_H_BUCKETS 2

/**
 * Read shard `w` whole (retrying while a writer is inside an observation):
 * its bucket counts added to counts[0..nb], its sum to *sum. `snap` is
 * scratch room for nb + 2 words.
 */
FS_HIDDEN void fs__histogram_read_shard(const _Atomic uint64_t *w, uint32_t nb, uint64_t *snap,
                                        uint64_t *counts, double *sum);

/** Bucket counts (not cumulative) into counts[0..nb] and the sum, every shard whole. */
FS_HIDDEN void fs__histogram_read(const struct fs_histogram *h, uint64_t *snap, uint64_t *counts,
                                  double *sum);

/** Binades of non-negative doubles (their exponent bits, 0 .. 0x7FF). */
#define FS_BINADES 0x800

/**
 * Fill index[0 .. FS_BINADES] for bounds b[0..nb): index[p] is the first
 * bucket a value of binade p can fall in (the count of bounds below the
 * binade), index[FS_BINADES] = nb. A family keeps it right after its bounds
 * and their spare slot (buckets[nb + 1]).
 */
FS_HIDDEN void fs__bucket_index(const double *b, size_t nb, uint32_t *index);

/** Bytes of a family's bounds with their binade index. */
#define FS_BOUNDS_BYTES(nb) (((nb) + 1) * sizeof(double) + (FS_BINADES + 1) * sizeof(uint32_t))

/** Info: no values, the label set is the whole point. */
typedef struct fs_info_child {
    fs_child hdr;
} fs_info_child;

/**
 * Where thread `t` (its token, possibly 0 = not assigned yet) writes in child
 * c, whose exclusive cells are `cell_bytes` apart: the owner's cell (*own
 * set), an exclusive cell of the shards array, or NULL for the shared cell
 * (atomic read-modify-writes). Claims the inline cell when it has no owner;
 * counts a redirected update on an overflow child.
 */
FS_HIDDEN void *fs__child_cell(fs_child *c, size_t cell_bytes, bool *own);

/**
 * A slot of a table: NULL, a child or a tombstone, with the child's hash
 * beside it (stored before the child is published), so that probing past
 * other children reads none of them.
 */
typedef struct fs_slot {
    _Atomic(fs_child *) child;
    _Atomic uint64_t hash;
} fs_slot;

/** Lock-free open-addressing table of children (linear probing). */
typedef struct fs_table {
    size_t mask;
    size_t used; /* live + tombstones (written under the family lock) */
    struct fs_table *retired_next;
    fs_slot slots[];
} fs_table;

extern fs_child fs__tombstone FS_HIDDEN;
#define FS_TOMBSTONE (&fs__tombstone)

/** A chunk of a family's arena: children and their strings, freed with the family. */
typedef struct fs_arena_chunk {
    struct fs_arena_chunk *next;
    size_t used, cap;
    alignas(FS_CACHE_LINE) char data[];
} fs_arena_chunk;

/** Bump allocation in chunks that grow geometrically; nothing is freed alone. */
typedef struct fs_arena {
    fs_arena_chunk *head; /* the chunk allocated from, then older ones */
    size_t next_cap;
} fs_arena;

/** `size` bytes aligned to `align` (a power of two <= FS_CACHE_LINE), or NULL. */
FS_HIDDEN void *fs__arena_alloc(fs_arena *a, size_t size, size_t align);
FS_HIDDEN void fs__arena_free(fs_arena *a);

/** Limit value of a family that follows its registry's default. */
#define FS_LIMIT_FROM_REGISTRY FS_SERIES_LIMIT_REGISTRY

struct fs_family {
    fs_registry *reg;
    fs_metric_type type;
    char *name; /* the base name: without _total for counters, without _info for info */
    size_t name_len;
    char *help;
    char *help_text; /* escaped for the text format (backslash, newline) */
    char *help_om;   /* escaped for OpenMetrics (also double quote) */
    size_t label_count;
    char **label_names;
    size_t nbuckets;
    double *buckets;
    char **le_text; /* `le="0.005"} ` per bucket incl. +Inf, text format */
    char **le_om;   /* the same in OpenMetrics canonical form ("1.0") */
    size_t *le_text_len;
    size_t *le_om_len;
    size_t child_size; /* bytes of one child, a multiple of a cache line */

    pthread_mutex_t lock;       /* creation, removal, clearing, the order's arrays */
    pthread_mutex_t order_lock; /* one snapshot at a time (taken before `lock`) */
    _Atomic(fs_table *) table;  /* readers load it with acquire */
    /* Render order: `order` sorted by values, `pending` appended since the
     * last snapshot, which takes them, sorts them outside the lock and merges
     * them in; dead children leave at that point. The table is rebuilt from
     * the arena, so it needs neither. */
    fs_child **order;
    size_t norder, caporder;
    fs_child **pending;
    size_t npending, cappending;
    size_t ndead;               /* dead children still in order or pending */
    _Atomic size_t nlive;       /* live children, the overflow child not counted */
    _Atomic size_t limit;       /* most live children; 0 none; FS_LIMIT_FROM_REGISTRY */
    fs_child *_Atomic overflow; /* where updates past the limit go, once made */
    atomic_bool warned;         /* the limit warning was logged */
    fs_child *single;           /* the only child of an unlabelled family */
    fs_arena children;          /* every child ever made, child_size apart per chunk */
    fs_arena strings;           /* their label texts and long values */
    fs_table *retired_tables;
    struct fs_family *retired_next; /* in the registry, once unregistered */
    /* Updates made on the overflow child: on a line of its own, away from
     * what lookups read. */
    alignas(FS_CACHE_LINE) _Atomic uint64_t redirected;
};

struct fs_counter_family {
    fs_family f;
};
struct fs_gauge_family {
    fs_family f;
};
struct fs_histogram_family {
    fs_family f;
};

/** Registration request, validated and deduplicated by fs__family_register. */
typedef struct fs_family_def {
    fs_metric_type type;
    const char *name;
    const char *help;
    size_t label_count;
    const char *const *label_names;
    const double *buckets; /* histograms: finite bounds, validated */
    size_t nbuckets;
    const char *const *info_values; /* info: the label values */
} fs_family_def;

/** Validate `def` and register it, or return the identical registered family. */
FS_HIDDEN int fs__family_register(fs_registry *reg, const fs_family_def *def, fs_family **out);

/** Register a counter, gauge or histogram family and return it in *out (NULL on failure). */
FS_HIDDEN int fs__family_new_simple(fs_registry *reg, fs_metric_type type, const char *name,
                                    const char *help, size_t label_count,
                                    const char *const *label_names, const double *buckets,
                                    size_t nbuckets, fs_family **out);

/**
 * Binary search over n sorted items: cmp(i, key) compares item i with key.
 * Returns the index of the match (*found true) or where key would go.
 */
FS_HIDDEN size_t fs__bsearch(size_t n, int (*cmp)(const void *ctx, size_t i, const void *key),
                             const void *ctx, const void *key, bool *found);

/** Allocate a family from a validated `def` (not registered). */
FS_HIDDEN int fs__family_new(fs_registry *reg, const fs_family_def *def, fs_family **out);

/** The child for `values`, created on first use (NULL + fs__error on failure). */
FS_HIDDEN fs_child *fs__family_labels(fs_family *fam, const char *const *values);
/** The same for the values a label key holds. */
FS_HIDDEN fs_child *fs__family_labels_key(fs_family *fam, const fs_label_key *k);
FS_HIDDEN int fs__family_remove(fs_family *fam, const char *const *values);
FS_HIDDEN void fs__family_clear(fs_family *fam);
FS_HIDDEN void fs__family_free(fs_family *fam);

/** Copy the live children (sorted) into *buf (grown as needed); returns the count or -1. */
FS_HIDDEN ssize_t fs__family_snapshot(fs_family *fam, fs_child ***buf, size_t *cap);

/** The limit on live children in effect for `fam` (0: none). */
FS_HIDDEN size_t fs__family_limit(const fs_family *fam);

/** Set the limit of a family (0: none; FS_LIMIT_FROM_REGISTRY: the registry's). */
FS_HIDDEN int fs__family_set_limit(fs_family *fam, size_t limit);

/* Children (child.c): made in the family's arena, never freed alone. */

/** Bytes of a child of `fam` (with its inline shards), a multiple of a cache line. */
FS_HIDDEN size_t fs__child_size(const fs_family *fam);

/**
 * A new child of `fam` for values[0..label_count) (lengths lens, hash),
 * with its label text made once. NULL when out of memory. Under the lock.
 */
FS_HIDDEN fs_child *fs__child_create(fs_family *fam, const char *const *values,
                                     const uint32_t *lens, uint64_t hash);

/** Release what children of `fam` allocated outside its arena (shards arrays). */
FS_HIDDEN void fs__children_release(fs_family *fam);

/** Call fn on every child `fam` ever made (dead ones too), in its arena. Under the lock. */
FS_HIDDEN void fs__children_each(fs_family *fam, void (*fn)(fs_child *c, void *ctx), void *ctx);

/** Compare children by label values (bytewise, value by value), for qsort. */
FS_HIDDEN int fs__child_cmp(const void *a, const void *b);

/* Tables (table.c) */

FS_HIDDEN fs_table *fs__table_new(size_t cap);
/** Insert c (not present) into t. Under the family lock. */
FS_HIDDEN void fs__table_insert(fs_table *t, fs_child *c);

/** The child holding the values of key k (of the family's label count), or NULL. */
FS_HIDDEN fs_child *fs__table_find_key(fs_table *t, const fs_label_key *k, fs_slot **slot);

/* ------------------------------------------------------------------------ */
/* Registry                                                                 */

typedef struct fs_collector {
    char *name;
    fs_collect_fn fn;
    void *user;
    void (*free_user)(void *user);
} fs_collector;

struct fs_registry {
    pthread_rwlock_t lock; /* write: (un)registration; read: rendering */
    fs_family **families;  /* sorted by name */
    size_t nfamilies, capfamilies;
    fs_collector **collectors; /* sorted by name */
    size_t ncollectors, capcollectors;
    fs_family *retired_families;
    _Atomic size_t series_limit; /* default limit of its families (0: none) */
    bool is_default;
};

/** Resolve NULL to the default registry. NULL (with fs__error) when it cannot be created. */
FS_HIDDEN fs_registry *fs__registry_resolve(fs_registry *reg);

/**
 * FS_ECONFLICT (with a message) when a family `name` (base length n) of `type`
 * would expose a sample or family name some registered family exposes.
 * Under the registry lock.
 */
FS_HIDDEN int fs__registry_check_collision(fs_registry *reg, const char *name, size_t n,
                                           fs_metric_type type);

/** True while the calling thread runs a collector (registration is refused then). */
extern _Thread_local bool fs__in_collect FS_HIDDEN;

/* ------------------------------------------------------------------------ */
/* Clock                                                                    */

/** Wall-clock Unix seconds, or the fixed time set by fs__metrics_set_time_source. */
FS_HIDDEN double fs__now(void);

/**
 * Test hook (exported, not installed): make every _created timestamp and
 * set_to_current_time come from `fn` (NULL restores the real clock). Used by
 * the golden tests to get deterministic output.
 */
void fs__metrics_set_time_source(double (*fn)(void));

/* ------------------------------------------------------------------------ */
/* Validation                                                               */

/** Check a metric name; FS_EINVAL with a message naming `what`. */
FS_HIDDEN int fs__check_metric_name(const char *name);

/** Check the label names of metric `metric` of `type` (refusing reserved names). */
FS_HIDDEN int fs__check_label_names(const char *metric, fs_metric_type type, size_t count,
                                    const char *const *names);

/** "counter", "gauge", "histogram", "info" or "untyped". */
FS_HIDDEN const char *fs__type_name(fs_metric_type type);

/* ------------------------------------------------------------------------ */
/* Buffers and number formatting                                            */

FS_HIDDEN int fs__buf_grow(fs_buffer *b, size_t extra);

/**
 * The array `arr` (capacity *cap elements of `size` bytes) with room for
 * `need` elements: `arr` itself when it has it, else reallocated to the
 * first of `first`, 2 x first, 4 x first... that holds `need`, and *cap set.
 * NULL when out of memory or the size overflows (nothing recorded: the
 * caller says what it was growing); `arr` and *cap are then unchanged.
 */
FS_HIDDEN void *fs__array_grow(void *arr, size_t *cap, size_t need, size_t size, size_t first);

static inline int fs__buf_reserve(fs_buffer *b, size_t extra)
{
    if (FS_LIKELY(b->cap - b->len > extra))
        return FS_OK;
    return fs__buf_grow(b, extra);
}

/* The caller has reserved room. */
static inline void fs__buf_put(fs_buffer *b, const void *p, size_t n)
{
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline void fs__buf_putc(fs_buffer *b, char c)
{
    b->data[b->len++] = c;
}

static inline int fs__buf_append(fs_buffer *b, const void *p, size_t n)
{
    if (fs__buf_reserve(b, n) != FS_OK)
        return FS_ENOMEM;
    fs__buf_put(b, p, n);
    return FS_OK;
}

static inline int fs__buf_appends(fs_buffer *b, const char *s)
{
    return fs__buf_append(b, s, strlen(s));
}

/** Shortest round-tripping rendering of `v` ("+Inf", "-Inf", "NaN"); returns its length. */
FS_HIDDEN size_t fs__format_double(char *out, double v);

/** Unix microseconds as seconds ("1700000000.25", no trailing zeros); returns its length. */
FS_HIDDEN size_t fs__format_micros(char *out, int64_t us);

/** Unsigned integer in decimal; returns its length. */
FS_HIDDEN size_t fs__format_u64(char *out, uint64_t v);

/**
 * A bucket bound as an `le` value: Go's strconv 'g' shortest form (0.005, 1,
 * 2.5, 1e+06) for the text format; with `openmetrics` a ".0" is appended when
 * there is neither a point nor an exponent ("1.0", "100000.0"), as the
 * OpenMetrics canonical numbers require.
 */
FS_HIDDEN size_t fs__format_le(char *out, double v, bool openmetrics);

/**
 * Escape `s[0..n)` for the expositions into `out` (NULL: only measure) and
 * return the length: backslash and newline always, double quote when
 * `quote`. Both formats are UTF-8, and distinct values must show distinct:
 * a byte that is not part of valid UTF-8 becomes U+FFFD followed by its two
 * hex digits, and a U+FFFD of the value becomes two (metrics.h, "Label
 * values"). At most FS_ESCAPE_MAX(n) bytes.
 */
FS_HIDDEN size_t fs__escape_into(char *out, const char *s, size_t n, bool quote);

/** Most bytes fs__escape_into makes of n bytes (a bad byte: U+FFFD and 2 digits). */
#define FS_ESCAPE_MAX(n) (5 * (n))

/** fs__escape_into into a new malloc'd, NUL-terminated string (NULL when out of memory). */
FS_HIDDEN char *fs__escape(const char *s, size_t n, bool quote, size_t *out_len);

#endif
