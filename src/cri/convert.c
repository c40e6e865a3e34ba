#include "cri/convert.h"

#include <string.h>

int hp_cri_map_out(hp_arena *a, const ProtobufCMessageDescriptor *desc, const hp_strmap *m,
                   void ***out, size_t *n)
{
    void **arr;
    *out = NULL;
    *n = 0;
    if (m == NULL || m->n == 0)
        return 0;
    arr = HP_ARENA_ARRAY(a, void *, m->n);
    if (arr == NULL)
        return -1;
    for (size_t i = 0; i < m->n; i++) {
        hp_pb_map_entry *e = hp_arena_alloc(a, desc->sizeof_message);
        if (e == NULL)
            return -1;
        protobuf_c_message_init(desc, e);
        e->key = m->items[i].key;
        e->value = m->items[i].value;
        arr[i] = e;
    }
    *out = arr;
    *n = m->n;
    return 0;
}

int hp_cri_map_in(hp_strmap *m, void *const *entries, size_t n, hp_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const hp_pb_map_entry *e = entries[i];
        if (hp_strmap_set(m, e->key ? e->key : "", e->value ? e->value : "", err) < 0)
            return -1;
    }
    return 0;
}

Runtime__V1__PodSandbox *hp_cri_pod_out(hp_arena *a, const hp_pod_rec *p)
{
    Runtime__V1__PodSandbox *o = HP_ARENA_NEW(a, Runtime__V1__PodSandbox);
    Runtime__V1__PodSandboxMetadata *md = HP_ARENA_NEW(a, Runtime__V1__PodSandboxMetadata);
    if (o == NULL || md == NULL)
        return NULL;
    runtime__v1__pod_sandbox__init(o);
    runtime__v1__pod_sandbox_metadata__init(md);
    md->name = p->name;
    md->uid = p->uid;
    md->namespace_ = p->ns;
    md->attempt = p->attempt;
    o->id = (char *)p->id;
    o->metadata = md;
    o->state = p->state == HP_POD_READY ? RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY
                                        : RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
    o->created_at = p->created_at;
    o->runtime_handler = p->runtime_handler;
    if (hp_cri_map_out(a, &runtime__v1__pod_sandbox__labels_entry__descriptor, &p->labels,
                       (void ***)&o->labels, &o->n_labels) < 0 ||
        hp_cri_map_out(a, &runtime__v1__pod_sandbox__annotations_entry__descriptor, &p->annotations,
                       (void ***)&o->annotations, &o->n_annotations) < 0)
        return NULL;
    return o;
}

Runtime__V1__Container *hp_cri_ctr_out(hp_arena *a, const hp_ctr_rec *c)
{
    Runtime__V1__Container *o = HP_ARENA_NEW(a, Runtime__V1__Container);
    Runtime__V1__ContainerMetadata *md = HP_ARENA_NEW(a, Runtime__V1__ContainerMetadata);
    Runtime__V1__ImageSpec *img = HP_ARENA_NEW(a, Runtime__V1__ImageSpec);
    if (o == NULL || md == NULL || img == NULL)
        return NULL;
    runtime__v1__container__init(o);
    runtime__v1__container_metadata__init(md);
    runtime__v1__image_spec__init(img);
    md->name = c->name;
    md->attempt = c->attempt;
    img->image = c->image;
    o->id = (char *)c->id;
    o->pod_sandbox_id = (char *)c->pod_id;
    o->metadata = md;
    o->image = img;
    o->image_ref = c->image_ref;
    o->image_id = c->image_ref;
    o->state = (Runtime__V1__ContainerState)c->state;
    o->created_at = c->created_at;
    if (hp_cri_map_out(a, &runtime__v1__container__labels_entry__descriptor, &c->labels,
                       (void ***)&o->labels, &o->n_labels) < 0 ||
        hp_cri_map_out(a, &runtime__v1__container__annotations_entry__descriptor, &c->annotations,
                       (void ***)&o->annotations, &o->n_annotations) < 0)
        return NULL;
    return o;
}

Runtime__V1__Image *hp_cri_image_out(hp_arena *a, const hp_image_rec *im)
{
    Runtime__V1__Image *o = HP_ARENA_NEW(a, Runtime__V1__Image);
    if (o == NULL)
        return NULL;
    runtime__v1__image__init(o);
    o->id = im->id;
    o->n_repo_tags = im->repo_tags.n;
    o->repo_tags = im->repo_tags.items;
    o->n_repo_digests = im->repo_digests.n;
    o->repo_digests = im->repo_digests.items;
    o->size = (uint64_t)im->size;
    if (im->has_uid) {
        Runtime__V1__Int64Value *uid = HP_ARENA_NEW(a, Runtime__V1__Int64Value);
        if (uid == NULL)
            return NULL;
        runtime__v1__int64_value__init(uid);
        uid->value = im->uid;
        o->uid = uid;
    }
    o->username = im->username;
    o->pinned = im->pinned;
    return o;
}
