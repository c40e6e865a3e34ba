/* Pod -> sbatch argv (see map.h and docs/slurm.md). */
#include "backend/slurm/map.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int hp_slurm_argv_add(hp_slurm_argv *a, const char *fmt, ...)
{
    if (a->n + 2 > a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 32;
        char **nv = realloc(a->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        a->v = nv;
        a->cap = nc;
    }
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0)
        return -1;
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
    return 0;
}

void hp_slurm_argv_free(hp_slurm_argv *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

/* Every annotation under slurm.hpcri.io/ that hpcri understands. */
static const char *const ann_keys[] = {
    "partition",  "account",     "qos",       "time-limit", "nodes", "ntasks", "ntasks-per-node",
    "constraint", "reservation", "exclusive", "gres",       "mpi",   "cpus",   "memory",
    "gpus",       NULL};

#define ALLOWED_KEYS                                                                               \
    "partition, account, qos, time-limit, nodes, ntasks, ntasks-per-node, constraint, "            \
    "reservation, exclusive, gres, mpi, cpus, memory, gpus"

static bool only_chars(const char *s, const char *extra, size_t max)
{
    size_t n = 0;
    if (!s || !*s || *s == '-')
        return false;
    for (; *s; s++, n++) {
        unsigned char c = (unsigned char)*s;
        if (!(isascii(c) && isalnum(c)) && !strchr(extra, c))
            return false;
    }
    return n <= max;
}

bool hp_slurm_valid_name(const char *s)
{
    return only_chars(s, "_.-", 128);
}

static bool valid_partition(const char *s)
{
    return only_chars(s, "_.,-", 256) && !strstr(s, ",,") && s[strlen(s) - 1] != ',';
}

static bool valid_constraint(const char *s)
{
    return only_chars(s, "_.&|,:*()[]!-", 512);
}

static bool valid_gres(const char *s)
{
    if (!only_chars(s, "_.:,-", 256))
        return false;
    /* no empty list items or segments */
    return !strstr(s, ",,") && !strstr(s, "::") && !strstr(s, ",:") && !strstr(s, ":,") &&
           s[strlen(s) - 1] != ',' && s[strlen(s) - 1] != ':';
}

/* Strict decimal integer in [min, max]; -1 if not. */
static long parse_long(const char *s, long min, long max)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    return v;
}

long hp_slurm_parse_cpus(const char *s)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || v < 0 || v > 10000000)
        return -1;
    if (*end == 'm' && end[1] == '\0') {
        if (v == 0)
            return -1;
        return (long)((v + 999) / 1000);
    }
    if (*end || v == 0)
        return -1;
    return (long)v;
}

int64_t hp_slurm_parse_mem_mb(const char *s)
{
    static const struct {
        const char *sfx;
        long double mul;
    } sfx[] = {{"", 1},
               {"k", 1e3},
               {"K", 1e3},
               {"M", 1e6},
               {"G", 1e9},
               {"T", 1e12},
               {"Ki", 1024.0},
               {"Mi", 1024.0 * 1024},
               {"Gi", 1024.0 * 1024 * 1024},
               {"Ti", 1024.0 * 1024 * 1024 * 1024}};
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || v <= 0)
        return -1;
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        if (strcmp(end, sfx[i].sfx) == 0) {
            long double bytes = (long double)v * sfx[i].mul;
            long double mb = bytes / (1024.0L * 1024.0L);
            if (mb > 1e12L) /* an exabyte: nonsense */
                return -1;
            int64_t r = (int64_t)mb;
            if ((long double)r < mb)
                r++;
            return r;
        }
    }
    return -1;
}

static const char *ann_get(const Runtime__V1__PodSandboxConfig *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->n_annotations; i++) {
        const char *k = cfg->annotations[i]->key;
        if (strncmp(k, HP_SLURM_ANN_PREFIX, strlen(HP_SLURM_ANN_PREFIX)) == 0 &&
            strcmp(k + strlen(HP_SLURM_ANN_PREFIX), key) == 0)
            return cfg->annotations[i]->value;
    }
    return NULL;
}

static int bad(hp_err *err, const char *key, const char *value, const char *expected)
{
    return hp_err_set(err, HP_INVALID_ARGUMENT,
                      "annotation " HP_SLURM_ANN_PREFIX "%s: invalid value \"%.200s\": expected %s",
                      key, value, expected);
}

static int check_keys(const Runtime__V1__PodSandboxConfig *cfg, hp_err *err)
{
    size_t plen = strlen(HP_SLURM_ANN_PREFIX);
    for (size_t i = 0; i < cfg->n_annotations; i++) {
        const char *k = cfg->annotations[i]->key;
        if (strncmp(k, HP_SLURM_ANN_PREFIX, plen) != 0)
            continue;
        bool known = false;
        for (size_t j = 0; ann_keys[j] && !known; j++)
            known = strcmp(k + plen, ann_keys[j]) == 0;
        if (!known)
            return hp_err_set(err, HP_INVALID_ARGUMENT,
                              "unknown annotation \"%.200s\": the " HP_SLURM_ANN_PREFIX
                              " keys are " ALLOWED_KEYS,
                              k);
    }
    return 0;
}

/* "D-HH:MM:SS" for sbatch --time (minutes are Slurm's unit: round up). */
static void fmt_time(int64_t secs, char *buf, size_t cap)
{
    if (secs < 0) {
        snprintf(buf, cap, "UNLIMITED");
        return;
    }
    int64_t mins = (secs + 59) / 60;
    if (mins == 0)
        mins = 1;
    snprintf(buf, cap, "%lld-%02lld:%02lld:00", (long long)(mins / 1440),
             (long long)(mins / 60 % 24), (long long)(mins % 60));
}

/* Metadata goes into --comment; keep it printable and free of separators. */
static void sanitize(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; in && *in && n + 1 < cap; in++) {
        unsigned char c = (unsigned char)*in;
        out[n++] = (isascii(c) && (isalnum(c) || c == '-' || c == '.' || c == '_')) ? (char)c : '_';
    }
    out[n] = '\0';
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* CPUs from pod-level resources (+ overhead): the CFS quota (limit) when
 * set, else the shares (request). 0 when neither says anything. */
static long cpus_of(const Runtime__V1__LinuxContainerResources *r,
                    const Runtime__V1__LinuxContainerResources *ovh)
{
    int64_t q = 0, p = 100000;
    if (r && r->cpu_quota > 0 && r->cpu_period > 0) {
        q = r->cpu_quota;
        p = r->cpu_period;
        if (ovh && ovh->cpu_quota > 0 && ovh->cpu_period > 0)
            q += ovh->cpu_quota * p / ovh->cpu_period;
        return (long)ceil_div(q, p);
    }
    /* Kubernetes gives every container at least 2 shares: ignore <= 2 */
    if (r && r->cpu_shares > 2) {
        int64_t s = r->cpu_shares + (ovh && ovh->cpu_shares > 2 ? ovh->cpu_shares : 0);
        return (long)ceil_div(s, 1024);
    }
    return 0;
}

#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (hp_slurm_argv_add(out, __VA_ARGS__) < 0)                                               \
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");                        \
    } while (0)

int hp_slurm_map_pod(const char *pod_id, const Runtime__V1__PodSandboxConfig *cfg,
                     const hp_slurm_defaults *d, const hp_slurm_paths *paths, hp_slurm_argv *out,
                     hp_slurm_request *req, hp_err *err)
{
    memset(req, 0, sizeof *req);
    req->cpus_from = req->mem_from = "default";
    if (!only_chars(pod_id, "", 64))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid pod id \"%.80s\"", pod_id);
    if (check_keys(cfg, err) < 0)
        return -1;
    const char *prefix = d->job_name_prefix ? d->job_name_prefix : "hpcri-";
    snprintf(req->job_name, sizeof req->job_name, "%s%s", prefix, pod_id);

    /* --- scheduling placement: annotation, else handler default --- */
    const char *partition = ann_get(cfg, "partition");
    if (partition && !valid_partition(partition))
        return bad(err, "partition", partition,
                   "a partition name or comma-separated list ([A-Za-z0-9_.-])");
    if (!partition)
        partition = d->partition;
    const char *account = ann_get(cfg, "account");
    if (account && !hp_slurm_valid_name(account))
        return bad(err, "account", account, "an account name ([A-Za-z0-9_.-])");
    if (!account)
        account = d->account;
    const char *qos = ann_get(cfg, "qos");
    if (qos && !hp_slurm_valid_name(qos))
        return bad(err, "qos", qos, "a QOS name ([A-Za-z0-9_.-])");
    if (!qos)
        qos = d->qos;
    const char *reservation = ann_get(cfg, "reservation");
    if (reservation && !hp_slurm_valid_name(reservation))
        return bad(err, "reservation", reservation, "a reservation name ([A-Za-z0-9_.-])");
    const char *constraint = ann_get(cfg, "constraint");
    if (constraint && !valid_constraint(constraint))
        return bad(err, "constraint", constraint,
                   "node features joined by & | , with optional [] () * ! (no spaces)");

    const char *tl = ann_get(cfg, "time-limit");
    const char *tl_src = tl ? "time-limit" : NULL;
    if (!tl)
        tl = d->time_limit;
    if (tl) {
        hp_err e = HP_ERR_INIT;
        int64_t secs;
        if (hp_config_parse_slurm_time(tl, &secs, &e) < 0) {
            if (tl_src)
                return bad(err, "time-limit", tl,
                           "a Slurm time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, "
                           "UNLIMITED)");
            return hp_err_set(err, HP_INVALID_ARGUMENT, "handler time_limit: %s", e.msg);
        }
        if (secs == 0)
            return bad(err, "time-limit", tl, "a time limit of at least one minute");
        req->time_limit_s = secs;
    }

    /* --- shape: nodes / tasks --- */
    const char *nodes = ann_get(cfg, "nodes");
    long nodes_min = 0;
    if (nodes) {
        char a[24], b[24];
        const char *dash = strchr(nodes, '-');
        long lo, hi;
        if (dash && (size_t)(dash - nodes) < sizeof a && strlen(dash + 1) < sizeof b) {
            memcpy(a, nodes, (size_t)(dash - nodes));
            a[dash - nodes] = '\0';
            snprintf(b, sizeof b, "%s", dash + 1);
            lo = parse_long(a, 1, 100000);
            hi = parse_long(b, 1, 100000);
            if (lo < 0 || hi < lo)
                return bad(err, "nodes", nodes, "N or MIN-MAX with 1 <= MIN <= MAX");
        } else {
            lo = parse_long(nodes, 1, 100000);
            if (lo < 0)
                return bad(err, "nodes", nodes, "N or MIN-MAX with 1 <= MIN <= MAX");
        }
        nodes_min = lo;
    }
    const char *s_ntasks = ann_get(cfg, "ntasks");
    long ntasks = 0, ntpn = 0;
    if (s_ntasks && (ntasks = parse_long(s_ntasks, 1, 1000000)) < 0)
        return bad(err, "ntasks", s_ntasks, "a positive integer");
    const char *s_ntpn = ann_get(cfg, "ntasks-per-node");
    if (s_ntpn && (ntpn = parse_long(s_ntpn, 1, 100000)) < 0)
        return bad(err, "ntasks-per-node", s_ntpn, "a positive integer");
    long tasks = ntasks ? ntasks : (ntpn ? ntpn * (nodes_min ? nodes_min : 1) : 1);
    req->ntasks = tasks;

    const char *excl = ann_get(cfg, "exclusive");
    if (excl && strcmp(excl, "true") != 0 && strcmp(excl, "false") != 0)
        return bad(err, "exclusive", excl, "true or false");

    const char *mpi = ann_get(cfg, "mpi");
    if (mpi && strcmp(mpi, "none") != 0 && strcmp(mpi, "pmi2") != 0 && strcmp(mpi, "pmix") != 0)
        return bad(err, "mpi", mpi, "none, pmi2 or pmix");
    snprintf(req->mpi, sizeof req->mpi, "%s", mpi ? mpi : (d->mpi ? d->mpi : "none"));

    /* --- resources: pod-level linux.resources (+overhead) first, then
     * annotations, else the partition defaults --- */
    const Runtime__V1__LinuxContainerResources *res = NULL, *ovh = NULL;
    if (cfg->linux) {
        res = cfg->linux->resources;
        ovh = cfg->linux->overhead;
    }
    const char *s_cpus = ann_get(cfg, "cpus");
    long ann_cpus = 0;
    if (s_cpus && (ann_cpus = hp_slurm_parse_cpus(s_cpus)) < 0)
        return bad(err, "cpus", s_cpus, "a positive CPU count (\"2\" or \"1500m\")");
    req->cpus = cpus_of(res, ovh);
    if (req->cpus > 0)
        req->cpus_from = "pod-resources";
    else if (ann_cpus > 0) {
        req->cpus = ann_cpus;
        req->cpus_from = "annotation";
    }
    if (req->cpus > 0)
        req->cpus_per_task = (long)ceil_div(req->cpus, tasks);

    const char *s_mem = ann_get(cfg, "memory");
    int64_t ann_mem = 0;
    if (s_mem && (ann_mem = hp_slurm_parse_mem_mb(s_mem)) < 0)
        return bad(err, "memory", s_mem, "a quantity such as 512Mi, 2Gi, 1G or bytes");
    if (res && res->memory_limit_in_bytes > 0) {
        int64_t bytes = res->memory_limit_in_bytes;
        if (ovh && ovh->memory_limit_in_bytes > 0)
            bytes += ovh->memory_limit_in_bytes;
        req->mem_mb = ceil_div(bytes, 1024 * 1024);
        req->mem_from = "pod-resources";
    } else if (ann_mem > 0) {
        req->mem_mb = ann_mem;
        req->mem_from = "annotation";
    }

    const char *s_gpus = ann_get(cfg, "gpus");
    if (s_gpus && (req->gpus = parse_long(s_gpus, 0, 1024)) < 0)
        return bad(err, "gpus", s_gpus, "a GPU count (0-1024)");
    const char *gres = ann_get(cfg, "gres");
    if (gres && !valid_gres(gres))
        return bad(err, "gres", gres, "NAME[:TYPE][:COUNT] items separated by commas");
    if (gres && req->gpus > 0 && (strncmp(gres, "gpu", 3) == 0 || strstr(gres, ",gpu") != NULL))
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "annotations " HP_SLURM_ANN_PREFIX "gpus and " HP_SLURM_ANN_PREFIX
                          "gres both ask for GPUs: use one of them");

    /* --- the argv --- */
    char ns[128], name[128];
    const Runtime__V1__PodSandboxMetadata *md = cfg->metadata;
    sanitize(md ? md->namespace_ : "", ns, sizeof ns);
    sanitize(md ? md->name : "", name, sizeof name);

    ADD("sbatch");
    ADD("--parsable");
    ADD("--job-name=%s", req->job_name);
    ADD("--comment=k8s:%s/%s", ns, name);
    ADD("--no-requeue");
    ADD("--chdir=%s", paths->pod_dir);
    ADD("--output=%s/slurm-%%j.out", paths->pod_dir);
    if (partition)
        ADD("--partition=%s", partition);
    if (account)
        ADD("--account=%s", account);
    if (qos)
        ADD("--qos=%s", qos);
    if (req->time_limit_s != 0) {
        char t[48];
        fmt_time(req->time_limit_s, t, sizeof t);
        ADD("--time=%s", t);
    }
    if (nodes)
        ADD("--nodes=%s", nodes);
    if (ntasks)
        ADD("--ntasks=%ld", ntasks);
    if (ntpn)
        ADD("--ntasks-per-node=%ld", ntpn);
    if (req->cpus_per_task > 0)
        ADD("--cpus-per-task=%ld", req->cpus_per_task);
    if (req->mem_mb > 0)
        ADD("--mem=%lldM", (long long)req->mem_mb);
    if (gres && req->gpus > 0)
        ADD("--gres=%s,gpu:%ld", gres, req->gpus);
    else if (gres)
        ADD("--gres=%s", gres);
    else if (req->gpus > 0)
        ADD("--gres=gpu:%ld", req->gpus);
    if (constraint)
        ADD("--constraint=%s", constraint);
    if (reservation)
        ADD("--reservation=%s", reservation);
    if (excl && strcmp(excl, "true") == 0)
        ADD("--exclusive");
    ADD("%s", paths->script_path);
    return 0;
}
