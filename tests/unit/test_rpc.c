/* gRPC server transport (src/rpc) against a real nghttp2 client over a real
 * unix socket.  The server runs hp_rpc_server_run in a thread of this
 * process; the client side is a small synchronous nghttp2 client below.
 */
#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"
#include "t.h"

#include <errno.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------ test server */

struct fx {
    hp_rpc_server *srv;
    pthread_t th;
    char dir[64];
    char path[100];
    int run_rc;
    atomic_bool running;
    atomic_llong run_returned_ms;
    /* handler observations */
    atomic_int sleeps_done;
    atomic_bool last_sleep_cancelled;
    atomic_int forever_stopped;
    atomic_int forever_sent;
    atomic_int meet_in; /* handlers inside Meet */
};

#define FAIL_MSG "bad value: caf\xc3\xa9 100% sure\n"

static int echo_fn(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    (void)ud;
    if (hp_buf_reserve(resp, req->len) != 0)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "oom");
    if (req->len)
        memcpy(resp->data, req->data, req->len);
    resp->len = req->len;
    return 0;
}

/* Sleeps for the decimal number of ms in the request (default 2000), never
 * looking at the cancelled flag, then answers "slept". */
static int sleep_fn(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    struct fx *fx = ud;
    char num[16] = "2000";
    if (req->len > 0 && req->len < sizeof num) {
        memcpy(num, req->data, req->len);
        num[req->len] = '\0';
    }
    sleep_ms(atoi(num));
    atomic_store(&fx->last_sleep_cancelled, atomic_load(req->cancelled));
    atomic_fetch_add(&fx->sleeps_done, 1);
    if (hp_buf_reserve(resp, 5) != 0)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "oom");
    memcpy(resp->data, "slept", 5);
    resp->len = 5;
    return 0;
}

/* Blocking handler that waits until N handlers (the request's number) are
 * inside it at the same time, at most 3 s: only a pool with N free workers
 * lets them meet. */
static int meet_fn(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    struct fx *fx = ud;
    char num[16] = "2";
    if (req->len > 0 && req->len < sizeof num) {
        memcpy(num, req->data, req->len);
        num[req->len] = '\0';
    }
    int want = atoi(num);
    atomic_fetch_add(&fx->meet_in, 1);
    int64_t end = now_ms() + 3000;
    while (atomic_load(&fx->meet_in) < want && now_ms() < end)
        sleep_ms(1);
    bool met = atomic_load(&fx->meet_in) >= want;
    sleep_ms(50); /* let the others see the count before it drops */
    atomic_fetch_sub(&fx->meet_in, 1);
    if (!met)
        return hp_err_set(err, HP_DEADLINE_EXCEEDED, "only %d met", atomic_load(&fx->meet_in) + 1);
    if (hp_buf_reserve(resp, 3) != 0)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "oom");
    memcpy(resp->data, "met", 3);
    resp->len = 3;
    return 0;
}

/* Blocking: like Meet, then answers "mask-ok" if this worker thread blocks
 * SIGTERM (the daemon takes it through signalfd) but none of the fault
 * signals (a fault in a thread that blocks them kills the process without
 * any handler, sanitizer report or core of the thread). */
static int meet_mask_fn(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    if (meet_fn(ud, req, resp, err) != 0)
        return -1;
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        if (sigismember(&cur, faults[i]))
            return hp_err_set(err, HP_INTERNAL, "worker blocks signal %d", faults[i]);
    if (!sigismember(&cur, SIGTERM))
        return hp_err_set(err, HP_INTERNAL, "worker does not block SIGTERM");
    memcpy(resp->data, "met", 3); /* meet_fn reserved 3 bytes */
    return 0;
}

static int fail_fn(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    (void)ud;
    (void)req;
    (void)resp;
    return hp_err_set(err, HP_INVALID_ARGUMENT, "%s", FAIL_MSG);
}

static int stream3_fn(void *ud, const hp_rpc_req *req, hp_rpc_stream *s, hp_err *err)
{
    (void)ud;
    (void)req;
    (void)err;
    for (int i = 0; i < 3; i++) {
        char m[8];
        snprintf(m, sizeof m, "m%d", i);
        if (hp_rpc_stream_send(s, (const uint8_t *)m, strlen(m)) != 0)
            return hp_err_set(err, HP_INTERNAL, "send failed");
    }
    hp_rpc_stream_finish(s, HP_OK, NULL);
    return 0;
}

/* Blocking: sends 3 messages 30 ms apart from the worker, then finishes. */
static int stream_slow_fn(void *ud, const hp_rpc_req *req, hp_rpc_stream *s, hp_err *err)
{
    (void)ud;
    (void)req;
    (void)err;
    hp_rpc_stream *mine = hp_rpc_stream_ref(s);
    for (int i = 0; i < 3; i++) {
        char m[8];
        sleep_ms(30);
        snprintf(m, sizeof m, "s%d", i);
        hp_rpc_stream_send(mine, (const uint8_t *)m, strlen(m));
    }
    hp_rpc_stream_finish(mine, HP_OK, NULL);
    hp_rpc_stream_unref(mine);
    return 0;
}

/* Blocking: sends every 5 ms until the stream is closed under it. */
static int stream_forever_fn(void *ud, const hp_rpc_req *req, hp_rpc_stream *s, hp_err *err)
{
    struct fx *fx = ud;
    (void)req;
    (void)err;
    hp_rpc_stream *mine = hp_rpc_stream_ref(s);
    for (int i = 0; i < 2000; i++) {
        if (hp_rpc_stream_send(mine, (const uint8_t *)"tick", 4) != 0)
            break;
        atomic_fetch_add(&fx->forever_sent, 1);
        sleep_ms(5);
    }
    atomic_store(&fx->forever_stopped, hp_rpc_stream_closed(mine) ? 1 : 2);
    hp_rpc_stream_unref(mine);
    return 0;
}

/* Inline stream handler that fails before sending anything. */
static int stream_fail_fn(void *ud, const hp_rpc_req *req, hp_rpc_stream *s, hp_err *err)
{
    (void)ud;
    (void)req;
    (void)s;
    return hp_err_set(err, HP_NOT_FOUND, "no such thing");
}

static void *run_thread(void *arg)
{
    struct fx *fx = arg;
    hp_err err = HP_ERR_INIT;
    fx->run_rc = hp_rpc_server_run(fx->srv, &err);
    if (fx->run_rc != 0)
        fprintf(stderr, "run: %s\n", err.msg);
    atomic_store(&fx->run_returned_ms, now_ms());
    atomic_store(&fx->running, false);
    return NULL;
}

static int fx_start(struct fx *fx, const hp_rpc_options *o)
{
    hp_err err = HP_ERR_INIT;
    hp_rpc_options opts = o ? *o : (hp_rpc_options){0};
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/hprpc.XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->path, sizeof fx->path, "%s/s.sock", fx->dir);
    opts.socket_path = fx->path;
    opts.socket_mode = 0600;
    fx->srv = hp_rpc_server_new(&opts, &err);
    if (fx->srv == NULL) {
        fprintf(stderr, "server_new: %s\n", err.msg);
        return -1;
    }
    const hp_rpc_method ms[] = {
        {"/test.Svc/Echo", HP_RPC_UNARY, HP_RPC_INLINE, echo_fn, NULL, fx},
        {"/test.Svc/EchoBlocking", HP_RPC_UNARY, HP_RPC_BLOCKING, echo_fn, NULL, fx},
        {"/test.Svc/Sleep", HP_RPC_UNARY, HP_RPC_BLOCKING, sleep_fn, NULL, fx},
        {"/test.Svc/Meet", HP_RPC_UNARY, HP_RPC_BLOCKING, meet_fn, NULL, fx},
        {"/test.Svc/MeetMask", HP_RPC_UNARY, HP_RPC_BLOCKING, meet_mask_fn, NULL, fx},
        {"/test.Svc/Fail", HP_RPC_UNARY, HP_RPC_INLINE, fail_fn, NULL, fx},
        {"/test.Svc/Stream3", HP_RPC_SERVER_STREAM, HP_RPC_INLINE, NULL, stream3_fn, fx},
        {"/test.Svc/StreamSlow", HP_RPC_SERVER_STREAM, HP_RPC_BLOCKING, NULL, stream_slow_fn, fx},
        {"/test.Svc/StreamForever", HP_RPC_SERVER_STREAM, HP_RPC_BLOCKING, NULL, stream_forever_fn,
         fx},
        {"/test.Svc/StreamFail", HP_RPC_SERVER_STREAM, HP_RPC_INLINE, NULL, stream_fail_fn, fx},
    };
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (hp_rpc_server_register(fx->srv, &ms[i], &err) != 0) {
            fprintf(stderr, "register: %s\n", err.msg);
            return -1;
        }
    atomic_store(&fx->running, true);
    if (pthread_create(&fx->th, NULL, run_thread, fx) != 0)
        return -1;
    return 0;
}

static void fx_stop(struct fx *fx)
{
    if (fx->srv == NULL)
        return;
    hp_rpc_server_shutdown(fx->srv, 0);
    pthread_join(fx->th, NULL);
    hp_rpc_server_free(fx->srv);
    fx->srv = NULL;
    rmdir(fx->dir);
}

/* ---------------------------------------------------------- test client */

struct tcall {
    int32_t id;
    int http_status;
    int grpc_status; /* -1 = none seen */
    char grpc_message[2048];
    char grpc_message_raw[4096];
    int header_blocks;
    bool closed;
    uint32_t close_error;
    int64_t closed_ms;
    hp_buf data;
    const uint8_t *body;
    size_t body_len, body_off;
    bool end_stream;
};

struct tc {
    int fd;
    nghttp2_session *sess;
    bool eof;
};

static ssize_t tc_send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
    struct tc *tc = ud;
    size_t off = 0;
    (void)s;
    (void)flags;
    while (off < len) {
        ssize_t n = send(tc->fd, data + off, len - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd p = {tc->fd, POLLOUT, 0};
                poll(&p, 1, 100);
                continue;
            }
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        off += (size_t)n;
    }
    return (ssize_t)len;
}

static int tc_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct tcall *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    (void)ud;
    if (c && f->hd.type == NGHTTP2_HEADERS)
        c->header_blocks++;
    return 0;
}

static int tc_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    struct tcall *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    (void)flags;
    (void)ud;
    if (c == NULL)
        return 0;
    if (nl == 7 && memcmp(name, ":status", 7) == 0)
        c->http_status = atoi((const char *)value);
    else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
        c->grpc_status = atoi((const char *)value);
    else if (nl == 12 && memcmp(name, "grpc-message", 12) == 0) {
        snprintf(c->grpc_message_raw, sizeof c->grpc_message_raw, "%.*s", (int)vl, value);
        hp_rpc_percent_decode((const char *)value, vl, c->grpc_message, sizeof c->grpc_message);
    }
    return 0;
}

static int tc_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t len,
                   void *ud)
{
    struct tcall *c = nghttp2_session_get_stream_user_data(s, id);
    (void)flags;
    (void)ud;
    if (c && hp_buf_reserve(&c->data, len) == 0) {
        memcpy(c->data.data + c->data.len, d, len);
        c->data.len += len;
    }
    return 0;
}

static int tc_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    struct tcall *c = nghttp2_session_get_stream_user_data(s, id);
    (void)ud;
    if (c) {
        c->closed = true;
        c->close_error = code;
        c->closed_ms = now_ms();
    }
    return 0;
}

static ssize_t tc_read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct tcall *c = src->ptr;
    size_t n = c->body_len - c->body_off;
    (void)s;
    (void)id;
    (void)ud;
    if (n > len)
        n = len;
    if (n)
        memcpy(buf, c->body + c->body_off, n);
    c->body_off += n;
    if (c->body_off == c->body_len) {
        if (c->end_stream)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        else if (n == 0)
            return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

/* Connect; returns a client owned by the caller (tc_free), or NULL. */
static struct tc *tc_connect(const char path[100])
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    nghttp2_session_callbacks *cbs;
    struct tc *tc = calloc(1, sizeof *tc);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    tc->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(tc->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(tc->fd);
        free(tc);
        return NULL;
    }
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, tc_send_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, tc_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, tc_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, tc_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, tc_close);
    nghttp2_session_client_new(&tc->sess, cbs, tc);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(tc->sess, NGHTTP2_FLAG_NONE, NULL, 0);
    return tc;
}

static void tc_free(struct tc *tc)
{
    if (tc == NULL)
        return;
    nghttp2_session_del(tc->sess);
    close(tc->fd);
    free(tc);
}

static void tcall_init(struct tcall *c)
{
    memset(c, 0, sizeof *c);
    c->grpc_status = -1;
}

/* Start a request. hdr_ct/timeout may be NULL (defaults / none). */
static int tc_start_ex(struct tc *tc, struct tcall *c, const char *method, const char *path,
                       const char *ct, const char *timeout, const uint8_t *body, size_t len,
                       bool end_stream)
{
    nghttp2_nv nv[8];
    size_t n = 0;
#define NV(a, b)                                                                                   \
    nv[n++] =                                                                                      \
        (nghttp2_nv){(uint8_t *)(a), (uint8_t *)(b), strlen(a), strlen(b), NGHTTP2_NV_FLAG_NONE}
    NV(":method", method);
    NV(":scheme", "http");
    NV(":path", path);
    NV(":authority", "/run/some/socket/path.sock"); /* like grpc-go over unix sockets */
    NV("content-type", ct ? ct : "application/grpc");
    NV("te", "trailers");
    if (timeout)
        NV("grpc-timeout", timeout);
#undef NV
    c->body = body;
    c->body_len = len;
    c->end_stream = end_stream;
    nghttp2_data_provider prd = {.source.ptr = c, .read_callback = tc_read_body};
    c->id = nghttp2_submit_request(tc->sess, NULL, nv, n, &prd, c);
    return c->id > 0 ? 0 : -1;
}

/* A framed gRPC message: caller frees the result. */
static uint8_t *frame_msg(const char *s, size_t *out_len)
{
    size_t len = strlen(s);
    uint8_t *b = malloc(len + 5);
    hp_rpc_write_prefix(b, (uint32_t)len);
    memcpy(b + 5, s, len);
    *out_len = len + 5;
    return b;
}

/* Send pending frames and process input for up to timeout_ms (or until
 * *stop becomes true). Returns -1 once the server closed the connection. */
static int tc_pump(struct tc *tc, int timeout_ms, bool (*stop)(void *), void *arg)
{
    int64_t end = now_ms() + timeout_ms;
    uint8_t buf[16384];
    for (;;) {
        if (nghttp2_session_send(tc->sess) != 0) {
            tc->eof = true; /* EPIPE/ECONNRESET: the server closed it */
            return -1;
        }
        if (stop && stop(arg))
            return 0;
        int64_t left = end - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {tc->fd, POLLIN, 0};
        int r = poll(&p, 1, (int)left);
        if (r <= 0)
            continue;
        ssize_t n = recv(tc->fd, buf, sizeof buf, 0);
        if (n <= 0) {
            tc->eof = true;
            return -1;
        }
        if (nghttp2_session_mem_recv(tc->sess, buf, (size_t)n) < 0)
            return -1;
    }
}

static bool call_closed(void *arg)
{
    return ((struct tcall *)arg)->closed;
}

struct many {
    struct tcall *calls;
    int n;
};

static bool all_closed(void *arg)
{
    struct many *m = arg;
    for (int i = 0; i < m->n; i++)
        if (!m->calls[i].closed)
            return false;
    return true;
}

static int tc_wait(struct tc *tc, struct tcall *c, int timeout_ms)
{
    tc_pump(tc, timeout_ms, call_closed, c);
    return c->closed ? 0 : -1;
}

/* One unary call on its own connection; fills c. */
static int unary(const char *sock, const char *path, const char *req, const char *timeout,
                 struct tcall *c)
{
    size_t len = 0;
    uint8_t *body = req ? frame_msg(req, &len) : NULL;
    struct tc *tc = tc_connect(sock);
    int rc = -1;
    tcall_init(c);
    if (tc && tc_start_ex(tc, c, "POST", path, NULL, timeout, body, len, true) == 0)
        rc = tc_wait(tc, c, 5000);
    tc_free(tc);
    free(body);
    return rc;
}

/* The single response message as a string (static storage per call). */
static bool resp_is(const struct tcall *c, const char *want)
{
    size_t wl = strlen(want);
    bool comp;
    uint32_t len;
    if (c->data.len != wl + 5)
        return false;
    if (hp_rpc_parse_prefix(c->data.data, &comp, &len) != 0 || comp || len != wl)
        return false;
    return memcmp(c->data.data + 5, want, wl) == 0;
}

/* ------------------------------------------------------------------ tests */

T_CASE(echo_roundtrip)
{
    struct fx fx;
    struct tcall c;
    T_ASSERT(fx_start(&fx, NULL) == 0);
    T_EQ_INT(unary(fx.path, "/test.Svc/Echo", "hello", NULL, &c), 0);
    T_EQ_INT(c.http_status, 200);
    T_EQ_INT(c.grpc_status, 0);
    T_EQ_INT(c.header_blocks, 2); /* headers + trailers */
    T_ASSERT(resp_is(&c, "hello"));
    hp_buf_free(&c.data);
    /* the same on the worker pool */
    T_EQ_INT(unary(fx.path, "/test.Svc/EchoBlocking", "world", NULL, &c), 0);
    T_EQ_INT(c.grpc_status, 0);
    T_ASSERT(resp_is(&c, "world"));
    hp_buf_free(&c.data);
    fx_stop(&fx);
}

T_CASE(empty_request_is_valid)
{
    struct fx fx;
    struct tcall c;
    T_ASSERT(fx_start(&fx, NULL) == 0);
    /* no DATA frame at all: END_STREAM on the HEADERS */
    T_EQ_INT(unary(fx.path, "/test.Svc/Echo", NULL, NULL, &c), 0);
    T_EQ_INT(c.grpc_status, 0);
    T_ASSERT(resp_is(&c, ""));
    hp_buf_free(&c.data);
    /* an explicit zero-length message */
    T_EQ_INT(unary(fx.path, "/test.Svc/Echo", "", NULL, &c), 0);
    T_EQ_INT(c.grpc_status, 0);
    T_ASSERT(resp_is(&c, ""));
    hp_buf_free(&c.data);
    fx_stop(&fx);
}

T_CASE(error_is_trailers_only_with_encoded_message)
{
    struct fx fx;
    struct tcall c;
    T_ASSERT(fx_start(&fx, NULL) == 0);
    T_EQ_INT(unary(fx.path, "/test.Svc/Fail", "x", NULL, &c), 0);
    T_EQ_INT(c.header_blocks, 1);
    T_EQ_INT(c.http_status, 200);
    T_EQ_INT(c.grpc_status, HP_INVALID_ARGUMENT);
    T_EQ_INT(c.data.len, 0);
    T_EQ_STR(c.grpc_message_raw, "bad value: caf%C3%A9 100%25 sure%0A");
    T_EQ_STR(c.grpc_message, FAIL_MSG);
    /* a streaming handler failing before any message: trailers-only too */
    T_EQ_INT(unary(fx.path, "/test.Svc/StreamFail", "", NULL, &c), 0);
    T_EQ_INT(c.header_blocks, 1);
    T_EQ_INT(c.grpc_status, HP_NOT_FOUND);
    T_EQ_STR(c.grpc_message, "no such thing");
    fx_stop(&fx);
}

T_CASE(unknown_method_unimplemented)
{
    struct fx fx;
    struct tcall c;
    T_ASSERT(fx_start(&fx, NULL) == 0);
    T_EQ_INT(unary(fx.path, "/test.Svc/Nope", "x", NULL, &c), 0);
    T_EQ_INT(c.header_blocks, 1);
    T_EQ_INT(c.grpc_status, HP_UNIMPLEMENTED);
    T_EQ_STR(c.grpc_message, "unknown method /test.Svc/Nope");
    fx_stop(&fx);
}

T_CASE(bad_content_type_415_and_get_405)
{
    struct fx fx;
    struct tcall c, g;
    size_t len;
    uint8_t *body = frame_msg("x", &len);
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct tc *tc = tc_connect(fx.path);
    T_ASSERT(tc != NULL);
    tcall_init(&c);
    tcall_init(&g);
    T_EQ_INT(tc_start_ex(tc, &c, "POST", "/test.Svc/Echo", "text/plain", NULL, body, len, true), 0);
    T_EQ_INT(tc_start_ex(tc, &g, "GET", "/test.Svc/Echo", NULL, NULL, NULL, 0, true), 0);
    T_EQ_INT(tc_wait(tc, &c, 3000), 0);
    T_EQ_INT(tc_wait(tc, &g, 3000), 0);
    T_EQ_INT(c.http_status, 415);
    T_EQ_INT(g.http_status, 405);
    T_EQ_INT(c.data.len, 0);
    tc_free(tc);
    free(body);
    fx_stop(&fx);
}

T_CASE(oversized_prefix_rejected_before_buffering)
{
    struct fx fx;
    struct tcall c;
    /* Only the prefix announcing 16 MiB + 1, and the stream stays open: the
     * answer must come from the prefix alone. */
    uint8_t pfx[5];
    hp_rpc_write_prefix(pfx, HP_RPC_MAX_MESSAGE + 1);
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct tc *tc = tc_connect(fx.path);
    tcall_init(&c);
    T_EQ_INT(tc_start_ex(tc, &c, "POST", "/test.Svc/Echo", NULL, NULL, pfx, 5, false), 0);
    T_EQ_INT(tc_wait(tc, &c, 3000), 0);
    T_EQ_INT(c.grpc_status, HP_RESOURCE_EXHAUSTED);
    T_EQ_INT(c.header_blocks, 1);
    T_ASSERT(strstr(c.grpc_message, "larger than max") != NULL);
    tc_free(tc);
    /* exactly 16 MiB announced is accepted (then truncated -> INTERNAL) */
    hp_rpc_write_prefix(pfx, HP_RPC_MAX_MESSAGE);
    tc = tc_connect(fx.path);
    tcall_init(&c);
    T_EQ_INT(tc_start_ex(tc, &c, "POST", "/test.Svc/Echo", NULL, NULL, pfx, 5, true), 0);
    T_EQ_INT(tc_wait(tc, &c, 3000), 0);
    T_EQ_INT(c.grpc_status, HP_INTERNAL);
    T_ASSERT(strstr(c.grpc_message, "truncated") != NULL);
    tc_free(tc);
    fx_stop(&fx);
}

T_CASE(compressed_flag_unimplemented)
{
    struct fx fx;
    struct tcall c;
    uint8_t msg[8] = {1, 0, 0, 0, 3, 'a', 'b', 'c'};
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct tc *tc = tc_connect(fx.path);
    tcall_init(&c);
    T_EQ_INT(tc_start_ex(tc, &c, "POST", "/test.Svc/Echo", NULL, NULL, msg, 8, true), 0);
    T_EQ_INT(tc_wait(tc, &c, 3000), 0);
    T_EQ_INT(c.grpc_status, HP_UNIMPLEMENTED);
    tc_free(tc);
    fx_stop(&fx);
}

T_CASE(two_messages_on_unary_rejected)
{
    struct fx fx;
    struct tcall c;
    uint8_t msg[12] = {0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 1, 'b'};
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct tc *tc = tc_connect(fx.path);
    tcall_init(&c);
    T_EQ_INT(tc_start_ex(tc, &c, "POST", "/test.Svc/Echo", NULL, NULL, msg, 12, true), 0);
    T_EQ_INT(tc_wait(tc, &c, 3000), 0);
    T_EQ_INT(c.grpc_status, HP_INTERNAL);
    T_ASSERT(strstr(c.grpc_message, "more than one request message") != NULL);
    tc_free(tc);
    fx_stop(&fx);
}

T_CASE(truncated_message_internal)
{
    struct fx fx;
    struct tcall c;
    uint8_t half[8] = {0, 0, 0, 0, 10, 'a', 'b', 'c'}; /* 3 of 10 bytes */
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct tc *tc = tc_connect(fx.path);
    tcall_init(&c);
    T_EQ_INT(tc_start_ex(tc, &c, "POST", "/test.Svc/Echo", NULL, NULL, half, 8, true), 0);
    T_EQ_INT(tc_wait(tc, &c, 3000), 0);
    T_EQ_INT(c.grpc_status, HP_INTERNAL);
    T_EQ_STR(c.grpc_message, "truncated request message: got 3 of 10 bytes");
    /* half a prefix */
    struct tcall d;
    tcall_init(&d);
    T_EQ_INT(tc_start_ex(tc, &d, "POST", "/test.Svc/Echo", NULL, NULL, half, 3, true), 0);
    T_EQ_INT(tc_wait(tc, &d, 3000), 0);
    T_EQ_INT(d.grpc_status, HP_INTERNAL);
    T_ASSERT(strstr(d.grpc_message, "prefix") != NULL);
    tc_free(tc);
    fx_stop(&fx);
}

T_CASE(deadline_exceeded_on_blocking_call)
{
    struct fx fx;
    struct tcall c;
    T_ASSERT(fx_start(&fx, NULL) == 0);
    int64_t t0 = now_ms();
    T_EQ_INT(unary(fx.path, "/test.Svc/Sleep", "600", "100m", &c), 0);
    int64_t el = c.closed_ms - t0;
    T_EQ_INT(c.grpc_status, HP_DEADLINE_EXCEEDED);
    T_EQ_INT(c.header_blocks, 1);
    T_ASSERT(el >= 90 && el < 450);
    /* the late result is discarded; the handler saw the cancelled flag */
    for (int i = 0; i < 300 && atomic_load(&fx.sleeps_done) < 1; i++)
        sleep_ms(10);
    T_EQ_INT(atomic_load(&fx.sleeps_done), 1);
    T_ASSERT(atomic_load(&fx.last_sleep_cancelled));
    sleep_ms(20);
    T_EQ_INT(unary(fx.path, "/test.Svc/Echo", "still here", NULL, &c), 0);
    T_ASSERT(resp_is(&c, "still here"));
    hp_buf_free(&c.data);
    /* a malformed grpc-timeout is refused */
    T_EQ_INT(unary(fx.path, "/test.Svc/Echo", "x", "12", &c), 0);
    T_EQ_INT(c.grpc_status, HP_INTERNAL);
    /* a generous deadline does not disturb a normal call */
    T_EQ_INT(unary(fx.path, "/test.Svc/Echo", "y", "5S", &c), 0);
    T_EQ_INT(c.grpc_status, 0);
    T_ASSERT(resp_is(&c, "y"));
    hp_buf_free(&c.data);
    fx_stop(&fx);
}

T_CASE(slow_blocking_call_does_not_delay_inline)
{
    struct fx fx;
    struct tcall slow, same, c;
    size_t len, elen;
    uint8_t *body = frame_msg("2000", &len), *ebody = frame_msg("quick", &elen);
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct tc *a = tc_connect(fx.path);
    tcall_init(&slow);
    T_EQ_INT(tc_start_ex(a, &slow, "POST", "/test.Svc/Sleep", NULL, NULL, body, len, true), 0);
    tc_pump(a, 50, NULL, NULL);
    /* another connection: 20 inline echoes, all fast */
    int64_t t0 = now_ms();
    for (int i = 0; i < 20; i++) {
        T_EQ_INT(unary(fx.path, "/test.Svc/Echo", "e", NULL, &c), 0);
        T_EQ_INT(c.grpc_status, 0);
        hp_buf_free(&c.data);
    }
    int64_t el = now_ms() - t0;
    /* the same connection, another stream */
    tcall_init(&same);
    t0 = now_ms();
    T_EQ_INT(tc_start_ex(a, &same, "POST", "/test.Svc/Echo", NULL, NULL, ebody, elen, true), 0);
    T_EQ_INT(tc_wait(a, &same, 3000), 0);
    int64_t el2 = now_ms() - t0;
    T_ASSERT(!slow.closed);
    printf("  20 echoes during a 2 s blocking call: %lld ms; same-connection echo %lld ms\n",
           (long long)el, (long long)el2);
    T_ASSERT(el < 1000);
    T_ASSERT(el2 < 500);
    T_ASSERT(resp_is(&same, "quick"));
    T_EQ_INT(tc_wait(a, &slow, 4000), 0);
    T_EQ_INT(slow.grpc_status, 0);
    T_ASSERT(resp_is(&slow, "slept"));
    hp_buf_free(&same.data);
    hp_buf_free(&slow.data);
    tc_free(a);
    free(body);
    free(ebody);
    fx_stop(&fx);
}

T_CASE(fifty_concurrent_streams_one_connection)
{
    struct fx fx;
    struct tcall calls[50];
    uint8_t *bodies[50];
    size_t lens[50];
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct tc *tc = tc_connect(fx.path);
    for (int i = 0; i < 50; i++) {
        char s[32];
        snprintf(s, sizeof s, "payload-%d", i);
        bodies[i] = frame_msg(s, &lens[i]);
        tcall_init(&calls[i]);
        /* mix inline and worker-pool methods */
        T_EQ_INT(tc_start_ex(tc, &calls[i], "POST",
                             i % 2 ? "/test.Svc/Echo" : "/test.Svc/EchoBlocking", NULL, NULL,
                             bodies[i], lens[i], true),
                 0);
    }
    struct many m = {calls, 50};
    tc_pump(tc, 5000, all_closed, &m);
    for (int i = 0; i < 50; i++) {
        char s[32];
        snprintf(s, sizeof s, "payload-%d", i);
        T_ASSERT(calls[i].closed);
        T_EQ_INT(calls[i].grpc_status, 0);
        T_ASSERT(resp_is(&calls[i], s));
        hp_buf_free(&calls[i].data);
        free(bodies[i]);
    }
    tc_free(tc);
    fx_stop(&fx);
}

/* One permanent worker: blocking calls that wait for each other still all
 * run at once (extra workers are started while every worker is busy), up to
 * max_workers and no further. */
static void meet_calls_on(struct fx *fx, const char *method, int n, const char *want, int *ok)
{
    struct tcall calls[8];
    uint8_t *bodies[8];
    size_t lens[8];
    struct tc *tc = tc_connect(fx->path);
    for (int i = 0; i < n; i++) {
        bodies[i] = frame_msg(want, &lens[i]);
        tcall_init(&calls[i]);
        tc_start_ex(tc, &calls[i], "POST", method, NULL, NULL, bodies[i], lens[i], true);
    }
    struct many m = {calls, n};
    tc_pump(tc, 10000, all_closed, &m);
    *ok = 0;
    for (int i = 0; i < n; i++) {
        *ok += calls[i].closed && calls[i].grpc_status == 0 && resp_is(&calls[i], "met");
        hp_buf_free(&calls[i].data);
        free(bodies[i]);
    }
    tc_free(tc);
}

static void meet_calls(struct fx *fx, int n, const char *want, int *ok)
{
    meet_calls_on(fx, "/test.Svc/Meet", n, want, ok);
}

T_CASE(worker_pool_grows_while_busy_up_to_max)
{
    struct fx fx;
    hp_rpc_options o = {.workers = 1, .max_workers = 4};
    T_ASSERT(fx_start(&fx, &o) == 0);
    int ok = 0;
    meet_calls(&fx, 4, "4", &ok);
    T_EQ_INT(ok, 4); /* 1 permanent + 3 extra workers ran them together */
    meet_calls(&fx, 5, "5", &ok);
    T_EQ_INT(ok, 0); /* a fifth never gets a worker while four wait */
    fx_stop(&fx);
}

/* Permanent and extra workers alike: SIGTERM blocked, fault signals not. */
T_CASE(workers_block_async_signals_but_not_faults)
{
    struct fx fx;
    hp_rpc_options o = {.workers = 1, .max_workers = 4};
    sigset_t term, old;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    /* the daemon's main thread has SIGTERM blocked, but workers must not rely on it */
    pthread_sigmask(SIG_UNBLOCK, &term, &old);
    T_ASSERT(fx_start(&fx, &o) == 0);
    int ok = 0;
    meet_calls_on(&fx, "/test.Svc/MeetMask", 4, "4", &ok);
    T_EQ_INT(ok, 4);
    fx_stop(&fx);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

T_CASE(two_hundred_connects_and_drops)
{
    struct fx fx;
    struct tcall c;
    T_ASSERT(fx_start(&fx, NULL) == 0);
    for (int i = 0; i < 200; i++) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", fx.path);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        T_ASSERT(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
        if (i % 3 == 1) /* part of the preface */
            T_ASSERT(write(fd, "PRI * HTTP/2.0\r\n", 16) == 16);
        close(fd);
    }
    /* and some with real sessions and an open stream */
    for (int i = 0; i < 20; i++) {
        struct tc *tc = tc_connect(fx.path);
        struct tcall s;
        size_t len;
        uint8_t *b = frame_msg("300", &len);
        tcall_init(&s);
        tc_start_ex(tc, &s, "POST", i % 2 ? "/test.Svc/Sleep" : "/test.Svc/Echo", NULL, NULL, b,
                    len / 2, false);
        tc_pump(tc, 2, NULL, NULL);
        tc_free(tc);
        free(b);
    }
    T_EQ_INT(unary(fx.path, "/test.Svc/Echo", "alive", NULL, &c), 0);
    T_ASSERT(resp_is(&c, "alive"));
    hp_buf_free(&c.data);
    fx_stop(&fx);
}

T_CASE(garbage_preface_closes_connection)
{
    struct fx fx;
    struct tcall c;
    char buf[256];
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", fx.path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    T_ASSERT(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    const char *junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\ngarbage garbage garbage\r\n";
    T_ASSERT(write(fd, junk, strlen(junk)) == (ssize_t)strlen(junk));
    /* the server may send its SETTINGS first, then must close */
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n = 1;
    int64_t t0 = now_ms();
    while (n > 0 && now_ms() - t0 < 3000) {
        if (poll(&p, 1, 3000) <= 0)
            break;
        n = read(fd, buf, sizeof buf);
    }
    T_EQ_INT(n, 0);
    close(fd);
    T_EQ_INT(unary(fx.path, "/test.Svc/Echo", "ok", NULL, &c), 0);
    T_ASSERT(resp_is(&c, "ok"));
    hp_buf_free(&c.data);
    fx_stop(&fx);
}

T_CASE(rst_stream_mid_call)
{
    struct fx fx;
    struct tcall s, c;
    size_t len;
    uint8_t *b = frame_msg("300", &len);
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct tc *tc = tc_connect(fx.path);
    tcall_init(&s);
    T_EQ_INT(tc_start_ex(tc, &s, "POST", "/test.Svc/Sleep", NULL, NULL, b, len, true), 0);
    tc_pump(tc, 50, NULL, NULL);
    nghttp2_submit_rst_stream(tc->sess, NGHTTP2_FLAG_NONE, s.id, NGHTTP2_CANCEL);
    tc_pump(tc, 20, NULL, NULL);
    T_ASSERT(s.closed);
    T_EQ_INT(s.grpc_status, -1); /* no response */
    /* the connection still serves */
    size_t elen;
    uint8_t *eb = frame_msg("after-rst", &elen);
    tcall_init(&c);
    T_EQ_INT(tc_start_ex(tc, &c, "POST", "/test.Svc/Echo", NULL, NULL, eb, elen, true), 0);
    T_EQ_INT(tc_wait(tc, &c, 3000), 0);
    T_ASSERT(resp_is(&c, "after-rst"));
    for (int i = 0; i < 100 && atomic_load(&fx.sleeps_done) < 1; i++)
        sleep_ms(10);
    T_EQ_INT(atomic_load(&fx.sleeps_done), 1);
    T_ASSERT(atomic_load(&fx.last_sleep_cancelled));
    tc_pump(tc, 30, NULL, NULL);
    T_EQ_INT(s.grpc_status, -1); /* the late result never shows up */
    hp_buf_free(&c.data);
    tc_free(tc);
    free(b);
    free(eb);
    fx_stop(&fx);
}

/* Split a response body into its messages; returns the count. */
static int split_msgs(const struct tcall *c, char out[][16], int max)
{
    size_t off = 0;
    int n = 0;
    while (off + 5 <= c->data.len && n < max) {
        bool comp;
        uint32_t len;
        hp_rpc_parse_prefix(c->data.data + off, &comp, &len);
        if (off + 5 + len > c->data.len || len >= 16)
            return -1;
        memcpy(out[n], c->data.data + off + 5, len);
        out[n][len] = '\0';
        n++;
        off += 5 + len;
    }
    return off == c->data.len ? n : -1;
}

T_CASE(server_streaming)
{
    struct fx fx;
    struct tcall c;
    char msgs[8][16];
    T_ASSERT(fx_start(&fx, NULL) == 0);
    T_EQ_INT(unary(fx.path, "/test.Svc/Stream3", "", NULL, &c), 0);
    T_EQ_INT(c.grpc_status, 0);
    T_EQ_INT(c.header_blocks, 2);
    T_EQ_INT(split_msgs(&c, msgs, 8), 3);
    T_EQ_STR(msgs[0], "m0");
    T_EQ_STR(msgs[2], "m2");
    hp_buf_free(&c.data);
    T_EQ_INT(unary(fx.path, "/test.Svc/StreamSlow", "", NULL, &c), 0);
    T_EQ_INT(c.grpc_status, 0);
    T_EQ_INT(split_msgs(&c, msgs, 8), 3);
    T_EQ_STR(msgs[0], "s0");
    T_EQ_STR(msgs[1], "s1");
    T_EQ_STR(msgs[2], "s2");
    hp_buf_free(&c.data);
    fx_stop(&fx);
}

static bool got_two_msgs(void *arg)
{
    return ((struct tcall *)arg)->data.len >= 18;
}

T_CASE(stream_deadline_after_messages)
{
    struct fx fx;
    struct tcall s;
    char msgs[64][16];
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct tc *tc = tc_connect(fx.path);
    tcall_init(&s);
    int64_t t0 = now_ms();
    T_EQ_INT(tc_start_ex(tc, &s, "POST", "/test.Svc/StreamForever", NULL, "150m", NULL, 0, true),
             0);
    T_EQ_INT(tc_wait(tc, &s, 3000), 0);
    int64_t el = s.closed_ms - t0;
    T_ASSERT(el >= 140 && el < 600);
    T_EQ_INT(s.header_blocks, 2); /* headers, messages, then trailers */
    T_EQ_INT(s.grpc_status, HP_DEADLINE_EXCEEDED);
    int n = split_msgs(&s, msgs, 64);
    T_ASSERT(n >= 2); /* framing intact: whole messages only */
    T_EQ_STR(msgs[0], "tick");
    for (int i = 0; i < 300 && atomic_load(&fx.forever_stopped) == 0; i++)
        sleep_ms(10);
    T_EQ_INT(atomic_load(&fx.forever_stopped), 1);
    hp_buf_free(&s.data);
    tc_free(tc);
    fx_stop(&fx);
}

/* 16 MiB exactly (the limit) both ways: flow control, partial writes and
 * EPOLLOUT on the server, the prefix length at the boundary. */
T_CASE(max_size_message_roundtrip)
{
    struct fx fx;
    struct tcall c;
    size_t len = HP_RPC_MAX_MESSAGE + 5;
    uint8_t *b = malloc(len);
    hp_rpc_write_prefix(b, HP_RPC_MAX_MESSAGE);
    for (size_t i = 5; i < len; i++)
        b[i] = (uint8_t)(i * 7 + 3);
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct tc *tc = tc_connect(fx.path);
    tcall_init(&c);
    int64_t t0 = now_ms();
    T_EQ_INT(tc_start_ex(tc, &c, "POST", "/test.Svc/EchoBlocking", NULL, NULL, b, len, true), 0);
    T_EQ_INT(tc_wait(tc, &c, 60000), 0);
    printf("  16 MiB echo: %lld ms\n", (long long)(now_ms() - t0));
    T_EQ_INT(c.grpc_status, 0);
    T_EQ_INT(c.data.len, len);
    T_ASSERT(memcmp(c.data.data, b, len) == 0);
    hp_buf_free(&c.data);
    tc_free(tc);
    free(b);
    fx_stop(&fx);
}

T_CASE(stream_client_killed_mid_stream)
{
    struct fx fx;
    struct tcall s, c;
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct tc *tc = tc_connect(fx.path);
    tcall_init(&s);
    T_EQ_INT(tc_start_ex(tc, &s, "POST", "/test.Svc/StreamForever", NULL, NULL, NULL, 0, true), 0);
    tc_pump(tc, 3000, got_two_msgs, &s);
    T_ASSERT(s.data.len >= 18);
    T_EQ_INT(s.http_status, 200);
    /* vanish without GOAWAY or RST_STREAM, like a killed process */
    hp_buf_free(&s.data);
    tc_free(tc);
    for (int i = 0; i < 300 && atomic_load(&fx.forever_stopped) == 0; i++)
        sleep_ms(10);
    /* the producer's send failed and hp_rpc_stream_closed says why */
    T_EQ_INT(atomic_load(&fx.forever_stopped), 1);
    T_ASSERT(atomic_load(&fx.forever_sent) < 1000);
    T_EQ_INT(unary(fx.path, "/test.Svc/Echo", "ok", NULL, &c), 0);
    T_ASSERT(resp_is(&c, "ok"));
    hp_buf_free(&c.data);
    fx_stop(&fx);
}

T_CASE(settings_and_connection_limit)
{
    struct fx fx;
    struct tcall c;
    hp_rpc_options o = {.max_concurrent_streams = 7, .max_connections = 3, .workers = 1};
    T_ASSERT(fx_start(&fx, &o) == 0);
    struct tc *tcs[3];
    for (int i = 0; i < 3; i++) {
        tcs[i] = tc_connect(fx.path);
        T_ASSERT(tcs[i] != NULL);
        tc_pump(tcs[i], 30, NULL, NULL);
    }
    T_EQ_INT(
        nghttp2_session_get_remote_settings(tcs[0]->sess, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS),
        7);
    /* a fourth connection is refused (closed at once) */
    struct tc *extra = tc_connect(fx.path);
    T_ASSERT(extra != NULL);
    T_EQ_INT(tc_pump(extra, 2000, NULL, NULL), -1);
    T_ASSERT(extra->eof);
    tc_free(extra);
    tc_free(tcs[0]);
    /* once the server noticed the close there is room again */
    for (int i = 0; i < 100; i++) {
        sleep_ms(20);
        if (unary(fx.path, "/test.Svc/Echo", "room again", NULL, &c) == 0)
            break;
    }
    T_EQ_INT(c.grpc_status, 0);
    T_ASSERT(resp_is(&c, "room again"));
    hp_buf_free(&c.data);
    tc_free(tcs[1]);
    tc_free(tcs[2]);
    fx_stop(&fx);
}

/* Requests sent before the client saw our SETTINGS exceed the stream limit:
 * nghttp2 refuses the extra streams; nothing leaks, the rest are answered. */
T_CASE(streams_beyond_limit_refused)
{
    struct fx fx;
    struct tcall calls[10];
    size_t len;
    uint8_t *b = frame_msg("100", &len);
    hp_rpc_options o = {.max_concurrent_streams = 2};
    T_ASSERT(fx_start(&fx, &o) == 0);
    struct tc *tc = tc_connect(fx.path);
    for (int i = 0; i < 10; i++) {
        tcall_init(&calls[i]);
        T_EQ_INT(tc_start_ex(tc, &calls[i], "POST", "/test.Svc/Sleep", NULL, NULL, b, len, true),
                 0);
    }
    struct many m = {calls, 10};
    tc_pump(tc, 5000, all_closed, &m);
    int ok = 0, refused = 0;
    for (int i = 0; i < 10; i++) {
        T_ASSERT(calls[i].closed);
        if (calls[i].grpc_status == 0 && resp_is(&calls[i], "slept"))
            ok++;
        else if (calls[i].close_error == NGHTTP2_REFUSED_STREAM)
            refused++;
        hp_buf_free(&calls[i].data);
    }
    printf("  %d answered, %d refused\n", ok, refused);
    T_ASSERT(ok >= 2);
    T_ASSERT(refused >= 1);
    T_EQ_INT(ok + refused, 10);
    tc_free(tc);
    free(b);
    fx_stop(&fx);
}

T_CASE(shutdown_lets_inflight_call_complete)
{
    struct fx fx;
    struct tcall s;
    size_t len;
    uint8_t *b = frame_msg("400", &len);
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct tc *tc = tc_connect(fx.path);
    struct tc *idle = tc_connect(fx.path);
    tc_pump(idle, 20, NULL, NULL);
    tcall_init(&s);
    T_EQ_INT(tc_start_ex(tc, &s, "POST", "/test.Svc/Sleep", NULL, NULL, b, len, true), 0);
    tc_pump(tc, 100, NULL, NULL);
    int64_t t0 = now_ms();
    hp_rpc_server_shutdown(fx.srv, 5000);
    /* the idle connection gets GOAWAY and is closed */
    T_EQ_INT(tc_pump(idle, 2000, NULL, NULL), -1);
    /* new connections are refused */
    sleep_ms(20);
    T_ASSERT(tc_connect(fx.path) == NULL);
    T_EQ_INT(tc_wait(tc, &s, 3000), 0);
    T_EQ_INT(s.grpc_status, 0);
    T_ASSERT(resp_is(&s, "slept"));
    pthread_join(fx.th, NULL);
    int64_t el = atomic_load(&fx.run_returned_ms) - t0;
    printf("  run returned %lld ms after shutdown (in-flight call needed ~300 ms)\n",
           (long long)el);
    T_EQ_INT(fx.run_rc, 0);
    T_ASSERT(el >= 200 && el < 2000);
    hp_rpc_server_free(fx.srv);
    T_ASSERT(access(fx.path, F_OK) != 0); /* socket unlinked */
    rmdir(fx.dir);
    hp_buf_free(&s.data);
    tc_free(tc);
    tc_free(idle);
    free(b);
}

T_CASE(shutdown_grace_expires)
{
    struct fx fx;
    struct tcall s;
    size_t len;
    uint8_t *b = frame_msg("1500", &len);
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct tc *tc = tc_connect(fx.path);
    tcall_init(&s);
    T_EQ_INT(tc_start_ex(tc, &s, "POST", "/test.Svc/Sleep", NULL, NULL, b, len, true), 0);
    tc_pump(tc, 50, NULL, NULL);
    int64_t t0 = now_ms();
    hp_rpc_server_shutdown(fx.srv, 200);
    pthread_join(fx.th, NULL);
    int64_t el = atomic_load(&fx.run_returned_ms) - t0;
    T_ASSERT(el >= 150 && el < 1000);
    T_EQ_INT(tc_pump(tc, 1000, NULL, NULL), -1); /* connection closed under the call */
    T_EQ_INT(s.grpc_status, -1);
    hp_rpc_server_free(fx.srv); /* waits for the worker; must not touch freed calls */
    T_EQ_INT(atomic_load(&fx.sleeps_done), 1);
    T_ASSERT(atomic_load(&fx.last_sleep_cancelled));
    rmdir(fx.dir);
    tc_free(tc);
    free(b);
}

struct hooks {
    atomic_int ticks;
    atomic_int reads;
    hp_rpc_server *srv;
    int efd;
    int timer;
};

static void on_tick(void *ud)
{
    struct hooks *h = ud;
    if (atomic_fetch_add(&h->ticks, 1) + 1 == 5)
        hp_rpc_server_remove_timer(h->srv, h->timer); /* removal from its own callback */
}

static void on_efd(void *ud, int fd, uint32_t ev)
{
    struct hooks *h = ud;
    uint64_t v;
    (void)ev;
    if (read(fd, &v, sizeof v) == sizeof v)
        atomic_fetch_add(&h->reads, (int)v);
}

T_CASE(watch_fd_and_timer)
{
    struct fx fx;
    struct hooks h = {0};
    hp_err err = HP_ERR_INIT;
    memset(&fx, 0, sizeof fx);
    snprintf(fx.dir, sizeof fx.dir, "/tmp/hprpc.XXXXXX");
    T_ASSERT(mkdtemp(fx.dir) != NULL);
    snprintf(fx.path, sizeof fx.path, "%s/s.sock", fx.dir);
    hp_rpc_options o = {.socket_path = fx.path};
    fx.srv = hp_rpc_server_new(&o, &err);
    T_ASSERT(fx.srv != NULL);
    h.srv = fx.srv;
    h.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    T_EQ_INT(hp_rpc_server_watch_fd(fx.srv, h.efd, on_efd, &h, &err), 0);
    h.timer = hp_rpc_server_add_timer(fx.srv, 20, on_tick, &h, &err);
    T_ASSERT(h.timer >= 0);
    T_EQ_INT(hp_rpc_server_add_timer(fx.srv, 0, on_tick, &h, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    atomic_store(&fx.running, true);
    T_ASSERT(pthread_create(&fx.th, NULL, run_thread, &fx) == 0);
    uint64_t three = 3;
    T_ASSERT(write(h.efd, &three, sizeof three) == 8);
    sleep_ms(300);
    T_EQ_INT(atomic_load(&h.reads), 3);
    T_EQ_INT(atomic_load(&h.ticks), 5); /* removed after the 5th tick */
    hp_rpc_server_shutdown(fx.srv, 0);
    pthread_join(fx.th, NULL);
    T_EQ_INT(hp_rpc_server_remove_timer(fx.srv, h.timer), -1); /* already gone */
    T_EQ_INT(hp_rpc_server_unwatch_fd(fx.srv, h.efd), 0);
    T_EQ_INT(hp_rpc_server_unwatch_fd(fx.srv, h.efd), -1);
    hp_rpc_server_free(fx.srv);
    close(h.efd);
    rmdir(fx.dir);
}

T_CASE(stale_socket_replaced_regular_file_refused)
{
    char dir[64] = "/tmp/hprpc.XXXXXX", path[128];
    hp_err err = HP_ERR_INIT;
    T_ASSERT(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/s.sock", dir);
    hp_rpc_options o = {.socket_path = path};
    hp_rpc_server *a = hp_rpc_server_new(&o, &err);
    T_ASSERT(a != NULL);
    hp_rpc_server *b = hp_rpc_server_new(&o, &err); /* replaces the socket file */
    T_ASSERT(b != NULL);
    hp_rpc_server_free(a);
    hp_rpc_server_free(b);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    T_ASSERT(hp_rpc_server_new(&o, &err) == NULL);
    T_EQ_INT(err.code, HP_FAILED_PRECONDITION);
    unlink(path);
    rmdir(dir);
}

T_CASE(latency_sequential_unary)
{
    struct fx fx;
    enum { N = 2000 };
    static int64_t lat[N];
    size_t len;
    uint8_t *b = frame_msg("ping-pong-payload", &len);
    T_ASSERT(fx_start(&fx, NULL) == 0);
    struct tc *tc = tc_connect(fx.path);
    for (int i = 0; i < N; i++) {
        struct tcall c;
        tcall_init(&c);
        int64_t t0 = now_us();
        T_EQ_INT(tc_start_ex(tc, &c, "POST", "/test.Svc/Echo", NULL, "10S", b, len, true), 0);
        T_EQ_INT(tc_wait(tc, &c, 5000), 0);
        lat[i] = now_us() - t0;
        T_EQ_INT(c.grpc_status, 0);
        hp_buf_free(&c.data);
    }
    int64_t tb0 = now_us();
    struct tcall cb;
    tcall_init(&cb);
    T_EQ_INT(tc_start_ex(tc, &cb, "POST", "/test.Svc/EchoBlocking", NULL, NULL, b, len, true), 0);
    T_EQ_INT(tc_wait(tc, &cb, 5000), 0);
    int64_t tb = now_us() - tb0;
    hp_buf_free(&cb.data);
    for (int i = 1; i < N; i++) /* insertion sort is fine for 2000 */
        for (int j = i; j > 0 && lat[j - 1] > lat[j]; j--) {
            int64_t t = lat[j];
            lat[j] = lat[j - 1];
            lat[j - 1] = t;
        }
    printf("  unary echo round trip over one connection: p50 %lld us, p99 %lld us, max %lld us;"
           " one blocking echo %lld us\n",
           (long long)lat[N / 2], (long long)lat[N * 99 / 100], (long long)lat[N - 1],
           (long long)tb);
    T_ASSERT(lat[N / 2] < 20000); /* loose: also holds under valgrind */
    tc_free(tc);
    free(b);
    fx_stop(&fx);
}

/* Interoperability with a real gRPC implementation (grpc-core via Python). */
T_CASE(python_grpcio_client)
{
    struct fx fx;
    int pfd[2];
    char out[4096] = {0};
    size_t got = 0;
    static const char script[] =
        "import grpc, sys\n"
        "ch = grpc.insecure_channel('unix:' + sys.argv[1])\n"
        "echo = ch.unary_unary('/test.Svc/Echo')\n"
        "print('echo', echo(b'py-hello', timeout=5).decode())\n"
        "try:\n"
        "    ch.unary_unary('/test.Svc/Fail')(b'', timeout=5)\n"
        "except grpc.RpcError as e:\n"
        "    print('fail', e.code().name, repr(e.details()))\n"
        "try:\n"
        "    ch.unary_unary('/test.Svc/Sleep')(b'1000', timeout=0.1)\n"
        "except grpc.RpcError as e:\n"
        "    print('sleep', e.code().name)\n"
        "print('stream', [m.decode() for m in ch.unary_stream('/test.Svc/Stream3')(b'')])\n"
        "ch.close()\n";
    if (access("/usr/bin/python3", X_OK) != 0) {
        printf("  skipped: no /usr/bin/python3\n");
        return;
    }
    T_ASSERT(fx_start(&fx, NULL) == 0);
    T_ASSERT(pipe(pfd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        execl("/usr/bin/python3", "python3", "-c", script, fx.path, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    for (;;) {
        ssize_t n = read(pfd[0], out + got, sizeof out - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    printf("%s", out);
    T_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    T_ASSERT(strstr(out, "echo py-hello\n") != NULL);
    T_ASSERT(strstr(out, "fail INVALID_ARGUMENT 'bad value: café 100% sure\\n'") != NULL);
    T_ASSERT(strstr(out, "sleep DEADLINE_EXCEEDED") != NULL);
    T_ASSERT(strstr(out, "stream ['m0', 'm1', 'm2']") != NULL);
    for (int i = 0; i < 200 && atomic_load(&fx.sleeps_done) < 1; i++)
        sleep_ms(10);
    fx_stop(&fx);
}

T_MAIN()
