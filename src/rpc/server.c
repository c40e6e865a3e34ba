/* gRPC server transport: one epoll loop thread, libnghttp2 server sessions,
 * a worker pool for blocking handlers.
 *
 * Threads and ownership
 * ---------------------
 * The loop thread owns the listening socket, every connection (struct conn)
 * and every nghttp2 session; nothing else touches them.  A call (struct
 * hp_rpc_stream, one per HTTP/2 stream) is reference counted: the loop holds
 * one reference while the call is attached to its connection, a worker holds
 * one while it runs the handler, a streaming handler holds its own, and the
 * "dirty" list (below) holds one per queued entry.
 *
 * Everything that other threads may change on a call (the outgoing message
 * queue, the final status, the closed flag) is protected by srv->mu.  When a
 * worker or a streaming producer changes a call it puts the call on
 * srv->dirty (the completion queue) and writes srv->wake_fd; the loop drains
 * the list and pushes the new data into the session ("pump").
 *
 * A call's response is a queue of framed messages plus a final status.  The
 * loop sends response HEADERS only when the first message is queued; a call
 * finishing before any message gets a trailers-only response.
 */
#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"
#include "util/cleanup.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE           (64 * 1024)
#define WBUF_HIGH           (64 * 1024)
#define MAX_EVENTS          64
#define PATH_MAX_LEN        256
#define STREAM_WINDOW       (1 << 20)
#define CONN_WINDOW         (16 << 20)
#define READS_PER_EVENT     16
#define DEFAULT_WORKERS     4
#define DEFAULT_MAX_WORKERS 64
#define EXTRA_IDLE_S        30 /* an extra worker leaves after this long without a job */
#define DEFAULT_STREAMS     256
#define DEFAULT_MAX_CONNS   1024

enum src_type { SRC_LISTEN, SRC_WAKE, SRC_STOP, SRC_CONN, SRC_WATCH };

/* Every object registered in epoll starts with this tag. */
struct ev_src {
    enum src_type type;
};

/* One framed response message: 5-byte prefix + body. */
struct out_msg {
    struct out_msg *next;
    size_t len;     /* total bytes, prefix included */
    size_t off;     /* bytes already handed to nghttp2 */
    uint8_t *body;  /* len - 5 bytes */
    uint8_t *owned; /* freed with the message, or NULL */
    bool heap;      /* the out_msg itself was malloc'd */
    uint8_t pfx[HP_RPC_PREFIX_LEN];
};

enum call_phase {
    PH_HEADERS, /* request headers arriving */
    PH_BODY,    /* request body arriving */
    PH_RUNNING, /* handler dispatched */
    PH_DONE,    /* rejected / answered before dispatch */
};

struct conn;

struct hp_rpc_stream {
    atomic_int refs;     /* lifetime */
    atomic_int ext_refs; /* handler-held references (streaming calls) */
    atomic_bool cancelled;
    atomic_bool closed; /* no more sends accepted; written under srv->mu */
    hp_rpc_server *srv;

    /* --- loop thread only --- */
    struct conn *conn; /* NULL once detached */
    int32_t stream_id;
    struct hp_rpc_stream *cprev, *cnext; /* conn->calls */
    struct hp_rpc_stream *dprev, *dnext; /* srv deadline list */
    bool in_dl;
    const hp_rpc_method *m;
    enum call_phase phase;
    bool has_method, is_post, ct_seen, ct_ok, bad_timeout, path_long;
    size_t path_len;
    char path[PATH_MAX_LEN];
    int64_t deadline_ns;
    uint8_t pfx_in[HP_RPC_PREFIX_LEN];
    size_t pfx_got;
    bool in_body;
    uint8_t *req;
    uint32_t req_len, req_got;
    unsigned nmsgs;
    bool headers_sent, responded;

    /* --- protected by srv->mu --- */
    struct out_msg *qhead, *qtail;
    bool finished;
    int fin_code;
    bool dirty;
    struct hp_rpc_stream *dirty_next;
    char fin_msg[HP_ERR_MSG_MAX]; /* immutable once finished */

    /* --- worker pool (pool_mu) --- */
    struct hp_rpc_stream *job_next;

    struct out_msg unary_msg; /* embedded: the unary response */
};

struct conn {
    struct ev_src src;
    hp_rpc_server *srv;
    int fd;
    bool dead, epollout;
    nghttp2_session *sess;
    hp_buf wbuf;
    size_t woff;
    struct hp_rpc_stream *calls;
    struct conn *prev, *next; /* srv->conns, or srv->grave_conns when dead */
    struct conn *flush_next;  /* process_dirty's local list */
    bool flush_queued;
};

struct watch {
    struct ev_src src;
    int fd;
    bool is_timer, dead;
    hp_rpc_fd_cb cb;
    hp_rpc_timer_cb tcb;
    void *ud;
    struct watch *next;
};

struct hp_rpc_server {
    hp_rpc_options opts;
    char *socket_path;
    int listen_fd, epfd, wake_fd, stop_fd;
    struct ev_src listen_src, wake_src, stop_src;
    bool socket_created;

    hp_rpc_method *methods;
    size_t nmethods, cap_methods;

    nghttp2_session_callbacks *cbs;
    nghttp2_option *ngopt;
    nghttp2_settings_entry settings[3];

    /* loop thread */
    struct conn *conns, *grave_conns;
    unsigned nconns;
    unsigned live_calls;
    struct hp_rpc_stream *dl_head, *dl_tail;
    struct watch *watches, *grave_watches;
    bool shutting;
    int64_t shutdown_deadline;
    uint8_t *rbuf;

    atomic_uint grace_ms;

    /* completion queue */
    pthread_mutex_t mu;
    struct hp_rpc_stream *dirty_head, *dirty_tail;

    /* worker pool */
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    struct hp_rpc_stream *job_head, *job_tail;
    bool pool_stop;
    pthread_t *threads; /* the `workers` permanent ones (joined at the end) */
    unsigned nthreads;
    unsigned idle;   /* workers waiting for a job */
    unsigned queued; /* jobs not picked up yet */
    unsigned nextra; /* extra (detached) workers alive */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ------------------------------------------------------------------ calls */

static void out_msg_free(struct out_msg *m)
{
    free(m->owned);
    if (m->heap)
        free(m);
}

/* Drop queued messages; keeps a partially sent head when keep_partial (its
 * remaining bytes are needed to keep the framing intact).  Under srv->mu. */
static void queue_clear_locked(hp_rpc_stream *c, bool keep_partial)
{
    struct out_msg *m = c->qhead, *keep = NULL;
    if (keep_partial && m && m->off > 0) {
        keep = m;
        m = m->next;
        keep->next = NULL;
    }
    while (m) {
        struct out_msg *n = m->next;
        out_msg_free(m);
        m = n;
    }
    c->qhead = c->qtail = keep;
}

static void call_free(hp_rpc_stream *c)
{
    queue_clear_locked(c, false); /* last reference: no other thread */
    free(c->req);
    free(c);
}

static hp_rpc_stream *call_ref(hp_rpc_stream *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

static void call_unref(hp_rpc_stream *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1)
        call_free(c);
}

static void wake_loop(hp_rpc_server *srv)
{
    uint64_t one = 1;
    ssize_t n;
    do
        n = write(srv->wake_fd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
}

/* Put c on the completion list; under srv->mu.  Returns true when the loop
 * must be woken (the list was empty). */
static bool mark_dirty_locked(hp_rpc_stream *c)
{
    hp_rpc_server *srv = c->srv;
    bool was_empty = srv->dirty_head == NULL;
    if (c->dirty)
        return false;
    c->dirty = true;
    call_ref(c);
    c->dirty_next = NULL;
    if (srv->dirty_tail)
        srv->dirty_tail->dirty_next = c;
    else
        srv->dirty_head = c;
    srv->dirty_tail = c;
    return was_empty;
}

static void push_msg_locked(hp_rpc_stream *c, struct out_msg *m)
{
    m->next = NULL;
    if (c->qtail)
        c->qtail->next = m;
    else
        c->qhead = m;
    c->qtail = m;
}

/* Set the final status unless already set; under srv->mu. */
static bool finish_locked(hp_rpc_stream *c, int code, const char *msg)
{
    if (c->finished)
        return false;
    c->finished = true;
    c->fin_code = code;
    snprintf(c->fin_msg, sizeof c->fin_msg, "%s", msg ? msg : "");
    atomic_store(&c->closed, true);
    return true;
}

int hp_rpc_stream_send(hp_rpc_stream *s, const uint8_t *msg, size_t len)
{
    hp_rpc_server *srv = s->srv;
    struct out_msg *m;
    bool wake;
    if (len > UINT32_MAX || atomic_load(&s->closed))
        return -1;
    m = malloc(sizeof *m + len);
    if (m == NULL)
        return -1;
    *m = (struct out_msg){.len = len + HP_RPC_PREFIX_LEN, .body = (uint8_t *)(m + 1), .heap = true};
    hp_rpc_write_prefix(m->pfx, (uint32_t)len);
    if (len)
        memcpy(m->body, msg, len);
    pthread_mutex_lock(&srv->mu);
    if (s->finished || atomic_load(&s->closed)) {
        pthread_mutex_unlock(&srv->mu);
        free(m);
        return -1;
    }
    push_msg_locked(s, m);
    wake = mark_dirty_locked(s);
    pthread_mutex_unlock(&srv->mu);
    if (wake)
        wake_loop(srv);
    return 0;
}

void hp_rpc_stream_finish(hp_rpc_stream *s, int code, const char *message)
{
    hp_rpc_server *srv = s->srv;
    bool wake = false;
    pthread_mutex_lock(&srv->mu);
    if (finish_locked(s, code, message))
        wake = mark_dirty_locked(s);
    pthread_mutex_unlock(&srv->mu);
    if (wake)
        wake_loop(srv);
}

bool hp_rpc_stream_closed(hp_rpc_stream *s)
{
    return atomic_load(&s->closed);
}

hp_rpc_stream *hp_rpc_stream_ref(hp_rpc_stream *s)
{
    atomic_fetch_add(&s->ext_refs, 1);
    return call_ref(s);
}

void hp_rpc_stream_unref(hp_rpc_stream *s)
{
    if (s == NULL)
        return;
    /* The last handler reference gone without a finish: end the call cleanly
     * rather than leaving the client waiting forever. */
    if (atomic_fetch_sub(&s->ext_refs, 1) == 1)
        hp_rpc_stream_finish(s, HP_OK, NULL);
    call_unref(s);
}

/* ------------------------------------------------------ response emission */

static const nghttp2_nv resp_headers[] = {
    {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
    {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE},
};

#define MKNV(n, v, vl)                                                                             \
    (nghttp2_nv)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE                  \
    }

/* Build grpc-status / grpc-message entries into nv (room for 2). */
static size_t status_nv(nghttp2_nv *nv, char *codebuf, size_t codesz, char *msgbuf, size_t msgsz,
                        int code, const char *msg)
{
    size_t n = 0, ml;
    int cl = snprintf(codebuf, codesz, "%d", code);
    nv[n++] = MKNV("grpc-status", codebuf, (size_t)cl);
    ml = hp_rpc_percent_encode(msg, msgbuf, msgsz);
    if (ml)
        nv[n++] = MKNV("grpc-message", msgbuf, ml);
    return n;
}

static int submit_trailers_only(hp_rpc_stream *c, const char *http_status, int code,
                                const char *msg)
{
    nghttp2_nv nv[4];
    char codebuf[16], msgbuf[HP_ERR_MSG_MAX * 3 + 1];
    size_t n = 0;
    nv[n++] = MKNV(":status", http_status, strlen(http_status));
    nv[n++] = resp_headers[1];
    n += status_nv(nv + n, codebuf, sizeof codebuf, msgbuf, sizeof msgbuf, code, msg);
    c->responded = true;
    return nghttp2_submit_response(c->conn->sess, c->stream_id, nv, n, NULL);
}

static ssize_t data_read_cb(nghttp2_session *sess, int32_t stream_id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    hp_rpc_stream *c = source->ptr;
    hp_rpc_server *srv = c->srv;
    struct out_msg *done = NULL, **done_tail = &done;
    size_t n = 0;
    bool fin;
    (void)user_data;
    pthread_mutex_lock(&srv->mu);
    while (n < length && c->qhead) {
        struct out_msg *m = c->qhead;
        size_t take = m->len - m->off;
        if (take > length - n)
            take = length - n;
        for (size_t i = 0; i < take;) {
            size_t o = m->off + i;
            if (o < HP_RPC_PREFIX_LEN) {
                size_t k = HP_RPC_PREFIX_LEN - o < take - i ? HP_RPC_PREFIX_LEN - o : take - i;
                memcpy(buf + n + i, m->pfx + o, k);
                i += k;
            } else {
                memcpy(buf + n + i, m->body + (o - HP_RPC_PREFIX_LEN), take - i);
                i = take;
            }
        }
        m->off += take;
        n += take;
        if (m->off == m->len) {
            c->qhead = m->next;
            if (c->qhead == NULL)
                c->qtail = NULL;
            m->next = NULL;
            *done_tail = m;
            done_tail = &m->next;
        }
    }
    fin = c->qhead == NULL && c->finished;
    pthread_mutex_unlock(&srv->mu);
    while (done) {
        struct out_msg *next = done->next;
        out_msg_free(done);
        done = next;
    }
    if (fin) {
        nghttp2_nv nv[2];
        char codebuf[16], msgbuf[HP_ERR_MSG_MAX * 3 + 1];
        size_t k =
            status_nv(nv, codebuf, sizeof codebuf, msgbuf, sizeof msgbuf, c->fin_code, c->fin_msg);
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        c->responded = true;
        if (nghttp2_submit_trailer(sess, stream_id, nv, k) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        return (ssize_t)n;
    }
    if (n == 0)
        return NGHTTP2_ERR_DEFERRED;
    return (ssize_t)n;
}

/* Loop thread: move whatever the call has ready into its session. */
static void call_pump(hp_rpc_stream *c)
{
    hp_rpc_server *srv = c->srv;
    bool has, fin;
    if (c->conn == NULL || c->responded)
        return;
    pthread_mutex_lock(&srv->mu);
    has = c->qhead != NULL;
    fin = c->finished;
    pthread_mutex_unlock(&srv->mu);
    if (!c->headers_sent) {
        if (has) {
            nghttp2_data_provider prd = {.source.ptr = c, .read_callback = data_read_cb};
            c->headers_sent = true;
            if (nghttp2_submit_response(c->conn->sess, c->stream_id, resp_headers, 2, &prd) != 0)
                nghttp2_submit_rst_stream(c->conn->sess, NGHTTP2_FLAG_NONE, c->stream_id,
                                          NGHTTP2_INTERNAL_ERROR);
        } else if (fin) {
            if (submit_trailers_only(c, "200", c->fin_code, c->fin_msg) != 0)
                nghttp2_submit_rst_stream(c->conn->sess, NGHTTP2_FLAG_NONE, c->stream_id,
                                          NGHTTP2_INTERNAL_ERROR);
        }
    } else if (has || fin) {
        nghttp2_session_resume_data(c->conn->sess, c->stream_id);
    }
}

/* Loop thread: end the call now with an error (before or instead of the
 * handler's answer). */
static void call_fail(hp_rpc_stream *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void call_fail(hp_rpc_stream *c, int code, const char *fmt, ...)
{
    char msg[HP_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->phase == PH_HEADERS || c->phase == PH_BODY)
        c->phase = PH_DONE;
    pthread_mutex_lock(&c->srv->mu);
    finish_locked(c, code, msg);
    pthread_mutex_unlock(&c->srv->mu);
    call_pump(c);
}

/* Loop thread: reject at the HTTP level (405, 415, 400). */
static void call_http_error(hp_rpc_stream *c, const char *status, int code, const char *msg)
{
    c->phase = PH_DONE;
    pthread_mutex_lock(&c->srv->mu);
    finish_locked(c, code, msg);
    pthread_mutex_unlock(&c->srv->mu);
    if (submit_trailers_only(c, status, code, msg) != 0)
        nghttp2_submit_rst_stream(c->conn->sess, NGHTTP2_FLAG_NONE, c->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
}

/* ------------------------------------------------------------- deadlines */

static void dl_remove(hp_rpc_server *srv, hp_rpc_stream *c)
{
    if (!c->in_dl)
        return;
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        srv->dl_head = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    else
        srv->dl_tail = c->dprev;
    c->dprev = c->dnext = NULL;
    c->in_dl = false;
}

/* Sorted insert, scanning from the tail: deadlines mostly arrive in order. */
static void dl_insert(hp_rpc_server *srv, hp_rpc_stream *c)
{
    hp_rpc_stream *p = srv->dl_tail;
    while (p && p->deadline_ns > c->deadline_ns)
        p = p->dprev;
    c->dprev = p;
    c->dnext = p ? p->dnext : srv->dl_head;
    if (c->dnext)
        c->dnext->dprev = c;
    else
        srv->dl_tail = c;
    if (p)
        p->dnext = c;
    else
        srv->dl_head = c;
    c->in_dl = true;
}

static void conn_flush(struct conn *cn);

static void expire_deadlines(hp_rpc_server *srv)
{
    int64_t now;
    if (srv->dl_head == NULL)
        return;
    now = now_ns();
    while (srv->dl_head && srv->dl_head->deadline_ns <= now) {
        hp_rpc_stream *c = srv->dl_head;
        bool changed;
        dl_remove(srv, c);
        atomic_store(&c->cancelled, true);
        if (c->phase == PH_HEADERS || c->phase == PH_BODY)
            c->phase = PH_DONE;
        pthread_mutex_lock(&srv->mu);
        changed = finish_locked(c, HP_DEADLINE_EXCEEDED, "deadline exceeded");
        if (changed)
            queue_clear_locked(c, true);
        pthread_mutex_unlock(&srv->mu);
        if (changed && c->conn) {
            call_pump(c);
            conn_flush(c->conn);
        }
    }
}

/* ------------------------------------------------------------ dispatching */

static void run_handler(hp_rpc_stream *c, bool on_loop)
{
    hp_rpc_server *srv = c->srv;
    const hp_rpc_method *m = c->m;
    hp_rpc_req req = {.method = m->path,
                      .data = c->req,
                      .len = c->req_len,
                      .deadline_ns = c->deadline_ns,
                      .cancelled = &c->cancelled};
    hp_err e = HP_ERR_INIT;
    bool wake = false;

    if (m->kind == HP_RPC_UNARY) {
        hp_buf resp = {0};
        int rc = m->unary(m->ud, &req, &resp, &e);
        pthread_mutex_lock(&srv->mu);
        if (rc == 0 && resp.len > UINT32_MAX) {
            rc = -1;
            hp_err_set(&e, HP_RESOURCE_EXHAUSTED, "response message too large");
        }
        if (c->finished) {
            /* Deadline or cancellation won the race: drop the late result. */
        } else if (rc == 0) {
            struct out_msg *om = &c->unary_msg;
            *om = (struct out_msg){.len = resp.len + HP_RPC_PREFIX_LEN, .body = resp.data};
            om->owned = hp_steal_ptr(&resp.data);
            hp_rpc_write_prefix(om->pfx, (uint32_t)resp.len);
            push_msg_locked(c, om);
            finish_locked(c, HP_OK, NULL);
        } else {
            finish_locked(c, e.code != HP_OK ? e.code : HP_UNKNOWN,
                          e.msg[0] ? e.msg : "handler failed");
        }
        if (!on_loop)
            wake = mark_dirty_locked(c);
        pthread_mutex_unlock(&srv->mu);
        hp_buf_free(&resp);
    } else {
        int rc;
        hp_rpc_stream_ref(c); /* the handler's reference for its duration */
        rc = m->stream(m->ud, &req, c, &e);
        if (rc != 0)
            hp_rpc_stream_finish(c, e.code != HP_OK ? e.code : HP_UNKNOWN,
                                 e.msg[0] ? e.msg : "handler failed");
        hp_rpc_stream_unref(c);
    }
    if (wake)
        wake_loop(srv);
}

/* The worker pool.  `workers` threads always run; when a blocking call is
 * queued while none of them is idle, another thread is started (up to
 * `max_workers` in all), which leaves after EXTRA_IDLE_S without a job.
 * Blocking handlers mostly wait (for a runtime process, a container's exit
 * within its grace period, a registry): a fixed small pool would let a few
 * long StopContainer grace periods hold up every other call. */
static void worker_loop(hp_rpc_server *srv, bool extra)
{
    for (;;) {
        hp_rpc_stream *c;
        pthread_mutex_lock(&srv->pool_mu);
        srv->idle++;
        if (extra) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += EXTRA_IDLE_S;
            int e = 0;
            while (!srv->pool_stop && srv->job_head == NULL && e != ETIMEDOUT)
                e = pthread_cond_timedwait(&srv->pool_cv, &srv->pool_mu, &until);
        } else {
            while (!srv->pool_stop && srv->job_head == NULL)
                pthread_cond_wait(&srv->pool_cv, &srv->pool_mu);
        }
        srv->idle--;
        if (srv->job_head == NULL) {
            pthread_mutex_unlock(&srv->pool_mu);
            return;
        }
        c = srv->job_head;
        srv->job_head = c->job_next;
        if (srv->job_head == NULL)
            srv->job_tail = NULL;
        srv->queued--;
        pthread_mutex_unlock(&srv->pool_mu);
        if (!atomic_load(&c->cancelled))
            run_handler(c, false);
        call_unref(c); /* the worker's reference */
    }
}

static void *worker_main(void *arg)
{
    worker_loop(arg, false);
    return NULL;
}

static void *extra_worker_main(void *arg)
{
    hp_rpc_server *srv = arg;
    worker_loop(srv, true);
#if !defined(__SANITIZE_ADDRESS__)
    /* The burst is over: give free heap pages back.  Not under ASan: its
     * allocator is not glibc's, and glibc's untouched heap initialises
     * itself lazily and without a lock inside malloc_trim, so extras leaving
     * together at shutdown crashed in mtrim (CI, stop 7). */
    malloc_trim(0);
#endif
    pthread_mutex_lock(&srv->pool_mu);
    srv->nextra--;
    pthread_cond_broadcast(&srv->pool_cv); /* hp_rpc_server_free may be waiting */
    pthread_mutex_unlock(&srv->pool_mu);
    return NULL;
}

/* The signal mask of every thread the server starts: all asynchronous
 * signals blocked (the daemon takes them via signalfd), but not the
 * synchronous fault signals.  A fault in a thread that blocks them kills the
 * process without running any handler, so no sanitizer report and no core
 * of the faulting thread. */
static void worker_sigmask(sigset_t *set)
{
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};
    sigfillset(set);
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(set, faults[i]);
}

/* With pool_mu held: start an extra worker if more jobs are queued than
 * workers are idle and the ceiling allows.  Failure only means the job waits
 * for a busy worker. */
static void maybe_grow_locked(hp_rpc_server *srv)
{
    if (srv->queued <= srv->idle || srv->pool_stop ||
        srv->nthreads + srv->nextra >= srv->opts.max_workers)
        return;
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    if (pthread_attr_init(&attr) != 0)
        return;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    worker_sigmask(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* workers never take signals */
    if (pthread_create(&t, &attr, extra_worker_main, srv) == 0)
        srv->nextra++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

static void dispatch(hp_rpc_stream *c)
{
    hp_rpc_server *srv = c->srv;
    c->phase = PH_RUNNING;
    if (c->m->flags & HP_RPC_BLOCKING) {
        call_ref(c);
        c->job_next = NULL;
        pthread_mutex_lock(&srv->pool_mu);
        if (srv->job_tail)
            srv->job_tail->job_next = c;
        else
            srv->job_head = c;
        srv->job_tail = c;
        srv->queued++;
        maybe_grow_locked(srv);
        pthread_cond_signal(&srv->pool_cv);
        pthread_mutex_unlock(&srv->pool_mu);
    } else {
        run_handler(c, true);
        call_pump(c);
    }
}

/* ------------------------------------------------------ nghttp2 callbacks */

static const hp_rpc_method *find_method(hp_rpc_server *srv, const char *path, size_t len)
{
    for (size_t i = 0; i < srv->nmethods; i++)
        if (strlen(srv->methods[i].path) == len && memcmp(srv->methods[i].path, path, len) == 0)
            return &srv->methods[i];
    return NULL;
}

static void call_detach(hp_rpc_stream *c)
{
    struct conn *cn = c->conn;
    hp_rpc_server *srv = c->srv;
    if (cn == NULL)
        return;
    if (!c->responded)
        atomic_store(&c->cancelled, true);
    pthread_mutex_lock(&srv->mu);
    atomic_store(&c->closed, true);
    queue_clear_locked(c, false);
    pthread_mutex_unlock(&srv->mu);
    dl_remove(srv, c);
    if (c->cprev)
        c->cprev->cnext = c->cnext;
    else
        cn->calls = c->cnext;
    if (c->cnext)
        c->cnext->cprev = c->cprev;
    c->cprev = c->cnext = NULL;
    c->conn = NULL;
    srv->live_calls--;
    call_unref(c); /* the loop's reference */
}

static int on_begin_headers(nghttp2_session *sess, const nghttp2_frame *frame, void *user_data)
{
    struct conn *cn = user_data;
    hp_rpc_stream *c;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    atomic_init(&c->refs, 1);
    c->srv = cn->srv;
    c->conn = cn;
    c->stream_id = frame->hd.stream_id;
    c->cnext = cn->calls;
    if (cn->calls)
        cn->calls->cprev = c;
    cn->calls = c;
    cn->srv->live_calls++;
    nghttp2_session_set_stream_user_data(sess, c->stream_id, c);
    return 0;
}

static bool nv_is(const uint8_t *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    hp_rpc_stream *c;
    (void)flags;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    c = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
    if (c == NULL)
        return 0;
    if (nv_is(name, namelen, ":method")) {
        c->has_method = true;
        c->is_post = nv_is(value, valuelen, "POST");
    } else if (nv_is(name, namelen, ":path")) {
        if (valuelen >= sizeof c->path) {
            c->path_long = true;
            valuelen = sizeof c->path - 1;
        }
        memcpy(c->path, value, valuelen);
        c->path[valuelen] = '\0';
        c->path_len = valuelen;
    } else if (nv_is(name, namelen, "content-type")) {
        c->ct_seen = true;
        c->ct_ok = hp_rpc_content_type_ok((const char *)value, valuelen);
    } else if (nv_is(name, namelen, "grpc-timeout")) {
        int64_t t = hp_rpc_parse_timeout((const char *)value, valuelen);
        int64_t now = now_ns();
        if (t < 0)
            c->bad_timeout = true;
        else if (t < INT64_MAX - now)
            c->deadline_ns = now + t; /* else: no deadline at all */
    }
    return 0;
}

static void headers_done(hp_rpc_stream *c)
{
    hp_rpc_server *srv = c->srv;
    if (c->phase != PH_HEADERS)
        return;
    if (!c->has_method || c->path_len == 0) {
        call_http_error(c, "400", HP_INTERNAL, "missing :method or :path");
        return;
    }
    if (!c->is_post) {
        call_http_error(c, "405", HP_INTERNAL, "method must be POST");
        return;
    }
    if (!c->ct_ok) {
        call_http_error(c, "415", HP_INTERNAL, "invalid gRPC request content-type");
        return;
    }
    if (c->bad_timeout) {
        call_fail(c, HP_INTERNAL, "malformed grpc-timeout header");
        return;
    }
    c->m = c->path_long ? NULL : find_method(srv, c->path, c->path_len);
    if (c->m == NULL) {
        call_fail(c, HP_UNIMPLEMENTED, "unknown method %s%s", c->path, c->path_long ? "..." : "");
        return;
    }
    if (c->deadline_ns)
        dl_insert(srv, c);
    c->phase = PH_BODY;
}

static void end_of_request(hp_rpc_stream *c)
{
    if (c->phase != PH_BODY)
        return;
    if (c->in_body)
        call_fail(c, HP_INTERNAL, "truncated request message: got %" PRIu32 " of %" PRIu32 " bytes",
                  c->req_got, c->req_len);
    else if (c->pfx_got > 0)
        call_fail(c, HP_INTERNAL, "truncated request message: incomplete 5-byte prefix");
    else
        dispatch(c);
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *frame, void *user_data)
{
    hp_rpc_stream *c;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    c = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
    if (c == NULL)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        headers_done(c);
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        end_of_request(c);
    return 0;
}

static void message_complete(hp_rpc_stream *c)
{
    c->in_body = false;
    c->pfx_got = 0;
    c->nmsgs++;
}

static int on_data_chunk(nghttp2_session *sess, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    hp_rpc_stream *c = nghttp2_session_get_stream_user_data(sess, stream_id);
    (void)flags;
    (void)user_data;
    while (c && c->phase == PH_BODY && len > 0) {
        if (!c->in_body) {
            size_t k = HP_RPC_PREFIX_LEN - c->pfx_got;
            bool compressed;
            uint32_t mlen;
            if (k > len)
                k = len;
            if (c->nmsgs > 0) {
                call_fail(c, HP_INTERNAL, "more than one request message for a %s method",
                          c->m->kind == HP_RPC_UNARY ? "unary" : "server-streaming");
                return 0;
            }
            memcpy(c->pfx_in + c->pfx_got, data, k);
            c->pfx_got += k;
            data += k;
            len -= k;
            if (c->pfx_got < HP_RPC_PREFIX_LEN)
                break;
            if (hp_rpc_parse_prefix(c->pfx_in, &compressed, &mlen) != 0) {
                call_fail(c, HP_INTERNAL, "invalid message prefix flag 0x%02x", c->pfx_in[0]);
                return 0;
            }
            if (compressed) {
                call_fail(c, HP_UNIMPLEMENTED, "compressed messages are not supported");
                return 0;
            }
            if (mlen > HP_RPC_MAX_MESSAGE) {
                call_fail(c, HP_RESOURCE_EXHAUSTED,
                          "request message larger than max (%" PRIu32 " vs. %u)", mlen,
                          HP_RPC_MAX_MESSAGE);
                return 0;
            }
            c->req_len = mlen;
            c->req_got = 0;
            if (mlen == 0) {
                message_complete(c);
                continue;
            }
            c->req = malloc(mlen);
            if (c->req == NULL) {
                call_fail(c, HP_RESOURCE_EXHAUSTED, "out of memory for request message");
                return 0;
            }
            c->in_body = true;
        } else {
            size_t k = c->req_len - c->req_got;
            if (k > len)
                k = len;
            memcpy(c->req + c->req_got, data, k);
            c->req_got += (uint32_t)k;
            data += k;
            len -= k;
            if (c->req_got == c->req_len)
                message_complete(c);
        }
    }
    return 0;
}

static int on_frame_send(nghttp2_session *sess, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    /* Our response ended before the client finished sending: tell it to
     * stop (as gRPC servers do) so the stream does not linger half-open. */
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        nghttp2_session_get_stream_remote_close(sess, frame->hd.stream_id) == 0)
        nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *sess, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    hp_rpc_stream *c = nghttp2_session_get_stream_user_data(sess, stream_id);
    (void)user_data;
    if (c == NULL)
        return 0;
    if (error_code != NGHTTP2_NO_ERROR)
        atomic_store(&c->cancelled, true);
    nghttp2_session_set_stream_user_data(sess, stream_id, NULL);
    call_detach(c);
    return 0;
}

/* ----------------------------------------------------------- connections */

static void conn_close(struct conn *cn)
{
    hp_rpc_server *srv = cn->srv;
    if (cn->dead)
        return;
    cn->dead = true;
    epoll_ctl(srv->epfd, EPOLL_CTL_DEL, cn->fd, NULL);
    close(cn->fd);
    cn->fd = -1;
    while (cn->calls) {
        hp_rpc_stream *c = cn->calls;
        nghttp2_session_set_stream_user_data(cn->sess, c->stream_id, NULL);
        call_detach(c);
    }
    nghttp2_session_del(cn->sess);
    cn->sess = NULL;
    hp_buf_free(&cn->wbuf);
    if (cn->prev)
        cn->prev->next = cn->next;
    else
        srv->conns = cn->next;
    if (cn->next)
        cn->next->prev = cn->prev;
    cn->prev = NULL;
    cn->next = srv->grave_conns;
    srv->grave_conns = cn;
    srv->nconns--;
}

static void conn_set_epollout(struct conn *cn, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = &cn->src};
    if (cn->epollout == on)
        return;
    if (epoll_ctl(cn->srv->epfd, EPOLL_CTL_MOD, cn->fd, &ev) == 0)
        cn->epollout = on;
}

/* Serialize pending frames into the connection's write buffer and write it;
 * on a full socket wait for EPOLLOUT.  Closes the connection on errors and
 * when neither side has anything more to say. */
static void conn_flush(struct conn *cn)
{
    if (cn->dead)
        return;
    for (;;) {
        while (cn->wbuf.len - cn->woff < WBUF_HIGH) {
            const uint8_t *d;
            ssize_t n = nghttp2_session_mem_send(cn->sess, &d);
            if (n < 0) {
                hp_debug("rpc: nghttp2 send failed: %s", nghttp2_strerror((int)n));
                conn_close(cn);
                return;
            }
            if (n == 0)
                break;
            if (cn->woff > 0 && cn->woff == cn->wbuf.len) {
                cn->woff = cn->wbuf.len = 0;
            } else if (cn->woff > 0) {
                memmove(cn->wbuf.data, cn->wbuf.data + cn->woff, cn->wbuf.len - cn->woff);
                cn->wbuf.len -= cn->woff;
                cn->woff = 0;
            }
            if (hp_buf_reserve(&cn->wbuf, (size_t)n) != 0) {
                hp_warn("rpc: out of memory for connection output; closing it");
                conn_close(cn);
                return;
            }
            memcpy(cn->wbuf.data + cn->wbuf.len, d, (size_t)n);
            cn->wbuf.len += (size_t)n;
        }
        if (cn->wbuf.len == cn->woff)
            break;
        ssize_t w = send(cn->fd, cn->wbuf.data + cn->woff, cn->wbuf.len - cn->woff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                conn_set_epollout(cn, true);
                return;
            }
            hp_debug("rpc: write to client failed: %s", strerror(errno));
            conn_close(cn);
            return;
        }
        cn->woff += (size_t)w;
        if (cn->woff < cn->wbuf.len) {
            conn_set_epollout(cn, true);
            return;
        }
        cn->woff = cn->wbuf.len = 0;
        if (cn->wbuf.cap > 4 * WBUF_HIGH) {
            hp_buf_free(&cn->wbuf); /* do not keep a big buffer around */
        }
    }
    conn_set_epollout(cn, false);
    if (!nghttp2_session_want_read(cn->sess) && !nghttp2_session_want_write(cn->sess))
        conn_close(cn);
}

static void conn_read(struct conn *cn)
{
    hp_rpc_server *srv = cn->srv;
    for (int i = 0; i < READS_PER_EVENT && !cn->dead; i++) {
        ssize_t n = recv(cn->fd, srv->rbuf, RBUF_SIZE, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            hp_debug("rpc: read from client failed: %s", strerror(errno));
            conn_close(cn);
            return;
        }
        if (n == 0) {
            conn_close(cn);
            return;
        }
        ssize_t rv = nghttp2_session_mem_recv(cn->sess, srv->rbuf, (size_t)n);
        if (rv < 0) {
            hp_debug("rpc: closing connection: %s", nghttp2_strerror((int)rv));
            conn_close(cn);
            return;
        }
        if (n < RBUF_SIZE)
            break;
    }
    conn_flush(cn);
}

static void accept_conns(hp_rpc_server *srv)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct conn *cn;
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                hp_warn("rpc: accept: %s", strerror(errno));
            return;
        }
        if (srv->nconns >= srv->opts.max_connections) {
            hp_warn("rpc: connection limit (%u) reached; refusing a client",
                    srv->opts.max_connections);
            close(fd);
            continue;
        }
        cn = calloc(1, sizeof *cn);
        if (cn == NULL || nghttp2_session_server_new2(&cn->sess, srv->cbs, cn, srv->ngopt) != 0) {
            hp_warn("rpc: out of memory accepting a client");
            free(cn);
            close(fd);
            continue;
        }
        cn->src.type = SRC_CONN;
        cn->srv = srv;
        cn->fd = fd;
        nghttp2_submit_settings(cn->sess, NGHTTP2_FLAG_NONE, srv->settings, 3);
        nghttp2_session_set_local_window_size(cn->sess, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cn->src};
        if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            hp_warn("rpc: epoll_ctl: %s", strerror(errno));
            nghttp2_session_del(cn->sess);
            free(cn);
            close(fd);
            continue;
        }
        cn->next = srv->conns;
        if (srv->conns)
            srv->conns->prev = cn;
        srv->conns = cn;
        srv->nconns++;
        conn_flush(cn);
    }
}

/* ------------------------------------------------------------------ loop */

static void drain_fd(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) < 0 && errno == EINTR)
        ;
}

static void process_dirty(hp_rpc_server *srv)
{
    hp_rpc_stream *list;
    drain_fd(srv->wake_fd);
    pthread_mutex_lock(&srv->mu);
    list = srv->dirty_head;
    srv->dirty_head = srv->dirty_tail = NULL;
    for (hp_rpc_stream *c = list; c; c = c->dirty_next)
        c->dirty = false;
    pthread_mutex_unlock(&srv->mu);
    /* Pump every call first, then write each connection once: many
     * completions on one connection become one write. */
    struct conn *to_flush = NULL;
    while (list) {
        hp_rpc_stream *c = list;
        list = c->dirty_next;
        if (c->conn) {
            call_pump(c);
            if (!c->conn->flush_queued) {
                c->conn->flush_queued = true;
                c->conn->flush_next = to_flush;
                to_flush = c->conn;
            }
        }
        call_unref(c);
    }
    while (to_flush) {
        struct conn *cn = to_flush;
        to_flush = cn->flush_next;
        cn->flush_queued = false;
        conn_flush(cn); /* closing one connection never frees another */
    }
}

static void begin_shutdown(hp_rpc_server *srv)
{
    drain_fd(srv->stop_fd);
    if (srv->shutting)
        return;
    srv->shutting = true;
    srv->shutdown_deadline = now_ns() + (int64_t)atomic_load(&srv->grace_ms) * 1000000LL;
    hp_info("rpc: shutting down (%u connections, %u calls in flight)", srv->nconns,
            srv->live_calls);
    if (srv->listen_fd >= 0) {
        epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->listen_fd, NULL);
        close(srv->listen_fd);
        srv->listen_fd = -1;
    }
    for (struct conn *cn = srv->conns, *next; cn; cn = next) {
        next = cn->next;
        nghttp2_submit_goaway(cn->sess, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(cn->sess), NGHTTP2_NO_ERROR,
                              NULL, 0);
        conn_flush(cn);
    }
}

static bool shutdown_done(hp_rpc_server *srv)
{
    if (now_ns() >= srv->shutdown_deadline)
        return true;
    if (srv->live_calls > 0)
        return false;
    for (struct conn *cn = srv->conns; cn; cn = cn->next)
        if (cn->wbuf.len > cn->woff)
            return false;
    return true;
}

static int loop_timeout(hp_rpc_server *srv)
{
    int64_t until = -1, now;
    if (srv->dl_head)
        until = srv->dl_head->deadline_ns;
    if (srv->shutting && (until < 0 || srv->shutdown_deadline < until))
        until = srv->shutdown_deadline;
    if (until < 0)
        return -1;
    now = now_ns();
    if (until <= now)
        return 0;
    int64_t ms = (until - now + 999999) / 1000000;
    return ms > 60000 ? 60000 : (int)ms;
}

static void free_graves(hp_rpc_server *srv)
{
    while (srv->grave_conns) {
        struct conn *cn = srv->grave_conns;
        srv->grave_conns = cn->next;
        free(cn);
    }
    while (srv->grave_watches) {
        struct watch *w = srv->grave_watches;
        srv->grave_watches = w->next;
        free(w);
    }
}

static void handle_watch(struct watch *w, uint32_t events)
{
    if (w->dead)
        return;
    if (w->is_timer) {
        drain_fd(w->fd);
        w->tcb(w->ud);
    } else {
        w->cb(w->ud, w->fd, events);
    }
}

int hp_rpc_server_run(hp_rpc_server *srv, hp_err *err)
{
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(srv->epfd, evs, MAX_EVENTS, loop_timeout(srv));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return hp_err_sys(err, HP_INTERNAL, "epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct ev_src *src = evs[i].data.ptr;
            switch (src->type) {
            case SRC_LISTEN:
                if (srv->listen_fd >= 0)
                    accept_conns(srv);
                break;
            case SRC_WAKE:
                process_dirty(srv);
                break;
            case SRC_STOP:
                begin_shutdown(srv);
                break;
            case SRC_CONN: {
                struct conn *cn = (struct conn *)src;
                if (cn->dead)
                    break;
                if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    conn_read(cn);
                if (!cn->dead && (evs[i].events & EPOLLOUT))
                    conn_flush(cn);
                break;
            }
            case SRC_WATCH:
                handle_watch((struct watch *)src, evs[i].events);
                break;
            }
        }
        expire_deadlines(srv);
        free_graves(srv);
        if (srv->shutting && shutdown_done(srv))
            break;
    }
    /* Remaining connections: cancel what is left and close them. */
    while (srv->conns) {
        conn_flush(srv->conns);
        if (srv->conns && !srv->conns->dead)
            conn_close(srv->conns);
    }
    free_graves(srv);
    return 0;
}

void hp_rpc_server_shutdown(hp_rpc_server *srv, unsigned grace_ms)
{
    uint64_t one = 1;
    ssize_t n;
    atomic_store(&srv->grace_ms, grace_ms);
    do
        n = write(srv->stop_fd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
}

/* ------------------------------------------------------------- fd hooks */

static int add_watch(hp_rpc_server *srv, struct watch *w, hp_err *err)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->src};
    w->src.type = SRC_WATCH;
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, w->fd, &ev) != 0)
        return hp_err_sys(err, HP_INTERNAL, "cannot watch fd %d", w->fd);
    w->next = srv->watches;
    srv->watches = w;
    return 0;
}

static struct watch *take_watch(hp_rpc_server *srv, int fd, bool is_timer)
{
    for (struct watch **pp = &srv->watches; *pp; pp = &(*pp)->next) {
        struct watch *w = *pp;
        if (w->fd == fd && w->is_timer == is_timer) {
            *pp = w->next;
            epoll_ctl(srv->epfd, EPOLL_CTL_DEL, fd, NULL);
            w->dead = true;
            /* Freed after the current batch of events: one may still name it. */
            w->next = srv->grave_watches;
            srv->grave_watches = w;
            return w;
        }
    }
    return NULL;
}

int hp_rpc_server_watch_fd(hp_rpc_server *srv, int fd, hp_rpc_fd_cb cb, void *ud, hp_err *err)
{
    struct watch *w;
    if (fd < 0 || cb == NULL)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "watch_fd: invalid fd or callback");
    w = calloc(1, sizeof *w);
    if (w == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    w->fd = fd;
    w->cb = cb;
    w->ud = ud;
    if (add_watch(srv, w, err) != 0) {
        free(w);
        return -1;
    }
    return 0;
}

int hp_rpc_server_unwatch_fd(hp_rpc_server *srv, int fd)
{
    return take_watch(srv, fd, false) ? 0 : -1;
}

int hp_rpc_server_add_timer(hp_rpc_server *srv, unsigned interval_ms, hp_rpc_timer_cb cb, void *ud,
                            hp_err *err)
{
    _cleanup_close_ int fd = -1;
    struct watch *w;
    struct itimerspec its = {0};
    if (interval_ms == 0 || cb == NULL)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "add_timer: zero interval or no callback");
    fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0)
        return hp_err_sys(err, HP_INTERNAL, "timerfd_create");
    its.it_interval.tv_sec = interval_ms / 1000;
    its.it_interval.tv_nsec = (long)(interval_ms % 1000) * 1000000L;
    its.it_value = its.it_interval;
    if (timerfd_settime(fd, 0, &its, NULL) != 0)
        return hp_err_sys(err, HP_INTERNAL, "timerfd_settime");
    w = calloc(1, sizeof *w);
    if (w == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    w->fd = fd;
    w->is_timer = true;
    w->tcb = cb;
    w->ud = ud;
    if (add_watch(srv, w, err) != 0) {
        free(w);
        return -1;
    }
    return hp_steal_fd(&fd);
}

int hp_rpc_server_remove_timer(hp_rpc_server *srv, int id)
{
    if (id < 0 || take_watch(srv, id, true) == NULL)
        return -1;
    close(id);
    return 0;
}

/* ------------------------------------------------------- server lifecycle */

static int make_listener(hp_rpc_server *srv, hp_err *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    const char *path = srv->opts.socket_path;
    if (strlen(path) >= sizeof sa.sun_path)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "socket path too long: %s", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return hp_err_set(err, HP_FAILED_PRECONDITION,
                              "%s exists and is not a socket; refusing to replace it", path);
        if (unlink(path) != 0)
            return hp_err_sys(err, HP_INTERNAL, "cannot remove stale socket %s", path);
    }
    srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (srv->listen_fd < 0)
        return hp_err_sys(err, HP_INTERNAL, "socket");
    if (bind(srv->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return hp_err_sys(err, HP_INTERNAL, "cannot bind %s", path);
    srv->socket_created = true;
    if (srv->opts.socket_mode && chmod(path, srv->opts.socket_mode) != 0)
        return hp_err_sys(err, HP_INTERNAL, "chmod %s", path);
    if (listen(srv->listen_fd, SOMAXCONN) != 0)
        return hp_err_sys(err, HP_INTERNAL, "listen on %s", path);
    return 0;
}

static int add_internal(hp_rpc_server *srv, int fd, struct ev_src *src, enum src_type type,
                        hp_err *err)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = src};
    src->type = type;
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return hp_err_sys(err, HP_INTERNAL, "epoll_ctl");
    return 0;
}

static int setup_nghttp2(hp_rpc_server *srv, hp_err *err)
{
    if (nghttp2_session_callbacks_new(&srv->cbs) != 0 || nghttp2_option_new(&srv->ngopt) != 0)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    nghttp2_session_callbacks_set_on_begin_headers_callback(srv->cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(srv->cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(srv->cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(srv->cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(srv->cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(srv->cbs, on_stream_close);
    /* grpc-go sends the socket path as :authority, which nghttp2's HTTP
     * checks reject; the gRPC rules that matter are checked above. */
    nghttp2_option_set_no_http_messaging(srv->ngopt, 1);
    nghttp2_option_set_no_closed_streams(srv->ngopt, 1);
    srv->settings[0] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                                srv->opts.max_concurrent_streams};
    srv->settings[1] =
        (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW};
    srv->settings[2] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 * 1024};
    return 0;
}

static int start_workers(hp_rpc_server *srv, hp_err *err)
{
    sigset_t all, old;
    int rc = 0;
    srv->threads = calloc(srv->opts.workers, sizeof *srv->threads);
    if (srv->threads == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    /* Workers never take signals: the daemon handles them via signalfd. */
    worker_sigmask(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < srv->opts.workers; i++) {
        int e = pthread_create(&srv->threads[i], NULL, worker_main, srv);
        if (e != 0) {
            errno = e;
            rc = hp_err_sys(err, HP_INTERNAL, "cannot start worker thread");
            break;
        }
        srv->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

hp_rpc_server *hp_rpc_server_new(const hp_rpc_options *opts, hp_err *err)
{
    hp_rpc_server *srv;
    if (opts == NULL || opts->socket_path == NULL || opts->socket_path[0] == '\0') {
        hp_err_set(err, HP_INVALID_ARGUMENT, "rpc server: no socket path");
        return NULL;
    }
    srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    srv->listen_fd = srv->epfd = srv->wake_fd = srv->stop_fd = -1;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_mutex_init(&srv->pool_mu, NULL);
    pthread_cond_init(&srv->pool_cv, NULL);
    srv->opts = *opts;
    if (srv->opts.workers == 0)
        srv->opts.workers = DEFAULT_WORKERS;
    if (srv->opts.max_workers == 0)
        srv->opts.max_workers = DEFAULT_MAX_WORKERS;
    if (srv->opts.max_workers < srv->opts.workers)
        srv->opts.max_workers = srv->opts.workers;
    if (srv->opts.max_concurrent_streams == 0)
        srv->opts.max_concurrent_streams = DEFAULT_STREAMS;
    if (srv->opts.max_connections == 0)
        srv->opts.max_connections = DEFAULT_MAX_CONNS;
    srv->socket_path = strdup(opts->socket_path);
    srv->opts.socket_path = srv->socket_path;
    srv->rbuf = malloc(RBUF_SIZE);
    if (srv->socket_path == NULL || srv->rbuf == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    srv->epfd = epoll_create1(EPOLL_CLOEXEC);
    srv->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    srv->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->epfd < 0 || srv->wake_fd < 0 || srv->stop_fd < 0) {
        hp_err_sys(err, HP_INTERNAL, "cannot create the event loop");
        goto fail;
    }
    if (setup_nghttp2(srv, err) != 0 || make_listener(srv, err) != 0 ||
        add_internal(srv, srv->listen_fd, &srv->listen_src, SRC_LISTEN, err) != 0 ||
        add_internal(srv, srv->wake_fd, &srv->wake_src, SRC_WAKE, err) != 0 ||
        add_internal(srv, srv->stop_fd, &srv->stop_src, SRC_STOP, err) != 0 ||
        start_workers(srv, err) != 0)
        goto fail;
    return srv;
fail:
    hp_rpc_server_free(srv);
    return NULL;
}

int hp_rpc_server_register(hp_rpc_server *srv, const hp_rpc_method *m, hp_err *err)
{
    hp_rpc_method copy;
    if (m == NULL || m->path == NULL || m->path[0] != '/' ||
        (m->kind == HP_RPC_UNARY && m->unary == NULL) ||
        (m->kind == HP_RPC_SERVER_STREAM && m->stream == NULL) ||
        (m->kind != HP_RPC_UNARY && m->kind != HP_RPC_SERVER_STREAM))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "register: invalid method %s",
                          m && m->path ? m->path : "(null)");
    if (find_method(srv, m->path, strlen(m->path)))
        return hp_err_set(err, HP_ALREADY_EXISTS, "method %s registered twice", m->path);
    if (srv->nmethods == srv->cap_methods) {
        size_t cap = srv->cap_methods ? srv->cap_methods * 2 : 32;
        hp_rpc_method *p = realloc(srv->methods, cap * sizeof *p);
        if (p == NULL)
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        srv->methods = p;
        srv->cap_methods = cap;
    }
    copy = *m;
    copy.path = strdup(m->path);
    if (copy.path == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    srv->methods[srv->nmethods++] = copy;
    return 0;
}

void hp_rpc_server_free(hp_rpc_server *srv)
{
    if (srv == NULL)
        return;
    pthread_mutex_lock(&srv->pool_mu);
    srv->pool_stop = true;
    pthread_cond_broadcast(&srv->pool_cv);
    while (srv->nextra > 0) /* extra workers finish their job and leave */
        pthread_cond_wait(&srv->pool_cv, &srv->pool_mu);
    pthread_mutex_unlock(&srv->pool_mu);
    for (unsigned i = 0; i < srv->nthreads; i++)
        pthread_join(srv->threads[i], NULL);
    free(srv->threads);
    while (srv->job_head) { /* only if the loop never ran to drain them */
        hp_rpc_stream *c = srv->job_head;
        srv->job_head = c->job_next;
        call_unref(c);
    }
    while (srv->conns)
        conn_close(srv->conns);
    while (srv->dirty_head) {
        hp_rpc_stream *c = srv->dirty_head;
        srv->dirty_head = c->dirty_next;
        call_unref(c);
    }
    while (srv->watches) {
        struct watch *w = srv->watches;
        take_watch(srv, w->fd, w->is_timer);
        if (w->is_timer)
            close(w->fd);
    }
    free_graves(srv);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    if (srv->socket_created)
        unlink(srv->socket_path);
    if (srv->epfd >= 0)
        close(srv->epfd);
    if (srv->wake_fd >= 0)
        close(srv->wake_fd);
    if (srv->stop_fd >= 0)
        close(srv->stop_fd);
    for (size_t i = 0; i < srv->nmethods; i++)
        free((char *)srv->methods[i].path);
    free(srv->methods);
    if (srv->cbs)
        nghttp2_session_callbacks_del(srv->cbs);
    if (srv->ngopt)
        nghttp2_option_del(srv->ngopt);
    pthread_mutex_destroy(&srv->mu);
    pthread_mutex_destroy(&srv->pool_mu);
    pthread_cond_destroy(&srv->pool_cv);
    free(srv->rbuf);
    free(srv->socket_path);
    free(srv);
}
