/* Image calls: ListImages, ImageStatus, ImageFsInfo (from the state store and
 * the image directory), PullImage and RemoveImage (the image service). */

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "api.pb-c.h"
#include "hpcri.pb-c.h"
#include "cri/convert.h"
#include "cri/cri_internal.h"
#include "cri/pb.h"
#include "image/helper.h"
#include "image/pull.h"
#include "util/cleanup.h"

int hp_cri_list_images(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__ListImagesRequest *in =
        hp_pb_decode(&runtime__v1__list_images_request__descriptor, req, err);
    Runtime__V1__ListImagesResponse out = RUNTIME__V1__LIST_IMAGES_RESPONSE__INIT;
    _cleanup_arena_ hp_arena a = {0};
    hp_image_rec *imgs = NULL, *one = NULL;
    size_t n = 0;
    int rc = -1;

    if (in == NULL)
        return -1;
    if (in->filter && in->filter->image && in->filter->image->image &&
        in->filter->image->image[0]) {
        one = hp_cri_image_find(d, in->filter->image->image, err);
        if (one == NULL) {
            if (err->code != HP_NOT_FOUND)
                return -1;
            hp_err_clear(err);
            return hp_pb_reply(resp, &out, err); /* no match: empty list */
        }
        imgs = one;
        n = 1;
    } else if (hp_store_image_list(d->store, &imgs, &n, err) < 0) {
        return -1;
    }
    out.images = HP_ARENA_ARRAY(&a, Runtime__V1__Image *, n);
    if (out.images == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++)
        if ((out.images[out.n_images++] = hp_cri_image_out(&a, &imgs[i])) == NULL)
            goto oom;
    rc = hp_pb_reply(resp, &out, err);
    goto out;
oom:
    hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory listing images");
out:
    if (one)
        hp_image_rec_free(one);
    else
        hp_image_recs_free(imgs, n);
    return rc;
}

int hp_cri_image_status(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__ImageStatusRequest *in =
        hp_pb_decode(&runtime__v1__image_status_request__descriptor, req, err);
    Runtime__V1__ImageStatusResponse out = RUNTIME__V1__IMAGE_STATUS_RESPONSE__INIT;
    Runtime__V1__ImageStatusResponse__InfoEntry entry =
        RUNTIME__V1__IMAGE_STATUS_RESPONSE__INFO_ENTRY__INIT;
    Runtime__V1__ImageStatusResponse__InfoEntry *entries[1] = {&entry};
    _cleanup_arena_ hp_arena a = {0};
    hp_image_rec *im;
    int rc;

    if (in == NULL)
        return -1;
    if (in->image == NULL || in->image->image == NULL || in->image->image[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "ImageStatus: image.image is empty");
    im = hp_cri_image_find(d, in->image->image, err);
    if (im == NULL) {
        if (err->code != HP_NOT_FOUND)
            return -1;
        /* CRI contract: an unknown image is an empty response, not an error. */
        hp_err_clear(err);
        return hp_pb_reply(resp, &out, err);
    }
    out.image = hp_cri_image_out(&a, im);
    if (out.image == NULL) {
        hp_image_rec_free(im);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (in->verbose && im->config_json) {
        entry.key = "info";
        entry.value = im->config_json;
        out.n_info = 1;
        out.info = entries;
    }
    rc = hp_pb_reply(resp, &out, err);
    hp_image_rec_free(im);
    return rc;
}

char *hp_cri_image_dir(hp_daemon *d, hp_err *err)
{
    char *dir = strdup(hp_image_service_dir(d->images));
    if (dir == NULL)
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    return dir;
}

hp_image_rec *hp_cri_image_find(hp_daemon *d, const char *ref, hp_err *err)
{
    return hp_image_service_find(d->images, ref, err);
}

/* The one PullImage implementation, for the CRI call and the admin stream:
 * the request (credentials from in->auth, registry settings copied under the
 * config lock: a SIGHUP reload must not wait for a download) goes to the
 * image helper, which pulls; the image is recorded here (image/helper.h).
 * progress may be NULL.  On success *id is malloc'd; the caller frees it. */
static int do_pull(hp_daemon *d, const Runtime__V1__PullImageRequest *in, const char *what,
                   const atomic_bool *cancel, hp_pull_progress_fn progress, void *ud, char **id,
                   hp_err *err)
{
    struct hp_pull_auth auth = {0};
    _cleanup_free_ char *request = NULL;

    if (in->image == NULL || in->image->image == NULL || in->image->image[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: image.image is empty", what);
    if (in->auth) {
        auth.username = in->auth->username;
        auth.password = in->auth->password;
        auth.auth = in->auth->auth;
        auth.identity_token = in->auth->identity_token;
        auth.registry_token = in->auth->registry_token;
    }
    pthread_rwlock_rdlock(&d->cfg_lock);
    request = hp_image_helper_pull_request(d->cfg, d->root, in->image->image,
                                           in->auth ? &auth : NULL, err);
    pthread_rwlock_unlock(&d->cfg_lock);
    if (request == NULL)
        return -1;
    return hp_image_helper_run(d->images, d->image_helper, request, cancel, progress, ud, id, NULL,
                               err);
}

int hp_cri_pull_image(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__PullImageRequest *in =
        hp_pb_decode(&runtime__v1__pull_image_request__descriptor, req, err);
    Runtime__V1__PullImageResponse out = RUNTIME__V1__PULL_IMAGE_RESPONSE__INIT;
    _cleanup_free_ char *id = NULL;

    if (in == NULL)
        return -1;
    if (do_pull(d, in, "PullImage", req->cancelled, NULL, NULL, &id, err) < 0)
        return -1;
    out.image_ref = id;
    return hp_pb_reply(resp, &out, err);
}

/* hpcri.v1.Admin/PullImage: the same pull, reporting progress on the stream. */
struct pull_stream {
    hp_rpc_stream *s;
    bool gone; /* the client went away: stop sending (the pull is cancelled) */
};

static void pull_progress(void *ud, const struct hp_pull_progress *p)
{
    struct pull_stream *ps = ud;
    Hpcri__V1__PullProgress m = HPCRI__V1__PULL_PROGRESS__INIT;
    uint8_t buf[512];
    size_t len;

    if (ps->gone)
        return;
    m.phase = (Hpcri__V1__PullProgress__Phase)p->phase;
    m.layer_digest = (char *)(p->layer_digest ? p->layer_digest : "");
    m.layer_index = (uint32_t)p->layer_index;
    m.layer_count = (uint32_t)p->layer_count;
    m.layers_done = (uint32_t)p->layers_done;
    m.bytes_done = p->bytes_done;
    m.bytes_total = p->bytes_total;
    m.image_id = (char *)(p->image_id ? p->image_id : "");
    if (hpcri__v1__pull_progress__get_packed_size(&m) > sizeof buf)
        return; /* digests are short: cannot happen */
    len = hpcri__v1__pull_progress__pack(&m, buf);
    if (hp_rpc_stream_send(ps->s, buf, len) < 0)
        ps->gone = true;
}

int hp_cri_admin_pull_image(void *ud, const hp_rpc_req *req, hp_rpc_stream *s, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__PullImageRequest *in =
        hp_pb_decode(&runtime__v1__pull_image_request__descriptor, req, err);
    _cleanup_free_ char *id = NULL;
    struct pull_stream ps = {.s = s};

    if (in == NULL)
        return -1;
    /* Registered blocking: this runs on the worker pool, like the CRI call,
     * and the stream ends with OK when it returns 0 (the last message, DONE,
     * carries the id). */
    return do_pull(d, in, "PullImage", req->cancelled, pull_progress, &ps, &id, err);
}

int hp_cri_remove_image(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__RemoveImageRequest *in =
        hp_pb_decode(&runtime__v1__remove_image_request__descriptor, req, err);
    Runtime__V1__RemoveImageResponse out = RUNTIME__V1__REMOVE_IMAGE_RESPONSE__INIT;

    if (in == NULL)
        return -1;
    if (in->image == NULL || in->image->image == NULL || in->image->image[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "RemoveImage: image.image is empty");
    if (hp_image_service_remove(d->images, in->image->image, NULL, err) < 0)
        return -1;
    return hp_pb_reply(resp, &out, err);
}

/* --- ImageFsInfo -------------------------------------------------------- */

struct usage {
    uint64_t bytes;
    uint64_t inodes;
    /* Inodes with several links seen so far: the chain dirs hard-link every
     * file of the layers below, and a file must be counted once. */
    uint64_t *seen;
    size_t n_seen, cap_seen; /* open addressing, cap a power of two */
};

static uint64_t ino_hash(uint64_t v)
{
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdULL;
    v ^= v >> 33;
    return v;
}

/* 1 when ino was new (and is now recorded), 0 when seen, -1 on ENOMEM. */
static int seen_add(struct usage *u, uint64_t ino)
{
    uint64_t key = ino + 1; /* 0 marks an empty slot */
    if (2 * (u->n_seen + 1) > u->cap_seen) {
        size_t cap = u->cap_seen ? 2 * u->cap_seen : 1024;
        uint64_t *t = calloc(cap, sizeof *t);
        if (t == NULL)
            return -1;
        for (size_t i = 0; i < u->cap_seen; i++) {
            if (u->seen[i] == 0)
                continue;
            size_t j = ino_hash(u->seen[i]) & (cap - 1);
            while (t[j] != 0)
                j = (j + 1) & (cap - 1);
            t[j] = u->seen[i];
        }
        free(u->seen);
        u->seen = t;
        u->cap_seen = cap;
    }
    size_t j = ino_hash(key) & (u->cap_seen - 1);
    while (u->seen[j] != 0) {
        if (u->seen[j] == key)
            return 0;
        j = (j + 1) & (u->cap_seen - 1);
    }
    u->seen[j] = key;
    u->n_seen++;
    return 1;
}

static int du_walk(const char *root, struct usage *u, hp_err *err)
{
    /* nftw has no user-data pointer: walk iteratively with an explicit stack
     * of directory paths instead of a static accumulator. */
    size_t cap = 16, n = 0;
    char **stack = malloc(cap * sizeof *stack);
    int rc = 0;
    if (stack == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    stack[n++] = strdup(root);
    while (n > 0) {
        _cleanup_free_ char *dir = stack[--n];
        _cleanup_closedir_ DIR *dh = NULL;
        struct dirent *de;
        if (dir == NULL) {
            rc = hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
            break;
        }
        dh = opendir(dir);
        if (dh == NULL)
            continue; /* vanished or unreadable: count what we can */
        while ((de = readdir(dh)) != NULL) {
            struct stat st;
            char *path;
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (fstatat(dirfd(dh), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue;
            if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
                int fresh = seen_add(u, (uint64_t)st.st_ino);
                if (fresh < 0) {
                    rc = hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
                    break;
                }
                if (fresh == 0)
                    continue;
            }
            u->inodes++;
            u->bytes += (uint64_t)st.st_blocks * 512;
            if (!S_ISDIR(st.st_mode))
                continue;
            if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
                rc = hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
                break;
            }
            if (n == cap) {
                char **ns = realloc(stack, cap * 2 * sizeof *ns);
                if (ns == NULL) {
                    free(path);
                    rc = hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
                    break;
                }
                stack = ns;
                cap *= 2;
            }
            stack[n++] = path;
        }
        if (rc < 0)
            break;
    }
    while (n > 0)
        free(stack[--n]);
    free(stack);
    return rc;
}

int hp_cri_image_fs_info(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__ImageFsInfoRequest *in =
        hp_pb_decode(&runtime__v1__image_fs_info_request__descriptor, req, err);
    Runtime__V1__ImageFsInfoResponse out = RUNTIME__V1__IMAGE_FS_INFO_RESPONSE__INIT;
    Runtime__V1__FilesystemUsage fs = RUNTIME__V1__FILESYSTEM_USAGE__INIT;
    Runtime__V1__FilesystemIdentifier id = RUNTIME__V1__FILESYSTEM_IDENTIFIER__INIT;
    Runtime__V1__UInt64Value bytes = RUNTIME__V1__UINT64_VALUE__INIT;
    Runtime__V1__UInt64Value inodes = RUNTIME__V1__UINT64_VALUE__INIT;
    Runtime__V1__FilesystemUsage *list[1] = {&fs};
    _cleanup_free_ char *dir = NULL;
    struct usage u = {0};
    struct timespec ts;

    if (in == NULL)
        return -1;
    dir = hp_cri_image_dir(d, err);
    if (dir == NULL)
        return -1;
    if (du_walk(dir, &u, err) < 0) {
        free(u.seen);
        return -1;
    }
    free(u.seen);
    clock_gettime(CLOCK_REALTIME, &ts);
    fs.timestamp = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    id.mountpoint = dir;
    bytes.value = u.bytes;
    inodes.value = u.inodes;
    fs.fs_id = &id;
    fs.used_bytes = &bytes;
    fs.inodes_used = &inodes;
    out.n_image_filesystems = 1;
    out.image_filesystems = list;
    return hp_pb_reply(resp, &out, err);
}
