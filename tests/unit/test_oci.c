/* Tests of the oci backend: spec generation (pure, any user) and the real
 * thing (root: runc + conmon + busybox rootfs from tests/tools/mkrootfs.sh). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <regex.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/oci/oci.h"
#include "backend/oci/proc.h"
#include "backend/oci/spec.h"
#include "t.h"

/* ---------- helpers ---------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *strs_join(json_t *arr)
{
    static __thread char buf[4096];
    buf[0] = 0;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (i)
            strncat(buf, " ", sizeof(buf) - strlen(buf) - 1);
        strncat(buf, json_string_value(v), sizeof(buf) - strlen(buf) - 1);
    }
    return buf;
}

static bool arr_has(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (json_is_string(v) &&
                                      strcmp(json_string_value(v), s) == 0) return true;
    return false;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* A fake rootfs with etc/passwd and etc/group only. */
static void fake_rootfs(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/hpcri-oci-spec-XXXXXX");
    if (!mkdtemp(dir))
        return;
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/etc", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/etc/passwd", dir);
    write_text(p, "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"
                  "svc:x:500:500::/:/bin/false\n");
    snprintf(p, sizeof(p), "%s/etc/group", dir);
    write_text(p, "root:x:0:\napp:x:1001:\nextra:x:2000:app,svc\nother:x:3000:svc\n");
}

static void rm_tree(const char *dir)
{
    hp_err err = HP_ERR_INIT;
    hp_proc_result r;
    char *argv[] = {"/bin/rm", "-rf", (char *)dir, NULL};
    if (hp_proc_run(argv, NULL, &r, &err) == 0)
        hp_proc_result_clear(&r);
}

static hp_oci_spec_opts base_opts(const char *rootfs)
{
    hp_oci_spec_opts o;
    memset(&o, 0, sizeof(o));
    o.root_path = "rootfs";
    o.rootfs_dir = rootfs;
    o.min_oom_score_adj = -1000;
    return o;
}

/* ---------- spec tests ---------- */

T_CASE(spec_command_args_rules)
{
    char *ep[] = {"/entry", "-x"}, *cmd[] = {"default-cmd"};
    hp_oci_image_config img = {.entrypoint = ep, .n_entrypoint = 2, .cmd = cmd, .n_cmd = 1};
    char *command[] = {"/bin/cmd"}, *args[] = {"a1", "a2"};
    hp_oci_spec_opts o = base_opts("/nonexistent");
    hp_err err = HP_ERR_INIT;
    struct {
        size_t nc, na;
        const char *want;
    } cases[] = {
        {0, 0, "/entry -x default-cmd"}, /* image defaults */
        {0, 2, "/entry -x a1 a2"},       /* args replace CMD */
        {1, 0, "/bin/cmd"},              /* command replaces ENTRYPOINT, drops CMD */
        {1, 2, "/bin/cmd a1 a2"},        /* command + args */
    };
    for (size_t i = 0; i < 4; i++) {
        Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
        cfg.n_command = cases[i].nc;
        cfg.command = command;
        cfg.n_args = cases[i].na;
        cfg.args = args;
        json_t *s = hp_oci_spec_container(NULL, &cfg, &img, &o, &err);
        T_ASSERT(s != NULL);
        T_EQ_STR(strs_join(json_object_get(json_object_get(s, "process"), "args")), cases[i].want);
        json_decref(s);
    }
    /* nothing at all: INVALID_ARGUMENT */
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    T_ASSERT(hp_oci_spec_container(NULL, &cfg, NULL, &o, &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_ASSERT(strstr(err.msg, "no command") != NULL);
}

T_CASE(spec_env_merge_and_workdir)
{
    char *ienv[] = {"PATH=/img/bin", "A=image", "B=image"};
    hp_oci_image_config img = {.env = ienv, .n_env = 3, .working_dir = "/srv"};
    char *cmd[] = {"x"};
    img.cmd = cmd;
    img.n_cmd = 1;
    Runtime__V1__KeyValue kv1 = RUNTIME__V1__KEY_VALUE__INIT, kv2 = RUNTIME__V1__KEY_VALUE__INIT;
    kv1.key = "B";
    kv1.value = "config";
    kv2.key = "C";
    kv2.value = "x=y";
    Runtime__V1__KeyValue *envs[] = {&kv1, &kv2};
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.envs = envs;
    cfg.n_envs = 2;
    hp_oci_spec_opts o = base_opts("/nonexistent");
    hp_err err = HP_ERR_INIT;
    json_t *s = hp_oci_spec_container(NULL, &cfg, &img, &o, &err);
    T_ASSERT(s != NULL);
    json_t *proc = json_object_get(s, "process");
    T_EQ_STR(strs_join(json_object_get(proc, "env")), "PATH=/img/bin A=image B=config C=x=y");
    T_EQ_STR(json_string_value(json_object_get(proc, "cwd")), "/srv");
    json_decref(s);
    /* no PATH anywhere: a default one; config working_dir wins */
    img.n_env = 0;
    cfg.working_dir = "/work";
    s = hp_oci_spec_container(NULL, &cfg, &img, &o, &err);
    T_ASSERT(s != NULL);
    proc = json_object_get(s, "process");
    T_ASSERT(strncmp(json_string_value(json_array_get(json_object_get(proc, "env"), 0)),
                     "PATH=/usr/local/sbin:", 21) == 0);
    T_EQ_STR(json_string_value(json_object_get(proc, "cwd")), "/work");
    json_decref(s);
    cfg.working_dir = "relative";
    T_ASSERT(hp_oci_spec_container(NULL, &cfg, &img, &o, &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
}

T_CASE(spec_user_resolution_from_rootfs)
{
    char root[64];
    fake_rootfs(root, sizeof(root));
    char *cmd[] = {"x"};
    hp_oci_image_config img = {.cmd = cmd, .n_cmd = 1};
    Runtime__V1__LinuxContainerSecurityContext sc =
        RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
    Runtime__V1__LinuxContainerConfig lc = RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
    lc.security_context = &sc;
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.linux = &lc;
    hp_oci_spec_opts o = base_opts(root);
    hp_err err = HP_ERR_INIT;

    sc.run_as_username = "app";
    json_t *s = hp_oci_spec_container(NULL, &cfg, &img, &o, &err);
    T_ASSERT(s != NULL);
    json_t *u = json_object_get(json_object_get(s, "process"), "user");
    T_EQ_INT(json_integer_value(json_object_get(u, "uid")), 1000);
    T_EQ_INT(json_integer_value(json_object_get(u, "gid")), 1001);
    T_EQ_INT(json_integer_value(json_array_get(json_object_get(u, "additionalGids"), 0)), 2000);
    json_decref(s);

    /* image USER name:group, resolved in the rootfs (svc is not a host user) */
    sc.run_as_username = "";
    img.user = "svc:other";
    s = hp_oci_spec_container(NULL, &cfg, &img, &o, &err);
    T_ASSERT(s != NULL);
    u = json_object_get(json_object_get(s, "process"), "user");
    T_EQ_INT(json_integer_value(json_object_get(u, "uid")), 500);
    T_EQ_INT(json_integer_value(json_object_get(u, "gid")), 3000);
    json_decref(s);

    /* run_as_user numeric + run_as_group + supplemental groups */
    Runtime__V1__Int64Value uid = RUNTIME__V1__INT64_VALUE__INIT,
                            gid = RUNTIME__V1__INT64_VALUE__INIT;
    uid.value = 1000;
    gid.value = 42;
    int64_t sup[] = {7};
    sc.run_as_user = &uid;
    sc.run_as_group = &gid;
    sc.supplemental_groups = sup;
    sc.n_supplemental_groups = 1;
    s = hp_oci_spec_container(NULL, &cfg, &img, &o, &err);
    T_ASSERT(s != NULL);
    u = json_object_get(json_object_get(s, "process"), "user");
    T_EQ_INT(json_integer_value(json_object_get(u, "uid")), 1000);
    T_EQ_INT(json_integer_value(json_object_get(u, "gid")), 42);
    json_t *ag = json_object_get(u, "additionalGids");
    T_EQ_INT(json_array_size(ag), 2); /* 2000 from /etc/group + 7 */
    json_decref(s);

    /* unknown user name */
    sc.run_as_user = NULL;
    sc.run_as_username = "nosuchuser";
    T_ASSERT(hp_oci_spec_container(NULL, &cfg, &img, &o, &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_ASSERT(strstr(err.msg, "nosuchuser") != NULL);
    rm_tree(root);
}

T_CASE(spec_capabilities_add_drop_all)
{
    hp_err err = HP_ERR_INIT;
    json_t *c = hp_oci_capabilities(NULL, false, &err);
    T_ASSERT(c && arr_has(c, "CAP_CHOWN") && !arr_has(c, "CAP_SYS_ADMIN"));
    T_EQ_INT(json_array_size(c), 14);
    json_decref(c);

    char *add[] = {"net_admin", "CAP_SYS_TIME"}, *drop[] = {"CHOWN"};
    Runtime__V1__Capability caps = RUNTIME__V1__CAPABILITY__INIT;
    caps.add_capabilities = add;
    caps.n_add_capabilities = 2;
    caps.drop_capabilities = drop;
    caps.n_drop_capabilities = 1;
    c = hp_oci_capabilities(&caps, false, &err);
    T_ASSERT(c && arr_has(c, "CAP_NET_ADMIN") && arr_has(c, "CAP_SYS_TIME") &&
             !arr_has(c, "CAP_CHOWN"));
    json_decref(c);

    char *all[] = {"ALL"}, *one[] = {"NET_BIND_SERVICE"};
    caps.drop_capabilities = all;
    caps.n_drop_capabilities = 1;
    caps.add_capabilities = one;
    caps.n_add_capabilities = 1;
    c = hp_oci_capabilities(&caps, false, &err);
    T_ASSERT(c != NULL);
    T_EQ_INT(json_array_size(c), 1);
    T_ASSERT(arr_has(c, "CAP_NET_BIND_SERVICE"));
    json_decref(c);

    caps.add_capabilities = all;
    caps.n_drop_capabilities = 0;
    c = hp_oci_capabilities(&caps, false, &err);
    T_ASSERT(c && arr_has(c, "CAP_SYS_ADMIN") && json_array_size(c) >= 40);
    json_decref(c);

    char *bad[] = {"CAP_FLY"};
    caps.add_capabilities = bad;
    T_ASSERT(hp_oci_capabilities(&caps, false, &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_ASSERT(strstr(err.msg, "CAP_FLY") != NULL);
}

T_CASE(spec_rootless_userns_readonly_root_no_sys_admin)
{
    char *command[] = {"/bin/sh"};
    hp_oci_spec_opts o = base_opts("/nonexistent");
    o.rootless = true;
    o.rootfs_tmpfs = true;
    o.root_path = "/images/x/rootfs";
    o.uid = 1001;
    o.gid = 1001;
    o.subuid_start = o.subgid_start = 100000;
    o.subuid_len = o.subgid_len = 65536;
    hp_err err = HP_ERR_INIT;
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.n_command = 1;
    cfg.command = command;
    json_t *s = hp_oci_spec_container(NULL, &cfg, NULL, &o, &err);
    T_ASSERT(s != NULL);
    json_t *root = json_object_get(s, "root");
    T_EQ_STR(json_string_value(json_object_get(root, "path")), "/images/x/rootfs");
    T_ASSERT(json_is_true(json_object_get(root, "readonly")));
    json_t *um = json_object_get(json_object_get(s, "linux"), "uidMappings");
    T_EQ_INT(json_array_size(um), 2);
    T_EQ_INT(json_integer_value(json_object_get(json_array_get(um, 0), "hostID")), 1001);
    T_EQ_INT(json_integer_value(json_object_get(json_array_get(um, 1), "hostID")), 100000);
    T_EQ_INT(json_integer_value(json_object_get(json_array_get(um, 1), "containerID")), 1);
    int tmpfs = 0;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(s, "mounts"), i, m)
    {
        const char *d = json_string_value(json_object_get(m, "destination"));
        const char *t = json_string_value(json_object_get(m, "type"));
        if (t && strcmp(t, "tmpfs") == 0 &&
            (strcmp(d, "/tmp") == 0 || strcmp(d, "/run") == 0 || strcmp(d, "/var/tmp") == 0))
            tmpfs++;
    }
    T_EQ_INT(tmpfs, 3);
    json_decref(s);

    /* CAP_SYS_ADMIN could remount the shared image read-write: refused */
    Runtime__V1__LinuxContainerSecurityContext sc =
        RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
    Runtime__V1__LinuxContainerConfig lc = RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
    lc.security_context = &sc;
    cfg.linux = &lc;
    sc.privileged = true;
    T_ASSERT(hp_oci_spec_container(NULL, &cfg, NULL, &o, &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_ASSERT(strstr(err.msg, "privileged") != NULL);
    sc.privileged = false;
    char *add[] = {"SYS_ADMIN"};
    Runtime__V1__Capability caps = RUNTIME__V1__CAPABILITY__INIT;
    caps.add_capabilities = add;
    caps.n_add_capabilities = 1;
    sc.capabilities = &caps;
    T_ASSERT(hp_oci_spec_container(NULL, &cfg, NULL, &o, &err) == NULL);
    T_ASSERT(strstr(err.msg, "CAP_SYS_ADMIN") != NULL);
    /* kernel >= 5.11: overlay at "/" mounted by the runtime in the userns;
     * CAP_SYS_ADMIN is fine there (the image is only a lower dir) */
    o.rootfs_tmpfs = false;
    o.root_path = "rootfs";
    o.root_overlay = "lowerdir=/img,upperdir=/b/upper,workdir=/b/work";
    s = hp_oci_spec_container(NULL, &cfg, NULL, &o, &err);
    T_ASSERT(s != NULL);
    json_t *m0 = json_array_get(json_object_get(s, "mounts"), 0);
    T_EQ_STR(json_string_value(json_object_get(m0, "destination")), "/");
    T_EQ_STR(json_string_value(json_object_get(m0, "type")), "overlay");
    T_EQ_STR(json_string_value(json_array_get(json_object_get(m0, "options"), 0)),
             "lowerdir=/img,upperdir=/b/upper,workdir=/b/work");
    T_ASSERT(!json_is_true(json_object_get(json_object_get(s, "root"), "readonly")));
    json_decref(s);
    /* as root (overlay root), it is allowed */
    o.rootless = false;
    o.rootfs_tmpfs = false;
    s = hp_oci_spec_container(NULL, &cfg, NULL, &o, &err);
    T_ASSERT(s != NULL);
    json_decref(s);
}

T_CASE(spec_oom_score_adj_clamped)
{
    char *cmd[] = {"x"};
    Runtime__V1__LinuxContainerResources res = RUNTIME__V1__LINUX_CONTAINER_RESOURCES__INIT;
    Runtime__V1__LinuxContainerConfig lc = RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
    lc.resources = &res;
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.linux = &lc;
    cfg.command = cmd;
    cfg.n_command = 1;
    hp_oci_spec_opts o = base_opts("/nonexistent");
    o.min_oom_score_adj = -500;
    hp_err err = HP_ERR_INIT;
    int64_t in[] = {-999, -500, 0, 300, 5000}, want[] = {-500, -500, 0, 300, 1000};
    for (int i = 0; i < 5; i++) {
        res.oom_score_adj = in[i];
        json_t *s = hp_oci_spec_container(NULL, &cfg, NULL, &o, &err);
        T_ASSERT(s != NULL);
        T_EQ_INT(json_integer_value(json_object_get(json_object_get(s, "process"), "oomScoreAdj")),
                 want[i]);
        json_decref(s);
    }
}

T_CASE(spec_mounts_and_invalid_paths)
{
    char *cmd[] = {"x"};
    Runtime__V1__Mount m = RUNTIME__V1__MOUNT__INIT;
    m.container_path = "/data";
    m.host_path = "/srv/data";
    m.readonly = 1;
    m.propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER;
    Runtime__V1__Mount *mounts[] = {&m};
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.command = cmd;
    cfg.n_command = 1;
    cfg.mounts = mounts;
    cfg.n_mounts = 1;
    hp_oci_spec_opts o = base_opts("/nonexistent");
    o.pod_dir = "/pods/p1";
    hp_err err = HP_ERR_INIT;
    json_t *s = hp_oci_spec_container(NULL, &cfg, NULL, &o, &err);
    T_ASSERT(s != NULL);
    json_t *ms = json_object_get(s, "mounts");
    bool found = false, hosts = false;
    size_t i;
    json_t *v;
    json_array_foreach(ms, i, v)
    {
        const char *d = json_string_value(json_object_get(v, "destination"));
        if (strcmp(d, "/data") == 0) {
            found = true;
            json_t *opts = json_object_get(v, "options");
            T_ASSERT(arr_has(opts, "ro") && arr_has(opts, "rslave") && arr_has(opts, "rbind"));
        }
        if (strcmp(d, "/etc/hosts") == 0)
            hosts = strcmp(json_string_value(json_object_get(v, "source")), "/pods/p1/hosts") == 0;
    }
    T_ASSERT(found && hosts);
    T_ASSERT(arr_has(json_object_get(json_object_get(s, "linux"), "maskedPaths"), "/proc/kcore"));
    json_decref(s);

    m.container_path = "data";
    T_ASSERT(hp_oci_spec_container(NULL, &cfg, NULL, &o, &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_ASSERT(strstr(err.msg, "mounts[0].container_path") != NULL);
    m.container_path = "/a/../etc";
    T_ASSERT(hp_oci_spec_container(NULL, &cfg, NULL, &o, &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
}

T_CASE(spec_seccomp_profiles)
{
    char *cmd[] = {"x"};
    Runtime__V1__LinuxContainerSecurityContext sc =
        RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
    Runtime__V1__LinuxContainerConfig lc = RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
    lc.security_context = &sc;
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.linux = &lc;
    cfg.command = cmd;
    cfg.n_command = 1;
    hp_oci_spec_opts o = base_opts("/nonexistent");
    hp_err err = HP_ERR_INIT;
    /* default: blocks mount and ptrace with EPERM */
    json_t *s = hp_oci_spec_container(NULL, &cfg, NULL, &o, &err);
    T_ASSERT(s != NULL);
    json_t *sec = json_object_get(json_object_get(s, "linux"), "seccomp");
    T_EQ_STR(json_string_value(json_object_get(sec, "defaultAction")), "SCMP_ACT_ALLOW");
    json_t *names = json_object_get(json_array_get(json_object_get(sec, "syscalls"), 0), "names");
    T_ASSERT(arr_has(names, "mount") && arr_has(names, "ptrace") && arr_has(names, "kexec_load"));
    json_decref(s);
    /* CAP_SYS_ADMIN granted: mount allowed, ptrace still blocked */
    char *add[] = {"SYS_ADMIN"};
    Runtime__V1__Capability caps = RUNTIME__V1__CAPABILITY__INIT;
    caps.add_capabilities = add;
    caps.n_add_capabilities = 1;
    sc.capabilities = &caps;
    s = hp_oci_spec_container(NULL, &cfg, NULL, &o, &err);
    T_ASSERT(s != NULL);
    sec = json_object_get(json_object_get(s, "linux"), "seccomp");
    names = json_object_get(json_array_get(json_object_get(sec, "syscalls"), 0), "names");
    T_ASSERT(!arr_has(names, "mount") && arr_has(names, "ptrace"));
    json_decref(s);
    /* unconfined */
    Runtime__V1__SecurityProfile sp = RUNTIME__V1__SECURITY_PROFILE__INIT;
    sp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Unconfined;
    sc.seccomp = &sp;
    s = hp_oci_spec_container(NULL, &cfg, NULL, &o, &err);
    T_ASSERT(s && !json_object_get(json_object_get(s, "linux"), "seccomp"));
    json_decref(s);
    /* localhost profile file */
    char path[] = "/tmp/hpcri-seccomp-XXXXXX";
    int fd = mkstemp(path);
    T_ASSERT(fd >= 0);
    const char *prof = "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[]}";
    T_ASSERT(write(fd, prof, strlen(prof)) == (ssize_t)strlen(prof));
    close(fd);
    sp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost;
    sp.localhost_ref = path;
    s = hp_oci_spec_container(NULL, &cfg, NULL, &o, &err);
    T_ASSERT(s != NULL);
    T_EQ_STR(json_string_value(json_object_get(
                 json_object_get(json_object_get(s, "linux"), "seccomp"), "defaultAction")),
             "SCMP_ACT_ERRNO");
    json_decref(s);
    unlink(path);
    T_ASSERT(hp_oci_spec_container(NULL, &cfg, NULL, &o, &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
}

T_CASE(spec_image_config_parse_and_signals)
{
    hp_oci_image_config ic;
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_oci_image_config_parse(
                 "{\"architecture\":\"amd64\",\"config\":{\"Entrypoint\":[\"/e\"],\"Cmd\":[\"c1\","
                 "\"c2\"],\"Env\":[\"A=1\"],\"WorkingDir\":\"/w\",\"User\":\"app\","
                 "\"StopSignal\":\"SIGQUIT\"}}",
                 &ic, &err),
             0);
    T_EQ_INT(ic.n_entrypoint, 1);
    T_EQ_INT(ic.n_cmd, 2);
    T_EQ_STR(ic.cmd[1], "c2");
    T_EQ_STR(ic.working_dir, "/w");
    T_EQ_STR(ic.user, "app");
    T_EQ_INT(hp_oci_signal_by_name(ic.stop_signal), SIGQUIT);
    hp_oci_image_config_clear(&ic);
    T_EQ_INT(hp_oci_image_config_parse("{\"Cmd\":\"notarray\"}", &ic, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_EQ_INT(hp_oci_signal_by_name("15"), SIGTERM);
    T_EQ_INT(hp_oci_signal_by_name("usr1"), SIGUSR1);
    T_EQ_INT(hp_oci_signal_by_name("BOGUS"), 0);
    T_EQ_INT(hp_oci_cri_signal(RUNTIME__V1__SIGNAL__SIGTERM), SIGTERM);
    T_EQ_INT(hp_oci_cri_signal(RUNTIME__V1__SIGNAL__SIGKILL), SIGKILL);
    T_EQ_INT(hp_oci_cri_signal(RUNTIME__V1__SIGNAL__SIGUSR1), SIGUSR1);
}

/* ---------- live tests (root) ---------- */

typedef struct fixture {
    char tmp[64];
    char rootfs[128];
    char pause[PATH_MAX + 64];
    hp_backend *be;
    int exits_seen;
    char last_exit[128];
    hp_handler_config h;
    hp_config_opt opts[2];
    char runc_root[160];
} fixture;

static void on_exit_cb(void *ud, const char *id, const hp_be_status *st)
{
    fixture *f = ud;
    (void)st;
    f->exits_seen++;
    snprintf(f->last_exit, sizeof(f->last_exit), "%s", id);
}

static bool fx_setup(fixture *f)
{
    memset(f, 0, sizeof(*f));
    if (geteuid() != 0) {
        printf("# skipped: needs root (runc, conmon, overlay mounts)\n");
        return false;
    }
    snprintf(f->tmp, sizeof(f->tmp), "/tmp/hpcri-oci-XXXXXX");
    if (!mkdtemp(f->tmp))
        return false;
    /* pause binary next to the test binary's build dir: build/tests/.. */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = 0;
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = 0;
    snprintf(f->pause, sizeof(f->pause), "%s/../hpcri-pause", exe);
    if (access(f->pause, X_OK) != 0)
        snprintf(f->pause, sizeof(f->pause), "%s/../../build/hpcri-pause", exe);
    /* a shared busybox rootfs, built once */
    snprintf(f->rootfs, sizeof(f->rootfs), "/tmp/hpcri-oci-test-rootfs");
    char marker[192];
    snprintf(marker, sizeof(marker), "%s/bin/sh", f->rootfs);
    if (access(marker, F_OK) != 0) {
        hp_err err = HP_ERR_INIT;
        hp_proc_result r;
        char *argv[] = {"/bin/sh", "tests/tools/mkrootfs.sh", f->rootfs, NULL};
        if (hp_proc_run(argv, NULL, &r, &err) < 0 || r.status != 0) {
            fprintf(stderr, "mkrootfs failed: %s\n", r.err ? r.err : err.msg);
            return false;
        }
        hp_proc_result_clear(&r);
    }
    snprintf(f->runc_root, sizeof(f->runc_root), "%s/runc", f->tmp);
    f->opts[0] = (hp_config_opt){"runtime_root", f->runc_root, 0};
    f->h = (hp_handler_config){
        .name = "", .type = HP_BACKEND_OCI, .uid = 0, .opts = f->opts, .n_opts = 1};
    char root[128], run[128];
    snprintf(root, sizeof(root), "%s/root", f->tmp);
    snprintf(run, sizeof(run), "%s/run", f->tmp);
    hp_backend_env env = {.root = root, .run_dir = run, .pause_path = f->pause, .uid = 0};
    env.host.ud = f;
    env.host.on_container_exit = on_exit_cb;
    hp_err err = HP_ERR_INIT;
    f->be = hp_oci_backend_new(&f->h, &env, &err);
    if (!f->be) {
        fprintf(stderr, "backend: %s\n", err.msg);
        return false;
    }
    return true;
}

static void fx_teardown(fixture *f)
{
    if (f->be)
        f->be->ops->destroy(f->be);
    f->be = NULL;
    if (f->tmp[0])
        rm_tree(f->tmp);
}

#define SETUP(f)                                                                                   \
    fixture f;                                                                                     \
    if (!fx_setup(&f)) {                                                                           \
        T_ASSERT(geteuid() != 0);                                                                  \
        return;                                                                                    \
    }

typedef struct podcfg {
    Runtime__V1__PodSandboxConfig cfg;
    Runtime__V1__PodSandboxMetadata md;
    Runtime__V1__LinuxPodSandboxConfig lx;
    Runtime__V1__LinuxSandboxSecurityContext sc;
    Runtime__V1__NamespaceOption ns;
} podcfg;

static void podcfg_init(podcfg *p)
{
    p->cfg = (Runtime__V1__PodSandboxConfig)RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
    p->md = (Runtime__V1__PodSandboxMetadata)RUNTIME__V1__POD_SANDBOX_METADATA__INIT;
    p->lx = (Runtime__V1__LinuxPodSandboxConfig)RUNTIME__V1__LINUX_POD_SANDBOX_CONFIG__INIT;
    p->sc =
        (Runtime__V1__LinuxSandboxSecurityContext)RUNTIME__V1__LINUX_SANDBOX_SECURITY_CONTEXT__INIT;
    p->ns = (Runtime__V1__NamespaceOption)RUNTIME__V1__NAMESPACE_OPTION__INIT;
    p->md.name = "testpod";
    p->md.namespace_ = "default";
    p->md.uid = "uid-1";
    p->cfg.metadata = &p->md;
    p->cfg.hostname = "testpod-host";
    p->ns.pid = RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
    p->sc.namespace_options = &p->ns;
    p->lx.security_context = &p->sc;
    p->cfg.linux = &p->lx;
}

typedef struct ctrcfg {
    Runtime__V1__ContainerConfig cfg;
    Runtime__V1__ContainerMetadata md;
    Runtime__V1__LinuxContainerConfig lx;
    Runtime__V1__LinuxContainerSecurityContext sc;
    Runtime__V1__LinuxContainerResources res;
    char *argv[8];
} ctrcfg;

static void ctrcfg_init(ctrcfg *c, const char *script)
{
    c->cfg = (Runtime__V1__ContainerConfig)RUNTIME__V1__CONTAINER_CONFIG__INIT;
    c->md = (Runtime__V1__ContainerMetadata)RUNTIME__V1__CONTAINER_METADATA__INIT;
    c->lx = (Runtime__V1__LinuxContainerConfig)RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
    c->sc = (Runtime__V1__LinuxContainerSecurityContext)
        RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
    c->res = (Runtime__V1__LinuxContainerResources)RUNTIME__V1__LINUX_CONTAINER_RESOURCES__INIT;
    c->md.name = "ctr";
    c->cfg.metadata = &c->md;
    c->lx.security_context = &c->sc;
    c->lx.resources = &c->res;
    c->cfg.linux = &c->lx;
    c->argv[0] = "/bin/sh";
    c->argv[1] = "-c";
    c->argv[2] = (char *)script;
    c->cfg.command = c->argv;
    c->cfg.n_command = 3;
}

static int run_pod(fixture *f, const char *id, podcfg *p, hp_be_pod *pod, hp_err *err)
{
    memset(pod, 0, sizeof(*pod));
    pod->id = id;
    pod->config = &p->cfg;
    return f->be->ops->sandbox_run(f->be, pod, err);
}

static void be_ctr(fixture *f, hp_be_container *c, const char *id, const char *pod_id, ctrcfg *cc,
                   podcfg *p, char *log, size_t loglen)
{
    memset(c, 0, sizeof(*c));
    c->id = id;
    c->pod_id = pod_id;
    c->config = &cc->cfg;
    c->pod_config = &p->cfg;
    c->rootfs_hint = f->rootfs;
    snprintf(log, loglen, "%s/logs/%s.log", f->tmp, id);
    c->log_path = log;
}

static int wait_state(fixture *f, hp_be_container *c, int state, double timeout, hp_be_status *st)
{
    double end = now_s() + timeout;
    hp_err err = HP_ERR_INIT;
    while (now_s() < end) {
        if (f->be->ops->container_status(f->be, c, st, &err) == 0 && st->state == state)
            return 0;
        usleep(10000);
    }
    return -1;
}

static char *read_all(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    buf[n] = 0;
    fclose(fp);
    return buf;
}

static bool ns_differs(pid_t pid, const char *ns)
{
    char a[64], b[64], la[128] = "", lb[128] = "";
    snprintf(a, sizeof(a), "/proc/%d/ns/%s", (int)pid, ns);
    snprintf(b, sizeof(b), "/proc/self/ns/%s", ns);
    if (readlink(a, la, sizeof(la) - 1) < 0 || readlink(b, lb, sizeof(lb) - 1) < 0)
        return false;
    return strcmp(la, lb) != 0;
}

/* The process is gone, or dead and waiting for its parent (the direct pause
 * is re-parented to init, which reaps it in its own time). */
static bool proc_dead(pid_t pid)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    char *st = read_all(p);
    const char *rp = st ? strrchr(st, ')') : NULL;
    bool dead = !rp || rp[2] == 'Z' || rp[2] == 'X';
    free(st);
    return dead;
}

static bool mounts_mention(const char *s)
{
    char *mi = read_all("/proc/self/mountinfo");
    bool r = mi && strstr(mi, s) != NULL;
    free(mi);
    return r;
}

T_CASE(live_pod_namespaces_and_lifecycle)
{
    SETUP(f);
    podcfg p;
    podcfg_init(&p);
    hp_be_pod pod;
    hp_err err = HP_ERR_INIT;
    double t0 = now_s();
    int rc = run_pod(&f, "pod1", &p, &pod, &err);
    double t_run = now_s() - t0;
    if (rc < 0)
        fprintf(stderr, "  sandbox_run: %s\n", err.msg);
    T_ASSERT(rc == 0);
    T_ASSERT(pod.backend_state && strstr(pod.backend_state, "\"pid\":"));
    int pid = atoi(strstr(pod.backend_state, "\"pid\":") + 6);
    T_ASSERT(pid > 1);
    T_ASSERT(ns_differs(pid, "uts") && ns_differs(pid, "ipc") && ns_differs(pid, "net"));
    bool ready = false;
    char *info = NULL;
    T_EQ_INT(f.be->ops->sandbox_status(f.be, &pod, &ready, &info, &err), 0);
    T_ASSERT(ready);
    free(info);
    /* the pod files */
    char path[256];
    snprintf(path, sizeof(path), "%s/root/oci/pods/pod1/hostname", f.tmp);
    char *hn = read_all(path);
    T_ASSERT(hn && strcmp(hn, "testpod-host\n") == 0);
    free(hn);
    t0 = now_s();
    T_EQ_INT(f.be->ops->sandbox_stop(f.be, &pod, &err), 0);
    double t_stop = now_s() - t0;
    T_EQ_INT(f.be->ops->sandbox_stop(f.be, &pod, &err), 0); /* idempotent */
    T_EQ_INT(f.be->ops->sandbox_status(f.be, &pod, &ready, NULL, &err), 0);
    T_ASSERT(!ready);
    T_ASSERT(proc_dead(pid));
    t0 = now_s();
    T_EQ_INT(f.be->ops->sandbox_remove(f.be, &pod, &err), 0);
    double t_rm = now_s() - t0;
    T_EQ_INT(f.be->ops->sandbox_remove(f.be, &pod, &err), 0); /* idempotent */
    snprintf(path, sizeof(path), "%s/root/oci/pods/pod1", f.tmp);
    T_ASSERT(access(path, F_OK) < 0);
    T_ASSERT(!mounts_mention(f.tmp));
    printf("# latency: RunPodSandbox %.1f ms, StopPodSandbox %.1f ms, RemovePodSandbox %.1f ms\n",
           t_run * 1e3, t_stop * 1e3, t_rm * 1e3);
    free(pod.backend_state);
    fx_teardown(&f);
}

/* In a child that joined `ns` of pid: read the first line of `path` (or the
 * hostname when path is NULL) and exit 0 iff it equals want. */
static bool ns_reads(pid_t pid, const char *ns, const char *path, const char *want)
{
    char nsp[64];
    snprintf(nsp, sizeof(nsp), "/proc/%d/ns/%s", (int)pid, ns);
    pid_t k = fork();
    if (k == 0) {
        int fd = open(nsp, O_RDONLY | O_CLOEXEC);
        char buf[256] = "";
        if (fd < 0 || setns(fd, 0) < 0)
            _exit(2);
        if (path) {
            FILE *fp = fopen(path, "r");
            if (!fp || !fgets(buf, sizeof(buf), fp))
                _exit(3);
            buf[strcspn(buf, "\n")] = 0;
        } else if (gethostname(buf, sizeof(buf)) < 0) {
            _exit(4);
        }
        _exit(strcmp(buf, want) == 0 ? 0 : 1);
    }
    int status = -1;
    waitpid(k, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static bool dir_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return false;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n == 0;
}

/* The pod's pause without a runtime: hostname and sysctls inside its own
 * namespaces, no capabilities, no_new_privs, its cgroup; a bad sysctl fails
 * the pod with the kernel's word and leaves nothing; the deferred runtime
 * create reports a bad command at start; the janitor empties the trash. */
T_CASE(live_direct_pause_sysctls_caps_deferred_create_janitor)
{
    SETUP(f);
    podcfg p;
    podcfg_init(&p);
    Runtime__V1__LinuxPodSandboxConfig__SysctlsEntry s1 =
        RUNTIME__V1__LINUX_POD_SANDBOX_CONFIG__SYSCTLS_ENTRY__INIT;
    Runtime__V1__LinuxPodSandboxConfig__SysctlsEntry s2 =
        RUNTIME__V1__LINUX_POD_SANDBOX_CONFIG__SYSCTLS_ENTRY__INIT;
    s1.key = "net.ipv4.ip_unprivileged_port_start";
    s1.value = "555";
    s2.key = "kernel.shmmni";
    s2.value = "1234";
    Runtime__V1__LinuxPodSandboxConfig__SysctlsEntry *sys[] = {&s1, &s2};
    p.lx.sysctls = sys;
    p.lx.n_sysctls = 2;
    hp_be_pod pod;
    hp_err err = HP_ERR_INIT;
    int rc = run_pod(&f, "podd", &p, &pod, &err);
    if (rc < 0)
        fprintf(stderr, "  sandbox_run: %s\n", err.msg);
    T_ASSERT(rc == 0);
    int pid = atoi(strstr(pod.backend_state, "\"pid\":") + 6);
    T_ASSERT(pid > 1);
    T_ASSERT(ns_reads(pid, "uts", NULL, "testpod-host"));
    T_ASSERT(ns_reads(pid, "net", "/proc/sys/net/ipv4/ip_unprivileged_port_start", "555"));
    T_ASSERT(ns_reads(pid, "ipc", "/proc/sys/kernel/shmmni", "1234"));
    char path[512];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    char *status = read_all(path);
    T_ASSERT(status && strstr(status, "CapEff:\t0000000000000000") &&
             strstr(status, "CapBnd:\t0000000000000000") && strstr(status, "NoNewPrivs:\t1"));
    free(status);
    snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
    char *cg = read_all(path);
    T_ASSERT(cg && strstr(cg, ":/hpcri/podd/pause"));
    free(cg);
    char *info = NULL;
    bool ready = false;
    T_EQ_INT(f.be->ops->sandbox_status(f.be, &pod, &ready, &info, &err), 0);
    T_ASSERT(ready && info && strstr(info, "hpcri-pause --spawn"));
    free(info);

    /* deferred create: a missing command is found at start, not at create */
    ctrcfg cc;
    ctrcfg_init(&cc, "true");
    cc.argv[0] = "/no/such/binary";
    cc.cfg.n_command = 1;
    hp_be_container c;
    char log[256];
    be_ctr(&f, &c, "c-bad", "podd", &cc, &p, log, sizeof(log));
    T_EQ_INT(f.be->ops->container_create(f.be, &c, &err), 0);
    hp_be_status st;
    T_EQ_INT(f.be->ops->container_status(f.be, &c, &st, &err), 0);
    T_EQ_INT(st.state, RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED);
    hp_err serr = HP_ERR_INIT;
    T_ASSERT(f.be->ops->container_start(f.be, &c, &serr) < 0);
    T_ASSERT(strstr(serr.msg, "no/such/binary") != NULL);
    T_EQ_INT(f.be->ops->container_remove(f.be, &c, &err), 0);
    free(c.backend_state);

    T_EQ_INT(f.be->ops->sandbox_stop(f.be, &pod, &err), 0);
    T_EQ_INT(f.be->ops->sandbox_remove(f.be, &pod, &err), 0);
    T_ASSERT(proc_dead(pid));
    char trash[256];
    snprintf(trash, sizeof(trash), "%s/root/oci/trash", f.tmp);
    double end = now_s() + 5;
    while (!dir_empty(trash) && now_s() < end)
        usleep(10000);
    T_ASSERT(dir_empty(trash));
    snprintf(path, sizeof(path), "/sys/fs/cgroup/pids/hpcri/podd");
    T_ASSERT(access(path, F_OK) < 0);
    free(pod.backend_state);

    /* a sysctl the kernel does not know: the pod fails, nothing is left */
    Runtime__V1__LinuxPodSandboxConfig__SysctlsEntry bad =
        RUNTIME__V1__LINUX_POD_SANDBOX_CONFIG__SYSCTLS_ENTRY__INIT;
    bad.key = "kernel.no_such_sysctl_hpcri";
    bad.value = "1";
    Runtime__V1__LinuxPodSandboxConfig__SysctlsEntry *badv[] = {&bad};
    p.lx.sysctls = badv;
    p.lx.n_sysctls = 1;
    hp_err berr = HP_ERR_INIT;
    T_ASSERT(run_pod(&f, "podbad", &p, &pod, &berr) < 0);
    T_ASSERT(strstr(berr.msg, "kernel.no_such_sysctl_hpcri") != NULL);
    snprintf(path, sizeof(path), "%s/root/oci/pods/podbad", f.tmp);
    T_ASSERT(access(path, F_OK) < 0);
    free(pod.backend_state);

    /* a leftover in the trash (a crash between rename and delete) goes at
     * the latest when the backend shuts down */
    snprintf(path, sizeof(path), "%s/leftover", trash);
    T_EQ_INT(mkdir(path, 0700), 0);
    f.be->ops->destroy(f.be);
    f.be = NULL;
    T_ASSERT(access(path, F_OK) < 0);
    fx_teardown(&f);
}

T_CASE(live_exit_code_logs_and_exit_event)
{
    SETUP(f);
    podcfg p;
    podcfg_init(&p);
    hp_be_pod pod;
    hp_err err = HP_ERR_INIT;
    T_ASSERT(run_pod(&f, "pod2", &p, &pod, &err) == 0);
    ctrcfg cc;
    ctrcfg_init(&cc, "echo out; echo err >&2; exit 3");
    hp_be_container c;
    char log[256];
    be_ctr(&f, &c, "c-exit", "pod2", &cc, &p, log, sizeof(log));
    double t0 = now_s();
    int rc = f.be->ops->container_create(f.be, &c, &err);
    double t_create = now_s() - t0;
    if (rc < 0)
        fprintf(stderr, "  create: %s\n", err.msg);
    T_ASSERT(rc == 0);
    hp_be_status st;
    T_EQ_INT(f.be->ops->container_status(f.be, &c, &st, &err), 0);
    T_EQ_INT(st.state, RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED);
    t0 = now_s();
    T_EQ_INT(f.be->ops->container_start(f.be, &c, &err), 0);
    double t_start = now_s() - t0;
    T_EQ_INT(wait_state(&f, &c, RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED, 10, &st), 0);
    T_EQ_INT(st.exit_code, 3);
    T_EQ_STR(st.reason, "Error");
    T_ASSERT(st.started_at > 0 && st.finished_at >= st.started_at);
    /* exit event, exactly once */
    T_ASSERT(hp_oci_poll_exits(f.be) >= 1);
    T_EQ_INT(f.exits_seen, 1);
    T_EQ_STR(f.last_exit, "c-exit");
    T_EQ_INT(hp_oci_poll_exits(f.be), 0);
    /* the CRI log */
    char *text = read_all(log);
    T_ASSERT(text != NULL);
    regex_t re;
    T_EQ_INT(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+[^ ]* (stdout|stderr) F (out|err)$",
                     REG_EXTENDED | REG_NOSUB),
             0);
    int lines = 0, good = 0;
    bool saw_out = false, saw_err = false;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        lines++;
        good += regexec(&re, l, 0, NULL, 0) == 0;
        saw_out |= strstr(l, " stdout F out") != NULL;
        saw_err |= strstr(l, " stderr F err") != NULL;
    }
    regfree(&re);
    free(text);
    T_EQ_INT(lines, 2);
    T_EQ_INT(good, 2);
    T_ASSERT(saw_out && saw_err);
    /* recovery scan reports it again (the CRI layer dedups) */
    f.exits_seen = 0;
    T_EQ_INT(hp_oci_scan_exits(f.be, &err), 1);
    T_EQ_INT(f.exits_seen, 1);
    t0 = now_s();
    T_EQ_INT(f.be->ops->container_remove(f.be, &c, &err), 0);
    double t_rm = now_s() - t0;
    T_EQ_INT(f.be->ops->container_remove(f.be, &c, &err), 0);
    T_EQ_INT(f.be->ops->container_status(f.be, &c, &st, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    printf("# latency: CreateContainer %.1f ms, StartContainer %.1f ms, RemoveContainer %.1f ms\n",
           t_create * 1e3, t_start * 1e3, t_rm * 1e3);
    T_EQ_INT(f.be->ops->sandbox_remove(f.be, &pod, &err), 0);
    T_ASSERT(!mounts_mention(f.tmp));
    free(pod.backend_state);
    free(c.backend_state);
    fx_teardown(&f);
}

static int start_ctr(fixture *f, hp_be_container *c, hp_err *err)
{
    if (f->be->ops->container_create(f->be, c, err) < 0)
        return -1;
    return f->be->ops->container_start(f->be, c, err);
}

T_CASE(live_stop_sigterm_and_grace_period)
{
    SETUP(f);
    podcfg p;
    podcfg_init(&p);
    hp_be_pod pod;
    hp_err err = HP_ERR_INIT;
    T_ASSERT(run_pod(&f, "pod3", &p, &pod, &err) == 0);
    ctrcfg c1, c2;
    /* PID 1 of a PID namespace only gets signals it handles: trap TERM */
    ctrcfg_init(&c1, "trap 'exit 143' TERM; sleep 1000 & wait");
    ctrcfg_init(&c2, "trap '' TERM; sleep 1000 & wait; sleep 1000");
    hp_be_container a, b;
    char l1[256], l2[256];
    be_ctr(&f, &a, "c-term", "pod3", &c1, &p, l1, sizeof(l1));
    be_ctr(&f, &b, "c-ignore", "pod3", &c2, &p, l2, sizeof(l2));
    T_ASSERT(start_ctr(&f, &a, &err) == 0);
    T_ASSERT(start_ctr(&f, &b, &err) == 0);
    usleep(200000); /* let sh install its trap */
    hp_be_status st;
    double t0 = now_s();
    T_EQ_INT(f.be->ops->container_stop(f.be, &a, 2, &err), 0);
    double t_term = now_s() - t0;
    T_EQ_INT(f.be->ops->container_status(f.be, &a, &st, &err), 0);
    T_EQ_INT(st.state, RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED);
    T_EQ_INT(st.exit_code, 128 + SIGTERM);
    T_ASSERT(t_term < 1.5);
    t0 = now_s();
    T_EQ_INT(f.be->ops->container_stop(f.be, &b, 2, &err), 0);
    double t_kill = now_s() - t0;
    T_EQ_INT(f.be->ops->container_status(f.be, &b, &st, &err), 0);
    T_EQ_INT(st.state, RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED);
    T_EQ_INT(st.exit_code, 128 + SIGKILL);
    T_ASSERT(t_kill >= 2.0 && t_kill < 5.0);
    T_EQ_INT(f.be->ops->container_stop(f.be, &b, 2, &err), 0); /* idempotent */
    printf("# latency: StopContainer (SIGTERM honoured) %.1f ms, (ignored, 2 s grace) %.1f ms\n",
           t_term * 1e3, t_kill * 1e3);
    T_EQ_INT(f.be->ops->sandbox_stop(f.be, &pod, &err), 0);
    T_EQ_INT(f.be->ops->sandbox_remove(f.be, &pod, &err), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/root/oci/containers/c-term", f.tmp);
    T_ASSERT(access(path, F_OK) < 0); /* pod remove removed its containers */
    T_ASSERT(!mounts_mention(f.tmp));
    free(pod.backend_state);
    free(a.backend_state);
    free(b.backend_state);
    fx_teardown(&f);
}

static int exec_str(fixture *f, hp_be_container *c, const char *script, char *out, size_t len,
                    int *code)
{
    char *argv[] = {"/bin/sh", "-c", (char *)script};
    hp_be_exec_result r;
    hp_err err = HP_ERR_INIT;
    if (f->be->ops->exec_sync(f->be, c, argv, 3, 10, &r, &err) < 0) {
        fprintf(stderr, "  exec: %s\n", err.msg);
        return -1;
    }
    snprintf(out, len, "%.*s", (int)r.out_len, (char *)r.out);
    out[strcspn(out, "\n")] = 0;
    *code = r.exit_code;
    free(r.out);
    free(r.errout);
    return 0;
}

T_CASE(live_exec_env_user_workdir_readonly_mounts)
{
    SETUP(f);
    podcfg p;
    podcfg_init(&p);
    hp_be_pod pod;
    hp_err err = HP_ERR_INIT;
    T_ASSERT(run_pod(&f, "pod4", &p, &pod, &err) == 0);
    char ro_dir[128], rw_dir[128], fpath[160];
    snprintf(ro_dir, sizeof(ro_dir), "%s/ro", f.tmp);
    snprintf(rw_dir, sizeof(rw_dir), "%s/rw", f.tmp);
    mkdir(ro_dir, 0755);
    mkdir(rw_dir, 0777);
    chmod(rw_dir, 0777);
    snprintf(fpath, sizeof(fpath), "%s/hello", ro_dir);
    write_text(fpath, "hello-from-host\n");
    ctrcfg cc;
    ctrcfg_init(&cc, "exec sleep 1000");
    Runtime__V1__KeyValue kv = RUNTIME__V1__KEY_VALUE__INIT;
    kv.key = "FOO";
    kv.value = "bar baz";
    Runtime__V1__KeyValue *envs[] = {&kv};
    cc.cfg.envs = envs;
    cc.cfg.n_envs = 1;
    cc.cfg.working_dir = "/home/app";
    cc.sc.run_as_username = "app";
    cc.sc.readonly_rootfs = 1;
    Runtime__V1__Mount m1 = RUNTIME__V1__MOUNT__INIT, m2 = RUNTIME__V1__MOUNT__INIT;
    m1.container_path = "/data-ro";
    m1.host_path = ro_dir;
    m1.readonly = 1;
    m2.container_path = "/data-rw";
    m2.host_path = rw_dir;
    Runtime__V1__Mount *mounts[] = {&m1, &m2};
    cc.cfg.mounts = mounts;
    cc.cfg.n_mounts = 2;
    hp_be_container c;
    char log[256];
    be_ctr(&f, &c, "c-exec", "pod4", &cc, &p, log, sizeof(log));
    if (start_ctr(&f, &c, &err) < 0)
        fprintf(stderr, "  %s\n", err.msg);
    T_ASSERT(err.code == 0);
    char out[4096];
    int code = -1;
    T_EQ_INT(exec_str(&f, &c, "id -u", out, sizeof(out), &code), 0);
    T_EQ_STR(out, "1000");
    T_EQ_INT(exec_str(&f, &c, "id -G | tr ' ' '\\n' | grep -x 2000", out, sizeof(out), &code), 0);
    T_EQ_STR(out, "2000"); /* supplementary group from the image's /etc/group */
    T_EQ_INT(exec_str(&f, &c, "pwd", out, sizeof(out), &code), 0);
    T_EQ_STR(out, "/home/app");
    T_EQ_INT(exec_str(&f, &c, "echo \"$FOO\"", out, sizeof(out), &code), 0);
    T_EQ_STR(out, "bar baz");
    T_EQ_INT(exec_str(&f, &c, "hostname", out, sizeof(out), &code), 0);
    T_EQ_STR(out, "testpod-host");
    T_EQ_INT(exec_str(&f, &c, "touch /x 2>/dev/null; echo $?", out, sizeof(out), &code), 0);
    T_ASSERT(strcmp(out, "0") != 0); /* read-only rootfs */
    T_EQ_INT(exec_str(&f, &c, "cat /data-ro/hello", out, sizeof(out), &code), 0);
    T_EQ_STR(out, "hello-from-host");
    T_EQ_INT(exec_str(&f, &c, "touch /data-ro/y 2>/dev/null; echo $?", out, sizeof(out), &code), 0);
    T_ASSERT(strcmp(out, "0") != 0); /* read-only bind mount */
    T_EQ_INT(exec_str(&f, &c, "touch /data-rw/y; echo $?", out, sizeof(out), &code), 0);
    T_EQ_STR(out, "0");
    /* seccomp runtime/default: unshare is refused */
    T_EQ_INT(exec_str(&f, &c, "unshare -u true 2>/dev/null; echo $?", out, sizeof(out), &code), 0);
    T_ASSERT(strcmp(out, "0") != 0);
    /* exit code of the exec'd command */
    T_EQ_INT(exec_str(&f, &c, "exit 7", out, sizeof(out), &code), 0);
    T_EQ_INT(code, 7);
    /* same IPC namespace as the pause process, own mount namespace */
    T_EQ_INT(f.be->ops->container_remove(f.be, &c, &err), 0);
    T_EQ_INT(f.be->ops->sandbox_remove(f.be, &pod, &err), 0);
    T_ASSERT(!mounts_mention(f.tmp));
    free(pod.backend_state);
    free(c.backend_state);
    fx_teardown(&f);
}

T_CASE(live_exec_timeout_big_output_stats_reopen)
{
    SETUP(f);
    podcfg p;
    podcfg_init(&p);
    hp_be_pod pod;
    hp_err err = HP_ERR_INIT;
    T_ASSERT(run_pod(&f, "pod5", &p, &pod, &err) == 0);
    ctrcfg cc;
    ctrcfg_init(&cc, "while true; do echo tick; sleep 0.1; done");
    hp_be_container c;
    char log[256];
    be_ctr(&f, &c, "c-misc", "pod5", &cc, &p, log, sizeof(log));
    T_ASSERT(start_ctr(&f, &c, &err) == 0);
    /* timeout */
    char *slp[] = {"sleep", "30"};
    hp_be_exec_result r;
    double t0 = now_s();
    T_EQ_INT(f.be->ops->exec_sync(f.be, &c, slp, 2, 1, &r, &err), -1);
    double el = now_s() - t0;
    T_EQ_INT(err.code, HP_DEADLINE_EXCEEDED);
    T_ASSERT(el >= 1.0 && el < 3.0);
    /* > 16 MiB of output is truncated at 16 MiB, exit code kept */
    char *big[] = {"/bin/sh", "-c", "head -c 20000000 /dev/zero; exit 4"};
    T_EQ_INT(f.be->ops->exec_sync(f.be, &c, big, 3, 30, &r, &err), 0);
    T_EQ_INT(r.out_len, 16u << 20);
    T_EQ_INT(r.exit_code, 4);
    free(r.out);
    free(r.errout);
    /* stats: CPU after a busy loop */
    hp_be_stats s1, s2;
    T_EQ_INT(f.be->ops->container_stats(f.be, &c, &s1, &err), 0);
    char *busy[] = {"/bin/sh", "-c",
                    "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; "
                    "echo data > /tmp/file"};
    T_EQ_INT(f.be->ops->exec_sync(f.be, &c, busy, 3, 60, &r, &err), 0);
    free(r.out);
    free(r.errout);
    T_EQ_INT(f.be->ops->container_stats(f.be, &c, &s2, &err), 0);
    T_ASSERT(s2.has_cpu && s2.cpu_usage_ns > s1.cpu_usage_ns + 10000000ull);
    T_ASSERT(s2.has_memory && s2.memory_working_set > 0);
    T_ASSERT(s2.has_writable_layer && s2.writable_inodes >= 2 && s2.writable_bytes > 0);
    printf("# stats: cpu %llu ns, working set %llu B, rss %llu B, writable %llu B / %llu inodes\n",
           (unsigned long long)s2.cpu_usage_ns, (unsigned long long)s2.memory_working_set,
           (unsigned long long)s2.memory_rss, (unsigned long long)s2.writable_bytes,
           (unsigned long long)s2.writable_inodes);
    /* container file access (termination message path) */
    int fd = hp_oci_open_container_file(f.be, "c-misc", "/tmp/file", &err);
    T_ASSERT(fd >= 0);
    char buf[32] = "";
    T_ASSERT(read(fd, buf, sizeof(buf) - 1) == 5);
    close(fd);
    T_EQ_STR(buf, "data\n");
    T_EQ_INT(hp_oci_open_container_file(f.be, "c-misc", "/../../../etc/shadow", &err), -1);
    /* reopen log: rotate the file away, conmon writes a new one */
    char rotated[300];
    snprintf(rotated, sizeof(rotated), "%s.1", log);
    T_EQ_INT(rename(log, rotated), 0);
    T_EQ_INT(f.be->ops->reopen_log(f.be, &c, &err), 0);
    usleep(500000);
    struct stat sb;
    T_EQ_INT(stat(log, &sb), 0);
    T_ASSERT(sb.st_size > 0);
    T_EQ_INT(f.be->ops->sandbox_stop(f.be, &pod, &err), 0);
    hp_be_status st;
    T_EQ_INT(f.be->ops->container_status(f.be, &c, &st, &err), 0);
    T_EQ_INT(st.state, RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED);
    T_EQ_INT(f.be->ops->sandbox_remove(f.be, &pod, &err), 0);
    T_ASSERT(!mounts_mention(f.tmp));
    free(pod.backend_state);
    free(c.backend_state);
    fx_teardown(&f);
}

T_CASE(live_bad_command_and_oom)
{
    SETUP(f);
    podcfg p;
    podcfg_init(&p);
    hp_be_pod pod;
    hp_err err = HP_ERR_INIT;
    T_ASSERT(run_pod(&f, "pod6", &p, &pod, &err) == 0);
    ctrcfg cc;
    ctrcfg_init(&cc, "");
    char *nocmd[] = {"/no/such/binary"};
    cc.cfg.command = nocmd;
    cc.cfg.n_command = 1;
    hp_be_container c;
    char log[256];
    be_ctr(&f, &c, "c-bad", "pod6", &cc, &p, log, sizeof(log));
    int rc = start_ctr(&f, &c, &err);
    T_EQ_INT(rc, -1);
    T_ASSERT(strstr(err.msg, "/no/such/binary") != NULL);
    T_EQ_INT(f.be->ops->container_remove(f.be, &c, &err), 0);
    free(c.backend_state); /* created: the runtime's create runs at start */
    /* memory limit: OOMKilled */
    ctrcfg oc;
    ctrcfg_init(&oc, "x=a; while true; do x=$x$x$x$x; done");
    oc.res.memory_limit_in_bytes = 16 << 20;
    be_ctr(&f, &c, "c-oom", "pod6", &oc, &p, log, sizeof(log));
    T_ASSERT(start_ctr(&f, &c, &err) == 0);
    hp_be_status st;
    T_EQ_INT(wait_state(&f, &c, RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED, 20, &st), 0);
    T_EQ_STR(st.reason, "OOMKilled");
    T_EQ_INT(st.exit_code, 137);
    T_EQ_INT(f.be->ops->sandbox_remove(f.be, &pod, &err), 0);
    T_ASSERT(!mounts_mention(f.tmp));
    free(pod.backend_state);
    free(c.backend_state);
    fx_teardown(&f);
}

T_MAIN()
