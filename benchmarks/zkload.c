/*
 * zkload - a small native load generator for ZooKeeper-protocol servers.
 *
 * Uses the Apache ZooKeeper C client (multi-threaded library, async API).
 * N sessions, each keeping K requests outstanding: every completion
 * immediately issues the next request on the same slot (closed loop).
 *
 * Workloads:
 *   get     zoo_aget  of a per-session node holding <size> bytes
 *   set     zoo_aset  (version -1) of a per-session node with <size> bytes
 *   create  zoo_acreate of persistent nodes with <size> bytes under a
 *           per-run parent (unique names, or sequential with -S)
 *   fill    create <count> nodes /<root>/p<j>/<i> (j = i % parents) as fast as
 *           possible; used to load a server for memory measurements
 *
 * Ensembles: with -R and a comma-separated -h list, session i connects only to
 * host i % nhosts, so sessions are spread evenly over the members (the C
 * client would otherwise pick a random member per session). Each session then
 * waits until the nodes created during setup are visible on its member.
 *
 * Output: one JSON line on stdout, e.g.
 *   {"op":"get","ops_per_sec":12345.6,"p50_ms":0.512,"p99_ms":1.234,"count":123456,...}
 *
 * Latencies are recorded per request (issue -> completion callback) into a
 * log-linear histogram with 128 sub-buckets per power of two (<0.8% error).
 *
 * Build: make -C benchmarks   (or see benchmarks/run.py, which builds it)
 */
#define _GNU_SOURCE
#ifndef THREADED
#define THREADED 1 /* enables the synchronous API of libzookeeper_mt */
#endif
#include <zookeeper/zookeeper.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* histogram                                                           */

#define SUB_BITS 7
#define SUB (1u << SUB_BITS)          /* 128 sub-buckets per octave     */
#define NBUCKETS (SUB * 58 + 2 * SUB) /* covers the whole uint64 range  */

typedef struct {
    uint64_t b[NBUCKETS];
    uint64_t n, sum, min, max;
} hist_t;

static inline unsigned hist_idx(uint64_t v)
{
    if (v < 2 * SUB) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* floor(log2 v) >= 8 */
    unsigned shift = e - SUB_BITS;
    return SUB * shift + (unsigned)(v >> shift);
}

/* representative value (bucket midpoint) for a bucket index */
static double hist_val(unsigned idx)
{
    if (idx < 2 * SUB) return (double)idx;
    unsigned shift = idx / SUB - 1;
    uint64_t mant = idx - SUB * shift;
    double lo = (double)(mant << shift);
    double hi = (double)((mant + 1) << shift);
    return (lo + hi) / 2.0;
}

static void hist_init(hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static inline void hist_add(hist_t *h, uint64_t v)
{
    h->b[hist_idx(v)]++;
    h->n++;
    h->sum += v;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

static void hist_merge(hist_t *dst, const hist_t *src)
{
    for (unsigned i = 0; i < NBUCKETS; i++) dst->b[i] += src->b[i];
    dst->n += src->n;
    dst->sum += src->sum;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
}

static double hist_pct(const hist_t *h, double q)
{
    if (h->n == 0) return 0.0;
    uint64_t target = (uint64_t)(q * (double)h->n + 0.999999);
    if (target < 1) target = 1;
    if (target > h->n) target = h->n;
    uint64_t acc = 0;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        acc += h->b[i];
        if (acc >= target) {
            double v = hist_val(i);
            if (v > (double)h->max) v = (double)h->max;
            if (v < (double)h->min) v = (double)h->min;
            return v;
        }
    }
    return (double)h->max;
}

/* ------------------------------------------------------------------ */
/* state                                                               */

enum { OP_GET, OP_SET, OP_CREATE, OP_FILL };
enum { PH_WARMUP = 0, PH_MEASURE = 1, PH_STOP = 2 };

struct session;

typedef struct {
    struct session *s;
    uint64_t t0;
} slot_t;

typedef struct session {
    int id;
    zhandle_t *zh;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;           /* last session state seen by the watcher */
    int dead;            /* fatal error: stop issuing on this session */
    int inflight;        /* atomic */
    uint64_t seq;        /* atomic; name counter for unique creates */
    uint64_t errors;     /* atomic */
    int last_error;
    char node[512];      /* get/set target */
    slot_t *slots;
    hist_t h;            /* touched only by this handle's completion thread */
} session_t;

static struct {
    const char *hosts;
    int op;
    int sessions;
    int outstanding;
    double duration;
    double warmup;
    int size;
    int sequential;
    uint64_t fill_count;
    int fill_parents;
    int quiet;
    int pin;             /* -R: session i uses only host i % nhosts */
    char root[256];
    char *data;
    int phase;           /* atomic */
    uint64_t fill_next;  /* atomic */
    uint64_t bad_replies; /* atomic */
} g;

static const char *op_name(int op)
{
    switch (op) {
    case OP_GET: return "get";
    case OP_SET: return "set";
    case OP_CREATE: return "create";
    default: return "fill";
    }
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void sleep_s(double s)
{
    if (s <= 0) return;
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static int fatal_rc(int rc)
{
    /* system errors (connection loss, timeouts, ...) and session-level
     * API errors end the session; per-request API errors (e.g. ZNODEEXISTS)
     * are only counted. */
    if (rc < 0 && rc > ZAPIERROR) return 1;
    return rc == ZSESSIONEXPIRED || rc == ZCLOSING || rc == ZINVALIDSTATE ||
           rc == ZAUTHFAILED || rc == ZSESSIONMOVED;
}

/* ------------------------------------------------------------------ */
/* request loop                                                        */

static void issue(slot_t *sl);

static void complete(slot_t *sl, int rc)
{
    uint64_t t1 = now_ns();
    session_t *s = sl->s;
    int ph = __atomic_load_n(&g.phase, __ATOMIC_ACQUIRE);
    if (rc == ZOK) {
        if (ph == PH_MEASURE) hist_add(&s->h, t1 - sl->t0);
    } else {
        __atomic_add_fetch(&s->errors, 1, __ATOMIC_RELAXED);
        s->last_error = rc;
        if (fatal_rc(rc)) __atomic_store_n(&s->dead, 1, __ATOMIC_RELEASE);
    }
    if (ph != PH_STOP && !__atomic_load_n(&s->dead, __ATOMIC_ACQUIRE))
        issue(sl);
    else
        __atomic_sub_fetch(&s->inflight, 1, __ATOMIC_ACQ_REL);
}

/* Replies are sanity-checked (cheaply): a server that answers ZOK with the
 * wrong payload is counted under bad_replies, not as a completed request. */
static void bad_reply(slot_t *sl)
{
    __atomic_add_fetch(&g.bad_replies, 1, __ATOMIC_RELAXED);
    complete(sl, ZAPIERROR); /* counted as an error, session continues */
}

static void data_cb(int rc, const char *value, int value_len,
                    const struct Stat *stat, const void *data)
{
    if (rc == ZOK && (value_len != g.size || stat == NULL || stat->dataLength != g.size ||
                      (g.size > 0 && (value == NULL || value[0] != 'x' ||
                                      value[g.size - 1] != 'x')))) {
        bad_reply((slot_t *)data);
        return;
    }
    complete((slot_t *)data, rc);
}

static void stat_cb(int rc, const struct Stat *stat, const void *data)
{
    if (rc == ZOK && (stat == NULL || stat->dataLength != g.size)) {
        bad_reply((slot_t *)data);
        return;
    }
    complete((slot_t *)data, rc);
}

static void string_cb(int rc, const char *value, const void *data)
{
    if (rc == ZOK && (value == NULL || strncmp(value, g.root, strlen(g.root)) != 0)) {
        bad_reply((slot_t *)data);
        return;
    }
    complete((slot_t *)data, rc);
}

/* Issues the next request on a slot. The slot's in-flight accounting is
 * already held by the caller; it is released here if nothing is issued. */
static void issue(slot_t *sl)
{
    session_t *s = sl->s;
    char path[512];
    int rc;
    switch (g.op) {
    case OP_GET:
        sl->t0 = now_ns();
        rc = zoo_aget(s->zh, s->node, 0, data_cb, sl);
        break;
    case OP_SET:
        sl->t0 = now_ns();
        rc = zoo_aset(s->zh, s->node, g.data, g.size, -1, stat_cb, sl);
        break;
    case OP_CREATE:
        if (g.sequential) {
            snprintf(path, sizeof(path), "%s/c/s%d-", g.root, s->id);
        } else {
            uint64_t n = __atomic_fetch_add(&s->seq, 1, __ATOMIC_RELAXED);
            snprintf(path, sizeof(path), "%s/c/s%d-%" PRIu64, g.root, s->id, n);
        }
        sl->t0 = now_ns();
        rc = zoo_acreate(s->zh, path, g.data, g.size, &ZOO_OPEN_ACL_UNSAFE,
                         g.sequential ? ZOO_PERSISTENT_SEQUENTIAL : ZOO_PERSISTENT,
                         string_cb, sl);
        break;
    default: { /* OP_FILL */
        uint64_t i = __atomic_fetch_add(&g.fill_next, 1, __ATOMIC_RELAXED);
        if (i >= g.fill_count) {
            __atomic_sub_fetch(&s->inflight, 1, __ATOMIC_ACQ_REL);
            return;
        }
        snprintf(path, sizeof(path), "%s/p%d/%" PRIu64, g.root,
                 (int)(i % (uint64_t)g.fill_parents), i);
        sl->t0 = now_ns();
        rc = zoo_acreate(s->zh, path, g.data, g.size, &ZOO_OPEN_ACL_UNSAFE,
                         ZOO_PERSISTENT, string_cb, sl);
        break;
    }
    }
    if (rc != ZOK) {
        __atomic_add_fetch(&s->errors, 1, __ATOMIC_RELAXED);
        s->last_error = rc;
        __atomic_store_n(&s->dead, 1, __ATOMIC_RELEASE);
        __atomic_sub_fetch(&s->inflight, 1, __ATOMIC_ACQ_REL);
    }
}

/* ------------------------------------------------------------------ */
/* sessions                                                            */

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh; (void)path;
    session_t *s = (session_t *)ctx;
    if (type != ZOO_SESSION_EVENT || s == NULL) return;
    pthread_mutex_lock(&s->mu);
    s->state = state;
    if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE)
        __atomic_store_n(&s->dead, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int wait_connected(session_t *s, double timeout_s)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += (time_t)timeout_s;
    pthread_mutex_lock(&s->mu);
    while (s->state != ZOO_CONNECTED_STATE && !s->dead) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT) break;
    }
    int ok = s->state == ZOO_CONNECTED_STATE;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static int ensure_node(zhandle_t *zh, const char *path, const char *data, int len)
{
    int rc = zoo_create(zh, path, data, len, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT,
                        NULL, 0);
    if (rc == ZNODEEXISTS && data != NULL)
        rc = zoo_set(zh, path, data, len, -1);
    else if (rc == ZNODEEXISTS)
        rc = ZOK;
    if (rc != ZOK) fprintf(stderr, "zkload: create %s: %s\n", path, zerror(rc));
    return rc;
}

/* Polls until `path` exists for this session's server (setup ran on session
 * 0, possibly through another ensemble member). */
static int wait_visible(zhandle_t *zh, const char *path, double timeout_s)
{
    uint64_t dl = now_ns() + (uint64_t)(timeout_s * 1e9);
    int rc;
    while ((rc = zoo_exists(zh, path, 0, NULL)) == ZNONODE && now_ns() < dl)
        sleep_s(0.01);
    if (rc != ZOK) fprintf(stderr, "zkload: exists %s: %s\n", path, zerror(rc));
    return rc;
}

/* The i-th (modulo their number) entry of a comma-separated host list. */
static const char *nth_host(const char *hosts, int i, char *buf, size_t len)
{
    int n = 1;
    for (const char *p = hosts; *p; p++) n += *p == ',';
    int want = i % n;
    const char *start = hosts;
    for (int k = 0; k < want; k++) start = strchr(start, ',') + 1;
    const char *end = strchr(start, ',');
    size_t sz = end ? (size_t)(end - start) : strlen(start);
    if (sz >= len) sz = len - 1;
    memcpy(buf, start, sz);
    buf[sz] = '\0';
    return buf;
}

/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: zkload [options]\n"
        "  -h HOST:PORT   server (default 127.0.0.1:2181)\n"
        "  -o OP          get | set | create | fill (default get)\n"
        "  -n N           sessions (default 8)\n"
        "  -k K           outstanding requests per session (default 8)\n"
        "  -d SECONDS     measured duration (default 10)\n"
        "  -w SECONDS     warmup before measuring (default 3)\n"
        "  -s BYTES       data size (default 100)\n"
        "  -S             create: sequential nodes (default: unique names)\n"
        "  -r PATH        root znode for this run (default /zkload-<pid>-<time>;\n"
        "                 for fill: /zkfill)\n"
        "  -N COUNT       fill: number of nodes (default 1000000)\n"
        "  -P PARENTS     fill: number of parent nodes (default 10)\n"
        "  -q             silence the C client log completely (default: errors only)\n"
        "  -R             with a comma-separated -h list: pin session i to host\n"
        "                 i %% nhosts (even spread over ensemble members)\n");
}

int main(int argc, char **argv)
{
    g.hosts = "127.0.0.1:2181";
    g.op = OP_GET;
    g.sessions = 8;
    g.outstanding = 8;
    g.duration = 10;
    g.warmup = 3;
    g.size = 100;
    g.fill_count = 1000000;
    g.fill_parents = 10;
    const char *root = NULL;

    int c;
    while ((c = getopt(argc, argv, "h:o:n:k:d:w:s:Sr:N:P:qR")) != -1) {
        switch (c) {
        case 'h': g.hosts = optarg; break;
        case 'o':
            if (!strcmp(optarg, "get")) g.op = OP_GET;
            else if (!strcmp(optarg, "set")) g.op = OP_SET;
            else if (!strcmp(optarg, "create")) g.op = OP_CREATE;
            else if (!strcmp(optarg, "fill")) g.op = OP_FILL;
            else { usage(stderr); return 2; }
            break;
        case 'n': g.sessions = atoi(optarg); break;
        case 'k': g.outstanding = atoi(optarg); break;
        case 'd': g.duration = atof(optarg); break;
        case 'w': g.warmup = atof(optarg); break;
        case 's': g.size = atoi(optarg); break;
        case 'S': g.sequential = 1; break;
        case 'r': root = optarg; break;
        case 'N': g.fill_count = strtoull(optarg, NULL, 10); break;
        case 'P': g.fill_parents = atoi(optarg); break;
        case 'q': g.quiet = 1; break;
        case 'R': g.pin = 1; break;
        default: usage(stderr); return 2;
        }
    }
    if (g.sessions < 1 || g.outstanding < 1 || g.size < 0 || g.fill_parents < 1) {
        usage(stderr);
        return 2;
    }
    if (root)
        snprintf(g.root, sizeof(g.root), "%s", root);
    else if (g.op == OP_FILL)
        snprintf(g.root, sizeof(g.root), "/zkfill");
    else
        snprintf(g.root, sizeof(g.root), "/zkload-%d-%ld", (int)getpid(), (long)time(NULL));

    g.data = malloc((size_t)g.size + 1);
    memset(g.data, 'x', (size_t)g.size);

    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    FILE *devnull = NULL;
    if (g.quiet) {
        devnull = fopen("/dev/null", "w");
        if (devnull) zoo_set_log_stream(devnull);
    }

    session_t *ss = calloc((size_t)g.sessions, sizeof(session_t));
    for (int i = 0; i < g.sessions; i++) {
        session_t *s = &ss[i];
        s->id = i;
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        hist_init(&s->h);
        snprintf(s->node, sizeof(s->node), "%s/s%d", g.root, i);
        s->slots = calloc((size_t)g.outstanding, sizeof(slot_t));
        for (int k = 0; k < g.outstanding; k++) s->slots[k].s = s;
        char one[512];
        const char *hosts = g.pin ? nth_host(g.hosts, i, one, sizeof(one)) : g.hosts;
        s->zh = zookeeper_init(hosts, watcher, 30000, NULL, s, 0);
        if (!s->zh) {
            fprintf(stderr, "zkload: zookeeper_init failed: %s\n", strerror(errno));
            return 1;
        }
        /* By default the client re-resolves the host list (getaddrinfo, with
         * socket/bind/close probes) every time its I/O thread polls, i.e.
         * roughly once per request: disable routine re-resolution. */
        zoo_set_servers_resolution_delay(s->zh, -1);
    }
    for (int i = 0; i < g.sessions; i++) {
        if (!wait_connected(&ss[i], 20)) {
            fprintf(stderr, "zkload: session %d did not connect to %s\n", i, g.hosts);
            return 1;
        }
    }

    /* setup */
    zhandle_t *z0 = ss[0].zh;
    if (ensure_node(z0, g.root, NULL, -1) != ZOK) return 1;
    if (g.op == OP_GET || g.op == OP_SET) {
        for (int i = 0; i < g.sessions; i++)
            if (ensure_node(z0, ss[i].node, g.data, g.size) != ZOK) return 1;
    } else if (g.op == OP_CREATE) {
        char p[512];
        snprintf(p, sizeof(p), "%s/c", g.root);
        if (ensure_node(z0, p, NULL, -1) != ZOK) return 1;
    } else {
        char p[512];
        for (int j = 0; j < g.fill_parents; j++) {
            snprintf(p, sizeof(p), "%s/p%d", g.root, j);
            if (ensure_node(z0, p, NULL, -1) != ZOK) return 1;
        }
    }

    /* a member other than session 0's may not have applied the setup yet */
    for (int i = 1; i < g.sessions; i++) {
        char p[512];
        if (g.op == OP_GET || g.op == OP_SET) snprintf(p, sizeof(p), "%s", ss[i].node);
        else if (g.op == OP_CREATE) snprintf(p, sizeof(p), "%s/c", g.root);
        else snprintf(p, sizeof(p), "%s/p%d", g.root, g.fill_parents - 1);
        if (wait_visible(ss[i].zh, p, 20) != ZOK) {
            fprintf(stderr, "zkload: %s not visible to session %d\n", p, i);
            return 1;
        }
    }

    /* run */
    uint64_t t_start = 0, t_end = 0;
    double cpu_start = 0, cpu_end = 0;
    if (g.op == OP_FILL) {
        __atomic_store_n(&g.phase, PH_MEASURE, __ATOMIC_RELEASE);
        t_start = now_ns();
        cpu_start = cpu_s();
    } else {
        __atomic_store_n(&g.phase, PH_WARMUP, __ATOMIC_RELEASE);
    }
    for (int k = 0; k < g.outstanding; k++) {
        for (int i = 0; i < g.sessions; i++) {
            __atomic_add_fetch(&ss[i].inflight, 1, __ATOMIC_ACQ_REL);
            issue(&ss[i].slots[k]);
        }
    }

    int timed_out = 0;
    if (g.op == OP_FILL) {
        /* wait until every session has drained (all nodes issued+completed) */
        for (;;) {
            int busy = 0;
            for (int i = 0; i < g.sessions; i++)
                if (__atomic_load_n(&ss[i].inflight, __ATOMIC_ACQUIRE) > 0) busy = 1;
            if (!busy) break;
            sleep_s(0.005);
        }
        t_end = now_ns();
        cpu_end = cpu_s();
    } else {
        sleep_s(g.warmup);
        cpu_start = cpu_s();
        t_start = now_ns();
        __atomic_store_n(&g.phase, PH_MEASURE, __ATOMIC_RELEASE);
        /* markers let a driver script sample server CPU for exactly this window */
        fputs("#measure-start\n", stderr);
        fflush(stderr);
        sleep_s(g.duration);
        __atomic_store_n(&g.phase, PH_STOP, __ATOMIC_RELEASE);
        t_end = now_ns();
        cpu_end = cpu_s();
        fputs("#measure-end\n", stderr);
        fflush(stderr);
        /* drain */
        uint64_t dl = now_ns() + 30ull * 1000000000ull;
        for (;;) {
            int busy = 0;
            for (int i = 0; i < g.sessions; i++)
                if (__atomic_load_n(&ss[i].inflight, __ATOMIC_ACQUIRE) > 0) busy = 1;
            if (!busy) break;
            if (now_ns() > dl) { timed_out = 1; break; }
            sleep_s(0.002);
        }
    }

    /* no cleanup of created znodes: benchmark servers use throw-away data dirs */
    for (int i = 0; i < g.sessions; i++) zookeeper_close(ss[i].zh);

    hist_t *tot = malloc(sizeof(hist_t));
    hist_init(tot);
    uint64_t errors = 0;
    int dead = 0, last_error = 0;
    for (int i = 0; i < g.sessions; i++) {
        hist_merge(tot, &ss[i].h);
        errors += ss[i].errors;
        if (ss[i].dead) dead++;
        if (ss[i].last_error) last_error = ss[i].last_error;
    }
    double secs = (double)(t_end - t_start) / 1e9;
    double ops = secs > 0 ? (double)tot->n / secs : 0.0;

    printf("{\"op\":\"%s\",\"ops_per_sec\":%.1f,\"p50_ms\":%.4f,\"p99_ms\":%.4f,"
           "\"count\":%" PRIu64 ",\"p90_ms\":%.4f,\"p999_ms\":%.4f,\"mean_ms\":%.4f,"
           "\"min_ms\":%.4f,\"max_ms\":%.4f,\"errors\":%" PRIu64 ",\"bad_replies\":%" PRIu64 ",\"dead_sessions\":%d,"
           "\"last_error\":\"%s\",\"elapsed_s\":%.3f,\"sessions\":%d,\"outstanding\":%d,"
           "\"data_bytes\":%d,\"warmup_s\":%.1f,\"sequential\":%s,\"drain_timeout\":%s,"
           "\"client_cpu_cores\":%.3f,\"root\":\"%s\",\"pinned\":%s}\n",
           op_name(g.op), ops, hist_pct(tot, 0.50) / 1e6, hist_pct(tot, 0.99) / 1e6,
           tot->n, hist_pct(tot, 0.90) / 1e6, hist_pct(tot, 0.999) / 1e6,
           tot->n ? (double)tot->sum / (double)tot->n / 1e6 : 0.0,
           tot->n ? (double)tot->min / 1e6 : 0.0, (double)tot->max / 1e6, errors, g.bad_replies, dead,
           last_error ? zerror(last_error) : "", secs, g.sessions, g.outstanding, g.size,
           g.op == OP_FILL ? 0.0 : g.warmup, g.sequential ? "true" : "false",
           timed_out ? "true" : "false", secs > 0 ? (cpu_end - cpu_start) / secs : 0.0,
           g.root, g.pin ? "true" : "false");
    fflush(stdout);

    if (devnull) fclose(devnull);
    return (tot->n == 0 || dead > 0) ? 1 : 0;
}
