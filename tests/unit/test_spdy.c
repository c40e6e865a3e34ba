/* SPDY/3.1 codec (src/stream/spdy.c): header blocks through a real zlib
 * stream with the SPDY dictionary, frames split across reads, PING answers,
 * and the refusals (oversized frames, corrupt header blocks, wrong version). */
#include "stream/spdy.h"
#include "t.h"

#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

struct rec {
    int streams;
    uint32_t last_id;
    char type[32], port[16];
    bool fin;
    uint8_t data[4096];
    size_t data_len;
    bool data_fin;
    int resets;
};

static void on_stream(void *ud, uint32_t id, const hp_spdy_header *h, size_t n, bool fin)
{
    struct rec *r = ud;
    r->streams++;
    r->last_id = id;
    r->fin = fin;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(h[i].name, "streamtype") == 0)
            snprintf(r->type, sizeof r->type, "%s", h[i].value);
        if (strcmp(h[i].name, "port") == 0)
            snprintf(r->port, sizeof r->port, "%s", h[i].value);
    }
}

static void on_data(void *ud, uint32_t id, const uint8_t *d, size_t n, bool fin)
{
    struct rec *r = ud;
    (void)id;
    if (n && r->data_len + n <= sizeof r->data) {
        memcpy(r->data + r->data_len, d, n);
        r->data_len += n;
    }
    r->data_fin |= fin;
}

static void on_reset(void *ud, uint32_t id)
{
    (void)id;
    ((struct rec *)ud)->resets++;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A client-side compressor: the peer's half of the header stream. */
struct client {
    z_stream z;
    uint8_t *dict;
};

static void client_init(struct client *c)
{
    size_t dl;
    memset(c, 0, sizeof *c);
    c->dict = (uint8_t *)hp_spdy_dictionary(&dl);
    deflateInit(&c->z, Z_DEFAULT_COMPRESSION);
    deflateSetDictionary(&c->z, c->dict, (uInt)dl);
}

static void client_free(struct client *c)
{
    deflateEnd(&c->z);
    free(c->dict);
}

/* SYN_STREAM id with two headers into out; returns its length. */
static size_t syn_stream(struct client *c, uint32_t id, const char *type, const char *port,
                         bool fin, uint8_t *out)
{
    uint8_t nv[256];
    size_t o = 4;
    const char *kv[4] = {"streamtype", type, "port", port};
    put32(nv, 2);
    for (int i = 0; i < 4; i++) {
        size_t l = strlen(kv[i]);
        put32(nv + o, (uint32_t)l);
        memcpy(nv + o + 4, kv[i], l);
        o += 4 + l;
    }
    uint8_t z[512];
    c->z.next_in = nv;
    c->z.avail_in = (uInt)o;
    c->z.next_out = z;
    c->z.avail_out = sizeof z;
    deflate(&c->z, Z_SYNC_FLUSH);
    size_t zl = sizeof z - c->z.avail_out;
    size_t len = 10 + zl;
    out[0] = 0x80;
    out[1] = 3;
    out[2] = 0;
    out[3] = 1; /* SYN_STREAM */
    put32(out + 4, (uint32_t)len);
    out[4] = fin ? 1 : 0;
    put32(out + 8, id);
    put32(out + 12, 0);
    out[16] = out[17] = 0;
    memcpy(out + 18, z, zl);
    return 8 + len;
}

static size_t data_frame(uint32_t id, const char *s, bool fin, uint8_t *out)
{
    size_t n = strlen(s);
    put32(out, id);
    put32(out + 4, (uint32_t)n);
    out[4] = fin ? 1 : 0;
    memcpy(out + 8, s, n);
    return 8 + n;
}

T_CASE(dictionary_is_the_spdy3_one)
{
    size_t len;
    uint8_t *d = (uint8_t *)hp_spdy_dictionary(&len);
    T_EQ_INT(len, 1423);
    T_ASSERT(memcmp(d, "\0\0\0\7options\0\0\0\4head", 15) == 0);
    T_ASSERT(memcmp(d + len - 6, "enq=0.", 6) == 0);
    /* the adler32 a peer's zlib checks before it accepts our header blocks */
    T_EQ_INT(adler32(1, d, (uInt)len), 0xe3c6a7c2u);
    free(d);
}

T_CASE(streams_and_data_split_across_reads)
{
    int sp[2];
    T_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
    struct rec r = {0};
    hp_spdy_cb cb = {.ud = &r, .on_stream = on_stream, .on_data = on_data, .on_reset = on_reset};
    hp_err e = HP_ERR_INIT;
    hp_spdy *s = hp_spdy_new(sp[0], &cb, &e);
    T_ASSERT(s != NULL);
    struct client c;
    client_init(&c);
    uint8_t buf[2048];
    size_t n = syn_stream(&c, 1, "error", "80", false, buf);
    n += syn_stream(&c, 3, "stdout", "8080", true, buf + n); /* shares the zlib stream */
    n += data_frame(3, "hello, ", false, buf + n);
    n += data_frame(3, "world", true, buf + n);
    for (size_t i = 0; i < n; i++) /* one byte at a time */
        T_EQ_INT(hp_spdy_feed(s, buf + i, 1, &e), 0);
    T_EQ_INT(r.streams, 2);
    T_EQ_INT(r.last_id, 3);
    T_EQ_STR(r.type, "stdout");
    T_EQ_STR(r.port, "8080");
    T_ASSERT(r.fin);
    T_EQ_INT(r.data_len, 12);
    T_ASSERT(memcmp(r.data, "hello, world", 12) == 0);
    T_ASSERT(r.data_fin);
    client_free(&c);
    hp_spdy_free(s);
    close(sp[0]);
    close(sp[1]);
}

T_CASE(ping_is_echoed_and_reply_decodes)
{
    int sp[2];
    T_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
    struct rec r = {0};
    hp_spdy_cb cb = {.ud = &r, .on_stream = on_stream};
    hp_err e = HP_ERR_INIT;
    hp_spdy *s = hp_spdy_new(sp[0], &cb, &e);
    uint8_t ping[12] = {0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 7};
    T_EQ_INT(hp_spdy_feed(s, ping, sizeof ping, &e), 0);
    uint8_t got[12];
    T_EQ_INT(read(sp[1], got, sizeof got), 12);
    T_ASSERT(memcmp(got, ping, 12) == 0);
    /* SYN_REPLY: a control frame whose header block a peer inflates */
    T_EQ_INT(hp_spdy_reply(s, 5, false, &e), 0);
    uint8_t rep[256];
    ssize_t rl = read(sp[1], rep, sizeof rep);
    T_ASSERT(rl > 12);
    T_EQ_INT(rep[3], 2); /* SYN_REPLY */
    T_EQ_INT(rep[11], 5);
    size_t dl;
    uint8_t *dict = (uint8_t *)hp_spdy_dictionary(&dl);
    z_stream z = {0};
    inflateInit(&z);
    uint8_t plain[64];
    z.next_in = rep + 12;
    z.avail_in = (uInt)(rl - 12);
    z.next_out = plain;
    z.avail_out = sizeof plain;
    int zr = inflate(&z, Z_SYNC_FLUSH);
    T_EQ_INT(zr, Z_NEED_DICT);
    T_EQ_INT(inflateSetDictionary(&z, dict, (uInt)dl), Z_OK);
    T_EQ_INT(inflate(&z, Z_SYNC_FLUSH), Z_OK);
    T_EQ_INT(sizeof plain - z.avail_out, 4); /* zero headers */
    inflateEnd(&z);
    free(dict);
    hp_spdy_free(s);
    close(sp[0]);
    close(sp[1]);
}

T_CASE(refuses_bad_frames)
{
    int sp[2];
    T_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
    struct rec r = {0};
    hp_spdy_cb cb = {.ud = &r, .on_stream = on_stream};
    hp_err e = HP_ERR_INIT;
    /* a 16 MiB frame */
    hp_spdy *s = hp_spdy_new(sp[0], &cb, &e);
    uint8_t big[8] = {0, 0, 0, 1, 0, 0xff, 0xff, 0xff};
    T_EQ_INT(hp_spdy_feed(s, big, sizeof big, &e), -1);
    T_ASSERT(strstr(e.msg, "frame") != NULL);
    hp_spdy_free(s);
    /* SPDY/2 */
    s = hp_spdy_new(sp[0], &cb, &e);
    uint8_t v2[12] = {0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1};
    T_EQ_INT(hp_spdy_feed(s, v2, sizeof v2, &e), -1);
    T_ASSERT(strstr(e.msg, "version") != NULL);
    hp_spdy_free(s);
    /* a header block that is not zlib */
    s = hp_spdy_new(sp[0], &cb, &e);
    uint8_t bad[8 + 10 + 8] = {0x80, 3, 0, 1, 0, 0, 0, 18, 0, 0, 0, 1};
    memset(bad + 18, 0x55, 8);
    T_EQ_INT(hp_spdy_feed(s, bad, sizeof bad, &e), -1);
    T_EQ_INT(r.streams, 0);
    hp_spdy_free(s);
    /* GOAWAY ends the session */
    s = hp_spdy_new(sp[0], &cb, &e);
    uint8_t ga[16] = {0x80, 3, 0, 7, 0, 0, 0, 8};
    T_EQ_INT(hp_spdy_feed(s, ga, sizeof ga, &e), 1);
    hp_spdy_free(s);
    close(sp[0]);
    close(sp[1]);
}

T_MAIN()
