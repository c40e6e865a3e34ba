/* Round trips through the protobuf-c code generated from proto/api.proto, and
 * hand-built wire bytes that pin field numbers and wire types to what the
 * kubelet sends (CRI runtime.v1). */
#include "t.h"

#include "api.pb-c.h"

#include <stdint.h>

/* Packs any message into a malloc'd buffer; *len gets its size. */
static uint8_t *pack_msg(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf && protobuf_c_message_pack(m, buf) != *len) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* Looks up a map entry value by key in a protobuf-c map (repeated entries). */
#define MAP_GET(entries, n, k, out)                                                                \
    do {                                                                                           \
        (out) = NULL;                                                                              \
        for (size_t i_ = 0; i_ < (n); i_++)                                                        \
            if (strcmp((entries)[i_]->key, (k)) == 0)                                              \
                (out) = (entries)[i_]->value;                                                      \
    } while (0)

T_CASE(version_response_wire_bytes)
{
    Runtime__V1__VersionResponse v = RUNTIME__V1__VERSION_RESPONSE__INIT;
    v.version = "0.1.0";
    v.runtime_name = "hpcri";
    static const uint8_t want[] = {0x0a, 0x05, '0', '.', '1', '.', '0',
                                   0x12, 0x05, 'h', 'p', 'c', 'r', 'i'};
    size_t len;
    uint8_t *buf = pack_msg(&v.base, &len);
    T_ASSERT(buf != NULL);
    int same = bytes_eq(buf, len, want, sizeof want);
    free(buf);
    T_ASSERT(same);
}

T_CASE(version_response_decodes_hand_built_bytes)
{
    /* runtime_version = 3 (tag 0x1a), runtime_api_version = 4 (tag 0x22). */
    static const uint8_t in[] = {0x0a, 0x06, '0', '.', '1', '.',  '0',  '0', 0x12, 0x05,
                                 'h',  'p',  'c', 'r', 'i', 0x1a, 0x03, '1', '.',  '2',
                                 0x22, 0x06, 'v', '1', '.', '3',  '6',  '!'};
    Runtime__V1__VersionResponse *v = runtime__v1__version_response__unpack(NULL, sizeof in, in);
    T_ASSERT(v != NULL);
    int ok = strcmp(v->version, "0.1.00") == 0 && strcmp(v->runtime_name, "hpcri") == 0 &&
             strcmp(v->runtime_version, "1.2") == 0 &&
             strcmp(v->runtime_api_version, "v1.36!") == 0;
    runtime__v1__version_response__free_unpacked(v, NULL);
    T_ASSERT(ok);
}

T_CASE(version_response_roundtrip)
{
    Runtime__V1__VersionResponse v = RUNTIME__V1__VERSION_RESPONSE__INIT;
    v.version = "0.1.0";
    v.runtime_name = "hpcri";
    v.runtime_version = "0.1.0-dev";
    v.runtime_api_version = "v1";
    size_t len;
    uint8_t *buf = pack_msg(&v.base, &len);
    T_ASSERT(buf != NULL);
    Runtime__V1__VersionResponse *o = runtime__v1__version_response__unpack(NULL, len, buf);
    free(buf);
    T_ASSERT(o != NULL);
    char got[128];
    snprintf(got, sizeof got, "%s|%s|%s|%s", o->version, o->runtime_name, o->runtime_version,
             o->runtime_api_version);
    runtime__v1__version_response__free_unpacked(o, NULL);
    T_EQ_STR(got, "0.1.0|hpcri|0.1.0-dev|v1");
}

T_CASE(pod_sandbox_config_roundtrip)
{
    Runtime__V1__PodSandboxMetadata md = RUNTIME__V1__POD_SANDBOX_METADATA__INIT;
    md.name = "nginx";
    md.uid = "1f2e3d4c";
    md.namespace_ = "default";
    md.attempt = 3;

    Runtime__V1__PodSandboxConfig__LabelsEntry l1 =
        RUNTIME__V1__POD_SANDBOX_CONFIG__LABELS_ENTRY__INIT;
    Runtime__V1__PodSandboxConfig__LabelsEntry l2 =
        RUNTIME__V1__POD_SANDBOX_CONFIG__LABELS_ENTRY__INIT;
    l1.key = "app";
    l1.value = "web";
    l2.key = "io.kubernetes.pod.name";
    l2.value = "nginx";
    Runtime__V1__PodSandboxConfig__LabelsEntry *labels[] = {&l1, &l2};

    Runtime__V1__PortMapping pm = RUNTIME__V1__PORT_MAPPING__INIT;
    pm.protocol = RUNTIME__V1__PROTOCOL__UDP;
    pm.container_port = 53;
    pm.host_port = 5353;
    Runtime__V1__PortMapping *pms[] = {&pm};

    Runtime__V1__LinuxPodSandboxConfig lx = RUNTIME__V1__LINUX_POD_SANDBOX_CONFIG__INIT;
    lx.cgroup_parent = "/kubepods/besteffort/pod1f2e3d4c";

    Runtime__V1__PodSandboxConfig c = RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
    c.metadata = &md;
    c.hostname = "nginx-host";
    c.log_directory = "/var/log/pods/default_nginx_1f2e3d4c";
    c.n_labels = 2;
    c.labels = labels;
    c.n_port_mappings = 1;
    c.port_mappings = pms;
    c.linux = &lx;

    Runtime__V1__RunPodSandboxRequest req = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
    req.config = &c;
    req.runtime_handler = "slurm";

    size_t len;
    uint8_t *buf = pack_msg(&req.base, &len);
    T_ASSERT(buf != NULL);
    Runtime__V1__RunPodSandboxRequest *o =
        runtime__v1__run_pod_sandbox_request__unpack(NULL, len, buf);
    free(buf);
    T_ASSERT(o != NULL);
    int failed = 1;
    const Runtime__V1__PodSandboxConfig *oc = o->config;
    const char *app = NULL, *podname = NULL, *missing = "x";
    if (!oc || !oc->metadata || !oc->linux || oc->n_port_mappings != 1 || oc->n_labels != 2)
        goto out;
    MAP_GET(oc->labels, oc->n_labels, "app", app);
    MAP_GET(oc->labels, oc->n_labels, "io.kubernetes.pod.name", podname);
    MAP_GET(oc->labels, oc->n_labels, "nope", missing);
    failed =
        !(strcmp(o->runtime_handler, "slurm") == 0 && strcmp(oc->metadata->name, "nginx") == 0 &&
          strcmp(oc->metadata->uid, "1f2e3d4c") == 0 &&
          strcmp(oc->metadata->namespace_, "default") == 0 && oc->metadata->attempt == 3 &&
          strcmp(oc->hostname, "nginx-host") == 0 &&
          strcmp(oc->log_directory, "/var/log/pods/default_nginx_1f2e3d4c") == 0 && app &&
          strcmp(app, "web") == 0 && podname && strcmp(podname, "nginx") == 0 && missing == NULL &&
          oc->port_mappings[0]->protocol == RUNTIME__V1__PROTOCOL__UDP &&
          oc->port_mappings[0]->container_port == 53 && oc->port_mappings[0]->host_port == 5353 &&
          strcmp(oc->linux->cgroup_parent, "/kubepods/besteffort/pod1f2e3d4c") == 0 &&
          oc->windows == NULL && oc->dns_config == NULL && oc->n_annotations == 0);
out:
    runtime__v1__run_pod_sandbox_request__free_unpacked(o, NULL);
    T_ASSERT(!failed);
}

T_CASE(pod_sandbox_config_labels_wire)
{
    /* PodSandboxConfig.labels is field 6: tag 0x32, entry key=1 (0x0a),
     * value=2 (0x12); metadata is field 1 with name = 1. */
    static const uint8_t in[] = {0x0a, 0x03, 0x0a, 0x01, 'p', 0x32, 0x08, 0x0a, 0x01,
                                 'k',  0x12, 0x03, 'v',  'a', 'l',  0x12, 0x01, 'h'};
    Runtime__V1__PodSandboxConfig *c = runtime__v1__pod_sandbox_config__unpack(NULL, sizeof in, in);
    T_ASSERT(c != NULL);
    int ok = c->metadata && strcmp(c->metadata->name, "p") == 0 && c->n_labels == 1 &&
             strcmp(c->labels[0]->key, "k") == 0 && strcmp(c->labels[0]->value, "val") == 0 &&
             strcmp(c->hostname, "h") == 0 && c->n_annotations == 0;
    runtime__v1__pod_sandbox_config__free_unpacked(c, NULL);
    T_ASSERT(ok);
}

T_CASE(container_config_roundtrip)
{
    Runtime__V1__ContainerMetadata md = RUNTIME__V1__CONTAINER_METADATA__INIT;
    md.name = "app";
    md.attempt = 1;
    Runtime__V1__ImageSpec img = RUNTIME__V1__IMAGE_SPEC__INIT;
    img.image = "docker.io/library/busybox:latest";
    img.user_specified_image = "busybox";

    char *cmd[] = {"/bin/sh", "-c"};
    char *args[] = {"echo hi; sleep 1"};

    Runtime__V1__KeyValue e1 = RUNTIME__V1__KEY_VALUE__INIT, e2 = RUNTIME__V1__KEY_VALUE__INIT;
    e1.key = "PATH";
    e1.value = "/usr/bin:/bin";
    e2.key = "EMPTY";
    e2.value = "";
    Runtime__V1__KeyValue *envs[] = {&e1, &e2};

    Runtime__V1__IDMapping idm = RUNTIME__V1__IDMAPPING__INIT;
    idm.host_id = 100000;
    idm.container_id = 0;
    idm.length = 65536;
    Runtime__V1__IDMapping *idms[] = {&idm};
    Runtime__V1__Mount m1 = RUNTIME__V1__MOUNT__INIT, m2 = RUNTIME__V1__MOUNT__INIT;
    m1.container_path = "/data";
    m1.host_path = "/scratch/job42";
    m1.readonly = 1;
    m1.propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER;
    m1.n_uidmappings = 1;
    m1.uidmappings = idms;
    m2.container_path = "/etc/hosts";
    m2.host_path = "/var/lib/hpcri/hosts";
    m2.selinux_relabel = 1;
    Runtime__V1__Mount *mounts[] = {&m1, &m2};

    Runtime__V1__LinuxContainerResources res = RUNTIME__V1__LINUX_CONTAINER_RESOURCES__INIT;
    res.cpu_quota = 50000;
    res.cpu_period = 100000;
    res.memory_limit_in_bytes = 1LL << 30;
    res.oom_score_adj = -997;
    Runtime__V1__Int64Value uid = RUNTIME__V1__INT64_VALUE__INIT;
    uid.value = 0;
    Runtime__V1__LinuxContainerSecurityContext sc =
        RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
    sc.run_as_user = &uid;
    sc.no_new_privs = 1;
    Runtime__V1__LinuxContainerConfig lx = RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
    lx.resources = &res;
    lx.security_context = &sc;

    Runtime__V1__ContainerConfig c = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    c.metadata = &md;
    c.image = &img;
    c.n_command = 2;
    c.command = cmd;
    c.n_args = 1;
    c.args = args;
    c.working_dir = "/work";
    c.n_envs = 2;
    c.envs = envs;
    c.n_mounts = 2;
    c.mounts = mounts;
    c.log_path = "app/1.log";
    c.tty = 1;
    c.linux = &lx;
    c.stop_signal = RUNTIME__V1__SIGNAL__SIGUSR1;

    size_t len;
    uint8_t *buf = pack_msg(&c.base, &len);
    T_ASSERT(buf != NULL);
    Runtime__V1__ContainerConfig *o = runtime__v1__container_config__unpack(NULL, len, buf);
    free(buf);
    T_ASSERT(o != NULL);
    int ok = o->metadata && strcmp(o->metadata->name, "app") == 0 && o->metadata->attempt == 1 &&
             o->image && strcmp(o->image->image, "docker.io/library/busybox:latest") == 0 &&
             strcmp(o->image->user_specified_image, "busybox") == 0 && o->n_command == 2 &&
             strcmp(o->command[0], "/bin/sh") == 0 && strcmp(o->command[1], "-c") == 0 &&
             o->n_args == 1 && strcmp(o->args[0], "echo hi; sleep 1") == 0 &&
             strcmp(o->working_dir, "/work") == 0 && o->n_envs == 2 &&
             strcmp(o->envs[0]->key, "PATH") == 0 &&
             strcmp(o->envs[0]->value, "/usr/bin:/bin") == 0 &&
             strcmp(o->envs[1]->key, "EMPTY") == 0 && strcmp(o->envs[1]->value, "") == 0 &&
             o->n_mounts == 2 && strcmp(o->mounts[0]->container_path, "/data") == 0 &&
             strcmp(o->mounts[0]->host_path, "/scratch/job42") == 0 && o->mounts[0]->readonly &&
             !o->mounts[0]->selinux_relabel &&
             o->mounts[0]->propagation ==
                 RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER &&
             o->mounts[0]->n_uidmappings == 1 && o->mounts[0]->uidmappings[0]->host_id == 100000 &&
             o->mounts[0]->uidmappings[0]->length == 65536 && o->mounts[0]->n_gidmappings == 0 &&
             strcmp(o->mounts[1]->container_path, "/etc/hosts") == 0 && !o->mounts[1]->readonly &&
             o->mounts[1]->selinux_relabel && strcmp(o->log_path, "app/1.log") == 0 && o->tty &&
             !o->stdin && !o->stdin_once && o->linux && o->linux->resources &&
             o->linux->resources->cpu_quota == 50000 && o->linux->resources->cpu_period == 100000 &&
             o->linux->resources->memory_limit_in_bytes == (1LL << 30) &&
             o->linux->resources->oom_score_adj == -997 && o->linux->security_context &&
             o->linux->security_context->run_as_user &&
             o->linux->security_context->run_as_user->value == 0 &&
             o->linux->security_context->run_as_group == NULL &&
             o->linux->security_context->no_new_privs &&
             o->stop_signal == RUNTIME__V1__SIGNAL__SIGUSR1 && o->windows == NULL;
    runtime__v1__container_config__free_unpacked(o, NULL);
    T_ASSERT(ok);
}

T_CASE(container_config_field_numbers_on_wire)
{
    /* envs = 6 (tag 0x32), mounts = 7 (0x3a), tty = 14 (0x70 varint),
     * stop_signal = 18 (tag 0x90 0x01 varint; SIGKILL = 13). */
    Runtime__V1__KeyValue e = RUNTIME__V1__KEY_VALUE__INIT;
    e.key = "A";
    e.value = "b";
    Runtime__V1__KeyValue *envs[] = {&e};
    Runtime__V1__Mount m = RUNTIME__V1__MOUNT__INIT;
    m.container_path = "/c";
    m.readonly = 1;
    Runtime__V1__Mount *mounts[] = {&m};
    Runtime__V1__ContainerConfig c = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    c.n_envs = 1;
    c.envs = envs;
    c.n_mounts = 1;
    c.mounts = mounts;
    c.tty = 1;
    c.stop_signal = RUNTIME__V1__SIGNAL__SIGKILL;
    static const uint8_t want[] = {0x32, 0x06, 0x0a, 0x01, 'A',  0x12, 0x01, 'b',  0x3a, 0x06, 0x0a,
                                   0x02, '/',  'c',  0x18, 0x01, 0x70, 0x01, 0x90, 0x01, 0x0d};
    size_t len;
    uint8_t *buf = pack_msg(&c.base, &len);
    T_ASSERT(buf != NULL);
    int same = bytes_eq(buf, len, want, sizeof want);
    free(buf);
    T_ASSERT(same);
}

T_CASE(exec_sync_response_binary_and_negative_exit)
{
    static const uint8_t out[] = {'a', 0x00, 0xff, '\n'};
    Runtime__V1__ExecSyncResponse r = RUNTIME__V1__EXEC_SYNC_RESPONSE__INIT;
    r.stdout.data = (uint8_t *)out;
    r.stdout.len = sizeof out;
    r.exit_code = -1;
    /* stdout = 1 (bytes), stderr = 2 absent, exit_code = 3: int32 -1 is a
     * sign-extended 10-byte varint. */
    static const uint8_t want[] = {0x0a, 0x04, 'a',  0x00, 0xff, '\n', 0x18, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    size_t len;
    uint8_t *buf = pack_msg(&r.base, &len);
    T_ASSERT(buf != NULL);
    int same = bytes_eq(buf, len, want, sizeof want);
    Runtime__V1__ExecSyncResponse *o = runtime__v1__exec_sync_response__unpack(NULL, len, buf);
    free(buf);
    T_ASSERT(same);
    T_ASSERT(o != NULL);
    int ok = o->stdout.len == 4 && memcmp(o->stdout.data, out, 4) == 0 && o->stderr.len == 0 &&
             o->exit_code == -1;
    runtime__v1__exec_sync_response__free_unpacked(o, NULL);
    T_ASSERT(ok);
}

T_CASE(container_status_high_field_numbers)
{
    /* exit_code = 7, image_id = 17 (tag 0x8a 0x01), stop_signal = 19
     * (tag 0x98 0x01), user = 18 (tag 0x92 0x01) with linux = 1 { uid = 1 }. */
    static const uint8_t in[] = {0x38, 0x89, 0x01, 0x8a, 0x01, 0x03, 's',  'h',  'a', 0x92,
                                 0x01, 0x04, 0x0a, 0x02, 0x08, 0x07, 0x98, 0x01, 0x17};
    Runtime__V1__ContainerStatus *s = runtime__v1__container_status__unpack(NULL, sizeof in, in);
    T_ASSERT(s != NULL);
    int ok = s->exit_code == 137 && strcmp(s->image_id, "sha") == 0 && s->user && s->user->linux &&
             s->user->linux->uid == 7 && s->stop_signal == RUNTIME__V1__SIGNAL__SIGTERM &&
             s->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED;
    runtime__v1__container_status__free_unpacked(s, NULL);
    T_ASSERT(ok);
}

T_CASE(truncated_input_is_rejected)
{
    Runtime__V1__VersionResponse v = RUNTIME__V1__VERSION_RESPONSE__INIT;
    v.version = "0.1.0";
    v.runtime_name = "hpcri";
    size_t len;
    uint8_t *buf = pack_msg(&v.base, &len);
    T_ASSERT(buf != NULL);
    Runtime__V1__VersionResponse *o = runtime__v1__version_response__unpack(NULL, len - 2, buf);
    free(buf);
    if (o)
        runtime__v1__version_response__free_unpacked(o, NULL);
    T_ASSERT(o == NULL);
}

T_CASE(unknown_fields_are_skipped)
{
    /* A newer kubelet may send fields we do not know: field 99 varint then
     * field 100 bytes, around a known container_id = 1. */
    static const uint8_t in[] = {0x98, 0x06, 0x2a, 0x0a, 0x02, 'c',
                                 '1',  0xa2, 0x06, 0x02, 'x',  'y'};
    Runtime__V1__StartContainerRequest *r =
        runtime__v1__start_container_request__unpack(NULL, sizeof in, in);
    T_ASSERT(r != NULL);
    int ok = strcmp(r->container_id, "c1") == 0;
    runtime__v1__start_container_request__free_unpacked(r, NULL);
    T_ASSERT(ok);
}

T_CASE(service_descriptors)
{
    const ProtobufCServiceDescriptor *rs = &runtime__v1__runtime_service__descriptor;
    const ProtobufCServiceDescriptor *is = &runtime__v1__image_service__descriptor;
    T_EQ_STR(rs->name, "runtime.v1.RuntimeService");
    T_EQ_STR(is->name, "runtime.v1.ImageService");
    T_EQ_INT(rs->n_methods, 35);
    T_EQ_INT(is->n_methods, 6);
    const ProtobufCMethodDescriptor *m =
        protobuf_c_service_descriptor_get_method_by_name(rs, "RunPodSandbox");
    T_ASSERT(m != NULL);
    T_ASSERT(m->input == &runtime__v1__run_pod_sandbox_request__descriptor);
    T_ASSERT(m->output == &runtime__v1__run_pod_sandbox_response__descriptor);
    m = protobuf_c_service_descriptor_get_method_by_name(rs, "GetContainerEvents");
    T_ASSERT(m != NULL);
    T_ASSERT(m->input == &runtime__v1__get_events_request__descriptor);
    T_ASSERT(m->output == &runtime__v1__container_event_response__descriptor);
    m = protobuf_c_service_descriptor_get_method_by_name(is, "PullImage");
    T_ASSERT(m != NULL);
    T_ASSERT(m->output == &runtime__v1__pull_image_response__descriptor);
    T_ASSERT(protobuf_c_service_descriptor_get_method_by_name(rs, "PullImage") == NULL);
}

T_MAIN()
