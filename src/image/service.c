/* The image service: chain dirs, image records, removal and garbage
 * collection (see service.h and docs/images.md). */
#include "image/service.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "image/image_int.h"
#include "image/imgref.h"
#include "image/unpack.h"
#include "util/sha256.h"
#include "util/cleanup.h"
#include "util/log.h"

#define CLONE_MAX_DEPTH 256

/* Scratch dirs of imports interrupted by a crash ("import.XXXXXX"). */
static void remove_stale_imports(const char *dir)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *de;
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        hp_err e = HP_ERR_INIT;
        if (strncmp(de->d_name, "import.", 7) != 0)
            continue;
        if (hp_remove_tree_at(dirfd(d), de->d_name, &e) < 0)
            hp_warn("image store: cannot remove %s/%s: %s", dir, de->d_name, e.msg);
        else
            hp_info("image store: removed %s/%s left by an interrupted import", dir, de->d_name);
    }
}

#define UNSYNCED_MARKER "unsynced"

static int gc_locked_run(hp_image_service *svc, hp_err *err);

/* The content store under svc->dir and an fd of that dir (both owned by
 * svc, freed by hp_image_service_free).  0, or -1 with err. */
static int open_content(hp_image_service *svc, hp_err *err)
{
    svc->cs = hp_content_new(svc->dir, err);
    if (svc->cs == NULL)
        return hp_err_wrap(err, "image store %s", svc->dir);
    hp_content_defer_sync(svc->cs);
    svc->dirfd = open(svc->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (svc->dirfd < 0)
        return hp_err_sys(err, HP_INTERNAL, "cannot open %s", svc->dir);
    return 0;
}

hp_image_service *hp_image_service_new(const char *root, hp_store *store, hp_err *err)
{
    hp_image_service *svc = calloc(1, sizeof *svc);
    if (svc == NULL || asprintf(&svc->dir, "%s/images", root) < 0) {
        free(svc);
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&svc->mu, NULL);
    pthread_cond_init(&svc->cv, NULL);
    svc->dirfd = -1;
    svc->store = store;
    if (mkdir(svc->dir, 0700) < 0 && errno != EEXIST) {
        hp_err_sys(err, HP_INTERNAL, "cannot create %s", svc->dir);
        hp_image_service_free(svc);
        return NULL;
    }
    remove_stale_imports(svc->dir);
    if (open_content(svc, err) < 0) {
        hp_image_service_free(svc);
        return NULL;
    }
    if (faccessat(svc->dirfd, UNSYNCED_MARKER, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
        /* A pull or import was running when the daemon (or the machine)
         * died: blobs and chain dirs it published may have lost their data.
         * Recorded images were synced before being recorded, so everything
         * no image references goes. */
        hp_err e = HP_ERR_INIT;
        hp_info("image store: interrupted pull or import: collecting what it left");
        svc->gc_running = true;
        if (gc_locked_run(svc, &e) < 0)
            hp_warn("image garbage collection: %s", e.msg);
        if (hp_content_sync(svc->cs, &e) == 0)
            unlinkat(svc->dirfd, UNSYNCED_MARKER, 0);
    }
    return svc;
}

hp_image_service *hp_image_service_new_helper(const char *root, hp_image_record_fn record,
                                              void *record_ud, hp_err *err)
{
    hp_image_service *svc = calloc(1, sizeof *svc);
    if (svc == NULL || asprintf(&svc->dir, "%s/images", root) < 0) {
        free(svc);
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&svc->mu, NULL);
    pthread_cond_init(&svc->cv, NULL);
    svc->dirfd = -1;
    svc->record = record;
    svc->record_ud = record_ud;
    if (open_content(svc, err) < 0) {
        hp_image_service_free(svc);
        return NULL;
    }
    return svc;
}

void hp_image_service_free(hp_image_service *svc)
{
    if (svc == NULL)
        return;
    hp_content_free(svc->cs);
    if (svc->dirfd >= 0)
        close(svc->dirfd);
    pthread_cond_destroy(&svc->cv);
    pthread_mutex_destroy(&svc->mu);
    free(svc->dir);
    free(svc);
}

const char *hp_image_service_dir(const hp_image_service *svc)
{
    return svc->dir;
}

int hp_image_service_usage(hp_image_service *svc, uint64_t *bytes, uint64_t *inodes, hp_err *err)
{
    return hp_content_usage(svc->cs, bytes, inodes, err);
}

/* ---- operations vs. garbage collection --------------------------------- */

/* Durability: the content store publishes blobs and chain dirs without a
 * sync each (hp_content_defer_sync).  While any pull or import runs, the
 * marker file UNSYNCED_MARKER exists (created durably before anything is
 * published); hp_image_commit syncs the file system before recording an
 * image; the last op to end syncs and removes the marker.  A crash in between
 * leaves the marker: the next start collects everything no image references
 * (hp_image_service_new). */
static void marker_create_locked(hp_image_service *svc)
{
    int fd = openat(svc->dirfd, UNSYNCED_MARKER, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fsync(fd) < 0 || fsync(svc->dirfd) < 0)
        hp_warn("image store: marker %s/%s: %s", svc->dir, UNSYNCED_MARKER, strerror(errno));
    if (fd >= 0)
        close(fd);
}

static void marker_remove_locked(hp_image_service *svc)
{
    hp_err e = HP_ERR_INIT;
    if (hp_content_sync(svc->cs, &e) < 0) {
        hp_warn("image store: %s", e.msg); /* keep the marker: collected at next start */
        return;
    }
    unlinkat(svc->dirfd, UNSYNCED_MARKER, 0);
}

void hp_image_op_begin(hp_image_service *svc)
{
    if (svc->record)
        return; /* the image helper: the daemon brackets the whole helper run */
    pthread_mutex_lock(&svc->mu);
    while (svc->gc_running)
        pthread_cond_wait(&svc->cv, &svc->mu);
    if (svc->active++ == 0)
        marker_create_locked(svc);
    pthread_mutex_unlock(&svc->mu);
}

void hp_image_op_end(hp_image_service *svc)
{
    bool run = false;
    if (svc->record)
        return;
    pthread_mutex_lock(&svc->mu);
    if (svc->active == 1) {
        marker_remove_locked(svc); /* mostly clean already: commit synced */
        /* No pull or import runs now: the scratch dir of an import whose
         * helper was killed (cancelled call) can go. */
        remove_stale_imports(svc->dir);
    }
    svc->active--;
    if (svc->active == 0 && svc->gc_pending && !svc->gc_running) {
        svc->gc_pending = false;
        svc->gc_running = true;
        run = true;
    }
    pthread_mutex_unlock(&svc->mu);
    if (run) {
        hp_err e = HP_ERR_INIT;
        if (gc_locked_run(svc, &e) < 0)
            hp_warn("image garbage collection: %s", e.msg);
    }
}

/* ---- chain ids ---------------------------------------------------------- */

static void sha256_hex(const void *data, size_t len, char out[HP_CHAIN_ID_LEN + 1])
{
    hp_sha256_digest(data, len, out);
}

void hp_chain_id(const char *parent, const char *diff_id, char out[HP_CHAIN_ID_LEN + 1])
{
    char buf[2 * HP_CHAIN_ID_LEN + 8];
    int n;
    if (parent == NULL) {
        snprintf(out, HP_CHAIN_ID_LEN + 1, "%s", diff_id);
        return;
    }
    n = snprintf(buf, sizeof buf, "%s %s", parent, diff_id);
    sha256_hex(buf, (size_t)n, out);
}

void hp_chain_empty(char out[HP_CHAIN_ID_LEN + 1])
{
    sha256_hex("", 0, out);
}

/* ---- records ------------------------------------------------------------ */

static void user_to_rec(const char *user, hp_image_rec *r)
{
    char name[256];
    char *end;
    long long v;
    r->has_uid = false;
    r->username = NULL;
    if (user == NULL || user[0] == '\0')
        return;
    snprintf(name, sizeof name, "%s", user);
    name[strcspn(name, ":")] = '\0';
    errno = 0;
    v = strtoll(name, &end, 10);
    if (name[0] != '\0' && *end == '\0' && errno == 0 && v >= 0) {
        r->has_uid = true;
        r->uid = v;
    } else {
        r->username = strdup(name);
    }
}

int hp_image_record(hp_image_service *svc, const struct hp_image_new *im, hp_err *err)
{
    char parent[HP_CHAIN_ID_LEN + 1] = "", chain[HP_CHAIN_ID_LEN + 1];
    hp_image_rec rec = {0};
    hp_layer_rec *layers = NULL;
    int rc = -1;

    if (im->config->n_diff_ids != im->n_layers)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "image %s: %zu layers but %zu diff_ids in the config", im->id,
                          im->n_layers, im->config->n_diff_ids);
    /* The image helper built these; a record must never point at something
     * missing (a helper that lies or lost data fails here, nothing is
     * recorded). */
    if (im->n_layers == 0)
        hp_chain_empty(chain);
    for (size_t i = 0; i < im->n_layers; i++) {
        if (!hp_content_has(svc->cs, im->layers[i].digest))
            return hp_err_set(err, HP_DATA_LOSS, "image %s: layer blob %s is not stored", im->id,
                              im->layers[i].digest);
        hp_chain_id(i ? parent : NULL, im->config->diff_ids[i], chain);
        memcpy(parent, chain, sizeof chain);
    }
    if (!hp_content_layer_has(svc->cs, chain))
        return hp_err_set(err, HP_DATA_LOSS, "image %s: rootfs %s is not stored", im->id, chain);

    layers = calloc(im->n_layers ? im->n_layers : 1, sizeof *layers);
    if (layers == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < im->n_layers; i++) {
        layers[i].digest = im->layers[i].digest;
        layers[i].diff_id = im->config->diff_ids[i];
        layers[i].size = im->layers[i].size;
    }
    rec.id = (char *)im->id;
    for (size_t i = 0; i < im->n_repo_tags; i++)
        if (hp_strlist_add(&rec.repo_tags, im->repo_tags[i], err) < 0)
            goto out;
    if (im->repo_digest && hp_strlist_add(&rec.repo_digests, im->repo_digest, err) < 0)
        goto out;
    rec.size = im->size;
    user_to_rec(im->config->user, &rec);
    rec.config_json = (char *)im->config_json;
    rec.layers = layers;
    rec.n_layers = im->n_layers;
    /* Every blob and chain dir the record points to must be durable first
     * (they were published without a sync each). */
    if (hp_content_sync(svc->cs, err) < 0)
        goto out;
    rc = hp_store_image_upsert(svc->store, &rec, err);
    if (rc == 0)
        hp_info("image %s recorded (%zu layers, %lld bytes)%s%s", im->id, im->n_layers,
                (long long)im->size, im->n_repo_tags ? " as " : "",
                im->n_repo_tags ? im->repo_tags[0] : "");
out:
    hp_strlist_clear(&rec.repo_tags);
    hp_strlist_clear(&rec.repo_digests);
    free(rec.username);
    free(layers);
    return rc;
}

/* ---- lookups ------------------------------------------------------------ */

hp_image_rec *hp_image_service_find(hp_image_service *svc, const char *ref, hp_err *err)
{
    hp_imgref r;
    hp_err perr = HP_ERR_INIT;
    if (ref == NULL || ref[0] == '\0') {
        hp_err_set(err, HP_NOT_FOUND, "empty image reference");
        return NULL;
    }
    if (hp_imgref_parse(ref, &r, &perr) == 0) {
        const char *key = r.digested ? r.digested : r.tagged;
        hp_image_rec *im = hp_store_image_lookup(svc->store, key, err);
        hp_imgref_free(&r);
        if (im != NULL || err->code != HP_NOT_FOUND)
            return im;
        hp_err_clear(err);
    }
    /* An id, an id prefix, or a name stored as given. */
    return hp_store_image_lookup(svc->store, ref, err);
}

/* The top chain key of an image record. */
static void image_chain(const hp_image_rec *im, char chain[HP_CHAIN_ID_LEN + 1])
{
    char parent[HP_CHAIN_ID_LEN + 1];
    if (im->n_layers == 0) {
        hp_chain_empty(chain);
        return;
    }
    for (size_t i = 0; i < im->n_layers; i++) {
        hp_chain_id(i ? parent : NULL, im->layers[i].diff_id, chain);
        memcpy(parent, chain, HP_CHAIN_ID_LEN + 1);
    }
}

char *hp_image_service_rootfs(hp_image_service *svc, const char *image_id, hp_err *err)
{
    char chain[HP_CHAIN_ID_LEN + 1];
    hp_image_rec *im = hp_store_image_get(svc->store, image_id, err);
    char *path;
    struct stat sb;
    if (im == NULL)
        return NULL;
    image_chain(im, chain);
    hp_image_rec_free(im);
    path = hp_content_layer_path(svc->cs, chain, err);
    if (path == NULL)
        return NULL;
    if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        hp_err_sys(err, HP_DATA_LOSS, "rootfs of image %s (%s) is missing; pull it again", image_id,
                   path);
        free(path);
        return NULL;
    }
    return path;
}

int hp_image_service_config(hp_image_service *svc, const char *image_id,
                            struct hp_image_config *out, hp_err *err)
{
    hp_image_rec *im = hp_store_image_get(svc->store, image_id, err);
    int rc;
    if (im == NULL)
        return -1;
    if (im->config_json == NULL) {
        hp_image_rec_free(im);
        return hp_err_set(err, HP_DATA_LOSS, "image %s has no config recorded", image_id);
    }
    rc = hp_image_config_parse(im->config_json, strlen(im->config_json), out, err);
    hp_image_rec_free(im);
    return rc;
}

/* ---- removal and GC ----------------------------------------------------- */

int hp_image_service_remove(hp_image_service *svc, const char *ref, int *removed, hp_err *err)
{
    hp_image_rec *im;
    size_t users = 0;
    hp_imgref r = {0};
    hp_err perr = HP_ERR_INIT;
    const char *tag = NULL;
    int rc = -1;

    if (removed)
        *removed = 0;
    im = hp_image_service_find(svc, ref, err);
    if (im == NULL) {
        if (err->code != HP_NOT_FOUND)
            return -1;
        hp_err_clear(err); /* CRI: removing an unknown image succeeds */
        return 0;
    }
    /* Given as a tag of this image, and the image has other names: untag. */
    if (hp_imgref_parse(ref, &r, &perr) == 0 && r.tagged && !r.digest &&
        hp_strlist_contains(&im->repo_tags, r.tagged))
        tag = r.tagged;
    else if (hp_strlist_contains(&im->repo_tags, ref))
        tag = ref;
    if (tag && im->repo_tags.n > 1) {
        rc = hp_store_image_untag(svc->store, tag, err);
        if (rc == 0) {
            hp_info("image %s: tag %s removed (%zu tags left)", im->id, tag, im->repo_tags.n - 1);
            if (removed)
                *removed = 2;
        }
        goto out;
    }
    if (hp_store_image_users(svc->store, im->id, &users, err) < 0)
        goto out;
    if (users > 0) {
        hp_err_set(err, HP_FAILED_PRECONDITION, "image %s (%s) is in use by %zu container%s",
                   im->id, ref, users, users == 1 ? "" : "s");
        goto out;
    }
    if (hp_store_image_delete(svc->store, im->id, err) < 0) {
        if (err->code != HP_NOT_FOUND)
            goto out;
        hp_err_clear(err); /* removed concurrently */
    }
    hp_info("image %s removed", im->id);
    if (removed)
        *removed = 1;
    rc = 0;
    if (hp_image_service_gc(svc, &perr) < 0)
        hp_warn("image garbage collection: %s", perr.msg);
out:
    hp_imgref_free(&r);
    hp_image_rec_free(im);
    return rc;
}

struct keyset {
    char (*keys)[HP_CHAIN_ID_LEN + 1];
    size_t n, cap;
};

static int keyset_add(struct keyset *s, const char *k, hp_err *err)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        void *p = realloc(s->keys, cap * sizeof *s->keys);
        if (p == NULL)
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        s->keys = p;
        s->cap = cap;
    }
    snprintf(s->keys[s->n++], HP_CHAIN_ID_LEN + 1, "%s", k);
    return 0;
}

static bool keyset_has(const struct keyset *s, const char *k)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->keys[i], k) == 0)
            return true;
    return false;
}

/* Remove every "sha256" entry of <svc->dir>/<sub>/sha256 not in keep. */
static int sweep(hp_image_service *svc, const char *sub, const struct keyset *keep, bool layers,
                 size_t *removed, hp_err *err)
{
    _cleanup_free_ char *path = NULL;
    _cleanup_closedir_ DIR *d = NULL;
    struct dirent *de;
    if (asprintf(&path, "%s/%s/sha256", svc->dir, sub) < 0) {
        path = NULL;
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    d = opendir(path);
    if (d == NULL)
        return errno == ENOENT ? 0 : hp_err_sys(err, HP_INTERNAL, "gc: open %s", path);
    while ((de = readdir(d)) != NULL) {
        char key[HP_CHAIN_ID_LEN + 8];
        hp_err e = HP_ERR_INIT;
        int rc;
        if (strlen(de->d_name) != 64)
            continue;
        snprintf(key, sizeof key, "sha256:%s", de->d_name);
        if (keyset_has(keep, key))
            continue;
        rc = layers ? hp_content_layer_remove(svc->cs, key, &e)
                    : hp_content_remove(svc->cs, key, &e);
        if (rc < 0 && e.code != HP_NOT_FOUND) {
            hp_warn("gc: %s", e.msg);
            continue;
        }
        (*removed)++;
        hp_debug("gc: removed %s %s", layers ? "chain" : "blob", key);
    }
    return 0;
}

static int gc_sweep(hp_image_service *svc, hp_err *err)
{
    hp_image_rec *imgs = NULL;
    hp_layer_rec *unref = NULL;
    size_t n = 0, n_unref = 0, blobs = 0, chains = 0;
    struct keyset blobset = {0}, chainset = {0};
    char empty[HP_CHAIN_ID_LEN + 1];
    int rc = -1;

    if (hp_store_image_list(svc->store, &imgs, &n, err) < 0)
        return -1;
    hp_chain_empty(empty);
    if (keyset_add(&chainset, empty, err) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        char parent[HP_CHAIN_ID_LEN + 1], chain[HP_CHAIN_ID_LEN + 1];
        for (size_t j = 0; j < imgs[i].n_layers; j++) {
            hp_chain_id(j ? parent : NULL, imgs[i].layers[j].diff_id, chain);
            memcpy(parent, chain, sizeof chain);
            if (keyset_add(&blobset, imgs[i].layers[j].digest, err) < 0 ||
                keyset_add(&chainset, chain, err) < 0)
                goto out;
        }
    }
    if (sweep(svc, "blobs", &blobset, false, &blobs, err) < 0 ||
        sweep(svc, "layers", &chainset, true, &chains, err) < 0)
        goto out;
    if (hp_store_layers_unreferenced(svc->store, &unref, &n_unref, err) < 0)
        goto out;
    for (size_t i = 0; i < n_unref; i++) {
        hp_err e = HP_ERR_INIT;
        if (hp_store_layer_delete(svc->store, unref[i].digest, &e) < 0 && e.code != HP_NOT_FOUND &&
            e.code != HP_FAILED_PRECONDITION)
            hp_warn("gc: layer record %s: %s", unref[i].digest, e.msg);
    }
    if (blobs || chains || n_unref)
        hp_info("image gc: removed %zu blobs, %zu chain dirs, %zu layer records", blobs, chains,
                n_unref);
    rc = 0;
out:
    free(blobset.keys);
    free(chainset.keys);
    hp_layer_recs_free(unref, n_unref);
    hp_image_recs_free(imgs, n);
    return rc;
}

/* Called with gc_running set by this thread. */
static int gc_locked_run(hp_image_service *svc, hp_err *err)
{
    int rc = gc_sweep(svc, err);
    pthread_mutex_lock(&svc->mu);
    while (svc->gc_pending && svc->active == 0) {
        svc->gc_pending = false;
        pthread_mutex_unlock(&svc->mu);
        hp_err e = HP_ERR_INIT;
        if (gc_sweep(svc, &e) < 0)
            hp_warn("image garbage collection: %s", e.msg);
        pthread_mutex_lock(&svc->mu);
    }
    svc->gc_running = false;
    pthread_cond_broadcast(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
    return rc;
}

int hp_image_service_gc(hp_image_service *svc, hp_err *err)
{
    pthread_mutex_lock(&svc->mu);
    if (svc->active > 0 || svc->gc_running) {
        svc->gc_pending = true; /* the last pull/import (or this GC) runs it */
        pthread_mutex_unlock(&svc->mu);
        return 0;
    }
    svc->gc_running = true;
    pthread_mutex_unlock(&svc->mu);
    return gc_locked_run(svc, err);
}
