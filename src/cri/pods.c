/* Pod sandbox calls: ListPodSandbox, PodSandboxStatus, RunPodSandbox. */
#include <string.h>

#include "api.pb-c.h"
#include "cri/convert.h"
#include "cri/cri_internal.h"
#include "cri/pb.h"
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

int hp_cri_pod_sandbox_status(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__PodSandboxStatusRequest *in =
        hp_pb_decode(&runtime__v1__pod_sandbox_status_request__descriptor, req, err);
    Runtime__V1__PodSandboxStatusResponse out = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INIT;
    Runtime__V1__PodSandboxStatus st = RUNTIME__V1__POD_SANDBOX_STATUS__INIT;
    Runtime__V1__PodSandboxNetworkStatus net = RUNTIME__V1__POD_SANDBOX_NETWORK_STATUS__INIT;
    _cleanup_arena_ hp_arena a = {0};
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
    out.status = &st;
    rc = hp_pb_reply(resp, &out, err);
out:
    hp_pod_rec_free(p);
    return rc;
}

int hp_cri_run_pod_sandbox(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__RunPodSandboxRequest *in =
        hp_pb_decode(&runtime__v1__run_pod_sandbox_request__descriptor, req, err);
    const hp_handler_config *h;
    char type[32];
    (void)resp;

    if (in == NULL)
        return -1;
    if (in->config == NULL)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "RunPodSandbox: config is missing");
    if (in->config->metadata == NULL)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "RunPodSandbox: config.metadata is missing");
    if (in->config->metadata->name == NULL || in->config->metadata->name[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "RunPodSandbox: config.metadata.name is empty");

    pthread_rwlock_rdlock(&d->cfg_lock);
    h = hp_config_handler(d->cfg, in->runtime_handler, err);
    if (h)
        snprintf(type, sizeof type, "%s", hp_backend_type_name(h->type));
    pthread_rwlock_unlock(&d->cfg_lock);
    if (h == NULL)
        return hp_err_wrap(err, "RunPodSandbox");
    return hp_err_set(err, HP_UNIMPLEMENTED,
                      "RunPodSandbox: runtime handler \"%s\" uses the %s backend, which this "
                      "hpcri %s cannot run pods with yet",
                      in->runtime_handler ? in->runtime_handler : "", type, HPCRI_VERSION);
}
