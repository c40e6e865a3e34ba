/* Connection pool and unary calls of the remote backend (see conn.h). */
#include "backend/remote/conn.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/client.h"
#include "util/cleanup.h"
#include "util/log.h"

struct hp_remote_conn {
    char *uri;  /* owned, as configured */
    char *path; /* owned, socket path */
    pthread_mutex_t lock;
    hp_client *idle[HP_REMOTE_POOL_IDLE + 1]; /* owned, guarded by lock */
    size_t n_idle;
    _Atomic uint64_t connects, calls;
};

hp_remote_conn *hp_remote_conn_new(const char *uri, hp_err *err)
{
    const char *path = uri;
    if (uri == NULL || uri[0] == '\0') {
        hp_err_set(err, HP_INVALID_ARGUMENT, "remote endpoint is empty");
        return NULL;
    }
    if (strncmp(uri, "unix://", 7) == 0)
        path = uri + 7;
    if (path[0] != '/') {
        hp_err_set(err, HP_INVALID_ARGUMENT,
                   "remote endpoint \"%s\" is not a unix socket URI (unix:///absolute/path)", uri);
        return NULL;
    }
    hp_remote_conn *c = calloc(1, sizeof *c);
    if (c == NULL || (c->uri = strdup(uri)) == NULL || (c->path = strdup(path)) == NULL) {
        if (c)
            free(c->uri);
        free(c);
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void hp_remote_conn_free(hp_remote_conn *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_idle; i++)
        hp_client_free(c->idle[i]);
    pthread_mutex_destroy(&c->lock);
    free(c->uri);
    free(c->path);
    free(c);
}

const char *hp_remote_conn_uri(const hp_remote_conn *c)
{
    return c->uri;
}

uint64_t hp_remote_conn_connects(const hp_remote_conn *c)
{
    return atomic_load(&c->connects);
}

uint64_t hp_remote_conn_calls(const hp_remote_conn *c)
{
    return atomic_load(&c->calls);
}

/* An idle connection (*pooled = true) or a new one.  Returns a client owned
 * by the caller (give it back with put()), or NULL with err. */
static hp_client *get(hp_remote_conn *c, bool *pooled, hp_err *err)
{
    hp_client *cl = NULL;
    pthread_mutex_lock(&c->lock);
    while (c->n_idle > 0 && cl == NULL) {
        cl = c->idle[--c->n_idle];
        if (hp_client_dead(cl)) {
            hp_client_free(cl);
            cl = NULL;
        }
    }
    pthread_mutex_unlock(&c->lock);
    *pooled = cl != NULL;
    if (cl != NULL)
        return cl;
    cl = hp_client_connect(c->path, err);
    if (cl != NULL) {
        atomic_fetch_add(&c->connects, 1);
        hp_debug("remote runtime %s: new connection", c->uri);
    }
    return cl;
}

/* Give a connection back (kept when alive and the pool has room). */
static void put(hp_remote_conn *c, hp_client *cl)
{
    const size_t max = HP_REMOTE_POOL_IDLE;
    if (!hp_client_dead(cl)) {
        pthread_mutex_lock(&c->lock);
        if (c->n_idle < max) {
            c->idle[c->n_idle++] = cl;
            cl = NULL;
        }
        pthread_mutex_unlock(&c->lock);
    }
    hp_client_free(cl);
}

static const char *short_method(const char *method)
{
    const char *s = strrchr(method, '/');
    return s ? s + 1 : method;
}

int hp_remote_call(hp_remote_conn *c, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
                   ProtobufCMessage **resp, hp_err *err)
{
    size_t len = protobuf_c_message_get_packed_size(req);
    _cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
    *resp = NULL;
    if (buf == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    protobuf_c_message_pack(req, buf);
    atomic_fetch_add(&c->calls, 1);

    for (int attempt = 0;; attempt++) {
        bool pooled = false;
        hp_client *cl = get(c, &pooled, err);
        if (cl == NULL)
            return hp_err_wrap(err, "remote runtime %s: %s", c->uri, short_method(method));
        _cleanup_free_ uint8_t *out = NULL;
        _cleanup_free_ char *msg = NULL;
        size_t out_len = 0;
        int status = HP_UNKNOWN;
        int rc =
            hp_client_call(cl, method, buf, len, timeout_ms, &out, &out_len, &status, &msg, err);
        put(c, cl);
        if (rc < 0) {
            if (pooled && attempt == 0 && err->code == HP_UNAVAILABLE) {
                hp_debug("remote runtime %s: %s on a pooled connection (%s): retrying", c->uri,
                         short_method(method), err->msg);
                hp_err_clear(err);
                continue;
            }
            return hp_err_wrap(err, "remote runtime %s: %s", c->uri, short_method(method));
        }
        if (status != HP_OK)
            return hp_err_set(err, status, "remote runtime %s: %s: %s", c->uri,
                              short_method(method), msg ? msg : "");
        static const uint8_t empty[1];
        *resp = protobuf_c_message_unpack(resp_desc, NULL, out_len, out ? out : empty);
        if (*resp == NULL)
            return hp_err_set(err, HP_INTERNAL,
                              "remote runtime %s: %s: the response does not decode as %s", c->uri,
                              short_method(method), resp_desc->name);
        return 0;
    }
}
