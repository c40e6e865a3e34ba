/* Container calls: ListContainers, ContainerStatus. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.pb-c.h"
#include "cri/convert.h"
#include "cri/cri_internal.h"
#include "cri/pb.h"
#include "stream/stream.h"
#include "util/cleanup.h"

static void refresh(hp_daemon *d, hp_ctr_rec *c);

int hp_cri_list_containers(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__ListContainersRequest *in =
        hp_pb_decode(&runtime__v1__list_containers_request__descriptor, req, err);
    Runtime__V1__ListContainersResponse out = RUNTIME__V1__LIST_CONTAINERS_RESPONSE__INIT;
    _cleanup_arena_ hp_arena a = {0};
    hp_strmap sel = {0};
    hp_ctr_filter f = {0};
    hp_ctr_rec *ctrs = NULL;
    size_t n = 0;
    int rc = -1;

    if (in == NULL)
        return -1;
    if (in->filter) {
        f.id_prefix = in->filter->id;
        f.pod_id_prefix = in->filter->pod_sandbox_id;
        if (in->filter->state) {
            f.has_state = true;
            f.state = in->filter->state->state;
        }
        if (hp_cri_map_in(&sel, (void *const *)in->filter->label_selector,
                          in->filter->n_label_selector, err) < 0)
            goto out;
        f.labels = &sel;
    }
    if (hp_store_ctr_list(d->store, &f, &ctrs, &n, err) < 0)
        goto out;
    out.containers = HP_ARENA_ARRAY(&a, Runtime__V1__Container *, n);
    if (out.containers == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        refresh(d, &ctrs[i]);
        if (f.has_state && ctrs[i].state != f.state)
            continue; /* exited since the query */
        if ((out.containers[out.n_containers++] = hp_cri_ctr_out(&a, &ctrs[i])) == NULL)
            goto oom;
    }
    rc = hp_pb_reply(resp, &out, err);
    goto out;
oom:
    hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory listing containers");
out:
    hp_ctr_recs_free(ctrs, n);
    hp_strmap_clear(&sel);
    return rc;
}

int hp_cri_container_status(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__ContainerStatusRequest *in =
        hp_pb_decode(&runtime__v1__container_status_request__descriptor, req, err);
    Runtime__V1__ContainerStatusResponse out = RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INIT;
    Runtime__V1__ContainerStatus st = RUNTIME__V1__CONTAINER_STATUS__INIT;
    _cleanup_arena_ hp_arena a = {0};
    Runtime__V1__Container *co;
    hp_ctr_rec *c;
    int rc = -1;

    if (in == NULL)
        return -1;
    if (in->container_id == NULL || in->container_id[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "ContainerStatus: container_id is empty");
    c = hp_store_ctr_lookup(d->store, in->container_id, err);
    if (c == NULL)
        return hp_err_wrap(err, "container \"%s\"", in->container_id);
    refresh(d, c);
    co = hp_cri_ctr_out(&a, c);
    if (co == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    st.id = co->id;
    st.metadata = co->metadata;
    st.state = co->state;
    st.created_at = c->created_at;
    st.started_at = c->started_at;
    st.finished_at = c->finished_at;
    st.exit_code = c->exit_code;
    st.image = co->image;
    st.image_ref = c->image_ref;
    st.image_id = c->image_ref;
    st.reason = c->reason;
    st.message = c->message;
    st.n_labels = co->n_labels;
    st.labels = (Runtime__V1__ContainerStatus__LabelsEntry **)co->labels;
    st.n_annotations = co->n_annotations;
    st.annotations = (Runtime__V1__ContainerStatus__AnnotationsEntry **)co->annotations;
    st.log_path = c->log_path;
    out.status = &st;
    rc = hp_pb_reply(resp, &out, err);
out:
    hp_ctr_rec_free(c);
    return rc;
}

/* --- lifecycle ----------------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

Runtime__V1__ContainerConfig *hp_cri_ctr_config(const hp_ctr_rec *c, hp_err *err)
{
    static const uint8_t empty[1];
    Runtime__V1__ContainerConfig *cfg = runtime__v1__container_config__unpack(
        NULL, c->config_len, c->config_len ? c->config : empty);
    if (cfg == NULL)
        hp_err_set(err, HP_DATA_LOSS, "container %s: stored config does not decode", c->id);
    return cfg;
}

/* Everything a backend op needs about a stored container; release with
 * be_ctr_release. */
struct be_ctr {
    hp_be_container bc;
    Runtime__V1__ContainerConfig *cfg;
    Runtime__V1__PodSandboxConfig *pod_cfg;
    hp_pod_rec *pod;
    hp_backend *be;
};

static void be_ctr_release(struct be_ctr *x)
{
    if (x->cfg)
        runtime__v1__container_config__free_unpacked(x->cfg, NULL);
    if (x->pod_cfg)
        runtime__v1__pod_sandbox_config__free_unpacked(x->pod_cfg, NULL);
    hp_pod_rec_free(x->pod);
    free(x->bc.backend_state);
    memset(x, 0, sizeof *x);
}

static int be_ctr_load(hp_daemon *d, const hp_ctr_rec *c, struct be_ctr *x, hp_err *err)
{
    memset(x, 0, sizeof *x);
    x->pod = hp_store_pod_get(d->store, c->pod_id, err);
    if (x->pod == NULL)
        return -1;
    x->be = hp_cri_backend(d, x->pod->runtime_handler, err);
    if (x->be == NULL)
        goto fail;
    x->cfg = hp_cri_ctr_config(c, err);
    if (x->cfg == NULL)
        goto fail;
    x->pod_cfg = hp_cri_pod_config(x->pod, err);
    if (x->pod_cfg == NULL)
        goto fail;
    x->bc.id = c->id;
    x->bc.pod_id = c->pod_id;
    x->bc.config = x->cfg;
    x->bc.pod_config = x->pod_cfg;
    x->bc.image_id = c->image_ref;
    x->bc.log_path = c->log_path && c->log_path[0] ? c->log_path : NULL;
    if (c->backend_state) {
        x->bc.backend_state = strdup(c->backend_state);
        if (x->bc.backend_state == NULL) {
            hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
            goto fail;
        }
    }
    return 0;
fail:
    be_ctr_release(x);
    return -1;
}

static int save_status(hp_daemon *d, const hp_ctr_rec *c, const hp_be_status *st, hp_err *err)
{
    hp_ctr_status s = {
        .state = st->state,
        .started_at = st->started_at ? st->started_at : c->started_at,
        .finished_at = st->finished_at,
        .exit_code = st->exit_code,
        .reason = st->reason,
        .message = st->message,
    };
    return hp_store_ctr_set_status(d->store, c->id, &s, err);
}

/* Record an exit exactly once: the exit watcher (loop thread), a status
 * refresh and StopContainer (workers) may all see the same exit.  Under
 * exit_lock, the store decides: only a container still RUNNING/UNKNOWN there
 * takes the exit and emits STOPPED.  Returns 1 when this call recorded it,
 * 0 when it was already recorded, -1 on error. */
static int record_exit(hp_daemon *d, const hp_ctr_rec *c, const hp_be_status *st, hp_err *err)
{
    hp_ctr_rec *now;
    int rc = 0;

    pthread_mutex_lock(&d->exit_lock);
    now = hp_store_ctr_get(d->store, c->id, err);
    if (now == NULL) {
        rc = -1;
    } else if (now->state == HP_CTR_RUNNING || now->state == HP_CTR_UNKNOWN) {
        if (save_status(d, now, st, err) < 0) {
            rc = -1;
        } else {
            hp_cri_emit(d, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT, now->id,
                        now->pod_id);
            rc = 1;
        }
    }
    pthread_mutex_unlock(&d->exit_lock);
    hp_ctr_rec_free(now);
    return rc;
}

/* Ask the backend for a running container's state; persist and announce an
 * exit.  `c` is updated in place. */
static void refresh(hp_daemon *d, hp_ctr_rec *c)
{
    struct be_ctr x;
    hp_be_status st = {0};
    hp_err err = HP_ERR_INIT;

    if (c->state != HP_CTR_RUNNING && c->state != HP_CTR_UNKNOWN)
        return;
    if (be_ctr_load(d, c, &x, &err) < 0) {
        hp_debug("status of %s: %s", c->id, err.msg);
        return;
    }
    if (x.be->ops->container_status(x.be, &x.bc, &st, &err) < 0) {
        hp_debug("status of %s: %s", c->id, err.msg);
    } else if (st.state == HP_CTR_RUNNING && (st.reason[0] || st.message[0])) {
        /* live detail of a running container (e.g. "waiting for Slurm
         * allocation: Resources"): shown, not stored */
        free(c->reason);
        free(c->message);
        c->reason = strdup(st.reason);
        c->message = strdup(st.message);
    } else if (st.state == HP_CTR_EXITED && record_exit(d, c, &st, &err) >= 0) {
        /* Only an exit is final: UNKNOWN (process gone, exit status not yet
         * written by the monitor) is transient and asked again next time. */
        c->state = st.state;
        c->finished_at = st.finished_at;
        c->exit_code = st.exit_code;
        free(c->reason);
        free(c->message);
        c->reason = strdup(st.reason);
        c->message = strdup(st.message);
    }
    be_ctr_release(&x);
}

void hp_cri_on_container_exit(void *ud, const char *container_id, const hp_be_status *st)
{
    hp_daemon *d = ud;
    hp_err err = HP_ERR_INIT;
    hp_ctr_rec *c = hp_store_ctr_get(d->store, container_id, &err);
    if (c == NULL)
        return;
    /* CREATED: StartContainer is still running and records the exit itself. */
    if ((c->state == HP_CTR_RUNNING || c->state == HP_CTR_UNKNOWN) && st->state == HP_CTR_EXITED)
        record_exit(d, c, st, &err);
    hp_ctr_rec_free(c);
}

int hp_cri_stop_container(hp_daemon *d, const hp_ctr_rec *c, int64_t timeout_s, hp_err *err)
{
    struct be_ctr x;
    hp_be_status st = {0};
    int rc = -1;

    if (c->state != HP_CTR_RUNNING && c->state != HP_CTR_UNKNOWN)
        return 0;
    if (be_ctr_load(d, c, &x, err) < 0)
        return -1;
    if (x.be->ops->container_stop(x.be, &x.bc, timeout_s < 0 ? 0 : timeout_s, err) < 0)
        goto out;
    /* the monitor may need a moment to write the exit status */
    for (int i = 0; i < 100; i++) {
        if (x.be->ops->container_status(x.be, &x.bc, &st, err) < 0)
            goto out;
        if (st.state == HP_CTR_EXITED)
            break;
        usleep(20000);
    }
    if (st.state != HP_CTR_EXITED) {
        hp_err_set(err, HP_INTERNAL, "container %s has not exited 2 s after being killed", c->id);
        goto out;
    }
    if (record_exit(d, c, &st, err) < 0)
        goto out;
    rc = 0;
out:
    be_ctr_release(&x);
    return rc;
}

int hp_cri_remove_container_rec(hp_daemon *d, const hp_ctr_rec *c, hp_err *err)
{
    struct be_ctr x;
    int rc = -1;

    if ((c->state == HP_CTR_RUNNING || c->state == HP_CTR_UNKNOWN) &&
        hp_cri_stop_container(d, c, 0, err) < 0)
        return -1;
    if (be_ctr_load(d, c, &x, err) < 0)
        return -1;
    if (x.be->ops->container_remove(x.be, &x.bc, err) < 0)
        goto out;
    if (hp_store_ctr_delete(d->store, c->id, err) < 0)
        goto out;
    hp_cri_emit(d, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT, c->id, c->pod_id);
    rc = 0;
out:
    be_ctr_release(&x);
    return rc;
}

static int join_path(char *out, size_t n, const char *dir, const char *rel, hp_err *err)
{
    if (rel[0] == '/' || strstr(rel, "..") != NULL)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "log_path \"%s\" must be relative to the pod's log_directory and "
                          "must not contain \"..\"",
                          rel);
    if ((size_t)snprintf(out, n, "%s/%s", dir, rel) >= n)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "log path %s/%s is too long", dir, rel);
    return 0;
}

int hp_cri_create_container(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__CreateContainerRequest *in =
        hp_pb_decode(&runtime__v1__create_container_request__descriptor, req, err);
    Runtime__V1__CreateContainerResponse out = RUNTIME__V1__CREATE_CONTAINER_RESPONSE__INIT;
    _cleanup_pb_ Runtime__V1__PodSandboxConfig *pod_cfg = NULL;
    _cleanup_free_ uint8_t *cfgbuf = NULL;
    _cleanup_free_ char *rootfs = NULL;
    char log_path[4096] = "";
    hp_pod_rec *pod = NULL;
    hp_image_rec *img = NULL;
    hp_ctr_rec rec = {0};
    hp_be_container bc = {0};
    hp_backend *be;
    const Runtime__V1__ContainerConfig *cfg;
    int rc = -1;

    if (in == NULL)
        return -1;
    cfg = in->config;
    if (in->pod_sandbox_id == NULL || in->pod_sandbox_id[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "CreateContainer: pod_sandbox_id is empty");
    if (cfg == NULL || cfg->metadata == NULL || cfg->metadata->name == NULL ||
        cfg->metadata->name[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "CreateContainer: config.metadata.name is missing");
    if (cfg->image == NULL || cfg->image->image == NULL || cfg->image->image[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "CreateContainer: config.image is missing");
    pod = hp_store_pod_lookup(d->store, in->pod_sandbox_id, err);
    if (pod == NULL)
        return hp_err_wrap(err, "CreateContainer: pod sandbox \"%s\"", in->pod_sandbox_id);
    if (pod->state != HP_POD_READY) {
        hp_err_set(err, HP_FAILED_PRECONDITION,
                   "CreateContainer: pod sandbox %s is not ready (stopped pods take no new "
                   "containers)",
                   pod->id);
        goto out;
    }
    be = hp_cri_backend(d, pod->runtime_handler, err);
    if (be == NULL)
        goto out;
    if (!be->ops->own_images) {
        img = hp_cri_image_find(d, cfg->image->image, err);
        if (img == NULL) {
            if (err->code == HP_NOT_FOUND)
                hp_err_set(err, HP_NOT_FOUND,
                           "CreateContainer: image \"%s\" is not present: pull it first",
                           cfg->image->image);
            goto out;
        }
        rootfs = hp_cri_image_rootfs(d, img->id, err);
        if (rootfs == NULL && err->code != HP_OK)
            goto out;
    }
    pod_cfg = hp_cri_pod_config(pod, err);
    if (pod_cfg == NULL)
        goto out;
    if (pod_cfg->log_directory && pod_cfg->log_directory[0] && cfg->log_path && cfg->log_path[0]) {
        if (join_path(log_path, sizeof log_path, pod_cfg->log_directory, cfg->log_path, err) < 0)
            goto out;
        if (hp_cri_mkdir_parent(log_path, err) < 0)
            goto out;
    }

    if (hp_store_new_id(rec.id, err) < 0)
        goto out;
    memcpy(rec.pod_id, pod->id, sizeof rec.pod_id);
    rec.name = cfg->metadata->name;
    rec.attempt = cfg->metadata->attempt;
    rec.state = HP_CTR_CREATED;
    rec.created_at = now_ns();
    rec.image = cfg->image->image;
    rec.image_ref = img ? img->id : cfg->image->image;
    rec.log_path = log_path;
    rec.config_len = runtime__v1__container_config__get_packed_size(cfg);
    cfgbuf = malloc(rec.config_len ? rec.config_len : 1);
    if (cfgbuf == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    runtime__v1__container_config__pack(cfg, cfgbuf);
    rec.config = cfgbuf;
    if (hp_cri_map_in(&rec.labels, (void *const *)cfg->labels, cfg->n_labels, err) < 0 ||
        hp_cri_map_in(&rec.annotations, (void *const *)cfg->annotations, cfg->n_annotations, err) <
            0)
        goto out;
    if (hp_store_ctr_insert(d->store, &rec, err) < 0)
        goto out;

    bc.id = rec.id;
    bc.pod_id = pod->id;
    bc.config = cfg;
    bc.pod_config = pod_cfg;
    bc.image_id = rec.image_ref;
    bc.rootfs_hint = rootfs;
    bc.image_config_json = img ? img->config_json : NULL;
    bc.log_path = log_path[0] ? log_path : NULL;
    if (be->ops->container_create(be, &bc, err) < 0) {
        hp_err e2 = HP_ERR_INIT;
        if (be->ops->container_remove(be, &bc, &e2) < 0)
            hp_warn("CreateContainer %s: cleanup after failure: %s", rec.id, e2.msg);
        if (hp_store_ctr_delete(d->store, rec.id, &e2) < 0)
            hp_warn("CreateContainer %s: %s", rec.id, e2.msg);
        hp_err_wrap(err, "CreateContainer %s in pod %s", rec.name, pod->id);
        goto out;
    }
    if (hp_store_ctr_set_backend_state(d->store, rec.id, bc.backend_state, err) < 0)
        goto out;
    hp_cri_emit(d, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_CREATED_EVENT, rec.id, pod->id);
    hp_info("container %s (%s) created in pod %s", rec.id, rec.name, pod->id);
    out.container_id = rec.id;
    rc = hp_pb_reply(resp, &out, err);
out:
    free(bc.backend_state);
    hp_strmap_clear(&rec.labels);
    hp_strmap_clear(&rec.annotations);
    hp_image_rec_free(img);
    hp_pod_rec_free(pod);
    return rc;
}

/* Look up the container named by a request, answering NOT_FOUND/INVALID_ARGUMENT. */
static hp_ctr_rec *req_ctr(hp_daemon *d, const char *call, const char *id, hp_err *err)
{
    hp_ctr_rec *c;
    if (id == NULL || id[0] == '\0') {
        hp_err_set(err, HP_INVALID_ARGUMENT, "%s: container_id is empty", call);
        return NULL;
    }
    c = hp_store_ctr_lookup(d->store, id, err);
    if (c == NULL)
        hp_err_wrap(err, "%s: container \"%s\"", call, id);
    return c;
}

static const char *state_name(int state)
{
    static const char *const names[] = {"created", "running", "exited", "unknown"};
    return state >= 0 && state <= 3 ? names[state] : "unknown";
}

int hp_cri_start_container(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__StartContainerRequest *in =
        hp_pb_decode(&runtime__v1__start_container_request__descriptor, req, err);
    Runtime__V1__StartContainerResponse out = RUNTIME__V1__START_CONTAINER_RESPONSE__INIT;
    struct be_ctr x = {0};
    hp_ctr_rec *c;
    hp_ctr_status st = {0};
    hp_be_status bs = {0};
    int rc = -1;

    if (in == NULL)
        return -1;
    c = req_ctr(d, "StartContainer", in->container_id, err);
    if (c == NULL)
        return -1;
    if (c->state != HP_CTR_CREATED) {
        hp_err_set(err, HP_FAILED_PRECONDITION,
                   "StartContainer: container %s is %s; only a created container can be started",
                   c->id, state_name(c->state));
        goto out;
    }
    if (be_ctr_load(d, c, &x, err) < 0)
        goto out;
    if (x.be->ops->container_start(x.be, &x.bc, err) < 0) {
        hp_err e2 = HP_ERR_INIT;
        hp_ctr_status fail = {.state = HP_CTR_EXITED,
                              .finished_at = now_ns(),
                              .exit_code = 128,
                              .reason = "StartError",
                              .message = err->msg};
        if (hp_store_ctr_set_status(d->store, c->id, &fail, &e2) < 0)
            hp_warn("StartContainer %s: %s", c->id, e2.msg);
        hp_err_wrap(err, "StartContainer %s", c->id);
        goto out;
    }
    st.state = HP_CTR_RUNNING;
    st.started_at = now_ns();
    {
        /* a short-lived process may be gone already: record its exit now,
         * since the exit notification saw a container not yet running
         * (bs lives at function scope: st points into it) */
        hp_err e2 = HP_ERR_INIT;
        if (x.be->ops->container_status(x.be, &x.bc, &bs, &e2) == 0 && bs.state == HP_CTR_EXITED) {
            st.state = HP_CTR_EXITED;
            st.started_at = bs.started_at ? bs.started_at : st.started_at;
            st.finished_at = bs.finished_at;
            st.exit_code = bs.exit_code;
            st.reason = bs.reason;
            st.message = bs.message;
        }
    }
    /* under exit_lock: an exit seen meanwhile is recorded (and announced)
     * only after RUNNING and STARTED, never before */
    pthread_mutex_lock(&d->exit_lock);
    if (hp_store_ctr_set_status(d->store, c->id, &st, err) < 0 ||
        hp_store_ctr_set_backend_state(d->store, c->id, x.bc.backend_state, err) < 0) {
        pthread_mutex_unlock(&d->exit_lock);
        goto out;
    }
    hp_cri_emit(d, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT, c->id, c->pod_id);
    if (st.state == HP_CTR_EXITED)
        hp_cri_emit(d, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT, c->id,
                    c->pod_id);
    pthread_mutex_unlock(&d->exit_lock);
    rc = hp_pb_reply(resp, &out, err);
out:
    be_ctr_release(&x);
    hp_ctr_rec_free(c);
    return rc;
}

int hp_cri_stop_container_rpc(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__StopContainerRequest *in =
        hp_pb_decode(&runtime__v1__stop_container_request__descriptor, req, err);
    Runtime__V1__StopContainerResponse out = RUNTIME__V1__STOP_CONTAINER_RESPONSE__INIT;
    hp_ctr_rec *c;
    int rc;

    if (in == NULL)
        return -1;
    c = req_ctr(d, "StopContainer", in->container_id, err);
    if (c == NULL) {
        if (err->code != HP_NOT_FOUND)
            return -1;
        hp_err_clear(err); /* CRI: stop is idempotent */
        return hp_pb_reply(resp, &out, err);
    }
    refresh(d, c);
    rc = hp_cri_stop_container(d, c, in->timeout, err);
    if (rc < 0)
        hp_err_wrap(err, "StopContainer %s", c->id);
    hp_ctr_rec_free(c);
    return rc < 0 ? -1 : hp_pb_reply(resp, &out, err);
}

int hp_cri_remove_container(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__RemoveContainerRequest *in =
        hp_pb_decode(&runtime__v1__remove_container_request__descriptor, req, err);
    Runtime__V1__RemoveContainerResponse out = RUNTIME__V1__REMOVE_CONTAINER_RESPONSE__INIT;
    hp_ctr_rec *c;
    int rc;

    if (in == NULL)
        return -1;
    c = req_ctr(d, "RemoveContainer", in->container_id, err);
    if (c == NULL) {
        if (err->code != HP_NOT_FOUND)
            return -1;
        hp_err_clear(err); /* CRI: remove is idempotent */
        return hp_pb_reply(resp, &out, err);
    }
    refresh(d, c);
    rc = hp_cri_remove_container_rec(d, c, err);
    if (rc < 0)
        hp_err_wrap(err, "RemoveContainer %s", c->id);
    hp_ctr_rec_free(c);
    return rc < 0 ? -1 : hp_pb_reply(resp, &out, err);
}

#define EXEC_OUTPUT_MAX (16u * 1024u * 1024u)

int hp_cri_exec_sync(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__ExecSyncRequest *in =
        hp_pb_decode(&runtime__v1__exec_sync_request__descriptor, req, err);
    Runtime__V1__ExecSyncResponse out = RUNTIME__V1__EXEC_SYNC_RESPONSE__INIT;
    hp_be_exec_result res = {0};
    struct be_ctr x = {0};
    hp_ctr_rec *c;
    int rc = -1;

    if (in == NULL)
        return -1;
    if (in->n_cmd == 0)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "ExecSync: cmd is empty");
    if (in->timeout < 0)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "ExecSync: timeout is negative");
    c = req_ctr(d, "ExecSync", in->container_id, err);
    if (c == NULL)
        return -1;
    refresh(d, c);
    if (c->state != HP_CTR_RUNNING) {
        hp_err_set(err, HP_FAILED_PRECONDITION, "ExecSync: container %s is %s, not running", c->id,
                   state_name(c->state));
        goto out;
    }
    if (be_ctr_load(d, c, &x, err) < 0)
        goto out;
    if (x.be->ops->exec_sync(x.be, &x.bc, in->cmd, in->n_cmd, in->timeout, &res, err) < 0)
        goto out;
    /* The response must fit the 16 MiB message limit with both streams. */
    if (res.out_len > EXEC_OUTPUT_MAX / 2)
        res.out_len = EXEC_OUTPUT_MAX / 2;
    if (res.err_len > EXEC_OUTPUT_MAX / 2 - 64)
        res.err_len = EXEC_OUTPUT_MAX / 2 - 64;
    out.stdout.data = res.out;
    out.stdout.len = res.out_len;
    out.stderr.data = res.errout;
    out.stderr.len = res.err_len;
    out.exit_code = res.exit_code;
    rc = hp_pb_reply(resp, &out, err);
out:
    free(res.out);
    free(res.errout);
    be_ctr_release(&x);
    hp_ctr_rec_free(c);
    return rc;
}

/* Exec and Attach: validate, resolve through the backend what the session
 * needs, and hand out a streaming URL (src/stream). */
static int stream_ctr(hp_daemon *d, const char *call, const ProtobufCMessage *msg, const char *id,
                      char **cmd, size_t ncmd, bool tty, bool in, bool out, bool errout, char **url,
                      hp_err *err)
{
    struct be_ctr x = {0};
    hp_stream_req *sr = NULL;
    hp_ctr_rec *c;
    int rc = -1;

    if (!in && !out && !errout)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "%s: one of stdin, stdout or stderr must be requested", call);
    if (tty && errout)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "%s: tty and stderr cannot both be requested (a terminal has one "
                          "output stream)",
                          call);
    c = req_ctr(d, call, id, err);
    if (c == NULL)
        return -1;
    refresh(d, c);
    if (c->state != HP_CTR_RUNNING) {
        hp_err_set(err, HP_FAILED_PRECONDITION, "%s: container %s is %s, not running", call, c->id,
                   state_name(c->state));
        goto out;
    }
    if (be_ctr_load(d, c, &x, err) < 0)
        goto out;
    const hp_backend_ops *ops = x.be->ops;
    if (ops->stream_url) {
        rc = ops->stream_url(x.be, &x.bc, NULL, msg, url, err);
        goto out;
    }
    bool exec = cmd != NULL;
    if (exec ? !ops->exec_command : !ops->attach_target) {
        hp_err_set(err, HP_UNIMPLEMENTED, "%s: the %s backend does not support it", call,
                   ops->type);
        goto out;
    }
    if (!exec && in && !(x.cfg && x.cfg->stdin)) {
        hp_err_set(err, HP_FAILED_PRECONDITION,
                   "Attach: container %s was not created with stdin; attach without stdin", c->id);
        goto out;
    }
    sr = calloc(1, sizeof *sr);
    if (!sr || !(sr->target = strdup(c->id))) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    sr->kind = exec ? HP_STREAM_EXEC : HP_STREAM_ATTACH;
    sr->tty = tty;
    sr->in = in;
    sr->out = out;
    sr->err = errout;
    if (exec ? ops->exec_command(x.be, &x.bc, cmd, ncmd, tty, &sr->argv, err)
             : ops->attach_target(x.be, &x.bc, &sr->attach_socket, &sr->control_fifo,
                                  &sr->exit_file, err))
        goto out;
    *url = hp_stream_server_offer(d->streams, hp_steal_ptr(&sr), err);
    rc = *url ? 0 : -1;
out:
    if (rc < 0)
        hp_err_wrap(err, "%s %s", call, id);
    hp_stream_req_free(sr);
    be_ctr_release(&x);
    hp_ctr_rec_free(c);
    return rc;
}

int hp_cri_exec(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__ExecRequest *in =
        hp_pb_decode(&runtime__v1__exec_request__descriptor, req, err);
    Runtime__V1__ExecResponse out = RUNTIME__V1__EXEC_RESPONSE__INIT;
    _cleanup_free_ char *url = NULL;
    if (in == NULL)
        return -1;
    if (in->n_cmd == 0 || in->cmd[0][0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "Exec: cmd is empty");
    if (stream_ctr(d, "Exec", &in->base, in->container_id, in->cmd, in->n_cmd, in->tty, in->stdin,
                   in->stdout, in->stderr, &url, err) < 0)
        return -1;
    out.url = url;
    return hp_pb_reply(resp, &out, err);
}

int hp_cri_attach(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__AttachRequest *in =
        hp_pb_decode(&runtime__v1__attach_request__descriptor, req, err);
    Runtime__V1__AttachResponse out = RUNTIME__V1__ATTACH_RESPONSE__INIT;
    _cleanup_free_ char *url = NULL;
    if (in == NULL)
        return -1;
    if (stream_ctr(d, "Attach", &in->base, in->container_id, NULL, 0, in->tty, in->stdin,
                   in->stdout, in->stderr, &url, err) < 0)
        return -1;
    out.url = url;
    return hp_pb_reply(resp, &out, err);
}

int hp_cri_reopen_container_log(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__ReopenContainerLogRequest *in =
        hp_pb_decode(&runtime__v1__reopen_container_log_request__descriptor, req, err);
    Runtime__V1__ReopenContainerLogResponse out = RUNTIME__V1__REOPEN_CONTAINER_LOG_RESPONSE__INIT;
    struct be_ctr x = {0};
    hp_ctr_rec *c;
    int rc = -1;

    if (in == NULL)
        return -1;
    c = req_ctr(d, "ReopenContainerLog", in->container_id, err);
    if (c == NULL)
        return -1;
    refresh(d, c);
    if (c->state != HP_CTR_RUNNING) {
        hp_err_set(err, HP_FAILED_PRECONDITION,
                   "ReopenContainerLog: container %s is %s, not running", c->id,
                   state_name(c->state));
        goto out;
    }
    if (be_ctr_load(d, c, &x, err) < 0 || x.be->ops->reopen_log(x.be, &x.bc, err) < 0)
        goto out;
    rc = hp_pb_reply(resp, &out, err);
out:
    be_ctr_release(&x);
    hp_ctr_rec_free(c);
    return rc;
}

int hp_cri_container_stats_raw(hp_daemon *d, const hp_ctr_rec *c, hp_be_stats *st, hp_err *err)
{
    struct be_ctr x;
    int rc;
    if (be_ctr_load(d, c, &x, err) < 0)
        return -1;
    rc = x.be->ops->container_stats(x.be, &x.bc, st, err);
    be_ctr_release(&x);
    return rc;
}

int hp_cri_mkdir_parent(const char *path, hp_err *err)
{
    _cleanup_free_ char *tmp = strdup(path);
    char *slash;
    if (tmp == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    slash = strrchr(tmp, '/');
    if (slash == NULL || slash == tmp)
        return 0;
    *slash = '\0';
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return hp_err_sys(err, HP_INTERNAL, "cannot create %s", tmp);
        *p = '/';
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        return hp_err_sys(err, HP_INTERNAL, "cannot create %s", tmp);
    return 0;
}

char *hp_cri_image_rootfs(hp_daemon *d, const char *image_id, hp_err *err)
{
    return hp_image_service_rootfs(d->images, image_id, err);
}

int hp_cri_reconcile(hp_daemon *d, hp_err *err)
{
    hp_ctr_filter f = {.has_state = true, .state = HP_CTR_RUNNING};
    hp_ctr_rec *ctrs = NULL;
    size_t n = 0, exited = 0;

    if (hp_store_ctr_list(d->store, &f, &ctrs, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        refresh(d, &ctrs[i]);
        if (ctrs[i].state != HP_CTR_RUNNING) {
            exited++;
            hp_info("container %s exited (code %d, %s) while hpcri was not watching", ctrs[i].id,
                    ctrs[i].exit_code, ctrs[i].reason ? ctrs[i].reason : "");
        }
    }
    if (n)
        hp_info("recovery: %zu running container(s) in the store, %zu of them had exited", n,
                exited);
    hp_ctr_recs_free(ctrs, n);
    return 0;
}
