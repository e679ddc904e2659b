/*
 * The Prometheus middleware: per-thread tallies and their folding into the
 * families when the registry is rendered. See prometheus_internal.h.
 */
#include "prometheus_internal.h"

/* ------------------------------------------------------------------------ */
/* Integer bounds                                                           */

/*
 * Bound b over `unit` (a value of 1 is `unit` of the family's unit): an
 * integer v falls under b when v * unit <= b, that is v < floor(b / unit) + 1
 * (never, for a negative b: 0).
 */
static int bounds_make(int_bounds *ib, const double *b, size_t n, double unit)
{
    ib->n = (uint32_t)n;
    ib->lt = calloc(n + 1, sizeof *ib->lt);
    if (!ib->lt)
        return fs__error(FS_ENOMEM, "prometheus middleware: out of memory");
    for (size_t i = 0; i < n; i++) {
        double q = floor(b[i] / unit) + 1;
        ib->lt[i] = !(q > 0) ? 0 : q >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)q;
    }
    ib->lt[n] = UINT64_MAX;
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Tallies                                                                  */

_Atomic uint64_t *fs__prom_tally_get(const cache *c, entry *e)
{
    uint32_t slot = fs_kit_slot();
    if (slot == FS_KIT_SLOT_SHARED || slot > FS_KIT_MAX_SLOTS)
        return NULL;
    _Atomic(_Atomic uint64_t *) *p = &e->tally[slot - 1];
    /* acquire: a tally a former holder of the slot allocated, with its counts */
    _Atomic uint64_t *t = atomic_load_explicit(p, memory_order_acquire);
    if (t)
        return t;
    size_t bytes = ((size_t)c->words * sizeof(uint64_t) + 63) & ~(size_t)63;
    t = aligned_alloc(64, bytes);
    if (!t)
        return NULL; /* counted in the children until an allocation succeeds */
    for (uint32_t i = 0; i < c->words; i++)
        atomic_init(&t[i], 0);
    /* release: the fold sees the zeroed words */
    atomic_store_explicit(p, t, memory_order_release);
    return t;
}

/* Add tally t (words[0..n)) to sum[T_RECEIVED..n), all of one moment. */
static void tally_read(_Atomic uint64_t *t, uint32_t n, uint64_t *snap, uint64_t *sum)
{
    if (fs_kit_seqlock_read(t, T_RECEIVED, n - T_RECEIVED, snap))
        for (uint32_t i = T_RECEIVED; i < n; i++)
            sum[i] += snap[i - T_RECEIVED];
}

/* The counter child for status s of e, created on its first count. */
static fs_counter *status_counter(const prom_state *st, entry *e, bool recv, int s)
{
    return recv ? status_child(st, e, st->processed, s,
                               fs_received_status_name((fs_received_status)s))
                : status_child(st, e, st->published, s, FS__PROM_PUB_STATUS[s]);
}

/*
 * Bring e's children up to date with its tallies: add what they counted
 * since the last fold. Under fold_lock.
 */
static void fold_entry(prom_state *st, const cache *c, entry *e, bool recv)
{
    uint64_t *tot = st->fold_buf, *snap = st->fold_buf + c->words;
    memset(tot, 0, c->words * sizeof *tot);
    bool any = false;
    for (uint32_t i = 0; i < FS_KIT_MAX_SLOTS; i++) {
        _Atomic uint64_t *t = atomic_load_explicit(&e->tally[i], memory_order_acquire);
        if (t) {
            tally_read(t, c->words, snap, tot);
            any = true;
        }
    }
    if (!any)
        return;
    uint64_t *f = e->folded;
    /* the delta in place of the totals, which become the folded ones */
    for (uint32_t i = T_RECEIVED; i < c->words; i++) {
        uint64_t d = tot[i] - f[i];
        f[i] = tot[i];
        tot[i] = d;
    }
    const uint64_t *d = tot;
    int nstatus = recv ? ST_RECV_COUNT : ST_PUB_COUNT;
    uint64_t finished = 0;
    for (int s = 0; s < nstatus; s++) {
        uint64_t n = d[T_STATUS + s];
        if (!n)
            continue;
        fs_counter *pc = status_counter(st, e, recv, s);
        if (pc) {
            fs_counter_add(pc, (double)n);
            finished += n;
        } else { /* out of memory: left for the next fold */
            f[T_STATUS + s] -= n;
        }
    }
    uint64_t observed = 0;
    for (uint32_t i = 0; i <= c->dur_lt.n; i++)
        observed |= d[T_BUCKETS + i];
    if (observed)
        fs_histogram_add(recv ? e->fixed[3] : e->fixed[0], d + T_BUCKETS, (size_t)c->dur_lt.n + 1,
                         (double)d[T_DUR_SUM] * st->tick_s);
    if (!recv)
        return;
    if (d[T_RECEIVED]) {
        fs_counter_add(e->fixed[0], (double)d[T_RECEIVED]);
        fs_histogram_add(e->fixed[1], d + c->size_at, (size_t)c->size_lt.n + 1,
                         (double)d[T_SIZE_SUM]);
    }
    /* in process: received minus finished (negative when more finished than arrived) */
    int64_t inproc = (int64_t)(d[T_RECEIVED] - finished);
    if (inproc)
        fs_gauge_add(e->fixed[2], (double)inproc);
}

static void fold_cache(prom_state *st, const cache *c, bool recv)
{
    for (uint32_t i = 0; i < CACHE_SLOTS; i++) {
        entry *e = atomic_load_explicit(&c->slots[i], memory_order_acquire);
        if (e)
            fold_entry(st, c, e, recv);
    }
}

static void fold_all(prom_state *st)
{
    if (st->fold_lock_ok)
        pthread_mutex_lock(&st->fold_lock);
    fold_cache(st, &st->recv, true);
    fold_cache(st, &st->pub, false);
    if (st->fold_lock_ok)
        pthread_mutex_unlock(&st->fold_lock);
}

/* The fold collector: it exposes nothing itself, it brings the families up to date. */
static int fold_collect(fs_collect_ctx *ctx, void *user)
{
    (void)ctx;
    fold_all(user);
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */

static int layout(prom_state *st, cache *c, const fs_histogram_family *size,
                  const fs_histogram_family *dur)
{
    size_t n = 0;
    const double *b = fs_histogram_family_bounds(dur, &n);
    int rc = bounds_make(&c->dur_lt, b, n, st->tick_s);
    if (rc != FS_OK)
        return rc;
    c->size_at = T_BUCKETS + (uint32_t)n + 1;
    c->words = c->size_at;
    if (size) {
        b = fs_histogram_family_bounds(size, &n);
        rc = bounds_make(&c->size_lt, b, n, 1.0);
        if (rc != FS_OK)
            return rc;
        c->words += (uint32_t)n + 1;
    }
    return FS_OK;
}

/* A thread that exits forgets its last hits (its slot, which their tallies belong to, is given
 * back). */
static void forget_thread(void)
{
    const last_hit none = {.dest_id = LAST_NO_ID};
    fs__prom_last_recv = none;
    fs__prom_last_pub = none;
}

int fs__prom_tally_setup(prom_state *st)
{
    if (!fs_kit_slot_on_release(forget_thread))
        return fs__error(FS_ESTATE, "prometheus middleware: no room for its thread-exit hook");
    st->tick_s = atomic_load_explicit(&fs__kit_ticks_s, memory_order_relaxed);
    st->ticks_per_s = 1.0 / st->tick_s;
    int rc = layout(st, &st->recv, st->size, st->duration);
    if (rc == FS_OK)
        rc = layout(st, &st->pub, NULL, st->pub_duration);
    if (rc != FS_OK)
        return rc;
    uint32_t words = st->recv.words > st->pub.words ? st->recv.words : st->pub.words;
    st->fold_buf = calloc(2 * (size_t)words, sizeof *st->fold_buf);
    if (!st->fold_buf)
        return fs__error(FS_ENOMEM, "prometheus middleware: out of memory");
    st->fold_lock_ok = pthread_mutex_init(&st->fold_lock, NULL) == 0;
    if (!st->fold_lock_ok)
        return fs__error(FS_ENOMEM, "prometheus middleware: cannot create a mutex");
    snprintf(st->fold_name, sizeof st->fold_name, "prometheus middleware %llu",
             (unsigned long long)st->id);
    rc = fs_registry_add_collector(st->reg, st->fold_name, fold_collect, st, NULL);
    if (rc != FS_OK) {
        st->fold_name[0] = '\0';
        return fs__error(rc, "prometheus middleware: cannot register its collector: %s",
                         fs_last_error());
    }
    return FS_OK;
}

void fs__prom_fold_stop(prom_state *st)
{
    if (st->fold_name[0]) {
        /* no scrape runs the collector once this returned */
        fs_registry_unregister(st->reg, st->fold_name);
        st->fold_name[0] = '\0';
        fold_all(st);
    }
    if (st->fold_lock_ok) {
        pthread_mutex_destroy(&st->fold_lock);
        st->fold_lock_ok = false;
    }
    free(st->fold_buf);
    st->fold_buf = NULL;
    free(st->recv.size_lt.lt);
    free(st->recv.dur_lt.lt);
    free(st->pub.size_lt.lt);
    free(st->pub.dur_lt.lt);
}
