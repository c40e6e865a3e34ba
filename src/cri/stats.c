/* ContainerStats and ListContainerStats: numbers from the backend, never
 * placeholders (a value the backend cannot measure is left unset). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.pb-c.h"
#include "cri/convert.h"
#include "cri/cri_internal.h"
#include "cri/pb.h"
#include "util/cleanup.h"

static Runtime__V1__UInt64Value *u64(hp_arena *a, uint64_t v)
{
    Runtime__V1__UInt64Value *o = HP_ARENA_NEW(a, Runtime__V1__UInt64Value);
    if (o) {
        runtime__v1__uint64_value__init(o);
        o->value = v;
    }
    return o;
}

/* Build the CRI stats message for one container in the arena; NULL with err
 * on failure. */
static Runtime__V1__ContainerStats *one(hp_daemon *d, hp_arena *a, const hp_ctr_rec *c, hp_err *err)
{
    Runtime__V1__ContainerStats *o = HP_ARENA_NEW(a, Runtime__V1__ContainerStats);
    Runtime__V1__ContainerAttributes *attr = HP_ARENA_NEW(a, Runtime__V1__ContainerAttributes);
    Runtime__V1__ContainerMetadata *md = HP_ARENA_NEW(a, Runtime__V1__ContainerMetadata);
    hp_be_stats st = {0};

    if (o == NULL || attr == NULL || md == NULL)
        goto oom;
    runtime__v1__container_stats__init(o);
    runtime__v1__container_attributes__init(attr);
    runtime__v1__container_metadata__init(md);
    md->name = c->name;
    md->attempt = c->attempt;
    attr->id = (char *)c->id;
    attr->metadata = md;
    if (hp_cri_map_out(a, &runtime__v1__container_attributes__labels_entry__descriptor, &c->labels,
                       (void ***)&attr->labels, &attr->n_labels) < 0 ||
        hp_cri_map_out(a, &runtime__v1__container_attributes__annotations_entry__descriptor,
                       &c->annotations, (void ***)&attr->annotations, &attr->n_annotations) < 0)
        goto oom;
    o->attributes = attr;
    if (c->state == HP_CTR_RUNNING && hp_cri_container_stats_raw(d, c, &st, err) < 0)
        return NULL;
    if (st.has_cpu) {
        Runtime__V1__CpuUsage *cpu = HP_ARENA_NEW(a, Runtime__V1__CpuUsage);
        if (cpu == NULL)
            goto oom;
        runtime__v1__cpu_usage__init(cpu);
        cpu->timestamp = st.timestamp;
        if ((cpu->usage_core_nano_seconds = u64(a, st.cpu_usage_ns)) == NULL)
            goto oom;
        o->cpu = cpu;
    }
    if (st.has_memory) {
        Runtime__V1__MemoryUsage *mem = HP_ARENA_NEW(a, Runtime__V1__MemoryUsage);
        if (mem == NULL)
            goto oom;
        runtime__v1__memory_usage__init(mem);
        mem->timestamp = st.timestamp;
        if ((mem->working_set_bytes = u64(a, st.memory_working_set)) == NULL ||
            (mem->rss_bytes = u64(a, st.memory_rss)) == NULL ||
            (mem->usage_bytes = u64(a, st.memory_usage)) == NULL)
            goto oom;
        o->memory = mem;
    }
    if (st.has_writable_layer) {
        Runtime__V1__FilesystemUsage *fs = HP_ARENA_NEW(a, Runtime__V1__FilesystemUsage);
        Runtime__V1__FilesystemIdentifier *id = HP_ARENA_NEW(a, Runtime__V1__FilesystemIdentifier);
        if (fs == NULL || id == NULL)
            goto oom;
        runtime__v1__filesystem_usage__init(fs);
        runtime__v1__filesystem_identifier__init(id);
        if ((id->mountpoint = hp_arena_strdup(a, st.writable_mountpoint)) == NULL)
            goto oom;
        fs->timestamp = st.timestamp;
        fs->fs_id = id;
        if ((fs->used_bytes = u64(a, st.writable_bytes)) == NULL ||
            (fs->inodes_used = u64(a, st.writable_inodes)) == NULL)
            goto oom;
        o->writable_layer = fs;
    }
    return o;
oom:
    hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
}

int hp_cri_container_stats(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__ContainerStatsRequest *in =
        hp_pb_decode(&runtime__v1__container_stats_request__descriptor, req, err);
    Runtime__V1__ContainerStatsResponse out = RUNTIME__V1__CONTAINER_STATS_RESPONSE__INIT;
    _cleanup_arena_ hp_arena a = {0};
    hp_ctr_rec *c;
    int rc = -1;

    if (in == NULL)
        return -1;
    if (in->container_id == NULL || in->container_id[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "ContainerStats: container_id is empty");
    c = hp_store_ctr_lookup(d->store, in->container_id, err);
    if (c == NULL)
        return hp_err_wrap(err, "ContainerStats: container \"%s\"", in->container_id);
    out.stats = one(d, &a, c, err);
    if (out.stats != NULL)
        rc = hp_pb_reply(resp, &out, err);
    hp_ctr_rec_free(c);
    return rc;
}

int hp_cri_list_container_stats(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__ListContainerStatsRequest *in =
        hp_pb_decode(&runtime__v1__list_container_stats_request__descriptor, req, err);
    Runtime__V1__ListContainerStatsResponse out = RUNTIME__V1__LIST_CONTAINER_STATS_RESPONSE__INIT;
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
        if (hp_cri_map_in(&sel, (void *const *)in->filter->label_selector,
                          in->filter->n_label_selector, err) < 0)
            goto out;
        f.labels = &sel;
    }
    f.has_state = true;
    f.state = HP_CTR_RUNNING;
    if (hp_store_ctr_list(d->store, &f, &ctrs, &n, err) < 0)
        goto out;
    out.stats = HP_ARENA_ARRAY(&a, Runtime__V1__ContainerStats *, n);
    if (out.stats == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        hp_err e1 = HP_ERR_INIT;
        Runtime__V1__ContainerStats *s = one(d, &a, &ctrs[i], &e1);
        if (s == NULL) {
            /* one container that just exited must not fail the whole list */
            hp_debug("ListContainerStats: %s: %s", ctrs[i].id, e1.msg);
            continue;
        }
        out.stats[out.n_stats++] = s;
    }
    rc = hp_pb_reply(resp, &out, err);
out:
    hp_ctr_recs_free(ctrs, n);
    hp_strmap_clear(&sel);
    return rc;
}
