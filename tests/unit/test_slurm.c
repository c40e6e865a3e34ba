/* The slurm backend against a real single-node Slurm cluster.
 *
 * Every case brings the cluster up with tests/tools/slurm.sh in a temp dir
 * (once per process, on a free port pair from 16817 unless HPCRI_SLURM_PORT
 * is set) and stops it at exit, also on SIGINT/SIGTERM/SIGABRT/SIGSEGV; a
 * watchdog of slurm.sh stops it if the process dies any other way.  Needs root and the Debian
 * packages slurm-wlm and munge.  HPCRI_SLOW_TESTS=1 adds the TIMEOUT case
 * (a 1-minute job time limit: Slurm's minimum).
 */
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/slurm/exec.h"
#include "backend/slurm/poll.h"
#include "backend/slurm/slurm.h"
#include "config/config.h"
#include "t.h"

static char g_dir[256];  /* cluster + shared dir root */
static char g_conf[300]; /* SLURM_CONF */
static char g_script[4096];
static int g_started;

/* ---------- cluster lifecycle ---------- */

static void cluster_stop(void)
{
    if (!g_started)
        return;
    g_started = 0;
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {g_script, "stop", g_dir, NULL};
        execv(g_script, argv);
        _exit(127);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    if (getenv("HPCRI_KEEP_SLURM")) /* keep logs for a post-mortem */
        return;
    pid = fork();
    if (pid == 0) {
        char *argv[] = {"rm", "-rf", "--one-file-system", g_dir, NULL};
        execv("/bin/rm", argv);
        _exit(127);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
}

static void on_signal(int sig)
{
    cluster_stop();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int run_cmd(char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* A port P such that P and P+1 are free on 127.0.0.1 (slurmctld, slurmd),
 * from 16817 up: clusters of concurrent test processes do not meet. */
static int free_port_pair(void)
{
    for (int p = 16817 + (int)(getpid() % 200) * 2; p < 30000; p += 2) {
        int ok = 1;
        for (int k = 0; k < 2 && ok; k++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(p + k))};
            sa.sin_addr.s_addr = htonl(INADDR_ANY);
            ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
            if (fd >= 0)
                close(fd);
        }
        if (ok)
            return p;
    }
    return 16817;
}

/* Start (once per process) and return 0, or -1 with a message printed. */
static int cluster_up(void)
{
    if (g_started)
        return 0;
    if (getuid() != 0) {
        fprintf(stderr, "  test_slurm needs root (slurmd)\n");
        return -1;
    }
    if (access("/usr/sbin/slurmctld", X_OK) < 0) {
        fprintf(stderr, "  Slurm is not installed (apt-get install slurm-wlm munge)\n");
        return -1;
    }
    char cwd[2048];
    if (!getcwd(cwd, sizeof cwd))
        return -1;
    snprintf(g_script, sizeof g_script, "%s/tests/tools/slurm.sh", cwd);
    snprintf(g_dir, sizeof g_dir, "/tmp/hpcri-slurm-test.XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    chmod(g_dir, 0755);
    snprintf(g_conf, sizeof g_conf, "%s/slurm.conf", g_dir);
    setenv("SLURM_CONF", g_conf, 1);
    if (!getenv("HPCRI_SLURM_PORT")) { /* an explicit port wins */
        char port[16];
        snprintf(port, sizeof port, "%d", free_port_pair());
        setenv("HPCRI_SLURM_PORT", port, 1);
    }
    char owner[16];
    snprintf(owner, sizeof owner, "%d", (int)getpid());
    setenv("HPCRI_SLURM_OWNER_PID", owner, 1); /* slurm.sh's watchdog */
    atexit(cluster_stop);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGABRT, on_signal);
    signal(SIGSEGV, on_signal);
    g_started = 1;
    char *argv[] = {g_script, "start", g_dir, NULL};
    if (run_cmd(argv) != 0) {
        fprintf(stderr, "  slurm.sh start %s failed\n", g_dir);
        return -1;
    }
    char shared[512];
    snprintf(shared, sizeof shared, "%s/shared", g_dir);
    mkdir(shared, 0755);
    return 0;
}

/* Run a Slurm command, return its stdout (malloc'd; caller frees) or NULL. */
static char *slurm_out(const char *prog, ...)
{
    char *argv[32];
    size_t n = 0;
    char path[256];
    snprintf(path, sizeof path, "/usr/bin/%s", prog);
    argv[n++] = (char *)prog;
    va_list ap;
    va_start(ap, prog);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 31)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    hp_slurm_out o;
    hp_err err = HP_ERR_INIT;
    if (hp_slurm_exec(path, argv, 30000, &o, &err) < 0)
        return NULL;
    free(o.errout);
    return o.out;
}

static void cancel_all_jobs(void)
{
    free(slurm_out("scancel", "-u", "root", NULL));
    /* wait until nothing of ours holds resources */
    for (int i = 0; i < 100; i++) {
        char *o = slurm_out("squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING", "-o", "%i", NULL);
        bool empty = o && o[0] == '\0';
        free(o);
        if (empty)
            return;
        usleep(100000);
    }
}

/* ---------- backend setup ---------- */

typedef struct fixture {
    hp_config *cfg;
    hp_backend *be;
    char bin_dir[512];
} fixture;

static int fixture_init(fixture *f, const char *bin_dir, int poll_ms)
{
    memset(f, 0, sizeof *f);
    if (cluster_up() < 0)
        return -1;
    snprintf(f->bin_dir, sizeof f->bin_dir, "%s", bin_dir ? bin_dir : "/usr/bin");
    char text[2048];
    snprintf(text, sizeof text,
             "[runtime \"slurm\"]\ntype = slurm\nshared_dir = %s/shared\nslurm_bin_dir = %s\n"
             "poll_interval_ms = %d\njob_name_prefix = hpcri-t-\n",
             g_dir, f->bin_dir, poll_ms);
    hp_err err = HP_ERR_INIT;
    f->cfg = hp_config_load_string(text, "test.conf", 0, &err);
    if (!f->cfg) {
        fprintf(stderr, "  config: %s\n", err.msg);
        return -1;
    }
    const hp_handler_config *h = hp_config_handler(f->cfg, "slurm", &err);
    hp_backend_env env = {.root = g_dir, .run_dir = g_dir, .uid = 0};
    f->be = h ? hp_slurm_backend_new(h, &env, &err) : NULL;
    if (!f->be) {
        fprintf(stderr, "  backend: %s\n", err.msg);
        hp_config_free(f->cfg);
        return -1;
    }
    return 0;
}

static void fixture_free(fixture *f)
{
    if (f->be)
        f->be->ops->destroy(f->be);
    hp_config_free(f->cfg);
    cancel_all_jobs();
}

/* A pod config with annotation pairs; strings must outlive it. */
typedef struct pod {
    Runtime__V1__PodSandboxConfig cfg;
    Runtime__V1__PodSandboxMetadata md;
    Runtime__V1__PodSandboxConfig__AnnotationsEntry ents[16];
    Runtime__V1__PodSandboxConfig__AnnotationsEntry *ptrs[16];
    char id[65];
    hp_be_pod be;
} pod;

static void pod_init(pod *p, int n, ...)
{
    static unsigned counter;
    memset(p, 0, sizeof *p);
    p->cfg = (Runtime__V1__PodSandboxConfig)RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
    p->md = (Runtime__V1__PodSandboxMetadata)RUNTIME__V1__POD_SANDBOX_METADATA__INIT;
    p->md.name = "web";
    p->md.namespace_ = "team-a";
    p->cfg.metadata = &p->md;
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n && i < 16; i++) {
        p->ents[i] = (Runtime__V1__PodSandboxConfig__AnnotationsEntry)
            RUNTIME__V1__POD_SANDBOX_CONFIG__ANNOTATIONS_ENTRY__INIT;
        p->ents[i].key = va_arg(ap, char *);
        p->ents[i].value = va_arg(ap, char *);
        p->ptrs[i] = &p->ents[i];
    }
    va_end(ap);
    p->cfg.n_annotations = (size_t)n;
    p->cfg.annotations = p->ptrs;
    snprintf(p->id, sizeof p->id, "%08x%08x%016lx", (unsigned)getpid(), counter++,
             (unsigned long)time(NULL));
    p->be.id = p->id;
    p->be.config = &p->cfg;
    p->be.handler = "slurm";
}

static void pod_free(pod *p)
{
    free(p->be.backend_state);
    p->be.backend_state = NULL;
}

static const char *json_str(const char *json, const char *key, char *buf, size_t cap)
{
    buf[0] = '\0';
    json_t *j = json ? json_loads(json, 0, NULL) : NULL;
    const char *v = j ? json_string_value(json_object_get(j, key)) : NULL;
    if (v)
        snprintf(buf, cap, "%s", v);
    json_decref(j);
    return buf;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll sandbox_status until its state is `want` (or timeout); returns the
 * last info JSON (malloc'd) and the max time one status call took. */
static char *wait_state(fixture *f, pod *p, const char *want, int timeout_ms, int64_t *max_call_ms,
                        bool *ready)
{
    int64_t deadline = now_ms() + timeout_ms;
    char *info = NULL;
    for (;;) {
        free(info);
        info = NULL;
        hp_err err = HP_ERR_INIT;
        int64_t t0 = now_ms();
        int rc = f->be->ops->sandbox_status(f->be, &p->be, ready, &info, &err);
        int64_t dt = now_ms() - t0;
        if (max_call_ms && dt > *max_call_ms)
            *max_call_ms = dt;
        char st[64];
        if (rc == 0 && strcmp(json_str(info, "state", st, sizeof st), want) == 0)
            return info;
        if (now_ms() > deadline)
            return info;
        usleep(20000);
    }
}

/* ---------- cases ---------- */

T_CASE(run_maps_resources_then_stop_cancels)
{
    fixture f;
    T_ASSERT(fixture_init(&f, NULL, 200) == 0);
    pod p;
    pod_init(&p, 5, "slurm.hpcri.io/cpus", "1", "slurm.hpcri.io/memory", "300Mi",
             "slurm.hpcri.io/gpus", "1", "slurm.hpcri.io/time-limit", "10",
             "slurm.hpcri.io/partition", "debug");
    hp_err err = HP_ERR_INIT;
    int64_t t0 = now_ms();
    int rc = f.be->ops->sandbox_run(f.be, &p.be, &err);
    printf("# sandbox_run (sbatch) took %lld ms\n", (long long)(now_ms() - t0));
    if (rc != 0)
        T_FAIL("sandbox_run: %s", err.msg);
    char job[32];
    json_str(p.be.backend_state, "job_id", job, sizeof job);
    if (rc != 0 || !job[0]) {
        pod_free(&p);
        fixture_free(&f);
        T_ASSERT(0);
    }
    char *sq = slurm_out("squeue", "-h", "-j", job, "-o", "%i %j", NULL);
    char want[200];
    snprintf(want, sizeof want, "%s hpcri-t-%s", job, p.id);
    bool in_squeue = sq && strstr(sq, want);
    free(sq);
    char *sc = slurm_out("scontrol", "-o", "show", "job", job, NULL);
    char name_kv[200];
    snprintf(name_kv, sizeof name_kv, "JobName=hpcri-t-%s ", p.id);
    const char *needles[] = {name_kv,    "Partition=debug ", "TimeLimit=00:10:00 ",    "NumCPUs=1 ",
                             "mem=300M", "gres:gpu:1",       "Comment=k8s:team-a/web", "Requeue=0 ",
                             NULL};
    for (size_t i = 0; sc && needles[i]; i++)
        if (!strstr(sc, needles[i]))
            T_FAIL("scontrol show job lacks \"%s\": %s", needles[i], sc);
    bool had_sc = sc != NULL;
    free(sc);

    bool ready = false;
    char *info = wait_state(&f, &p, "RUNNING", 15000, NULL, &ready);
    char nodes[128], st[64];
    json_str(info, "nodes", nodes, sizeof nodes);
    json_str(info, "state", st, sizeof st);
    free(info);

    rc = f.be->ops->sandbox_stop(f.be, &p.be, &err);
    char *after = slurm_out("squeue", "-h", "-t", "all", "-j", job, "-o", "%T", NULL);
    bool ready2 = true;
    char *info2 = wait_state(&f, &p, "CANCELLED", 5000, NULL, &ready2);
    char st2[64];
    json_str(info2, "state", st2, sizeof st2);
    free(info2);
    int rc_rm = f.be->ops->sandbox_remove(f.be, &p.be, &err);
    char pod_dir[512];
    snprintf(pod_dir, sizeof pod_dir, "%s/shared/pods/%s", g_dir, p.id);
    bool dir_gone = access(pod_dir, F_OK) < 0;
    pod_free(&p);
    fixture_free(&f);

    T_ASSERT(in_squeue);
    T_ASSERT(had_sc);
    T_EQ_STR(st, "RUNNING");
    T_ASSERT(ready);
    T_ASSERT(nodes[0] != '\0');
    T_EQ_INT(rc, 0);
    T_ASSERT(after && strncmp(after, "CANCELLED", 9) == 0);
    free(after);
    T_EQ_STR(st2, "CANCELLED");
    T_ASSERT(!ready2);
    T_EQ_INT(rc_rm, 0);
    T_ASSERT(dir_gone);
}

T_CASE(pending_pod_reports_reason_fast)
{
    fixture f;
    T_ASSERT(fixture_init(&f, NULL, 200) == 0);
    pod big, small;
    pod_init(&big, 2, "slurm.hpcri.io/cpus", "2", "slurm.hpcri.io/memory", "100Mi");
    pod_init(&small, 2, "slurm.hpcri.io/cpus", "1", "slurm.hpcri.io/memory", "100Mi");
    hp_err err = HP_ERR_INIT;
    int rc1 = f.be->ops->sandbox_run(f.be, &big.be, &err);
    bool ready_big = false;
    char *info = wait_state(&f, &big, "RUNNING", 15000, NULL, &ready_big);
    free(info);
    int rc2 = f.be->ops->sandbox_run(f.be, &small.be, &err);
    int64_t max_ms = 0;
    bool ready_small = true;
    /* the state is PENDING from the first answer; wait for a real reason */
    char reason[128] = "";
    int64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        info = wait_state(&f, &small, "PENDING", 1000, &max_ms, &ready_small);
        json_str(info, "reason", reason, sizeof reason);
        free(info);
        if (strcmp(reason, "Resources") == 0 || strcmp(reason, "Priority") == 0)
            break;
        usleep(50000);
    }
    printf("# pending reason \"%s\", slowest sandbox_status %lld ms\n", reason, (long long)max_ms);
    pod_free(&big);
    pod_free(&small);
    fixture_free(&f);
    T_EQ_INT(rc1, 0);
    T_ASSERT(ready_big);
    T_EQ_INT(rc2, 0);
    T_ASSERT(ready_small); /* queued = READY: the kubelet re-creates NOTREADY sandboxes */
    T_ASSERT(strcmp(reason, "Resources") == 0 || strcmp(reason, "Priority") == 0);
    T_ASSERT(max_ms < 100);
}

T_CASE(rejected_submission_carries_slurm_message)
{
    fixture f;
    T_ASSERT(fixture_init(&f, NULL, 200) == 0);
    pod p;
    pod_init(&p, 1, "slurm.hpcri.io/memory", "900000Gi");
    hp_err err = HP_ERR_INIT;
    int rc = f.be->ops->sandbox_run(f.be, &p.be, &err);
    hp_err err2 = HP_ERR_INIT;
    pod q;
    pod_init(&q, 1, "slurm.hpcri.io/partition", "nope");
    int rc2 = f.be->ops->sandbox_run(f.be, &q.be, &err2);
    char pod_dir[512];
    snprintf(pod_dir, sizeof pod_dir, "%s/shared/pods/%s", g_dir, p.id);
    bool dir_gone = access(pod_dir, F_OK) < 0;
    printf("# %s\n# %s\n", err.msg, err2.msg);
    pod_free(&p);
    pod_free(&q);
    fixture_free(&f);
    T_EQ_INT(rc, -1);
    T_EQ_INT(err.code, HP_FAILED_PRECONDITION);
    T_ASSERT(strstr(err.msg, "Requested node configuration is not available") != NULL);
    T_ASSERT(dir_gone);
    T_EQ_INT(rc2, -1);
    T_EQ_INT(err2.code, HP_INVALID_ARGUMENT);
    T_ASSERT(strstr(err2.msg, "Invalid partition name specified") != NULL);
}

T_CASE(injection_rejected_before_sbatch)
{
    fixture f;
    T_ASSERT(fixture_init(&f, NULL, 200) == 0);
    char *before = slurm_out("squeue", "-h", "-t", "all", "-o", "%i", NULL);
    pod p;
    pod_init(&p, 1, "slurm.hpcri.io/partition", "debug --uid=0");
    hp_err err = HP_ERR_INIT;
    int rc = f.be->ops->sandbox_run(f.be, &p.be, &err);
    char *after = slurm_out("squeue", "-h", "-t", "all", "-o", "%i", NULL);
    bool same = before && after && strcmp(before, after) == 0;
    free(before);
    free(after);
    pod_free(&p);
    fixture_free(&f);
    T_EQ_INT(rc, -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_ASSERT(strstr(err.msg, "slurm.hpcri.io/partition") != NULL);
    T_ASSERT(same);
}

/* A bin dir whose squeue counts its calls into <dir>/count. */
static int counting_bin_dir(char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/countbin", g_dir);
    mkdir(dir, 0755);
    const char *progs[] = {"sbatch", "scancel", "sacct", "scontrol", "srun", NULL};
    for (size_t i = 0; progs[i]; i++) {
        char src[256], dst[700];
        snprintf(src, sizeof src, "/usr/bin/%s", progs[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, progs[i]);
        unlink(dst);
        if (symlink(src, dst) < 0)
            return -1;
    }
    char path[700];
    snprintf(path, sizeof path, "%s/squeue", dir);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return -1;
    fprintf(fp, "#!/bin/sh\necho x >> '%s/count'\nexec /usr/bin/squeue \"$@\"\n", dir);
    fclose(fp);
    chmod(path, 0755);
    snprintf(path, sizeof path, "%s/count", dir);
    unlink(path);
    return 0;
}

static long count_lines(const char *dir)
{
    char path[700];
    snprintf(path, sizeof path, "%s/count", dir);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return 0;
    long n = 0;
    int c;
    while ((c = fgetc(fp)) != EOF)
        n += c == '\n';
    fclose(fp);
    return n;
}

/* Submit n pods, wait until the poller saw them all, then count squeue
 * calls over `window_ms` while asking every pod's status repeatedly. */
static int measure(fixture *f, pod *pods, int n, int window_ms, long *calls, long *status_calls,
                   int64_t *submit_ms)
{
    hp_err err = HP_ERR_INIT;
    int64_t t0 = now_ms();
    for (int i = 0; i < n; i++) {
        pod_init(&pods[i], 2, "slurm.hpcri.io/cpus", "1", "slurm.hpcri.io/memory", "10Mi");
        if (f->be->ops->sandbox_run(f->be, &pods[i].be, &err) < 0) {
            fprintf(stderr, "  sandbox_run %d: %s\n", i, err.msg);
            return -1;
        }
    }
    *submit_ms = now_ms() - t0;
    hp_slurm_poller *pl = hp_slurm_backend_poller(f->be);
    uint64_t g = hp_slurm_poller_generation(pl);
    hp_slurm_poller_wait(pl, g + 1, 5000); /* two full polls after the last submit */
    char c0dir[600];
    snprintf(c0dir, sizeof c0dir, "%s", f->bin_dir);
    long c0 = count_lines(c0dir);
    *status_calls = 0;
    int64_t end = now_ms() + window_ms;
    while (now_ms() < end) {
        for (int i = 0; i < n; i++) {
            bool ready;
            char *info = NULL;
            if (f->be->ops->sandbox_status(f->be, &pods[i].be, &ready, &info, &err) == 0)
                (*status_calls)++;
            free(info);
        }
        usleep(10000);
    }
    *calls = count_lines(c0dir) - c0;
    return 0;
}

T_CASE(poller_one_squeue_per_interval)
{
    T_ASSERT(cluster_up() == 0);
    char bin[512];
    T_ASSERT(counting_bin_dir(bin, sizeof bin) == 0);
    fixture f;
    T_ASSERT(fixture_init(&f, bin, 200) == 0);
    static pod pods[100];
    long calls20 = 0, calls100 = 0, st20 = 0, st100 = 0;
    int64_t sub20 = 0, sub100 = 0;
    int r1 = measure(&f, pods, 20, 2000, &calls20, &st20, &sub20);
    for (int i = 0; i < 20; i++)
        pod_free(&pods[i]);
    cancel_all_jobs();
    int r2 = r1 == 0 ? measure(&f, pods, 100, 2000, &calls100, &st100, &sub100) : -1;
    for (int i = 0; i < 100; i++)
        pod_free(&pods[i]);
    printf("# 20 pods: %ld squeue calls in 2 s (%ld status calls), sbatch %.1f ms/job\n", calls20,
           st20, sub20 / 20.0);
    printf("# 100 pods: %ld squeue calls in 2 s (%ld status calls), sbatch %.1f ms/job\n", calls100,
           st100, sub100 / 100.0);
    fixture_free(&f);
    T_EQ_INT(r1, 0);
    T_EQ_INT(r2, 0);
    /* 2000 ms / 200 ms = 10 polls (+-2 for scheduling), whatever the pod count */
    T_ASSERT(calls20 >= 8 && calls20 <= 12);
    T_ASSERT(calls100 >= 8 && calls100 <= 12);
    T_ASSERT(st20 > 100); /* status was asked far more often than squeue ran */
}

T_CASE(vanished_job_resolved_once_via_sacct)
{
    fixture f;
    T_ASSERT(fixture_init(&f, NULL, 200) == 0);
    /* A job whose name lacks the prefix never appears in the poller's
     * filtered squeue view: once tracked, it counts as vanished and goes
     * through the sacct chain. */
    char *id = slurm_out("sbatch", "--parsable", "--job-name=outsider", "--mem=10M",
                         "--output=/dev/null", "--wrap=sleep 300", NULL);
    if (id)
        id[strcspn(id, ";\n")] = '\0';
    free(slurm_out("scancel", id ? id : "0", NULL));
    /* wait for the job's completion record */
    for (int i = 0; i < 50; i++) {
        char *st = slurm_out("squeue", "-h", "-t", "all", "-j", id ? id : "0", "-o", "%T", NULL);
        bool done = st && strncmp(st, "CANCELLED", 9) == 0;
        free(st);
        if (done)
            break;
        usleep(100000);
    }
    hp_slurm_poller *pl = hp_slurm_backend_poller(f.be);
    hp_slurm_job j;
    int before = id ? hp_slurm_poller_get(pl, id, &j) : -2;
    if (id)
        hp_slurm_poller_track(pl, id, "outsider");
    int tracked = id ? hp_slurm_poller_get(pl, id, &j) : -2;
    uint64_t g = hp_slurm_poller_generation(pl);
    hp_slurm_poller_wait(pl, g + 1, 5000);
    memset(&j, 0, sizeof j);
    int after = id ? hp_slurm_poller_get(pl, id, &j) : -2;
    free(id);
    fixture_free(&f);
    T_EQ_INT(before, -1);
    T_EQ_INT(tracked, 1);
    T_EQ_INT(after, 0);
    T_ASSERT(j.resolved);
    T_EQ_STR(j.state, "CANCELLED");
}

T_CASE(status_recovers_job_by_name)
{
    fixture f;
    T_ASSERT(fixture_init(&f, NULL, 200) == 0);
    pod p;
    pod_init(&p, 1, "slurm.hpcri.io/memory", "10Mi");
    hp_err err = HP_ERR_INIT;
    int rc = f.be->ops->sandbox_run(f.be, &p.be, &err);
    char job[32] = "";
    json_str(p.be.backend_state, "job_id", job, sizeof job);
    /* a new backend instance (daemon restart) without the stored state */
    f.be->ops->destroy(f.be);
    const hp_handler_config *h = hp_config_handler(f.cfg, "slurm", &err);
    hp_backend_env env = {.root = g_dir, .run_dir = g_dir, .uid = 0};
    f.be = hp_slurm_backend_new(h, &env, &err);
    T_ASSERT(f.be);
    free(p.be.backend_state);
    p.be.backend_state = NULL;
    hp_slurm_poller_wait(hp_slurm_backend_poller(f.be), 0, 5000);
    char got[32] = "";
    int rc2 = hp_slurm_pod_job_id(f.be, &p.be, got, sizeof got, &err);
    bool ready;
    char *info = NULL;
    int rc3 = f.be->ops->sandbox_status(f.be, &p.be, &ready, &info, &err);
    char sjob[32];
    json_str(info, "job_id", sjob, sizeof sjob);
    free(info);
    pod_free(&p);
    fixture_free(&f);
    T_EQ_INT(rc, 0);
    T_ASSERT(job[0]);
    T_EQ_INT(rc2, 0);
    T_EQ_STR(got, job);
    T_EQ_INT(rc3, 0);
    T_EQ_STR(sjob, job);
}

T_CASE(slow_time_limit_gives_timeout)
{
    if (!getenv("HPCRI_SLOW_TESTS")) {
        printf("# skipped: set HPCRI_SLOW_TESTS=1 (takes ~90 s)\n");
        return;
    }
    fixture f;
    T_ASSERT(fixture_init(&f, NULL, 1000) == 0);
    pod p;
    pod_init(&p, 2, "slurm.hpcri.io/time-limit", "1", "slurm.hpcri.io/memory", "10Mi");
    hp_err err = HP_ERR_INIT;
    int rc = f.be->ops->sandbox_run(f.be, &p.be, &err);
    bool ready = true;
    char *info = wait_state(&f, &p, "TIMEOUT", 150000, NULL, &ready);
    char st[64];
    json_str(info, "state", st, sizeof st);
    free(info);
    pod_free(&p);
    fixture_free(&f);
    T_EQ_INT(rc, 0);
    T_EQ_STR(st, "TIMEOUT");
    T_ASSERT(!ready);
}

T_MAIN()
