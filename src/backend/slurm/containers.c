/* Containers of a Slurm pod as job steps (docs/slurm.md "Containers").
 *
 * Files of a container, in <shared_dir>/pods/<pod id>/<container id>/:
 *   config.json   OCI bundle config (the oci backend's spec generator);
 *                 root = the image's read-only rootfs + tmpfs /tmp /run /var/tmp
 *   launch.json   what the step needs: job id, mpi, cpus, gpus, log path
 *   start         StartContainer was called (the step may still be queued)
 *   monitor       "MONITOR_PID SRUN_PID STARTED_NS" (step.c)
 *   exit          "EXIT_CODE FINISHED_NS"
 * Everything the daemon needs after a restart is in these files.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "backend/oci/spec.h"
#include "backend/slurm/exec.h"
#include "backend/slurm/map.h"
#include "backend/slurm/sample.h"
#include "backend/slurm/slurm_int.h"
#include "backend/slurm/step.h"
#include "util/cleanup.h"
#include "util/log.h"

#define CMD_TIMEOUT_MS 60000

static void hp_slurm_json_decrefp(json_t **j)
{
    json_decref(*j);
}
#define _cleanup_json_ __attribute__((cleanup(hp_slurm_json_decrefp)))
#define KILL_WAIT_MS   10000
/* how long a failed container of a COMPLETING job waits for the final state */
#define COMPLETING_WAIT_NS (30LL * 1000000000)

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool valid_id(const char *s)
{
    if (!s || !*s || strlen(s) > 128)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
            return false;
    return true;
}

/* <pod dir>/<container id> into buf. */
static int ctr_dir(slurm_be *b, const hp_be_container *c, char *buf, size_t cap, hp_err *err)
{
    if (!valid_id(c->id))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid container id \"%.80s\"", c->id);
    char pd[4096];
    if (hp_slurm_pod_dir(b, c->pod_id, pd, sizeof pd, err) < 0)
        return -1;
    if ((size_t)snprintf(buf, cap, "%s/%s", pd, c->id) >= cap)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "container path too long");
    return 0;
}

/* dir/name into p (at least PATH_CAP); "" when too long. */
#define PATH_CAP 4400
static const char *pjoin(char *p, const char *dir, const char *name)
{
    if ((size_t)snprintf(p, PATH_CAP, "%s/%s", dir, name) >= PATH_CAP)
        p[0] = '\0';
    return p;
}

static bool file_exists(const char *dir, const char *name)
{
    char p[PATH_CAP];
    return access(pjoin(p, dir, name), F_OK) == 0;
}

/* launch.json of a container: new object owned by the caller, or NULL. */
static json_t *load_json(const char *dir, const char *name, hp_err *err)
{
    char p[PATH_CAP];
    pjoin(p, dir, name);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    if (!j)
        hp_err_set(err, HP_NOT_FOUND, "cannot read %s: %s", p, je.text);
    return j;
}

static int write_json_atomic(const char *dir, const char *name, json_t *j, hp_err *err)
{
    char p[PATH_CAP], tmp[PATH_CAP + 8];
    pjoin(p, dir, name);
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", p) >= sizeof tmp)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "path too long");
    if (json_dump_file(j, tmp, JSON_COMPACT) < 0 || rename(tmp, p) < 0)
        return hp_err_sys(err, HP_INTERNAL, "cannot write %s", p);
    return 0;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int r = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    if (r < 0 && errno != ENOENT)
        hp_warn("slurm: cannot remove %s: %s", path, strerror(errno));
    return 0;
}

/* ---------- the entry list ---------- */

/* Find (or add, when add) the entry of container id; called with b->mu held. */
static ctr_entry *entry_get(slurm_be *b, const char *id, const char *pod_id, const char *dir,
                            const char *job_id, bool add)
{
    for (ctr_entry *e = b->ctrs; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    if (!add)
        return NULL;
    ctr_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->id = strdup(id);
    e->pod_id = strdup(pod_id);
    e->dir = strdup(dir);
    snprintf(e->job_id, sizeof e->job_id, "%s", job_id);
    if (!e->id || !e->pod_id || !e->dir) {
        free(e->id);
        free(e->pod_id);
        free(e->dir);
        free(e);
        return NULL;
    }
    e->state = CE_PENDING;
    e->next = b->ctrs;
    b->ctrs = e;
    return e;
}

static void entry_drop(slurm_be *b, const char *id)
{
    for (ctr_entry **pp = &b->ctrs; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0) {
            ctr_entry *e = *pp;
            *pp = e->next;
            free(e->id);
            free(e->pod_id);
            free(e->dir);
            free(e);
            return;
        }
}

/* ---------- create ---------- */

int hp_slurm_ctr_create(hp_backend *be, hp_be_container *c, hp_err *err)
{
    slurm_be *b = sbe(be);
    char dir[4200], pd[4096];
    if (ctr_dir(b, c, dir, sizeof dir, err) < 0 ||
        hp_slurm_pod_dir(b, c->pod_id, pd, sizeof pd, err) < 0)
        return -1;
    if (!c->config)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "container %s has no config", c->id);
    if (!c->rootfs_hint)
        return hp_err_set(err, HP_FAILED_PRECONDITION,
                          "container %s: no image root file system was prepared", c->id);
    _cleanup_json_ json_t *pod = load_json(pd, "pod.json", err);
    if (!pod)
        return hp_err_wrap(err, "pod %s has no Slurm job record", c->pod_id);
    const char *job_id = json_string_value(json_object_get(pod, "job_id"));
    if (!job_id || !*job_id)
        return hp_err_set(err, HP_FAILED_PRECONDITION, "pod %s has no Slurm job id", c->pod_id);
    if (mkdir(dir, 0755) < 0)
        return errno == EEXIST
                   ? hp_err_set(err, HP_ALREADY_EXISTS, "container %s already exists", c->id)
                   : hp_err_sys(err, HP_INTERNAL, "cannot create %s", dir);

    _cleanup_json_ json_t *l = NULL;
    hp_oci_image_config ic;
    memset(&ic, 0, sizeof ic);
    if (c->image_config_json && *c->image_config_json &&
        hp_oci_image_config_parse(c->image_config_json, &ic, err) < 0)
        return -1;
    hp_oci_spec_opts o;
    memset(&o, 0, sizeof o);
    o.root_path = c->rootfs_hint; /* read-only image rootfs (see docs: shared image store) */
    o.rootfs_dir = c->rootfs_hint;
    o.rootfs_tmpfs = true;
    o.host_network = true; /* the node's network: Slurm jobs have no pod network */
    o.rootless = b->uid != 0;
    o.uid = b->uid;
    o.gid = b->gid;
    /* crun --cgroup-manager=disabled keeps the container in the step's
     * cgroup (Slurm's limits, accounting and kill apply); runc gets a path
     * relative to its own cgroup, i.e. below the step's. */
    char cgp[200];
    snprintf(cgp, sizeof cgp, "hpcri-%s", c->id);
    o.cgroups_path = b->runtime_crun || o.rootless ? NULL : cgp; /* rootless: no cgroups */
    json_t *spec = hp_oci_spec_container(c->pod_config, c->config, &ic, &o, err);
    int sig = hp_oci_cri_signal(c->config->stop_signal);
    if (!sig)
        sig = hp_oci_signal_by_name(ic.stop_signal);
    if (!sig)
        sig = SIGTERM;
    hp_oci_image_config_clear(&ic);
    if (!spec)
        goto fail;
    /* The container lives in the step's cgroup, which Slurm owns: no cgroup
     * mount or namespace (crun also refuses cgroup mounts on hybrid hosts). */
    json_t *mounts = json_object_get(spec, "mounts");
    for (size_t i = json_array_size(mounts); i-- > 0;) {
        const char *dst =
            json_string_value(json_object_get(json_array_get(mounts, i), "destination"));
        if (dst && strcmp(dst, "/sys/fs/cgroup") == 0)
            json_array_remove(mounts, i);
    }
    json_t *nss = json_object_get(json_object_get(spec, "linux"), "namespaces");
    for (size_t i = json_array_size(nss); i-- > 0;) {
        const char *t = json_string_value(json_object_get(json_array_get(nss, i), "type"));
        if (t && strcmp(t, "cgroup") == 0)
            json_array_remove(nss, i);
    }
    /* the job's identity inside the container, as for any Slurm task */
    json_t *penv = json_object_get(json_object_get(spec, "process"), "env");
    if (json_is_array(penv)) {
        char kv[64];
        snprintf(kv, sizeof kv, "SLURM_JOB_ID=%s", job_id);
        json_array_append_new(penv, json_string(kv));
    }
    int rc = write_json_atomic(dir, "config.json", spec, err);
    json_decref(spec);
    if (rc < 0)
        goto fail;
    json_t *mpi = json_object_get(pod, "mpi");
    l = json_pack("{s:s, s:O, s:I, s:I, s:s, s:i}", "job_id", job_id, "mpi",
                  mpi ? mpi : json_null(), "cpus",
                  (json_int_t)json_integer_value(json_object_get(pod, "cpus")), "gpus",
                  (json_int_t)json_integer_value(json_object_get(pod, "gpus")), "log_path",
                  c->log_path ? c->log_path : "", "stop_signal", sig);
    if (!l) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    if (write_json_atomic(dir, "launch.json", l, err) < 0)
        goto fail;
    free(c->backend_state);
    c->backend_state = json_dumps(l, JSON_COMPACT);
    return 0;
fail:
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    return -1;
}

/* ---------- launch ---------- */

/* Add GPU device node idx (gpu_devices) to spec: a bind mount when
 * rootless (no mknod in a user namespace), else linux.devices plus a
 * device-cgroup allow rule.  The node is stat()ed here, on the daemon's
 * node: the compute nodes must have the same device numbers (docs). */
static int add_gpu_device(slurm_be *b, json_t *spec, long idx, hp_err *err)
{
    char host[1024], cpath[1100];
    if (hp_slurm_gpu_device(b->gpu_devices, idx, host, sizeof host, cpath, sizeof cpath) < 0)
        return hp_err_set(err, HP_FAILED_PRECONDITION,
                          "GPU index %ld has no device in gpu_devices = %s", idx, b->gpu_devices);
    struct stat st;
    if (stat(host, &st) < 0)
        return hp_err_sys(err, HP_FAILED_PRECONDITION, "GPU %ld: device %s", idx, host);
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
        return hp_err_set(err, HP_FAILED_PRECONDITION, "GPU %ld: %s is not a device node", idx,
                          host);
    json_t *linux = json_object_get(spec, "linux");
    if (!json_is_object(linux))
        return hp_err_set(err, HP_INTERNAL, "config.json has no linux section");
    if (b->uid != 0) {
        json_t *mounts = json_object_get(spec, "mounts");
        json_t *m = json_pack("{s:s, s:s, s:s, s:[s, s, s]}", "destination", cpath, "type", "bind",
                              "source", host, "options", "bind", "rprivate", "rw");
        if (!json_is_array(mounts) || !m || json_array_append_new(mounts, m) < 0)
            return hp_err_set(err, HP_INTERNAL, "cannot add the mount of %s", host);
        return 0;
    }
    const char *type = S_ISCHR(st.st_mode) ? "c" : "b";
    json_t *devs = json_object_get(linux, "devices");
    if (!devs) {
        devs = json_array();
        json_object_set_new(linux, "devices", devs);
    }
    json_t *res = json_object_get(linux, "resources");
    if (!res) {
        res = json_object();
        json_object_set_new(linux, "resources", res);
    }
    json_t *rules = json_object_get(res, "devices");
    if (!rules) {
        rules = json_array();
        json_object_set_new(res, "devices", rules);
    }
    json_t *d = json_pack("{s:s, s:s, s:I, s:I, s:i, s:I, s:I}", "path", cpath, "type", type,
                          "major", (json_int_t)major(st.st_rdev), "minor",
                          (json_int_t)minor(st.st_rdev), "fileMode", (int)(st.st_mode & 07777),
                          "uid", (json_int_t)st.st_uid, "gid", (json_int_t)st.st_gid);
    json_t *r = json_pack("{s:b, s:s, s:I, s:I, s:s}", "allow", 1, "type", type, "major",
                          (json_int_t)major(st.st_rdev), "minor", (json_int_t)minor(st.st_rdev),
                          "access", "rwm");
    if (!json_is_array(devs) || !json_is_array(rules) || !d || !r ||
        json_array_append_new(devs, d) < 0 || json_array_append_new(rules, r) < 0)
        return hp_err_set(err, HP_INTERNAL, "cannot add device %s to config.json", host);
    return 0;
}

/* The job's GPUs for the container, as Slurm gives them to a task:
 * CUDA_VISIBLE_DEVICES and SLURM_STEP_GPUS = the job's GPU indices on its
 * node (scontrol -d show job), and, with gpu_devices, exactly those device
 * nodes in config.json. */
static int add_gpus(slurm_be *b, const char *dir, const char *job_id, hp_err *err)
{
    char idarg[40];
    snprintf(idarg, sizeof idarg, "%s", job_id);
    char *const argv[] = {"scontrol", "-d", "show", "job", idarg, NULL};
    hp_slurm_out o;
    if (hp_slurm_exec(b->scontrol, argv, CMD_TIMEOUT_MS, &o, err) < 0)
        return hp_err_wrap(err, "scontrol show job %s", job_id);
    char idx[256];
    int r = o.status == 0 ? hp_slurm_gpu_idx(o.out, idx, sizeof idx) : -1;
    hp_slurm_out_free(&o);
    if (r < 0) {
        if (b->gpu_devices)
            return hp_err_set(err, HP_FAILED_PRECONDITION,
                              "Slurm job %s: no GPU indices in scontrol -d show job", job_id);
        hp_warn("Slurm job %s: no GPU indices in scontrol -d output", job_id);
        return 0;
    }
    _cleanup_json_ json_t *spec = load_json(dir, "config.json", err);
    if (!spec)
        return -1;
    json_t *penv = json_object_get(json_object_get(spec, "process"), "env");
    if (!json_is_array(penv))
        return 0;
    char kv[300];
    snprintf(kv, sizeof kv, "CUDA_VISIBLE_DEVICES=%s", idx);
    json_array_append_new(penv, json_string(kv));
    snprintf(kv, sizeof kv, "SLURM_STEP_GPUS=%s", idx);
    json_array_append_new(penv, json_string(kv));
    if (b->gpu_devices)
        for (const char *p = idx; *p;) {
            char *end;
            long i = strtol(p, &end, 10);
            if (end == p || add_gpu_device(b, spec, i, err) < 0)
                return hp_err_wrap(err, "Slurm job %s", job_id);
            p = *end == ',' ? end + 1 : end;
        }
    return write_json_atomic(dir, "config.json", spec, err);
}

/* Start the step of container `id` in dir: srun under a detached monitor.
 * The job must be RUNNING. */
static int launch(slurm_be *b, const char *id, const char *dir, hp_err *err)
{
    _cleanup_json_ json_t *l = load_json(dir, "launch.json", err);
    if (!l)
        return -1;
    const char *job_id = json_string_value(json_object_get(l, "job_id"));
    const char *mpi = json_string_value(json_object_get(l, "mpi"));
    const char *log_path = json_string_value(json_object_get(l, "log_path"));
    long cpus = (long)json_integer_value(json_object_get(l, "cpus"));
    long gpus = (long)json_integer_value(json_object_get(l, "gpus"));
    if (!job_id)
        return hp_err_set(err, HP_DATA_LOSS, "%s/launch.json has no job id", dir);
    if (gpus > 0 && add_gpus(b, dir, job_id, err) < 0)
        return -1;
    hp_slurm_argv a = {0};
    int ok = hp_slurm_argv_add(&a, "srun") | hp_slurm_argv_add(&a, "--jobid=%s", job_id) |
             hp_slurm_argv_add(&a, "--overlap") | hp_slurm_argv_add(&a, "--ntasks=1") |
             hp_slurm_argv_add(&a, "--nodes=1") | hp_slurm_argv_add(&a, "--quiet") |
             hp_slurm_argv_add(&a, "--job-name=%s", id);
    if (mpi && *mpi && strcmp(mpi, "none") != 0)
        ok |= hp_slurm_argv_add(&a, "--mpi=%s", mpi);
    if (cpus > 0)
        ok |= hp_slurm_argv_add(&a, "--cpus-per-task=%ld", cpus);
    if (b->step_helper) {
        /* samples the container's usage into <dir>/stats on the compute
         * node (runc: its cgroup hpcri-<id>; crun stays in the step's
         * cgroup: the helper's process tree) */
        char sp[PATH_CAP];
        ok |= hp_slurm_argv_add(&a, "%s", b->step_helper) | hp_slurm_argv_add(&a, "--stats") |
              hp_slurm_argv_add(&a, "%s", pjoin(sp, dir, "stats")) |
              hp_slurm_argv_add(&a, "--interval-ms") |
              hp_slurm_argv_add(&a, "%d", b->stats_interval_ms);
        if (!b->runtime_crun && b->uid == 0)
            ok |= hp_slurm_argv_add(&a, "--cgroup") | hp_slurm_argv_add(&a, "hpcri-%s", id);
        ok |= hp_slurm_argv_add(&a, "--");
    }
    ok |= hp_slurm_argv_add(&a, "%s", b->runtime);
    if (b->runtime_crun)
        ok |= hp_slurm_argv_add(&a, "--cgroup-manager=disabled");
    ok |= hp_slurm_argv_add(&a, "run") | hp_slurm_argv_add(&a, "--bundle") |
          hp_slurm_argv_add(&a, "%s", dir) | hp_slurm_argv_add(&a, "%s", id);
    if (ok != 0) {
        hp_slurm_argv_free(&a);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    pid_t mon = 0;
    int rc = hp_slurm_monitor_spawn(b->srun, a.v, log_path && *log_path ? log_path : NULL, dir,
                                    &mon, err);
    hp_slurm_argv_free(&a);
    if (rc < 0)
        return -1;
    hp_info("container %s: step launched in Slurm job %s (monitor pid %d)", id, job_id, (int)mon);
    return 0;
}

/* Launch entry e now if its job runs (called without b->mu; e->state was
 * set to CE_LAUNCHING by the caller). */
static void launch_entry(slurm_be *b, ctr_entry *e, const char *id, const char *dir)
{
    hp_err err = HP_ERR_INIT;
    int rc = launch(b, id, dir, &err);
    if (rc < 0) {
        hp_warn("container %s: cannot launch its step: %s", id, err.msg);
        hp_err e2 = HP_ERR_INIT;
        hp_slurm_write_exit(dir, 128, real_ns(), &e2);
    }
    pthread_mutex_lock(&b->mu);
    e->state = rc < 0 ? CE_DONE : CE_LAUNCHED;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
}

/* ---------- status ---------- */

/* Status from the container's files and the poller's cache (no command). */
static void compute_status(slurm_be *b, const char *dir, const char *job_id, hp_be_status *st)
{
    memset(st, 0, sizeof *st);
    hp_slurm_job j;
    int jr = hp_slurm_poller_get(b->poller, job_id, &j);
    bool job_final = jr == 0 && hp_slurm_state_final(j.state);
    pid_t mon = 0, srun = 0;
    int64_t started = 0;
    bool have_mon = hp_slurm_read_monitor(dir, &mon, &srun, &started) == 0;
    int32_t code;
    int64_t fin;
    bool have_exit = hp_slurm_read_exit(dir, &code, &fin) == 0;
    if (!have_exit && have_mon && !hp_slurm_pid_alive(mon))
        have_exit = hp_slurm_read_exit(dir, &code, &fin) == 0; /* written just now? */

    if (have_exit) {
        /* A failure may be the job's end (scancel, time limit, node
         * failure): decide once the poller has looked after the exit. */
        bool stale = hp_slurm_poller_last_start_ns(b->poller) < fin;
        /* A job that is COMPLETING has ended but its final state is not
         * known yet; squeue's reason already says "TimeLimit" for a time
         * limit.  Otherwise wait for the final state (bounded: a node
         * stuck in COMPLETING must not keep the container RUNNING). */
        bool completing = code != 0 && jr == 0 && strcmp(j.state, "COMPLETING") == 0;
        bool timelimit = completing && strcmp(j.reason, "TimeLimit") == 0;
        if (code != 0 && !job_final && !timelimit &&
            (stale || (completing && real_ns() - fin < COMPLETING_WAIT_NS))) {
            st->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
            st->started_at = started;
            return;
        }
        st->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
        st->started_at = started;
        st->finished_at = fin;
        st->exit_code = code;
        const char *jr_reason = job_final   ? hp_slurm_state_reason(j.state)
                                : timelimit ? hp_slurm_state_reason("TIMEOUT")
                                            : NULL;
        if (code != 0 && jr_reason) {
            snprintf(st->reason, sizeof st->reason, "%s", jr_reason);
            snprintf(st->message, sizeof st->message, "Slurm job %s ended: %s", job_id,
                     timelimit ? "TIMEOUT (time limit reached, job completing)" : j.state);
        } else {
            snprintf(st->reason, sizeof st->reason, "%s", code == 0 ? "Completed" : "Error");
            if (!have_mon)
                snprintf(st->message, sizeof st->message, "the container's step was never started");
        }
        return;
    }
    if (have_mon) {
        if (hp_slurm_pid_alive(mon)) {
            st->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
            st->started_at = started;
            return;
        }
        /* monitor gone without an exit file (killed, node reboot) */
        st->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
        st->started_at = started;
        st->finished_at = real_ns();
        int a = 0, s2 = 0;
        st->exit_code =
            (jr == 0 && sscanf(j.exit_code, "%d:%d", &a, &s2) == 2) ? (s2 ? 128 + s2 : a) : 255;
        const char *r = job_final ? hp_slurm_state_reason(j.state) : NULL;
        snprintf(st->reason, sizeof st->reason, "%s", r ? r : "Error");
        snprintf(st->message, sizeof st->message,
                 "the step monitor (pid %d) ended without an exit status; Slurm job %s is %s",
                 (int)mon, job_id, jr == 0 ? j.state : "unknown");
        return;
    }
    if (file_exists(dir, "start")) {
        if (job_final) {
            st->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
            st->finished_at = real_ns();
            st->exit_code = 128 + SIGKILL;
            const char *r = hp_slurm_state_reason(j.state);
            snprintf(st->reason, sizeof st->reason, "%s", r ? r : "Error");
            snprintf(st->message, sizeof st->message,
                     "Slurm job %s ended (%s) before the container's step could start", job_id,
                     j.state);
            return;
        }
        /* queued: the kubelet must see it started (a CREATED container is
         * re-created by computePodActions); the reason is in the message */
        st->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
        snprintf(st->message, sizeof st->message, "waiting for Slurm allocation: %s",
                 jr == 0 ? j.reason : "Submitted");
        return;
    }
    st->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED;
}

/* job id of a container (launch.json), into buf. */
static int ctr_job(const char *dir, char *buf, size_t cap, hp_err *err)
{
    _cleanup_json_ json_t *l = load_json(dir, "launch.json", err);
    if (!l)
        return -1;
    const char *id = json_string_value(json_object_get(l, "job_id"));
    if (!id || strlen(id) >= cap)
        return hp_err_set(err, HP_DATA_LOSS, "%s/launch.json has no job id", dir);
    snprintf(buf, cap, "%s", id);
    return 0;
}

int hp_slurm_ctr_status(hp_backend *be, hp_be_container *c, hp_be_status *st, hp_err *err)
{
    slurm_be *b = sbe(be);
    char dir[4200], job[24];
    if (ctr_dir(b, c, dir, sizeof dir, err) < 0)
        return -1;
    if (ctr_job(dir, job, sizeof job, err) < 0)
        return -1;
    compute_status(b, dir, job, st);
    if (st->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING) {
        /* after a daemon restart: watch it again (launch when queued) */
        pthread_mutex_lock(&b->mu);
        ctr_entry *e = entry_get(b, c->id, c->pod_id, dir, job, false);
        if (!e && (e = entry_get(b, c->id, c->pod_id, dir, job, true)) != NULL) {
            e->state = file_exists(dir, "monitor") ? CE_LAUNCHED : CE_PENDING;
            pthread_cond_broadcast(&b->cond);
        }
        pthread_mutex_unlock(&b->mu);
    }
    return 0;
}

/* ---------- start ---------- */

int hp_slurm_ctr_start(hp_backend *be, hp_be_container *c, hp_err *err)
{
    slurm_be *b = sbe(be);
    char dir[4200], job[24];
    if (ctr_dir(b, c, dir, sizeof dir, err) < 0 || ctr_job(dir, job, sizeof job, err) < 0)
        return -1;
    hp_slurm_job j;
    int jr = hp_slurm_poller_get(b->poller, job, &j);
    if (jr == 0 && (hp_slurm_state_final(j.state) || strcmp(j.state, "COMPLETING") == 0))
        return hp_err_set(err, HP_FAILED_PRECONDITION,
                          "the pod's Slurm job %s has ended (%s): no new containers", job, j.state);
    char p[PATH_CAP];
    pjoin(p, dir, "start");
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return hp_err_sys(err, HP_INTERNAL, "cannot create %s", p);
    close(fd);
    pthread_mutex_lock(&b->mu);
    ctr_entry *e = entry_get(b, c->id, c->pod_id, dir, job, true);
    if (!e) {
        pthread_mutex_unlock(&b->mu);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    bool now = jr == 0 && strcmp(j.state, "RUNNING") == 0 && e->state == CE_PENDING;
    if (now)
        e->state = CE_LAUNCHING;
    pthread_mutex_unlock(&b->mu);
    if (!now) {
        hp_info("container %s: waiting for Slurm allocation of job %s (%s)", c->id, job,
                jr == 0 ? j.reason : "not yet seen by squeue");
        pthread_mutex_lock(&b->mu);
        pthread_cond_broadcast(&b->cond);
        pthread_mutex_unlock(&b->mu);
        return 0;
    }
    int rc = launch(b, c->id, dir, err);
    pthread_mutex_lock(&b->mu);
    e->state = rc < 0 ? CE_DONE : CE_LAUNCHED;
    if (rc < 0) {
        unlink(p);
        entry_drop(b, c->id);
    }
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* ---------- the launcher thread ---------- */

static void *launcher(void *arg)
{
    slurm_be *b = arg;
    uint64_t gen = 0;
    int interval = hp_slurm_poller_interval_ms(b->poller);
    pthread_mutex_lock(&b->mu);
    while (!b->stop) {
        pthread_mutex_unlock(&b->mu);
        gen = hp_slurm_poller_wait(b->poller, gen, interval * 2);
        pthread_mutex_lock(&b->mu);
        if (b->stop)
            break;
        /* one action per pass keeps the lock discipline simple; loop until
         * nothing is left to do in this generation */
        for (bool again = true; again && !b->stop;) {
            again = false;
            for (ctr_entry *e = b->ctrs; e; e = e->next) {
                if (e->state == CE_PENDING) {
                    hp_slurm_job j;
                    int jr = hp_slurm_poller_get(b->poller, e->job_id, &j);
                    if (jr != 0)
                        continue;
                    if (file_exists(e->dir, "exit")) { /* stopped while queued */
                        e->state = CE_DONE;
                        continue;
                    }
                    if (strcmp(j.state, "RUNNING") == 0) {
                        e->state = CE_LAUNCHING;
                        char *id = strdup(e->id), *dir = strdup(e->dir);
                        pthread_mutex_unlock(&b->mu);
                        if (id && dir)
                            launch_entry(b, e, id, dir);
                        free(id);
                        free(dir);
                        pthread_mutex_lock(&b->mu);
                        again = true;
                        break;
                    }
                    if (hp_slurm_state_final(j.state))
                        e->state = CE_DONE; /* compute_status reports it */
                    else
                        continue;
                }
                if ((e->state == CE_LAUNCHED || e->state == CE_DONE) && !e->reported &&
                    b->base.host.on_container_exit) {
                    hp_be_status st;
                    compute_status(b, e->dir, e->job_id, &st);
                    if (st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED)
                        continue;
                    e->reported = true;
                    char *id = strdup(e->id);
                    pthread_mutex_unlock(&b->mu);
                    if (id)
                        b->base.host.on_container_exit(b->base.host.ud, id, &st);
                    free(id);
                    pthread_mutex_lock(&b->mu);
                    again = true;
                    break;
                }
            }
        }
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

int hp_slurm_ctrs_init(slurm_be *b, hp_err *err)
{
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cond, NULL);
    b->ctrs_inited = true;
    int rc = pthread_create(&b->thread, NULL, launcher, b);
    if (rc != 0) {
        errno = rc;
        return hp_err_sys(err, HP_INTERNAL, "cannot start the Slurm step launcher thread");
    }
    b->thread_running = true;
    return 0;
}

void hp_slurm_ctrs_fini(slurm_be *b)
{
    if (!b->ctrs_inited)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
    if (b->thread_running)
        pthread_join(b->thread, NULL);
    while (b->ctrs)
        entry_drop(b, b->ctrs->id);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cond);
    b->ctrs_inited = false;
}

/* ---------- stop ---------- */

/* "J.S" of the step named `id` (srun --job-name) in job J, via squeue -s. */
static int find_step(slurm_be *b, const char *job, const char *id, char *buf, size_t cap,
                     hp_err *err)
{
    char jarg[40];
    snprintf(jarg, sizeof jarg, "%s", job);
    char *const argv[] = {"squeue", "-h", "-s", "-j", jarg, "-o", "%i|%j", NULL};
    hp_slurm_out o;
    if (hp_slurm_exec(b->squeue, argv, CMD_TIMEOUT_MS, &o, err) < 0)
        return -1;
    int rc = hp_err_set(err, HP_NOT_FOUND, "no step named %s in Slurm job %s", id, job);
    for (char *line = o.out; line && *line;) {
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = '\0';
        char *bar = strchr(line, '|');
        if (bar && strcmp(bar + 1, id) == 0 && (size_t)(bar - line) < cap) {
            memcpy(buf, line, (size_t)(bar - line));
            buf[bar - line] = '\0';
            hp_err_clear(err);
            rc = 0;
            break;
        }
        line = eol ? eol + 1 : NULL;
    }
    hp_slurm_out_free(&o);
    return rc;
}

static int signal_step(slurm_be *b, const char *step, int sig, hp_err *err)
{
    char sarg[32];
    snprintf(sarg, sizeof sarg, "--signal=%d", sig);
    char starg[40];
    snprintf(starg, sizeof starg, "%s", step);
    char *const argv[] = {"scancel", sarg, starg, NULL};
    hp_slurm_out o;
    if (hp_slurm_exec(b->scancel, argv, CMD_TIMEOUT_MS, &o, err) < 0)
        return -1;
    int rc = 0;
    if (o.status != 0) {
        char msg[400];
        hp_slurm_errtext(o.errout, msg, sizeof msg);
        if (!strstr(msg, "already completing or completed") && !strstr(msg, "Invalid job id"))
            rc = hp_err_set(err, HP_INTERNAL, "scancel --signal=%d %s: %s", sig, step, msg);
    }
    hp_slurm_out_free(&o);
    return rc;
}

/* `<runtime> kill <id> <sig>` through an overlap step of the job: the
 * runtime signals the container's init (a step signal would only reach
 * runc, whose container lives in its own cgroup below the step's). */
static int runtime_kill(slurm_be *b, const char *job, const char *id, int sig, hp_err *err)
{
    hp_slurm_argv a = {0};
    int ok = hp_slurm_argv_add(&a, "srun") | hp_slurm_argv_add(&a, "--jobid=%s", job) |
             hp_slurm_argv_add(&a, "--overlap") | hp_slurm_argv_add(&a, "--ntasks=1") |
             hp_slurm_argv_add(&a, "--nodes=1") | hp_slurm_argv_add(&a, "--quiet") |
             hp_slurm_argv_add(&a, "--job-name=kill-%s", id) |
             hp_slurm_argv_add(&a, "%s", b->runtime);
    if (b->runtime_crun)
        ok |= hp_slurm_argv_add(&a, "--cgroup-manager=disabled");
    ok |= hp_slurm_argv_add(&a, "kill") | hp_slurm_argv_add(&a, "%s", id) |
          hp_slurm_argv_add(&a, "%d", sig);
    if (ok != 0) {
        hp_slurm_argv_free(&a);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    hp_slurm_out o;
    int rc = hp_slurm_exec(b->srun, a.v, CMD_TIMEOUT_MS, &o, err);
    hp_slurm_argv_free(&a);
    if (rc < 0)
        return -1;
    if (o.status != 0)
        hp_debug("container %s: %s kill %d: %s", id, b->runtime, sig, o.errout);
    hp_slurm_out_free(&o);
    return 0;
}

static bool wait_exit(const char *dir, int64_t timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        if (file_exists(dir, "exit"))
            return true;
        if (mono_ms() >= deadline)
            return false;
        usleep(20000);
    }
}

int hp_slurm_ctr_stop(hp_backend *be, hp_be_container *c, int64_t timeout_s, hp_err *err)
{
    slurm_be *b = sbe(be);
    char dir[4200], job[24];
    if (ctr_dir(b, c, dir, sizeof dir, err) < 0 || ctr_job(dir, job, sizeof job, err) < 0)
        return -1;
    /* a queued start: cancel the intent */
    pthread_mutex_lock(&b->mu);
    ctr_entry *e = entry_get(b, c->id, c->pod_id, dir, job, false);
    while (e && e->state == CE_LAUNCHING)
        pthread_cond_wait(&b->cond, &b->mu);
    bool queued = !file_exists(dir, "monitor") && !file_exists(dir, "exit");
    if (queued) {
        if (e)
            e->state = CE_DONE;
        int rc = hp_slurm_write_exit(dir, 128 + SIGTERM, real_ns(), err);
        pthread_mutex_unlock(&b->mu);
        return rc;
    }
    pthread_mutex_unlock(&b->mu);
    if (file_exists(dir, "exit"))
        return 0;
    pid_t mon, srun;
    int64_t started;
    if (hp_slurm_read_monitor(dir, &mon, &srun, &started) < 0)
        return hp_err_set(err, HP_INTERNAL, "container %s: no monitor record", c->id);
    _cleanup_json_ json_t *l = load_json(dir, "launch.json", err);
    int sig = l ? (int)json_integer_value(json_object_get(l, "stop_signal")) : SIGTERM;
    if (sig <= 0)
        sig = SIGTERM;
    hp_err e2 = HP_ERR_INIT;
    if (timeout_s > 0) {
        if (runtime_kill(b, job, c->id, sig, &e2) < 0)
            hp_warn("container %s: %s", c->id, e2.msg);
        if (wait_exit(dir, timeout_s * 1000))
            goto done;
    }
    hp_err_clear(&e2);
    if (runtime_kill(b, job, c->id, SIGKILL, &e2) < 0)
        hp_warn("container %s: %s", c->id, e2.msg);
    if (wait_exit(dir, KILL_WAIT_MS))
        goto done;
    /* the runtime could not do it (job ending, node trouble): the step */
    char step[48] = "";
    hp_err_clear(&e2);
    if (find_step(b, job, c->id, step, sizeof step, &e2) == 0)
        signal_step(b, step, SIGKILL, &e2);
    if (!wait_exit(dir, KILL_WAIT_MS)) {
        hp_warn("container %s: step not gone %d ms after SIGKILL; killing srun", c->id,
                KILL_WAIT_MS);
        kill(srun, SIGKILL);
        if (!wait_exit(dir, 2000))
            return hp_err_set(err, HP_INTERNAL, "container %s: its step did not end", c->id);
    }
done:;
    /* let the poller look once after the exit, so that the reason (e.g. a
     * job cancelled at the same time) is decided on fresh data */
    int32_t code;
    int64_t fin;
    if (hp_slurm_read_exit(dir, &code, &fin) == 0) {
        int64_t deadline = mono_ms() + 3 * hp_slurm_poller_interval_ms(b->poller);
        while (hp_slurm_poller_last_start_ns(b->poller) < fin && mono_ms() < deadline)
            hp_slurm_poller_wait(b->poller, hp_slurm_poller_generation(b->poller), 500);
    }
    return 0;
}

/* ---------- remove, log, stats, exec ---------- */

int hp_slurm_ctr_remove(hp_backend *be, hp_be_container *c, hp_err *err)
{
    slurm_be *b = sbe(be);
    char dir[4200];
    if (ctr_dir(b, c, dir, sizeof dir, err) < 0)
        return -1;
    pthread_mutex_lock(&b->mu);
    ctr_entry *e = entry_get(b, c->id, c->pod_id, dir, "", false);
    while (e && e->state == CE_LAUNCHING) {
        pthread_cond_wait(&b->cond, &b->mu);
        e = entry_get(b, c->id, c->pod_id, dir, "", false);
    }
    entry_drop(b, c->id);
    pthread_mutex_unlock(&b->mu);
    pid_t mon, srun;
    int64_t started;
    if (!file_exists(dir, "exit") && hp_slurm_read_monitor(dir, &mon, &srun, &started) == 0 &&
        hp_slurm_pid_alive(srun))
        kill(srun, SIGKILL);
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

int hp_slurm_ctr_reopen_log(hp_backend *be, hp_be_container *c, hp_err *err)
{
    slurm_be *b = sbe(be);
    char dir[4200];
    if (ctr_dir(b, c, dir, sizeof dir, err) < 0)
        return -1;
    pid_t mon, srun;
    int64_t started;
    if (hp_slurm_read_monitor(dir, &mon, &srun, &started) < 0 || !hp_slurm_pid_alive(mon))
        return hp_err_set(err, HP_FAILED_PRECONDITION, "container %s has no running step monitor",
                          c->id);
    if (kill(mon, SIGUSR1) < 0)
        return hp_err_sys(err, HP_INTERNAL, "cannot signal the monitor of %s", c->id);
    return 0;
}

int hp_slurm_ctr_stats(hp_backend *be, hp_be_container *c, hp_be_stats *out, hp_err *err)
{
    slurm_be *b = sbe(be);
    char dir[4200];
    if (ctr_dir(b, c, dir, sizeof dir, err) < 0)
        return -1;
    memset(out, 0, sizeof *out);
    out->timestamp = real_ns();
    /* the step helper's last sample (sample.h); without one (no helper,
     * queued, first interval) the fields stay unset */
    char p[PATH_CAP], buf[512];
    _cleanup_fclose_ FILE *f = fopen(pjoin(p, dir, "stats"), "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    hp_step_sample s;
    if (hp_step_sample_parse(buf, &s) < 0)
        return 0;
    out->timestamp = s.ts_ns;
    out->has_cpu = s.has_cpu;
    out->cpu_usage_ns = s.cpu_ns;
    out->has_memory = s.has_mem;
    out->memory_working_set = s.mem_ws;
    out->memory_rss = s.mem_rss;
    out->memory_usage = s.mem_usage;
    out->has_writable_layer = s.has_wl;
    out->writable_bytes = s.wl_bytes;
    out->writable_inodes = s.wl_inodes;
    /* the scratch tmpfs mounts live in the container: name its directory */
    size_t ml = strnlen(dir, sizeof out->writable_mountpoint - 1);
    memcpy(out->writable_mountpoint, dir, ml);
    out->writable_mountpoint[ml] = '\0';
    return 0;
}

/* Drop srun's own trailing "srun: error: NODE: task 0: Exited with exit
 * code N" line(s) from an exec's stderr. */
static void strip_srun_tail(uint8_t *buf, size_t *len)
{
    while (*len > 0) {
        size_t end = *len;
        if (buf[end - 1] == '\n')
            end--;
        size_t start = end;
        while (start > 0 && buf[start - 1] != '\n')
            start--;
        size_t ll = end - start;
        const char *line = (const char *)buf + start;
        if (ll > 12 && memcmp(line, "srun: error:", 12) == 0 && memmem(line, ll, ": task ", 7)) {
            *len = start;
            continue;
        }
        break;
    }
}

/* The srun command running argv in container c as an --overlap step of its
 * job (argv[0] = argv0).  Fills a; 0, or -1 with err (FAILED_PRECONDITION
 * while the job waits for its allocation or after the container exited). */
static int exec_step_argv(slurm_be *b, hp_be_container *c, const char *argv0, char *const *argv,
                          size_t argc, bool tty, hp_slurm_argv *a, hp_err *err)
{
    char dir[4200], job[24];
    if (ctr_dir(b, c, dir, sizeof dir, err) < 0 || ctr_job(dir, job, sizeof job, err) < 0)
        return -1;
    pid_t mon, srun;
    int64_t started;
    if (hp_slurm_read_monitor(dir, &mon, &srun, &started) < 0) {
        hp_slurm_job j;
        int jr = hp_slurm_poller_get(b->poller, job, &j);
        return hp_err_set(err, HP_FAILED_PRECONDITION,
                          "container %s is waiting for its Slurm allocation (job %s: %s)", c->id,
                          job, jr == 0 ? j.reason : "not yet seen");
    }
    if (file_exists(dir, "exit"))
        return hp_err_set(err, HP_FAILED_PRECONDITION, "container %s has exited", c->id);
    int ok = hp_slurm_argv_add(a, "%s", argv0) | hp_slurm_argv_add(a, "--jobid=%s", job) |
             hp_slurm_argv_add(a, "--overlap") | hp_slurm_argv_add(a, "--ntasks=1") |
             hp_slurm_argv_add(a, "--nodes=1") | hp_slurm_argv_add(a, "--quiet") |
             hp_slurm_argv_add(a, "--job-name=exec-%s", c->id);
    if (tty) /* srun gives the step a terminal on the node and relays it */
        ok |= hp_slurm_argv_add(a, "--pty");
    ok |= hp_slurm_argv_add(a, "%s", b->runtime);
    if (b->runtime_crun)
        ok |= hp_slurm_argv_add(a, "--cgroup-manager=disabled");
    ok |= hp_slurm_argv_add(a, "exec");
    if (tty)
        ok |= hp_slurm_argv_add(a, "-t");
    ok |= hp_slurm_argv_add(a, "%s", c->id);
    for (size_t i = 0; i < argc; i++)
        ok |= hp_slurm_argv_add(a, "%s", argv[i]);
    if (ok != 0) {
        hp_slurm_argv_free(a);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    return 0;
}

int hp_slurm_ctr_exec_command(hp_backend *be, hp_be_container *c, char *const *argv, size_t argc,
                              bool tty, char ***out, hp_err *err)
{
    slurm_be *b = sbe(be);
    hp_slurm_argv a = {0};
    if (exec_step_argv(b, c, b->srun, argv, argc, tty, &a, err) < 0)
        return -1;
    *out = a.v; /* NULL-terminated array of malloc'd strings */
    return 0;
}

int hp_slurm_ctr_exec_sync(hp_backend *be, hp_be_container *c, char *const *argv, size_t argc,
                           int64_t timeout_s, hp_be_exec_result *res, hp_err *err)
{
    slurm_be *b = sbe(be);
    hp_slurm_argv a = {0};
    if (exec_step_argv(b, c, "srun", argv, argc, false, &a, err) < 0)
        return -1;
    int tmo = timeout_s <= 0 || timeout_s > 86400 ? 86400 * 1000 : (int)timeout_s * 1000;
    hp_slurm_out o;
    int rc = hp_slurm_exec(b->srun, a.v, tmo, &o, err);
    hp_slurm_argv_free(&a);
    if (rc < 0)
        return hp_err_wrap(err, "exec in container %s", c->id);
    res->out = (uint8_t *)o.out;
    res->out_len = o.out_len;
    res->errout = (uint8_t *)o.errout;
    res->err_len = o.err_len;
    strip_srun_tail(res->errout, &res->err_len);
    res->exit_code = o.status;
    return 0;
}
