/* PullImage (see pull.h). */
#include "image/pull.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image/content.h"
#include "image/image_int.h"
#include "image/imgref.h"
#include "image/registry.h"
#include "util/cleanup.h"
#include "util/log.h"

#define MAX_DOWNLOAD_THREADS 16

struct hp_puller {
    struct hp_registry *reg;
    struct hp_platform platform;
    int max_downloads;
};

hp_puller *hp_puller_new(const hp_config *cfg, hp_err *err)
{
    hp_puller *p = calloc(1, sizeof *p);
    struct hp_registry_settings *rs = NULL;
    struct hp_registry_config rc = {.user_agent = "hpcri"};
    if (p == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    if (cfg->n_registries) {
        rs = calloc(cfg->n_registries, sizeof *rs);
        if (rs == NULL) {
            free(p);
            hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
            return NULL;
        }
    }
    for (size_t i = 0; i < cfg->n_registries; i++) {
        const hp_registry_host_config *h = &cfg->registries[i];
        rs[i].host = h->host;
        rs[i].mirrors = (const char *const *)h->mirrors;
        rs[i].n_mirrors = h->n_mirrors;
        rs[i].mirror_only = h->mirror_only;
        rs[i].insecure = h->insecure;
        rs[i].ca_file = h->ca_file;
    }
    rc.registries = rs;
    rc.n_registries = cfg->n_registries;
    p->reg = hp_registry_new(&rc, err);
    free(rs);
    if (p->reg == NULL ||
        hp_platform_parse(cfg->default_platform && cfg->default_platform[0] ? cfg->default_platform
                                                                            : "linux/amd64",
                          &p->platform, err) < 0) {
        hp_puller_free(p);
        return NULL;
    }
    p->max_downloads = cfg->max_concurrent_downloads > 0 ? cfg->max_concurrent_downloads : 3;
    if (p->max_downloads > MAX_DOWNLOAD_THREADS)
        p->max_downloads = MAX_DOWNLOAD_THREADS;
    return p;
}

void hp_puller_free(hp_puller *p)
{
    if (p == NULL)
        return;
    if (p->reg)
        hp_registry_free(p->reg);
    hp_platform_free(&p->platform);
    free(p);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- credentials -------------------------------------------------------- */

static bool set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* Decode base64 "user:password" into user/pass (malloc'd, caller frees). */
static int decode_auth(const char *b64, char **user, char **pass, hp_err *err)
{
    size_t len = strlen(b64), pad = 0;
    unsigned char *buf;
    int n;
    char *colon;
    if (len % 4 != 0 || len > 16384)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "auth: not valid base64 (user:password)");
    buf = malloc(len / 4 * 3 + 1);
    if (buf == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    n = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)len);
    if (n < 0) {
        free(buf);
        return hp_err_set(err, HP_INVALID_ARGUMENT, "auth: not valid base64 (user:password)");
    }
    while (pad < 2 && len > pad && b64[len - 1 - pad] == '=')
        pad++;
    n -= (int)pad;
    buf[n] = '\0';
    colon = memchr(buf, ':', (size_t)n);
    if (colon == NULL || strlen((char *)buf) != (size_t)n) {
        free(buf);
        return hp_err_set(err, HP_INVALID_ARGUMENT, "auth: decoded value is not user:password");
    }
    *colon = '\0';
    *user = strdup((char *)buf);
    *pass = strdup(colon + 1);
    explicit_bzero(buf, (size_t)n);
    free(buf);
    if (*user == NULL || *pass == NULL) {
        free(*user);
        free(*pass);
        *user = *pass = NULL;
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    return 0;
}

/* ---- layer downloads ---------------------------------------------------- */

/* Progress reporting state (see hp_pull_progress_fn); fn NULL = none. */
struct prog {
    hp_pull_progress_fn fn;
    void *ud;
    pthread_mutex_t mu; /* serialises reports and guards the fields below */
    const struct hp_descriptor *layers;
    size_t n;
    uint64_t *done; /* per layer, n entries (owned) */
    uint64_t sum, total;
    size_t blobs_done, layers_done;
    size_t last_layer;
    double last_report;
};

/* Report now (force) or when HP_PULL_PROGRESS_MS passed.  Under pr->mu. */
static void prog_report_locked(struct prog *pr, bool force)
{
    double t = now_s();
    struct hp_pull_progress ev = {
        .phase = pr->blobs_done < pr->n ? HP_PULL_DOWNLOADING : HP_PULL_UNPACKING,
        .layer_index = pr->last_layer,
        .layer_count = pr->n,
        .layers_done = pr->layers_done,
        .bytes_done = pr->sum,
        .bytes_total = pr->total,
    };
    if (!force && t - pr->last_report < HP_PULL_PROGRESS_MS / 1000.0)
        return;
    if (pr->n > 0)
        ev.layer_digest = pr->layers[pr->last_layer].digest;
    pr->last_report = t;
    pr->fn(pr->ud, &ev);
}

/* Layer i has `done` bytes (monotonic per layer); `blob_done`: it is stored,
 * `applied`: its chain dir is built. */
static void prog_layer(struct prog *pr, size_t i, uint64_t done, bool blob_done, bool applied)
{
    if (pr == NULL || pr->fn == NULL)
        return;
    pthread_mutex_lock(&pr->mu);
    if (blob_done)
        done = (uint64_t)pr->layers[i].size;
    if (done > pr->done[i]) {
        pr->sum += done - pr->done[i];
        pr->done[i] = done;
    }
    if (blob_done)
        pr->blobs_done++;
    if (applied)
        pr->layers_done++;
    pr->last_layer = i;
    prog_report_locked(pr, blob_done || applied);
    pthread_mutex_unlock(&pr->mu);
}

struct layer_prog {
    struct prog *pr;
    size_t i;
};

static void on_blob_progress(void *ud, uint64_t done, uint64_t total)
{
    struct layer_prog *lp = ud;
    (void)total;
    prog_layer(lp->pr, lp->i, done, false, false);
}

struct dl {
    struct prog *prog;
    hp_image_service *svc;
    hp_puller *p;
    const char *host, *repo;
    const struct hp_pull_opts *opts;
    const struct hp_descriptor *layers;
    size_t n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t next;
    bool abort;
    int *status; /* 0 pending, 1 done, -1 failed */
    hp_err *errs;
};

static int sink(void *ud, const void *buf, size_t n, hp_err *err)
{
    return hp_content_write(ud, buf, n, err);
}

static int fetch_blob(struct dl *d, size_t i, hp_err *err)
{
    const struct hp_descriptor *l = &d->layers[i];
    hp_content_writer *w = NULL;
    int present = 0;
    double t0 = now_s(), dt;
    struct hp_pull_opts o = *d->opts;
    struct layer_prog lp = {d->prog, i};
    o.sink_verifies = true; /* hp_content_commit checks digest and size */
    if (d->prog && d->prog->fn) {
        o.progress = on_blob_progress;
        o.progress_ud = &lp;
    }
    if (hp_content_begin(d->svc->cs, l->digest, l->size, &w, &present, err) < 0)
        return -1;
    if (present) {
        hp_info("pull %s/%s: layer %zu/%zu %s already present", d->host, d->repo, i + 1, d->n,
                l->digest);
        return 0;
    }
    hp_info("pull %s/%s: layer %zu/%zu %s: downloading %lld bytes (%s)", d->host, d->repo, i + 1,
            d->n, l->digest, (long long)l->size, hp_compression_name(l->compression));
    if (hp_registry_get_blob(d->p->reg, d->host, d->repo, l->digest, l->size, &o, sink, w, err) <
        0) {
        hp_content_abort(w);
        return hp_err_wrap(err, "layer %s", l->digest);
    }
    if (hp_content_commit(w, err) < 0)
        return hp_err_wrap(err, "layer %s", l->digest);
    dt = now_s() - t0;
    hp_info("pull %s/%s: layer %zu/%zu %s: %lld bytes in %.2fs (%.1f MB/s)", d->host, d->repo,
            i + 1, d->n, l->digest, (long long)l->size, dt,
            dt > 0 ? (double)l->size / 1e6 / dt : 0.0);
    return 0;
}

static void *dl_worker(void *arg)
{
    struct dl *d = arg;
    for (;;) {
        size_t i;
        hp_err e = HP_ERR_INIT;
        int rc;
        pthread_mutex_lock(&d->mu);
        if (d->abort || d->next >= d->n) {
            pthread_mutex_unlock(&d->mu);
            return NULL;
        }
        i = d->next++;
        pthread_mutex_unlock(&d->mu);
        rc = fetch_blob(d, i, &e);
        if (rc == 0)
            prog_layer(d->prog, i, 0, true, false);
        pthread_mutex_lock(&d->mu);
        d->status[i] = rc < 0 ? -1 : 1;
        if (rc < 0)
            d->errs[i] = e;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
    }
}

/* Download every layer (in parallel) and build the chain dirs in order as the
 * blobs arrive. */
static int fetch_layers(struct dl *d, char **diff_ids, hp_err *err)
{
    pthread_t th[MAX_DOWNLOAD_THREADS];
    size_t nth = 0, want = (size_t)d->p->max_downloads;
    char parent[HP_CHAIN_ID_LEN + 1], chain[HP_CHAIN_ID_LEN + 1];
    int rc = 0;

    if (want > d->n)
        want = d->n;
    for (size_t i = 0; i < want; i++) {
        if (pthread_create(&th[nth], NULL, dl_worker, d) != 0)
            break;
        nth++;
    }
    if (nth == 0 && d->n > 0) {
        rc = hp_err_set(err, HP_RESOURCE_EXHAUSTED, "cannot start download threads");
        goto join;
    }
    for (size_t i = 0; i < d->n; i++) {
        int st;
        pthread_mutex_lock(&d->mu);
        while ((st = d->status[i]) == 0)
            pthread_cond_wait(&d->cv, &d->mu);
        if (st < 0) {
            *err = d->errs[i];
            d->abort = true;
        }
        pthread_mutex_unlock(&d->mu);
        if (st < 0) {
            rc = -1;
            break;
        }
        hp_chain_id(i ? parent : NULL, diff_ids[i], chain);
        if (hp_image_chain_build(d->svc, i ? parent : NULL, chain, d->layers[i].digest, diff_ids[i],
                                 NULL, err) < 0) {
            pthread_mutex_lock(&d->mu);
            d->abort = true;
            pthread_mutex_unlock(&d->mu);
            rc = -1;
            break;
        }
        prog_layer(d->prog, i, 0, false, true);
        memcpy(parent, chain, sizeof chain);
    }
join:
    for (size_t i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    return rc;
}

/* ---- the pull ----------------------------------------------------------- */

int hp_image_pull(hp_image_service *svc, hp_puller *p, const char *image,
                  const struct hp_pull_auth *auth, const atomic_bool *cancel,
                  hp_pull_progress_fn progress, void *progress_ud, char **image_id, hp_err *err)
{
    struct prog pr = {.fn = progress, .ud = progress_ud};
    hp_imgref ref;
    struct hp_registry_creds creds = {0};
    struct hp_pull_opts opts = {.cancel = cancel};
    struct hp_resolved_image res = {0};
    _cleanup_free_ char *user = NULL, *pass = NULL, *id = NULL, *repo_digest = NULL;
    int64_t size = 0;
    double t0 = now_s();
    int rc = -1;

    *image_id = NULL;
    if (image == NULL || image[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "PullImage: image.image is empty");
    if (hp_imgref_parse(image, &ref, err) < 0)
        return -1;
    if (auth) {
        if (set(auth->username)) {
            creds.username = auth->username;
            creds.password = auth->password ? auth->password : "";
        } else if (set(auth->auth)) {
            if (decode_auth(auth->auth, &user, &pass, err) < 0)
                goto out_ref;
            creds.username = user;
            creds.password = pass;
        }
        if (set(auth->identity_token))
            creds.identity_token = auth->identity_token;
        if (set(auth->registry_token))
            creds.registry_token = auth->registry_token;
        if (creds.username || creds.identity_token || creds.registry_token)
            opts.creds = &creds;
    }

    hp_info("pull %s: resolving %s/%s:%s", image, ref.domain, ref.path, ref.api_ref);
    pthread_mutex_init(&pr.mu, NULL);
    if (progress) {
        struct hp_pull_progress ev = {.phase = HP_PULL_RESOLVING};
        progress(progress_ud, &ev);
    }
    hp_image_op_begin(svc);
    if (hp_registry_resolve(p->reg, ref.domain, ref.path, ref.api_ref, &p->platform, &opts, &res,
                            err) < 0) {
        hp_err_wrap(err, "pull %s", ref.digested ? ref.digested : ref.tagged);
        goto out;
    }
    if (asprintf(&id, "%s", res.manifest.config.digest) < 0 ||
        asprintf(&repo_digest, "%s@%s", ref.repo,
                 res.index_digest ? res.index_digest : res.manifest_digest) < 0) {
        id = repo_digest = NULL;
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    size = res.manifest.config.size;
    for (size_t i = 0; i < res.manifest.n_layers; i++)
        size += res.manifest.layers[i].size;
    hp_info("pull %s: manifest %s, config %s, %zu layers, %lld bytes", image, res.manifest_digest,
            id, res.manifest.n_layers, (long long)size);
    {
        struct dl d = {
            .prog = &pr,
            .svc = svc,
            .p = p,
            .host = ref.domain,
            .repo = ref.path,
            .opts = &opts,
            .layers = res.manifest.layers,
            .n = res.manifest.n_layers,
        };
        d.status = calloc(d.n + 1, sizeof *d.status);
        d.errs = calloc(d.n + 1, sizeof *d.errs);
        pthread_mutex_init(&d.mu, NULL);
        pthread_cond_init(&d.cv, NULL);
        pr.layers = d.layers;
        pr.n = d.n;
        pr.total = 0;
        for (size_t i = 0; i < d.n; i++)
            pr.total += (uint64_t)d.layers[i].size;
        pr.done = calloc(d.n + 1, sizeof *pr.done);
        if (progress && pr.done) {
            pthread_mutex_lock(&pr.mu);
            prog_report_locked(&pr, true);
            pthread_mutex_unlock(&pr.mu);
        }
        if (d.status == NULL || d.errs == NULL || pr.done == NULL)
            rc = hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        else
            rc = fetch_layers(&d, res.config.diff_ids, err);
        pthread_cond_destroy(&d.cv);
        pthread_mutex_destroy(&d.mu);
        free(d.status);
        free(d.errs);
        free(pr.done);
        pr.done = NULL;
        if (rc < 0) {
            hp_err_wrap(err, "pull %s", image);
            goto out;
        }
        rc = -1;
    }
    {
        const char *tags[1] = {ref.tagged};
        struct hp_image_new im = {
            .id = id,
            .config_json = res.config_data,
            .config = &res.config,
            .layers = res.manifest.layers,
            .n_layers = res.manifest.n_layers,
            .repo_tags = tags,
            .n_repo_tags = ref.tagged ? 1 : 0,
            .repo_digest = repo_digest,
            .size = size,
        };
        if (hp_image_commit(svc, &im, err) < 0) {
            hp_err_wrap(err, "pull %s", image);
            goto out;
        }
    }
    {
        double dt = now_s() - t0;
        hp_info("pull %s: done: %s, %lld bytes in %.2fs (%.1f MB/s)", image, id, (long long)size,
                dt, dt > 0 ? (double)size / 1e6 / dt : 0.0);
    }
    if (progress) {
        struct hp_pull_progress ev = {
            .phase = HP_PULL_DONE,
            .layer_count = res.manifest.n_layers,
            .layers_done = res.manifest.n_layers,
            .bytes_done = pr.total,
            .bytes_total = pr.total,
            .image_id = id,
        };
        if (res.manifest.n_layers > 0) {
            ev.layer_index = res.manifest.n_layers - 1;
            ev.layer_digest = res.manifest.layers[ev.layer_index].digest;
        }
        progress(progress_ud, &ev);
    }
    *image_id = hp_steal_ptr(&id);
    rc = 0;
out:
    hp_resolved_image_free(&res);
    hp_image_op_end(svc);
    pthread_mutex_destroy(&pr.mu);
out_ref:
    if (pass)
        explicit_bzero(pass, strlen(pass));
    hp_imgref_free(&ref);
    return rc;
}
