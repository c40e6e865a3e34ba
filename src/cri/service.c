/* CRI service registration and the runtime-level calls (Version, Status,
 * UpdateRuntimeConfig).  Every method of runtime.v1's two services is
 * registered from the generated service descriptors, so a method this
 * version does not implement answers UNIMPLEMENTED naming itself rather than
 * "unknown method". */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.pb-c.h"
#include "cri/cri_internal.h"
#include "cri/pb.h"
#include "util/cleanup.h"

static int cri_version(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    _cleanup_pb_ Runtime__V1__VersionRequest *in =
        hp_pb_decode(&runtime__v1__version_request__descriptor, req, err);
    Runtime__V1__VersionResponse out = RUNTIME__V1__VERSION_RESPONSE__INIT;
    (void)ud;
    if (in == NULL)
        return -1;
    out.version = "0.1.0";
    out.runtime_name = "hpcri";
    out.runtime_version = HPCRI_VERSION;
    out.runtime_api_version = "v1";
    return hp_pb_reply(resp, &out, err);
}

static int cri_status(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__StatusRequest *in =
        hp_pb_decode(&runtime__v1__status_request__descriptor, req, err);
    Runtime__V1__StatusResponse out = RUNTIME__V1__STATUS_RESPONSE__INIT;
    Runtime__V1__RuntimeStatus status = RUNTIME__V1__RUNTIME_STATUS__INIT;
    Runtime__V1__RuntimeCondition rt = RUNTIME__V1__RUNTIME_CONDITION__INIT;
    Runtime__V1__RuntimeCondition net = RUNTIME__V1__RUNTIME_CONDITION__INIT;
    Runtime__V1__RuntimeCondition *conds[2] = {&rt, &net};
    Runtime__V1__StatusResponse__InfoEntry entry = RUNTIME__V1__STATUS_RESPONSE__INFO_ENTRY__INIT;
    Runtime__V1__StatusResponse__InfoEntry *entries[1] = {&entry};
    _cleanup_free_ char *info = NULL;
    char rt_reason[64] = "", rt_msg[512] = "";
    int rc;

    if (in == NULL)
        return -1;

    rt.type = "RuntimeReady";
    rt.status = hp_cri_runtime_ready(d, rt_reason, sizeof rt_reason, rt_msg, sizeof rt_msg);
    rt.reason = rt_reason;
    rt.message = rt_msg;
    /* hpcri gives pods the node's network (host) or a private network
     * namespace with loopback only; neither needs a CNI plugin, so the
     * network is ready whenever the daemon is. */
    net.type = "NetworkReady";
    net.status = 1;
    net.reason = "";
    net.message = "";
    status.n_conditions = 2;
    status.conditions = conds;
    out.status = &status;

    if (in->verbose) {
        info = hp_cri_status_info(d, err);
        if (info == NULL)
            return -1;
        entry.key = "info";
        entry.value = info;
        out.n_info = 1;
        out.info = entries;
    }
    rc = hp_pb_reply(resp, &out, err);
    return rc;
}

static int cri_update_runtime_config(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__UpdateRuntimeConfigRequest *in =
        hp_pb_decode(&runtime__v1__update_runtime_config_request__descriptor, req, err);
    Runtime__V1__UpdateRuntimeConfigResponse out =
        RUNTIME__V1__UPDATE_RUNTIME_CONFIG_RESPONSE__INIT;
    const char *cidr;

    if (in == NULL)
        return -1;
    if (in->runtime_config == NULL || in->runtime_config->network_config == NULL)
        return hp_pb_reply(resp, &out, err); /* nothing to change */
    cidr = in->runtime_config->network_config->pod_cidr;
    if (cidr == NULL)
        cidr = "";
    if (hp_cri_validate_cidrs(cidr, err) < 0)
        return -1;
    if (hp_store_kv_set(d->store, "pod_cidr", cidr, err) < 0)
        return -1;
    hp_info("UpdateRuntimeConfig: pod CIDR set to \"%s\"", cidr);
    return hp_pb_reply(resp, &out, err);
}

/* --- registration ------------------------------------------------------- */

struct impl {
    const char *name;
    hp_rpc_unary_fn fn;
    int flags;
};

static const struct impl runtime_impls[] = {
    {"Version", cri_version, HP_RPC_INLINE},
    {"Status", cri_status, HP_RPC_BLOCKING},
    {"UpdateRuntimeConfig", cri_update_runtime_config, HP_RPC_INLINE},
    {"ListPodSandbox", hp_cri_list_pod_sandbox, HP_RPC_INLINE},
    /* these ask the backend for live state, which may block (remote, Slurm) */
    {"PodSandboxStatus", hp_cri_pod_sandbox_status, HP_RPC_BLOCKING},
    {"RunPodSandbox", hp_cri_run_pod_sandbox, HP_RPC_BLOCKING},
    {"ListContainers", hp_cri_list_containers, HP_RPC_BLOCKING},
    {"ContainerStatus", hp_cri_container_status, HP_RPC_BLOCKING},
    {"StopPodSandbox", hp_cri_stop_pod_sandbox, HP_RPC_BLOCKING},
    {"RemovePodSandbox", hp_cri_remove_pod_sandbox, HP_RPC_BLOCKING},
    {"CreateContainer", hp_cri_create_container, HP_RPC_BLOCKING},
    {"StartContainer", hp_cri_start_container, HP_RPC_BLOCKING},
    {"StopContainer", hp_cri_stop_container_rpc, HP_RPC_BLOCKING},
    {"RemoveContainer", hp_cri_remove_container, HP_RPC_BLOCKING},
    {"ExecSync", hp_cri_exec_sync, HP_RPC_BLOCKING},
    {"Exec", hp_cri_exec, HP_RPC_BLOCKING},
    {"Attach", hp_cri_attach, HP_RPC_BLOCKING},
    {"PortForward", hp_cri_port_forward, HP_RPC_BLOCKING},
    {"ReopenContainerLog", hp_cri_reopen_container_log, HP_RPC_BLOCKING},
    {"ContainerStats", hp_cri_container_stats, HP_RPC_BLOCKING},
    {"ListContainerStats", hp_cri_list_container_stats, HP_RPC_BLOCKING},
    {"PodSandboxStats", hp_cri_pod_sandbox_stats, HP_RPC_BLOCKING},
    {"ListPodSandboxStats", hp_cri_list_pod_sandbox_stats, HP_RPC_BLOCKING},
    {NULL, NULL, 0},
};

static const struct impl image_impls[] = {
    {"ImageFsInfo", hp_cri_image_fs_info, HP_RPC_BLOCKING},
    {"ListImages", hp_cri_list_images, HP_RPC_INLINE},
    {"ImageStatus", hp_cri_image_status, HP_RPC_INLINE},
    {"PullImage", hp_cri_pull_image, HP_RPC_BLOCKING},
    {"RemoveImage", hp_cri_remove_image, HP_RPC_BLOCKING},
    {NULL, NULL, 0},
};

/* Upstream's server-streaming methods: GetContainerEvents and the Stream*
 * list calls (protobuf-c's descriptors do not record streaming). */
static const char *const streaming_methods[] = {"GetContainerEvents", NULL};

static int unimplemented(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    (void)ud;
    (void)resp;
    return hp_err_set(err, HP_UNIMPLEMENTED, "%s is not implemented by hpcri %s yet", req->method,
                      HPCRI_VERSION);
}

static int unimplemented_stream(void *ud, const hp_rpc_req *req, hp_rpc_stream *s, hp_err *err)
{
    (void)s;
    return unimplemented(ud, req, NULL, err);
}

static bool is_streaming(const char *name)
{
    if (strncmp(name, "Stream", 6) == 0)
        return true;
    for (int i = 0; streaming_methods[i]; i++)
        if (strcmp(streaming_methods[i], name) == 0)
            return true;
    return false;
}

static int register_service(hp_daemon *d, const ProtobufCServiceDescriptor *svc,
                            const struct impl *impls, hp_err *err)
{
    for (unsigned i = 0; i < svc->n_methods; i++) {
        const char *name = svc->methods[i].name;
        char path[256];
        hp_rpc_method m = {.path = path, .ud = d};
        snprintf(path, sizeof path, "/%s/%s", svc->name, name);
        if (is_streaming(name)) {
            m.kind = HP_RPC_SERVER_STREAM;
            m.stream = hp_cri_stream_impl(name);
            if (m.stream == NULL)
                m.stream = unimplemented_stream;
        } else {
            m.kind = HP_RPC_UNARY;
            m.unary = unimplemented;
            for (const struct impl *p = impls; p->name; p++) {
                if (strcmp(p->name, name) == 0) {
                    m.unary = p->fn;
                    m.flags = p->flags;
                }
            }
        }
        if (hp_rpc_server_register(d->rpc, &m, err) < 0)
            return -1;
    }
    return 0;
}

int hp_cri_register(hp_daemon *d, hp_err *err)
{
    if (register_service(d, &runtime__v1__runtime_service__descriptor, runtime_impls, err) < 0)
        return -1;
    if (register_service(d, &runtime__v1__image_service__descriptor, image_impls, err) < 0)
        return -1;
    return hp_cri_register_admin(d, err);
}
