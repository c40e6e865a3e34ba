/* hpcri gRPC client on libnghttp2 (see client.h). */
#include "rpc/client.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "util/cleanup.h"

/* Flow-control windows we advertise: large, so big responses stream without
 * waiting for WINDOW_UPDATE round trips. */
#define CLIENT_WINDOW (16 * 1024 * 1024)
#define READ_CHUNK    65536

struct hp_call {
    hp_client *c;
    int32_t stream_id;
    bool done;
    bool remote;        /* status received from the server */
    bool stream_closed; /* nghttp2 closed the stream */
    int status;
    char *message; /* owned, decoded */

    /* Response headers as seen so far. */
    int http_status;
    bool have_grpc_status;
    int grpc_status;
    char *grpc_message; /* owned, decoded */

    /* Request body: 5-byte prefix + message. */
    uint8_t *req; /* owned */
    size_t req_len, req_off;

    /* Response framing buffer. */
    uint8_t *in; /* owned */
    size_t in_len, in_cap;

    /* Unary response. */
    bool unary;
    bool have_resp;
    uint8_t *resp; /* owned */
    size_t resp_len;

    hp_client_msg_fn on_msg;
    void *ud;
    int64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = none */

    struct hp_call *prev, *next; /* list of unfinished calls */
};

struct hp_client {
    int fd;
    int cancel_fd;
    char *authority; /* owned: the socket path */
    nghttp2_session *ng;
    bool dead;
    int dead_status;
    char dead_msg[256];
    hp_call *active; /* unfinished calls */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- helpers ------------------------------------------------------------ */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

char *hp_grpc_percent_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

void hp_grpc_timeout_format(int timeout_ms, char *buf, size_t size)
{
    /* At most 8 digits (gRPC spec). */
    if (timeout_ms <= 0)
        timeout_ms = 1;
    if (timeout_ms <= 99999999)
        snprintf(buf, size, "%dm", timeout_ms);
    else
        snprintf(buf, size, "%dS", timeout_ms / 1000);
}

/* HTTP status -> gRPC code, per grpc/doc/http-grpc-status-mapping.md. */
static int http_to_grpc(int http)
{
    switch (http) {
    case 400:
        return HP_INTERNAL;
    case 401:
        return HP_UNAUTHENTICATED;
    case 403:
        return HP_PERMISSION_DENIED;
    case 404:
        return HP_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return HP_UNAVAILABLE;
    default:
        return HP_UNKNOWN;
    }
}

static void list_remove(hp_client *c, hp_call *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else if (c->active == call)
        c->active = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

/* Finish a call with a status; first finisher wins. `msg` is copied. */
static void call_finish(hp_call *call, bool remote, int status, const char *msg)
{
    if (call->done)
        return;
    call->done = true;
    call->remote = remote;
    call->status = status;
    call->message = strdup(msg ? msg : ""); /* NULL on ENOMEM: hp_call_message gives "" */
    list_remove(call->c, call);
}

static void call_finishf(hp_call *call, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void call_finishf(hp_call *call, int status, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    call_finish(call, false, status, buf);
}

/* Finish locally and reset the stream if it is still open. */
static void call_abort(hp_call *call, uint32_t h2_error, int status, const char *msg)
{
    hp_client *c = call->c;
    call_finish(call, false, status, msg);
    if (!call->stream_closed && call->stream_id > 0 && !c->dead)
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, call->stream_id, h2_error);
}

static void client_fail(hp_client *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void client_fail(hp_client *c, int status, const char *fmt, ...)
{
    if (!c->dead) {
        c->dead = true;
        c->dead_status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->dead_msg, sizeof c->dead_msg, fmt, ap);
        va_end(ap);
    }
    while (c->active)
        call_finish(c->active, false, c->dead_status, c->dead_msg);
}

/* ---- nghttp2 callbacks -------------------------------------------------- */

static ssize_t cb_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags,
                       void *user_data)
{
    (void)ng;
    (void)flags;
    hp_client *c = user_data;
    for (;;) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return NGHTTP2_ERR_WOULDBLOCK;
        client_fail(c, HP_UNAVAILABLE, "connection to %s lost: %s", c->authority, strerror(errno));
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
}

static ssize_t cb_read_req(nghttp2_session *ng, int32_t stream_id, uint8_t *buf, size_t length,
                           uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    (void)source;
    (void)user_data;
    hp_call *call = nghttp2_session_get_stream_user_data(ng, stream_id);
    if (!call)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = call->req_len - call->req_off;
    if (n > length)
        n = length;
    memcpy(buf, call->req + call->req_off, n);
    call->req_off += n;
    if (call->req_off == call->req_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int cb_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    (void)flags;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    hp_call *call = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (!call || call->done)
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        int v = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            v = (value[i] >= '0' && value[i] <= '9') ? v * 10 + (value[i] - '0') : -1000;
        call->http_status = (valuelen == 3 && v > 0) ? v : 999;
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        int v = 0;
        bool ok = valuelen > 0 && valuelen <= 9;
        for (size_t i = 0; ok && i < valuelen; i++) {
            if (value[i] < '0' || value[i] > '9')
                ok = false;
            else
                v = v * 10 + (value[i] - '0');
        }
        call->have_grpc_status = true;
        call->grpc_status = ok ? v : HP_UNKNOWN;
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        free(call->grpc_message);
        call->grpc_message = hp_grpc_percent_decode((const char *)value, valuelen);
    }
    return 0;
}

/* Deliver complete messages from call->in. Returns 0, or -1 after aborting. */
static int call_parse_messages(hp_call *call)
{
    size_t off = 0;
    while (call->in_len - off >= 5) {
        const uint8_t *p = call->in + off;
        uint32_t mlen = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        if (p[0] != 0) {
            call_abort(call, NGHTTP2_PROTOCOL_ERROR, HP_INTERNAL,
                       "server sent a compressed message, but no compression was negotiated");
            return -1;
        }
        if (mlen > HP_CLIENT_MAX_MESSAGE) {
            char buf[128];
            snprintf(buf, sizeof buf, "received message larger than max (%" PRIu32 " vs. %u)", mlen,
                     HP_CLIENT_MAX_MESSAGE);
            call_abort(call, NGHTTP2_CANCEL, HP_RESOURCE_EXHAUSTED, buf);
            return -1;
        }
        if (call->in_len - off - 5 < mlen)
            break;
        const uint8_t *msg = p + 5;
        off += 5 + (size_t)mlen;
        if (call->unary) {
            if (call->have_resp) {
                call_abort(call, NGHTTP2_CANCEL, HP_INTERNAL,
                           "server sent more than one message for a unary call");
                return -1;
            }
            call->have_resp = true;
            if (mlen > 0) {
                call->resp = malloc(mlen);
                if (!call->resp) {
                    call_abort(call, NGHTTP2_CANCEL, HP_RESOURCE_EXHAUSTED, "out of memory");
                    return -1;
                }
                memcpy(call->resp, msg, mlen);
            }
            call->resp_len = mlen;
        } else if (call->on_msg(call->ud, msg, mlen) < 0) {
            call_abort(call, NGHTTP2_CANCEL, HP_CANCELLED, "cancelled by the caller");
            return -1;
        }
    }
    if (off > 0) {
        memmove(call->in, call->in + off, call->in_len - off);
        call->in_len -= off;
    }
    return 0;
}

static int cb_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    hp_call *call = nghttp2_session_get_stream_user_data(ng, stream_id);
    if (!call || call->done)
        return 0;
    if (call->in_len + len > call->in_cap) {
        size_t cap = call->in_cap ? call->in_cap : 4096;
        while (cap < call->in_len + len)
            cap *= 2;
        uint8_t *n = realloc(call->in, cap);
        if (!n) {
            call_abort(call, NGHTTP2_CANCEL, HP_RESOURCE_EXHAUSTED, "out of memory");
            return 0;
        }
        call->in = n;
        call->in_cap = cap;
    }
    memcpy(call->in + call->in_len, data, len);
    call->in_len += len;
    call_parse_messages(call);
    return 0;
}

static int rst_to_grpc(uint32_t code)
{
    switch (code) {
    case NGHTTP2_REFUSED_STREAM:
        return HP_UNAVAILABLE;
    case NGHTTP2_CANCEL:
        return HP_CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM:
        return HP_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY:
        return HP_PERMISSION_DENIED;
    default:
        return HP_INTERNAL;
    }
}

static int cb_stream_close(nghttp2_session *ng, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    (void)user_data;
    hp_call *call = nghttp2_session_get_stream_user_data(ng, stream_id);
    if (!call)
        return 0;
    call->stream_closed = true;
    if (call->done)
        return 0;
    if (call->have_grpc_status) {
        const char *msg = call->grpc_message ? call->grpc_message : "";
        if (call->in_len != 0)
            call_finishf(call, HP_INTERNAL, "stream ended in the middle of a message (%zu bytes)",
                         call->in_len);
        else if (call->grpc_status == HP_OK && call->unary && !call->have_resp)
            call_finishf(call, HP_INTERNAL, "server sent no response message for a unary call");
        else
            call_finish(call, true, call->grpc_status, msg);
    } else if (call->http_status != 0 && call->http_status != 200) {
        call_finishf(call, http_to_grpc(call->http_status),
                     "unexpected HTTP status code received from server: %d", call->http_status);
    } else if (error_code != NGHTTP2_NO_ERROR) {
        call_finishf(call, rst_to_grpc(error_code), "stream terminated by RST_STREAM with %s",
                     nghttp2_http2_strerror(error_code));
    } else {
        call_finishf(call, HP_INTERNAL, "server closed the stream without sending trailers");
    }
    return 0;
}

static int cb_frame_not_send(nghttp2_session *ng, const nghttp2_frame *frame, int lib_error_code,
                             void *user_data)
{
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    hp_call *call = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (call && !call->done)
        call_finishf(call, HP_UNAVAILABLE, "could not send request: %s",
                     nghttp2_strerror(lib_error_code));
    return 0;
}

static int cb_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data)
{
    (void)ng;
    hp_client *c = user_data;
    if (frame->hd.type == NGHTTP2_GOAWAY && !c->dead) {
        /* In-flight streams <= last_stream_id still complete; nghttp2 closes
         * the others with REFUSED_STREAM.  No new calls on this connection. */
        c->dead = true;
        c->dead_status = HP_UNAVAILABLE;
        snprintf(c->dead_msg, sizeof c->dead_msg, "server %s is going away (GOAWAY %s)",
                 c->authority, nghttp2_http2_strerror(frame->goaway.error_code));
    }
    return 0;
}

/* ---- connection --------------------------------------------------------- */

hp_client *hp_client_connect(const char *path, hp_err *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path || !*path) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "empty socket path");
        return NULL;
    }
    if (strlen(path) >= sizeof sa.sun_path) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "socket path too long (max %zu bytes): %s",
                   sizeof sa.sun_path - 1, path);
        return NULL;
    }
    strcpy(sa.sun_path, path);

    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        hp_err_sys(err, HP_UNAVAILABLE, "socket");
        return NULL;
    }
    int rc;
    do
        rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        int e = errno;
        const char *hint = (e == ENOENT || e == ECONNREFUSED) ? " (is hpcri running?)" : "";
        hp_err_set(err, HP_UNAVAILABLE, "cannot connect to %s: %s%s", path, strerror(e), hint);
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        hp_err_sys(err, HP_INTERNAL, "fcntl O_NONBLOCK");
        return NULL;
    }

    hp_client *c = calloc(1, sizeof *c);
    if (!c || !(c->authority = strdup(path))) {
        free(c);
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    c->fd = -1;
    c->cancel_fd = -1;

    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        hp_client_free(c);
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    nghttp2_session_callbacks_set_send_callback(cbs, cb_send);
    nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_stream_close);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, cb_frame_not_send);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
    rc = nghttp2_session_client_new(&c->ng, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0) {
        c->ng = NULL;
        hp_client_free(c);
        hp_err_set(err, HP_INTERNAL, "nghttp2_session_client_new: %s", nghttp2_strerror(rc));
        return NULL;
    }
    c->fd = hp_steal_fd(&fd);

    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, CLIENT_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384},
    };
    rc = nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
    if (rc == 0)
        rc = nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, CLIENT_WINDOW);
    if (rc != 0) {
        hp_client_free(c);
        hp_err_set(err, HP_INTERNAL, "nghttp2 settings: %s", nghttp2_strerror(rc));
        return NULL;
    }
    /* Push the preface now so that a server that rejects us is noticed early. */
    rc = nghttp2_session_send(c->ng);
    if (rc != 0) {
        hp_err_set(err, c->dead ? c->dead_status : HP_UNAVAILABLE, "%s",
                   c->dead ? c->dead_msg : nghttp2_strerror(rc));
        hp_client_free(c);
        return NULL;
    }
    return c;
}

void hp_client_free(hp_client *c)
{
    if (!c)
        return;
    /* Detach any calls the caller still holds, so they do not point at us. */
    while (c->active) {
        hp_call *call = c->active;
        call_finish(call, false, HP_CANCELLED, "client closed");
        call->stream_closed = true;
    }
    if (c->ng)
        nghttp2_session_del(c->ng);
    if (c->fd >= 0)
        close(c->fd);
    free(c->authority);
    free(c);
}

void hp_client_set_cancel_fd(hp_client *c, int fd)
{
    c->cancel_fd = fd;
}

bool hp_client_dead(const hp_client *c)
{
    return c->dead;
}

/* ---- calls -------------------------------------------------------------- */

/* Static name and value: nghttp2 need not copy them. */
#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,                              \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                           \
    }
/* Variable value: copied by nghttp2_submit_request (it outlives our buffers). */
#define NVC(n, v, vl)                                                                              \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NO_COPY_NAME          \
    }

hp_call *hp_client_start(hp_client *c, const char *method, const uint8_t *req, size_t req_len,
                         int timeout_ms, hp_client_msg_fn on_msg, void *ud, hp_err *err)
{
    if (c->dead) {
        hp_err_set(err, c->dead_status, "%s", c->dead_msg);
        return NULL;
    }
    if (!method || method[0] != '/') {
        hp_err_set(err, HP_INVALID_ARGUMENT, "method must be a full path like /pkg.Service/Method");
        return NULL;
    }
    if (req_len > UINT32_MAX) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "request too large");
        return NULL;
    }
    hp_call *call = calloc(1, sizeof *call);
    if (!call || !(call->req = malloc(req_len + 5))) {
        free(call);
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    call->c = c;
    call->unary = on_msg == NULL;
    call->on_msg = on_msg;
    call->ud = ud;
    call->req[0] = 0;
    call->req[1] = (uint8_t)(req_len >> 24);
    call->req[2] = (uint8_t)(req_len >> 16);
    call->req[3] = (uint8_t)(req_len >> 8);
    call->req[4] = (uint8_t)req_len;
    if (req_len)
        memcpy(call->req + 5, req, req_len);
    call->req_len = req_len + 5;

    char tmo[24] = "";
    if (timeout_ms > 0) {
        hp_grpc_timeout_format(timeout_ms, tmo, sizeof tmo);
        call->deadline_ns = now_ns() + (int64_t)timeout_ms * 1000000;
    }
    nghttp2_nv nva[] = {
        NV(":method", "POST"),
        NV(":scheme", "http"),
        NVC(":path", method, strlen(method)),
        NVC(":authority", c->authority, strlen(c->authority)),
        NV("content-type", "application/grpc"),
        NV("te", "trailers"),
        NV("user-agent", "hpcri-ctl/0.1 (nghttp2)"),
        NVC("grpc-timeout", tmo, strlen(tmo)),
    };
    size_t nnv = sizeof nva / sizeof nva[0] - (timeout_ms > 0 ? 0 : 1);
    nghttp2_data_provider prd = {.source.ptr = call, .read_callback = cb_read_req};
    int32_t id = nghttp2_submit_request(c->ng, NULL, nva, nnv, &prd, call);
    if (id < 0) {
        hp_err_set(err, HP_UNAVAILABLE, "cannot start call %s: %s", method, nghttp2_strerror(id));
        free(call->req);
        free(call);
        return NULL;
    }
    call->stream_id = id;
    call->next = c->active;
    if (c->active)
        c->active->prev = call;
    c->active = call;
    return call;
}

/* Read everything available. */
static void client_read(hp_client *c)
{
    uint8_t buf[READ_CHUNK];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            client_fail(c, HP_UNAVAILABLE, "connection to %s lost: %s", c->authority,
                        strerror(errno));
            return;
        }
        if (n == 0) {
            client_fail(c, HP_UNAVAILABLE, "connection to %s closed by the server", c->authority);
            return;
        }
        ssize_t rv = nghttp2_session_mem_recv(c->ng, buf, (size_t)n);
        if (rv < 0) {
            client_fail(c, HP_INTERNAL, "HTTP/2 error from %s: %s", c->authority,
                        nghttp2_strerror((int)rv));
            return;
        }
        if ((size_t)n < sizeof buf)
            return;
    }
}

static void expire_deadlines(hp_client *c, int64_t now)
{
    hp_call *call = c->active;
    while (call) {
        hp_call *next = call->next;
        if (call->deadline_ns && call->deadline_ns <= now)
            call_abort(call, NGHTTP2_CANCEL, HP_DEADLINE_EXCEEDED, "context deadline exceeded");
        call = next;
    }
}

int hp_client_wait(hp_client *c, hp_call *call)
{
    while (!call->done) {
        if (!c->dead || nghttp2_session_want_write(c->ng)) {
            int rv = nghttp2_session_send(c->ng);
            if (rv != 0 && !c->dead)
                client_fail(c, HP_INTERNAL, "HTTP/2 send error: %s", nghttp2_strerror(rv));
        }
        if (call->done)
            break;
        if (c->dead && !nghttp2_session_want_read(c->ng)) {
            client_fail(c, c->dead_status, "%s", c->dead_msg);
            break;
        }
        int64_t now = now_ns();
        int timeout = -1;
        for (hp_call *a = c->active; a; a = a->next) {
            if (!a->deadline_ns)
                continue;
            int64_t left_ms = (a->deadline_ns - now + 999999) / 1000000;
            if (left_ms < 0)
                left_ms = 0;
            if (timeout < 0 || left_ms < timeout)
                timeout = left_ms > INT32_MAX ? INT32_MAX : (int)left_ms;
        }
        struct pollfd pfd[2] = {
            {.fd = c->fd, .events = POLLIN},
            {.fd = c->cancel_fd, .events = POLLIN},
        };
        if (nghttp2_session_want_write(c->ng))
            pfd[0].events |= POLLOUT;
        int n = poll(pfd, c->cancel_fd >= 0 ? 2 : 1, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            client_fail(c, HP_INTERNAL, "poll: %s", strerror(errno));
            break;
        }
        if (c->cancel_fd >= 0 && (pfd[1].revents & POLLIN)) {
            while (c->active)
                call_abort(c->active, NGHTTP2_CANCEL, HP_CANCELLED, "cancelled (interrupted)");
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
            client_read(c);
        expire_deadlines(c, now_ns());
    }
    /* Flush what is cheap to flush (e.g. a RST_STREAM), without blocking. */
    if (!c->dead && nghttp2_session_want_write(c->ng))
        nghttp2_session_send(c->ng);
    return 0;
}

bool hp_call_done(const hp_call *call)
{
    return call->done;
}

bool hp_call_remote(const hp_call *call)
{
    return call->remote;
}

int hp_call_status(const hp_call *call)
{
    return call->status;
}

const char *hp_call_message(const hp_call *call)
{
    return call->message ? call->message : "";
}

const uint8_t *hp_call_response(const hp_call *call, size_t *len)
{
    *len = call->resp_len;
    return call->resp;
}

uint8_t *hp_call_take_response(hp_call *call, size_t *len)
{
    *len = call->resp_len;
    call->resp_len = 0;
    return hp_steal_ptr(&call->resp);
}

void hp_call_free(hp_call *call)
{
    if (!call)
        return;
    hp_client *c = call->c;
    if (!call->done)
        call_abort(call, NGHTTP2_CANCEL, HP_CANCELLED, "call abandoned");
    if (!call->stream_closed && call->stream_id > 0)
        nghttp2_session_set_stream_user_data(c->ng, call->stream_id, NULL);
    free(call->message);
    free(call->grpc_message);
    free(call->req);
    free(call->in);
    free(call->resp);
    free(call);
}

/* ---- blocking wrappers ---------------------------------------------------- */

static int finish_blocking(hp_call *call, uint8_t **resp, size_t *resp_len, int *grpc_status,
                           char **grpc_message, hp_err *err)
{
    if (!call->remote) {
        hp_err_set(err, call->status, "%s", hp_call_message(call));
        return -1;
    }
    if (grpc_message) {
        *grpc_message = strdup(hp_call_message(call));
        if (!*grpc_message) {
            hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
            return -1;
        }
    }
    *grpc_status = call->status;
    if (resp && call->status == HP_OK)
        *resp = hp_call_take_response(call, resp_len);
    return 0;
}

int hp_client_call(hp_client *c, const char *method, const uint8_t *req, size_t req_len,
                   int timeout_ms, uint8_t **resp, size_t *resp_len, int *grpc_status,
                   char **grpc_message, hp_err *err)
{
    *resp = NULL;
    *resp_len = 0;
    *grpc_status = HP_UNKNOWN;
    if (grpc_message)
        *grpc_message = NULL;
    hp_call *call = hp_client_start(c, method, req, req_len, timeout_ms, NULL, NULL, err);
    if (!call)
        return -1;
    hp_client_wait(c, call);
    int rc = finish_blocking(call, resp, resp_len, grpc_status, grpc_message, err);
    hp_call_free(call);
    return rc;
}

int hp_client_unary(hp_client *c, const char *method, const uint8_t *req, size_t req_len,
                    int timeout_ms, uint8_t **resp, size_t *resp_len, hp_err *err)
{
    int status;
    _cleanup_free_ char *msg = NULL;
    if (hp_client_call(c, method, req, req_len, timeout_ms, resp, resp_len, &status, &msg, err) < 0)
        return -1;
    if (status != HP_OK)
        return hp_err_set(err, status, "%s", msg);
    return 0;
}

int hp_client_stream(hp_client *c, const char *method, const uint8_t *req, size_t req_len,
                     int timeout_ms, hp_client_msg_fn on_msg, void *ud, int *grpc_status,
                     char **grpc_message, hp_err *err)
{
    *grpc_status = HP_UNKNOWN;
    if (grpc_message)
        *grpc_message = NULL;
    if (!on_msg)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "streaming call without a callback");
    hp_call *call = hp_client_start(c, method, req, req_len, timeout_ms, on_msg, ud, err);
    if (!call)
        return -1;
    hp_client_wait(c, call);
    int rc = finish_blocking(call, NULL, NULL, grpc_status, grpc_message, err);
    hp_call_free(call);
    return rc;
}
