/* The streaming server: HTTP/1.1 listener, single-use tokens, SPDY upgrade
 * and protocol negotiation (see stream.h). */
#include "stream/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/log.h"

#define TOKEN_TTL_NS       (60LL * 1000000000LL) /* as the kubelet's stream cache */
#define MAX_OFFERS         256
#define MAX_SESSIONS       64
#define MAX_REQUEST        16384
#define REQUEST_TIMEOUT_MS 10000

struct offer {
    char token[24];
    int64_t expires;
    hp_stream_req *req;
};

struct session {
    hp_stream_server *srv;
    int fd;
    hp_stream_req *req; /* owned */
};

struct hp_stream_server {
    int listen_fd;
    int stop_fd; /* eventfd: readable once shutting down */
    int port;
    char host[64]; /* as it appears in URLs */
    pthread_t listener;
    bool listener_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct offer offers[MAX_OFFERS];
    unsigned sessions; /* live session threads */
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void hp_stream_req_free(hp_stream_req *r)
{
    if (r == NULL)
        return;
    if (r->argv)
        for (char **a = r->argv; *a; a++)
            free(*a);
    free(r->argv);
    free(r->target);
    free(r->attach_socket);
    free(r->control_fifo);
    free(r->exit_file);
    free(r->netns);
    free(r);
}

static const char *kind_path(hp_stream_kind k)
{
    return k == HP_STREAM_EXEC ? "exec" : k == HP_STREAM_ATTACH ? "attach" : "portforward";
}

/* ----------------------------------------------------------------- offers */

char *hp_stream_server_offer(hp_stream_server *srv, hp_stream_req *req, hp_err *err)
{
    uint8_t rnd[12];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        hp_stream_req_free(req);
        hp_err_sys(err, HP_INTERNAL, "getrandom");
        return NULL;
    }
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char token[24];
    for (int i = 0; i < 16; i++) { /* 96 random bits, URL-safe */
        int bit = i * 6;
        unsigned v = (unsigned)(rnd[bit / 8] << 8 | (bit / 8 + 1 < 12 ? rnd[bit / 8 + 1] : 0));
        token[i] = b64[(v >> (10 - bit % 8)) & 63];
    }
    token[16] = '\0';
    int64_t now = mono_ns();
    pthread_mutex_lock(&srv->mu);
    struct offer *slot = NULL;
    for (int i = 0; i < MAX_OFFERS; i++) {
        struct offer *o = &srv->offers[i];
        if (o->req && o->expires <= now) { /* expired: drop it */
            hp_stream_req_free(o->req);
            o->req = NULL;
        }
        if (!o->req && !slot)
            slot = o;
    }
    if (slot) {
        memcpy(slot->token, token, sizeof token);
        slot->expires = now + TOKEN_TTL_NS;
        slot->req = req;
    }
    pthread_mutex_unlock(&srv->mu);
    if (!slot) {
        hp_stream_req_free(req);
        hp_err_set(err, HP_RESOURCE_EXHAUSTED,
                   "%d streaming sessions are already waiting for their client", MAX_OFFERS);
        return NULL;
    }
    char *url = NULL;
    if (asprintf(&url, "http://%s:%d/%s/%s", srv->host, srv->port, kind_path(req->kind), token) <
        0) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    return url;
}

/* Take the offer for token (single use).  NULL if unknown or expired. */
static hp_stream_req *take_offer(hp_stream_server *srv, const char *kind, const char *token)
{
    hp_stream_req *r = NULL;
    int64_t now = mono_ns();
    pthread_mutex_lock(&srv->mu);
    for (int i = 0; i < MAX_OFFERS; i++) {
        struct offer *o = &srv->offers[i];
        if (o->req && strcmp(o->token, token) == 0) {
            if (o->expires > now && strcmp(kind_path(o->req->kind), kind) == 0) {
                r = o->req;
                o->req = NULL;
            }
            break;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    return r;
}

/* ------------------------------------------------------------------- HTTP */

static void respond(int fd, int code, const char *reason, const char *body)
{
    char buf[2048];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     code, reason, strlen(body), body);
    if (n > 0 && write(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1) < 0) {
        /* the client is gone: nothing to tell it */
    }
}

/* Read the request head (up to CRLFCRLF) into buf.  Bytes read past it would
 * be SPDY frames, but a client waits for 101 before sending any. */
static int read_head(int fd, int stop_fd, char *buf, size_t cap)
{
    size_t len = 0;
    int64_t deadline = mono_ns() + REQUEST_TIMEOUT_MS * 1000000LL;
    while (len + 1 < cap) {
        int left = (int)((deadline - mono_ns()) / 1000000);
        if (left <= 0)
            return -1;
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};
        if (poll(p, 2, left) <= 0 || p[1].revents)
            return -1;
        ssize_t n = read(fd, buf + len, 1); /* byte-wise: never read past the head */
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        if (len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0)
            return 0;
    }
    return -1;
}

/* Does the comma-separated header list `v` contain token t (any case)? */
static bool list_has(const char *v, const char *t)
{
    size_t tl = strlen(t);
    while (*v) {
        while (*v == ' ' || *v == ',' || *v == '\t')
            v++;
        const char *e = v;
        while (*e && *e != ',')
            e++;
        const char *end = e;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - v) == tl && strncasecmp(v, t, tl) == 0)
            return true;
        v = e;
    }
    return false;
}

static const char *const remotecommand_protocols[] = {"v4.channel.k8s.io", "v3.channel.k8s.io",
                                                      "v2.channel.k8s.io", "channel.k8s.io", NULL};
static const char *const portforward_protocols[] = {"portforward.k8s.io", NULL};

static void serve(hp_stream_server *srv, int fd, char *head)
{
    char *save = NULL;
    char *line = strtok_r(head, "\r\n", &save);
    char method[16], path[512];
    if (!line || sscanf(line, "%15s %511s", method, path) != 2) {
        respond(fd, 400, "Bad Request", "malformed HTTP request line\n");
        return;
    }
    char upgrade[128] = "", connection[256] = "";
    char offered[1024] = ""; /* X-Stream-Protocol-Version values, comma-joined */
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (strcasecmp(line, "Upgrade") == 0)
            snprintf(upgrade, sizeof upgrade, "%s", v);
        else if (strcasecmp(line, "Connection") == 0)
            snprintf(connection, sizeof connection, "%s", v);
        else if (strcasecmp(line, "X-Stream-Protocol-Version") == 0) {
            size_t l = strlen(offered);
            snprintf(offered + l, sizeof offered - l, "%s%s", l ? "," : "", v);
        }
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
        respond(fd, 405, "Method Not Allowed", "use GET or POST\n");
        return;
    }
    char kind[16], token[64];
    if (sscanf(path, "/%15[a-z]/%63[A-Za-z0-9_-]", kind, token) != 2) {
        respond(fd, 404, "Not Found", "no such streaming endpoint\n");
        return;
    }
    hp_stream_req *req = take_offer(srv, kind, token);
    if (!req) {
        respond(fd, 404, "Not Found",
                "unknown or expired streaming token (each URL from Exec, Attach or PortForward "
                "works once, within 60 s)\n");
        return;
    }
    if (!list_has(connection, "upgrade") || strcasecmp(upgrade, "SPDY/3.1") != 0) {
        respond(fd, 400, "Bad Request",
                "this endpoint needs 'Connection: Upgrade' and 'Upgrade: SPDY/3.1'\n");
        hp_stream_req_free(req);
        return;
    }
    const char *const *ours =
        req->kind == HP_STREAM_PORTFORWARD ? portforward_protocols : remotecommand_protocols;
    const char *chosen = NULL;
    if (offered[0] == '\0') {
        chosen = req->kind == HP_STREAM_PORTFORWARD ? "portforward.k8s.io" : "channel.k8s.io";
    } else {
        /* the client's order of preference, as Kubernetes negotiates */
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", offered);
        char *s2 = NULL;
        for (char *t = strtok_r(tmp, ", \t", &s2); t && !chosen; t = strtok_r(NULL, ", \t", &s2))
            for (int i = 0; ours[i]; i++)
                if (strcmp(ours[i], t) == 0)
                    chosen = ours[i];
    }
    if (!chosen) {
        char body[1400];
        snprintf(body, sizeof body,
                 "unable to upgrade: unable to negotiate protocol: client supports [%s], server "
                 "supports [%s%s%s%s%s%s%s]\n",
                 offered, ours[0], ours[1] ? " " : "", ours[1] ? ours[1] : "",
                 ours[1] && ours[2] ? " " : "", ours[1] && ours[2] ? ours[2] : "",
                 ours[1] && ours[2] && ours[3] ? " " : "",
                 ours[1] && ours[2] && ours[3] ? ours[3] : "");
        respond(fd, 403, "Forbidden", body);
        hp_stream_req_free(req);
        return;
    }
    char ok[256];
    int n = snprintf(ok, sizeof ok,
                     "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: %s\r\n\r\n",
                     chosen);
    if (write(fd, ok, (size_t)n) != n) {
        hp_stream_req_free(req);
        return;
    }
    hp_debug("stream: %s session for %s (%s)", kind_path(req->kind), req->target, chosen);
    hp_stream_session_run(fd, srv->stop_fd, req, chosen);
    hp_debug("stream: %s session for %s ended", kind_path(req->kind), req->target);
    hp_stream_req_free(req);
}

static void *session_main(void *arg)
{
    struct session *s = arg;
    hp_stream_server *srv = s->srv;
    char *head = malloc(MAX_REQUEST);
    if (head && read_head(s->fd, srv->stop_fd, head, MAX_REQUEST) == 0)
        serve(srv, s->fd, head);
    free(head);
    close(s->fd);
    free(s);
    pthread_mutex_lock(&srv->mu);
    srv->sessions--;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

static void *listener_main(void *arg)
{
    hp_stream_server *srv = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = srv->listen_fd, .events = POLLIN},
                              {.fd = srv->stop_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&srv->mu);
        bool room = srv->sessions < MAX_SESSIONS;
        if (room)
            srv->sessions++;
        pthread_mutex_unlock(&srv->mu);
        if (!room) {
            respond(fd, 503, "Service Unavailable", "too many streaming sessions\n");
            close(fd);
            continue;
        }
        struct session *s = malloc(sizeof *s);
        pthread_attr_t attr;
        pthread_t t;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (s) {
            s->srv = srv;
            s->fd = fd;
            s->req = NULL;
        }
        if (!s || pthread_create(&t, &attr, session_main, s) != 0) {
            free(s);
            close(fd);
            pthread_mutex_lock(&srv->mu);
            srv->sessions--;
            pthread_cond_broadcast(&srv->cv);
            pthread_mutex_unlock(&srv->mu);
        }
        pthread_attr_destroy(&attr);
    }
    return NULL;
}

/* ------------------------------------------------------------- lifecycle */

hp_stream_server *hp_stream_server_new(const char *addr, int port, hp_err *err)
{
    hp_stream_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    srv->listen_fd = -1;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cv, NULL);
    srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        sl = sizeof *in4;
        snprintf(srv->host, sizeof srv->host, "%s", addr);
    } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        sl = sizeof *in6;
        snprintf(srv->host, sizeof srv->host, "[%s]", addr);
    } else {
        hp_err_set(err, HP_INVALID_ARGUMENT, "stream_address %s is not an IP address", addr);
        hp_stream_server_free(srv);
        return NULL;
    }
    int one = 1;
    srv->listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv->stop_fd < 0 || srv->listen_fd < 0 ||
        setsockopt(srv->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(srv->listen_fd, (struct sockaddr *)&ss, sl) < 0 || listen(srv->listen_fd, 64) < 0) {
        hp_err_sys(err, HP_UNAVAILABLE, "streaming server on %s port %d", addr, port);
        hp_stream_server_free(srv);
        return NULL;
    }
    getsockname(srv->listen_fd, (struct sockaddr *)&ss, &sl);
    srv->port = ntohs(ss.ss_family == AF_INET ? in4->sin_port : in6->sin6_port);
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGABRT);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals go to the daemon's signalfd */
    int e = pthread_create(&srv->listener, NULL, listener_main, srv);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        errno = e;
        hp_err_sys(err, HP_INTERNAL, "cannot start the streaming listener");
        hp_stream_server_free(srv);
        return NULL;
    }
    srv->listener_started = true;
    return srv;
}

int hp_stream_server_port(const hp_stream_server *srv)
{
    return srv->port;
}

void hp_stream_server_free(hp_stream_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->stop_fd >= 0) {
        uint64_t one = 1;
        if (write(srv->stop_fd, &one, sizeof one) < 0) {
            /* eventfd writes of 1 cannot fail short of overflow */
        }
    }
    if (srv->listener_started)
        pthread_join(srv->listener, NULL);
    pthread_mutex_lock(&srv->mu);
    while (srv->sessions > 0)
        pthread_cond_wait(&srv->cv, &srv->mu);
    pthread_mutex_unlock(&srv->mu);
    for (int i = 0; i < MAX_OFFERS; i++)
        hp_stream_req_free(srv->offers[i].req);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    if (srv->stop_fd >= 0)
        close(srv->stop_fd);
    pthread_mutex_destroy(&srv->mu);
    pthread_cond_destroy(&srv->cv);
    free(srv);
}
