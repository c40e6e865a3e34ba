/* SPDY/3.1 framing, the server side of one session (src/stream/spdy.c).
 *
 * Kubernetes' streaming protocols (remotecommand for Exec/Attach,
 * portforward) run over SPDY/3.1 after an HTTP/1.1 Upgrade: the client opens
 * one SPDY stream per channel (stdin, stdout, error, ...) and names it in a
 * `streamtype` header.  This codec parses what the client sends and builds
 * what the server answers; it owns no thread and no poll loop: the session
 * thread feeds it what it reads from the socket and it writes frames to the
 * socket itself (blocking writes, one writer).
 *
 * Scope: the frames a Kubernetes client sends (SYN_STREAM, DATA, RST_STREAM,
 * SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE).  Header blocks use one zlib
 * stream per direction with the SPDY/3 dictionary.  Flow control: the server
 * returns window for all data it consumes (WINDOW_UPDATE) and does not hold
 * back its own sends (Kubernetes' SPDY library grants no window updates).
 */
#ifndef HP_STREAM_SPDY_H
#define HP_STREAM_SPDY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct hp_spdy hp_spdy;

/* One header: name lowercased by the peer (SPDY requires it; we compare
 * case-insensitively anyway), value as sent (NUL-separated if several). */
typedef struct hp_spdy_header {
    const char *name;
    const char *value;
} hp_spdy_header;

typedef struct hp_spdy_cb {
    void *ud;
    /* The peer opened stream `id`; headers valid during the call only. */
    void (*on_stream)(void *ud, uint32_t id, const hp_spdy_header *h, size_t n, bool fin);
    /* Data on a stream (len may be 0 with fin). */
    void (*on_data)(void *ud, uint32_t id, const uint8_t *data, size_t len, bool fin);
    /* The peer reset a stream. */
    void (*on_reset)(void *ud, uint32_t id);
} hp_spdy_cb;

/* A session over the connected socket fd (borrowed: the caller closes it
 * after hp_spdy_free).  Returns a new session owned by the caller
 * (hp_spdy_free), or NULL with err. */
hp_spdy *hp_spdy_new(int fd, const hp_spdy_cb *cb, hp_err *err);
void hp_spdy_free(hp_spdy *s);

/* Read once from the socket (call when it is readable) and dispatch every
 * complete frame.  Returns 0, 1 when the peer closed the connection or sent
 * GOAWAY, or -1 with err on a protocol or socket error. */
int hp_spdy_read(hp_spdy *s, hp_err *err);

/* Parse bytes already read (used by hp_spdy_read and by the unit tests).
 * Same return values. */
int hp_spdy_feed(hp_spdy *s, const uint8_t *buf, size_t len, hp_err *err);

/* Answer the peer's SYN_STREAM. 0 or -1 with err. */
int hp_spdy_reply(hp_spdy *s, uint32_t id, bool fin, hp_err *err);
/* Send data (split into frames of at most 16 KiB); fin ends our side. */
int hp_spdy_send(hp_spdy *s, uint32_t id, const void *data, size_t len, bool fin, hp_err *err);
/* RST_STREAM with status (1 = PROTOCOL_ERROR, 3 = REFUSED_STREAM, 5 = CANCEL). */
int hp_spdy_reset(hp_spdy *s, uint32_t id, uint32_t status, hp_err *err);
/* GOAWAY (status OK), after which the caller closes the socket. */
int hp_spdy_goaway(hp_spdy *s, hp_err *err);

/* Exposed for tests: the SPDY/3 header dictionary (1423 bytes). */
const uint8_t *hp_spdy_dictionary(size_t *len);
/* Exposed for tests: compress a name/value block with this session's
 * compressor, as hp_spdy_reply would.  *out malloc'd, caller frees. */
int hp_spdy_encode_headers(hp_spdy *s, const hp_spdy_header *h, size_t n, uint8_t **out,
                           size_t *out_len, hp_err *err);

#endif
