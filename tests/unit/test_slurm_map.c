/* Pod -> sbatch argv mapping of the Slurm backend (src/backend/slurm/map.c). */
#include <stdarg.h>

#include "backend/slurm/map.h"
#include "backend/slurm/exec.h"
#include "t.h"

#define POD_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* A pod config with `n` annotation pairs (key, value, ...), plus optional
 * pod-level resources.  Everything lives in the struct. */
typedef struct pod {
    Runtime__V1__PodSandboxConfig cfg;
    Runtime__V1__PodSandboxMetadata md;
    Runtime__V1__LinuxPodSandboxConfig lx;
    Runtime__V1__LinuxContainerResources res, ovh;
    Runtime__V1__PodSandboxConfig__AnnotationsEntry ents[16];
    Runtime__V1__PodSandboxConfig__AnnotationsEntry *ptrs[16];
} pod;

static void pod_init(pod *p, int n, ...)
{
    memset(p, 0, sizeof *p);
    p->cfg = (Runtime__V1__PodSandboxConfig)RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
    p->md = (Runtime__V1__PodSandboxMetadata)RUNTIME__V1__POD_SANDBOX_METADATA__INIT;
    p->md.name = "web";
    p->md.namespace_ = "prod";
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
}

static void pod_resources(pod *p, int64_t quota, int64_t period, int64_t shares, int64_t mem)
{
    p->lx = (Runtime__V1__LinuxPodSandboxConfig)RUNTIME__V1__LINUX_POD_SANDBOX_CONFIG__INIT;
    p->res = (Runtime__V1__LinuxContainerResources)RUNTIME__V1__LINUX_CONTAINER_RESOURCES__INIT;
    p->res.cpu_quota = quota;
    p->res.cpu_period = period;
    p->res.cpu_shares = shares;
    p->res.memory_limit_in_bytes = mem;
    p->lx.resources = &p->res;
    p->cfg.linux = &p->lx;
}

static const hp_slurm_defaults defs = {.job_name_prefix = "hpcri-", .mpi = "pmi2"};
static const hp_slurm_paths paths = {.pod_dir = "/shared/pods/" POD_ID,
                                     .script_path = "/shared/hpcri-keeper.sh"};

/* The argv joined by spaces (into a static buffer: tests only). */
static const char *joined(const hp_slurm_argv *a)
{
    static char buf[4096];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < a->n; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? " " : "", a->v[i]);
    return buf;
}

static bool has_arg(const hp_slurm_argv *a, const char *arg)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], arg) == 0)
            return true;
    return false;
}

static bool has_prefix_arg(const hp_slurm_argv *a, const char *pfx)
{
    for (size_t i = 0; i < a->n; i++)
        if (strncmp(a->v[i], pfx, strlen(pfx)) == 0)
            return true;
    return false;
}

T_CASE(map_minimal_pod)
{
    pod p;
    pod_init(&p, 0);
    hp_slurm_argv a = {0};
    hp_slurm_request rq;
    hp_err err = HP_ERR_INIT;
    int rc = hp_slurm_map_pod(POD_ID, &p.cfg, &defs, &paths, &a, &rq, &err);
    if (rc != 0)
        T_FAIL("%s", err.msg);
    T_EQ_INT(rc, 0);
    T_EQ_STR(joined(&a), "sbatch --parsable --job-name=hpcri-" POD_ID
                         " --comment=k8s:prod/web --no-requeue --chdir=/shared/pods/" POD_ID
                         " --output=/shared/pods/" POD_ID "/slurm-%j.out /shared/hpcri-keeper.sh");
    /* unset resources: no --mem / --cpus-per-task, so the partition default applies */
    T_ASSERT(!has_prefix_arg(&a, "--mem"));
    T_ASSERT(!has_prefix_arg(&a, "--cpus-per-task"));
    T_EQ_INT(rq.cpus, 0);
    T_EQ_INT(rq.mem_mb, 0);
    T_EQ_INT(rq.ntasks, 1);
    T_EQ_STR(rq.mpi, "pmi2");
    T_EQ_STR(a.v[a.n - 1], "/shared/hpcri-keeper.sh");
    T_ASSERT(a.v[a.n] == NULL);
    hp_slurm_argv_free(&a);
}

T_CASE(map_pod_level_resources)
{
    struct {
        int64_t quota, period, shares, mem;
        int64_t ovh_quota, ovh_mem;
        const char *cpus_arg, *mem_arg;
    } tab[] = {
        {200000, 100000, 0, 1 << 30, 0, 0, "--cpus-per-task=2", "--mem=1024M"},
        {150000, 100000, 0, 1000 * 1000 * 1000, 0, 0, "--cpus-per-task=2", "--mem=954M"},
        {50000, 100000, 0, 1, 0, 0, "--cpus-per-task=1", "--mem=1M"},
        {0, 0, 2048, 0, 0, 0, "--cpus-per-task=2", NULL},
        {0, 0, 1536, 0, 0, 0, "--cpus-per-task=2", NULL},
        {0, 0, 2, 0, 0, 0, NULL, NULL}, /* minimum shares: no request */
        /* RuntimeClass overhead is added */
        {100000, 100000, 0, 512 << 20, 50000, 128 << 20, "--cpus-per-task=2", "--mem=640M"},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        pod p;
        pod_init(&p, 0);
        pod_resources(&p, tab[i].quota, tab[i].period, tab[i].shares, tab[i].mem);
        if (tab[i].ovh_quota || tab[i].ovh_mem) {
            p.ovh =
                (Runtime__V1__LinuxContainerResources)RUNTIME__V1__LINUX_CONTAINER_RESOURCES__INIT;
            p.ovh.cpu_quota = tab[i].ovh_quota;
            p.ovh.cpu_period = 100000;
            p.ovh.memory_limit_in_bytes = tab[i].ovh_mem;
            p.lx.overhead = &p.ovh;
        }
        hp_slurm_argv a = {0};
        hp_slurm_request rq;
        hp_err err = HP_ERR_INIT;
        T_EQ_INT(hp_slurm_map_pod(POD_ID, &p.cfg, &defs, &paths, &a, &rq, &err), 0);
        if (tab[i].cpus_arg && !has_arg(&a, tab[i].cpus_arg))
            T_FAIL("row %zu: no %s in %s", i, tab[i].cpus_arg, joined(&a));
        if (!tab[i].cpus_arg && has_prefix_arg(&a, "--cpus-per-task"))
            T_FAIL("row %zu: unexpected cpus in %s", i, joined(&a));
        if (tab[i].mem_arg && !has_arg(&a, tab[i].mem_arg))
            T_FAIL("row %zu: no %s in %s", i, tab[i].mem_arg, joined(&a));
        if (!tab[i].mem_arg && has_prefix_arg(&a, "--mem"))
            T_FAIL("row %zu: unexpected mem in %s", i, joined(&a));
        hp_slurm_argv_free(&a);
        if (*t_failed)
            return;
    }
}

T_CASE(map_annotations)
{
    struct {
        const char *key, *value, *arg;
    } tab[] = {
        {"slurm.hpcri.io/partition", "gpu", "--partition=gpu"},
        {"slurm.hpcri.io/partition", "a,b", "--partition=a,b"},
        {"slurm.hpcri.io/account", "proj-42", "--account=proj-42"},
        {"slurm.hpcri.io/qos", "high", "--qos=high"},
        {"slurm.hpcri.io/time-limit", "90", "--time=0-01:30:00"},
        {"slurm.hpcri.io/time-limit", "1-02:03:04", "--time=1-02:04:00"},
        {"slurm.hpcri.io/time-limit", "UNLIMITED", "--time=UNLIMITED"},
        {"slurm.hpcri.io/nodes", "2", "--nodes=2"},
        {"slurm.hpcri.io/nodes", "2-4", "--nodes=2-4"},
        {"slurm.hpcri.io/ntasks", "8", "--ntasks=8"},
        {"slurm.hpcri.io/ntasks-per-node", "4", "--ntasks-per-node=4"},
        {"slurm.hpcri.io/constraint", "skylake&ib", "--constraint=skylake&ib"},
        {"slurm.hpcri.io/constraint", "[rack1*2&rack2*2]", "--constraint=[rack1*2&rack2*2]"},
        {"slurm.hpcri.io/reservation", "maint_1", "--reservation=maint_1"},
        {"slurm.hpcri.io/exclusive", "true", "--exclusive"},
        {"slurm.hpcri.io/gres", "gpu:a100:2", "--gres=gpu:a100:2"},
        {"slurm.hpcri.io/gres", "gpu:1,nic:1", "--gres=gpu:1,nic:1"},
        {"slurm.hpcri.io/gpus", "2", "--gres=gpu:2"},
        {"slurm.hpcri.io/cpus", "3", "--cpus-per-task=3"},
        {"slurm.hpcri.io/cpus", "1500m", "--cpus-per-task=2"},
        {"slurm.hpcri.io/memory", "512Mi", "--mem=512M"},
        {"slurm.hpcri.io/memory", "2Gi", "--mem=2048M"},
        {"slurm.hpcri.io/memory", "1G", "--mem=954M"},
        {"slurm.hpcri.io/memory", "1048577", "--mem=2M"},
        {"other.io/partition", "x y", NULL}, /* not ours: ignored */
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        pod p;
        pod_init(&p, 1, tab[i].key, tab[i].value);
        hp_slurm_argv a = {0};
        hp_slurm_request rq;
        hp_err err = HP_ERR_INIT;
        int rc = hp_slurm_map_pod(POD_ID, &p.cfg, &defs, &paths, &a, &rq, &err);
        if (rc != 0)
            T_FAIL("row %zu (%s=%s): %s", i, tab[i].key, tab[i].value, err.msg);
        else if (tab[i].arg && !has_arg(&a, tab[i].arg))
            T_FAIL("row %zu: no %s in %s", i, tab[i].arg, joined(&a));
        else if (!tab[i].arg && a.n != 8)
            T_FAIL("row %zu: extra args in %s", i, joined(&a));
        hp_slurm_argv_free(&a);
        if (*t_failed)
            return;
    }
}

T_CASE(map_exclusive_false_and_mpi)
{
    pod p;
    pod_init(&p, 2, "slurm.hpcri.io/exclusive", "false", "slurm.hpcri.io/mpi", "pmix");
    hp_slurm_argv a = {0};
    hp_slurm_request rq;
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_slurm_map_pod(POD_ID, &p.cfg, &defs, &paths, &a, &rq, &err), 0);
    T_ASSERT(!has_arg(&a, "--exclusive"));
    T_EQ_STR(rq.mpi, "pmix"); /* mpi is for the steps (srun --mpi), not sbatch */
    T_ASSERT(!has_prefix_arg(&a, "--mpi"));
    hp_slurm_argv_free(&a);
}

T_CASE(map_tasks_split_cpus)
{
    pod p;
    pod_init(&p, 2, "slurm.hpcri.io/ntasks", "4", "slurm.hpcri.io/cpus", "6");
    hp_slurm_argv a = {0};
    hp_slurm_request rq;
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_slurm_map_pod(POD_ID, &p.cfg, &defs, &paths, &a, &rq, &err), 0);
    T_ASSERT(has_arg(&a, "--ntasks=4"));
    T_ASSERT(has_arg(&a, "--cpus-per-task=2")); /* ceil(6/4) */
    hp_slurm_argv_free(&a);

    pod_init(&p, 3, "slurm.hpcri.io/ntasks-per-node", "2", "slurm.hpcri.io/nodes", "3",
             "slurm.hpcri.io/cpus", "12");
    T_EQ_INT(hp_slurm_map_pod(POD_ID, &p.cfg, &defs, &paths, &a, &rq, &err), 0);
    T_EQ_INT(rq.ntasks, 6);
    T_ASSERT(has_arg(&a, "--cpus-per-task=2"));
    hp_slurm_argv_free(&a);
}

T_CASE(map_pod_resources_win_over_annotations)
{
    pod p;
    pod_init(&p, 2, "slurm.hpcri.io/cpus", "8", "slurm.hpcri.io/memory", "8Gi");
    pod_resources(&p, 100000, 100000, 0, 256 << 20);
    hp_slurm_argv a = {0};
    hp_slurm_request rq;
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_slurm_map_pod(POD_ID, &p.cfg, &defs, &paths, &a, &rq, &err), 0);
    T_ASSERT(has_arg(&a, "--cpus-per-task=1"));
    T_ASSERT(has_arg(&a, "--mem=256M"));
    T_EQ_STR(rq.cpus_from, "pod-resources");
    hp_slurm_argv_free(&a);
}

T_CASE(map_handler_defaults_and_override)
{
    hp_slurm_defaults d = {.partition = "batch",
                           .account = "acct",
                           .qos = "normal",
                           .time_limit = "2:00:00",
                           .job_name_prefix = "k8s.",
                           .mpi = "none"};
    pod p;
    pod_init(&p, 0);
    hp_slurm_argv a = {0};
    hp_slurm_request rq;
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_slurm_map_pod(POD_ID, &p.cfg, &d, &paths, &a, &rq, &err), 0);
    T_ASSERT(has_arg(&a, "--partition=batch"));
    T_ASSERT(has_arg(&a, "--account=acct"));
    T_ASSERT(has_arg(&a, "--qos=normal"));
    T_ASSERT(has_arg(&a, "--time=0-02:00:00"));
    T_ASSERT(has_arg(&a, "--job-name=k8s." POD_ID));
    T_EQ_INT(rq.time_limit_s, 7200);
    hp_slurm_argv_free(&a);

    pod_init(&p, 2, "slurm.hpcri.io/partition", "debug", "slurm.hpcri.io/time-limit", "5");
    T_EQ_INT(hp_slurm_map_pod(POD_ID, &p.cfg, &d, &paths, &a, &rq, &err), 0);
    T_ASSERT(has_arg(&a, "--partition=debug"));
    T_ASSERT(!has_arg(&a, "--partition=batch"));
    T_ASSERT(has_arg(&a, "--time=0-00:05:00"));
    hp_slurm_argv_free(&a);
}

T_CASE(map_rejects_bad_values)
{
    struct {
        const char *key, *value, *needle;
    } tab[] = {
        {"slurm.hpcri.io/partition", "debug --uid=0", "slurm.hpcri.io/partition"},
        {"slurm.hpcri.io/partition", "--uid=0", "invalid value"},
        {"slurm.hpcri.io/partition", "", "invalid value"},
        {"slurm.hpcri.io/partition", "a,,b", "invalid value"},
        {"slurm.hpcri.io/account", "a;b", "slurm.hpcri.io/account"},
        {"slurm.hpcri.io/account", "a,b", "slurm.hpcri.io/account"},
        {"slurm.hpcri.io/qos", "x\ny", "slurm.hpcri.io/qos"},
        {"slurm.hpcri.io/time-limit", "soon", "Slurm time"},
        {"slurm.hpcri.io/time-limit", "0", "at least one minute"},
        {"slurm.hpcri.io/nodes", "0", "MIN-MAX"},
        {"slurm.hpcri.io/nodes", "4-2", "MIN-MAX"},
        {"slurm.hpcri.io/nodes", "2 ", "MIN-MAX"},
        {"slurm.hpcri.io/ntasks", "-1", "positive integer"},
        {"slurm.hpcri.io/ntasks", "1e3", "positive integer"},
        {"slurm.hpcri.io/ntasks-per-node", "x", "positive integer"},
        {"slurm.hpcri.io/constraint", "a b", "node features"},
        {"slurm.hpcri.io/constraint", "$(id)", "node features"},
        {"slurm.hpcri.io/reservation", "r 1", "reservation"},
        {"slurm.hpcri.io/exclusive", "yes", "true or false"},
        {"slurm.hpcri.io/gres", "gpu::2", "NAME[:TYPE][:COUNT]"},
        {"slurm.hpcri.io/gres", "gpu:2 --x", "NAME[:TYPE][:COUNT]"},
        {"slurm.hpcri.io/mpi", "openmpi", "none, pmi2 or pmix"},
        {"slurm.hpcri.io/cpus", "0", "CPU count"},
        {"slurm.hpcri.io/cpus", "1.5", "CPU count"},
        {"slurm.hpcri.io/memory", "1Xi", "quantity"},
        {"slurm.hpcri.io/memory", "-5", "quantity"},
        {"slurm.hpcri.io/gpus", "two", "GPU count"},
        {"slurm.hpcri.io/partiton", "debug", "partition, account, qos, time-limit"},
        {"slurm.hpcri.io/", "x", "unknown annotation"},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        pod p;
        pod_init(&p, 1, tab[i].key, tab[i].value);
        hp_slurm_argv a = {0};
        hp_slurm_request rq;
        hp_err err = HP_ERR_INIT;
        int rc = hp_slurm_map_pod(POD_ID, &p.cfg, &defs, &paths, &a, &rq, &err);
        hp_slurm_argv_free(&a);
        if (rc != -1 || err.code != HP_INVALID_ARGUMENT)
            T_FAIL("row %zu (%s=%s): rc %d code %d", i, tab[i].key, tab[i].value, rc, err.code);
        else if (!strstr(err.msg, tab[i].needle))
            T_FAIL("row %zu: message \"%s\" lacks \"%s\"", i, err.msg, tab[i].needle);
        if (*t_failed)
            return;
    }
}

T_CASE(map_gpus_and_gres_conflict)
{
    pod p;
    pod_init(&p, 2, "slurm.hpcri.io/gpus", "1", "slurm.hpcri.io/gres", "gpu:1");
    hp_slurm_argv a = {0};
    hp_slurm_request rq;
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_slurm_map_pod(POD_ID, &p.cfg, &defs, &paths, &a, &rq, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    hp_slurm_argv_free(&a);
    pod_init(&p, 2, "slurm.hpcri.io/gpus", "1", "slurm.hpcri.io/gres", "nic:1");
    T_EQ_INT(hp_slurm_map_pod(POD_ID, &p.cfg, &defs, &paths, &a, &rq, &err), 0);
    T_ASSERT(has_arg(&a, "--gres=nic:1,gpu:1"));
    hp_slurm_argv_free(&a);
}

T_CASE(map_comment_sanitized_and_pod_id_checked)
{
    pod p;
    pod_init(&p, 0);
    p.md.name = "we b;$(x)";
    hp_slurm_argv a = {0};
    hp_slurm_request rq;
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_slurm_map_pod(POD_ID, &p.cfg, &defs, &paths, &a, &rq, &err), 0);
    T_ASSERT(has_arg(&a, "--comment=k8s:prod/we_b___x_"));
    hp_slurm_argv_free(&a);
    T_EQ_INT(hp_slurm_map_pod("../x", &p.cfg, &defs, &paths, &a, &rq, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    hp_slurm_argv_free(&a);
}

T_CASE(parse_quantities)
{
    T_EQ_INT(hp_slurm_parse_cpus("1"), 1);
    T_EQ_INT(hp_slurm_parse_cpus("250m"), 1);
    T_EQ_INT(hp_slurm_parse_cpus("2001m"), 3);
    T_EQ_INT(hp_slurm_parse_cpus("0m"), -1);
    T_EQ_INT(hp_slurm_parse_cpus(""), -1);
    T_EQ_INT(hp_slurm_parse_mem_mb("1Mi"), 1);
    T_EQ_INT(hp_slurm_parse_mem_mb("1Ti"), 1024 * 1024);
    T_EQ_INT(hp_slurm_parse_mem_mb("1k"), 1);
    T_EQ_INT(hp_slurm_parse_mem_mb("1Pi"), -1);
    T_EQ_INT(hp_slurm_parse_mem_mb("99999999999999Ti"), -1);
}

T_CASE(errtext_strips_prefixes)
{
    char buf[256];
    hp_slurm_errtext("sbatch: error: Memory specification can not be satisfied\n"
                     "sbatch: error: Batch job submission failed: Requested node "
                     "configuration is not available\n",
                     buf, sizeof buf);
    T_EQ_STR(buf, "Memory specification can not be satisfied; Batch job submission failed: "
                  "Requested node configuration is not available");
    hp_slurm_errtext("plain\n\n", buf, 4);
    T_EQ_STR(buf, "pla");
}

T_MAIN()
