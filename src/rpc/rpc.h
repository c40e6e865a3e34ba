/* hpcri gRPC server: the contract between the transport (src/rpc) and the
 * service handlers (src/cri).
 *
 * The transport speaks HTTP/2 (libnghttp2) on a unix socket, one epoll loop
 * thread owning every connection.  Handlers see only serialized protobuf
 * bytes: they decode the request, do the work, encode a response.  A method
 * registered with HP_RPC_BLOCKING runs on the worker pool; otherwise it runs
 * inline on the loop thread and must not block (no disk-heavy or child-process
 * work, no sleeping).
 */
#ifndef HP_RPC_RPC_H
#define HP_RPC_RPC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define HP_RPC_MAX_MESSAGE (16u * 1024u * 1024u)

/* Growable byte buffer used for responses. */
typedef struct hp_buf {
    uint8_t *data; /* owned, malloc'd */
    size_t len;
    size_t cap;
} hp_buf;

/* Ensure room for `extra` more bytes. Returns 0, or -1 on ENOMEM. */
int hp_buf_reserve(hp_buf *b, size_t extra);
void hp_buf_free(hp_buf *b);

/* What a handler sees of one incoming call. Valid for the handler's duration. */
typedef struct hp_rpc_req {
    const char *method;  /* "/runtime.v1.RuntimeService/Version" */
    const uint8_t *data; /* serialized request message (may be NULL when len == 0) */
    size_t len;
    int64_t deadline_ns;          /* CLOCK_MONOTONIC deadline from grpc-timeout; 0 = none */
    const atomic_bool *cancelled; /* set when the client resets the stream or the deadline passes */
} hp_rpc_req;

/* Unary handler: fill `resp` with the serialized response and return 0, or
 * fill `err` (code = gRPC status) and return -1.  `resp` starts empty; the
 * transport frees it. */
typedef int (*hp_rpc_unary_fn)(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);

/* A server stream.  Reference counted; thread-safe API. */
typedef struct hp_rpc_stream hp_rpc_stream;

/* Server-streaming handler: validate the request; on success take a reference
 * to `stream` (hp_rpc_stream_ref) if messages will be sent later, and return 0.
 * Returning -1 ends the call with err's status. */
typedef int (*hp_rpc_stream_fn)(void *ud, const hp_rpc_req *req, hp_rpc_stream *stream,
                                hp_err *err);

/* Queue one serialized message; any thread. Returns 0, or -1 when the stream
 * is already closed (the client went away or it was finished): the caller
 * should then drop its reference. */
int hp_rpc_stream_send(hp_rpc_stream *s, const uint8_t *msg, size_t len);
/* End the stream with a status (HP_OK for a clean end); any thread, once. */
void hp_rpc_stream_finish(hp_rpc_stream *s, int code, const char *message);
/* True once the client cancelled or the connection closed. */
bool hp_rpc_stream_closed(hp_rpc_stream *s);
/* References are thread-safe.  When the last handler reference is dropped
 * without hp_rpc_stream_finish, the call ends with HP_OK.  Messages queue
 * without a bound: producers should pace themselves (the loop drains at the
 * client's flow-control pace). */
hp_rpc_stream *hp_rpc_stream_ref(hp_rpc_stream *s);
void hp_rpc_stream_unref(hp_rpc_stream *s);

enum hp_rpc_kind { HP_RPC_UNARY = 0, HP_RPC_SERVER_STREAM = 1 };
enum hp_rpc_flags { HP_RPC_INLINE = 0, HP_RPC_BLOCKING = 1 };

typedef struct hp_rpc_method {
    const char *path; /* full :path, e.g. "/runtime.v1.ImageService/PullImage" */
    enum hp_rpc_kind kind;
    int flags; /* enum hp_rpc_flags */
    hp_rpc_unary_fn unary;
    hp_rpc_stream_fn stream;
    void *ud;
} hp_rpc_method;

typedef struct hp_rpc_server hp_rpc_server;

typedef struct hp_rpc_options {
    const char *socket_path;         /* unix socket to listen on */
    unsigned socket_mode;            /* e.g. 0660 */
    unsigned workers;                /* worker threads for blocking handlers, always
                                        running; 0 = 4 */
    unsigned max_workers;            /* while every worker is busy more are started, up to this many
                                        in all, each leaving after 30 s idle; 0 = 64 (< workers =
                                        workers) */
    unsigned max_concurrent_streams; /* per connection; 0 = 256 */
    unsigned max_connections;        /* 0 = 1024 */
} hp_rpc_options;

/* Create a server listening on opts->socket_path (an existing stale socket
 * file is replaced; the caller holds the lock that makes that safe).
 * Returns a new server owned by the caller (hp_rpc_server_free), or NULL. */
hp_rpc_server *hp_rpc_server_new(const hp_rpc_options *opts, hp_err *err);

/* Register a method; the table entry is copied. Before hp_rpc_server_run only. */
int hp_rpc_server_register(hp_rpc_server *srv, const hp_rpc_method *m, hp_err *err);

/* Run the loop until hp_rpc_server_shutdown. Returns 0 after a clean
 * shutdown, -1 on a fatal loop error. */
int hp_rpc_server_run(hp_rpc_server *srv, hp_err *err);

/* Begin graceful shutdown (any thread, async-signal-safe: writes an eventfd):
 * stop accepting, send GOAWAY, let in-flight calls finish for up to
 * grace_ms, then return from hp_rpc_server_run. */
void hp_rpc_server_shutdown(hp_rpc_server *srv, unsigned grace_ms);

/* Unlinks the socket, joins workers, frees everything. NULL is a no-op.
 * Call after hp_rpc_server_run returned; subsystems holding stream
 * references must have dropped them (hp_rpc_stream_unref) before. */
void hp_rpc_server_free(hp_rpc_server *srv);

/* Loop-thread hooks for other subsystems (signals, timers, later the exit-file
 * watcher): add an fd watched for EPOLLIN; cb runs on the loop thread.  Call
 * before hp_rpc_server_run or from the loop thread (a callback may unwatch
 * itself).  The fd stays the caller's: neither unwatch nor free closes it. */
typedef void (*hp_rpc_fd_cb)(void *ud, int fd, uint32_t events);
int hp_rpc_server_watch_fd(hp_rpc_server *srv, int fd, hp_rpc_fd_cb cb, void *ud, hp_err *err);
int hp_rpc_server_unwatch_fd(hp_rpc_server *srv, int fd);

/* Periodic timer on the loop thread (a timerfd in the loop): cb runs every
 * interval_ms (> 0) until removed.  Returns a timer id >= 0, or -1.  Like the
 * fd hooks: call before hp_rpc_server_run or from the loop thread (a callback
 * may remove its own timer).  The timer belongs to the server: released by
 * hp_rpc_server_remove_timer or hp_rpc_server_free. */
typedef void (*hp_rpc_timer_cb)(void *ud);
int hp_rpc_server_add_timer(hp_rpc_server *srv, unsigned interval_ms, hp_rpc_timer_cb cb, void *ud,
                            hp_err *err);
/* Stop and free a timer; 0, or -1 when id is unknown. */
int hp_rpc_server_remove_timer(hp_rpc_server *srv, int id);

#endif
