/* The Prometheus middleware: label values and the combination cache. See prometheus_internal.h. */
#include "prometheus_internal.h"

const char *const FS__PROM_PUB_STATUS[ST_PUB_COUNT] = {"success", "error"};

/* ------------------------------------------------------------------------ */
/* Label values                                                             */

/* The dynamic values for `msg` (NULL: a publish outside any handler). */
void fs__prom_compute_dynamic(const prom_state *st, const fs_message *msg, const char **out)
{
    size_t j = 0;
    for (size_t i = 0; i < st->ncustom; i++) {
        if (st->custom[i].fn) {
            const char *v = st->custom[i].fn(msg, st->custom[i].user);
            out[j++] = v ? v : "";
        }
    }
}

/*
 * Fill `vals` with app_name, broker, name, [extra], custom values... as the
 * families want them; `extra` NULL leaves it out.
 */
void fs__prom_build_values(const prom_state *st, const char *broker, const char *name,
                           const char *extra, const char *const *dyn, const char **vals)
{
    size_t n = 0, j = 0;
    vals[n++] = st->app_name;
    vals[n++] = broker;
    vals[n++] = name;
    if (extra)
        vals[n++] = extra;
    for (size_t i = 0; i < st->ncustom; i++)
        vals[n++] = st->custom[i].fn ? dyn[j++] : st->custom[i].value;
}

/* ------------------------------------------------------------------------ */
/* The combination cache                                                    */

static uint64_t hash_keys(size_t n, const char *const *keys)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, with a separator per key */
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)keys[i]; *p; p++)
            h = (h ^ *p) * 0x100000001b3ull;
        h = (h ^ 0xffu) * 0x100000001b3ull;
    }
    return h;
}

static bool keys_equal(const entry *e, size_t n, const char *const *keys)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e->keys[i], keys[i]) != 0)
            return false;
    return true;
}

static bool entry_matches(const entry *e, uint64_t hash, size_t n, const char *const *keys)
{
    return e->hash == hash && keys_equal(e, n, keys);
}

static void entry_free(entry *e)
{
    if (!e)
        return;
    for (uint32_t i = 0; i < FS_KIT_MAX_SLOTS; i++)
        free(atomic_load_explicit(&e->tally[i], memory_order_relaxed));
    free(e->folded);
    free(e);
}

/* (LAST_NO_ID from the start: no id, 0 included, matches a thread's first message) */
_Thread_local last_hit fs__prom_last_recv FS_TLS_MODEL = {.dest_id = LAST_NO_ID};
_Thread_local last_hit fs__prom_last_pub FS_TLS_MODEL = {.dest_id = LAST_NO_ID};
atomic_uint_fast64_t fs__prom_next_state_id = 1;

/* Fill the children of a receive-side entry by label values. */
bool fs__prom_fill_recv(const prom_state *st, entry *e, const char *const *keys)
{
    const char *vals[MAX_VALUES];
    fs__prom_build_values(st, keys[0], keys[1], NULL, keys + 2, vals);
    e->fixed[0] = fs_counter_family_labels(st->received, vals);
    e->fixed[1] = fs_histogram_family_labels(st->size, vals);
    e->fixed[2] = fs_gauge_family_labels(st->in_process, vals);
    e->fixed[3] = fs_histogram_family_labels(st->duration, vals);
    for (int i = 0; i < ST_RECV_COUNT; i++)
        atomic_init(&e->status[i], NULL);
    return e->fixed[0] && e->fixed[1] && e->fixed[2] && e->fixed[3];
}

bool fs__prom_fill_pub(const prom_state *st, entry *e, const char *const *keys)
{
    const char *vals[MAX_VALUES];
    fs__prom_build_values(st, keys[0], keys[1], NULL, keys + 2, vals);
    e->fixed[0] = fs_histogram_family_labels(st->pub_duration, vals);
    e->fixed[1] = e->fixed[2] = e->fixed[3] = NULL;
    for (int i = 0; i < ST_RECV_COUNT; i++)
        atomic_init(&e->status[i], NULL);
    return e->fixed[0] != NULL;
}

static entry *entry_new(const prom_state *st, const cache *c, fill_fn fill, uint64_t hash, size_t n,
                        const char *const *keys)
{
    size_t len = n * sizeof(char *);
    for (size_t i = 0; i < n; i++)
        len += strlen(keys[i]) + 1;
    entry *e = malloc(sizeof(entry) + len);
    uint64_t *folded = calloc(c->words, sizeof *folded);
    if (!e || !folded) {
        free(e);
        free(folded);
        fs__error(FS_ENOMEM, "prometheus middleware: out of memory");
        return NULL;
    }
    const char **kp = (const char **)(void *)e->data;
    e->hash = hash;
    e->nkeys = n;
    e->keys = kp;
    e->name_len = n > 1 ? strlen(keys[1]) : 0;
    e->folded = folded;
    for (uint32_t i = 0; i < FS_KIT_MAX_SLOTS; i++)
        atomic_init(&e->tally[i], NULL);
    char *p = e->data + n * sizeof(char *);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(keys[i]) + 1;
        memcpy(p, keys[i], l);
        kp[i] = p;
        p += l;
    }
    if (!fill(st, e, keys)) {
        entry_free(e);
        return NULL;
    }
    return e;
}

/*
 * The cached entry for `keys`, creating it on first sight; NULL when the
 * table is full around that hash (the caller then fills a stack entry).
 */
static entry *cache_find(const prom_state *st, cache *c, fill_fn fill, size_t n,
                         const char *const *keys)
{
    uint64_t hash = hash_keys(n, keys);
    entry *mine = NULL;
    for (uint32_t i = 0; i < CACHE_PROBES; i++) {
        _Atomic(entry *) *slot = &c->slots[(hash + i) & (CACHE_SLOTS - 1)];
        entry *e = atomic_load_explicit(slot, memory_order_acquire);
        if (e) {
            if (entry_matches(e, hash, n, keys)) {
                entry_free(mine);
                return e;
            }
            continue;
        }
        if (!mine) {
            mine = entry_new(st, c, fill, hash, n, keys);
            if (!mine)
                return NULL;
        }
        entry *expected = NULL;
        if (atomic_compare_exchange_strong_explicit(slot, &expected, mine, memory_order_acq_rel,
                                                    memory_order_acquire))
            return mine;
        if (entry_matches(expected, hash, n, keys)) {
            entry_free(mine);
            return expected;
        }
    }
    entry_free(mine);
    return NULL;
}

/*
 * The thread's last hit if it is the entry for (broker, name, dyn...):
 * the same state, the same broker-name pointer and equal other keys
 * (compared by content). NULL otherwise.
 */
/* cache_find, remembered as the calling thread's last hit. */
entry *fs__prom_cache_get(const prom_state *st, cache *c, fill_fn fill, last_hit *last,
                          const char *broker_ptr, size_t n, const char *const *keys)
{
    entry *e = cache_find(st, c, fill, n, keys);
    if (e) {
        last->state_id = st->id;
        last->e = e;
        last->broker = broker_ptr;
        last->dest_id = LAST_NO_ID;
        last->tally = NULL;
        last->named = NULL;
    }
    return e;
}

void fs__prom_cache_clear(cache *c)
{
    for (uint32_t i = 0; i < CACHE_SLOTS; i++)
        entry_free(atomic_load_explicit(&c->slots[i], memory_order_relaxed));
}

/* Look the status child of `e` up (first time for that status) and keep it. */
__attribute__((noinline)) fs_counter *fs__prom_status_child_slow(const prom_state *st, entry *e,
                                                                 fs_counter_family *fam, int status,
                                                                 const char *status_name)
{
    const char *vals[MAX_VALUES];
    fs__prom_build_values(st, e->keys[0], e->keys[1], status_name, e->keys + 2, vals);
    fs_counter *c = fs_counter_family_labels(fam, vals);
    if (c)
        atomic_store_explicit(&e->status[status], c, memory_order_release);
    return c;
}
