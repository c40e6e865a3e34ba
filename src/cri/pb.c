#include "cri/pb.h"

#include <string.h>

void *hp_pb_decode(const ProtobufCMessageDescriptor *desc, const hp_rpc_req *req, hp_err *err)
{
    static const uint8_t empty[1];
    ProtobufCMessage *m =
        protobuf_c_message_unpack(desc, NULL, req->len, req->len ? req->data : empty);
    if (m == NULL)
        hp_err_set(err, HP_INVALID_ARGUMENT, "%s: the request is not a valid %s message",
                   req->method, desc->name);
    return m;
}

int hp_pb_reply(hp_buf *resp, const void *msg, hp_err *err)
{
    const ProtobufCMessage *m = msg;
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n == 0)
        return 0;
    if (n > HP_RPC_MAX_MESSAGE)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED,
                          "response of %zu bytes exceeds the 16 MiB message limit", n);
    if (hp_buf_reserve(resp, n) < 0)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory encoding a %zu-byte response",
                          n);
    protobuf_c_message_pack(m, resp->data + resp->len);
    resp->len += n;
    return 0;
}
