/* Backend instances per RuntimeClass handler, created on first use. */
#include <stdlib.h>
#include <string.h>

#include "cri/cri_internal.h"
#include "util/cleanup.h"

struct hp_backend_slot {
    char *handler;  /* owned */
    hp_backend *be; /* owned */
    bool stale;     /* handler config changed: do not hand out any more */
};

static int watch_fd(void *loop_ud, int fd, void (*cb)(void *ud, int fd, uint32_t events),
                    void *cb_ud, hp_err *err)
{
    return hp_rpc_server_watch_fd(loop_ud, fd, cb, cb_ud, err);
}

hp_backend *hp_cri_backend(hp_daemon *d, const char *handler, hp_err *err)
{
    hp_backend *be = NULL;
    const hp_handler_config *h;
    const char *name = handler ? handler : "";

    pthread_mutex_lock(&d->be_lock);
    for (size_t i = 0; i < d->n_backends; i++) {
        if (!d->backends[i].stale && strcmp(d->backends[i].handler, name) == 0) {
            be = d->backends[i].be;
            goto out;
        }
    }
    pthread_rwlock_rdlock(&d->cfg_lock);
    h = hp_config_handler(d->cfg, name, err);
    if (h != NULL) {
        hp_backend_env env = {
            .root = d->root,
            .run_dir = d->cfg->run_dir,
            .pause_path = d->pause_path,
            .uid = getuid(),
            .host = {.ud = d, .on_container_exit = hp_cri_on_container_exit},
            .watch_fd = d->rpc ? watch_fd : NULL,
            .loop_ud = d->rpc,
        };
        be = hp_backend_new(h, &env, err);
    }
    pthread_rwlock_unlock(&d->cfg_lock);
    if (be != NULL) {
        struct hp_backend_slot *ns =
            realloc(d->backends, (d->n_backends + 1) * sizeof *d->backends);
        char *copy = strdup(name);
        if (ns == NULL || copy == NULL) {
            if (ns)
                d->backends = ns;
            free(copy);
            be->ops->destroy(be);
            be = NULL;
            hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        d->backends = ns;
        d->backends[d->n_backends++] = (struct hp_backend_slot){copy, be, false};
        hp_info("runtime handler \"%s\": %s backend ready", name, be->ops->type);
    }
out:
    pthread_mutex_unlock(&d->be_lock);
    return be;
}

void hp_cri_backends_retire(hp_daemon *d, const hp_config *old, const hp_config *next)
{
    pthread_mutex_lock(&d->be_lock);
    for (size_t i = 0; i < d->n_backends; i++) {
        struct hp_backend_slot *s = &d->backends[i];
        hp_err e1 = HP_ERR_INIT, e2 = HP_ERR_INIT;
        const hp_handler_config *a = hp_config_handler(old, s->handler, &e1);
        const hp_handler_config *b = hp_config_handler(next, s->handler, &e2);
        bool same = a && b && a->type == b->type && a->n_opts == b->n_opts;
        for (size_t j = 0; same && j < a->n_opts; j++)
            same = strcmp(a->opts[j].key, b->opts[j].key) == 0 &&
                   strcmp(a->opts[j].value, b->opts[j].value) == 0;
        if (!same && !s->stale) {
            s->stale = true;
            hp_info("runtime handler \"%s\" changed: new calls use a new backend instance",
                    s->handler);
        }
    }
    pthread_mutex_unlock(&d->be_lock);
}

void hp_cri_backends_free(hp_daemon *d)
{
    for (size_t i = 0; i < d->n_backends; i++) {
        d->backends[i].be->ops->destroy(d->backends[i].be);
        free(d->backends[i].handler);
    }
    free(d->backends);
    d->backends = NULL;
    d->n_backends = 0;
}
