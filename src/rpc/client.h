/* hpcri's gRPC client: HTTP/2 (libnghttp2) over a unix socket, blocking API.
 *
 * One hp_client is one connection.  It is NOT thread-safe: use a client from
 * one thread at a time (give each thread its own connection).  Several calls
 * can still be in flight on one connection at once: start them with
 * hp_client_start() and drive them with hp_client_wait(); waiting on one call
 * makes progress on all of them.
 *
 * Requests carry `content-type: application/grpc`, `te: trailers`,
 * `grpc-timeout` (when a timeout is given) and `:authority` = the socket path,
 * as crictl/grpc-go send them.  Messages are 5-byte length-prefixed and never
 * compressed.  The status comes from the trailers (or a trailers-only
 * response); grpc-message is percent-decoded.
 *
 * Outcome of a call: either the server's status was received (the call
 * "completed": grpc_status may still be non-zero), or it failed locally with a
 * status synthesised by the client, as grpc-go does: UNAVAILABLE (connection
 * refused/lost, stream refused), DEADLINE_EXCEEDED (the client-side deadline
 * passed), CANCELLED (the cancel fd became readable), INTERNAL (protocol
 * violation: bad framing, missing status, oversized message).
 */
#ifndef HP_CTL_CLIENT_H
#define HP_CTL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Largest response message accepted (crictl uses 16 MiB as well). */
#define HP_CLIENT_MAX_MESSAGE (16u * 1024u * 1024u)

typedef struct hp_client hp_client;
typedef struct hp_call hp_call;

/* Per-message callback for server-streaming calls.  `msg` is valid during the
 * call only.  Return 0 to continue, -1 to cancel the call (it then ends with
 * CANCELLED, message "cancelled by the caller"). */
typedef int (*hp_client_msg_fn)(void *ud, const uint8_t *msg, size_t len);

/* Connect to the unix socket at `path` and send the HTTP/2 preface.
 * Returns a new client owned by the caller (hp_client_free), or NULL with err
 * (code UNAVAILABLE for connection errors, INVALID_ARGUMENT for a bad path). */
hp_client *hp_client_connect(const char *path, hp_err *err);

/* Close the connection.  Calls still in flight end with CANCELLED; their
 * hp_call objects stay valid and must still be freed.  NULL is a no-op. */
void hp_client_free(hp_client *c);

/* Also watch `fd` (e.g. a signalfd for SIGINT) while waiting: when it becomes
 * readable every call in flight ends with CANCELLED.  The fd is not read nor
 * closed by the client.  -1 disables. */
void hp_client_set_cancel_fd(hp_client *c, int fd);

/* True once the connection is unusable (closed by the peer, I/O or protocol
 * error, or the server sent GOAWAY). */
bool hp_client_dead(const hp_client *c);

/* --- Blocking calls -------------------------------------------------------- */

/* Unary call.  `method` is the full path ("/runtime.v1.RuntimeService/Version"),
 * `req`/`req_len` the serialized request (req may be NULL when req_len is 0),
 * `timeout_ms` the deadline (0 = none).
 *
 * Returns 0 when the server's status was received: *grpc_status is set,
 * *grpc_message is a malloc'd decoded message (possibly "") owned by the
 * caller, and when the status is OK *resp and *resp_len hold the response (malloc'd,
 * owned by the caller; *resp may be NULL when the response message is empty).
 * Returns -1 when the call failed locally (see above): err->code is the
 * synthesised status and err->msg says why; the outputs are then NULL/0.
 * grpc_message may be NULL if the caller does not want it. */
int hp_client_call(hp_client *c, const char *method, const uint8_t *req, size_t req_len,
                   int timeout_ms, uint8_t **resp, size_t *resp_len, int *grpc_status,
                   char **grpc_message, hp_err *err);

/* Convenience wrapper over hp_client_call: returns 0 only for status OK (the
 * response in *resp and *resp_len, owned by the caller); otherwise -1 with err
 * holding the server's (or the synthesised) status code and message. */
int hp_client_unary(hp_client *c, const char *method, const uint8_t *req, size_t req_len,
                    int timeout_ms, uint8_t **resp, size_t *resp_len, hp_err *err);

/* Server-streaming call: on_msg runs for each response message, in order.
 * Return convention as hp_client_call. */
int hp_client_stream(hp_client *c, const char *method, const uint8_t *req, size_t req_len,
                     int timeout_ms, hp_client_msg_fn on_msg, void *ud, int *grpc_status,
                     char **grpc_message, hp_err *err);

/* --- Concurrent calls on one connection ------------------------------------ */

/* Start a call (on_msg NULL = unary: the single response message is kept in
 * the call; otherwise server-streaming).  The request is copied.  Returns a
 * new call owned by the caller (hp_call_free), or NULL with err when the
 * connection is unusable. */
hp_call *hp_client_start(hp_client *c, const char *method, const uint8_t *req, size_t req_len,
                         int timeout_ms, hp_client_msg_fn on_msg, void *ud, hp_err *err);

/* Drive the connection until `call` is finished (other calls progress too).
 * Always returns 0 once the call is finished; see hp_call_* for the outcome. */
int hp_client_wait(hp_client *c, hp_call *call);

/* Outcome of a finished call. */
bool hp_call_done(const hp_call *call);
/* True when the status came from the server, false when synthesised locally. */
bool hp_call_remote(const hp_call *call);
int hp_call_status(const hp_call *call);
/* Decoded status message; valid until hp_call_free; never NULL once done. */
const char *hp_call_message(const hp_call *call);
/* The unary response (borrowed, valid until hp_call_free; NULL when empty). */
const uint8_t *hp_call_response(const hp_call *call, size_t *len);
/* Take ownership of the unary response (malloc'd; caller frees). */
uint8_t *hp_call_take_response(hp_call *call, size_t *len);

/* Free a call; an unfinished call is cancelled (RST_STREAM CANCEL). NULL ok. */
void hp_call_free(hp_call *call);

/* --- Helpers, exposed for tests ---------------------------------------------- */

/* Percent-decode a grpc-message value.  Invalid escapes are kept verbatim.
 * Returns a malloc'd NUL-terminated string owned by the caller, or NULL on ENOMEM. */
char *hp_grpc_percent_decode(const char *s, size_t len);

/* Format a grpc-timeout header value for timeout_ms (> 0) into buf (>= 16 bytes). */
void hp_grpc_timeout_format(int timeout_ms, char *buf, size_t size);

#endif
