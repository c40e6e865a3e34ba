/* hpcri-image: the image helper the daemon runs for each PullImage and
 * ImportImage (protocol and rationale: src/image/helper.h).
 *
 * Reads one JSON request from stdin, pulls or imports into the content store
 * under <root>/images, writes progress, then the finished image (or an error)
 * as JSON lines to stdout, and exits 0 (image reported) or 1.  It never opens
 * the state database: recording the image is the daemon's job.  Not meant to
 * be run by hand.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "image/helper.h"
#include "image/image_int.h"
#include "image/import.h"
#include "image/pull.h"
#include "util/cleanup.h"
#include "util/log.h"

/* Everything the helper keeps: main()'s locals, passed to the callbacks. */
struct helper {
    struct hp_log log;
    pthread_mutex_t out_mu; /* one line at a time on stdout */
    bool out_failed;        /* the daemon went away */
};

static void emit(struct helper *h, char *text)
{
    size_t off = 0, len;
    if (text == NULL) {
        h->out_failed = true;
        return;
    }
    len = strlen(text);
    pthread_mutex_lock(&h->out_mu);
    while (!h->out_failed && off < len) {
        ssize_t n = write(1, text + off, len - off);
        if (n <= 0)
            h->out_failed = true;
        else
            off += (size_t)n;
    }
    pthread_mutex_unlock(&h->out_mu);
    free(text);
}

static void on_progress(void *ud, const struct hp_pull_progress *p)
{
    if (p->phase != HP_PULL_DONE) /* the daemon reports DONE once it recorded */
        emit(ud, hp_image_helper_progress_line(p));
}

static int on_record(void *ud, const struct hp_image_new *im, hp_err *err)
{
    struct helper *h = ud;
    emit(h, hp_image_helper_image_line(im));
    if (h->out_failed)
        return hp_err_set(err, HP_UNAVAILABLE, "image helper: cannot report to the daemon");
    return 0;
}

/* Read all of stdin.  Returns a malloc'd NUL-terminated buffer or NULL. */
static char *read_all(FILE *f)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
        if (cap - len < 2) {
            char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
            if (nb == NULL) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

static char *dup_or_null(json_t *v)
{
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

/* The registry settings of a pull request as a config (what hp_puller_new
 * reads).  Returns a config the caller frees with hp_config_free, or NULL. */
static hp_config *request_config(json_t *req, hp_err *err)
{
    hp_config *cfg = calloc(1, sizeof *cfg);
    json_t *regs = json_object_get(req, "registries");
    size_t n = json_array_size(regs);
    if (cfg == NULL)
        goto oom;
    cfg->default_platform = dup_or_null(json_object_get(req, "platform"));
    cfg->max_concurrent_downloads = (int)json_integer_value(json_object_get(req, "max_downloads"));
    if (n) {
        cfg->registries = calloc(n, sizeof *cfg->registries);
        if (cfg->registries == NULL)
            goto oom;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(regs, i), *mirrors = json_object_get(r, "mirrors");
        hp_registry_host_config *h = &cfg->registries[i];
        cfg->n_registries++;
        h->host = dup_or_null(json_object_get(r, "host"));
        h->mirror_only = json_is_true(json_object_get(r, "mirror_only"));
        h->insecure = json_is_true(json_object_get(r, "insecure"));
        h->ca_file = dup_or_null(json_object_get(r, "ca_file"));
        if (h->host == NULL)
            goto oom;
        if (json_array_size(mirrors)) {
            h->mirrors = calloc(json_array_size(mirrors), sizeof *h->mirrors);
            if (h->mirrors == NULL)
                goto oom;
        }
        for (size_t j = 0; j < json_array_size(mirrors); j++) {
            h->mirrors[j] = dup_or_null(json_array_get(mirrors, j));
            if (h->mirrors[j] == NULL)
                goto oom;
            h->n_mirrors++;
        }
    }
    return cfg;
oom:
    hp_config_free(cfg);
    hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory (image helper)");
    return NULL;
}

static const char *str(json_t *req, const char *key)
{
    return json_string_value(json_object_get(req, key));
}

static int do_pull(struct helper *h, hp_image_service *svc, json_t *req, hp_err *err)
{
    json_t *a = json_object_get(req, "auth");
    struct hp_pull_auth auth = {
        .username = str(a, "username"),
        .password = str(a, "password"),
        .auth = str(a, "auth"),
        .identity_token = str(a, "identity_token"),
        .registry_token = str(a, "registry_token"),
    };
    _cleanup_free_ char *id = NULL;
    hp_config *cfg = request_config(req, err);
    hp_puller *p;
    int rc;
    if (cfg == NULL)
        return -1;
    p = hp_puller_new(cfg, err);
    hp_config_free(cfg);
    if (p == NULL)
        return -1;
    rc = hp_image_pull(svc, p, str(req, "image"), json_is_object(a) ? &auth : NULL, NULL,
                       on_progress, h, &id, err);
    hp_puller_free(p);
    return rc;
}

static int do_import(hp_image_service *svc, json_t *req, hp_err *err)
{
    _cleanup_free_ char *id = NULL;
    hp_strlist tags = {0};
    const char *path = str(req, "path");
    int rc;
    if (path == NULL)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "ImportImage: path is empty");
    rc = hp_image_import(svc, path, str(req, "name"), str(req, "platform"), &id, &tags, err);
    hp_strlist_clear(&tags);
    return rc;
}

int main(int argc, char **argv)
{
    struct helper h = {.out_mu = PTHREAD_MUTEX_INITIALIZER};
    hp_err err = HP_ERR_INIT;
    _cleanup_free_ char *text = NULL;
    json_t *req = NULL;
    json_error_t je;
    hp_image_service *svc = NULL;
    const char *op, *root;
    int rc = -1;

    (void)argv;
    atomic_store(&h.log.level, HP_LOG_INFO);
    hp_log_attach(&h.log);
    if (argc != 1 || isatty(0)) {
        fprintf(stderr, "hpcri-image: the image helper of hpcri; the daemon runs it, "
                        "with a request on stdin (src/image/helper.h)\n");
        return 2;
    }
    text = read_all(stdin);
    if (text == NULL || (req = json_loads(text, 0, &je)) == NULL || !json_is_object(req)) {
        hp_err_set(&err, HP_INTERNAL, "image helper: unreadable request");
        goto out;
    }
    if (json_is_integer(json_object_get(req, "log_level")))
        atomic_store(&h.log.level, (int)json_integer_value(json_object_get(req, "log_level")));
    op = str(req, "op");
    root = str(req, "root");
    if (op == NULL || root == NULL) {
        hp_err_set(&err, HP_INTERNAL, "image helper: request without op or root");
        goto out;
    }
    svc = hp_image_service_new_helper(root, on_record, &h, &err);
    if (svc == NULL)
        goto out;
    if (strcmp(op, "pull") == 0)
        rc = do_pull(&h, svc, req, &err);
    else if (strcmp(op, "import") == 0)
        rc = do_import(svc, req, &err);
    else
        hp_err_set(&err, HP_INTERNAL, "image helper: unknown op \"%.64s\"", op);
out:
    if (rc < 0)
        emit(&h, hp_image_helper_error_line(&err));
    hp_image_service_free(svc);
    json_decref(req);
    return rc < 0 || h.out_failed ? 1 : 0;
}
