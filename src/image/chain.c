/* Building chain dirs (hard-link clone of the parent + one layer unpacked on
 * top) and committing a pulled or imported image: the image helper's side of
 * the image service (libhpcri-image.a; see image_int.h and
 * docs/ARCHITECTURE.md).  The daemon only records what the helper built
 * (hp_image_record in service.c). */
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
#include "image/unpack.h"
#include "util/cleanup.h"
#include "util/log.h"

#define CLONE_MAX_DEPTH 256

/* ---- hard-link clone ---------------------------------------------------- */

static void copy_dir_xattrs(int src, int dst)
{
    char names[4096];
    ssize_t n = flistxattr(src, names, sizeof names);
    for (ssize_t off = 0; n > 0 && off < n; off += (ssize_t)strlen(names + off) + 1) {
        char val[4096];
        ssize_t vl;
        if (strncmp(names + off, "user.", 5) != 0 &&
            strcmp(names + off, "trusted.overlay.opaque") != 0)
            continue;
        vl = fgetxattr(src, names + off, val, sizeof val);
        if (vl >= 0)
            (void)fsetxattr(dst, names + off, val, (size_t)vl, 0);
    }
}

static int set_dir_meta(int src, int dst, const struct stat *sb, bool privileged, hp_err *err)
{
    struct timespec t[2] = {sb->st_atim, sb->st_mtim};
    copy_dir_xattrs(src, dst);
    if (privileged && fchown(dst, sb->st_uid, sb->st_gid) < 0)
        return hp_err_sys(err, HP_INTERNAL, "clone: chown directory");
    if (fchmod(dst, sb->st_mode & 07777) < 0 || futimens(dst, t) < 0)
        return hp_err_sys(err, HP_INTERNAL, "clone: set directory mode");
    return 0;
}

/* Recreate every directory of src under dst and hard-link everything else:
 * no file data is copied.  Directory metadata is applied after the children
 * (a 0555 directory can still receive its entries). */
static int clone_tree(int src, int dst, int depth, bool privileged, uint64_t *n, hp_err *err)
{
    DIR *d;
    struct dirent *de;
    int rc = 0, dup_fd;
    if (depth > CLONE_MAX_DEPTH)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "clone: directories nested deeper than %d",
                          CLONE_MAX_DEPTH);
    dup_fd = dup(src);
    if (dup_fd < 0 || (d = fdopendir(dup_fd)) == NULL) {
        if (dup_fd >= 0)
            close(dup_fd);
        return hp_err_sys(err, HP_INTERNAL, "clone: open directory");
    }
    while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
        struct stat sb;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(src, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = hp_err_sys(err, HP_INTERNAL, "clone: stat \"%.256s\"", de->d_name);
            break;
        }
        (*n)++;
        if (S_ISDIR(sb.st_mode)) {
            _cleanup_close_ int s = -1, t = -1;
            if (mkdirat(dst, de->d_name, 0700) < 0) {
                rc = hp_err_sys(err, HP_INTERNAL, "clone: mkdir \"%.256s\"", de->d_name);
                break;
            }
            s = openat(src, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            t = openat(dst, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (s < 0 || t < 0) {
                rc = hp_err_sys(err, HP_INTERNAL, "clone: open \"%.256s\"", de->d_name);
                break;
            }
            rc = clone_tree(s, t, depth + 1, privileged, n, err);
            if (rc == 0)
                rc = set_dir_meta(s, t, &sb, privileged, err);
            if (rc < 0)
                hp_err_wrap(err, "%.256s", de->d_name);
        } else if (linkat(src, de->d_name, dst, de->d_name, 0) < 0) {
            rc = hp_err_sys(err, HP_INTERNAL, "clone: link \"%.256s\"", de->d_name);
        }
    }
    if (rc == 0 && errno != 0)
        rc = hp_err_sys(err, HP_INTERNAL, "clone: readdir");
    closedir(d);
    return rc;
}

struct chain_fill {
    hp_image_service *svc;
    const char *parent;
    const char *chain;
    const char *blob;
    const char *diff_id;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fill_chain(int dirfd, void *arg, hp_err *err)
{
    struct chain_fill *f = arg;
    bool privileged = geteuid() == 0;
    hp_unpack_opts opts = {.diffid = f->diff_id};
    hp_unpack_stats st = {0};
    uint64_t cloned = 0;
    double t0 = now_s(), t1;
    _cleanup_close_ int blob = -1;

    if (f->blob == NULL)
        return 0; /* the empty rootfs */
    if (f->parent) {
        _cleanup_free_ char *ppath = hp_content_layer_path(f->svc->cs, f->parent, err);
        _cleanup_close_ int pfd = -1;
        struct stat sb;
        if (ppath == NULL)
            return -1;
        pfd = open(ppath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (pfd < 0)
            return hp_err_sys(err, HP_DATA_LOSS, "parent chain %s", ppath);
        if (clone_tree(pfd, dirfd, 0, privileged, &cloned, err) < 0 ||
            (fstat(pfd, &sb) == 0 && set_dir_meta(pfd, dirfd, &sb, privileged, err) < 0))
            return hp_err_wrap(err, "clone of %s", f->parent);
    }
    t1 = now_s();
    blob = hp_content_open(f->svc->cs, f->blob, err);
    if (blob < 0)
        return -1;
    if (hp_unpack_layer(dirfd, blob, &opts, &st, err) < 0)
        return hp_err_wrap(err, "layer %s", f->blob);
    hp_info("image: layer %s applied: %llu entries, %llu files, %llu bytes in %.2fs "
            "(clone of %llu entries in %.2fs)",
            f->blob, (unsigned long long)st.entries, (unsigned long long)st.files,
            (unsigned long long)st.bytes, now_s() - t1, (unsigned long long)cloned, t1 - t0);
    return 0;
}

int hp_image_chain_build(hp_image_service *svc, const char *parent, const char *chain,
                         const char *blob_digest, const char *diff_id, int *already, hp_err *err)
{
    struct chain_fill f = {svc, parent, chain, blob_digest, diff_id};
    return hp_content_layer_ensure(svc->cs, chain, fill_chain, &f, already, err);
}

int hp_image_commit(hp_image_service *svc, const struct hp_image_new *im, hp_err *err)
{
    char parent[HP_CHAIN_ID_LEN + 1] = "", chain[HP_CHAIN_ID_LEN + 1];

    if (im->config->n_diff_ids != im->n_layers)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "image %s: %zu layers but %zu diff_ids in the config", im->id,
                          im->n_layers, im->config->n_diff_ids);
    if (im->n_layers == 0) {
        hp_chain_empty(chain);
        if (hp_image_chain_build(svc, NULL, chain, NULL, NULL, NULL, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < im->n_layers; i++) {
        hp_chain_id(i ? parent : NULL, im->config->diff_ids[i], chain);
        if (hp_image_chain_build(svc, i ? parent : NULL, chain, im->layers[i].digest,
                                 im->config->diff_ids[i], NULL, err) < 0)
            return -1;
        memcpy(parent, chain, sizeof chain);
    }
    if (svc->record)
        return svc->record(svc->record_ud, im, err);
    return hp_image_record(svc, im, err);
}
