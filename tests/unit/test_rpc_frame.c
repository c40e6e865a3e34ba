/* Pure gRPC wire-format helpers of src/rpc (no sockets). */
#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"
#include "t.h"

#include <stdint.h>

static int64_t tmo(const char *s)
{
    return hp_rpc_parse_timeout(s, strlen(s));
}

T_CASE(timeout_units)
{
    T_EQ_INT(tmo("1H"), 3600LL * 1000000000LL);
    T_EQ_INT(tmo("2M"), 120LL * 1000000000LL);
    T_EQ_INT(tmo("3S"), 3000000000LL);
    T_EQ_INT(tmo("100m"), 100000000LL);
    T_EQ_INT(tmo("7u"), 7000LL);
    T_EQ_INT(tmo("9n"), 9LL);
    T_EQ_INT(tmo("0m"), 0);
    T_EQ_INT(tmo("99999999H"), INT64_MAX); /* saturates */
    T_EQ_INT(tmo("99999999S"), 99999999LL * 1000000000LL);
    T_EQ_INT(tmo("00000001S"), 1000000000LL);
}

T_CASE(timeout_malformed)
{
    T_EQ_INT(tmo(""), -1);
    T_EQ_INT(tmo("m"), -1);
    T_EQ_INT(tmo("10"), -1);
    T_EQ_INT(tmo("123456789S"), -1); /* 9 digits */
    T_EQ_INT(tmo("10x"), -1);
    T_EQ_INT(tmo("-1S"), -1);
    T_EQ_INT(tmo(" 1S"), -1);
    T_EQ_INT(tmo("1 S"), -1);
    T_EQ_INT(tmo("1s"), -1); /* units are case sensitive: 's' is not seconds */
    T_EQ_INT(hp_rpc_parse_timeout(NULL, 0), -1);
    /* length bounds the value: "5m" inside a longer buffer */
    T_EQ_INT(hp_rpc_parse_timeout("5mXX", 2), 5000000LL);
}

T_CASE(percent_encode)
{
    char out[64];
    T_EQ_INT(hp_rpc_percent_encode("plain text", out, sizeof out), 10);
    T_EQ_STR(out, "plain text");
    hp_rpc_percent_encode("50% off", out, sizeof out);
    T_EQ_STR(out, "50%25 off");
    hp_rpc_percent_encode("caf\xc3\xa9\n\t~", out, sizeof out);
    T_EQ_STR(out, "caf%C3%A9%0A%09~");
    hp_rpc_percent_encode("\x7f", out, sizeof out);
    T_EQ_STR(out, "%7F");
    hp_rpc_percent_encode("", out, sizeof out);
    T_EQ_STR(out, "");
}

T_CASE(percent_encode_truncates_at_escape_boundary)
{
    char out[6];
    /* "ab%25" fits in 5+NUL; the next escape would not. */
    T_EQ_INT(hp_rpc_percent_encode("ab%%", out, sizeof out), 5);
    T_EQ_STR(out, "ab%25");
    char small[4];
    T_EQ_INT(hp_rpc_percent_encode("a\xff", small, sizeof small), 1);
    T_EQ_STR(small, "a");
}

T_CASE(percent_decode_roundtrip)
{
    const char *in = "bad \xe2\x9c\x97 100% \x01";
    char enc[128], dec[128];
    size_t n = hp_rpc_percent_encode(in, enc, sizeof enc);
    T_EQ_INT(hp_rpc_percent_decode(enc, n, dec, sizeof dec), strlen(in));
    T_EQ_STR(dec, in);
    /* malformed escapes are kept verbatim */
    hp_rpc_percent_decode("%zz%4", 5, dec, sizeof dec);
    T_EQ_STR(dec, "%zz%4");
    hp_rpc_percent_decode("%41%62", 6, dec, sizeof dec);
    T_EQ_STR(dec, "Ab");
}

T_CASE(prefix_parse_write)
{
    uint8_t p[5];
    bool comp = true;
    uint32_t len = 0;
    hp_rpc_write_prefix(p, 0x01020304u);
    T_EQ_INT(p[0], 0);
    T_EQ_INT(p[1], 1);
    T_EQ_INT(p[4], 4);
    T_EQ_INT(hp_rpc_parse_prefix(p, &comp, &len), 0);
    T_ASSERT(!comp);
    T_EQ_INT(len, 0x01020304u);

    const uint8_t big[5] = {1, 0x01, 0x00, 0x00, 0x01}; /* 16 MiB + 1, compressed */
    T_EQ_INT(hp_rpc_parse_prefix(big, &comp, &len), 0);
    T_ASSERT(comp);
    T_EQ_INT(len, HP_RPC_MAX_MESSAGE + 1);

    const uint8_t bad[5] = {2, 0, 0, 0, 0};
    T_EQ_INT(hp_rpc_parse_prefix(bad, &comp, &len), -1);
    const uint8_t maxv[5] = {0, 0xff, 0xff, 0xff, 0xff};
    T_EQ_INT(hp_rpc_parse_prefix(maxv, &comp, &len), 0);
    T_EQ_INT(len, 0xffffffffu);
}

T_CASE(content_type)
{
#define CT(s) hp_rpc_content_type_ok(s, strlen(s))
    T_ASSERT(CT("application/grpc"));
    T_ASSERT(CT("application/grpc+proto"));
    T_ASSERT(CT("application/grpc;charset=utf-8"));
    T_ASSERT(CT("Application/GRPC"));
    T_ASSERT(!CT("application/grpcx"));
    T_ASSERT(!CT("application/json"));
    T_ASSERT(!CT("text/plain"));
    T_ASSERT(!CT("application/grp"));
    T_ASSERT(!CT(""));
#undef CT
}

T_CASE(buf_reserve)
{
    hp_buf b = {0};
    T_EQ_INT(hp_buf_reserve(&b, 10), 0);
    T_ASSERT(b.cap >= 10 && b.data != NULL);
    memset(b.data, 'x', 10);
    b.len = 10;
    T_EQ_INT(hp_buf_reserve(&b, 1000), 0);
    T_ASSERT(b.cap >= 1010);
    T_EQ_INT(b.data[9], 'x');
    T_EQ_INT(hp_buf_reserve(&b, SIZE_MAX), -1); /* overflow refused */
    hp_buf_free(&b);
    T_ASSERT(b.data == NULL && b.len == 0 && b.cap == 0);
    hp_buf_free(NULL);
}

T_MAIN()
