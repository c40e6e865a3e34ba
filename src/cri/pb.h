/* Small protobuf-c helpers for the CRI handlers. */
#ifndef HP_CRI_PB_H
#define HP_CRI_PB_H

#include <protobuf-c/protobuf-c.h>

#include "rpc/rpc.h"
#include "util/err.h"

static inline void hp_pb_freep(void *p)
{
    ProtobufCMessage **m = p;
    if (*m)
        protobuf_c_message_free_unpacked(*m, NULL);
}
/* A decoded request freed at scope exit. */
#define _cleanup_pb_ __attribute__((cleanup(hp_pb_freep)))

/* Decode req into a new message of type `desc`.  Returns the message (owned by
 * the caller, free with protobuf_c_message_free_unpacked or _cleanup_pb_), or
 * NULL with INVALID_ARGUMENT when the bytes are not a valid message. */
void *hp_pb_decode(const ProtobufCMessageDescriptor *desc, const hp_rpc_req *req, hp_err *err);

/* Serialize `msg` into resp. Returns 0, or -1 on allocation failure. */
int hp_pb_reply(hp_buf *resp, const void *msg, hp_err *err);

#endif
