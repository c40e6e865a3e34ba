/* Batched squeue poller (see poll.h). */
#include "backend/slurm/poll.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/slurm/exec.h"
#include "util/log.h"

#define CMD_TIMEOUT_MS 30000
#define SQUEUE_FORMAT  "%i|%T|%r|%N|%S|%e|%j"

typedef struct tracked {
    char id[24];
    char name[160];
    uint64_t since; /* polls started before track(); vanished only if a later poll missed it */
} tracked;

typedef struct jobvec {
    hp_slurm_job *v;
    size_t n, cap;
} jobvec;

struct hp_slurm_poller {
    char *bin_dir, *user, *prefix;
    char *squeue, *sacct, *scontrol;
    int interval_ms;

    pthread_mutex_t mu;
    pthread_cond_t cond; /* generation changes and stop requests */
    jobvec jobs;         /* last squeue snapshot, sorted by id */
    jobvec resolved;     /* vanished tracked jobs, resolved once */
    tracked *tr;
    size_t n_tr, cap_tr;
    uint64_t started;         /* polls started */
    uint64_t gen;             /* polls completed (successfully) */
    int64_t last_ok_ms;       /* CLOCK_MONOTONIC of the last good poll */
    int64_t last_ok_start_ns; /* CLOCK_REALTIME when the last good poll started */
    bool stop;
    bool thread_running;
    pthread_t thread;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Numeric order for numeric ids ("9" < "10"), then lexical. */
static int id_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    return strcmp(a, b);
}

static int job_cmp(const void *a, const void *b)
{
    return id_cmp(((const hp_slurm_job *)a)->id, ((const hp_slurm_job *)b)->id);
}

static int jobvec_push(jobvec *jv, const hp_slurm_job *j)
{
    if (jv->n == jv->cap) {
        size_t nc = jv->cap ? jv->cap * 2 : 64;
        hp_slurm_job *nv = realloc(jv->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        jv->v = nv;
        jv->cap = nc;
    }
    jv->v[jv->n++] = *j;
    return 0;
}

static hp_slurm_job *jobvec_find(const jobvec *jv, const char *id, bool sorted)
{
    if (jv->n == 0)
        return NULL;
    if (sorted) {
        hp_slurm_job key;
        snprintf(key.id, sizeof key.id, "%s", id);
        return bsearch(&key, jv->v, jv->n, sizeof *jv->v, job_cmp);
    }
    for (size_t i = 0; i < jv->n; i++)
        if (strcmp(jv->v[i].id, id) == 0)
            return &jv->v[i];
    return NULL;
}

bool hp_slurm_state_final(const char *s)
{
    static const char *const fin[] = {"COMPLETED",     "CANCELLED", "FAILED",       "TIMEOUT",
                                      "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",    "BOOT_FAIL",
                                      "DEADLINE",      "REVOKED",   "SPECIAL_EXIT", NULL};
    for (size_t i = 0; fin[i]; i++)
        if (strcmp(s, fin[i]) == 0)
            return true;
    return false;
}

int64_t hp_slurm_parse_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s)
        return 0;
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || (*end && *end != ' ' && *end != '\n'))
        return 0;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    return t < 0 ? 0 : (int64_t)t;
}

/* Copy field [s, e) into dst (truncating). */
static void cpy(char *dst, size_t cap, const char *s, const char *e)
{
    size_t n = (size_t)(e - s);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

int hp_slurm_parse_squeue_line(const char *line, const char *prefix, hp_slurm_job *out)
{
    const char *f[7];
    const char *p = line;
    memset(out, 0, sizeof *out);
    f[0] = p;
    for (int i = 1; i < 7; i++) {
        const char *bar = strchr(p, '|');
        if (!bar)
            return -1;
        p = bar + 1;
        f[i] = p;
    }
    const char *eol = strchr(f[6], '\n');
    const char *name_end = eol ? eol : f[6] + strlen(f[6]);
    size_t plen = strlen(prefix);
    if ((size_t)(name_end - f[6]) < plen || strncmp(f[6], prefix, plen) != 0)
        return 1;
    if (f[1] - 1 == f[0]) /* empty id */
        return -1;
    cpy(out->id, sizeof out->id, f[0], f[1] - 1);
    cpy(out->state, sizeof out->state, f[1], f[2] - 1);
    cpy(out->reason, sizeof out->reason, f[2], f[3] - 1);
    cpy(out->nodes, sizeof out->nodes, f[3], f[4] - 1);
    char t[40];
    cpy(t, sizeof t, f[4], f[5] - 1);
    out->start_time = hp_slurm_parse_time(t);
    cpy(t, sizeof t, f[5], f[6] - 1);
    out->end_time = hp_slurm_parse_time(t);
    cpy(out->name, sizeof out->name, f[6], name_end);
    /* "CANCELLED by 0" never comes from squeue, but be safe */
    char *sp = strchr(out->state, ' ');
    if (sp)
        *sp = '\0';
    /* "(null)" node list of never-started jobs */
    if (strcmp(out->nodes, "(null)") == 0)
        out->nodes[0] = '\0';
    return 0;
}

static char *path_join(const char *dir, const char *prog)
{
    char *s = NULL;
    if (asprintf(&s, "%s/%s", dir, prog) < 0)
        return NULL;
    return s;
}

hp_slurm_poller *hp_slurm_poller_new(const hp_slurm_poller_cfg *cfg, hp_err *err)
{
    hp_slurm_poller *p = calloc(1, sizeof *p);
    if (!p) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    p->interval_ms = cfg->interval_ms > 0 ? cfg->interval_ms : 2000;
    p->last_ok_ms = -1;
    p->bin_dir = strdup(cfg->bin_dir);
    p->user = strdup(cfg->user);
    p->prefix = strdup(cfg->prefix);
    p->squeue = path_join(cfg->bin_dir, "squeue");
    p->sacct = path_join(cfg->bin_dir, "sacct");
    p->scontrol = path_join(cfg->bin_dir, "scontrol");
    if (!p->bin_dir || !p->user || !p->prefix || !p->squeue || !p->sacct || !p->scontrol) {
        hp_slurm_poller_free(p);
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    return p;
}

static void timespec_at(int64_t mono_deadline_ms, struct timespec *ts)
{
    ts->tv_sec = mono_deadline_ms / 1000;
    ts->tv_nsec = (mono_deadline_ms % 1000) * 1000000;
}

static void *poll_thread(void *arg)
{
    hp_slurm_poller *p = arg;
    int64_t next = mono_ms();
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        pthread_mutex_unlock(&p->mu);
        hp_err err = HP_ERR_INIT;
        if (hp_slurm_poller_poll_once(p, &err) < 0)
            hp_warn("slurm poller: %s", err.msg);
        next += p->interval_ms;
        int64_t now = mono_ms();
        if (next < now) /* overran: do not burst to catch up */
            next = now;
        struct timespec ts;
        timespec_at(next, &ts);
        pthread_mutex_lock(&p->mu);
        while (!p->stop && mono_ms() < next)
            if (pthread_cond_timedwait(&p->cond, &p->mu, &ts) == ETIMEDOUT)
                break;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int hp_slurm_poller_start(hp_slurm_poller *p, hp_err *err)
{
    pthread_mutex_lock(&p->mu);
    if (p->thread_running) {
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    int rc = pthread_create(&p->thread, NULL, poll_thread, p);
    if (rc == 0)
        p->thread_running = true;
    pthread_mutex_unlock(&p->mu);
    if (rc != 0) {
        errno = rc;
        return hp_err_sys(err, HP_INTERNAL, "cannot start the Slurm poller thread");
    }
    return 0;
}

void hp_slurm_poller_free(hp_slurm_poller *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    bool joined = p->thread_running;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    if (joined)
        pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cond);
    free(p->jobs.v);
    free(p->resolved.v);
    free(p->tr);
    free(p->bin_dir);
    free(p->user);
    free(p->prefix);
    free(p->squeue);
    free(p->sacct);
    free(p->scontrol);
    free(p);
}

/* `sacct ... -o JobID,State,ExitCode,NodeList,Start,End` line for id. */
static bool parse_sacct(const char *out, const char *id, hp_slurm_job *j)
{
    const char *line = out;
    while (line && *line) {
        const char *eol = strchr(line, '\n');
        char buf[1024];
        cpy(buf, sizeof buf, line, eol ? eol : line + strlen(line));
        line = eol ? eol + 1 : NULL;
        char *f[6] = {0};
        char *s = buf;
        int n = 0;
        /* split by hand: strtok would merge empty fields */
        for (; n < 6; n++) {
            f[n] = s;
            char *bar = s ? strchr(s, '|') : NULL;
            if (!bar) {
                n++;
                break;
            }
            *bar = '\0';
            s = bar + 1;
        }
        if (n < 6 || !f[0] || strcmp(f[0], id) != 0)
            continue;
        snprintf(j->state, sizeof j->state, "%s", f[1]);
        char *sp = strchr(j->state, ' '); /* "CANCELLED by 0" */
        if (sp)
            *sp = '\0';
        snprintf(j->exit_code, sizeof j->exit_code, "%s", f[2]);
        snprintf(j->nodes, sizeof j->nodes, "%s", strcmp(f[3], "None assigned") == 0 ? "" : f[3]);
        j->start_time = hp_slurm_parse_time(f[4]);
        j->end_time = hp_slurm_parse_time(f[5]);
        snprintf(j->reason, sizeof j->reason, "None");
        return j->state[0] != '\0';
    }
    return false;
}

/* "Key=value" from `scontrol show job -o` output. */
static bool scontrol_field(const char *out, const char *key, char *buf, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *p = out; (p = strstr(p, key)) != NULL; p += kl) {
        if ((p != out && p[-1] != ' ' && p[-1] != '\n') || p[kl] != '=')
            continue;
        const char *v = p + kl + 1;
        const char *e = v + strcspn(v, " \n");
        cpy(buf, cap, v, e);
        return true;
    }
    return false;
}

/* Resolve a job that left squeue: sacct (slurmdbd), sacct -c (jobcomp
 * file), scontrol.  Always fills j; state "UNKNOWN" when nothing knows it. */
static void resolve(hp_slurm_poller *p, const char *id, const char *name, hp_slurm_job *j)
{
    memset(j, 0, sizeof *j);
    snprintf(j->id, sizeof j->id, "%s", id);
    snprintf(j->name, sizeof j->name, "%s", name);
    j->resolved = true;
    char idarg[40];
    snprintf(idarg, sizeof idarg, "%s", id);
    char *const sacct_db[] = {"sacct", "-n",  "-P", "-X",
                              "-j",    idarg, "-o", "JobID,State,ExitCode,NodeList,Start,End",
                              NULL};
    char *const sacct_c[] = {"sacct", "-c",  "-n", "-P",
                             "-j",    idarg, "-o", "JobID,State,ExitCode,NodeList,Start,End",
                             NULL};
    char *const *tries[] = {sacct_db, sacct_c};
    for (size_t i = 0; i < 2; i++) {
        hp_slurm_out o;
        hp_err e = HP_ERR_INIT;
        if (hp_slurm_exec(p->sacct, tries[i], CMD_TIMEOUT_MS, &o, &e) < 0)
            continue;
        bool ok = o.status == 0 && parse_sacct(o.out, id, j);
        hp_slurm_out_free(&o);
        if (ok)
            return;
    }
    char *const sc[] = {"scontrol", "-o", "show", "job", idarg, NULL};
    hp_slurm_out o;
    hp_err e = HP_ERR_INIT;
    if (hp_slurm_exec(p->scontrol, sc, CMD_TIMEOUT_MS, &o, &e) == 0) {
        char t[40];
        if (o.status == 0 && scontrol_field(o.out, "JobState", j->state, sizeof j->state)) {
            scontrol_field(o.out, "Reason", j->reason, sizeof j->reason);
            scontrol_field(o.out, "NodeList", j->nodes, sizeof j->nodes);
            scontrol_field(o.out, "ExitCode", j->exit_code, sizeof j->exit_code);
            if (strcmp(j->nodes, "(null)") == 0)
                j->nodes[0] = '\0';
            if (scontrol_field(o.out, "StartTime", t, sizeof t))
                j->start_time = hp_slurm_parse_time(t);
            if (scontrol_field(o.out, "EndTime", t, sizeof t))
                j->end_time = hp_slurm_parse_time(t);
            hp_slurm_out_free(&o);
            return;
        }
        hp_slurm_out_free(&o);
    }
    snprintf(j->state, sizeof j->state, "UNKNOWN");
    snprintf(j->reason, sizeof j->reason, "job left squeue and neither sacct nor scontrol know it");
}

int hp_slurm_poller_poll_once(hp_slurm_poller *p, hp_err *err)
{
    pthread_mutex_lock(&p->mu);
    uint64_t my_index = ++p->started;
    pthread_mutex_unlock(&p->mu);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    int64_t start_ns = (int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec;

    char *const argv[] = {"squeue", "-h",    "-a", "-t",          "all",
                          "-u",     p->user, "-o", SQUEUE_FORMAT, NULL};
    hp_slurm_out o;
    if (hp_slurm_exec(p->squeue, argv, CMD_TIMEOUT_MS, &o, err) < 0)
        return -1;
    if (o.status != 0) {
        char msg[512];
        hp_slurm_errtext(o.errout, msg, sizeof msg);
        hp_slurm_out_free(&o);
        return hp_err_set(err, HP_UNAVAILABLE, "squeue failed: %s", msg);
    }
    jobvec fresh = {0};
    for (char *line = o.out; line && *line;) {
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = '\0';
        hp_slurm_job j;
        if (hp_slurm_parse_squeue_line(line, p->prefix, &j) == 0 && jobvec_push(&fresh, &j) < 0) {
            free(fresh.v);
            hp_slurm_out_free(&o);
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        }
        line = eol ? eol + 1 : NULL;
    }
    hp_slurm_out_free(&o);
    if (fresh.n > 1)
        qsort(fresh.v, fresh.n, sizeof *fresh.v, job_cmp);

    /* Tracked jobs this poll should have seen but did not. */
    tracked *missing = NULL;
    size_t n_missing = 0;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n_tr; i++) {
        if (p->tr[i].since >= my_index || jobvec_find(&fresh, p->tr[i].id, true) ||
            jobvec_find(&p->resolved, p->tr[i].id, false))
            continue;
        tracked *nm = realloc(missing, (n_missing + 1) * sizeof *nm);
        if (!nm)
            break;
        missing = nm;
        missing[n_missing++] = p->tr[i];
    }
    pthread_mutex_unlock(&p->mu);

    jobvec res = {0};
    for (size_t i = 0; i < n_missing; i++) {
        hp_slurm_job j;
        resolve(p, missing[i].id, missing[i].name, &j);
        hp_info("slurm job %s left squeue; resolved as %s", j.id, j.state);
        if (jobvec_push(&res, &j) < 0)
            break;
    }
    free(missing);

    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < res.n; i++)
        if (!jobvec_find(&p->resolved, res.v[i].id, false))
            jobvec_push(&p->resolved, &res.v[i]);
    free(res.v);
    free(p->jobs.v);
    p->jobs = fresh;
    p->gen++;
    p->last_ok_ms = mono_ms();
    if (start_ns > p->last_ok_start_ns)
        p->last_ok_start_ns = start_ns;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void hp_slurm_poller_track(hp_slurm_poller *p, const char *id, const char *name)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n_tr; i++)
        if (strcmp(p->tr[i].id, id) == 0) {
            pthread_mutex_unlock(&p->mu);
            return;
        }
    if (p->n_tr == p->cap_tr) {
        size_t nc = p->cap_tr ? p->cap_tr * 2 : 64;
        tracked *nt = realloc(p->tr, nc * sizeof *nt);
        if (!nt) {
            pthread_mutex_unlock(&p->mu);
            hp_warn("slurm poller: out of memory tracking job %s", id);
            return;
        }
        p->tr = nt;
        p->cap_tr = nc;
    }
    tracked *t = &p->tr[p->n_tr++];
    snprintf(t->id, sizeof t->id, "%s", id);
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    t->since = p->started;
    pthread_mutex_unlock(&p->mu);
}

void hp_slurm_poller_untrack(hp_slurm_poller *p, const char *id)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n_tr; i++)
        if (strcmp(p->tr[i].id, id) == 0) {
            p->tr[i] = p->tr[--p->n_tr];
            break;
        }
    for (size_t i = 0; i < p->resolved.n; i++)
        if (strcmp(p->resolved.v[i].id, id) == 0) {
            p->resolved.v[i] = p->resolved.v[--p->resolved.n];
            break;
        }
    pthread_mutex_unlock(&p->mu);
}

int hp_slurm_poller_get(hp_slurm_poller *p, const char *id, hp_slurm_job *out)
{
    int rc = -1;
    pthread_mutex_lock(&p->mu);
    hp_slurm_job *j = jobvec_find(&p->jobs, id, true);
    if (!j)
        j = jobvec_find(&p->resolved, id, false);
    if (j) {
        *out = *j;
        rc = 0;
    } else {
        for (size_t i = 0; i < p->n_tr; i++)
            if (strcmp(p->tr[i].id, id) == 0) {
                rc = 1;
                break;
            }
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int hp_slurm_poller_find_name(hp_slurm_poller *p, const char *name, hp_slurm_job *out)
{
    int rc = -1;
    pthread_mutex_lock(&p->mu);
    for (size_t i = p->jobs.n; i-- > 0;) /* sorted by id: newest first */
        if (strcmp(p->jobs.v[i].name, name) == 0) {
            *out = p->jobs.v[i];
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

uint64_t hp_slurm_poller_generation(hp_slurm_poller *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t g = p->gen;
    pthread_mutex_unlock(&p->mu);
    return g;
}

uint64_t hp_slurm_poller_wait(hp_slurm_poller *p, uint64_t after, int timeout_ms)
{
    struct timespec ts;
    timespec_at(mono_ms() + timeout_ms, &ts);
    pthread_mutex_lock(&p->mu);
    while (p->gen <= after && !p->stop)
        if (pthread_cond_timedwait(&p->cond, &p->mu, &ts) == ETIMEDOUT)
            break;
    uint64_t g = p->gen;
    pthread_mutex_unlock(&p->mu);
    return g;
}

int64_t hp_slurm_poller_age_ms(hp_slurm_poller *p)
{
    pthread_mutex_lock(&p->mu);
    int64_t age = p->last_ok_ms < 0 ? -1 : mono_ms() - p->last_ok_ms;
    pthread_mutex_unlock(&p->mu);
    return age;
}

int64_t hp_slurm_poller_last_start_ns(hp_slurm_poller *p)
{
    pthread_mutex_lock(&p->mu);
    int64_t t = p->last_ok_start_ns;
    pthread_mutex_unlock(&p->mu);
    return t;
}

int hp_slurm_poller_interval_ms(const hp_slurm_poller *p)
{
    return p->interval_ms;
}
