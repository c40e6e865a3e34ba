/* The remote backend: ops table (see remote.h, docs/remote.md).
 *
 * Every op is one or a few unary calls to the remote CRI endpoint through the
 * connection pool of conn.c.  The only state kept in memory is a cache:
 * front pod id -> remote pod id (the container ops are not given the pod's
 * backend_state), and the last remote status of each container for
 * STATUS_CACHE_MS (the kubelet asks for statuses in bursts).  Both can be
 * rebuilt from the remote at any time, so a daemon restart loses nothing.
 */
#include "backend/remote/remote.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/remote/conn.h"
#include "util/cleanup.h"
#include "util/log.h"

#define RT "/runtime.v1.RuntimeService/"
#define IM "/runtime.v1.ImageService/"

/* How long a container status fetched from the remote answers status calls. */
#define STATUS_CACHE_MS 500
/* Status calls must be quick (the kubelet polls them): a short deadline. */
#define STATUS_TIMEOUT_MS 2000
/* Pulls may take long: at least this, or timeout_ms when larger. */
#define PULL_TIMEOUT_MS 300000
/* Pod stop/remove: timeout_ms plus this (the remote stops the containers). */
#define POD_STOP_EXTRA_MS 30000
/* The exit watcher asks the remote for its running containers this often. */
#define WATCH_INTERVAL_MS 1000

struct pod_ent {
    char *front, *remote; /* owned */
};

struct watch_ent {
    char *front, *remote; /* owned: hpcri and remote container ids */
};

struct st_ent {
    char *remote; /* owned: remote container id */
    hp_be_status st;
    int64_t at_ms; /* CLOCK_MONOTONIC when fetched */
};

typedef struct remote_be {
    hp_backend base;
    hp_remote_conn *rt;   /* owned: runtime endpoint */
    hp_remote_conn *img;  /* owned: image endpoint (its own pool, maybe the same socket) */
    char *remote_handler; /* owned; "" = the remote's default handler */
    int timeout_ms;

    pthread_mutex_t lock; /* guards pods, sts, watch, stopping */
    struct pod_ent *pods; /* owned array */
    size_t n_pods, cap_pods;
    struct st_ent *sts; /* owned array */
    size_t n_sts, cap_sts;

    /* Exit watcher: containers believed running on the remote; the thread
     * reports their exits through host.on_container_exit. */
    struct watch_ent *watch; /* owned array */
    size_t n_watch, cap_watch;
    pthread_cond_t cond; /* signalled by destroy */
    bool stopping;
    bool thread_started;
    pthread_t thread;
} remote_be;

static remote_be *rbe(hp_backend *be)
{
    return (remote_be *)be;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *uri(remote_be *b)
{
    return hp_remote_conn_uri(b->rt);
}

static void pfree(void *m)
{
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
}

/* ------------------------------------------------------------------------ */
/* backend_state JSON                                                        */

/* The string `key` of a backend_state JSON object: malloc'd copy owned by
 * the caller, or NULL when the state is NULL, malformed or has no such key. */
static char *state_get(const char *state, const char *key)
{
    if (state == NULL || state[0] == '\0')
        return NULL;
    json_t *j = json_loads(state, 0, NULL);
    const char *v = json_string_value(json_object_get(j, key));
    char *out = v && v[0] ? strdup(v) : NULL;
    json_decref(j);
    return out;
}

/* Replace *state (freed) by a new JSON object {k1: v1[, k2: v2]} (malloc'd,
 * owned by whoever owns *state: the CRI layer).  k2 may be NULL. */
static int state_set(char **state, const char *k1, const char *v1, const char *k2, const char *v2,
                     hp_err *err)
{
    json_t *o = json_object();
    if (o == NULL || json_object_set_new(o, k1, json_string(v1)) < 0 ||
        (k2 && json_object_set_new(o, k2, json_string(v2)) < 0)) {
        json_decref(o);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    free(*state);
    *state = s;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Caches                                                                    */

static void pod_cache_put(remote_be *b, const char *front, const char *remote)
{
    char *f = strdup(front), *r = strdup(remote);
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; f && r && i < b->n_pods; i++)
        if (strcmp(b->pods[i].front, front) == 0) {
            free(b->pods[i].remote);
            b->pods[i].remote = hp_steal_ptr(&r);
            break;
        }
    if (f && r && b->n_pods == b->cap_pods) {
        size_t cap = b->cap_pods ? 2 * b->cap_pods : 16;
        struct pod_ent *n = realloc(b->pods, cap * sizeof *n);
        if (n) {
            b->pods = n;
            b->cap_pods = cap;
        }
    }
    if (f && r && b->n_pods < b->cap_pods) {
        b->pods[b->n_pods++] = (struct pod_ent){hp_steal_ptr(&f), hp_steal_ptr(&r)};
    }
    pthread_mutex_unlock(&b->lock);
    free(f); /* NULL unless not stored (ENOMEM: the cache is only a cache) */
    free(r);
}

/* Malloc'd remote pod id from the cache (caller frees), or NULL. */
static char *pod_cache_get(remote_be *b, const char *front)
{
    char *out = NULL;
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->n_pods; i++)
        if (strcmp(b->pods[i].front, front) == 0) {
            out = strdup(b->pods[i].remote);
            break;
        }
    pthread_mutex_unlock(&b->lock);
    return out;
}

static void pod_cache_drop(remote_be *b, const char *front)
{
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->n_pods; i++)
        if (strcmp(b->pods[i].front, front) == 0) {
            free(b->pods[i].front);
            free(b->pods[i].remote);
            b->pods[i] = b->pods[--b->n_pods];
            break;
        }
    pthread_mutex_unlock(&b->lock);
}

/* A fresh cached status of remote container `rid` into *st: true if found. */
static bool st_cache_get(remote_be *b, const char *rid, hp_be_status *st)
{
    bool found = false;
    int64_t now = mono_ms();
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->n_sts; i++)
        if (strcmp(b->sts[i].remote, rid) == 0) {
            if (now - b->sts[i].at_ms < STATUS_CACHE_MS) {
                *st = b->sts[i].st;
                found = true;
            }
            break;
        }
    pthread_mutex_unlock(&b->lock);
    return found;
}

static void st_cache_put(remote_be *b, const char *rid, const hp_be_status *st)
{
    int64_t now = mono_ms();
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->n_sts; i++)
        if (strcmp(b->sts[i].remote, rid) == 0) {
            b->sts[i].st = *st;
            b->sts[i].at_ms = now;
            pthread_mutex_unlock(&b->lock);
            return;
        }
    if (b->n_sts == b->cap_sts) {
        size_t cap = b->cap_sts ? 2 * b->cap_sts : 16;
        struct st_ent *n = realloc(b->sts, cap * sizeof *n);
        if (n) {
            b->sts = n;
            b->cap_sts = cap;
        }
    }
    char *r = b->n_sts < b->cap_sts ? strdup(rid) : NULL;
    if (r)
        b->sts[b->n_sts++] = (struct st_ent){r, *st, now};
    pthread_mutex_unlock(&b->lock);
}

static void st_cache_drop(remote_be *b, const char *rid)
{
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->n_sts; i++)
        if (strcmp(b->sts[i].remote, rid) == 0) {
            free(b->sts[i].remote);
            b->sts[i] = b->sts[--b->n_sts];
            break;
        }
    pthread_mutex_unlock(&b->lock);
}

/* Watch a running container for its exit (no-op if already watched). */
static void watch_add(remote_be *b, const char *front, const char *remote)
{
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->n_watch; i++)
        if (strcmp(b->watch[i].remote, remote) == 0) {
            pthread_mutex_unlock(&b->lock);
            return;
        }
    if (b->n_watch == b->cap_watch) {
        size_t cap = b->cap_watch ? 2 * b->cap_watch : 16;
        struct watch_ent *n = realloc(b->watch, cap * sizeof *n);
        if (n) {
            b->watch = n;
            b->cap_watch = cap;
        }
    }
    if (b->n_watch < b->cap_watch) {
        char *f = strdup(front), *r = strdup(remote);
        if (f && r)
            b->watch[b->n_watch++] = (struct watch_ent){f, r};
        else {
            free(f);
            free(r);
        }
    }
    pthread_mutex_unlock(&b->lock);
}

static void watch_drop(remote_be *b, const char *remote)
{
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->n_watch; i++)
        if (strcmp(b->watch[i].remote, remote) == 0) {
            free(b->watch[i].front);
            free(b->watch[i].remote);
            b->watch[i] = b->watch[--b->n_watch];
            break;
        }
    pthread_mutex_unlock(&b->lock);
}

/* ------------------------------------------------------------------------ */
/* Calls                                                                     */

static int call(remote_be *b, const char *method, const void *req,
                const ProtobufCMessageDescriptor *desc, int timeout_ms, void *resp, hp_err *err)
{
    return hp_remote_call(b->rt, method, req, desc, timeout_ms, (ProtobufCMessage **)resp, err);
}

/* A call whose answer is not needed; NOT_FOUND counts as success when
 * `not_found_ok` (stop and remove are idempotent). */
static int call_void(remote_be *b, const char *method, const void *req,
                     const ProtobufCMessageDescriptor *desc, int timeout_ms, bool not_found_ok,
                     hp_err *err)
{
    ProtobufCMessage *resp = NULL;
    if (call(b, method, req, desc, timeout_ms, &resp, err) < 0) {
        if (not_found_ok && err->code == HP_NOT_FOUND) {
            hp_debug("%s: already gone: %s", method, err->msg);
            hp_err_clear(err);
            return 0;
        }
        return -1;
    }
    pfree(resp);
    return 0;
}

static int add_ms(int a, int64_t b)
{
    int64_t s = (int64_t)a + b;
    return s > 86400000 ? 86400000 : (int)s;
}

/* ------------------------------------------------------------------------ */
/* Pods                                                                      */

/* Shallow copies of a config whose labels are the original ones plus
 * key=value (replacing that key if present).  *labels receives the new array
 * (malloc'd, caller frees; its entries are borrowed from `in`, or `ent`). */
static int pod_cfg_labelled(const Runtime__V1__PodSandboxConfig *in,
                            Runtime__V1__PodSandboxConfig *out,
                            Runtime__V1__PodSandboxConfig__LabelsEntry *ent,
                            Runtime__V1__PodSandboxConfig__LabelsEntry ***labels, const char *k,
                            const char *v, hp_err *err)
{
    size_t n = 0;
    *out = *in;
    *labels = calloc(in->n_labels + 1, sizeof **labels);
    if (*labels == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < in->n_labels; i++)
        if (strcmp(in->labels[i]->key, k) != 0)
            (*labels)[n++] = in->labels[i];
    ent->key = (char *)k;
    ent->value = (char *)v;
    (*labels)[n++] = ent;
    out->labels = *labels;
    out->n_labels = n;
    return 0;
}

static int ctr_cfg_labelled(const Runtime__V1__ContainerConfig *in,
                            Runtime__V1__ContainerConfig *out,
                            Runtime__V1__ContainerConfig__LabelsEntry *ent,
                            Runtime__V1__ContainerConfig__LabelsEntry ***labels, const char *k,
                            const char *v, hp_err *err)
{
    size_t n = 0;
    *out = *in;
    *labels = calloc(in->n_labels + 1, sizeof **labels);
    if (*labels == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < in->n_labels; i++)
        if (strcmp(in->labels[i]->key, k) != 0)
            (*labels)[n++] = in->labels[i];
    ent->key = (char *)k;
    ent->value = (char *)v;
    (*labels)[n++] = ent;
    out->labels = *labels;
    out->n_labels = n;
    return 0;
}

/* Find the remote pod labelled with hpcri's pod id.  Returns a malloc'd
 * remote id (caller frees), or NULL with NOT_FOUND / the call's error. */
static char *find_remote_pod(remote_be *b, const char *front, hp_err *err)
{
    Runtime__V1__ListPodSandboxRequest req = RUNTIME__V1__LIST_POD_SANDBOX_REQUEST__INIT;
    Runtime__V1__PodSandboxFilter f = RUNTIME__V1__POD_SANDBOX_FILTER__INIT;
    Runtime__V1__PodSandboxFilter__LabelSelectorEntry sel =
        RUNTIME__V1__POD_SANDBOX_FILTER__LABEL_SELECTOR_ENTRY__INIT;
    Runtime__V1__PodSandboxFilter__LabelSelectorEntry *sels[1] = {&sel};
    Runtime__V1__ListPodSandboxResponse *resp = NULL;
    char *out = NULL;

    sel.key = HP_REMOTE_LABEL_POD;
    sel.value = (char *)front;
    f.n_label_selector = 1;
    f.label_selector = sels;
    req.filter = &f;
    if (call(b, RT "ListPodSandbox", &req, &runtime__v1__list_pod_sandbox_response__descriptor,
             b->timeout_ms, &resp, err) < 0)
        return NULL;
    /* A READY one first: an older attempt may linger NOTREADY. */
    for (size_t i = 0; i < resp->n_items && out == NULL; i++)
        if (resp->items[i]->state == RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY)
            out = strdup(resp->items[i]->id);
    if (out == NULL && resp->n_items > 0)
        out = strdup(resp->items[0]->id);
    if (out == NULL)
        hp_err_set(err, resp->n_items ? HP_RESOURCE_EXHAUSTED : HP_NOT_FOUND,
                   resp->n_items ? "out of memory"
                                 : "remote runtime %s has no pod sandbox labelled %s=%s",
                   uri(b), HP_REMOTE_LABEL_POD, front);
    pfree(resp);
    return out;
}

/* The remote pod id: backend_state, else the cache, else a lookup by label.
 * Returns a malloc'd id (caller frees) or NULL with err. */
static char *remote_pod_id(remote_be *b, const char *front, const char *state, hp_err *err)
{
    char *id = state_get(state, "remote_pod_id");
    if (id == NULL)
        id = pod_cache_get(b, front);
    if (id == NULL && (id = find_remote_pod(b, front, err)) != NULL)
        pod_cache_put(b, front, id);
    return id;
}

static int sandbox_run(hp_backend *be, hp_be_pod *pod, hp_err *err)
{
    remote_be *b = rbe(be);
    Runtime__V1__RunPodSandboxRequest req = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
    Runtime__V1__PodSandboxConfig cfg;
    Runtime__V1__PodSandboxConfig__LabelsEntry ent =
        RUNTIME__V1__POD_SANDBOX_CONFIG__LABELS_ENTRY__INIT;
    _cleanup_free_ Runtime__V1__PodSandboxConfig__LabelsEntry **labels = NULL;
    Runtime__V1__RunPodSandboxResponse *resp = NULL;
    int rc;

    if (pod_cfg_labelled(pod->config, &cfg, &ent, &labels, HP_REMOTE_LABEL_POD, pod->id, err) < 0)
        return -1;
    req.config = &cfg;
    req.runtime_handler = b->remote_handler;
    if (call(b, RT "RunPodSandbox", &req, &runtime__v1__run_pod_sandbox_response__descriptor,
             b->timeout_ms, &resp, err) < 0)
        return -1;
    rc = state_set(&pod->backend_state, "remote_pod_id", resp->pod_sandbox_id, NULL, NULL, err);
    if (rc == 0) {
        pod_cache_put(b, pod->id, resp->pod_sandbox_id);
        hp_info("pod %s runs on remote runtime %s as %s", pod->id, uri(b), resp->pod_sandbox_id);
    }
    pfree(resp);
    return rc;
}

static int sandbox_stop(hp_backend *be, hp_be_pod *pod, hp_err *err)
{
    remote_be *b = rbe(be);
    Runtime__V1__StopPodSandboxRequest req = RUNTIME__V1__STOP_POD_SANDBOX_REQUEST__INIT;
    _cleanup_free_ char *rid = remote_pod_id(b, pod->id, pod->backend_state, err);

    if (rid == NULL) {
        if (err->code != HP_NOT_FOUND)
            return -1;
        hp_err_clear(err); /* nothing on the remote: stopped */
        return 0;
    }
    req.pod_sandbox_id = rid;
    return call_void(b, RT "StopPodSandbox", &req,
                     &runtime__v1__stop_pod_sandbox_response__descriptor,
                     add_ms(b->timeout_ms, POD_STOP_EXTRA_MS), true, err);
}

static int sandbox_remove(hp_backend *be, hp_be_pod *pod, hp_err *err)
{
    remote_be *b = rbe(be);
    Runtime__V1__RemovePodSandboxRequest req = RUNTIME__V1__REMOVE_POD_SANDBOX_REQUEST__INIT;
    /* Without backend_state (RunPodSandbox failed, maybe after the remote
     * created the pod): look it up by label. */
    _cleanup_free_ char *rid = remote_pod_id(b, pod->id, pod->backend_state, err);

    if (rid == NULL) {
        if (err->code != HP_NOT_FOUND)
            return -1;
        hp_err_clear(err);
        pod_cache_drop(b, pod->id);
        return 0;
    }
    req.pod_sandbox_id = rid;
    if (call_void(b, RT "RemovePodSandbox", &req,
                  &runtime__v1__remove_pod_sandbox_response__descriptor,
                  add_ms(b->timeout_ms, POD_STOP_EXTRA_MS), true, err) < 0)
        return -1;
    pod_cache_drop(b, pod->id);
    return 0;
}

static int sandbox_status(hp_backend *be, hp_be_pod *pod, bool *ready, char **info, hp_err *err)
{
    remote_be *b = rbe(be);
    Runtime__V1__PodSandboxStatusRequest req = RUNTIME__V1__POD_SANDBOX_STATUS_REQUEST__INIT;
    Runtime__V1__PodSandboxStatusResponse *resp = NULL;
    _cleanup_free_ char *rid = remote_pod_id(b, pod->id, pod->backend_state, err);

    *ready = false;
    if (info)
        *info = NULL;
    if (rid == NULL)
        return -1;
    req.pod_sandbox_id = rid;
    if (call(b, RT "PodSandboxStatus", &req, &runtime__v1__pod_sandbox_status_response__descriptor,
             STATUS_TIMEOUT_MS < b->timeout_ms ? STATUS_TIMEOUT_MS : b->timeout_ms, &resp, err) < 0)
        return -1;
    *ready = resp->status && resp->status->state == RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY;
    if (info) {
        json_t *o = json_pack("{s:s, s:s, s:b}", "endpoint", uri(b), "remote_pod_id", rid,
                              "remote_ready", *ready);
        *info = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    }
    pfree(resp);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Containers                                                                */

/* Make sure the remote has the image: ImageStatus, then PullImage with the
 * same spec when absent.  An image id ("sha256:...") the remote does not
 * know cannot be pulled: the user_specified_image of the spec is pulled then
 * (the kubelet sets it).  *use_ref receives the reference to create the
 * container with when it differs from the spec (malloc'd, caller frees),
 * else NULL. */
static int ensure_image(remote_be *b, const Runtime__V1__ImageSpec *spec,
                        const Runtime__V1__PodSandboxConfig *pod_cfg, char **use_ref, hp_err *err)
{
    Runtime__V1__ImageStatusRequest sreq = RUNTIME__V1__IMAGE_STATUS_REQUEST__INIT;
    Runtime__V1__ImageStatusResponse *sresp = NULL;
    Runtime__V1__PullImageRequest preq = RUNTIME__V1__PULL_IMAGE_REQUEST__INIT;
    Runtime__V1__PullImageResponse *presp = NULL;
    Runtime__V1__ImageSpec pull_spec;
    bool present;
    int64_t t0;

    *use_ref = NULL;
    sreq.image = (Runtime__V1__ImageSpec *)spec;
    if (hp_remote_call(b->img, IM "ImageStatus", &sreq.base,
                       &runtime__v1__image_status_response__descriptor, b->timeout_ms,
                       (ProtobufCMessage **)&sresp, err) < 0)
        return -1;
    present = sresp->image != NULL;
    pfree(sresp);
    if (present)
        return 0;

    pull_spec = *spec;
    if (strncmp(spec->image, "sha256:", 7) == 0) {
        if (spec->user_specified_image == NULL || spec->user_specified_image[0] == '\0')
            return hp_err_set(err, HP_NOT_FOUND,
                              "remote runtime %s does not have image %s, and an image id cannot "
                              "be pulled (no user_specified_image in the image spec)",
                              uri(b), spec->image);
        pull_spec.image = spec->user_specified_image;
    }
    preq.image = &pull_spec;
    preq.sandbox_config = (Runtime__V1__PodSandboxConfig *)pod_cfg;
    hp_info("remote runtime %s: pulling %s", uri(b), pull_spec.image);
    t0 = mono_ms();
    if (hp_remote_call(b->img, IM "PullImage", &preq.base,
                       &runtime__v1__pull_image_response__descriptor,
                       b->timeout_ms > PULL_TIMEOUT_MS ? b->timeout_ms : PULL_TIMEOUT_MS,
                       (ProtobufCMessage **)&presp, err) < 0)
        return -1;
    hp_info("remote runtime %s: pulled %s as %s in %lld ms", uri(b), pull_spec.image,
            presp->image_ref, (long long)(mono_ms() - t0));
    if (pull_spec.image != spec->image && (*use_ref = strdup(presp->image_ref)) == NULL) {
        pfree(presp);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    pfree(presp);
    return 0;
}

static int container_create(hp_backend *be, hp_be_container *c, hp_err *err)
{
    remote_be *b = rbe(be);
    Runtime__V1__CreateContainerRequest req = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
    Runtime__V1__CreateContainerResponse *resp = NULL;
    Runtime__V1__ContainerConfig cfg;
    Runtime__V1__ContainerConfig__LabelsEntry ent =
        RUNTIME__V1__CONTAINER_CONFIG__LABELS_ENTRY__INIT;
    _cleanup_free_ Runtime__V1__ContainerConfig__LabelsEntry **labels = NULL;
    _cleanup_free_ char *pid = NULL;
    _cleanup_free_ char *ref = NULL;
    Runtime__V1__ImageSpec spec;
    int rc;

    if (c->config->image == NULL)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "config.image is missing");
    pid = remote_pod_id(b, c->pod_id, NULL, err);
    if (pid == NULL)
        return hp_err_wrap(err, "pod %s", c->pod_id);
    if (ensure_image(b, c->config->image, c->pod_config, &ref, err) < 0)
        return -1;
    if (ctr_cfg_labelled(c->config, &cfg, &ent, &labels, HP_REMOTE_LABEL_CTR, c->id, err) < 0)
        return -1;
    if (ref != NULL) {
        spec = *c->config->image;
        spec.image = ref;
        cfg.image = &spec;
    }
    req.pod_sandbox_id = pid;
    req.config = &cfg;
    req.sandbox_config = (Runtime__V1__PodSandboxConfig *)c->pod_config;
    if (call(b, RT "CreateContainer", &req, &runtime__v1__create_container_response__descriptor,
             b->timeout_ms, &resp, err) < 0)
        return -1;
    rc = state_set(&c->backend_state, "remote_container_id", resp->container_id, "remote_pod_id",
                   pid, err);
    if (rc == 0)
        hp_debug("container %s is %s on remote runtime %s", c->id, resp->container_id, uri(b));
    pfree(resp);
    return rc;
}

/* The remote container id from backend_state: malloc'd (caller frees), or
 * NULL with FAILED_PRECONDITION. */
static char *remote_ctr_id(remote_be *b, const hp_be_container *c, hp_err *err)
{
    char *id = state_get(c->backend_state, "remote_container_id");
    if (id == NULL)
        hp_err_set(err, HP_FAILED_PRECONDITION,
                   "container %s has no container on remote runtime %s (no remote id recorded)",
                   c->id, uri(b));
    return id;
}

static int container_start(hp_backend *be, hp_be_container *c, hp_err *err)
{
    remote_be *b = rbe(be);
    Runtime__V1__StartContainerRequest req = RUNTIME__V1__START_CONTAINER_REQUEST__INIT;
    _cleanup_free_ char *rid = remote_ctr_id(b, c, err);

    if (rid == NULL)
        return -1;
    req.container_id = rid;
    st_cache_drop(b, rid);
    return call_void(b, RT "StartContainer", &req,
                     &runtime__v1__start_container_response__descriptor, b->timeout_ms, false, err);
}

static int container_stop(hp_backend *be, hp_be_container *c, int64_t timeout_s, hp_err *err)
{
    remote_be *b = rbe(be);
    Runtime__V1__StopContainerRequest req = RUNTIME__V1__STOP_CONTAINER_REQUEST__INIT;
    _cleanup_free_ char *rid = remote_ctr_id(b, c, err);
    int rc;

    if (rid == NULL)
        return -1;
    req.container_id = rid;
    req.timeout = timeout_s;
    watch_drop(b, rid); /* the CRI layer records this exit itself */
    rc = call_void(b, RT "StopContainer", &req, &runtime__v1__stop_container_response__descriptor,
                   add_ms(b->timeout_ms, timeout_s * 1000), true, err);
    st_cache_drop(b, rid);
    return rc;
}

/* Remove remote containers labelled with hpcri's container id (cleanup of
 * a CreateContainer that failed after the remote created it). */
static int remove_by_label(remote_be *b, const char *front, hp_err *err)
{
    Runtime__V1__ListContainersRequest req = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
    Runtime__V1__ContainerFilter f = RUNTIME__V1__CONTAINER_FILTER__INIT;
    Runtime__V1__ContainerFilter__LabelSelectorEntry sel =
        RUNTIME__V1__CONTAINER_FILTER__LABEL_SELECTOR_ENTRY__INIT;
    Runtime__V1__ContainerFilter__LabelSelectorEntry *sels[1] = {&sel};
    Runtime__V1__ListContainersResponse *resp = NULL;
    int rc = 0;

    sel.key = HP_REMOTE_LABEL_CTR;
    sel.value = (char *)front;
    f.n_label_selector = 1;
    f.label_selector = sels;
    req.filter = &f;
    if (call(b, RT "ListContainers", &req, &runtime__v1__list_containers_response__descriptor,
             b->timeout_ms, &resp, err) < 0)
        return -1;
    for (size_t i = 0; i < resp->n_containers && rc == 0; i++) {
        Runtime__V1__RemoveContainerRequest rm = RUNTIME__V1__REMOVE_CONTAINER_REQUEST__INIT;
        rm.container_id = resp->containers[i]->id;
        hp_info("removing leftover container %s of %s on remote runtime %s", rm.container_id, front,
                uri(b));
        rc = call_void(b, RT "RemoveContainer", &rm,
                       &runtime__v1__remove_container_response__descriptor,
                       add_ms(b->timeout_ms, POD_STOP_EXTRA_MS), true, err);
    }
    pfree(resp);
    return rc;
}

static int container_remove(hp_backend *be, hp_be_container *c, hp_err *err)
{
    remote_be *b = rbe(be);
    Runtime__V1__RemoveContainerRequest req = RUNTIME__V1__REMOVE_CONTAINER_REQUEST__INIT;
    _cleanup_free_ char *rid = state_get(c->backend_state, "remote_container_id");
    int rc;

    if (rid == NULL)
        return remove_by_label(b, c->id, err);
    req.container_id = rid;
    watch_drop(b, rid);
    rc = call_void(b, RT "RemoveContainer", &req,
                   &runtime__v1__remove_container_response__descriptor,
                   add_ms(b->timeout_ms, POD_STOP_EXTRA_MS), true, err);
    st_cache_drop(b, rid);
    return rc;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Ask the remote for the status of container `rid` (no cache) and cache
 * the answer.  NOT_FOUND becomes a final EXITED "RemoteContainerGone". */
static int fetch_status(remote_be *b, const char *rid, hp_be_status *st, hp_err *err)
{
    Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
    Runtime__V1__ContainerStatusResponse *resp = NULL;

    memset(st, 0, sizeof *st);
    req.container_id = (char *)rid;
    if (call(b, RT "ContainerStatus", &req, &runtime__v1__container_status_response__descriptor,
             STATUS_TIMEOUT_MS < b->timeout_ms ? STATUS_TIMEOUT_MS : b->timeout_ms, &resp,
             err) < 0) {
        if (err->code != HP_NOT_FOUND)
            return -1;
        /* Gone from the remote (removed there, or the remote lost its
         * state): it is not running any more; say so, finally. */
        st->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
        st->exit_code = 255;
        copy_str(st->reason, sizeof st->reason, "RemoteContainerGone");
        copy_str(st->message, sizeof st->message, err->msg);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        st->finished_at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        hp_err_clear(err);
        st_cache_put(b, rid, st);
        return 0;
    }
    if (resp->status == NULL) {
        pfree(resp);
        return hp_err_set(err, HP_INTERNAL,
                          "remote runtime %s: ContainerStatus of %s: the answer has no status",
                          uri(b), rid);
    }
    st->state = (int)resp->status->state;
    st->started_at = resp->status->started_at;
    st->finished_at = resp->status->finished_at;
    st->exit_code = resp->status->exit_code;
    copy_str(st->reason, sizeof st->reason, resp->status->reason);
    copy_str(st->message, sizeof st->message, resp->status->message);
    pfree(resp);
    st_cache_put(b, rid, st);
    return 0;
}

static int container_status(hp_backend *be, hp_be_container *c, hp_be_status *st, hp_err *err)
{
    remote_be *b = rbe(be);
    _cleanup_free_ char *rid = remote_ctr_id(b, c, err);

    if (rid == NULL)
        return -1;
    if (!st_cache_get(b, rid, st) && fetch_status(b, rid, st, err) < 0)
        return -1;
    /* Running (e.g. found again after a restart): watch it for its exit. */
    if (st->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING)
        watch_add(b, c->id, rid);
    return 0;
}

static int container_stats(hp_backend *be, hp_be_container *c, hp_be_stats *out, hp_err *err)
{
    remote_be *b = rbe(be);
    Runtime__V1__ContainerStatsRequest req = RUNTIME__V1__CONTAINER_STATS_REQUEST__INIT;
    Runtime__V1__ContainerStatsResponse *resp = NULL;
    _cleanup_free_ char *rid = remote_ctr_id(b, c, err);

    memset(out, 0, sizeof *out);
    if (rid == NULL)
        return -1;
    req.container_id = rid;
    if (call(b, RT "ContainerStats", &req, &runtime__v1__container_stats_response__descriptor,
             b->timeout_ms, &resp, err) < 0)
        return -1;
    const Runtime__V1__ContainerStats *s = resp->stats;
    if (s && s->cpu) {
        out->timestamp = s->cpu->timestamp;
        if (s->cpu->usage_core_nano_seconds) {
            out->has_cpu = true;
            out->cpu_usage_ns = s->cpu->usage_core_nano_seconds->value;
        }
    }
    if (s && s->memory) {
        if (!out->timestamp)
            out->timestamp = s->memory->timestamp;
        if (s->memory->working_set_bytes) {
            out->has_memory = true;
            out->memory_working_set = s->memory->working_set_bytes->value;
            out->memory_rss = s->memory->rss_bytes ? s->memory->rss_bytes->value : 0;
            out->memory_usage = s->memory->usage_bytes ? s->memory->usage_bytes->value : 0;
        }
    }
    if (s && s->writable_layer && s->writable_layer->used_bytes) {
        if (!out->timestamp)
            out->timestamp = s->writable_layer->timestamp;
        out->has_writable_layer = true;
        out->writable_bytes = s->writable_layer->used_bytes->value;
        out->writable_inodes =
            s->writable_layer->inodes_used ? s->writable_layer->inodes_used->value : 0;
        if (s->writable_layer->fs_id)
            copy_str(out->writable_mountpoint, sizeof out->writable_mountpoint,
                     s->writable_layer->fs_id->mountpoint);
    }
    if (!out->timestamp) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        out->timestamp = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    pfree(resp);
    return 0;
}

static uint8_t *dup_bytes(const ProtobufCBinaryData *d)
{
    uint8_t *p = malloc(d->len ? d->len : 1);
    if (p && d->len)
        memcpy(p, d->data, d->len);
    return p;
}

/* Exec, Attach and PortForward go to the remote runtime with its own ids;
 * the client then talks to the remote's streaming server directly. */
static int stream_url(hp_backend *be, hp_be_container *c, hp_be_pod *pod,
                      const ProtobufCMessage *msg, char **url, hp_err *err)
{
    remote_be *b = rbe(be);
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    _cleanup_free_ char *rid =
        c ? remote_ctr_id(b, c, err) : remote_pod_id(b, pod->id, pod->backend_state, err);
    const char *tail;
    if (rid == NULL)
        return -1;
    *url = NULL;
    if (d == &runtime__v1__exec_request__descriptor) {
        Runtime__V1__ExecRequest req = *(const Runtime__V1__ExecRequest *)msg;
        Runtime__V1__ExecResponse *resp = NULL;
        req.container_id = rid;
        if (call(b, RT "Exec", &req, &runtime__v1__exec_response__descriptor, b->timeout_ms, &resp,
                 err) < 0)
            return -1;
        tail = resp->url;
        *url = strdup(tail ? tail : "");
        pfree(resp);
    } else if (d == &runtime__v1__attach_request__descriptor) {
        Runtime__V1__AttachRequest req = *(const Runtime__V1__AttachRequest *)msg;
        Runtime__V1__AttachResponse *resp = NULL;
        req.container_id = rid;
        if (call(b, RT "Attach", &req, &runtime__v1__attach_response__descriptor, b->timeout_ms,
                 &resp, err) < 0)
            return -1;
        tail = resp->url;
        *url = strdup(tail ? tail : "");
        pfree(resp);
    } else {
        Runtime__V1__PortForwardRequest req = *(const Runtime__V1__PortForwardRequest *)msg;
        Runtime__V1__PortForwardResponse *resp = NULL;
        req.pod_sandbox_id = rid;
        if (call(b, RT "PortForward", &req, &runtime__v1__port_forward_response__descriptor,
                 b->timeout_ms, &resp, err) < 0)
            return -1;
        tail = resp->url;
        *url = strdup(tail ? tail : "");
        pfree(resp);
    }
    return *url ? 0 : hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
}

static int exec_sync(hp_backend *be, hp_be_container *c, char *const *argv, size_t argc,
                     int64_t timeout_s, hp_be_exec_result *res, hp_err *err)
{
    remote_be *b = rbe(be);
    Runtime__V1__ExecSyncRequest req = RUNTIME__V1__EXEC_SYNC_REQUEST__INIT;
    Runtime__V1__ExecSyncResponse *resp = NULL;
    _cleanup_free_ char *rid = remote_ctr_id(b, c, err);

    memset(res, 0, sizeof *res);
    if (rid == NULL)
        return -1;
    req.container_id = rid;
    req.cmd = (char **)argv;
    req.n_cmd = argc;
    req.timeout = timeout_s;
    /* The remote enforces the command's timeout; our deadline only guards
     * against a remote that does not answer.  No timeout = no deadline. */
    if (call(b, RT "ExecSync", &req, &runtime__v1__exec_sync_response__descriptor,
             timeout_s > 0 ? add_ms(b->timeout_ms, timeout_s * 1000) : 0, &resp, err) < 0)
        return -1;
    res->out = dup_bytes(&resp->stdout);
    res->errout = dup_bytes(&resp->stderr);
    res->out_len = resp->stdout.len;
    res->err_len = resp->stderr.len;
    res->exit_code = resp->exit_code;
    pfree(resp);
    if (res->out == NULL || res->errout == NULL) {
        free(res->out);
        free(res->errout);
        memset(res, 0, sizeof *res);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    return 0;
}

static int reopen_log(hp_backend *be, hp_be_container *c, hp_err *err)
{
    remote_be *b = rbe(be);
    Runtime__V1__ReopenContainerLogRequest req = RUNTIME__V1__REOPEN_CONTAINER_LOG_REQUEST__INIT;
    _cleanup_free_ char *rid = remote_ctr_id(b, c, err);

    if (rid == NULL)
        return -1;
    req.container_id = rid;
    return call_void(b, RT "ReopenContainerLog", &req,
                     &runtime__v1__reopen_container_log_response__descriptor, b->timeout_ms, false,
                     err);
}

static int update_resources(hp_backend *be, hp_be_container *c,
                            const Runtime__V1__LinuxContainerResources *res, hp_err *err)
{
    remote_be *b = rbe(be);
    Runtime__V1__UpdateContainerResourcesRequest req =
        RUNTIME__V1__UPDATE_CONTAINER_RESOURCES_REQUEST__INIT;
    _cleanup_free_ char *rid = remote_ctr_id(b, c, err);

    if (rid == NULL)
        return -1;
    req.container_id = rid;
    req.linux = (Runtime__V1__LinuxContainerResources *)res;
    return call_void(b, RT "UpdateContainerResources", &req,
                     &runtime__v1__update_container_resources_response__descriptor, b->timeout_ms,
                     false, err);
}

/* ------------------------------------------------------------------------ */
/* Exit watcher                                                              */

/* One round: one ListContainers(state RUNNING) on the remote; every watched
 * container not in it is asked for its status, and an exit is reported. */
static void watch_round(remote_be *b, struct watch_ent *w, size_t n)
{
    Runtime__V1__ListContainersRequest req = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
    Runtime__V1__ContainerFilter f = RUNTIME__V1__CONTAINER_FILTER__INIT;
    Runtime__V1__ContainerStateValue sv = RUNTIME__V1__CONTAINER_STATE_VALUE__INIT;
    Runtime__V1__ListContainersResponse *resp = NULL;
    hp_err err = HP_ERR_INIT;

    sv.state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
    f.state = &sv;
    req.filter = &f;
    if (call(b, RT "ListContainers", &req, &runtime__v1__list_containers_response__descriptor,
             STATUS_TIMEOUT_MS < b->timeout_ms ? STATUS_TIMEOUT_MS : b->timeout_ms, &resp,
             &err) < 0) {
        hp_debug("exit watcher: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bool running = false;
        for (size_t j = 0; j < resp->n_containers && !running; j++)
            running = strcmp(resp->containers[j]->id, w[i].remote) == 0;
        if (running)
            continue;
        hp_be_status st;
        hp_err_clear(&err);
        if (fetch_status(b, w[i].remote, &st, &err) < 0) {
            hp_debug("exit watcher: %s", err.msg);
            continue;
        }
        if (st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED)
            continue; /* e.g. just created again: not ours to judge */
        watch_drop(b, w[i].remote);
        hp_debug("container %s exited on remote runtime %s (code %d, %s)", w[i].front, uri(b),
                 st.exit_code, st.reason);
        if (b->base.host.on_container_exit)
            b->base.host.on_container_exit(b->base.host.ud, w[i].front, &st);
    }
    pfree(resp);
}

static void *watch_thread(void *arg)
{
    remote_be *b = arg;
    pthread_mutex_lock(&b->lock);
    while (!b->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += WATCH_INTERVAL_MS / 1000;
        ts.tv_nsec += (long)(WATCH_INTERVAL_MS % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&b->cond, &b->lock, &ts);
        if (b->stopping || b->n_watch == 0)
            continue;
        /* Work on a copy: the calls run without the lock. */
        size_t n = b->n_watch, k = 0;
        struct watch_ent *w = calloc(n, sizeof *w);
        for (size_t i = 0; w && i < n; i++) {
            w[k].front = strdup(b->watch[i].front);
            w[k].remote = strdup(b->watch[i].remote);
            if (w[k].front && w[k].remote)
                k++;
            else {
                free(w[k].front);
                free(w[k].remote);
            }
        }
        pthread_mutex_unlock(&b->lock);
        if (w)
            watch_round(b, w, k);
        for (size_t i = 0; i < k; i++) {
            free(w[i].front);
            free(w[i].remote);
        }
        free(w);
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */

static void destroy(hp_backend *be)
{
    remote_be *b = rbe(be);
    if (b == NULL)
        return;
    if (b->thread_started) {
        pthread_mutex_lock(&b->lock);
        b->stopping = true;
        pthread_cond_signal(&b->cond);
        pthread_mutex_unlock(&b->lock);
        pthread_join(b->thread, NULL);
    }
    hp_debug("remote runtime %s: %llu call(s) on %llu connection(s)", b->rt ? uri(b) : "?",
             (unsigned long long)(b->rt ? hp_remote_conn_calls(b->rt) : 0),
             (unsigned long long)(b->rt ? hp_remote_conn_connects(b->rt) : 0));
    hp_remote_conn_free(b->rt);
    hp_remote_conn_free(b->img);
    for (size_t i = 0; i < b->n_pods; i++) {
        free(b->pods[i].front);
        free(b->pods[i].remote);
    }
    free(b->pods);
    for (size_t i = 0; i < b->n_sts; i++)
        free(b->sts[i].remote);
    free(b->sts);
    for (size_t i = 0; i < b->n_watch; i++) {
        free(b->watch[i].front);
        free(b->watch[i].remote);
    }
    free(b->watch);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b->remote_handler);
    free(b->base.handler);
    free(b);
}

static const hp_backend_ops remote_ops = {
    .type = "remote",
    .own_images = true,
    .sandbox_run = sandbox_run,
    .sandbox_stop = sandbox_stop,
    .sandbox_remove = sandbox_remove,
    .sandbox_status = sandbox_status,
    .container_create = container_create,
    .container_start = container_start,
    .container_stop = container_stop,
    .container_remove = container_remove,
    .container_status = container_status,
    .container_stats = container_stats,
    .exec_sync = exec_sync,
    .stream_url = stream_url,
    .reopen_log = reopen_log,
    .update_resources = update_resources,
    .destroy = destroy,
};

hp_backend *hp_remote_backend_new(const hp_handler_config *h, const hp_backend_env *env,
                                  hp_err *err)
{
    const char *ep = hp_handler_opt(h, "endpoint");
    const char *iep = hp_handler_opt(h, "image_endpoint");
    const char *rh = hp_handler_opt(h, "remote_handler"); /* NULL until the config has the key */
    long tmo = 10000;

    if (ep == NULL) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "runtime handler \"%s\" (remote): endpoint is not set",
                   h->name);
        return NULL;
    }
    if (hp_handler_opt(h, "timeout_ms") && hp_handler_opt_int(h, "timeout_ms", &tmo, err) < 0)
        return NULL;
    remote_be *b = calloc(1, sizeof *b);
    if (b == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&b->lock, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&b->cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    b->base.ops = &remote_ops;
    b->base.host = env->host;
    b->timeout_ms = tmo > 86400000 ? 86400000 : (int)tmo;
    if ((b->base.handler = strdup(h->name)) == NULL ||
        (b->remote_handler = strdup(rh ? rh : "")) == NULL) {
        destroy(&b->base);
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    if ((b->rt = hp_remote_conn_new(ep, err)) == NULL ||
        (b->img = hp_remote_conn_new(iep ? iep : ep, err)) == NULL) {
        hp_err_wrap(err, "runtime handler \"%s\"", h->name);
        destroy(&b->base);
        return NULL;
    }
    int rc = pthread_create(&b->thread, NULL, watch_thread, b);
    if (rc != 0) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED,
                   "runtime handler \"%s\": cannot start the exit "
                   "watcher thread: %s",
                   h->name, strerror(rc));
        destroy(&b->base);
        return NULL;
    }
    b->thread_started = true;
    hp_info("runtime handler \"%s\": forwarding to %s (images: %s, timeout %d ms)", h->name, ep,
            iep ? iep : ep, b->timeout_ms);
    return &b->base;
}

uint64_t hp_remote_backend_connects(hp_backend *be)
{
    return hp_remote_conn_connects(rbe(be)->rt);
}

uint64_t hp_remote_backend_calls(hp_backend *be)
{
    return hp_remote_conn_calls(rbe(be)->rt);
}
