/* Pure gRPC wire-format helpers and the hp_buf byte buffer. */
#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int hp_buf_reserve(hp_buf *b, size_t extra)
{
    size_t need, cap;
    uint8_t *p;
    if (extra > SIZE_MAX - b->len) {
        errno = ENOMEM;
        return -1;
    }
    need = b->len + extra;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

void hp_buf_free(hp_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int64_t hp_rpc_parse_timeout(const char *v, size_t len)
{
    int64_t n = 0, mult;
    if (v == NULL || len < 2 || len > 9)
        return -1;
    for (size_t i = 0; i + 1 < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (v[i] - '0');
    }
    switch (v[len - 1]) {
    case 'H':
        mult = 3600LL * 1000000000LL;
        break;
    case 'M':
        mult = 60LL * 1000000000LL;
        break;
    case 'S':
        mult = 1000000000LL;
        break;
    case 'm':
        mult = 1000000LL;
        break;
    case 'u':
        mult = 1000LL;
        break;
    case 'n':
        mult = 1;
        break;
    default:
        return -1;
    }
    /* 99999999 hours do not fit in int64 nanoseconds: saturate. */
    if (n > INT64_MAX / mult)
        return INT64_MAX;
    return n * mult;
}

static const char hex_digits[] = "0123456789ABCDEF";

size_t hp_rpc_percent_encode(const char *in, char *out, size_t outsz)
{
    size_t o = 0;
    if (outsz == 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)in; p && *p; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            if (o + 1 >= outsz)
                break;
            out[o++] = (char)*p;
        } else {
            if (o + 3 >= outsz)
                break;
            out[o++] = '%';
            out[o++] = hex_digits[*p >> 4];
            out[o++] = hex_digits[*p & 0xf];
        }
    }
    out[o] = '\0';
    return o;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t hp_rpc_percent_decode(const char *in, size_t inlen, char *out, size_t outsz)
{
    size_t o = 0;
    if (outsz == 0)
        return 0;
    for (size_t i = 0; i < inlen && o + 1 < outsz; i++) {
        int hi, lo;
        if (in[i] == '%' && i + 2 < inlen && (hi = hex_val(in[i + 1])) >= 0 &&
            (lo = hex_val(in[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    return o;
}

int hp_rpc_parse_prefix(const uint8_t p[HP_RPC_PREFIX_LEN], bool *compressed, uint32_t *len)
{
    if (p[0] > 1)
        return -1;
    *compressed = p[0] == 1;
    *len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | (uint32_t)p[4];
    return 0;
}

void hp_rpc_write_prefix(uint8_t p[HP_RPC_PREFIX_LEN], uint32_t len)
{
    p[0] = 0;
    p[1] = (uint8_t)(len >> 24);
    p[2] = (uint8_t)(len >> 16);
    p[3] = (uint8_t)(len >> 8);
    p[4] = (uint8_t)len;
}

bool hp_rpc_content_type_ok(const char *v, size_t len)
{
    static const char base[] = "application/grpc";
    size_t n = sizeof base - 1;
    if (v == NULL || len < n || strncasecmp(v, base, n) != 0)
        return false;
    return len == n || v[n] == '+' || v[n] == ';';
}
