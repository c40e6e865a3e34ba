/* Container calls: ListContainers, ContainerStatus. */
#include <string.h>

#include "api.pb-c.h"
#include "cri/convert.h"
#include "cri/cri_internal.h"
#include "cri/pb.h"
#include "util/cleanup.h"

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
    for (size_t i = 0; i < n; i++)
        if ((out.containers[out.n_containers++] = hp_cri_ctr_out(&a, &ctrs[i])) == NULL)
            goto oom;
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
