/* Pod sandbox calls: ListPodSandbox, PodSandboxStatus, RunPodSandbox. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.pb-c.h"
#include "cri/convert.h"
#include "cri/cri_internal.h"
#include "cri/pb.h"
#include "stream/stream.h"
#include "util/cleanup.h"

int hp_cri_list_pod_sandbox(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__ListPodSandboxRequest *in =
        hp_pb_decode(&runtime__v1__list_pod_sandbox_request__descriptor, req, err);
    Runtime__V1__ListPodSandboxResponse out = RUNTIME__V1__LIST_POD_SANDBOX_RESPONSE__INIT;
    _cleanup_arena_ hp_arena a = {0};
    hp_strmap sel = {0};
    hp_pod_filter f = {0};
    hp_pod_rec *pods = NULL;
    size_t n = 0;
    int rc = -1;

    if (in == NULL)
        return -1;
    if (in->filter) {
        f.id_prefix = in->filter->id;
        if (in->filter->state) {
            f.has_state = true;
            f.state = in->filter->state->state;
        }
        if (hp_cri_map_in(&sel, (void *const *)in->filter->label_selector,
                          in->filter->n_label_selector, err) < 0)
            goto out;
        f.labels = &sel;
    }
    if (hp_store_pod_list(d->store, &f, &pods, &n, err) < 0)
        goto out;
    out.items = HP_ARENA_ARRAY(&a, Runtime__V1__PodSandbox *, n);
    if (out.items == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++)
        if ((out.items[out.n_items++] = hp_cri_pod_out(&a, &pods[i])) == NULL)
            goto oom;
    rc = hp_pb_reply(resp, &out, err);
    goto out;
oom:
    hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory listing pod sandboxes");
out:
    hp_pod_recs_free(pods, n);
    hp_strmap_clear(&sel);
    return rc;
}

/* Ask the pod's backend whether it is ready; *info (may be NULL) gets the
 * backend's JSON detail, malloc'd, caller frees.  -1 when the backend cannot
 * be asked (logged at debug; the stored state is used then). */
static int pod_live_status(hp_daemon *d, const hp_pod_rec *p, bool *ready, char **info)
{
    hp_err err = HP_ERR_INIT;
    _cleanup_pb_ Runtime__V1__PodSandboxConfig *cfg = NULL;
    hp_be_pod bp = {.id = p->id, .handler = p->runtime_handler};
    hp_backend *be = hp_cri_backend(d, p->runtime_handler, &err);
    char *detail = NULL;
    int rc = -1;

    if (be == NULL || be->ops->sandbox_status == NULL)
        goto out;
    cfg = hp_cri_pod_config(p, &err);
    if (cfg == NULL)
        goto out;
    bp.config = cfg;
    bp.backend_state = p->backend_state ? strdup(p->backend_state) : NULL;
    rc = be->ops->sandbox_status(be, &bp, ready, &detail, &err);
    free(bp.backend_state);
out:
    if (rc < 0)
        hp_debug("pod %s: live status: %s", p->id, err.msg);
    if (info)
        *info = detail;
    else
        free(detail);
    return rc;
}

int hp_cri_pod_sandbox_status(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__PodSandboxStatusRequest *in =
        hp_pb_decode(&runtime__v1__pod_sandbox_status_request__descriptor, req, err);
    Runtime__V1__PodSandboxStatusResponse out = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INIT;
    Runtime__V1__PodSandboxStatus st = RUNTIME__V1__POD_SANDBOX_STATUS__INIT;
    Runtime__V1__PodSandboxNetworkStatus net = RUNTIME__V1__POD_SANDBOX_NETWORK_STATUS__INIT;
    Runtime__V1__PodSandboxStatusResponse__InfoEntry entry =
        RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INFO_ENTRY__INIT;
    Runtime__V1__PodSandboxStatusResponse__InfoEntry *entries[1] = {&entry};
    _cleanup_arena_ hp_arena a = {0};
    _cleanup_free_ char *info = NULL;
    hp_pod_rec *p;
    Runtime__V1__PodSandbox *ps;
    int rc = -1;

    if (in == NULL)
        return -1;
    if (in->pod_sandbox_id == NULL || in->pod_sandbox_id[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "PodSandboxStatus: pod_sandbox_id is empty");
    p = hp_store_pod_lookup(d->store, in->pod_sandbox_id, err);
    if (p == NULL)
        return hp_err_wrap(err, "pod sandbox \"%s\"", in->pod_sandbox_id);
    ps = hp_cri_pod_out(&a, p);
    if (ps == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    st.id = ps->id;
    st.metadata = ps->metadata;
    st.state = ps->state;
    st.created_at = ps->created_at;
    st.network = &net;
    st.n_labels = ps->n_labels;
    st.labels = (Runtime__V1__PodSandboxStatus__LabelsEntry **)ps->labels;
    st.n_annotations = ps->n_annotations;
    st.annotations = (Runtime__V1__PodSandboxStatus__AnnotationsEntry **)ps->annotations;
    st.runtime_handler = ps->runtime_handler;
    if (p->state == HP_POD_READY) {
        /* The backend has the live view (pause process alive, Slurm job
         * pending/running, remote pod state); the store has the intent. */
        bool ready = true;
        if (pod_live_status(d, p, &ready, in->verbose ? &info : NULL) == 0 && !ready)
            st.state = RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
    }
    if (info != NULL) {
        entry.key = "info";
        entry.value = info;
        out.n_info = 1;
        out.info = entries;
    }
    out.status = &st;
    rc = hp_pb_reply(resp, &out, err);
out:
    hp_pod_rec_free(p);
    return rc;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int hp_cri_run_pod_sandbox(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__RunPodSandboxRequest *in =
        hp_pb_decode(&runtime__v1__run_pod_sandbox_request__descriptor, req, err);
    Runtime__V1__RunPodSandboxResponse out = RUNTIME__V1__RUN_POD_SANDBOX_RESPONSE__INIT;
    const Runtime__V1__PodSandboxMetadata *md;
    _cleanup_free_ uint8_t *cfgbuf = NULL;
    hp_pod_rec rec = {0};
    hp_be_pod bp = {0};
    hp_backend *be;
    int rc = -1;

    if (in == NULL)
        return -1;
    if (in->config == NULL)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "RunPodSandbox: config is missing");
    md = in->config->metadata;
    if (md == NULL)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "RunPodSandbox: config.metadata is missing");
    if (md->name == NULL || md->name[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "RunPodSandbox: config.metadata.name is empty");

    be = hp_cri_backend(d, in->runtime_handler, err);
    if (be == NULL)
        return hp_err_wrap(err, "RunPodSandbox");

    if (hp_store_new_id(rec.id, err) < 0)
        return -1;
    rec.name = md->name;
    rec.ns = md->namespace_;
    rec.uid = md->uid;
    rec.attempt = md->attempt;
    rec.state = HP_POD_NOTREADY; /* READY only once the backend has it running */
    rec.created_at = now_ns();
    rec.runtime_handler = in->runtime_handler ? in->runtime_handler : "";
    rec.config_len = runtime__v1__pod_sandbox_config__get_packed_size(in->config);
    cfgbuf = malloc(rec.config_len ? rec.config_len : 1);
    if (cfgbuf == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    runtime__v1__pod_sandbox_config__pack(in->config, cfgbuf);
    rec.config = cfgbuf;
    if (hp_cri_map_in(&rec.labels, (void *const *)in->config->labels, in->config->n_labels, err) <
            0 ||
        hp_cri_map_in(&rec.annotations, (void *const *)in->config->annotations,
                      in->config->n_annotations, err) < 0)
        goto out;
    if (hp_store_pod_insert(d->store, &rec, err) < 0)
        goto out;

    bp.id = rec.id;
    bp.config = in->config;
    bp.handler = rec.runtime_handler;
    if (be->ops->sandbox_run(be, &bp, err) < 0) {
        hp_err e2 = HP_ERR_INIT;
        free(bp.backend_state);
        bp.backend_state = NULL;
        if (be->ops->sandbox_remove(be, &bp, &e2) < 0)
            hp_warn("RunPodSandbox %s: cleanup after failure: %s", rec.id, e2.msg);
        free(bp.backend_state);
        bp.backend_state = NULL;
        if (hp_store_pod_delete(d->store, rec.id, &e2) < 0)
            hp_warn("RunPodSandbox %s: %s", rec.id, e2.msg);
        hp_err_wrap(err, "RunPodSandbox %s/%s", rec.ns, rec.name);
        goto out;
    }
    if (hp_store_begin(d->store, err) < 0)
        goto out;
    if (hp_store_pod_set_backend_state(d->store, rec.id, bp.backend_state, err) < 0 ||
        hp_store_pod_set_state(d->store, rec.id, HP_POD_READY, err) < 0 ||
        hp_store_commit(d->store, err) < 0) {
        hp_store_rollback(d->store);
        goto out;
    }
    hp_info("pod %s (%s/%s, handler \"%s\") is ready", rec.id, rec.ns, rec.name,
            rec.runtime_handler);
    out.pod_sandbox_id = rec.id;
    rc = hp_pb_reply(resp, &out, err);
out:
    free(bp.backend_state);
    hp_strmap_clear(&rec.labels);
    hp_strmap_clear(&rec.annotations);
    return rc;
}

/* Stop every container of a pod that is still running (grace `timeout_s`). */
static int stop_pod_containers(hp_daemon *d, const hp_pod_rec *p, int64_t timeout_s, hp_err *err)
{
    hp_ctr_filter f = {.pod_id_prefix = p->id};
    hp_ctr_rec *ctrs = NULL;
    size_t n = 0;
    int rc = 0;

    if (hp_store_ctr_list(d->store, &f, &ctrs, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (ctrs[i].state == HP_CTR_RUNNING)
            rc = hp_cri_stop_container(d, &ctrs[i], timeout_s, err);
    hp_ctr_recs_free(ctrs, n);
    return rc;
}

static int stop_pod(hp_daemon *d, hp_pod_rec *p, hp_err *err)
{
    hp_backend *be = hp_cri_backend(d, p->runtime_handler, err);
    hp_be_pod bp = {.id = p->id, .handler = p->runtime_handler};
    _cleanup_pb_ Runtime__V1__PodSandboxConfig *cfg = NULL;
    int rc;

    if (be == NULL)
        return -1;
    if (stop_pod_containers(d, p, 0, err) < 0)
        return -1;
    cfg = hp_cri_pod_config(p, err);
    if (cfg == NULL)
        return -1;
    bp.config = cfg;
    bp.backend_state = p->backend_state ? strdup(p->backend_state) : NULL;
    rc = be->ops->sandbox_stop(be, &bp, err);
    if (rc == 0 && hp_store_begin(d->store, err) == 0) {
        if (hp_store_pod_set_backend_state(d->store, p->id, bp.backend_state, err) < 0 ||
            hp_store_pod_set_state(d->store, p->id, HP_POD_NOTREADY, err) < 0 ||
            hp_store_commit(d->store, err) < 0) {
            hp_store_rollback(d->store);
            rc = -1;
        }
    } else if (rc == 0) {
        rc = -1;
    }
    free(bp.backend_state);
    return rc;
}

int hp_cri_stop_pod_sandbox(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__StopPodSandboxRequest *in =
        hp_pb_decode(&runtime__v1__stop_pod_sandbox_request__descriptor, req, err);
    Runtime__V1__StopPodSandboxResponse out = RUNTIME__V1__STOP_POD_SANDBOX_RESPONSE__INIT;
    hp_pod_rec *p;
    int rc;

    if (in == NULL)
        return -1;
    if (in->pod_sandbox_id == NULL || in->pod_sandbox_id[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "StopPodSandbox: pod_sandbox_id is empty");
    p = hp_store_pod_lookup(d->store, in->pod_sandbox_id, err);
    if (p == NULL) {
        if (err->code != HP_NOT_FOUND)
            return -1;
        /* CRI: stop is idempotent; a pod already removed is stopped. */
        hp_err_clear(err);
        return hp_pb_reply(resp, &out, err);
    }
    rc = stop_pod(d, p, err);
    if (rc == 0)
        hp_info("pod %s stopped", p->id);
    else
        hp_err_wrap(err, "StopPodSandbox %s", p->id);
    hp_pod_rec_free(p);
    return rc < 0 ? -1 : hp_pb_reply(resp, &out, err);
}

int hp_cri_remove_pod_sandbox(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__RemovePodSandboxRequest *in =
        hp_pb_decode(&runtime__v1__remove_pod_sandbox_request__descriptor, req, err);
    Runtime__V1__RemovePodSandboxResponse out = RUNTIME__V1__REMOVE_POD_SANDBOX_RESPONSE__INIT;
    _cleanup_pb_ Runtime__V1__PodSandboxConfig *cfg = NULL;
    hp_ctr_filter f = {0};
    hp_ctr_rec *ctrs = NULL;
    size_t n = 0;
    hp_be_pod bp = {0};
    hp_backend *be;
    hp_pod_rec *p;
    int rc = -1;

    if (in == NULL)
        return -1;
    if (in->pod_sandbox_id == NULL || in->pod_sandbox_id[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "RemovePodSandbox: pod_sandbox_id is empty");
    p = hp_store_pod_lookup(d->store, in->pod_sandbox_id, err);
    if (p == NULL) {
        if (err->code != HP_NOT_FOUND)
            return -1;
        hp_err_clear(err); /* CRI: remove is idempotent */
        return hp_pb_reply(resp, &out, err);
    }
    be = hp_cri_backend(d, p->runtime_handler, err);
    if (be == NULL)
        goto out;
    if (stop_pod(d, p, err) < 0)
        goto out;
    f.pod_id_prefix = p->id;
    if (hp_store_ctr_list(d->store, &f, &ctrs, &n, err) < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (hp_cri_remove_container_rec(d, &ctrs[i], err) < 0)
            goto out;
    cfg = hp_cri_pod_config(p, err);
    if (cfg == NULL)
        goto out;
    bp.id = p->id;
    bp.config = cfg;
    bp.handler = p->runtime_handler;
    {
        hp_pod_rec *fresh = hp_store_pod_get(d->store, p->id, err);
        if (fresh == NULL)
            goto out;
        bp.backend_state = fresh->backend_state ? strdup(fresh->backend_state) : NULL;
        hp_pod_rec_free(fresh);
    }
    if (be->ops->sandbox_remove(be, &bp, err) < 0)
        goto out;
    if (hp_store_pod_delete_with_containers(d->store, p->id, NULL, err) < 0)
        goto out;
    hp_info("pod %s removed", p->id);
    rc = hp_pb_reply(resp, &out, err);
out:
    if (rc < 0)
        hp_err_wrap(err, "RemovePodSandbox %s", p->id);
    free(bp.backend_state);
    hp_ctr_recs_free(ctrs, n);
    hp_pod_rec_free(p);
    return rc;
}

Runtime__V1__PodSandboxConfig *hp_cri_pod_config(const hp_pod_rec *p, hp_err *err)
{
    static const uint8_t empty[1];
    Runtime__V1__PodSandboxConfig *c = runtime__v1__pod_sandbox_config__unpack(
        NULL, p->config_len, p->config_len ? p->config : empty);
    if (c == NULL)
        hp_err_set(err, HP_DATA_LOSS, "pod %s: stored config does not decode", p->id);
    return c;
}

int hp_cri_port_forward(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__PortForwardRequest *in =
        hp_pb_decode(&runtime__v1__port_forward_request__descriptor, req, err);
    Runtime__V1__PortForwardResponse out = RUNTIME__V1__PORT_FORWARD_RESPONSE__INIT;
    _cleanup_pb_ Runtime__V1__PodSandboxConfig *cfg = NULL;
    _cleanup_free_ char *url = NULL;
    hp_stream_req *sr = NULL;
    hp_pod_rec *p;
    int rc = -1;

    if (in == NULL)
        return -1;
    if (in->pod_sandbox_id == NULL || in->pod_sandbox_id[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "PortForward: pod_sandbox_id is empty");
    for (size_t i = 0; i < in->n_port; i++)
        if (in->port[i] <= 0 || in->port[i] > 65535)
            return hp_err_set(err, HP_INVALID_ARGUMENT, "PortForward: invalid port %d",
                              in->port[i]);
    p = hp_store_pod_lookup(d->store, in->pod_sandbox_id, err);
    if (p == NULL)
        return hp_err_wrap(err, "PortForward: pod sandbox \"%s\"", in->pod_sandbox_id);
    hp_be_pod bp = {.id = p->id, .handler = p->runtime_handler};
    if (p->state != HP_POD_READY) {
        hp_err_set(err, HP_FAILED_PRECONDITION, "PortForward: pod sandbox %s is not ready", p->id);
        goto out;
    }
    hp_backend *be = hp_cri_backend(d, p->runtime_handler, err);
    if (be == NULL || (cfg = hp_cri_pod_config(p, err)) == NULL)
        goto out;
    bp.config = cfg;
    bp.backend_state = p->backend_state ? strdup(p->backend_state) : NULL;
    if (be->ops->stream_url) {
        rc = be->ops->stream_url(be, NULL, &bp, &in->base, &url, err);
        goto reply;
    }
    if (!be->ops->forward_netns) {
        hp_err_set(err, HP_UNIMPLEMENTED, "PortForward: the %s backend does not support it",
                   be->ops->type);
        goto out;
    }
    sr = calloc(1, sizeof *sr);
    if (!sr || !(sr->target = strdup(p->id))) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    sr->kind = HP_STREAM_PORTFORWARD;
    sr->port = in->n_port == 1 ? in->port[0] : 0;
    if (be->ops->forward_netns(be, &bp, &sr->netns, err) < 0)
        goto out;
    url = hp_stream_server_offer(d->streams, hp_steal_ptr(&sr), err);
    rc = url ? 0 : -1;
reply:
    if (rc == 0) {
        out.url = url;
        rc = hp_pb_reply(resp, &out, err);
    }
out:
    if (rc < 0 && err->code != HP_OK && strncmp(err->msg, "PortForward", 11) != 0)
        hp_err_wrap(err, "PortForward %s", p->id);
    free(bp.backend_state);
    hp_stream_req_free(sr);
    hp_pod_rec_free(p);
    return rc;
}
