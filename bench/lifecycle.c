/* bench-lifecycle: pod + container lifecycle latency and daemon memory of a CRI
 * runtime (hpcri, containerd, ...) over its unix socket.
 *
 *   bench-lifecycle --socket PATH --image REF [--name LABEL] [--pid PID]
 *                   [--helpers MATCH] [--logdir DIR] [-n 50] [--concurrency 10]
 *                   [--running 50] [--warmup 2] [--out FILE]
 *   bench-lifecycle --report A.out [B.out | --reference]
 *
 * One lifecycle = RunPodSandbox (host network) -> CreateContainer (busybox
 * `sh -c 'trap "exit 0" TERM; echo ready; sleep 3600 & wait'`, so StopContainer
 * is fast and honest: the shell exits on SIGTERM at once) -> StartContainer ->
 * (untimed: wait for "ready" in the container's log, reported as its own row
 * and left out of the lifecycle total) -> StopContainer (timeout 10) -> RemoveContainer ->
 * StopPodSandbox -> RemovePodSandbox.  Each call is timed from submit to decoded response.
 *
 * Phases: PullImage (once, untimed), --warmup lifecycles (untimed), -n
 * sequential lifecycles on one connection, -n lifecycles spread over
 * --concurrency threads (each with its own connection), then --running pods
 * each with a running container are started, memory is measured, and they are
 * torn down.  With --pid the daemon's VmRSS and RssAnon are read before the
 * phases (idle), with the pods running, and after the teardown (idle).  With
 * --helpers MATCH the per-pod helper processes (conmon, containerd-shim) whose
 * command line contains MATCH are counted and their VmRSS summed.
 *
 * Results are printed as a table and, with --out, written as `key value` lines
 * that --report turns into a side-by-side table (--reference: the issue's
 * containerd 1.6 numbers, not measured in this run).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.pb-c.h"
#include "rpc/client.h"
#include "util/cleanup.h"

#define RT "/runtime.v1.RuntimeService/"

enum call_idx {
    C_RUNP,
    C_CREATE,
    C_START,
    C_READY,
    C_STOPC,
    C_RMC,
    C_STOPP,
    C_RMP,
    C_TOTAL,
    C_N,
};

static const char *const call_names[C_N] = {
    "RunPodSandbox",   "CreateContainer", "StartContainer",   "ReadyAfterStart", "StopContainer",
    "RemoveContainer", "StopPodSandbox",  "RemovePodSandbox", "lifecycle",
};

/* The reference: containerd 1.6 + runc on this machine over CRI, p50
 * in ms (RemoveContainer not given).  Not measured by this program. */
static const double reference_p50_ms[C_N] = {300, 16, 160, -1, 190, -1, 290, 100, 1050};
#define REFERENCE_RSS_IDLE_KB (56 * 1024)

struct opts {
    const char *socket, *image, *name, *helpers, *logdir, *out;
    long pid;
    int n, concurrency, running, warmup;
    bool no_pull;
};

static const struct opts *O;
static long run_id; /* makes pod names/uids unique across runs */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- one RPC ---------------------------------------------------------------- */

/* Pack `req`, call `method`, unpack into *resp (NULL resp_desc: discard).
 * *ns gets the latency (submit to decoded response). */
static int rpc(hp_client *c, const char *method, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, int64_t *ns,
               hp_err *err)
{
    size_t len = protobuf_c_message_get_packed_size(req);
    _cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    protobuf_c_message_pack(req, buf);
    uint8_t *out = NULL;
    size_t out_len = 0;
    int64_t t0 = now_ns();
    int rc = hp_client_unary(c, method, buf, len, 120000, &out, &out_len, err);
    ProtobufCMessage *m = NULL;
    if (rc == 0 && resp_desc) {
        m = protobuf_c_message_unpack(resp_desc, NULL, out_len, out);
        if (!m)
            rc = hp_err_set(err, HP_INTERNAL, "undecodable response");
    }
    if (ns)
        *ns = now_ns() - t0;
    free(out);
    if (rc < 0)
        return hp_err_wrap(err, "%s", method + strlen(RT));
    if (resp)
        *resp = m;
    else if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

/* --- requests ---------------------------------------------------------------- */

struct pod_req {
    Runtime__V1__PodSandboxConfig cfg;
    Runtime__V1__PodSandboxMetadata meta;
    Runtime__V1__LinuxPodSandboxConfig linux;
    Runtime__V1__LinuxSandboxSecurityContext sc;
    Runtime__V1__NamespaceOption ns;
    char name[64], uid[96], logdir[512];
};

static void pod_req_init(struct pod_req *p, const char *phase, int i)
{
    runtime__v1__pod_sandbox_config__init(&p->cfg);
    runtime__v1__pod_sandbox_metadata__init(&p->meta);
    runtime__v1__linux_pod_sandbox_config__init(&p->linux);
    runtime__v1__linux_sandbox_security_context__init(&p->sc);
    runtime__v1__namespace_option__init(&p->ns);
    snprintf(p->name, sizeof p->name, "bench-%s-%d", phase, i);
    snprintf(p->uid, sizeof p->uid, "uid-%ld-%s-%d", run_id, phase, i);
    snprintf(p->logdir, sizeof p->logdir, "%s/%s", O->logdir, p->uid);
    p->meta.name = p->name;
    p->meta.uid = p->uid;
    p->meta.namespace_ = "bench";
    p->ns.network = RUNTIME__V1__NAMESPACE_MODE__NODE;
    p->ns.pid = RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
    p->ns.ipc = RUNTIME__V1__NAMESPACE_MODE__POD;
    p->sc.namespace_options = &p->ns;
    p->linux.security_context = &p->sc;
    p->cfg.metadata = &p->meta;
    /* no hostname: with the host's network the pod shares the host's UTS
     * namespace, and runc refuses to set a hostname there (containerd passes
     * it through; kubelet sends the node's own name for host-network pods) */
    p->cfg.log_directory = p->logdir;
    p->cfg.linux = &p->linux;
}

static char *ctr_command[] = {"sh", "-c", "trap 'exit 0' TERM; echo ready; sleep 3600 & wait"};

/* Wait until the container's log shows "ready" (its trap is installed), at
 * most 10 s; *ns gets the time waited.  Not a CRI call: kubelet would wait
 * for a readiness probe instead.  Without the wait a StopContainer that
 * arrives before the shell ran its first line is dropped by PID 1 and costs
 * the whole grace period. */
static int wait_ready(const char *logdir, int64_t *ns, hp_err *err)
{
    char path[600];
    snprintf(path, sizeof path, "%s/main.log", logdir);
    int64_t t0 = now_ns();
    for (;;) {
        FILE *f = fopen(path, "re");
        if (f) {
            char line[512];
            bool ok = false;
            while (!ok && fgets(line, sizeof line, f))
                ok = strstr(line, " ready") != NULL;
            fclose(f);
            if (ok)
                break;
        }
        if (now_ns() - t0 > 10000000000LL)
            return hp_err_set(err, HP_DEADLINE_EXCEEDED, "%s: no \"ready\" line after 10 s", path);
        usleep(500);
    }
    *ns = now_ns() - t0;
    return 0;
}

struct ctr_req {
    Runtime__V1__ContainerConfig cfg;
    Runtime__V1__ContainerMetadata meta;
    Runtime__V1__ImageSpec image;
    Runtime__V1__LinuxContainerConfig linux;
    Runtime__V1__LinuxContainerSecurityContext sc;
    Runtime__V1__NamespaceOption ns;
    Runtime__V1__SecurityProfile seccomp;
};

static void ctr_req_init(struct ctr_req *r)
{
    runtime__v1__container_config__init(&r->cfg);
    runtime__v1__container_metadata__init(&r->meta);
    runtime__v1__image_spec__init(&r->image);
    runtime__v1__linux_container_config__init(&r->linux);
    runtime__v1__linux_container_security_context__init(&r->sc);
    runtime__v1__namespace_option__init(&r->ns);
    runtime__v1__security_profile__init(&r->seccomp);
    r->meta.name = "main";
    r->image.image = (char *)O->image;
    r->ns.network = RUNTIME__V1__NAMESPACE_MODE__NODE;
    r->ns.pid = RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
    r->ns.ipc = RUNTIME__V1__NAMESPACE_MODE__POD;
    r->seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__RuntimeDefault;
    r->sc.namespace_options = &r->ns;
    r->sc.seccomp = &r->seccomp;
    r->linux.security_context = &r->sc;
    r->cfg.metadata = &r->meta;
    r->cfg.image = &r->image;
    r->cfg.n_command = sizeof ctr_command / sizeof ctr_command[0];
    r->cfg.command = ctr_command;
    r->cfg.log_path = "main.log";
    r->cfg.linux = &r->linux;
}

/* --- lifecycle steps --------------------------------------------------------- */

/* Run a pod and start its container: ids in pod/ctr (malloc'd). */
static int pod_up(hp_client *c, const char *phase, int i, int64_t *t, char **pod, char **ctr,
                  hp_err *err)
{
    struct pod_req p;
    pod_req_init(&p, phase, i);
    Runtime__V1__RunPodSandboxRequest rq = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
    rq.config = &p.cfg;
    ProtobufCMessage *m = NULL;
    if (rpc(c, RT "RunPodSandbox", &rq.base, &runtime__v1__run_pod_sandbox_response__descriptor, &m,
            &t[C_RUNP], err) < 0)
        return -1;
    *pod = strdup(((Runtime__V1__RunPodSandboxResponse *)m)->pod_sandbox_id);
    protobuf_c_message_free_unpacked(m, NULL);

    struct ctr_req cr;
    ctr_req_init(&cr);
    Runtime__V1__CreateContainerRequest cq = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
    cq.pod_sandbox_id = *pod;
    cq.config = &cr.cfg;
    cq.sandbox_config = &p.cfg;
    if (rpc(c, RT "CreateContainer", &cq.base, &runtime__v1__create_container_response__descriptor,
            &m, &t[C_CREATE], err) < 0)
        return -1;
    *ctr = strdup(((Runtime__V1__CreateContainerResponse *)m)->container_id);
    protobuf_c_message_free_unpacked(m, NULL);

    Runtime__V1__StartContainerRequest sq = RUNTIME__V1__START_CONTAINER_REQUEST__INIT;
    sq.container_id = *ctr;
    if (rpc(c, RT "StartContainer", &sq.base, NULL, NULL, &t[C_START], err) < 0)
        return -1;
    return wait_ready(p.logdir, &t[C_READY], err);
}

/* Stop and remove the container (if any), then the pod (if any). */
static int pod_down(hp_client *c, const char *pod, const char *ctr, int64_t *t, hp_err *err)
{
    if (ctr) {
        Runtime__V1__StopContainerRequest q = RUNTIME__V1__STOP_CONTAINER_REQUEST__INIT;
        q.container_id = (char *)ctr;
        q.timeout = 10;
        if (rpc(c, RT "StopContainer", &q.base, NULL, NULL, &t[C_STOPC], err) < 0)
            return -1;
        Runtime__V1__RemoveContainerRequest r = RUNTIME__V1__REMOVE_CONTAINER_REQUEST__INIT;
        r.container_id = (char *)ctr;
        if (rpc(c, RT "RemoveContainer", &r.base, NULL, NULL, &t[C_RMC], err) < 0)
            return -1;
    }
    if (pod) {
        Runtime__V1__StopPodSandboxRequest q = RUNTIME__V1__STOP_POD_SANDBOX_REQUEST__INIT;
        q.pod_sandbox_id = (char *)pod;
        if (rpc(c, RT "StopPodSandbox", &q.base, NULL, NULL, &t[C_STOPP], err) < 0)
            return -1;
        Runtime__V1__RemovePodSandboxRequest r = RUNTIME__V1__REMOVE_POD_SANDBOX_REQUEST__INIT;
        r.pod_sandbox_id = (char *)pod;
        if (rpc(c, RT "RemovePodSandbox", &r.base, NULL, NULL, &t[C_RMP], err) < 0)
            return -1;
    }
    return 0;
}

/* One whole lifecycle; t[C_N] gets every call's latency and the total.  On an
 * error what was created is still torn down (best effort). */
static int lifecycle(hp_client *c, const char *phase, int i, int64_t *t, hp_err *err)
{
    char *pod = NULL, *ctr = NULL;
    int64_t t0 = now_ns();
    int rc = pod_up(c, phase, i, t, &pod, &ctr, err);
    if (rc == 0)
        rc = pod_down(c, pod, ctr, t, err);
    else {
        hp_err e2 = HP_ERR_INIT;
        int64_t scratch[C_N];
        pod_down(c, pod, ctr, scratch, &e2);
    }
    t[C_TOTAL] = now_ns() - t0 - t[C_READY]; /* the calls only */
    free(pod);
    free(ctr);
    return rc;
}

/* --- statistics -------------------------------------------------------------- */

struct samples {
    int64_t *v[C_N];
    int n;
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile in ms of n samples (sorted in place). */
static double pct_ms(int64_t *v, int n, double p)
{
    if (n <= 0)
        return -1;
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    int k = (int)((p / 100.0) * n + 0.999999) - 1;
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return (double)v[k] / 1e6;
}

static void samples_alloc(struct samples *s, int n)
{
    s->n = 0;
    for (int k = 0; k < C_N; k++) {
        s->v[k] = calloc((size_t)n, sizeof(int64_t));
        if (!s->v[k]) {
            fprintf(stderr, "bench-lifecycle: out of memory\n");
            exit(1);
        }
    }
}

static void samples_free(struct samples *s)
{
    for (int k = 0; k < C_N; k++)
        free(s->v[k]);
}

/* --- memory ------------------------------------------------------------------ */

struct mem {
    long rss_kb, anon_kb;  /* daemon */
    long helpers, help_kb; /* helper processes matching --helpers */
};

static void proc_status(long pid, long *rss, long *anon)
{
    char path[64], line[256];
    *rss = *anon = -1;
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "VmRSS: %ld kB", rss);
        sscanf(line, "RssAnon: %ld kB", anon);
    }
}

/* Does /proc/PID/cmdline contain `match`? */
static bool cmdline_has(const char *pid, const char *match)
{
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%s/cmdline", pid);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
    return strstr(buf, match) != NULL;
}

static void measure_mem(struct mem *m)
{
    memset(m, 0, sizeof *m);
    m->rss_kb = m->anon_kb = -1;
    if (O->pid > 0)
        proc_status(O->pid, &m->rss_kb, &m->anon_kb);
    if (!O->helpers)
        return;
    _cleanup_closedir_ DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!isdigit((unsigned char)de->d_name[0]) || atol(de->d_name) == O->pid ||
            atol(de->d_name) == (long)getpid())
            continue;
        if (!cmdline_has(de->d_name, O->helpers))
            continue;
        long rss, anon;
        proc_status(atol(de->d_name), &rss, &anon);
        if (rss < 0)
            continue;
        m->helpers++;
        m->help_kb += rss;
    }
}

/* --- phases ------------------------------------------------------------------ */

struct worker {
    pthread_t thread;
    const char *phase;
    int first, count;  /* lifecycle indexes [first, first+count) */
    struct samples *s; /* shared; slot = index */
    int errors;
    char first_error[HP_ERR_MSG_MAX + 64];
    /* for the "running" phase */
    bool up_only;
    char **pods, **ctrs;
};

static void note_error(struct worker *w, const hp_err *err)
{
    if (w->errors++ == 0)
        snprintf(w->first_error, sizeof w->first_error, "%s: %s", hp_status_name(err->code),
                 err->msg);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    hp_err err = HP_ERR_INIT;
    hp_client *c = hp_client_connect(O->socket, &err);
    if (!c) {
        w->errors = w->count;
        snprintf(w->first_error, sizeof w->first_error, "connect: %s", err.msg);
        return NULL;
    }
    for (int i = w->first; i < w->first + w->count; i++) {
        int64_t t[C_N] = {0};
        int rc;
        if (w->up_only)
            rc = pod_up(c, w->phase, i, t, &w->pods[i], &w->ctrs[i], &err);
        else if (w->pods) /* teardown of the running pods */
            rc = pod_down(c, w->pods[i], w->ctrs[i], t, &err);
        else
            rc = lifecycle(c, w->phase, i, t, &err);
        if (rc < 0) {
            note_error(w, &err);
            hp_err_clear(&err);
            continue;
        }
        if (w->s)
            for (int k = 0; k < C_N; k++)
                w->s->v[k][i] = t[k];
    }
    hp_client_free(c);
    return NULL;
}

/* Run `n` items over `threads` threads; returns the error count. */
static int run_workers(const char *phase, int n, int threads, struct samples *s, bool up_only,
                       char **pods, char **ctrs, double *wall_s)
{
    struct worker *w = calloc((size_t)threads, sizeof *w);
    if (!w) {
        fprintf(stderr, "bench-lifecycle: out of memory\n");
        exit(1);
    }
    int64_t t0 = now_ns();
    int next = 0;
    for (int i = 0; i < threads; i++) {
        int cnt = n / threads + (i < n % threads);
        w[i] = (struct worker){.phase = phase,
                               .first = next,
                               .count = cnt,
                               .s = s,
                               .up_only = up_only,
                               .pods = pods,
                               .ctrs = ctrs};
        next += cnt;
        if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
            fprintf(stderr, "bench-lifecycle: pthread_create failed\n");
            exit(1);
        }
    }
    int errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(w[i].thread, NULL);
        if (w[i].errors)
            fprintf(stderr, "bench-lifecycle: %s %s thread %d: %d errors, first: %s\n", O->name,
                    phase, i, w[i].errors, w[i].first_error);
        errors += w[i].errors;
    }
    if (wall_s)
        *wall_s = (double)(now_ns() - t0) / 1e9;
    if (s)
        s->n = n;
    free(w);
    return errors;
}

static FILE *out_f;

static void put(const char *key, double v)
{
    if (out_f)
        fprintf(out_f, "%s %.3f\n", key, v);
}

static void print_phase(const char *phase, struct samples *s, double wall_s, int threads)
{
    printf("\n%s: %s, %d lifecycles, %d connection%s, %.1f s wall, %.2f lifecycles/s\n", O->name,
           phase, s->n, threads, threads > 1 ? "s" : "", wall_s, s->n / wall_s);
    printf("%-18s %10s %10s %10s %10s\n", "CALL", "P50(ms)", "P95(ms)", "MIN(ms)", "MAX(ms)");
    for (int k = 0; k < C_N; k++) {
        double p50 = pct_ms(s->v[k], s->n, 50), p95 = pct_ms(s->v[k], s->n, 95);
        double mn = pct_ms(s->v[k], s->n, 0), mx = pct_ms(s->v[k], s->n, 100);
        printf("%-18s %10.1f %10.1f %10.1f %10.1f\n", call_names[k], p50, p95, mn, mx);
        char key[96];
        snprintf(key, sizeof key, "%s.%s.p50", phase, call_names[k]);
        put(key, p50);
        snprintf(key, sizeof key, "%s.%s.p95", phase, call_names[k]);
        put(key, p95);
    }
    char key[96];
    snprintf(key, sizeof key, "%s.rate", phase);
    put(key, s->n / wall_s);
}

static void print_mem(const char *what, const char *key, const struct mem *m)
{
    printf("%-34s daemon VmRSS %7ld kB  RssAnon %7ld kB", what, m->rss_kb, m->anon_kb);
    if (O->helpers)
        printf("  | %3ld helper procs, VmRSS sum %8ld kB", m->helpers, m->help_kb);
    printf("\n");
    char k[96];
    snprintf(k, sizeof k, "mem.%s.rss", key);
    put(k, (double)m->rss_kb);
    snprintf(k, sizeof k, "mem.%s.anon", key);
    put(k, (double)m->anon_kb);
    snprintf(k, sizeof k, "mem.%s.helpers", key);
    put(k, (double)m->helpers);
    snprintf(k, sizeof k, "mem.%s.helpers_kb", key);
    put(k, (double)m->help_kb);
}

static int pull(void)
{
    hp_err err = HP_ERR_INIT;
    hp_client *c = hp_client_connect(O->socket, &err);
    if (!c) {
        fprintf(stderr, "bench-lifecycle: %s: connect %s: %s\n", O->name, O->socket, err.msg);
        return -1;
    }
    Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
    spec.image = (char *)O->image;
    Runtime__V1__PullImageRequest q = RUNTIME__V1__PULL_IMAGE_REQUEST__INIT;
    q.image = &spec;
    int64_t ns = 0;
    int rc = rpc(c, "/runtime.v1.ImageService/PullImage", &q.base, NULL, NULL, &ns, &err);
    if (rc < 0)
        fprintf(stderr, "bench-lifecycle: %s: %s\n", O->name, err.msg);
    else
        printf("%s: PullImage %s: %.1f ms\n", O->name, O->image, (double)ns / 1e6);
    hp_client_free(c);
    return rc;
}

/* 1-minute load average (other work on the machine skews every number). */
static double loadavg1(void)
{
    double l = -1;
    _cleanup_fclose_ FILE *f = fopen("/proc/loadavg", "re");
    if (f && fscanf(f, "%lf", &l) != 1)
        l = -1;
    return l;
}

static int bench(void)
{
    put("load.start", loadavg1());
    struct mem ms;
    measure_mem(&ms);
    if (!O->no_pull && pull() < 0)
        return 1;
    int errors = 0;
    struct samples s;
    samples_alloc(&s, O->n > O->running ? O->n : O->running);

    if (O->warmup > 0)
        errors += run_workers("warmup", O->warmup, 1, NULL, false, NULL, NULL, NULL);
    sleep(1);
    struct mem m0;
    measure_mem(&m0);

    double wall;
    errors += run_workers("seq", O->n, 1, &s, false, NULL, NULL, &wall);
    print_phase("seq", &s, wall, 1);
    errors += run_workers("conc", O->n, O->concurrency, &s, false, NULL, NULL, &wall);
    print_phase("conc", &s, wall, O->concurrency);

    struct mem m1, m2;
    if (O->running > 0) {
        char **pods = calloc((size_t)O->running, sizeof *pods);
        char **ctrs = calloc((size_t)O->running, sizeof *ctrs);
        if (!pods || !ctrs) {
            fprintf(stderr, "bench-lifecycle: out of memory\n");
            exit(1);
        }
        double up, down;
        errors += run_workers("running", O->running, O->concurrency, NULL, true, pods, ctrs, &up);
        sleep(2);
        measure_mem(&m1);
        errors +=
            run_workers("teardown", O->running, O->concurrency, NULL, false, pods, ctrs, &down);
        printf("\n%s: %d pods with a running container: up in %.1f s, torn down in %.1f s "
               "(%d connections)\n",
               O->name, O->running, up, down, O->concurrency);
        for (int i = 0; i < O->running; i++) {
            free(pods[i]);
            free(ctrs[i]);
        }
        free(pods);
        free(ctrs);
    }
    sleep(2);
    measure_mem(&m2);
    printf("\n");
    print_mem("at start (before PullImage)", "start", &ms);
    print_mem("idle (after pull + warmup)", "idle", &m0);
    if (O->running > 0) {
        char what[64];
        snprintf(what, sizeof what, "%d pods running", O->running);
        print_mem(what, "running", &m1);
    }
    print_mem("idle (after teardown)", "idle_end", &m2);
    put("load.end", loadavg1());
    put("running", O->running);
    put("errors", errors);
    samples_free(&s);
    if (errors)
        fprintf(stderr, "bench-lifecycle: %s: %d failed lifecycles\n", O->name, errors);
    return errors ? 1 : 0;
}

/* --- report ------------------------------------------------------------------ */

static int load(const char *path, char *name, size_t name_size, char keys[][96], double *vals,
                int max)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "bench-lifecycle: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < max) {
        char k[96];
        double v;
        if (strncmp(line, "name ", 5) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(name, name_size, "%.63s", line + 5);
        } else if (sscanf(line, "%95s %lf", k, &v) == 2) {
            snprintf(keys[n], 96, "%s", k);
            vals[n++] = v;
        }
    }
    return n;
}

struct table {
    char name[64];
    char keys[256][96]; /* from --out: `key value` lines */
    double vals[256];
    int n;
    bool reference;
};

static double lookup(const struct table *t, const char *key)
{
    if (t->reference) {
        if (strcmp(key, "mem.idle.rss") == 0)
            return REFERENCE_RSS_IDLE_KB;
        for (int k = 0; k < C_N; k++) {
            char want[96];
            snprintf(want, sizeof want, "seq.%s.p50", call_names[k]);
            if (strcmp(key, want) == 0)
                return reference_p50_ms[k];
        }
        return -1;
    }
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->keys[i], key) == 0)
            return t->vals[i];
    return -1;
}

static void cell(double v, const char *fmt)
{
    if (v < 0)
        printf(" %12s", "-");
    else
        printf(fmt, v);
}

static int report(int argc, char **argv)
{
    static struct table t[2];
    int nt = 0;
    for (int i = 0; i < argc && nt < 2; i++) {
        if (strcmp(argv[i], "--reference") == 0) {
            snprintf(t[nt].name, sizeof t[nt].name, "containerd*");
            t[nt++].reference = true;
            continue;
        }
        snprintf(t[nt].name, sizeof t[nt].name, "%s", argv[i]);
        t[nt].n = load(argv[i], t[nt].name, sizeof t[nt].name, t[nt].keys, t[nt].vals, 256);
        if (t[nt].n < 0)
            return 1;
        nt++;
    }
    if (nt == 0)
        return 1;
    static const char *const phases[] = {"seq", "conc"};
    static const char *const phase_title[] = {"sequential", "10-concurrent"};
    for (int ph = 0; ph < 2; ph++) {
        printf("\n== Lifecycle latency, %s (ms) ==\n", phase_title[ph]);
        printf("%-18s", "CALL");
        for (int i = 0; i < nt; i++)
            printf(" %12.12s %12.12s", t[i].name, "p95");
        if (nt == 2)
            printf(" %12s", "p50 ratio");
        printf("\n");
        for (int k = 0; k < C_N; k++) {
            char k50[96], k95[96];
            snprintf(k50, sizeof k50, "%s.%s.p50", phases[ph], call_names[k]);
            snprintf(k95, sizeof k95, "%s.%s.p95", phases[ph], call_names[k]);
            printf("%-18s", call_names[k]);
            double a = -1, b = -1;
            for (int i = 0; i < nt; i++) {
                double v50 = lookup(&t[i], k50), v95 = lookup(&t[i], k95);
                cell(v50, " %12.1f");
                cell(v95, " %12.1f");
                if (i == 0)
                    a = v50;
                else
                    b = v50;
            }
            if (nt == 2)
                cell(a >= 0 && b > 0 ? a / b : -1, " %12.2f");
            printf("\n");
        }
        char kr[32];
        snprintf(kr, sizeof kr, "%s.rate", phases[ph]);
        printf("%-18s", "lifecycles/s");
        for (int i = 0; i < nt; i++) {
            cell(lookup(&t[i], kr), " %12.2f");
            printf(" %12s", "");
        }
        printf("\n");
    }
    printf("\n== Memory (kB) ==\n%-34s", "");
    for (int i = 0; i < nt; i++)
        printf(" %12.12s", t[i].name);
    printf("\n");
    static const char *const mk[] = {"start", "idle", "running", "idle_end"};
    static const char *const mt[] = {"at start", "idle", "N pods running", "idle after teardown"};
    static const char *const mf[] = {"rss", "anon", "helpers", "helpers_kb"};
    static const char *const mft[] = {"daemon VmRSS", "daemon RssAnon", "helper processes",
                                      "helpers VmRSS sum"};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            if (b >= 2 && (a == 0 || a == 1 || a == 3))
                continue; /* no helpers without pods */
            char key[96], title[96];
            snprintf(key, sizeof key, "mem.%s.%s", mk[a], mf[b]);
            snprintf(title, sizeof title, "%s: %s", mt[a], mft[b]);
            printf("%-34s", title);
            for (int i = 0; i < nt; i++)
                cell(lookup(&t[i], key), " %12.0f");
            printf("\n");
        }
    printf("%-34s", "load average (1 min) start / end");
    for (int i = 0; i < nt; i++) {
        if (t[i].reference) {
            printf(" %12s", "-");
            continue;
        }
        char l[32];
        snprintf(l, sizeof l, "%.1f / %.1f", lookup(&t[i], "load.start"),
                 lookup(&t[i], "load.end"));
        printf(" %12s", l);
    }
    printf("\n");
    for (int i = 0; i < nt; i++)
        if (t[i].reference)
            printf("\n* containerd column: the issue's reference numbers (containerd 1.6 + runc "
                   "on this machine over CRI, p50 only), NOT measured in this run.\n");
    return 0;
}

/* --- main -------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: bench-lifecycle --socket PATH --image REF [--name LABEL] [--pid PID]\n"
               "         [--helpers MATCH] [--logdir DIR] [-n 50] [--concurrency 10]\n"
               "         [--running 50] [--warmup 2] [--out FILE] [--no-pull]\n"
               "       bench-lifecycle --report A.out [B.out | --reference]\n");
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--report") == 0)
        return report(argc - 2, argv + 2);
    static struct opts o = {.name = "runtime",
                            .logdir = "/tmp/bench-lifecycle-logs",
                            .n = 50,
                            .concurrency = 10,
                            .running = 50,
                            .warmup = 2};
    static const struct option lo[] = {
        {"socket", required_argument, NULL, 's'},
        {"image", required_argument, NULL, 'i'},
        {"name", required_argument, NULL, 'N'},
        {"pid", required_argument, NULL, 'p'},
        {"helpers", required_argument, NULL, 'H'},
        {"logdir", required_argument, NULL, 'l'},
        {"concurrency", required_argument, NULL, 'c'},
        {"running", required_argument, NULL, 'r'},
        {"warmup", required_argument, NULL, 'w'},
        {"out", required_argument, NULL, 'o'},
        {"no-pull", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "n:h", lo, NULL)) != -1) {
        switch (ch) {
        case 's':
            o.socket = optarg;
            break;
        case 'i':
            o.image = optarg;
            break;
        case 'N':
            o.name = optarg;
            break;
        case 'p':
            o.pid = atol(optarg);
            break;
        case 'H':
            o.helpers = optarg;
            break;
        case 'l':
            o.logdir = optarg;
            break;
        case 'n':
            o.n = atoi(optarg);
            break;
        case 'c':
            o.concurrency = atoi(optarg);
            break;
        case 'r':
            o.running = atoi(optarg);
            break;
        case 'w':
            o.warmup = atoi(optarg);
            break;
        case 'o':
            o.out = optarg;
            break;
        case 'P':
            o.no_pull = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!o.socket || !o.image || o.n < 1 || o.concurrency < 1 || o.running < 0 || o.warmup < 0) {
        usage(stderr);
        return 2;
    }
    O = &o;
    run_id = (long)getpid() ^ (long)time(NULL);
    if (o.out) {
        out_f = fopen(o.out, "we");
        if (!out_f) {
            fprintf(stderr, "bench-lifecycle: %s: %s\n", o.out, strerror(errno));
            return 1;
        }
        fprintf(out_f, "name %s\n", o.name);
    }
    int rc = bench();
    if (out_f)
        fclose(out_f);
    return rc;
}
