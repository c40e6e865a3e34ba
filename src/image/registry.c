#include "image/registry.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/cleanup.h"
#include "util/log.h"

#define MAX_TRIES      3
#define ERRBODY_MAX    2048
#define HEADER_MAX     4096
#define TOKEN_RESP_MAX (1024 * 1024)

/* ---- client ---- */

struct settings {
    char *host;
    char **mirrors;
    size_t n_mirrors;
    bool mirror_only;
    bool insecure;
    char *ca_file;
};

struct token {
    char *key;   /* endpoint base "\n" scope "\n" credential hash */
    char *value; /* full Authorization header value ("Bearer x" / "Basic y") */
    struct timespec expires;
    struct token *next;
};

struct hp_registry {
    struct settings *settings;
    size_t n_settings;
    char *user_agent;
    long connect_timeout_ms, low_speed_limit, low_speed_time, retry_delay_ms;
    pthread_mutex_t lock; /* protects tokens */
    struct token *tokens;
};

int hp_registry_global_init(hp_err *err)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
        return hp_err_set(err, HP_INTERNAL, "curl_global_init failed: %s", curl_easy_strerror(rc));
    return 0;
}

void hp_registry_global_cleanup(void)
{
    curl_global_cleanup();
}

static void settings_free(struct settings *s)
{
    free(s->host);
    for (size_t i = 0; i < s->n_mirrors; i++)
        free(s->mirrors[i]);
    free(s->mirrors);
    free(s->ca_file);
}

void hp_registry_free(struct hp_registry *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_settings; i++)
        settings_free(&r->settings[i]);
    free(r->settings);
    free(r->user_agent);
    for (struct token *t = r->tokens, *next; t; t = next) {
        next = t->next;
        free(t->key);
        free(t->value);
        free(t);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct hp_registry *hp_registry_new(const struct hp_registry_config *cfg, hp_err *err)
{
    struct hp_registry *r = calloc(1, sizeof *r);
    if (r == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    r->connect_timeout_ms = cfg && cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 10000;
    r->low_speed_limit = cfg && cfg->low_speed_limit > 0 ? cfg->low_speed_limit : 1024;
    r->low_speed_time = cfg && cfg->low_speed_time > 0 ? cfg->low_speed_time : 30;
    r->retry_delay_ms = cfg && cfg->retry_delay_ms > 0 ? cfg->retry_delay_ms : 200;
    r->user_agent = strdup(cfg && cfg->user_agent ? cfg->user_agent : "hpcri");
    if (r->user_agent == NULL)
        goto oom;
    if (cfg && cfg->n_registries) {
        r->settings = calloc(cfg->n_registries, sizeof *r->settings);
        if (r->settings == NULL)
            goto oom;
        for (size_t i = 0; i < cfg->n_registries; i++) {
            const struct hp_registry_settings *in = &cfg->registries[i];
            struct settings *s = &r->settings[i];
            r->n_settings = i + 1;
            if (in->host == NULL || *in->host == '\0') {
                hp_registry_free(r);
                hp_err_set(err, HP_INVALID_ARGUMENT, "registry settings #%zu without host", i);
                return NULL;
            }
            s->host = strdup(in->host);
            s->mirror_only = in->mirror_only;
            s->insecure = in->insecure;
            s->ca_file = xstrdup(in->ca_file);
            if (s->host == NULL || (in->ca_file && s->ca_file == NULL))
                goto oom;
            if (in->n_mirrors) {
                s->mirrors = calloc(in->n_mirrors, sizeof *s->mirrors);
                if (s->mirrors == NULL)
                    goto oom;
                for (size_t k = 0; k < in->n_mirrors; k++) {
                    s->mirrors[k] = strdup(in->mirrors[k]);
                    s->n_mirrors = k + 1;
                    if (s->mirrors[k] == NULL)
                        goto oom;
                }
            }
            if (s->mirror_only && s->n_mirrors == 0) {
                hp_registry_free(r);
                hp_err_set(err, HP_INVALID_ARGUMENT,
                           "registry %s: mirror_only is set but no mirrors are configured",
                           in->host);
                return NULL;
            }
        }
    }
    return r;
oom:
    hp_registry_free(r);
    hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
}

/* ---- small helpers ---- */

static const char *reason_phrase(long status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 416:
        return "Range Not Satisfiable";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}

static void hex_digest(const unsigned char *md, unsigned len, char *out /* >= 72 */)
{
    static const char hx[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (unsigned i = 0; i < len && i < 32; i++) {
        out[7 + 2 * i] = hx[md[i] >> 4];
        out[8 + 2 * i] = hx[md[i] & 15];
    }
    out[7 + 64] = '\0';
}

static int sha256_hex(const void *buf, size_t n, char *out, hp_err *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (!EVP_Digest(buf, n, md, &len, EVP_sha256(), NULL))
        return hp_err_set(err, HP_INTERNAL, "sha256 failed");
    hex_digest(md, len, out);
    return 0;
}

static bool cancelled(const struct hp_pull_opts *o)
{
    return o && o->cancel && atomic_load(o->cancel);
}

/* Sleep ms milliseconds in small slices, returning early (-1) on cancel. */
static int sleep_cancellable(long ms, const struct hp_pull_opts *o)
{
    while (ms > 0) {
        long step = ms < 20 ? ms : 20;
        struct timespec ts = {0, step * 1000000L};
        if (cancelled(o))
            return -1;
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return cancelled(o) ? -1 : 0;
}

/* Repository and reference end up in a URL path: allow only the characters
 * the distribution spec grammar allows. */
static int check_path_part(const char *s, const char *what, bool allow_slash, hp_err *err)
{
    if (s == NULL || *s == '\0' || strlen(s) > 255)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid %s \"%.80s\"", what, s ? s : "");
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (isalnum(c) || c == '.' || c == '_' || c == '-' || c == ':' || (allow_slash && c == '/'))
            continue;
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid %s \"%.80s\"", what, s);
    }
    if (strstr(s, "..") || s[0] == '/')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid %s \"%.80s\"", what, s);
    return 0;
}

/* ---- endpoints ---- */

struct endpoint {
    char base[512]; /* "https://registry-1.docker.io" (no trailing slash) */
    char name[300]; /* for messages: the registry host, or the mirror URL */
    bool insecure;
    const char *ca_file; /* borrowed from the client settings */
};

static const struct settings *find_settings(const struct hp_registry *r, const char *host)
{
    for (size_t i = 0; i < r->n_settings; i++)
        if (strcasecmp(r->settings[i].host, host) == 0)
            return &r->settings[i];
    return NULL;
}

static bool is_loopback(const char *host)
{
    return strncmp(host, "localhost", 9) == 0 || strncmp(host, "127.", 4) == 0 ||
           strncmp(host, "[::1]", 5) == 0;
}

/* Build the ordered endpoint list for host.  *eps is owned by the caller (free). */
static int endpoints_for(const struct hp_registry *r, const char *host, struct endpoint **eps,
                         size_t *n, hp_err *err)
{
    const struct settings *s = find_settings(r, host);
    size_t cap = (s ? s->n_mirrors : 0) + 1, k = 0;
    *eps = NULL;
    *n = 0;
    if (host == NULL || *host == '\0' || strlen(host) > 255 || strpbrk(host, "/?#@ \t\r\n"))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid registry host \"%.80s\"",
                          host ? host : "");
    struct endpoint *e = calloc(cap, sizeof *e);
    if (e == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; s && i < s->n_mirrors; i++) {
        const char *m = s->mirrors[i];
        size_t len = strlen(m);
        while (len > 0 && m[len - 1] == '/')
            len--;
        if (len == 0 || len > 400) {
            free(e);
            return hp_err_set(err, HP_INVALID_ARGUMENT, "registry %s: invalid mirror \"%.80s\"",
                              host, m);
        }
        snprintf(e[k].base, sizeof e[k].base, "%s%.*s", strstr(m, "://") ? "" : "https://",
                 (int)len, m);
        snprintf(e[k].name, sizeof e[k].name, "%.*s", (int)len, m);
        e[k].insecure = s->insecure;
        e[k].ca_file = s->ca_file;
        k++;
    }
    if (!(s && s->mirror_only)) {
        bool insecure = s ? s->insecure : false;
        const char *api = host;
        if (strcasecmp(host, "docker.io") == 0 || strcasecmp(host, "index.docker.io") == 0)
            api = "registry-1.docker.io";
        snprintf(e[k].base, sizeof e[k].base, "%s://%s",
                 insecure || is_loopback(host) ? "http" : "https", api);
        snprintf(e[k].name, sizeof e[k].name, "%s", host);
        e[k].insecure = insecure;
        e[k].ca_file = s ? s->ca_file : NULL;
        k++;
    }
    *eps = e;
    *n = k;
    return 0;
}

/* ---- token cache ---- */

static void now_mono(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}

/* Cache key; creds are folded in as a hash so different users never share a
 * token.  Writes into buf. */
static void token_key(const struct endpoint *ep, const char *scope,
                      const struct hp_registry_creds *c, char *buf, size_t n)
{
    char h[80] = "anonymous";
    if (c) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned char out[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        const char *parts[] = {c->username, c->password, c->identity_token, c->registry_token};
        if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
            for (size_t i = 0; i < 4; i++) {
                const char *p = parts[i] ? parts[i] : "";
                EVP_DigestUpdate(md, p, strlen(p) + 1);
            }
            if (EVP_DigestFinal_ex(md, out, &len))
                hex_digest(out, len, h);
        }
        EVP_MD_CTX_free(md);
    }
    snprintf(buf, n, "%s\n%s\n%s", ep->base, scope, h);
}

/* Look up a cached Authorization value.  Returns a malloc'd copy (caller
 * frees) or NULL. */
static char *token_get(struct hp_registry *r, const char *key)
{
    struct timespec now;
    char *v = NULL;
    now_mono(&now);
    pthread_mutex_lock(&r->lock);
    for (struct token **pp = &r->tokens; *pp;) {
        struct token *t = *pp;
        if (t->expires.tv_sec < now.tv_sec) {
            *pp = t->next;
            free(t->key);
            free(t->value);
            free(t);
            continue;
        }
        if (strcmp(t->key, key) == 0)
            v = strdup(t->value);
        pp = &t->next;
    }
    pthread_mutex_unlock(&r->lock);
    return v;
}

static void token_put(struct hp_registry *r, const char *key, const char *value, long ttl)
{
    struct token *t = calloc(1, sizeof *t);
    if (t == NULL)
        return;
    t->key = strdup(key);
    t->value = strdup(value);
    if (t->key == NULL || t->value == NULL) {
        free(t->key);
        free(t->value);
        free(t);
        return;
    }
    now_mono(&t->expires);
    t->expires.tv_sec += ttl > 10 ? ttl - 5 : ttl;
    pthread_mutex_lock(&r->lock);
    for (struct token **pp = &r->tokens; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            struct token *old = *pp;
            t->next = old->next;
            *pp = t;
            free(old->key);
            free(old->value);
            free(old);
            pthread_mutex_unlock(&r->lock);
            return;
        }
    }
    t->next = r->tokens;
    r->tokens = t;
    pthread_mutex_unlock(&r->lock);
}

/* ---- one HTTP exchange ---- */

enum body_mode { BODY_MEM, BODY_SINK };

struct xfer {
    struct hp_registry *r;
    const struct hp_pull_opts *o;
    CURL *curl;
    /* response */
    long status;
    char *www_auth;
    char *content_type;
    char *docker_digest;
    char *content_range;
    bool body_started;
    char errbody[ERRBODY_MAX + 1];
    size_t errlen;
    /* body */
    enum body_mode mode;
    char *buf; /* BODY_MEM */
    size_t len, cap, max;
    hp_sink_write_fn write; /* BODY_SINK */
    void *ud;
    EVP_MD_CTX *md;
    uint64_t done, skip, limit;
    /* failures detected inside callbacks */
    bool fatal; /* do not retry: err_cb holds the error */
    hp_err err_cb;
    const char *what; /* "blob sha256:..." for messages */
    const char *epname;
};

static void xfer_reset_response(struct xfer *x)
{
    free(x->www_auth);
    free(x->content_type);
    free(x->docker_digest);
    free(x->content_range);
    x->www_auth = x->content_type = x->docker_digest = x->content_range = NULL;
    x->status = 0;
    x->body_started = false;
    x->errlen = 0;
    x->errbody[0] = '\0';
    if (x->mode == BODY_MEM)
        x->len = 0;
}

static void xfer_free(struct xfer *x)
{
    xfer_reset_response(x);
    free(x->buf);
    x->buf = NULL;
    if (x->md)
        EVP_MD_CTX_free(x->md);
    x->md = NULL;
    if (x->curl)
        curl_easy_cleanup(x->curl);
    x->curl = NULL;
}

/* Copy a header value (trimmed) into a new string. */
static char *header_value(const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return strndup(v, n);
}

static bool header_is(const char *line, size_t n, const char *name, const char **val, size_t *vlen)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return false;
    *val = line + k + 1;
    *vlen = n - k - 1;
    return true;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nitems;
    const char *v;
    size_t vn;
    if (n > HEADER_MAX)
        return n; /* ignore absurd headers */
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        const char *sp = memchr(line, ' ', n);
        xfer_reset_response(x);
        if (sp)
            x->status = strtol(sp + 1, NULL, 10);
        return n;
    }
    if (header_is(line, n, "WWW-Authenticate", &v, &vn)) {
        char *val = header_value(v, vn);
        /* Prefer a Bearer challenge when several are offered. */
        if (val && (x->www_auth == NULL || (strncasecmp(x->www_auth, "Bearer", 6) != 0 &&
                                            strncasecmp(val, "Bearer", 6) == 0))) {
            free(x->www_auth);
            x->www_auth = val;
        } else {
            free(val);
        }
    } else if (header_is(line, n, "Content-Type", &v, &vn)) {
        free(x->content_type);
        x->content_type = header_value(v, vn);
    } else if (header_is(line, n, "Docker-Content-Digest", &v, &vn)) {
        free(x->docker_digest);
        x->docker_digest = header_value(v, vn);
    } else if (header_is(line, n, "Content-Range", &v, &vn)) {
        free(x->content_range);
        x->content_range = header_value(v, vn);
    }
    return n;
}

/* Record a non-retryable error from inside a curl callback; returns 0, which
 * makes curl fail the transfer with CURLE_WRITE_ERROR. */
__attribute__((format(printf, 3, 4))) static size_t fail_cb(struct xfer *x, int code,
                                                            const char *fmt, ...)
{
    va_list ap;
    char msg[HP_ERR_MSG_MAX];
    x->fatal = true;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hp_err_set(&x->err_cb, code, "%s", msg);
    return 0;
}

/* Decide on the first body byte of a 2xx answer how many bytes to skip when
 * resuming: a 206 must start exactly where we are, a 200 restarts. */
static size_t start_body(struct xfer *x)
{
    x->body_started = true;
    x->skip = 0;
    if (x->mode != BODY_SINK || x->done == 0)
        return 1;
    if (x->status == 206) {
        unsigned long long start = 0;
        if (x->content_range == NULL || sscanf(x->content_range, "bytes %llu-", &start) != 1 ||
            start != x->done)
            return fail_cb(x, HP_UNAVAILABLE, "%s: resumed download answered a wrong range",
                           x->what);
        return 1;
    }
    x->skip = x->done;
    return 1;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb, total = n;
    if (cancelled(x->o))
        return fail_cb(x, HP_CANCELLED, "%s: pull cancelled", x->what);
    if (x->status < 200 || x->status > 299) {
        size_t room = ERRBODY_MAX - x->errlen;
        size_t k = n < room ? n : room;
        memcpy(x->errbody + x->errlen, data, k);
        x->errlen += k;
        x->errbody[x->errlen] = '\0';
        return n;
    }
    if (!x->body_started && start_body(x) == 0)
        return 0;
    if (x->mode == BODY_MEM) {
        if (n > x->max - x->len)
            return fail_cb(x, HP_RESOURCE_EXHAUSTED, "%s is larger than %" PRIu64 " bytes", x->what,
                           (uint64_t)x->max);
        if (x->len + n + 1 > x->cap) {
            size_t cap = x->cap ? x->cap : 16384;
            while (cap < x->len + n + 1)
                cap *= 2;
            char *nb = realloc(x->buf, cap);
            if (nb == NULL)
                return fail_cb(x, HP_RESOURCE_EXHAUSTED, "%s: out of memory", x->what);
            x->buf = nb;
            x->cap = cap;
        }
        memcpy(x->buf + x->len, data, n);
        x->len += n;
        x->buf[x->len] = '\0';
        return total;
    }
    if (x->skip) {
        size_t k = n < x->skip ? n : (size_t)x->skip;
        x->skip -= k;
        data += k;
        n -= k;
        if (n == 0)
            return total;
    }
    if (n > x->limit - x->done)
        return fail_cb(x, HP_DATA_LOSS, "%s: larger than the expected %" PRIu64 " bytes", x->what,
                       x->limit);
    if (x->md && !EVP_DigestUpdate(x->md, data, n))
        return fail_cb(x, HP_INTERNAL, "%s: sha256 failed", x->what);
    hp_err_clear(&x->err_cb);
    if (x->write(x->ud, data, n, &x->err_cb) < 0) {
        x->fatal = true;
        if (x->err_cb.code == HP_OK)
            hp_err_set(&x->err_cb, HP_INTERNAL, "%s: the sink failed", x->what);
        return 0;
    }
    x->done += n;
    if (x->o && x->o->progress)
        x->o->progress(x->o->progress_ud, x->done, x->limit);
    return total;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct xfer *x = ud;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return cancelled(x->o) ? 1 : 0;
}

/* Perform one request.  Returns 0 when an HTTP answer arrived (x->status),
 * -1 otherwise with err set; x->fatal tells whether retrying is pointless. */
static int http_once(struct xfer *x, const struct endpoint *ep, const char *url, const char *accept,
                     const char *auth, const char *userpwd, const char *postfields, hp_err *err)
{
    struct curl_slist *hdrs = NULL, *tmp;
    char line[8192];
    CURL *c = x->curl;
    CURLcode rc;
    int ret = 0;

    curl_easy_reset(c);
    xfer_reset_response(x);
    x->fatal = false;
    hp_err_clear(&x->err_cb);
    if (accept) {
        snprintf(line, sizeof line, "Accept: %s", accept);
        if ((tmp = curl_slist_append(hdrs, line)) == NULL)
            goto oom;
        hdrs = tmp;
    }
    if (auth) {
        snprintf(line, sizeof line, "Authorization: %s", auth);
        if ((tmp = curl_slist_append(hdrs, line)) == NULL)
            goto oom;
        hdrs = tmp;
    }
    if (x->mode == BODY_SINK && x->done > 0) {
        snprintf(line, sizeof line, "Range: bytes=%" PRIu64 "-", x->done);
        if ((tmp = curl_slist_append(hdrs, line)) == NULL)
            goto oom;
        hdrs = tmp;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_USERAGENT, x->r->user_agent);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, x->r->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, x->r->low_speed_limit);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, x->r->low_speed_time);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    if (x->mode == BODY_SINK) /* fewer, larger writes into the sink (default 16 KiB) */
        curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    if (ep->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (ep->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, ep->ca_file);
    if (userpwd) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, userpwd);
    }
    if (postfields)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, postfields);

    rc = curl_easy_perform(c);
    curl_slist_free_all(hdrs);
    if (rc == CURLE_OK) {
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        x->status = code;
        return 0;
    }
    if (x->fatal) {
        *err = x->err_cb;
        return -1;
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK || cancelled(x->o)) {
        x->fatal = true;
        return hp_err_set(err, HP_CANCELLED, "pull from %s cancelled", ep->name);
    }
    ret = hp_err_set(err, HP_UNAVAILABLE, "cannot reach registry %s (%s): %s", ep->name, url,
                     curl_easy_strerror(rc));
    return ret;
oom:
    curl_slist_free_all(hdrs);
    x->fatal = true;
    return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
}

/* http_once with up to MAX_TRIES attempts on transport errors and 5xx.
 * Returns 0 with an HTTP status (possibly still 5xx after the last try) or -1. */
static int http_retry(struct xfer *x, const struct endpoint *ep, const char *url,
                      const char *accept, const char *auth, const char *userpwd,
                      const char *postfields, hp_err *err)
{
    long delay = x->r->retry_delay_ms;
    for (int attempt = 1;; attempt++) {
        if (cancelled(x->o)) {
            x->fatal = true;
            return hp_err_set(err, HP_CANCELLED, "pull from %s cancelled", ep->name);
        }
        int rc = http_once(x, ep, url, accept, auth, userpwd, postfields, err);
        if (rc < 0 && x->fatal)
            return -1;
        if (rc == 0 && x->status < 500)
            return 0;
        if (attempt >= MAX_TRIES)
            return rc;
        if (rc == 0)
            hp_debug("registry %s answered %ld for %s; retrying in %ld ms", ep->name, x->status,
                     url, delay);
        else
            hp_debug("%s; retrying in %ld ms", err->msg, delay);
        if (sleep_cancellable(delay, x->o) < 0) {
            x->fatal = true;
            return hp_err_set(err, HP_CANCELLED, "pull from %s cancelled", ep->name);
        }
        delay *= 2;
    }
}

/* "CODE: message" of the first error in a registry JSON error body, into buf. */
static void registry_error_text(const struct xfer *x, char *buf, size_t n)
{
    json_error_t jerr;
    buf[0] = '\0';
    if (x->errlen == 0)
        return;
    json_auto_t *root = json_loadb(x->errbody, x->errlen, 0, &jerr);
    json_t *e = root ? json_array_get(json_object_get(root, "errors"), 0) : NULL;
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (code || msg)
        snprintf(buf, n, " (%s%s%.200s)", code ? code : "", code && msg ? ": " : "",
                 msg ? msg : "");
}

/* ---- authentication ---- */

/* Parse `Bearer realm="...",service="...",scope="..."`.  Out strings owned by
 * the caller (free). */
struct challenge {
    char scheme[16];
    char *realm, *service, *scope;
};

static void challenge_free(struct challenge *c)
{
    free(c->realm);
    free(c->service);
    free(c->scope);
}

static int parse_challenge(const char *s, struct challenge *c)
{
    size_t i = 0;
    memset(c, 0, sizeof *c);
    while (*s && *s != ' ' && i + 1 < sizeof c->scheme)
        c->scheme[i++] = *s++;
    c->scheme[i] = '\0';
    while (*s) {
        char key[32], val[2048];
        size_t k = 0, v = 0;
        while (*s == ' ' || *s == ',' || *s == '\t')
            s++;
        while (*s && *s != '=' && *s != ',' && k + 1 < sizeof key)
            key[k++] = *s++;
        key[k] = '\0';
        if (*s != '=')
            break;
        s++;
        if (*s == '"') {
            s++;
            while (*s && *s != '"' && v + 1 < sizeof val) {
                if (*s == '\\' && s[1])
                    s++;
                val[v++] = *s++;
            }
            if (*s == '"')
                s++;
        } else {
            while (*s && *s != ',' && v + 1 < sizeof val)
                val[v++] = *s++;
        }
        val[v] = '\0';
        char **dst = strcasecmp(key, "realm") == 0     ? &c->realm
                     : strcasecmp(key, "service") == 0 ? &c->service
                     : strcasecmp(key, "scope") == 0   ? &c->scope
                                                       : NULL;
        if (dst) {
            free(*dst);
            *dst = strdup(val);
            if (*dst == NULL)
                return -1;
        }
    }
    return 0;
}

static bool have_basic(const struct hp_registry_creds *c)
{
    return c && c->username && *c->username;
}

/* "user:password" (malloc'd, caller frees). */
static char *userpwd_of(const struct hp_registry_creds *c)
{
    char *s = NULL;
    if (asprintf(&s, "%s:%s", c->username, c->password ? c->password : "") < 0)
        return NULL;
    return s;
}

/* Auth failure message naming registry, status and repository. */
static int auth_error(const struct endpoint *ep, long status, const char *repo,
                      const struct hp_registry_creds *creds, const char *via, hp_err *err)
{
    bool given = creds && (have_basic(creds) || creds->identity_token || creds->registry_token);
    return hp_err_set(err, status == 403 ? HP_PERMISSION_DENIED : HP_UNAUTHENTICATED,
                      "registry %s%s answered %ld %s for %s: %s", ep->name, via, status,
                      reason_phrase(status), repo,
                      given ? "check the credentials"
                            : "the registry requires credentials and none were given");
}

/* Get a bearer token from the challenge's realm.  *auth_out: malloc'd
 * "Bearer <token>" (caller frees). */
static int fetch_token(struct xfer *parent, const struct endpoint *ep, const struct challenge *ch,
                       const char *scope, const char *repo, char **auth_out, hp_err *err)
{
    const struct hp_registry_creds *creds = parent->o ? parent->o->creds : NULL;
    struct xfer x = {.r = parent->r,
                     .o = parent->o,
                     .mode = BODY_MEM,
                     .max = TOKEN_RESP_MAX,
                     .what = "token response",
                     .epname = ep->name};
    _cleanup_free_ char *url = NULL, *post = NULL, *esc_service = NULL, *esc_scope = NULL,
                        *esc_tok = NULL, *userpwd = NULL;
    int ret = -1;
    *auth_out = NULL;
    if (ch->realm == NULL ||
        (strncmp(ch->realm, "https://", 8) != 0 && strncmp(ch->realm, "http://", 7) != 0))
        return hp_err_set(err, HP_UNAVAILABLE,
                          "registry %s sent a Bearer challenge without a usable realm", ep->name);
    x.curl = curl_easy_init();
    if (x.curl == NULL)
        return hp_err_set(err, HP_INTERNAL, "curl_easy_init failed");
    esc_service = curl_easy_escape(x.curl, ch->service ? ch->service : "", 0);
    esc_scope = curl_easy_escape(x.curl, scope, 0);
    if (esc_service == NULL || esc_scope == NULL)
        goto oom;
    if (creds && creds->identity_token) {
        /* OAuth2 refresh-token grant (distribution token spec, POST form). */
        esc_tok = curl_easy_escape(x.curl, creds->identity_token, 0);
        if (esc_tok == NULL)
            goto oom;
        if (asprintf(&post,
                     "grant_type=refresh_token&service=%s&scope=%s&client_id=hpcri&"
                     "refresh_token=%s",
                     esc_service, esc_scope, esc_tok) < 0) {
            post = NULL;
            goto oom;
        }
        url = strdup(ch->realm);
        if (url == NULL)
            goto oom;
    } else {
        if (asprintf(&url, "%s%cservice=%s&scope=%s", ch->realm, strchr(ch->realm, '?') ? '&' : '?',
                     esc_service, esc_scope) < 0) {
            url = NULL;
            goto oom;
        }
        if (have_basic(creds) && (userpwd = userpwd_of(creds)) == NULL)
            goto oom;
    }
    if (http_retry(&x, ep, url, "application/json", NULL, userpwd, post, err) < 0)
        goto out;
    if (x.status == 401 || x.status == 403) {
        auth_error(ep, x.status, repo, creds, " (token server)", err);
        goto out;
    }
    if (x.status != 200) {
        hp_err_set(err, HP_UNAVAILABLE, "token server %s for registry %s answered %ld %s",
                   ch->realm, ep->name, x.status, reason_phrase(x.status));
        goto out;
    }
    {
        json_error_t jerr;
        json_auto_t *root = json_loadb(x.buf ? x.buf : "", x.len, 0, &jerr);
        const char *tok = json_string_value(json_object_get(root, "token"));
        if (tok == NULL || *tok == '\0')
            tok = json_string_value(json_object_get(root, "access_token"));
        if (tok == NULL || *tok == '\0' || strpbrk(tok, "\r\n")) {
            hp_err_set(err, HP_UNAVAILABLE,
                       "token server %s for registry %s answered without a token", ch->realm,
                       ep->name);
            goto out;
        }
        json_t *exp = json_object_get(root, "expires_in");
        long ttl = json_is_integer(exp) ? (long)json_integer_value(exp) : 60;
        if (ttl < 60)
            ttl = 60; /* spec: minimum lifetime */
        if (ttl > 86400)
            ttl = 86400;
        if (asprintf(auth_out, "Bearer %s", tok) < 0) {
            *auth_out = NULL;
            goto oom;
        }
        char key[1024];
        token_key(ep, scope, creds, key, sizeof key);
        token_put(parent->r, key, *auth_out, ttl);
    }
    ret = 0;
    goto out;
oom:
    hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
out:
    curl_free(esc_service);
    curl_free(esc_scope);
    curl_free(esc_tok);
    esc_service = esc_scope = esc_tok = NULL;
    xfer_free(&x);
    return ret;
}

/* "Basic base64(user:pass)", malloc'd. */
static char *basic_header(const struct hp_registry_creds *c)
{
    _cleanup_free_ char *up = userpwd_of(c);
    if (up == NULL)
        return NULL;
    size_t n = strlen(up);
    char *out = malloc(6 + 4 * ((n + 2) / 3) + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)up, (int)n);
    return out;
}

/* A registry GET with authentication: tries the cached/given credentials,
 * answers one 401 challenge, then returns the final HTTP status in
 * x->status (0) or -1 with err. */
static int registry_get(struct xfer *x, const struct endpoint *ep, const char *url,
                        const char *accept, const char *repo, hp_err *err)
{
    const struct hp_registry_creds *creds = x->o ? x->o->creds : NULL;
    char scope[600], key[1024];
    _cleanup_free_ char *auth = NULL;
    bool answered = false;
    snprintf(scope, sizeof scope, "repository:%s:pull", repo);
    token_key(ep, scope, creds, key, sizeof key);
    if (creds && creds->registry_token) {
        if (asprintf(&auth, "Bearer %s", creds->registry_token) < 0)
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        auth = token_get(x->r, key);
    }
    for (;;) {
        if (http_retry(x, ep, url, accept, auth, NULL, NULL, err) < 0)
            return -1;
        if (x->status != 401 || answered || x->www_auth == NULL)
            break;
        answered = true;
        struct challenge ch;
        if (parse_challenge(x->www_auth, &ch) < 0) {
            challenge_free(&ch);
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        }
        free(auth);
        auth = NULL;
        if (strcasecmp(ch.scheme, "Bearer") == 0 && !(creds && creds->registry_token)) {
            int rc = fetch_token(x, ep, &ch, scope, repo, &auth, err);
            challenge_free(&ch);
            if (rc < 0)
                return -1;
        } else if (strcasecmp(ch.scheme, "Basic") == 0 && have_basic(creds)) {
            challenge_free(&ch);
            auth = basic_header(creds);
            if (auth == NULL)
                return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
            token_put(x->r, key, auth, 3600);
        } else {
            challenge_free(&ch);
            break;
        }
    }
    if (x->status == 401 || x->status == 403)
        return auth_error(ep, x->status, repo, creds, "", err);
    return 0;
}

/* Map a non-2xx answer to an error. */
static int status_error(const struct xfer *x, const struct endpoint *ep, const char *what,
                        hp_err *err)
{
    char detail[300];
    registry_error_text(x, detail, sizeof detail);
    if (x->status == 404)
        return hp_err_set(err, HP_NOT_FOUND, "%s not found on registry %s%s", what, ep->name,
                          detail);
    if (x->status == 429)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED,
                          "registry %s answered 429 Too Many Requests for %s%s", ep->name, what,
                          detail);
    if (x->status >= 500)
        return hp_err_set(err, HP_UNAVAILABLE, "registry %s answered %ld %s for %s%s", ep->name,
                          x->status, reason_phrase(x->status), what, detail);
    return hp_err_set(err, x->status == 400 ? HP_INVALID_ARGUMENT : HP_UNKNOWN,
                      "registry %s answered %ld %s for %s%s", ep->name, x->status,
                      reason_phrase(x->status), what, detail);
}

/* Errors after which the next endpoint is not tried: cancellation, corrupt
 * data, and failures inside the transfer (sink errors, oversize documents). */
static bool final_error(const struct xfer *x, const hp_err *e)
{
    return x->fatal || cancelled(x->o) || e->code == HP_CANCELLED || e->code == HP_DATA_LOSS ||
           e->code == HP_INTERNAL;
}

/* ---- manifests ---- */

void hp_fetched_manifest_free(struct hp_fetched_manifest *m)
{
    if (m == NULL)
        return;
    free(m->data);
    free(m->media_type);
    free(m->digest);
    memset(m, 0, sizeof *m);
}

static int manifest_from(struct xfer *x, const struct endpoint *ep, const char *what,
                         const char *ref, struct hp_fetched_manifest *out, hp_err *err)
{
    char dg[80];
    if (x->status != 200)
        return status_error(x, ep, what, err);
    if (sha256_hex(x->buf ? x->buf : "", x->len, dg, err) < 0)
        return -1;
    if (strncmp(ref, "sha256:", 7) == 0 && strcmp(ref, dg) != 0)
        return hp_err_set(err, HP_DATA_LOSS, "%s from %s: digest mismatch (got %s)", what, ep->name,
                          dg);
    if (x->docker_digest && strncmp(x->docker_digest, "sha256:", 7) == 0 &&
        strcmp(x->docker_digest, dg) != 0)
        return hp_err_set(err, HP_DATA_LOSS,
                          "%s from %s: Docker-Content-Digest %.80s does not match the content "
                          "(%s)",
                          what, ep->name, x->docker_digest, dg);
    /* Reject schema1 and unknown types right here. */
    char ct[256] = "";
    if (x->content_type) {
        snprintf(ct, sizeof ct, "%s", x->content_type);
        ct[strcspn(ct, "; ")] = '\0';
    }
    if (hp_manifest_kind(x->buf, x->len, ct, err) < 0)
        return hp_err_wrap(err, "%s from %s", what, ep->name);
    memset(out, 0, sizeof *out);
    out->media_type = strdup(ct);
    out->digest = strdup(dg);
    if (out->media_type == NULL || out->digest == NULL) {
        hp_fetched_manifest_free(out);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    out->data = x->buf ? x->buf : strdup("");
    out->len = x->len;
    x->buf = NULL;
    x->len = x->cap = 0;
    if (out->data == NULL) {
        hp_fetched_manifest_free(out);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    return 0;
}

int hp_registry_get_manifest(struct hp_registry *r, const char *host, const char *repo,
                             const char *ref, const struct hp_pull_opts *opts,
                             struct hp_fetched_manifest *out, hp_err *err)
{
    _cleanup_free_ struct endpoint *eps = NULL;
    size_t n = 0;
    char what[600];
    memset(out, 0, sizeof *out);
    if (check_path_part(repo, "repository", true, err) < 0 ||
        check_path_part(ref, "reference", false, err) < 0)
        return -1;
    if (strncmp(ref, "sha256:", 7) == 0 && !hp_digest_valid(ref))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid digest \"%.80s\"", ref);
    snprintf(what, sizeof what, "manifest %s%s%s", repo, strchr(ref, ':') ? "@" : ":", ref);
    if (endpoints_for(r, host, &eps, &n, err) < 0)
        return -1;
    struct xfer x = {
        .r = r, .o = opts, .mode = BODY_MEM, .max = HP_MANIFEST_MAX_SIZE, .what = what};
    x.curl = curl_easy_init();
    if (x.curl == NULL)
        return hp_err_set(err, HP_INTERNAL, "curl_easy_init failed");
    int ret = -1;
    for (size_t i = 0; i < n; i++) {
        char url[1400];
        x.epname = eps[i].name;
        snprintf(url, sizeof url, "%s/v2/%s/manifests/%s", eps[i].base, repo, ref);
        if (registry_get(&x, &eps[i], url, HP_MANIFEST_ACCEPT, repo, err) == 0 &&
            manifest_from(&x, &eps[i], what, ref, out, err) == 0) {
            ret = 0;
            break;
        }
        if (final_error(&x, err) || i + 1 == n)
            break;
        hp_warn("%s; trying the next endpoint", err->msg);
    }
    xfer_free(&x);
    return ret;
}

/* ---- blobs ---- */

int hp_registry_get_blob(struct hp_registry *r, const char *host, const char *repo,
                         const char *digest, int64_t size, const struct hp_pull_opts *opts,
                         hp_sink_write_fn write, void *ud, hp_err *err)
{
    _cleanup_free_ struct endpoint *eps = NULL;
    size_t n = 0;
    char what[128];
    if (check_path_part(repo, "repository", true, err) < 0)
        return -1;
    if (!hp_digest_valid(digest))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid blob digest \"%.80s\"",
                          digest ? digest : "");
    if (size < 0)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "blob %s: negative size %" PRId64, digest,
                          size);
    if (write == NULL)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "blob %s: no sink", digest);
    snprintf(what, sizeof what, "blob %s", digest);
    if (endpoints_for(r, host, &eps, &n, err) < 0)
        return -1;
    struct xfer x = {.r = r,
                     .o = opts,
                     .mode = BODY_SINK,
                     .write = write,
                     .ud = ud,
                     .limit = (uint64_t)size,
                     .what = what};
    x.curl = curl_easy_init();
    if (!(opts && opts->sink_verifies))
        x.md = EVP_MD_CTX_new();
    if (x.curl == NULL || (!(opts && opts->sink_verifies) &&
                           (x.md == NULL || !EVP_DigestInit_ex(x.md, EVP_sha256(), NULL)))) {
        xfer_free(&x);
        return hp_err_set(err, HP_INTERNAL, "cannot set up the download of %s", what);
    }
    int ret = -1;
    for (size_t i = 0; i < n; i++) {
        char url[1400];
        x.epname = eps[i].name;
        snprintf(url, sizeof url, "%s/v2/%s/blobs/%s", eps[i].base, repo, digest);
        if (registry_get(&x, &eps[i], url, NULL, repo, err) == 0) {
            if (x.status == 200 || x.status == 206) {
                ret = 0;
                break;
            }
            status_error(&x, &eps[i], what, err);
        }
        if (final_error(&x, err) || i + 1 == n)
            break;
        hp_warn("%s; trying the next endpoint", err->msg);
    }
    if (ret == 0) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        char got[80];
        const char *from = x.epname ? x.epname : host;
        if (x.done != x.limit) {
            ret = hp_err_set(err, HP_DATA_LOSS,
                             "%s from %s: got %" PRIu64 " bytes, expected %" PRIu64, what, from,
                             x.done, x.limit);
        } else if (x.md == NULL) {
            /* the sink verifies the digest */
        } else if (!EVP_DigestFinal_ex(x.md, md, &len)) {
            ret = hp_err_set(err, HP_INTERNAL, "%s: sha256 failed", what);
        } else {
            hex_digest(md, len, got);
            if (strcmp(got, digest) != 0)
                ret = hp_err_set(err, HP_DATA_LOSS, "%s from %s: digest mismatch (got %s)", what,
                                 from, got);
        }
    }
    xfer_free(&x);
    return ret;
}

struct membuf {
    char *buf;
    size_t len, max;
};

static int mem_write(void *ud, const void *data, size_t n, hp_err *err)
{
    struct membuf *m = ud;
    if (n > m->max - m->len)
        return hp_err_set(err, HP_DATA_LOSS, "blob larger than expected");
    memcpy(m->buf + m->len, data, n);
    m->len += n;
    return 0;
}

int hp_registry_get_blob_mem(struct hp_registry *r, const char *host, const char *repo,
                             const char *digest, int64_t size, const struct hp_pull_opts *opts,
                             char **data, size_t *len, hp_err *err)
{
    *data = NULL;
    *len = 0;
    if (size < 0 || size > HP_MANIFEST_MAX_SIZE)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "blob %.80s: size %" PRId64 " is out of range for an in-memory blob",
                          digest ? digest : "", size);
    struct membuf m = {.buf = malloc((size_t)size + 1), .max = (size_t)size};
    if (m.buf == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    if (hp_registry_get_blob(r, host, repo, digest, size, opts, mem_write, &m, err) < 0) {
        free(m.buf);
        return -1;
    }
    m.buf[m.len] = '\0';
    *data = m.buf;
    *len = m.len;
    return 0;
}

/* ---- resolve ---- */

void hp_resolved_image_free(struct hp_resolved_image *img)
{
    if (img == NULL)
        return;
    free(img->manifest_digest);
    free(img->index_digest);
    hp_manifest_free(&img->manifest);
    hp_image_config_free(&img->config);
    free(img->config_data);
    memset(img, 0, sizeof *img);
}

int hp_registry_resolve(struct hp_registry *r, const char *host, const char *repo, const char *ref,
                        const struct hp_platform *platform, const struct hp_pull_opts *opts,
                        struct hp_resolved_image *out, hp_err *err)
{
    struct hp_fetched_manifest fm = {0};
    struct hp_resolved_image img = {0};
    memset(out, 0, sizeof *out);
    if (hp_registry_get_manifest(r, host, repo, ref, opts, &fm, err) < 0)
        return -1;
    int kind = hp_manifest_kind(fm.data, fm.len, fm.media_type, err);
    if (kind == HP_MANIFEST_KIND_INDEX) {
        struct hp_index idx;
        if (hp_index_parse(fm.data, fm.len, fm.media_type, &idx, err) < 0)
            goto fail;
        const struct hp_index_entry *e = hp_index_select(&idx, platform, err);
        char sel[80];
        if (e == NULL) {
            hp_index_free(&idx);
            hp_err_wrap(err, "%s/%s:%s", host, repo, ref);
            goto fail;
        }
        snprintf(sel, sizeof sel, "%s", e->desc.digest);
        hp_index_free(&idx);
        img.index_digest = fm.digest;
        fm.digest = NULL;
        hp_fetched_manifest_free(&fm);
        if (hp_registry_get_manifest(r, host, repo, sel, opts, &fm, err) < 0)
            goto fail;
        kind = hp_manifest_kind(fm.data, fm.len, fm.media_type, err);
        if (kind == HP_MANIFEST_KIND_INDEX) {
            hp_err_set(err, HP_INVALID_ARGUMENT, "%s@%s: nested image indexes are not supported",
                       repo, sel);
            goto fail;
        }
    }
    if (kind < 0 || hp_manifest_parse(fm.data, fm.len, fm.media_type, &img.manifest, err) < 0)
        goto fail;
    img.manifest_digest = fm.digest;
    fm.digest = NULL;
    if (hp_registry_get_blob_mem(r, host, repo, img.manifest.config.digest,
                                 img.manifest.config.size, opts, &img.config_data, &img.config_len,
                                 err) < 0 ||
        hp_image_config_parse(img.config_data, img.config_len, &img.config, err) < 0 ||
        hp_image_config_check(&img.manifest, &img.config, err) < 0)
        goto fail;
    hp_fetched_manifest_free(&fm);
    *out = img;
    return 0;
fail:
    hp_fetched_manifest_free(&fm);
    hp_resolved_image_free(&img);
    return -1;
}
