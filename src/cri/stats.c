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

/* ---------- pods: the sum of their running containers ---------- */

/* Stats of pod p in the arena: the ContainerStats of its containers among
 * ctrs (running ones; the messages borrow from p and ctrs, which must
 * outlive the reply) and their sums (CPU, memory: set when at least one
 * container has it; timestamp = the newest sample).  NULL with err. */
static Runtime__V1__PodSandboxStats *pod_one(hp_daemon *d, hp_arena *a, const hp_pod_rec *p,
                                             const hp_ctr_rec *ctrs, size_t n, hp_err *err)
{
    Runtime__V1__PodSandboxStats *o = HP_ARENA_NEW(a, Runtime__V1__PodSandboxStats);
    Runtime__V1__PodSandboxAttributes *attr = HP_ARENA_NEW(a, Runtime__V1__PodSandboxAttributes);
    Runtime__V1__PodSandboxMetadata *md = HP_ARENA_NEW(a, Runtime__V1__PodSandboxMetadata);
    Runtime__V1__LinuxPodSandboxStats *lx = HP_ARENA_NEW(a, Runtime__V1__LinuxPodSandboxStats);

    if (o == NULL || attr == NULL || md == NULL || lx == NULL)
        goto oom;
    runtime__v1__pod_sandbox_stats__init(o);
    runtime__v1__pod_sandbox_attributes__init(attr);
    runtime__v1__pod_sandbox_metadata__init(md);
    runtime__v1__linux_pod_sandbox_stats__init(lx);
    md->name = p->name;
    md->namespace_ = p->ns;
    md->uid = p->uid;
    md->attempt = p->attempt;
    attr->id = (char *)p->id;
    attr->metadata = md;
    if (hp_cri_map_out(a, &runtime__v1__pod_sandbox_attributes__labels_entry__descriptor,
                       &p->labels, (void ***)&attr->labels, &attr->n_labels) < 0 ||
        hp_cri_map_out(a, &runtime__v1__pod_sandbox_attributes__annotations_entry__descriptor,
                       &p->annotations, (void ***)&attr->annotations, &attr->n_annotations) < 0)
        goto oom;
    o->attributes = attr;
    o->linux = lx;
    lx->containers = HP_ARENA_ARRAY(a, Runtime__V1__ContainerStats *, n ? n : 1);
    if (lx->containers == NULL)
        goto oom;
    uint64_t cpu = 0, ws = 0, rss = 0, usage = 0;
    int64_t cpu_ts = 0, mem_ts = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ctrs[i].pod_id, p->id) != 0)
            continue;
        hp_err e1 = HP_ERR_INIT;
        Runtime__V1__ContainerStats *s = one(d, a, &ctrs[i], &e1);
        if (s == NULL) {
            hp_debug("PodSandboxStats: %s: %s", ctrs[i].id, e1.msg);
            continue;
        }
        lx->containers[lx->n_containers++] = s;
        if (s->cpu && s->cpu->usage_core_nano_seconds) {
            cpu += s->cpu->usage_core_nano_seconds->value;
            cpu_ts = s->cpu->timestamp > cpu_ts ? s->cpu->timestamp : cpu_ts;
        }
        if (s->memory && s->memory->working_set_bytes) {
            ws += s->memory->working_set_bytes->value;
            rss += s->memory->rss_bytes ? s->memory->rss_bytes->value : 0;
            usage += s->memory->usage_bytes ? s->memory->usage_bytes->value : 0;
            mem_ts = s->memory->timestamp > mem_ts ? s->memory->timestamp : mem_ts;
        }
    }
    if (cpu_ts) {
        Runtime__V1__CpuUsage *c = HP_ARENA_NEW(a, Runtime__V1__CpuUsage);
        if (c == NULL)
            goto oom;
        runtime__v1__cpu_usage__init(c);
        c->timestamp = cpu_ts;
        if ((c->usage_core_nano_seconds = u64(a, cpu)) == NULL)
            goto oom;
        lx->cpu = c;
    }
    if (mem_ts) {
        Runtime__V1__MemoryUsage *m = HP_ARENA_NEW(a, Runtime__V1__MemoryUsage);
        if (m == NULL)
            goto oom;
        runtime__v1__memory_usage__init(m);
        m->timestamp = mem_ts;
        if ((m->working_set_bytes = u64(a, ws)) == NULL || (m->rss_bytes = u64(a, rss)) == NULL ||
            (m->usage_bytes = u64(a, usage)) == NULL)
            goto oom;
        lx->memory = m;
    }
    return o;
oom:
    hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
}

/* The running containers of pod_id (NULL = of every pod) into *ctrs
 * (owned by the caller: hp_ctr_recs_free). */
static int running_ctrs(hp_daemon *d, const char *pod_id, hp_ctr_rec **ctrs, size_t *n, hp_err *err)
{
    hp_ctr_filter f = {0};
    f.pod_id_prefix = pod_id;
    f.has_state = true;
    f.state = HP_CTR_RUNNING;
    return hp_store_ctr_list(d->store, &f, ctrs, n, err);
}

int hp_cri_pod_sandbox_stats(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__PodSandboxStatsRequest *in =
        hp_pb_decode(&runtime__v1__pod_sandbox_stats_request__descriptor, req, err);
    Runtime__V1__PodSandboxStatsResponse out = RUNTIME__V1__POD_SANDBOX_STATS_RESPONSE__INIT;
    _cleanup_arena_ hp_arena a = {0};
    int rc = -1;

    if (in == NULL)
        return -1;
    if (in->pod_sandbox_id == NULL || in->pod_sandbox_id[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "PodSandboxStats: pod_sandbox_id is empty");
    hp_pod_rec *p = hp_store_pod_lookup(d->store, in->pod_sandbox_id, err);
    if (p == NULL)
        return hp_err_wrap(err, "PodSandboxStats: pod sandbox \"%s\"", in->pod_sandbox_id);
    hp_ctr_rec *ctrs = NULL;
    size_t n = 0;
    if (running_ctrs(d, p->id, &ctrs, &n, err) == 0) {
        out.stats = pod_one(d, &a, p, ctrs, n, err);
        if (out.stats != NULL)
            rc = hp_pb_reply(resp, &out, err);
    }
    hp_ctr_recs_free(ctrs, n);
    hp_pod_rec_free(p);
    return rc;
}

int hp_cri_list_pod_sandbox_stats(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__ListPodSandboxStatsRequest *in =
        hp_pb_decode(&runtime__v1__list_pod_sandbox_stats_request__descriptor, req, err);
    Runtime__V1__ListPodSandboxStatsResponse out =
        RUNTIME__V1__LIST_POD_SANDBOX_STATS_RESPONSE__INIT;
    _cleanup_arena_ hp_arena a = {0};
    hp_strmap sel = {0};
    hp_pod_filter f = {0};
    hp_pod_rec *pods = NULL;
    hp_ctr_rec *ctrs = NULL;
    size_t n = 0, nc = 0;
    int rc = -1;

    if (in == NULL)
        return -1;
    if (in->filter) {
        f.id_prefix = in->filter->id;
        if (hp_cri_map_in(&sel, (void *const *)in->filter->label_selector,
                          in->filter->n_label_selector, err) < 0)
            goto out;
        f.labels = &sel;
    }
    f.has_state = true;
    f.state = HP_POD_READY;
    if (hp_store_pod_list(d->store, &f, &pods, &n, err) < 0 ||
        running_ctrs(d, NULL, &ctrs, &nc, err) < 0)
        goto out;
    out.stats = HP_ARENA_ARRAY(&a, Runtime__V1__PodSandboxStats *, n ? n : 1);
    if (out.stats == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        hp_err e1 = HP_ERR_INIT;
        Runtime__V1__PodSandboxStats *s = pod_one(d, &a, &pods[i], ctrs, nc, &e1);
        if (s == NULL) {
            hp_debug("ListPodSandboxStats: %s: %s", pods[i].id, e1.msg);
            continue;
        }
        out.stats[out.n_stats++] = s;
    }
    rc = hp_pb_reply(resp, &out, err);
out:
    hp_ctr_recs_free(ctrs, nc);
    hp_pod_recs_free(pods, n);
    hp_strmap_clear(&sel);
    return rc;
}
