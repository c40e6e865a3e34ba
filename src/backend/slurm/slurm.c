/* The slurm backend: ops table (see slurm.h, docs/slurm.md).
 *
 * One Slurm job per pod holds the allocation: its batch script is a keeper
 * that sleeps; containers will run in it as job steps (srun --overlap).
 * State comes from the batched poller (poll.c), never from a per-pod query.
 */
#include "backend/slurm/slurm.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/slurm/exec.h"
#include "backend/slurm/map.h"
#include "backend/slurm/poll.h"
#include "backend/slurm/slurm_int.h"
#include "util/cleanup.h"
#include "util/log.h"

#define CMD_TIMEOUT_MS 60000
#define STOP_GRACE_MS  10000
#define KEEPER_NAME    "hpcri-keeper.sh"

/* The batch script of every pod job: fixed text, no interpolated values.
 * It only holds the allocation; the job's working directory is the pod
 * directory in shared_dir (sbatch --chdir). */
static const char keeper_script[] =
    "#!/bin/sh\n"
    "# hpcri pod keeper: holds the Slurm allocation of one pod; its containers\n"
    "# run as job steps (srun --jobid=$SLURM_JOB_ID --overlap).  Written by hpcri.\n"
    "exec sleep infinity\n";

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct hp_slurm_poller *hp_slurm_backend_poller(hp_backend *be)
{
    return sbe(be)->poller;
}

/* ---------- helpers ---------- */

int hp_slurm_pod_dir(slurm_be *b, const char *pod_id, char *buf, size_t cap, hp_err *err)
{
    for (const char *p = pod_id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid pod id \"%.80s\"", pod_id);
    if (!*pod_id || (size_t)snprintf(buf, cap, "%s/%s", b->pods_dir, pod_id) >= cap)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid pod id \"%.80s\"", pod_id);
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

static int job_id_from_state(const char *state, char *buf, size_t cap)
{
    if (!state)
        return -1;
    json_error_t je;
    json_t *j = json_loads(state, 0, &je);
    if (!j)
        return -1;
    const char *id = json_string_value(json_object_get(j, "job_id"));
    int rc = -1;
    if (id && *id && strlen(id) < cap) {
        snprintf(buf, cap, "%s", id);
        rc = 0;
    }
    json_decref(j);
    return rc;
}

int hp_slurm_pod_job_id(hp_backend *be, const hp_be_pod *pod, char *buf, size_t cap, hp_err *err)
{
    slurm_be *b = sbe(be);
    if (job_id_from_state(pod->backend_state, buf, cap) == 0)
        return 0;
    /* Recovery: the job carries the pod id in its name. */
    char name[200];
    snprintf(name, sizeof name, "%s%s", b->prefix, pod->id);
    hp_slurm_job j;
    if (hp_slurm_poller_find_name(b->poller, name, &j) == 0 && strlen(j.id) < cap) {
        snprintf(buf, cap, "%s", j.id);
        return 0;
    }
    return hp_err_set(err, HP_NOT_FOUND,
                      "pod %s has no Slurm job (no job id stored, no job named %s)", pod->id, name);
}

/* gRPC code for Slurm's refusal of a submission. */
static int sbatch_code(const char *msg)
{
    if (strstr(msg, "Unable to contact slurm controller") || strstr(msg, "Socket timed out") ||
        strstr(msg, "Connection refused"))
        return HP_UNAVAILABLE;
    if (strstr(msg, "Invalid") || strstr(msg, "invalid"))
        return HP_INVALID_ARGUMENT;
    return HP_FAILED_PRECONDITION;
}

/* Run scancel with extra args; "already completed" and "invalid job id"
 * (gone) count as success. */
static int run_scancel(slurm_be *b, const char *job_id, const char *opt1, const char *opt2,
                       hp_err *err)
{
    char *argv[6];
    size_t n = 0;
    argv[n++] = "scancel";
    if (opt1)
        argv[n++] = (char *)opt1;
    if (opt2)
        argv[n++] = (char *)opt2;
    argv[n++] = (char *)job_id;
    argv[n] = NULL;
    hp_slurm_out o;
    if (hp_slurm_exec(b->scancel, argv, CMD_TIMEOUT_MS, &o, err) < 0)
        return hp_err_wrap(err, "scancel %s", job_id);
    int rc = 0;
    if (o.status != 0 || strstr(o.errout, "error")) {
        char msg[600];
        hp_slurm_errtext(o.errout, msg, sizeof msg);
        if (!strstr(msg, "already completing or completed") && !strstr(msg, "Invalid job id"))
            rc = hp_err_set(err, sbatch_code(msg) == HP_UNAVAILABLE ? HP_UNAVAILABLE : HP_INTERNAL,
                            "scancel %s failed: %s", job_id, msg);
    }
    hp_slurm_out_free(&o);
    return rc;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait (poll generations, no extra queries) until the job's cached state
 * is final or timeout.  Returns true when final. */
static bool wait_final(slurm_be *b, const char *job_id, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        uint64_t gen = hp_slurm_poller_generation(b->poller);
        hp_slurm_job j;
        int r = hp_slurm_poller_get(b->poller, job_id, &j);
        if (r == 0 && hp_slurm_state_final(j.state))
            return true;
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return false;
        hp_slurm_poller_wait(b->poller, gen, (int)left);
    }
}

/* ---------- sandbox ops ---------- */

static int sandbox_run(hp_backend *be, hp_be_pod *pod, hp_err *err)
{
    slurm_be *b = sbe(be);
    char pod_dir[4096];
    if (hp_slurm_pod_dir(b, pod->id, pod_dir, sizeof pod_dir, err) < 0)
        return -1;
    if (!pod->config)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "pod %s has no config", pod->id);
    hp_slurm_defaults d = {.partition = b->partition,
                           .account = b->account,
                           .qos = b->qos,
                           .time_limit = b->time_limit,
                           .job_name_prefix = b->prefix,
                           .mpi = b->mpi};
    hp_slurm_paths paths = {.pod_dir = pod_dir, .script_path = b->script_path};
    hp_slurm_argv argv = {0};
    hp_slurm_request rq;
    if (hp_slurm_map_pod(pod->id, pod->config, &d, &paths, &argv, &rq, err) < 0) {
        hp_slurm_argv_free(&argv);
        return -1;
    }
    if (mkdir(pod_dir, 0755) < 0 && errno != EEXIST) {
        hp_slurm_argv_free(&argv);
        return hp_err_sys(err, HP_INTERNAL, "cannot create pod directory %s", pod_dir);
    }
    int64_t submit = (int64_t)time(NULL);
    hp_slurm_out o;
    int rc = hp_slurm_exec(b->sbatch, argv.v, CMD_TIMEOUT_MS, &o, err);
    hp_slurm_argv_free(&argv);
    if (rc < 0) {
        nftw(pod_dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
        return hp_err_wrap(err, "sbatch");
    }
    if (o.status != 0) {
        char msg[800];
        hp_slurm_errtext(o.errout, msg, sizeof msg);
        hp_slurm_out_free(&o);
        nftw(pod_dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
        return hp_err_set(err, sbatch_code(msg), "Slurm rejected the pod's job: %s",
                          msg[0] ? msg : "sbatch failed without a message");
    }
    /* --parsable: "JOBID" or "JOBID;CLUSTER" */
    char job_id[24] = "";
    size_t n = strspn(o.out, "0123456789");
    if (n == 0 || n >= sizeof job_id || (o.out[n] != '\n' && o.out[n] != ';' && o.out[n])) {
        hp_err_set(err, HP_INTERNAL, "unexpected sbatch output \"%.100s\"", o.out);
        hp_slurm_out_free(&o);
        return -1;
    }
    memcpy(job_id, o.out, n);
    hp_slurm_out_free(&o);
    hp_slurm_poller_track(b->poller, job_id, rq.job_name);

    json_t *st =
        json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:I, s:I}", "job_id", job_id, "job_name",
                  rq.job_name, "submit_time", (json_int_t)submit, "pod_dir", pod_dir, "mpi", rq.mpi,
                  "cpus", (json_int_t)rq.cpus, "mem_mb", (json_int_t)rq.mem_mb, "ntasks",
                  (json_int_t)rq.ntasks, "gpus", (json_int_t)rq.gpus);
    char *s = st ? json_dumps(st, JSON_COMPACT) : NULL;
    /* the same facts for the container ops, which see the pod's id only */
    char pj[4200];
    snprintf(pj, sizeof pj, "%s/pod.json", pod_dir);
    if (st && json_dump_file(st, pj, JSON_COMPACT) < 0)
        hp_warn("pod %s: cannot write %s", pod->id, pj);
    json_decref(st);
    if (!s) {
        run_scancel(b, job_id, NULL, NULL, &(hp_err)HP_ERR_INIT);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    free(pod->backend_state);
    pod->backend_state = s;
    hp_info("pod %s: Slurm job %s submitted (%s)", pod->id, job_id, rq.job_name);
    return 0;
}

static int sandbox_status(hp_backend *be, hp_be_pod *pod, bool *ready, char **info, hp_err *err)
{
    slurm_be *b = sbe(be);
    char job_id[24];
    *ready = false;
    if (info)
        *info = NULL;
    if (hp_slurm_pod_job_id(be, pod, job_id, sizeof job_id, err) < 0)
        return -1;
    char name[200];
    snprintf(name, sizeof name, "%s%s", b->prefix, pod->id);
    hp_slurm_poller_track(b->poller, job_id, name); /* after a restart */
    hp_slurm_job j;
    int r = hp_slurm_poller_get(b->poller, job_id, &j);
    if (r != 0) {
        memset(&j, 0, sizeof j);
        snprintf(j.id, sizeof j.id, "%s", job_id);
        snprintf(j.state, sizeof j.state, "PENDING");
        snprintf(j.reason, sizeof j.reason, "%s",
                 r == 1 ? "Submitted (not yet seen by squeue)" : "Unknown (no poll yet)");
    }
    /* READY while queued too: a NOTREADY sandbox makes the kubelet kill and
     * re-create the pod (podSandboxChanged), docs/slurm.md "Queued pods". */
    *ready = !hp_slurm_state_final(j.state) && strcmp(j.state, "COMPLETING") != 0 &&
             strcmp(j.state, "UNKNOWN") != 0;
    if (!info)
        return 0;
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I}", "job_id", j.id, "state", j.state,
                  "reason", j.reason, "nodes", j.nodes, "start_time", (json_int_t)j.start_time,
                  "end_time", (json_int_t)j.end_time, "exit_code", j.exit_code, "cache_age_ms",
                  (json_int_t)hp_slurm_poller_age_ms(b->poller));
    *info = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!*info)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
}

static int sandbox_stop(hp_backend *be, hp_be_pod *pod, hp_err *err)
{
    slurm_be *b = sbe(be);
    char job_id[24];
    hp_err e = HP_ERR_INIT;
    if (hp_slurm_pod_job_id(be, pod, job_id, sizeof job_id, &e) < 0)
        return 0; /* nothing was ever submitted: stopped */
    hp_slurm_job j;
    if (hp_slurm_poller_get(b->poller, job_id, &j) == 0 && hp_slurm_state_final(j.state))
        return 0;
    /* scancel: Slurm sends SIGTERM to every step and the batch script, and
     * SIGKILL after KillWait. */
    if (run_scancel(b, job_id, NULL, NULL, err) < 0)
        return -1;
    if (wait_final(b, job_id, STOP_GRACE_MS))
        return 0;
    hp_warn("pod %s: Slurm job %s not finished %d ms after scancel: SIGKILL", pod->id, job_id,
            STOP_GRACE_MS);
    if (run_scancel(b, job_id, "--signal=KILL", "--full", err) < 0)
        return -1;
    return 0;
}

static int sandbox_remove(hp_backend *be, hp_be_pod *pod, hp_err *err)
{
    slurm_be *b = sbe(be);
    char job_id[24];
    hp_err e = HP_ERR_INIT;
    if (hp_slurm_pod_job_id(be, pod, job_id, sizeof job_id, &e) == 0) {
        hp_slurm_job j;
        if (!(hp_slurm_poller_get(b->poller, job_id, &j) == 0 && hp_slurm_state_final(j.state)) &&
            run_scancel(b, job_id, NULL, NULL, err) < 0)
            return -1;
        hp_slurm_poller_untrack(b->poller, job_id);
    }
    char pod_dir[4096];
    if (hp_slurm_pod_dir(b, pod->id, pod_dir, sizeof pod_dir, err) < 0)
        return -1;
    nftw(pod_dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static int update_resources(hp_backend *be, hp_be_container *c,
                            const Runtime__V1__LinuxContainerResources *res, hp_err *err)
{
    (void)be;
    (void)c;
    (void)res;
    return hp_err_set(err, HP_UNIMPLEMENTED,
                      "the slurm backend cannot resize a running job's allocation");
}

static void destroy(hp_backend *be)
{
    slurm_be *b = sbe(be);
    if (!b)
        return;
    hp_slurm_ctrs_fini(b); /* before the poller: the launcher waits on it */
    hp_slurm_poller_free(b->poller);
    free(b->srun);
    free(b->squeue);
    free(b->scontrol);
    free(b->runtime);
    free(b->base.handler);
    free(b->shared_dir);
    free(b->step_helper);
    free(b->gpu_devices);
    free(b->pods_dir);
    free(b->script_path);
    free(b->sbatch);
    free(b->scancel);
    free(b->prefix);
    free(b->user);
    free(b->partition);
    free(b->account);
    free(b->qos);
    free(b->time_limit);
    free(b->mpi);
    free(b);
}

static const hp_backend_ops slurm_ops = {
    .type = "slurm",
    .sandbox_run = sandbox_run,
    .sandbox_stop = sandbox_stop,
    .sandbox_remove = sandbox_remove,
    .sandbox_status = sandbox_status,
    .container_create = hp_slurm_ctr_create,
    .container_start = hp_slurm_ctr_start,
    .container_stop = hp_slurm_ctr_stop,
    .container_remove = hp_slurm_ctr_remove,
    .container_status = hp_slurm_ctr_status,
    .container_stats = hp_slurm_ctr_stats,
    .exec_sync = hp_slurm_ctr_exec_sync,
    .exec_command = hp_slurm_ctr_exec_command,
    .reopen_log = hp_slurm_ctr_reopen_log,
    .update_resources = update_resources,
    .destroy = destroy,
};

/* ---------- creation ---------- */

static char *join(const char *a, const char *b)
{
    char *s = NULL;
    return asprintf(&s, "%s/%s", a, b) < 0 ? NULL : s;
}

/* Write the keeper script atomically (tmp + rename) if it differs. */
static int write_keeper(const char *path, hp_err *err)
{
    char buf[sizeof keeper_script + 16];
    _cleanup_fclose_ FILE *cur = fopen(path, "r");
    if (cur) {
        size_t n = fread(buf, 1, sizeof buf, cur);
        if (n == sizeof keeper_script - 1 && memcmp(buf, keeper_script, n) == 0)
            return 0;
    }
    _cleanup_free_ char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp.%d", path, (int)getpid()) < 0)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    FILE *f = fopen(tmp, "w");
    if (!f)
        return hp_err_sys(err, HP_FAILED_PRECONDITION, "cannot write %s", tmp);
    bool ok = fwrite(keeper_script, 1, sizeof keeper_script - 1, f) == sizeof keeper_script - 1;
    ok = (fclose(f) == 0) && ok;
    if (!ok || chmod(tmp, 0755) < 0 || rename(tmp, path) < 0) {
        hp_err_sys(err, HP_FAILED_PRECONDITION, "cannot write %s", path);
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The step helper (docs/slurm.md "Stats"): the configured step_helper
 * (must be executable here: FAILED_PRECONDITION otherwise), else
 * hpcri-step next to the pause binary or next to the running program.
 * *out = malloc'd path owned by the caller, or NULL when the default is
 * absent (containers then run without it and have no stats). */
static int find_step_helper(const hp_handler_config *h, const hp_backend_env *env, char **out,
                            hp_err *err)
{
    *out = NULL;
    const char *conf = hp_handler_opt(h, "step_helper");
    if (conf) {
        if (access(conf, X_OK) < 0)
            return hp_err_sys(err, HP_FAILED_PRECONDITION, "runtime handler \"%s\": step_helper %s",
                              h->name, conf);
        if (!(*out = strdup(conf)))
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return 0;
    }
    char dir[4096] = "";
    if (env->pause_path && strchr(env->pause_path, '/')) {
        snprintf(dir, sizeof dir, "%s", env->pause_path);
    } else {
        ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
        dir[n > 0 ? n : 0] = '\0';
    }
    char *slash = strrchr(dir, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    _cleanup_free_ char *p = join(dir, "hpcri-step");
    if (!p)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    if (access(p, X_OK) < 0) {
        hp_warn("runtime handler \"%s\": %s not found: Slurm containers will have no stats",
                h->name, p);
        return 0;
    }
    *out = hp_steal_ptr(&p);
    return 0;
}

hp_backend *hp_slurm_backend_new(const hp_handler_config *h, const hp_backend_env *env, hp_err *err)
{
    const char *shared = hp_handler_opt(h, "shared_dir");
    const char *bin = hp_handler_opt(h, "slurm_bin_dir");
    if (!shared) {
        hp_err_set(err, HP_FAILED_PRECONDITION, "runtime handler \"%s\": shared_dir is not set",
                   h->name);
        return NULL;
    }
    if (!bin)
        bin = "/usr/bin";
    struct stat st;
    if (stat(shared, &st) < 0 || !S_ISDIR(st.st_mode)) {
        hp_err_sys(err, HP_FAILED_PRECONDITION,
                   "runtime handler \"%s\": shared_dir %s is not a directory", h->name, shared);
        return NULL;
    }
    if (strchr(shared, '%')) { /* sbatch --output expands %-patterns */
        hp_err_set(err, HP_FAILED_PRECONDITION,
                   "runtime handler \"%s\": shared_dir %s must not contain '%%'", h->name, shared);
        return NULL;
    }
    static const char *const progs[] = {"sbatch", "squeue", "scancel", "srun", "scontrol", NULL};
    for (size_t i = 0; progs[i]; i++) {
        _cleanup_free_ char *p = join(bin, progs[i]);
        if (!p || access(p, X_OK) < 0) {
            hp_err_set(err, HP_FAILED_PRECONDITION,
                       "runtime handler \"%s\": %s not found or not executable (slurm_bin_dir "
                       "= %s)",
                       h->name, p ? p : progs[i], bin);
            return NULL;
        }
    }
    long interval = 2000;
    hp_err e = HP_ERR_INIT;
    if (hp_handler_opt_int(h, "poll_interval_ms", &interval, &e) < 0)
        interval = 2000;

    slurm_be *b = calloc(1, sizeof *b);
    if (!b) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    b->base.ops = &slurm_ops;
    b->base.host = env->host;
    b->base.handler = strdup(h->name ? h->name : "");
    b->shared_dir = strdup(shared);
    b->pods_dir = join(shared, "pods");
    b->script_path = join(shared, KEEPER_NAME);
    b->sbatch = join(bin, "sbatch");
    b->scancel = join(bin, "scancel");
    b->srun = join(bin, "srun");
    b->squeue = join(bin, "squeue");
    b->scontrol = join(bin, "scontrol");
    const char *rt = hp_handler_opt(h, "runtime_path");
    b->runtime = strdup(rt ? rt : "/usr/bin/crun");
    if (b->runtime) {
        const char *base = strrchr(b->runtime, '/');
        b->runtime_crun = strcmp(base ? base + 1 : b->runtime, "crun") == 0;
    }
    b->uid = env->uid;
    b->gid = getgid();
    const char *prefix = hp_handler_opt(h, "job_name_prefix");
    b->prefix = strdup(prefix ? prefix : "hpcri-");
    b->partition = dup_or_null(hp_handler_opt(h, "partition"));
    b->account = dup_or_null(hp_handler_opt(h, "account"));
    b->qos = dup_or_null(hp_handler_opt(h, "qos"));
    b->time_limit = dup_or_null(hp_handler_opt(h, "time_limit"));
    b->mpi = dup_or_null(hp_handler_opt(h, "mpi"));
    b->gpu_devices = dup_or_null(hp_handler_opt(h, "gpu_devices"));
    long sint = 2000;
    hp_err_clear(&e);
    if (hp_handler_opt_int(h, "stats_interval_ms", &sint, &e) < 0)
        sint = 2000;
    b->stats_interval_ms = (int)sint;
    if (find_step_helper(h, env, &b->step_helper, err) < 0) {
        destroy(&b->base);
        return NULL;
    }
    struct passwd pw, *pwp = NULL;
    char pwbuf[4096];
    if (getpwuid_r(env->uid, &pw, pwbuf, sizeof pwbuf, &pwp) == 0 && pwp)
        b->user = strdup(pw.pw_name);
    else if (asprintf(&b->user, "%u", (unsigned)env->uid) < 0)
        b->user = NULL;
    if (!b->base.handler || !b->shared_dir || !b->pods_dir || !b->script_path || !b->sbatch ||
        !b->scancel || !b->prefix || !b->user || !b->srun || !b->squeue || !b->scontrol ||
        !b->runtime) {
        destroy(&b->base);
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    if (mkdir(b->pods_dir, 0755) < 0 && errno != EEXIST) {
        hp_err_sys(err, HP_FAILED_PRECONDITION, "cannot create %s", b->pods_dir);
        destroy(&b->base);
        return NULL;
    }
    if (write_keeper(b->script_path, err) < 0) {
        destroy(&b->base);
        return NULL;
    }
    hp_slurm_poller_cfg pc = {
        .bin_dir = bin, .user = b->user, .prefix = b->prefix, .interval_ms = (int)interval};
    b->poller = hp_slurm_poller_new(&pc, err);
    if (!b->poller || hp_slurm_poller_start(b->poller, err) < 0 || hp_slurm_ctrs_init(b, err) < 0) {
        destroy(&b->base);
        return NULL;
    }
    return &b->base;
}
