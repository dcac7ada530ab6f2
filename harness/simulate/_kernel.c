/* The simulator's event loop with the reference pairing core's rules, in C.
 *
 * harness/simulate/engine.py drives reference_server/core.py (PairingCore) with one Python
 * call per event; a day of 3 million daily users is ~140M events, far too slow. This
 * module runs the same discrete-event simulation with an exact port of PairingCore's rules
 * over dense arrays indexed by visit. Everything the Python pair does is done here in the
 * same order (the effects work-list FIFO, events in (time, seq) order, the core's timer
 * FIFOs, chat lengths drawn per (pool, class a, class b) through the same Python callable),
 * so the tickets come out identical; tests/test_simulate_kernel.py checks it.
 *
 * Two liberties, both invisible in the result (kernel.py checks their conditions first):
 * events are kept in a calendar queue instead of one heap (same pop order), and a give-up
 * that went stale (its ticket was paired) is dropped at once and only counted, instead of
 * being popped later as a no-op.
 *
 * Plain CPython C API: inputs through the buffer protocol, ticket columns returned as
 * Column objects numpy wraps without a copy. Errors (allocation, a failing callback,
 * Ctrl-C) unwind with longjmp to run(), which frees everything and returns NULL with the
 * Python exception set.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define PREFAULT 1
#endif

enum { IDLE = 0, WAITING = 1, PAIRED = 2 };
enum { V_EXISTS = 1, V_OPEN = 2, V_IN_OPEN = 4, V_GQ = 8 };  /* Visit.flags; V_GQ: a give-up in gq */
enum { E_PAIRED = 0, E_WAITING = 1, E_LEFT = 2 };    /* effects */
enum { GIVE_UP = 0, CHAT_END = 1 };                  /* events */

/* ticket columns, in the dtypes engine.py hands to TicketTable.from_arrays */
enum { C_USER, C_JOIN, C_PAIRED, C_GAVE, C_PEER, C_PEER_TICKET, C_VIA, C_CHAT_END, N_COLS };
static const char *const COL_NAMES[N_COLS] = {
    "user", "t_join", "t_paired", "t_gave_up", "peer", "peer_ticket", "via_interest", "t_chat_end"};
static const size_t COL_SIZE[N_COLS] = {8, 8, 8, 8, 8, 8, 1, 8};

#define NONE_T INFINITY /* the core's "None" deadline: compares like None wherever it is used */
#define SIGNAL_MASK ((1 << 20) - 1)
#define EMPTY_KEY UINT64_MAX

/* One visit (a user of the core, a row of the plan): one cache line. */
typedef struct {
    int64_t seq;            /* core: join-order number of its queue entry */
    double patience;
    int32_t cur;            /* engine: current ticket, -1 none */
    int32_t chats_left;
    int32_t partner;        /* core: -1 none */
    int32_t nblocks;        /* core: len(blocks) */
    int32_t oprev, onext;   /* core: links of its pool's open queue */
    int32_t core_pool, chat_pool;
    int32_t qbeg, qend;     /* its interest nodes */
    int32_t unused;         /* padding to 64 bytes */
    int16_t cls;
    uint8_t state, flags;
} Visit;

_Static_assert(sizeof(Visit) == 64, "a visit is one cache line");

typedef struct { int32_t prev, next, owner, qid; } Node;           /* one (visit, interest) */
typedef struct { double t; int64_t key; int32_t v, k; } Ev;         /* key = seq << 1 | kind */
typedef struct { double t; int64_t seq; int32_t u; } Fb;            /* interest fallback */
typedef struct { double t; int32_t a, b; } Ub;                      /* rematch block expiry */
typedef struct { int32_t a, b; int8_t kind, via; } Eff;             /* an effect of the core */
typedef struct { double *d; int8_t *w; Py_ssize_t len, pos; } LenBuf;
typedef struct { uint64_t key; double until; } BSlot;
typedef struct { char *p; size_t bytes; int mapped; } Mem;          /* a growable block */
typedef struct { Ev *a; size_t len, cap; } Bucket;
typedef struct { Ev *a; size_t cap; } PoolBuf;

typedef struct {
    const double *arrival, *patience;
    const int32_t *chat_pool, *core_pool, *cls, *chats, *iq, *ids;
    const int16_t *mode, *lang;
    const int64_t *ioff;
    Py_ssize_t n_iq, n_ids;
} Inputs;

#define CQ_POOL 64

typedef struct {
    jmp_buf jb;
    /* inputs */
    int32_t n;
    const double *arrival;
    const Inputs *in;
    int n_chat_pools, n_cls, n_core_pools;
    double fb, rb, horizon;
    PyObject *block_for, *progress;
    /* visits and interest nodes */
    Mem vmem;
    Visit *V;
    Node *nodes;
    int32_t *qhead, *qtail, n_queues;
    int32_t *ohead, *otail;
    /* core scalars */
    double cnow, due;
    int64_t cseq;
    /* the core's FIFOs (rings, capacity a power of two) */
    Fb *fbq; size_t fb_cap, fb_head, fb_len;
    Ub *ubq; size_t ub_cap, ub_head, ub_len;
    /* rematch blocks: (min << 32 | max) of the pair -> until, linear probing */
    BSlot *bh; size_t bh_cap, bh_len;
    /* affected users of one tick instant */
    int32_t *aff; size_t aff_len, aff_cap;
    /* effects work-list */
    Eff *eq; size_t eq_head, eq_len, eq_cap;
    /* event queue (see "engine: event queue") */
    Ev *heap; size_t h_len, h_cap;   /* current bucket, 4-ary heap */
    Ev *ov; size_t ov_len, ov_cap;   /* far future, 4-ary heap */
    Bucket *ring; size_t ring_count;
    PoolBuf pool[CQ_POOL]; size_t pool_len;
    int64_t cq_cur;
    Ev *gq; size_t gq_len, gq_cap;   /* live give-ups, binary heap */
    int32_t *gpos;                   /* per visit: its give-up's index in gq, -1 none (compact: */
                                     /* heap moves write it, and these lines stay in cache) */
    int64_t eseq;
    /* ticket columns */
    Mem col[N_COLS];
    int64_t *t_user, *t_peer, *t_peer_ticket;
    double *t_join, *t_paired, *t_gave, *t_chat_end;
    uint8_t *t_via;
    size_t nt, t_cap, t_bound;
    Mem extra[5];           /* per-ticket cls, mode, lang, interest offsets and ids */
#ifdef PREFAULT
    /* a helper thread faulting in the ticket columns' pages ahead of the writer */
    pthread_t pf_thread;
    int pf_running;
    volatile size_t pf_nt;  /* tickets written so far, published by the loop */
    volatile int pf_stop;
    char *pf_base[N_COLS + 4];
    size_t pf_size[N_COLS + 4], pf_cap;
#endif
    size_t n_ids_out;
    PyObject *out;          /* the result being built */
    int done;               /* out is complete */
    /* chat lengths */
    LenBuf *lb; size_t n_lb;
    /* counters */
    int64_t pairings, gave_up, online, peak, events, visits, loops;
} Sim;

static PyObject *Unsupported; /* raised when the input breaks the kernel's exactness conditions */

/* ------------------------------------------------------------------ failure and memory */
static void fail(Sim *s) { longjmp(s->jb, 1); }

static void fail_nomem(Sim *s) { PyErr_NoMemory(); fail(s); }

static void fail_internal(Sim *s, const char *what) {
    PyErr_Format(PyExc_RuntimeError, "simulation kernel: %s (the reference core would raise here)", what);
    fail(s);
}

static void *xcalloc(Sim *s, size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) fail_nomem(s);
    return p;
}

static void *xmalloc(Sim *s, size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) fail_nomem(s);
    void *p = malloc(count && size ? count * size : 1);
    if (!p) fail_nomem(s);
    return p;
}

static void *xrealloc(Sim *s, void *old, size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) fail_nomem(s);
    void *p = realloc(old, count && size ? count * size : 1);
    if (!p) fail_nomem(s);
    return p;
}

/* Ticket columns hold ~85M rows for a day: big blocks are mmap'd (reserved up front, pages
 * touched only as used) and grow with mremap, without a copy. No MADV_HUGEPAGE: with THP
 * defrag on madvise, huge page faults stall in compaction (3-4x slower here than 4k pages). */
#define BIG_BLOCK ((size_t)1 << 21)

static int mem_resize(Mem *m, size_t bytes) {
#ifdef __linux__
    if (bytes >= BIG_BLOCK) {
        bytes = (bytes + BIG_BLOCK - 1) & ~(BIG_BLOCK - 1);
        void *p;
        if (m->mapped) {
            p = mremap(m->p, m->bytes, bytes, MREMAP_MAYMOVE);
        } else {
            p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (p != MAP_FAILED && m->p) {
                memcpy(p, m->p, m->bytes);
                free(m->p);
            }
        }
        if (p == MAP_FAILED) return -1;
        m->p = (char *)p;
        m->bytes = bytes;
        m->mapped = 1;
        return 0;
    }
#endif
    void *p = realloc(m->p, bytes ? bytes : 1);
    if (!p) return -1;
    m->p = (char *)p;
    m->bytes = bytes;
    return 0;
}

static void mem_free(Mem *m) {
#ifdef __linux__
    if (m->mapped) munmap(m->p, m->bytes);
    else
#endif
        free(m->p);
    m->p = NULL;
    m->bytes = 0;
    m->mapped = 0;
}

/* Page faults on fresh memory cost microseconds each on a VM, and a day's tickets are ~6 GB:
 * a helper thread faults the columns in (MADV_POPULATE_WRITE: no data is written) a little
 * ahead of the tickets written, on the other core. The main thread then never waits for the
 * kernel. It is stopped before any column is moved (growth) or handed over. */
#ifdef PREFAULT
#define PF_AHEAD ((size_t)1 << 20)   /* tickets */
#define PF_CHUNK ((size_t)1 << 16)

static void *prefault_main(void *arg) {
    Sim *s = (Sim *)arg;
    size_t done = 0, page = 4096;
    while (!__atomic_load_n(&s->pf_stop, __ATOMIC_ACQUIRE)) {
        size_t want = __atomic_load_n(&s->pf_nt, __ATOMIC_RELAXED) + PF_AHEAD;
        if (want > s->pf_cap) want = s->pf_cap;
        if (want < done + PF_CHUNK && want < s->pf_cap) {
            struct timespec ts = {0, 500000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (want <= done) break; /* everything reserved is in */
        for (int c = 0; c < N_COLS + 4; c++) {
            if (!s->pf_base[c]) continue;
            size_t lo = (done * s->pf_size[c]) & ~(page - 1), hi = want * s->pf_size[c];
            hi = (hi + page - 1) & ~(page - 1);
            if (hi > lo && madvise(s->pf_base[c] + lo, hi - lo, MADV_POPULATE_WRITE) != 0) return NULL;
        }
        done = want;
    }
    return NULL;
}

static void prefault_stop(Sim *s) {
    if (!s->pf_running) return;
    __atomic_store_n(&s->pf_stop, 1, __ATOMIC_RELEASE);
    pthread_join(s->pf_thread, NULL);
    s->pf_running = 0;
}
#endif

/* ------------------------------------------------------------------ rings */
#define RING_PUSH(s, q, cap, head, len, T, val) do {                                   \
        if ((len) == (cap)) {                                                           \
            size_t nc_ = (cap) ? (cap) * 2 : 64;                                        \
            T *nq_ = (T *)xmalloc((s), nc_, sizeof(T));                                 \
            for (size_t i_ = 0; i_ < (len); i_++) nq_[i_] = (q)[((head) + i_) & ((cap) - 1)]; \
            free(q); (q) = nq_; (cap) = nc_; (head) = 0;                                \
        }                                                                               \
        (q)[((head) + (len)) & ((cap) - 1)] = (val); (len)++;                           \
    } while (0)

#define RING_FRONT(q, head) ((q)[(head)])
#define RING_POP(cap, head, len) do { (head) = ((head) + 1) & ((cap) - 1); (len)--; } while (0)

/* ------------------------------------------------------------------ rematch blocks
 * The core keeps u.blocks[p] and p.blocks[u], always set together to the same `until` and
 * deleted together when it passes (for a user forgotten since, only its own side goes, and
 * it is never consulted again). So one entry per pair, keyed (min, max), says both. */
static inline size_t bh_slot(uint64_t key, size_t cap) {
    uint64_t h = (key ^ (key >> 29)) * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> (64 - __builtin_ctzll((unsigned long long)cap))); /* top bits; cap is 2**k */
}

static inline uint64_t bkey(int32_t x, int32_t y) {
    if (x > y) { int32_t t = x; x = y; y = t; }
    return ((uint64_t)(uint32_t)x << 32) | (uint32_t)y;
}

/* x.blocks.get(y, -1.0) */
static inline double bh_get(const Sim *s, int32_t x, int32_t y) {
    uint64_t key = bkey(x, y);
    size_t mask = s->bh_cap - 1;
    for (size_t i = bh_slot(key, s->bh_cap);; i = (i + 1) & mask) {
        if (s->bh[i].key == key) return s->bh[i].until;
        if (s->bh[i].key == EMPTY_KEY) return -1.0;
    }
}

static void bh_grow(Sim *s) {
    size_t oc = s->bh_cap, nc = oc * 2;
    BSlot *old = s->bh;
    BSlot *nb = (BSlot *)xmalloc(s, nc, sizeof(BSlot));
    for (size_t i = 0; i < nc; i++) nb[i].key = EMPTY_KEY;
    for (size_t i = 0; i < oc; i++) {
        if (old[i].key == EMPTY_KEY) continue;
        size_t j = bh_slot(old[i].key, nc);
        while (nb[j].key != EMPTY_KEY) j = (j + 1) & (nc - 1);
        nb[j] = old[i];
    }
    free(old);
    s->bh = nb;
    s->bh_cap = nc;
}

/* x.blocks[y] = until; 1 if the key is new */
static int bh_set(Sim *s, int32_t x, int32_t y, double until) {
    if ((s->bh_len + 1) * 2 > s->bh_cap) bh_grow(s);
    uint64_t key = bkey(x, y);
    size_t mask = s->bh_cap - 1;
    for (size_t i = bh_slot(key, s->bh_cap);; i = (i + 1) & mask) {
        if (s->bh[i].key == key) { s->bh[i].until = until; return 0; }
        if (s->bh[i].key == EMPTY_KEY) {
            s->bh[i].key = key;
            s->bh[i].until = until;
            s->bh_len++;
            return 1;
        }
    }
}

/* del x.blocks[y] if it ends at `until` (backward-shift deletion); 1 if deleted */
static int bh_del_if(Sim *s, int32_t x, int32_t y, double until) {
    uint64_t key = bkey(x, y);
    size_t cap = s->bh_cap, mask = cap - 1, i = bh_slot(key, cap);
    for (;; i = (i + 1) & mask) {
        if (s->bh[i].key == EMPTY_KEY) return 0;
        if (s->bh[i].key == key) break;
    }
    if (!(s->bh[i].until == until)) return 0;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (s->bh[j].key == EMPTY_KEY) break;
        size_t home = bh_slot(s->bh[j].key, cap);
        /* j may fill the hole at i unless its home lies cyclically in (i, j] */
        int stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (stays) continue;
        s->bh[i] = s->bh[j];
        i = j;
    }
    s->bh[i].key = EMPTY_KEY;
    s->bh_len--;
    return 1;
}

/* `blocks is not None and blocks.get(w, -1.0) > now` */
static inline int blocked(const Sim *s, int32_t u, int32_t w, double now) {
    return s->V[u].nblocks > 0 && bh_get(s, u, w) > now;
}

/* ------------------------------------------------------------------ effects */
static inline void push_eff(Sim *s, int kind, int32_t a, int32_t b, int via) {
    if (s->eq_head + s->eq_len == s->eq_cap) {
        if (s->eq_head > 0) {
            memmove(s->eq, s->eq + s->eq_head, s->eq_len * sizeof(Eff));
            s->eq_head = 0;
        } else {
            size_t nc = s->eq_cap ? s->eq_cap * 2 : 64;
            s->eq = (Eff *)xrealloc(s, s->eq, nc, sizeof(Eff));
            s->eq_cap = nc;
        }
    }
    Eff *e = &s->eq[s->eq_head + s->eq_len++];
    e->a = a;
    e->b = b;
    e->kind = (int8_t)kind;
    e->via = (int8_t)via;
}

/* ------------------------------------------------------------------ core: queues */
static inline int has_interests(const Visit *u) { return u->qend > u->qbeg; }

static void open_unlink(Sim *s, int32_t u) {
    Visit *x = &s->V[u];
    int32_t p = x->oprev, nx = x->onext;
    if (p >= 0) s->V[p].onext = nx; else s->ohead[x->core_pool] = nx;
    if (nx >= 0) s->V[nx].oprev = p; else s->otail[x->core_pool] = p;
    x->flags &= (uint8_t)~V_IN_OPEN;
}

static void open_append(Sim *s, int32_t u) {
    Visit *x = &s->V[u];
    int32_t t = s->otail[x->core_pool];
    x->oprev = t;
    x->onext = -1;
    if (t >= 0) s->V[t].onext = u; else s->ohead[x->core_pool] = u;
    s->otail[x->core_pool] = u;
    x->flags |= V_IN_OPEN;
}

/* _insert_open: a user whose fallback passed goes to its join-order (seq) place */
static void insert_open(Sim *s, int32_t u) {
    Visit *x = &s->V[u];
    int32_t pool = x->core_pool, t = s->otail[pool];
    if (t < 0 || s->V[t].seq <= x->seq) { open_append(s, u); return; }
    int32_t after = t;
    while (after >= 0 && s->V[after].seq > x->seq) after = s->V[after].oprev;
    int32_t before = after >= 0 ? s->V[after].onext : s->ohead[pool]; /* >= 0: t is later than u */
    x->oprev = after;
    x->onext = before;
    if (after >= 0) s->V[after].onext = u; else s->ohead[pool] = u;
    s->V[before].oprev = u;
    x->flags |= V_IN_OPEN;
}

static void node_append(Sim *s, int32_t j) {
    Node *nd = &s->nodes[j];
    int32_t t = s->qtail[nd->qid];
    nd->prev = t;
    nd->next = -1;
    if (t >= 0) s->nodes[t].next = j; else s->qhead[nd->qid] = j;
    s->qtail[nd->qid] = j;
}

static void node_unlink(Sim *s, int32_t j) {
    Node *nd = &s->nodes[j];
    if (nd->prev >= 0) s->nodes[nd->prev].next = nd->next; else s->qhead[nd->qid] = nd->next;
    if (nd->next >= 0) s->nodes[nd->next].prev = nd->prev; else s->qtail[nd->qid] = nd->prev;
}

/* _dequeue: only ever called on a waiting user, whose nodes are all linked */
static void dequeue(Sim *s, int32_t w) {
    Visit *x = &s->V[w];
    if ((x->flags & V_OPEN) && (x->flags & V_IN_OPEN)) open_unlink(s, w);
    for (int32_t j = x->qbeg; j < x->qend; j++) node_unlink(s, j);
    x->state = IDLE;
}

/* ------------------------------------------------------------------ core: matching */
static int32_t oldest_open(const Sim *s, int32_t u, double now) {
    for (int32_t w = s->ohead[s->V[u].core_pool]; w >= 0; w = s->V[w].onext) {
        if (w == u) continue;
        if (blocked(s, u, w, now)) continue;
        return w;
    }
    return -1;
}

static int32_t oldest_sharing(const Sim *s, int32_t u, double now) {
    const Visit *x = &s->V[u];
    int32_t best = -1;
    for (int32_t j = x->qbeg; j < x->qend; j++) {
        for (int32_t nd = s->qhead[s->nodes[j].qid]; nd >= 0; nd = s->nodes[nd].next) {
            int32_t w = s->nodes[nd].owner;
            if (w == u) continue;
            if (blocked(s, u, w, now)) continue;
            if (best < 0 || s->V[w].seq < s->V[best].seq) best = w;
            break;
        }
    }
    return best;
}

static int32_t match_for(const Sim *s, int32_t u, double at) {
    const Visit *x = &s->V[u];
    int32_t match = has_interests(x) ? oldest_sharing(s, u, at) : -1;
    if (x->flags & V_OPEN) {
        int32_t other = oldest_open(s, u, at);
        if (other >= 0 && (match < 0 || s->V[other].seq < s->V[match].seq)) match = other;
    }
    return match;
}

static int share_interest(const Sim *s, const Visit *a, const Visit *b) {
    for (int32_t i = b->qbeg; i < b->qend; i++)
        for (int32_t j = a->qbeg; j < a->qend; j++)
            if (s->nodes[i].qid == s->nodes[j].qid) return 1;  /* same pool: same queue = same interest */
    return 0;
}

/* _pair(w, u): w waiting, u a newcomer (or also waiting if second_queued) */
static void pair(Sim *s, int32_t w, int32_t u, int second_queued) {
    Visit *x = &s->V[w], *y = &s->V[u];
    if (x->state == WAITING) dequeue(s, w);
    if (second_queued && y->state == WAITING) dequeue(s, u);
    x->state = y->state = PAIRED;
    x->partner = u;
    y->partner = w;
    int via = has_interests(x) && has_interests(y) && share_interest(s, x, y);
    push_eff(s, E_PAIRED, w, u, via);
}

static int32_t unpair(Sim *s, int32_t u) {
    int32_t p = s->V[u].partner;
    if (p < 0) fail_internal(s, "unpair without a partner");
    if (s->V[p].cur >= 0) __builtin_prefetch(&s->t_chat_end[s->V[p].cur]); /* PartnerLeft reads it */
    s->V[u].partner = s->V[p].partner = -1;
    s->V[u].state = s->V[p].state = IDLE;
    return p;
}

static void block(Sim *s, int32_t u, int32_t p, double now) {
    if (s->rb <= 0) return;
    double until = now + s->rb;
    if (bh_set(s, u, p, until)) { /* a new key on both sides */
        s->V[u].nblocks++;
        s->V[p].nblocks++;
    }
    Ub e = {until, u, p};
    RING_PUSH(s, s->ubq, s->ub_cap, s->ub_head, s->ub_len, Ub, e);
    if (until < s->due) s->due = until;
}

static void enqueue(Sim *s, int32_t u, double now) {
    Visit *x = &s->V[u];
    x->seq = ++s->cseq;
    int inter = has_interests(x);
    if (!inter || s->fb <= 0) x->flags |= V_OPEN; else x->flags &= (uint8_t)~V_OPEN;
    int32_t match = match_for(s, u, now);
    if (match >= 0) {
        pair(s, match, u, 0);
        return;
    }
    x->state = WAITING;
    if (x->flags & V_OPEN) open_append(s, u);
    if (inter) {
        for (int32_t j = x->qbeg; j < x->qend; j++) node_append(s, j);
        if (!(x->flags & V_OPEN)) {
            double deadline = now + s->fb;
            Fb e = {deadline, x->seq, u};
            RING_PUSH(s, s->fbq, s->fb_cap, s->fb_head, s->fb_len, Fb, e);
            if (deadline < s->due) s->due = deadline;
        }
    }
    push_eff(s, E_WAITING, u, -1, 0);
}

static inline int fallback_live(const Sim *s, const Fb *f) {
    const Visit *x = &s->V[f->u];
    return x->state == WAITING && x->seq == f->seq && !(x->flags & V_OPEN);
}

static double next_wakeup(Sim *s) {
    while (s->fb_len && !fallback_live(s, &RING_FRONT(s->fbq, s->fb_head)))
        RING_POP(s->fb_cap, s->fb_head, s->fb_len);
    double first = s->fb_len ? RING_FRONT(s->fbq, s->fb_head).t : NONE_T;
    if (s->ub_len) {
        double t = RING_FRONT(s->ubq, s->ub_head).t;
        if (!s->fb_len || t < first) first = t;
    }
    return first;
}

static inline void aff_push(Sim *s, int32_t u) {
    if (s->aff_len == s->aff_cap) {
        size_t nc = s->aff_cap ? s->aff_cap * 2 : 64;
        s->aff = (int32_t *)xrealloc(s, s->aff, nc, sizeof(int32_t));
        s->aff_cap = nc;
    }
    s->aff[s->aff_len++] = u;
}

/* _expire_block: the block of a and b ends at `until` unless renewed since; the waiting of
 * the two are affected (a, then b) */
static void expire_block(Sim *s, double until, int32_t a, int32_t b) {
    if (bh_del_if(s, a, b, until)) {
        s->V[a].nblocks--;
        s->V[b].nblocks--;
    }
    if ((s->V[a].flags & V_EXISTS) && s->V[a].state == WAITING) aff_push(s, a);
    if ((s->V[b].flags & V_EXISTS) && s->V[b].state == WAITING) aff_push(s, b);
}

/* _settle: pair everyone who became compatible at `at`, earliest joiner first */
static void settle(Sim *s, double at) {
    for (;;) {
        int32_t first = -1;
        for (size_t i = 0; i < s->aff_len; i++) {
            int32_t u = s->aff[i];
            if (s->V[u].state != WAITING) continue;
            int32_t m = match_for(s, u, at);
            if (m < 0) continue;
            int32_t x = s->V[u].seq < s->V[m].seq ? u : m;
            if (first < 0 || s->V[x].seq < s->V[first].seq) first = x;
        }
        if (first < 0) return;
        int32_t partner = match_for(s, first, at);
        if (partner < 0) fail_internal(s, "settle lost a match");
        pair(s, first, partner, 1);
    }
}

static inline double core_clock(Sim *s, double now) {
    if (now < s->cnow) return s->cnow;
    s->cnow = now;
    return now;
}

static void tick(Sim *s, double now) {
    now = core_clock(s, now);
    for (;;) {
        int hf = s->fb_len > 0, hu = s->ub_len > 0;
        if (!hf && !hu) break;
        double tf = hf ? RING_FRONT(s->fbq, s->fb_head).t : 0.0;
        double tu = hu ? RING_FRONT(s->ubq, s->ub_head).t : 0.0;
        double at = (!hu || (hf && tf < tu)) ? tf : tu;
        if (at > now) break;
        if (at != at) break; /* NaN: cannot happen (fallback and block are >= 0, times finite) */
        s->aff_len = 0;
        while (s->ub_len && RING_FRONT(s->ubq, s->ub_head).t == at) {
            Ub e = RING_FRONT(s->ubq, s->ub_head);
            RING_POP(s->ub_cap, s->ub_head, s->ub_len);
            expire_block(s, e.t, e.a, e.b);
        }
        while (s->fb_len && RING_FRONT(s->fbq, s->fb_head).t == at) {
            Fb f = RING_FRONT(s->fbq, s->fb_head);
            RING_POP(s->fb_cap, s->fb_head, s->fb_len);
            if (fallback_live(s, &f)) {
                s->V[f.u].flags |= V_OPEN;
                insert_open(s, f.u);
                aff_push(s, f.u);
            }
        }
        if (s->aff_len) settle(s, at);
    }
    s->due = next_wakeup(s);
}

/* ------------------------------------------------------------------ core: commands */
static void core_join(Sim *s, int32_t u, double now) {
    Visit *x = &s->V[u];
    if (!(x->flags & V_EXISTS)) {
        x->flags = V_EXISTS;
        x->state = IDLE;
        x->nblocks = 0;
        x->partner = -1;
    } else if (x->state != IDLE) {
        fail_internal(s, "join while not idle");
    }
    if (now < s->cnow) now = s->cnow; else s->cnow = now;
    if (s->due <= now) tick(s, now);
    enqueue(s, u, now);
}

static void core_next(Sim *s, int32_t u, double now) {
    if (!(s->V[u].flags & V_EXISTS) || s->V[u].state == IDLE) fail_internal(s, "next while idle");
    now = core_clock(s, now);
    if (s->due <= now) tick(s, now);
    if (s->V[u].state == WAITING) {
        push_eff(s, E_WAITING, u, -1, 0);
        return;
    }
    if (s->V[u].state == IDLE) fail_internal(s, "next while idle");
    int32_t p = unpair(s, u);
    block(s, u, p, now);
    push_eff(s, E_LEFT, p, -1, 0);
    enqueue(s, u, now);
}

static void core_disconnect(Sim *s, int32_t u, double now) {
    Visit *x = &s->V[u];
    if (!(x->flags & V_EXISTS)) return;
    if (x->state != IDLE) {
        core_clock(s, now);
        if (x->state == WAITING) {
            dequeue(s, u);
        } else {
            int32_t p = unpair(s, u);
            push_eff(s, E_LEFT, p, -1, 0);
        }
    }
    x->flags &= (uint8_t)~V_EXISTS;
}

/* ------------------------------------------------------------------ engine: event queue
 *
 * The Python engine keeps one heap of (time, seq, kind, visit, ticket). Here, same order,
 * cheaper:
 * - chat ends (and the rare give-up below) go to a calendar queue: simulated time is cut
 *   in buckets of CQ_WIDTH seconds; the current bucket (and anything earlier) is a small
 *   heap ordered by (time, seq); buckets up to CQ_SLOTS ahead are unsorted arrays; farther
 *   events wait in an overflow heap. Every event of the current heap precedes every other,
 *   so pops come out in exactly one heap's order.
 * - give-ups go to a heap of their own indexed by visit, and leave it as soon as their
 *   ticket is paired. In Python such a stale give-up is popped later and does nothing but
 *   count as an event (and recompute `wake` to the value it already has: a wake earlier
 *   than the last tick is always run before any event, with chat lengths, patience and
 *   arrival order what kernel.py checks). So it is counted when pushed (if due by the
 *   horizon) and never popped. A visit has one tracked give-up at most; a second one for
 *   the same live ticket (not produced by the reference core) takes the calendar path.
 */
#define CQ_WIDTH 0.125
#define CQ_SLOTS (1 << 16)
#define CQ_FAR INT64_MAX

static inline int ev_less(const Ev *a, const Ev *b) {
    return a->t < b->t || (a->t == b->t && a->key < b->key);
}

static inline int64_t cq_bucket(double t) {
    double b = floor(t * (1.0 / CQ_WIDTH));
    if (!(b < 9.0e18 && b > -9.0e18)) return b < 0 ? -CQ_FAR : CQ_FAR; /* inf, NaN, huge */
    return (int64_t)b;
}

static void heap_add(Sim *s, Ev **hp, size_t *len, size_t *cap, Ev e) {
    if (*len == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        *hp = (Ev *)xrealloc(s, *hp, nc, sizeof(Ev));
        *cap = nc;
    }
    Ev *h = *hp;
    size_t i = (*len)++;
    while (i > 0) {
        size_t p = (i - 1) >> 2;
        if (!ev_less(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static void sift_down(Ev *h, size_t n, size_t i, Ev e) {
    for (;;) {
        size_t c = 4 * i + 1;
        if (c >= n) break;
        size_t best = c, end = c + 4 < n ? c + 4 : n;
        for (size_t j = c + 1; j < end; j++)
            if (ev_less(&h[j], &h[best])) best = j;
        if (!ev_less(&h[best], &e)) break;
        h[i] = h[best];
        i = best;
    }
    h[i] = e;
}

static Ev heap_take(Ev *h, size_t *len) {
    Ev top = h[0];
    Ev last = h[--(*len)];
    if (*len) sift_down(h, *len, 0, last);
    return top;
}

static void heapify(Ev *h, size_t n) {
    if (n < 2) return;
    for (size_t i = (n - 2) / 4 + 1; i-- > 0;) sift_down(h, n, i, h[i]);
}

static void cq_push(Sim *s, Ev e) {
    int64_t b = cq_bucket(e.t);
    if (b <= s->cq_cur) {
        heap_add(s, &s->heap, &s->h_len, &s->h_cap, e);
    } else if ((uint64_t)b - (uint64_t)s->cq_cur < CQ_SLOTS) {
        Bucket *bk = &s->ring[b & (CQ_SLOTS - 1)];
        if (bk->len == bk->cap) {
            if (bk->cap == 0 && s->pool_len) { /* reuse a drained buffer */
                PoolBuf pb = s->pool[--s->pool_len];
                bk->a = pb.a;
                bk->cap = pb.cap;
            } else {
                size_t nc = bk->cap ? bk->cap * 2 : 64;
                bk->a = (Ev *)xrealloc(s, bk->a, nc, sizeof(Ev));
                bk->cap = nc;
            }
        }
        bk->a[bk->len++] = e;
        s->ring_count++;
    } else {
        heap_add(s, &s->ov, &s->ov_len, &s->ov_cap, e);
    }
}

/* Make the current heap hold the earliest events (if there are any). */
static void cq_fill(Sim *s) {
    while (s->h_len == 0 && (s->ring_count || s->ov_len)) {
        if (s->ring_count == 0) s->cq_cur = cq_bucket(s->ov[0].t); /* jump over empty buckets */
        else s->cq_cur++;
        Bucket *bk = &s->ring[s->cq_cur & (CQ_SLOTS - 1)];
        if (s->ring_count && bk->len) {
            /* the bucket's array becomes the current heap; the old, empty one goes to the pool */
            if (s->heap) {
                if (s->pool_len < CQ_POOL) s->pool[s->pool_len++] = (PoolBuf){s->heap, s->h_cap};
                else free(s->heap);
            }
            s->heap = bk->a;
            s->h_len = bk->len;
            s->h_cap = bk->cap;
            s->ring_count -= bk->len;
            bk->a = NULL;
            bk->len = bk->cap = 0;
            heapify(s->heap, s->h_len);
        }
        while (s->ov_len && cq_bucket(s->ov[0].t) <= s->cq_cur) {
            Ev e = heap_take(s->ov, &s->ov_len);
            heap_add(s, &s->heap, &s->h_len, &s->h_cap, e);
        }
    }
}

/* give-up heap (binary, positions kept in gpos) */
static inline void gq_place(Sim *s, size_t i, Ev e) {
    s->gq[i] = e;
    s->gpos[e.v] = (int32_t)i;
}

static void gq_up(Sim *s, size_t i, Ev e) {
    while (i > 0) {
        size_t p = (i - 1) >> 1;
        if (!ev_less(&e, &s->gq[p])) break;
        gq_place(s, i, s->gq[p]);
        i = p;
    }
    gq_place(s, i, e);
}

static void gq_down(Sim *s, size_t i, Ev e) {
    size_t n = s->gq_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && ev_less(&s->gq[c + 1], &s->gq[c])) c++;
        if (!ev_less(&s->gq[c], &e)) break;
        gq_place(s, i, s->gq[c]);
        i = c;
    }
    gq_place(s, i, e);
}

static void gq_remove(Sim *s, int32_t v) {
    size_t i = (size_t)s->gpos[v];
    s->gpos[v] = -1;
    s->V[v].flags &= (uint8_t)~V_GQ;
    Ev last = s->gq[--s->gq_len];
    if (i == s->gq_len) return;
    if (i > 0 && ev_less(&last, &s->gq[(i - 1) >> 1])) gq_up(s, i, last);
    else gq_down(s, i, last);
}

static inline void drop_give_up(Sim *s, int32_t v) {
    if (s->V[v].flags & V_GQ) gq_remove(s, v); /* the flag: gpos is only read when needed */
}

static void push_give_up(Sim *s, int32_t u, double t) {
    Visit *x = &s->V[u];
    Ev e = {t, (++s->eseq << 1) | GIVE_UP, u, x->cur};
    if (x->flags & V_GQ) {
        const Ev *old = &s->gq[s->gpos[u]];
        if (old->k == x->cur && s->t_paired[old->k] != s->t_paired[old->k]) {
            cq_push(s, e); /* two live give-ups for one ticket: the second one the plain way */
            return;
        }
        gq_remove(s, u); /* stale: counted when pushed */
    }
    if (!(t > s->horizon) && t != INFINITY) s->events++; /* Python pops it, stale or not */
    if (s->gq_len == s->gq_cap) {
        size_t nc = s->gq_cap ? s->gq_cap * 2 : 1024;
        s->gq = (Ev *)xrealloc(s, s->gq, nc, sizeof(Ev));
        s->gq_cap = nc;
    }
    x->flags |= V_GQ;
    gq_up(s, s->gq_len++, e);
}

/* ------------------------------------------------------------------ engine: tickets */
static void grow_tickets(Sim *s) {
    if (s->nt >= (size_t)INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "simulation kernel: more than 2**31 tickets");
        fail(s);
    }
    /* first the bound on the run's tickets (reserved; pages touched only as used), then by half */
    size_t nc = s->t_cap ? s->t_cap + s->t_cap / 2 : s->t_bound;
    if (nc < 1024) nc = 1024;
    if (nc > (size_t)INT32_MAX) nc = (size_t)INT32_MAX;
#ifdef PREFAULT
    prefault_stop(s); /* columns may move: no prefaulting after the first reservation */
#endif
    for (int c = 0; c < N_COLS; c++)
        if (mem_resize(&s->col[c], nc * COL_SIZE[c]) < 0) fail_nomem(s);
#ifdef PREFAULT
    if (s->t_cap == 0 && nc * 8 >= BIG_BLOCK) {
        /* the per-ticket copies of visit columns (cls, mode, lang, offsets) are reserved now too */
        size_t extra_size[4] = {2, 2, 2, 8};
        for (int c = 0; c < 4; c++)
            if (mem_resize(&s->extra[c], (nc + 1) * extra_size[c]) < 0) fail_nomem(s);
        for (int c = 0; c < N_COLS + 4; c++) {
            s->pf_base[c] = c < N_COLS ? s->col[c].p : s->extra[c - N_COLS].p;
            s->pf_size[c] = c < N_COLS ? COL_SIZE[c] : extra_size[c - N_COLS];
        }
        s->pf_cap = nc;
        s->pf_stop = 0;
        s->pf_running = pthread_create(&s->pf_thread, NULL, prefault_main, s) == 0;
    }
#endif
    s->t_user = (int64_t *)s->col[C_USER].p;
    s->t_join = (double *)s->col[C_JOIN].p;
    s->t_paired = (double *)s->col[C_PAIRED].p;
    s->t_gave = (double *)s->col[C_GAVE].p;
    s->t_peer = (int64_t *)s->col[C_PEER].p;
    s->t_peer_ticket = (int64_t *)s->col[C_PEER_TICKET].p;
    s->t_via = (uint8_t *)s->col[C_VIA].p;
    s->t_chat_end = (double *)s->col[C_CHAT_END].p;
    s->t_cap = nc;
}

static inline void new_ticket(Sim *s, int32_t v, double now) {
    if (s->nt == s->t_cap) grow_tickets(s);
#ifdef PREFAULT
    if ((s->nt & 4095) == 0) __atomic_store_n(&s->pf_nt, s->nt, __ATOMIC_RELAXED);
#endif
    drop_give_up(s, v); /* its old ticket's give-up is stale (never live here: it was paired) */
    size_t k = s->nt++;
    s->V[v].cur = (int32_t)k;
    s->t_user[k] = v;
    s->t_join[k] = now;
    s->t_paired[k] = NAN;
    s->t_gave[k] = NAN;
    s->t_peer[k] = -1;
    s->t_peer_ticket[k] = -1;
    s->t_via[k] = 0;
    s->t_chat_end[k] = NAN;
}

/* ------------------------------------------------------------------ engine: chat lengths */
static int take_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != itemsize || view->ndim > 1) {
        PyErr_Format(PyExc_TypeError, "block_for must return %s", what);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static void refill(Sim *s, LenBuf *b, int32_t pool, int32_t ca, int32_t cb) {
    PyObject *res = PyObject_CallFunction(s->block_for, "iii", (int)pool, (int)ca, (int)cb);
    if (!res) fail(s);
    if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 2) {
        Py_DECREF(res);
        PyErr_SetString(PyExc_TypeError, "block_for must return (durations, who)");
        fail(s);
    }
    Py_buffer vd, vw;
    if (take_buffer(PyTuple_GET_ITEM(res, 0), &vd, 8, "float64 durations") < 0) { Py_DECREF(res); fail(s); }
    if (take_buffer(PyTuple_GET_ITEM(res, 1), &vw, 1, "int8 who") < 0) {
        PyBuffer_Release(&vd);
        Py_DECREF(res);
        fail(s);
    }
    Py_ssize_t len = vd.len / 8;
    size_t fl = vd.format ? strlen(vd.format) : 0;
    const char *problem = NULL;
    PyObject *kind = PyExc_ValueError;
    if (vw.len != len || len == 0 || (fl && vd.format[fl - 1] != 'd')) {
        problem = "block_for must return equally long, non-empty float64 and int8 arrays";
    } else {
        const double *d = (const double *)vd.buf;
        for (Py_ssize_t i = 0; i < len; i++)
            if (!(d[i] >= 0)) { /* negative or NaN: events could go back in time */
                problem = "a chat length is negative or NaN";
                kind = Unsupported;
                break;
            }
    }
    double *nd = problem ? NULL : (double *)realloc(b->d, (size_t)len * sizeof(double));
    if (nd) b->d = nd;
    int8_t *nw = nd ? (int8_t *)realloc(b->w, (size_t)len) : NULL;
    if (nw) b->w = nw;
    if (nw) {
        memcpy(b->d, vd.buf, (size_t)len * sizeof(double));
        memcpy(b->w, vw.buf, (size_t)len);
        b->len = len;
        b->pos = 0;
    }
    PyBuffer_Release(&vd);
    PyBuffer_Release(&vw);
    Py_DECREF(res);
    if (problem) {
        PyErr_SetString(kind, problem);
        fail(s);
    }
    if (!nw) fail_nomem(s);
}

static inline void draw(Sim *s, int32_t pool, int32_t ca, int32_t cb, double *dur, int *who) {
    LenBuf *b = &s->lb[((size_t)pool * s->n_cls + ca) * s->n_cls + cb];
    if (b->pos >= b->len) refill(s, b, pool, ca, cb);
    *dur = b->d[b->pos];
    *who = b->w[b->pos];
    b->pos++;
}

/* ------------------------------------------------------------------ engine: apply */
static void apply(Sim *s, double now) {
    while (s->eq_len) {
        Eff e = s->eq[s->eq_head++];
        if (--s->eq_len == 0) s->eq_head = 0;
        if (e.kind == E_PAIRED) {
            int32_t a = e.a, b = e.b;
            Visit *va = &s->V[a], *vb = &s->V[b];
            int32_t ka = va->cur, kb = vb->cur;
            if (ka < 0 || kb < 0) fail_internal(s, "paired a user without a ticket");
            drop_give_up(s, a);
            drop_give_up(s, b);
            s->t_paired[ka] = s->t_paired[kb] = now;
            s->t_peer[ka] = b;
            s->t_peer[kb] = a;
            s->t_peer_ticket[ka] = kb;
            s->t_peer_ticket[kb] = ka;
            if (e.via) s->t_via[ka] = s->t_via[kb] = 1;
            va->chats_left--;
            vb->chats_left--;
            s->pairings++;
            double dur;
            int who;
            draw(s, va->chat_pool, va->cls, vb->cls, &dur, &who);
            Ev ev = {now + dur, (++s->eseq << 1) | CHAT_END, who ? b : a, who == 0 ? ka : kb};
            cq_push(s, ev);
        } else if (e.kind == E_WAITING) {
            Visit *vu = &s->V[e.a];
            if (vu->patience != INFINITY) push_give_up(s, e.a, now + vu->patience);
        } else {
            int32_t u = e.a;
            Visit *vu = &s->V[u];
            int32_t k = vu->cur;
            if (k >= 0 && s->t_chat_end[k] != s->t_chat_end[k]) s->t_chat_end[k] = now;
            if (vu->chats_left > 0) {
                new_ticket(s, u, now);
                core_join(s, u, now);
            } else {
                vu->cur = -1;
                drop_give_up(s, u);
                s->online--;
                core_disconnect(s, u, now);
            }
        }
    }
}

/* ------------------------------------------------------------------ engine: the loop */
static void progress_call(Sim *s, double frac) {
    PyObject *r = PyObject_CallFunction(s->progress, "d", frac);
    if (!r) fail(s);
    Py_DECREF(r);
}

static void loop(Sim *s) {
    int32_t ai = 0, n = s->n;
    double last_tick = -INFINITY, wake = next_wakeup(s);
    double next_progress = 0.0, horizon = s->horizon;
    double step = horizon > 0 ? horizon / 200.0 : INFINITY;
    int has_progress = s->progress != Py_None;
    for (;;) {
        double t_arr = ai < n ? s->arrival[ai] : INFINITY;
        cq_fill(s);
        /* the earliest event by (time, seq): calendar or give-up heap */
        int from_gq = s->gq_len && (!s->h_len || ev_less(&s->gq[0], &s->heap[0]));
        double t_evt = from_gq ? s->gq[0].t : s->h_len ? s->heap[0].t : INFINITY;
        double t_wake = wake;
        double now = t_arr;
        if (t_evt < now) now = t_evt;
        if (t_wake < now) now = t_wake;
        if (now > horizon || now == INFINITY) break;
        if ((++s->loops & SIGNAL_MASK) == 0 && PyErr_CheckSignals() < 0) fail(s);
        if (has_progress && now >= next_progress) {
            progress_call(s, horizon > 0 ? now / horizon : 1.0);
            next_progress = now + step;
        }
        if (t_wake <= t_arr && t_wake <= t_evt) {
            s->events++;
            last_tick = now;
            tick(s, now);
            apply(s, now);
        } else if (t_arr <= t_evt) {
            s->events++;
            int32_t v = ai++;
            s->online++;
            if (s->online > s->peak) s->peak = s->online;
            new_ticket(s, v, now);
            core_join(s, v, now);
            apply(s, now);
        } else {
            Ev e;
            if (from_gq) {
                e = s->gq[0];
                gq_remove(s, e.v); /* counted when pushed */
            } else {
                e = heap_take(s->heap, &s->h_len);
                s->events++;
                if (s->h_len) { /* the next event's visit and ticket: fetched while this one runs */
                    __builtin_prefetch(&s->V[s->heap[0].v]);
                    __builtin_prefetch(&s->t_chat_end[s->heap[0].k]);
                }
            }
            int32_t v = e.v, k = e.k;
            Visit *x = &s->V[v];
            if ((e.key & 1) == GIVE_UP) {
                if (x->cur == k && s->t_paired[k] != s->t_paired[k]) {
                    s->t_gave[k] = now;
                    s->gave_up++;
                    x->cur = -1;
                    s->online--;
                    core_disconnect(s, v, now);
                    apply(s, now);
                }
            } else {
                if (x->cur != k) {
                    wake = next_wakeup(s);
                    continue;
                }
                s->t_chat_end[k] = now;
                if (x->chats_left > 0) {
                    new_ticket(s, v, now);
                    core_next(s, v, now);
                } else {
                    x->cur = -1;
                    s->online--;
                    core_disconnect(s, v, now);
                }
                apply(s, now);
            }
        }
        wake = next_wakeup(s);
        if (wake != NONE_T && wake <= last_tick) wake = NONE_T;
    }
    if (has_progress) progress_call(s, 1.0);
    s->visits = ai;
}

/* ------------------------------------------------------------------ setup and teardown */
static void sim_free(Sim *s) {
#ifdef PREFAULT
    prefault_stop(s);
#endif
    mem_free(&s->vmem);
    free(s->gpos);
    free(s->nodes); free(s->qhead); free(s->qtail); free(s->ohead); free(s->otail);
    free(s->fbq); free(s->ubq); free(s->bh); free(s->aff); free(s->eq);
    free(s->heap); free(s->ov); free(s->gq);
    if (s->ring) {
        for (size_t i = 0; i < CQ_SLOTS; i++) free(s->ring[i].a);
        free(s->ring);
    }
    for (size_t i = 0; i < s->pool_len; i++) free(s->pool[i].a);
    for (int c = 0; c < N_COLS; c++) mem_free(&s->col[c]);
    for (int c = 0; c < 5; c++) mem_free(&s->extra[c]);
    Py_CLEAR(s->out);
    if (s->lb) {
        for (size_t i = 0; i < s->n_lb; i++) { free(s->lb[i].d); free(s->lb[i].w); }
        free(s->lb);
    }
}


static void bad_input(Sim *s, const char *what) {
    PyErr_Format(PyExc_ValueError, "simulation kernel: %s", what);
    fail(s);
}

/* Visits, deduplicated interest nodes, queues, and the bound on tickets. */
static void sim_setup(Sim *s, const Inputs *in) {
    int32_t n = s->n;
    if (mem_resize(&s->vmem, (size_t)(n ? n : 1) * sizeof(Visit)) < 0) fail_nomem(s);
    s->V = (Visit *)s->vmem.p;
    s->gpos = (int32_t *)xmalloc(s, (size_t)(n ? n : 1), sizeof(int32_t));
    const int64_t *ioff = in->ioff;
    if (n && (ioff[0] < 0 || ioff[n] - ioff[0] > in->n_iq || ioff[n] > in->n_ids))
        bad_input(s, "interest offsets out of range");
    int64_t total = n ? ioff[n] - ioff[0] : 0;
    if (total > INT32_MAX) bad_input(s, "more than 2**31 interests");
    s->nodes = (Node *)xmalloc(s, (size_t)total, sizeof(Node));
    int32_t m = 0;
    for (int32_t v = 0; v < n; v++) {
        Visit *x = &s->V[v];
        if (in->chat_pool[v] < 0 || in->chat_pool[v] >= s->n_chat_pools || in->core_pool[v] < 0 ||
            in->core_pool[v] >= s->n_core_pools || in->cls[v] < 0 || in->cls[v] >= s->n_cls)
            bad_input(s, "pool or class index out of range");
        if (ioff[v + 1] < ioff[v]) bad_input(s, "interest offsets decrease");
        memset(x, 0, sizeof(*x));
        x->patience = in->patience[v];
        x->cur = x->partner = -1;
        s->gpos[v] = -1;
        x->chats_left = in->chats[v];
        x->core_pool = in->core_pool[v];
        x->chat_pool = in->chat_pool[v];
        x->cls = (int16_t)in->cls[v];
        x->qbeg = m;
        for (int64_t j = ioff[v]; j < ioff[v + 1]; j++) {
            int32_t q = in->iq[j - ioff[0]];
            if (q < 0 || q >= s->n_queues) bad_input(s, "interest queue id out of range");
            int dup = 0; /* the core keeps a user's interests distinct: tuple(dict.fromkeys(...)) */
            for (int32_t i = x->qbeg; i < m; i++)
                if (s->nodes[i].qid == q) { dup = 1; break; }
            if (dup) continue;
            s->nodes[m].qid = q;
            s->nodes[m].owner = v;
            m++;
        }
        x->qend = m;
        /* a visit makes at most max(chats, 1) tickets: a new one only after a paired chat */
        if (s->arrival[v] <= s->horizon) s->t_bound += in->chats[v] > 1 ? (size_t)in->chats[v] : 1;
    }
    s->qhead = (int32_t *)xmalloc(s, (size_t)s->n_queues, sizeof(int32_t));
    s->qtail = (int32_t *)xmalloc(s, (size_t)s->n_queues, sizeof(int32_t));
    for (int32_t q = 0; q < s->n_queues; q++) s->qhead[q] = s->qtail[q] = -1;
    s->ohead = (int32_t *)xmalloc(s, (size_t)s->n_core_pools, sizeof(int32_t));
    s->otail = (int32_t *)xmalloc(s, (size_t)s->n_core_pools, sizeof(int32_t));
    for (int32_t p = 0; p < s->n_core_pools; p++) s->ohead[p] = s->otail[p] = -1;
    s->bh_cap = 1024;
    s->bh = (BSlot *)xmalloc(s, s->bh_cap, sizeof(BSlot));
    for (size_t i = 0; i < s->bh_cap; i++) s->bh[i].key = EMPTY_KEY;
    s->n_lb = (size_t)s->n_chat_pools * s->n_cls * s->n_cls;
    s->lb = (LenBuf *)xcalloc(s, s->n_lb, sizeof(LenBuf));
    s->ring = (Bucket *)xcalloc(s, CQ_SLOTS, sizeof(Bucket));
    s->cq_cur = n ? cq_bucket(s->arrival[0]) : 0;
    if (s->cq_cur == CQ_FAR || s->cq_cur == -CQ_FAR) s->cq_cur = 0;
    s->cnow = -INFINITY;
    s->due = NONE_T;
}

/* ------------------------------------------------------------------ output
 * A Column owns one ticket column's memory and exposes it through the buffer protocol:
 * numpy wraps it (np.frombuffer) without a copy, and frees it with the array. */
typedef struct {
    PyObject_HEAD
    Mem mem;
    Py_ssize_t nbytes;
} Column;

static int column_getbuffer(PyObject *self, Py_buffer *view, int flags) {
    static char empty[8];
    Column *c = (Column *)self;
    return PyBuffer_FillInfo(view, self, c->mem.p ? c->mem.p : empty, c->nbytes, 0, flags);
}

static void column_dealloc(PyObject *self) {
    mem_free(&((Column *)self)->mem);
    Py_TYPE(self)->tp_free(self);
}

static Py_ssize_t column_len(PyObject *self) { return ((Column *)self)->nbytes; }

static PyBufferProcs column_as_buffer = {.bf_getbuffer = column_getbuffer};
static PySequenceMethods column_as_sequence = {.sq_length = column_len};

static PyTypeObject ColumnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "harness.simulate._kernel.Column",
    .tp_basicsize = sizeof(Column),
    .tp_dealloc = column_dealloc,
    .tp_as_sequence = &column_as_sequence,
    .tp_as_buffer = &column_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One ticket column's memory (len() is its size in bytes), for np.frombuffer.",
};

/* The per-ticket copies of the visit's columns (what engine.py gathers with numpy):
 * cls, mode, lang, interest_offsets, interest_ids in s->extra. */
static void visit_columns(Sim *s) {
    const Inputs *in = s->in;
    const int64_t *ioff = in->ioff;
    Mem *out = s->extra;
    size_t nt = s->nt, need[4] = {nt * 2, nt * 2, nt * 2, (nt + 1) * 8};
    for (int c = 0; c < 4; c++) /* reserved already when prefaulting */
        if (out[c].bytes < need[c] && mem_resize(&out[c], need[c]) < 0) fail_nomem(s);
    int16_t *cls = (int16_t *)out[0].p, *mode = (int16_t *)out[1].p, *lang = (int16_t *)out[2].p;
    int64_t *off = (int64_t *)out[3].p;
    off[0] = 0;
    for (size_t k = 0; k < nt; k++) {
        int64_t u = s->t_user[k];
        cls[k] = (int16_t)in->cls[u]; /* the compact inputs, not V: 85M lookups stay in cache */
        mode[k] = in->mode[u];
        lang[k] = in->lang[u];
        off[k + 1] = off[k] + (ioff[u + 1] - ioff[u]);
    }
    s->n_ids_out = (size_t)off[nt];
    if (mem_resize(&out[4], s->n_ids_out * 4) < 0) fail_nomem(s);
    int32_t *ids = (int32_t *)out[4].p;
    for (size_t k = 0; k < nt; k++) {
        int64_t u = s->t_user[k], c = off[k + 1] - off[k];
        if (c) memcpy(ids + off[k], in->ids + ioff[u], (size_t)c * 4);
    }
}

static void add_column(Sim *s, const char *name, Mem *mem, size_t nbytes) {
    Column *col = PyObject_New(Column, &ColumnType);
    if (!col) fail(s);
    col->mem = *mem;
    col->nbytes = (Py_ssize_t)nbytes;
    memset(mem, 0, sizeof(Mem));
    int err = PyDict_SetItemString(s->out, name, (PyObject *)col);
    Py_DECREF(col);
    if (err < 0) fail(s);
}

/* s->out: the counters, and the ticket columns handed over to Column objects. */
static void build_output(Sim *s) {
    static const char *const extra_names[5] = {"cls", "mode", "lang", "interest_offsets", "interest_ids"};
    visit_columns(s);
#ifdef PREFAULT
    prefault_stop(s);
#endif
    size_t nt = s->nt;
    size_t extra_bytes[5] = {nt * 2, nt * 2, nt * 2, (nt + 1) * 8, s->n_ids_out * 4};
    s->out = Py_BuildValue("{s:L,s:L,s:L,s:L,s:L}", "visits", (long long)s->visits, "pairings",
                           (long long)s->pairings, "gave_up", (long long)s->gave_up, "peak_online",
                           (long long)s->peak, "events", (long long)s->events);
    if (!s->out) fail(s);
    for (int c = 0; c < N_COLS; c++) add_column(s, COL_NAMES[c], &s->col[c], nt * COL_SIZE[c]);
    for (int c = 0; c < 5; c++) add_column(s, extra_names[c], &s->extra[c], extra_bytes[c]);
    s->done = 1;
}

/* ------------------------------------------------------------------ module */
typedef struct { Py_buffer view; int taken; } Arg;

static int get_arg(PyObject *obj, Arg *a, Py_ssize_t itemsize, Py_ssize_t count, const char *name) {
    if (PyObject_GetBuffer(obj, &a->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    a->taken = 1;
    if (a->view.itemsize != itemsize || (count >= 0 && a->view.len != count * itemsize)) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items of %zd bytes", name, count, itemsize);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(run_doc,
"run(arrival, patience, chat_pool, core_pool, cls, chats, interest_offsets, interest_queues,\n"
"    mode, lang, interest_ids, n_queues, n_core_pools, n_chat_pools, n_cls, interest_fallback, rematch_block, horizon,\n"
"    block_for, progress) -> dict\n\n"
"Run the simulation (harness/simulate/kernel.py prepares the arguments). Returns the\n"
"counters and the ticket columns (Column objects, for np.frombuffer).");

static PyObject *run(PyObject *self, PyObject *args) {
    PyObject *obj[11], *block_for, *progress;
    int n_queues, n_core_pools, n_chat_pools, n_cls;
    double fb, rb, horizon;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOiiiidddOO", &obj[0], &obj[1], &obj[2], &obj[3], &obj[4], &obj[5],
                          &obj[6], &obj[7], &obj[8], &obj[9], &obj[10], &n_queues, &n_core_pools, &n_chat_pools, &n_cls, &fb, &rb, &horizon,
                          &block_for, &progress))
        return NULL;
    if (!PyCallable_Check(block_for) || (progress != Py_None && !PyCallable_Check(progress))) {
        PyErr_SetString(PyExc_TypeError, "block_for and progress must be callable (progress may be None)");
        return NULL;
    }
    if (n_queues < 0 || n_core_pools < 0 || n_chat_pools < 0 || n_cls < 0 || n_cls > INT16_MAX) {
        PyErr_SetString(PyExc_ValueError, "simulation kernel: counts out of range");
        return NULL;
    }
    Arg a[11];
    memset(a, 0, sizeof(a));
    PyObject *result = NULL;
    Sim *s = (Sim *)calloc(1, sizeof(Sim));
    if (!s) return PyErr_NoMemory();
    if (get_arg(obj[0], &a[0], 8, -1, "arrival") < 0) goto done;
    Py_ssize_t n = a[0].view.len / 8;
    if (n >= INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "simulation kernel: more than 2**31 visits");
        goto done;
    }
    if (get_arg(obj[1], &a[1], 8, n, "patience") < 0 || get_arg(obj[2], &a[2], 4, n, "chat_pool") < 0 ||
        get_arg(obj[3], &a[3], 4, n, "core_pool") < 0 || get_arg(obj[4], &a[4], 4, n, "cls") < 0 ||
        get_arg(obj[5], &a[5], 4, n, "chats") < 0 || get_arg(obj[6], &a[6], 8, n + 1, "interest_offsets") < 0 ||
        get_arg(obj[7], &a[7], 4, -1, "interest_queues") < 0 || get_arg(obj[8], &a[8], 2, n, "mode") < 0 ||
        get_arg(obj[9], &a[9], 2, n, "lang") < 0 || get_arg(obj[10], &a[10], 4, -1, "interest_ids") < 0)
        goto done;
    Inputs in = {
        .arrival = (const double *)a[0].view.buf, .patience = (const double *)a[1].view.buf,
        .chat_pool = (const int32_t *)a[2].view.buf, .core_pool = (const int32_t *)a[3].view.buf,
        .cls = (const int32_t *)a[4].view.buf, .chats = (const int32_t *)a[5].view.buf,
        .ioff = (const int64_t *)a[6].view.buf, .iq = (const int32_t *)a[7].view.buf, .n_iq = a[7].view.len / 4,
        .mode = (const int16_t *)a[8].view.buf, .lang = (const int16_t *)a[9].view.buf,
        .ids = (const int32_t *)a[10].view.buf, .n_ids = a[10].view.len / 4,
    };
    s->n = (int32_t)n;
    s->arrival = in.arrival;
    s->in = &in;
    s->n_queues = n_queues;
    s->n_core_pools = n_core_pools;
    s->n_chat_pools = n_chat_pools;
    s->n_cls = n_cls;
    s->fb = fb;
    s->rb = rb;
    s->horizon = horizon;
    s->block_for = block_for;
    s->progress = progress;
    if (setjmp(s->jb) == 0) {
        sim_setup(s, &in);
        loop(s);
        build_output(s);
    }
    if (s->done) { /* not assigned between setjmp and a longjmp: no clobbering */
        result = s->out;
        s->out = NULL;
    }
done:
    for (int j = 0; j < 11; j++)
        if (a[j].taken) PyBuffer_Release(&a[j].view);
    sim_free(s);
    free(s);
    return result;
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS, run_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernel",
    "The simulator's event loop with the reference pairing core's rules, in C (harness/simulate/kernel.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernel(void) {
    if (PyType_Ready(&ColumnType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Unsupported = PyErr_NewExceptionWithDoc(
        "harness.simulate._kernel.Unsupported",
        "The input breaks a condition the kernel's exactness rests on (kernel.py falls back to Python).",
        PyExc_ValueError, NULL);
    if (!Unsupported || PyModule_AddObject(m, "Unsupported", Unsupported) < 0) {
        Py_XDECREF(Unsupported);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(Unsupported); /* PyModule_AddObject stole one; keep ours */
    return m;
}
