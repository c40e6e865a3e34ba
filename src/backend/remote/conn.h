/* Connections of the remote backend to one CRI endpoint.
 *
 * An hp_remote_conn is a small pool of hp_client connections (src/rpc/client.h)
 * to one unix socket.  hp_client is not thread-safe, so a call takes an idle
 * connection from the pool (or opens a new one), uses it alone and puts it
 * back; calls on several worker threads therefore run concurrently, and a
 * slow call (a pull, a stop with a grace period) never blocks the others.  At
 * most HP_REMOTE_POOL_IDLE idle connections are kept; a connection that died
 * (the remote restarted, GOAWAY) is dropped and the next call reconnects.
 *
 * Thread-safe: every function may be called from any thread.
 */
#ifndef HP_BACKEND_REMOTE_CONN_H
#define HP_BACKEND_REMOTE_CONN_H

#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "util/err.h"

/* Idle connections kept per endpoint (0 = a new connection for every call). */
#ifndef HP_REMOTE_POOL_IDLE
#define HP_REMOTE_POOL_IDLE 8
#endif

typedef struct hp_remote_conn hp_remote_conn;

/* A pool for `uri` ("unix:///path"; a bare absolute path is accepted too).
 * No connection is made yet.  Returns a new pool owned by the caller
 * (hp_remote_conn_free), or NULL with INVALID_ARGUMENT for a bad URI. */
hp_remote_conn *hp_remote_conn_new(const char *uri, hp_err *err);

/* Close every idle connection and free the pool (no call may be running).
 * NULL is a no-op. */
void hp_remote_conn_free(hp_remote_conn *c);

/* The endpoint URI as configured (borrowed, lives as long as the pool). */
const char *hp_remote_conn_uri(const hp_remote_conn *c);

/* Counters for logs and tests: connections opened, calls made. */
uint64_t hp_remote_conn_connects(const hp_remote_conn *c);
uint64_t hp_remote_conn_calls(const hp_remote_conn *c);

/* One unary call.  `method` is the full path ("/runtime.v1.RuntimeService/
 * Version"), `req` the request message, `resp_desc` the response type,
 * `timeout_ms` the call deadline (0 = none).
 *
 * Returns 0 with *resp set to the decoded response (owned by the caller:
 * protobuf_c_message_free_unpacked(*resp, NULL)).  Returns -1 with err
 * filled otherwise: the remote's own status code and message when it
 * answered with an error, else the code synthesised by the client
 * (UNAVAILABLE when the endpoint cannot be reached, DEADLINE_EXCEEDED, ...);
 * the message is always prefixed "remote runtime URI: Method: ".
 *
 * A call that fails with UNAVAILABLE on a pooled connection before any
 * answer (the remote restarted since the connection was opened) is retried
 * once on a fresh connection. */
int hp_remote_call(hp_remote_conn *c, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
                   ProtobufCMessage **resp, hp_err *err);

#endif
