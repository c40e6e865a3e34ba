/* SPDY/3.1 server-side framing (see spdy.h). */
#include "stream/spdy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#include "util/cleanup.h"

#define SPDY_VERSION    3
#define T_SYN_STREAM    1
#define T_SYN_REPLY     2
#define T_RST_STREAM    3
#define T_SETTINGS      4
#define T_PING          6
#define T_GOAWAY        7
#define T_HEADERS       8
#define T_WINDOW_UPDATE 9
#define FLAG_FIN        0x01

#define MAX_FRAME      (1u << 20)  /* larger frames are refused */
#define MAX_HEADERS    (64u << 10) /* decompressed header block limit */
#define MAX_SEND_CHUNK (16u << 10)
#define WINDOW_RETURN  (32u << 10) /* return window once this much was consumed */
#define MAX_NV         64

/* The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): these
 * names, each preceded by its 32-bit big-endian length, then TAIL. */
static const char *const dict_names[] = {"options",
                                         "head",
                                         "post",
                                         "put",
                                         "delete",
                                         "trace",
                                         "accept",
                                         "accept-charset",
                                         "accept-encoding",
                                         "accept-language",
                                         "accept-ranges",
                                         "age",
                                         "allow",
                                         "authorization",
                                         "cache-control",
                                         "connection",
                                         "content-base",
                                         "content-encoding",
                                         "content-language",
                                         "content-length",
                                         "content-location",
                                         "content-md5",
                                         "content-range",
                                         "content-type",
                                         "date",
                                         "etag",
                                         "expect",
                                         "expires",
                                         "from",
                                         "host",
                                         "if-match",
                                         "if-modified-since",
                                         "if-none-match",
                                         "if-range",
                                         "if-unmodified-since",
                                         "last-modified",
                                         "location",
                                         "max-forwards",
                                         "pragma",
                                         "proxy-authenticate",
                                         "proxy-authorization",
                                         "range",
                                         "referer",
                                         "retry-after",
                                         "server",
                                         "te",
                                         "trailer",
                                         "transfer-encoding",
                                         "upgrade",
                                         "user-agent",
                                         "vary",
                                         "via",
                                         "warning",
                                         "www-authenticate",
                                         "method",
                                         "get",
                                         "status",
                                         "200 OK",
                                         "version",
                                         "HTTP/1.1",
                                         "url",
                                         "public",
                                         "set-cookie",
                                         "keep-alive",
                                         "origin"};
static const char dict_tail[] =
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
#define DICT_LEN 1423

struct hp_spdy {
    int fd;
    hp_spdy_cb cb;
    uint8_t dict[DICT_LEN];
    z_stream in, out;
    bool in_ok, out_ok;
    uint8_t *rbuf; /* unparsed input */
    size_t rlen, rcap;
    uint32_t unacked_session; /* consumed data not yet returned as window */
    bool closed;
};

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void build_dict(uint8_t *d)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof dict_names / sizeof dict_names[0]; i++) {
        size_t l = strlen(dict_names[i]);
        put32(d + n, (uint32_t)l);
        memcpy(d + n + 4, dict_names[i], l);
        n += 4 + l;
    }
    memcpy(d + n, dict_tail, sizeof dict_tail - 1);
}

const uint8_t *hp_spdy_dictionary(size_t *len)
{
    /* for tests only: a session-less copy the caller frees */
    uint8_t *d = malloc(DICT_LEN);
    if (d)
        build_dict(d);
    *len = DICT_LEN;
    return d;
}

hp_spdy *hp_spdy_new(int fd, const hp_spdy_cb *cb, hp_err *err)
{
    hp_spdy *s = calloc(1, sizeof *s);
    if (s == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    s->fd = fd;
    s->cb = *cb;
    build_dict(s->dict);
    if (inflateInit(&s->in) != Z_OK) {
        hp_err_set(err, HP_INTERNAL, "zlib inflateInit failed");
        free(s);
        return NULL;
    }
    s->in_ok = true;
    if (deflateInit(&s->out, Z_DEFAULT_COMPRESSION) != Z_OK ||
        deflateSetDictionary(&s->out, s->dict, DICT_LEN) != Z_OK) {
        hp_err_set(err, HP_INTERNAL, "zlib deflateInit failed");
        hp_spdy_free(s);
        return NULL;
    }
    s->out_ok = true;
    return s;
}

void hp_spdy_free(hp_spdy *s)
{
    if (s == NULL)
        return;
    if (s->in_ok)
        inflateEnd(&s->in);
    if (s->out_ok)
        deflateEnd(&s->out);
    free(s->rbuf);
    free(s);
}

static int write_all(hp_spdy *s, const uint8_t *p, size_t n, hp_err *err)
{
    while (n > 0) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return hp_err_sys(err, HP_UNAVAILABLE, "stream connection write");
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_control(hp_spdy *s, uint16_t type, uint8_t flags, const uint8_t *body, size_t len,
                        hp_err *err)
{
    uint8_t h[8];
    h[0] = 0x80 | (SPDY_VERSION >> 8);
    h[1] = SPDY_VERSION & 0xff;
    h[2] = (uint8_t)(type >> 8);
    h[3] = (uint8_t)type;
    put32(h + 4, (uint32_t)len);
    h[4] = flags;
    if (write_all(s, h, 8, err) < 0)
        return -1;
    return len ? write_all(s, body, len, err) : 0;
}

int hp_spdy_encode_headers(hp_spdy *s, const hp_spdy_header *h, size_t n, uint8_t **out,
                           size_t *out_len, hp_err *err)
{
    size_t plain_len = 4;
    for (size_t i = 0; i < n; i++)
        plain_len += 8 + strlen(h[i].name) + strlen(h[i].value);
    _cleanup_free_ uint8_t *plain = malloc(plain_len);
    size_t cap = plain_len + plain_len / 8 + 64;
    _cleanup_free_ uint8_t *z = malloc(cap);
    if (!plain || !z)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    size_t o = 0;
    put32(plain, (uint32_t)n);
    o = 4;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(h[i].name), vl = strlen(h[i].value);
        put32(plain + o, (uint32_t)nl);
        memcpy(plain + o + 4, h[i].name, nl);
        o += 4 + nl;
        put32(plain + o, (uint32_t)vl);
        memcpy(plain + o + 4, h[i].value, vl);
        o += 4 + vl;
    }
    s->out.next_in = plain;
    s->out.avail_in = (uInt)plain_len;
    s->out.next_out = z;
    s->out.avail_out = (uInt)cap;
    if (deflate(&s->out, Z_SYNC_FLUSH) != Z_OK || s->out.avail_in != 0)
        return hp_err_set(err, HP_INTERNAL, "header compression failed");
    *out_len = cap - s->out.avail_out;
    *out = hp_steal_ptr(&z);
    return 0;
}

int hp_spdy_reply(hp_spdy *s, uint32_t id, bool fin, hp_err *err)
{
    _cleanup_free_ uint8_t *z = NULL;
    size_t zl = 0;
    if (hp_spdy_encode_headers(s, NULL, 0, &z, &zl, err) < 0)
        return -1;
    _cleanup_free_ uint8_t *body = malloc(4 + zl);
    if (!body)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    put32(body, id & 0x7fffffff);
    memcpy(body + 4, z, zl);
    return send_control(s, T_SYN_REPLY, fin ? FLAG_FIN : 0, body, 4 + zl, err);
}

int hp_spdy_send(hp_spdy *s, uint32_t id, const void *data, size_t len, bool fin, hp_err *err)
{
    const uint8_t *p = data;
    do {
        size_t n = len > MAX_SEND_CHUNK ? MAX_SEND_CHUNK : len;
        uint8_t h[8];
        put32(h, id & 0x7fffffff);
        put32(h + 4, (uint32_t)n);
        h[4] = (fin && n == len) ? FLAG_FIN : 0;
        if (write_all(s, h, 8, err) < 0 || (n && write_all(s, p, n, err) < 0))
            return -1;
        p += n;
        len -= n;
    } while (len > 0);
    return 0;
}

int hp_spdy_reset(hp_spdy *s, uint32_t id, uint32_t status, hp_err *err)
{
    uint8_t b[8];
    put32(b, id & 0x7fffffff);
    put32(b + 4, status);
    return send_control(s, T_RST_STREAM, 0, b, 8, err);
}

int hp_spdy_goaway(hp_spdy *s, hp_err *err)
{
    uint8_t b[8] = {0};
    return send_control(s, T_GOAWAY, 0, b, 8, err);
}

static int window_update(hp_spdy *s, uint32_t id, uint32_t delta, hp_err *err)
{
    uint8_t b[8];
    put32(b, id & 0x7fffffff);
    put32(b + 4, delta & 0x7fffffff);
    return send_control(s, T_WINDOW_UPDATE, 0, b, 8, err);
}

/* Inflate one header block and call on_stream.  The inflate stream spans
 * the whole session. */
static int parse_headers(hp_spdy *s, const uint8_t *z, size_t zl, uint32_t id, bool fin,
                         hp_err *err)
{
    _cleanup_free_ uint8_t *plain = malloc(MAX_HEADERS);
    if (!plain)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    s->in.next_in = (Bytef *)z;
    s->in.avail_in = (uInt)zl;
    s->in.next_out = plain;
    s->in.avail_out = MAX_HEADERS;
    for (;;) {
        int r = inflate(&s->in, Z_SYNC_FLUSH);
        if (r == Z_NEED_DICT) {
            if (inflateSetDictionary(&s->in, s->dict, DICT_LEN) != Z_OK)
                return hp_err_set(err, HP_INVALID_ARGUMENT, "spdy: wrong header dictionary");
            continue;
        }
        if (r == Z_BUF_ERROR && s->in.avail_in == 0)
            break;
        if (r != Z_OK)
            return hp_err_set(err, HP_INVALID_ARGUMENT, "spdy: corrupt header block");
        if (s->in.avail_in == 0)
            break;
        if (s->in.avail_out == 0)
            return hp_err_set(err, HP_INVALID_ARGUMENT, "spdy: header block over %u bytes",
                              MAX_HEADERS);
    }
    size_t len = MAX_HEADERS - s->in.avail_out, o = 4;
    if (len < 4)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "spdy: short header block");
    uint32_t n = get32(plain);
    if (n > MAX_NV)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "spdy: %u headers (at most %u)", n, MAX_NV);
    hp_spdy_header h[MAX_NV];
    /* names and values are NUL-terminated in a copy so callers get C strings */
    _cleanup_free_ char *strs = malloc(len + 2 * MAX_NV);
    if (!strs)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    size_t so = 0;
    for (uint32_t i = 0; i < n; i++) {
        for (int part = 0; part < 2; part++) {
            if (o + 4 > len)
                return hp_err_set(err, HP_INVALID_ARGUMENT, "spdy: truncated header block");
            uint32_t l = get32(plain + o);
            o += 4;
            if (l > len - o)
                return hp_err_set(err, HP_INVALID_ARGUMENT, "spdy: truncated header block");
            memcpy(strs + so, plain + o, l);
            strs[so + l] = '\0';
            if (part == 0)
                h[i].name = strs + so;
            else
                h[i].value = strs + so;
            so += l + 1;
            o += l;
        }
    }
    if (s->cb.on_stream)
        s->cb.on_stream(s->cb.ud, id, h, n, fin);
    return 0;
}

static int handle_frame(hp_spdy *s, const uint8_t *f, size_t len, hp_err *err)
{
    uint8_t flags = f[4];
    const uint8_t *body = f + 8;
    if (!(f[0] & 0x80)) { /* data frame */
        uint32_t id = get32(f) & 0x7fffffff;
        if (len && s->cb.on_data)
            s->cb.on_data(s->cb.ud, id, body, len, flags & FLAG_FIN);
        else if (s->cb.on_data)
            s->cb.on_data(s->cb.ud, id, NULL, 0, flags & FLAG_FIN);
        if (len) {
            /* give the window back, per stream and for the session */
            if (window_update(s, id, (uint32_t)len, err) < 0)
                return -1;
            s->unacked_session += (uint32_t)len;
            if (s->unacked_session >= WINDOW_RETURN) {
                if (window_update(s, 0, s->unacked_session, err) < 0)
                    return -1;
                s->unacked_session = 0;
            }
        }
        return 0;
    }
    uint16_t version = (uint16_t)((f[0] & 0x7f) << 8 | f[1]);
    uint16_t type = (uint16_t)(f[2] << 8 | f[3]);
    if (version != SPDY_VERSION)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "spdy: version %u (want 3)", version);
    switch (type) {
    case T_SYN_STREAM:
        if (len < 10)
            return hp_err_set(err, HP_INVALID_ARGUMENT, "spdy: short SYN_STREAM");
        return parse_headers(s, body + 10, len - 10, get32(body) & 0x7fffffff, flags & FLAG_FIN,
                             err);
    case T_RST_STREAM:
        if (len < 8)
            return hp_err_set(err, HP_INVALID_ARGUMENT, "spdy: short RST_STREAM");
        if (s->cb.on_reset)
            s->cb.on_reset(s->cb.ud, get32(body) & 0x7fffffff);
        return 0;
    case T_PING:
        if (len != 4)
            return hp_err_set(err, HP_INVALID_ARGUMENT, "spdy: bad PING");
        return send_control(s, T_PING, 0, body, 4, err);
    case T_GOAWAY:
        s->closed = true;
        return 0;
    case T_HEADERS: {
        /* keep the shared inflate stream in step; extra headers are ignored */
        if (len < 4)
            return hp_err_set(err, HP_INVALID_ARGUMENT, "spdy: short HEADERS");
        hp_spdy_cb saved = s->cb;
        s->cb.on_stream = NULL;
        int rc = parse_headers(s, body + 4, len - 4, 0, false, err);
        s->cb = saved;
        if (rc == 0 && (flags & FLAG_FIN) && s->cb.on_data)
            s->cb.on_data(s->cb.ud, get32(body) & 0x7fffffff, NULL, 0, true);
        return rc;
    }
    case T_SETTINGS:
    case T_WINDOW_UPDATE:
    default: /* unknown control frames must be ignored */
        return 0;
    }
}

int hp_spdy_feed(hp_spdy *s, const uint8_t *buf, size_t len, hp_err *err)
{
    if (s->rlen + len > s->rcap) {
        size_t cap = s->rcap ? s->rcap : 16384;
        while (cap < s->rlen + len)
            cap *= 2;
        uint8_t *p = realloc(s->rbuf, cap);
        if (!p)
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        s->rbuf = p;
        s->rcap = cap;
    }
    memcpy(s->rbuf + s->rlen, buf, len);
    s->rlen += len;
    size_t off = 0;
    while (s->rlen - off >= 8) {
        const uint8_t *f = s->rbuf + off;
        uint32_t flen = get32(f + 4) & 0xffffff;
        if (flen > MAX_FRAME)
            return hp_err_set(err, HP_INVALID_ARGUMENT, "spdy: %u-byte frame (at most %u)", flen,
                              MAX_FRAME);
        if (s->rlen - off < 8 + (size_t)flen)
            break;
        if (handle_frame(s, f, flen, err) < 0)
            return -1;
        off += 8 + flen;
    }
    memmove(s->rbuf, s->rbuf + off, s->rlen - off);
    s->rlen -= off;
    return s->closed ? 1 : 0;
}

int hp_spdy_read(hp_spdy *s, hp_err *err)
{
    uint8_t buf[32768];
    ssize_t n = read(s->fd, buf, sizeof buf);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return 0;
        return hp_err_sys(err, HP_UNAVAILABLE, "stream connection read");
    }
    if (n == 0)
        return 1;
    return hp_spdy_feed(s, buf, (size_t)n, err);
}
