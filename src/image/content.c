#include "image/content.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/ref.h"
#include "util/cleanup.h"
#include "image/content_int.h"
#include "util/log.h"

/* ---- helpers ---- */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void hp_content_free(hp_content *cs)
{
    if (cs == NULL)
        return;
    close_fd(&cs->rootfd);
    close_fd(&cs->blobs256);
    close_fd(&cs->blobs512);
    close_fd(&cs->layersfd);
    close_fd(&cs->tmpfd);
    close_fd(&cs->locksfd);
    free(cs->root);
    free(cs);
}

/* mkdir -p of a relative path under dirfd, opening the result (no symlinks). */
static int open_subdir(int dirfd, const char *rel, hp_err *err)
{
    char buf[256];
    char *p = buf, *slash;
    int cur = dirfd;
    snprintf(buf, sizeof buf, "%s", rel);
    while (1) {
        int nfd;
        slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        if (mkdirat(cur, p, 0755) < 0 && errno != EEXIST) {
            hp_err_sys(err, HP_INTERNAL, "content store: mkdir %s", buf);
            nfd = -1;
        } else {
            nfd = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (nfd < 0)
                hp_err_sys(err, HP_INTERNAL, "content store: open %s", buf);
        }
        if (cur != dirfd)
            close(cur);
        if (nfd < 0)
            return -1;
        cur = nfd;
        if (!slash)
            return cur;
        *slash = '/';
        p = slash + 1;
    }
}

hp_content *hp_content_new(const char *root, hp_err *err)
{
    hp_content *cs = calloc(1, sizeof *cs);
    if (cs == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    cs->rootfd = cs->blobs256 = cs->blobs512 = cs->layersfd = cs->tmpfd = cs->locksfd = -1;
    cs->root = strdup(root);
    if (cs->root == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    if (mkdir(root, 0755) < 0 && errno != EEXIST) {
        hp_err_sys(err, HP_INTERNAL, "content store: mkdir %s", root);
        goto fail;
    }
    cs->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cs->rootfd < 0) {
        hp_err_sys(err, HP_INTERNAL, "content store: open %s", root);
        goto fail;
    }
    if ((cs->blobs256 = open_subdir(cs->rootfd, "blobs/sha256", err)) < 0 ||
        (cs->blobs512 = open_subdir(cs->rootfd, "blobs/sha512", err)) < 0 ||
        (cs->layersfd = open_subdir(cs->rootfd, "layers/sha256", err)) < 0 ||
        (cs->tmpfd = open_subdir(cs->rootfd, "tmp", err)) < 0 ||
        (cs->locksfd = open_subdir(cs->rootfd, "locks", err)) < 0)
        goto fail;
    return cs;
fail:
    hp_content_free(cs);
    return NULL;
}

/* Validate a digest; set *dirfd to its blob directory and return the hex part. */
const char *hp_content_blob_hex(hp_content *cs, const char *digest, int *dirfd, hp_err *err)
{
    if (!hp_ref_digest_valid(digest)) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "invalid digest \"%.140s\"",
                   digest ? digest : "(null)");
        return NULL;
    }
    *dirfd = digest[3] == '2' ? cs->blobs256 : cs->blobs512;
    return digest + 7;
}

static const char *layer_hex(const char *key, hp_err *err)
{
    if (!hp_ref_digest_valid(key) || strncmp(key, "sha256:", 7) != 0) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "invalid layer key \"%.140s\" (want sha256:<hex>)",
                   key ? key : "(null)");
        return NULL;
    }
    return key + 7;
}

/* Exclusive flock on locks/<name>, robust against the unlink on release.
 * Returns the lock fd or -1. */
int hp_content_lock_acquire(hp_content *cs, const char *name, hp_err *err)
{
    while (1) {
        struct stat a, b;
        int fd = openat(cs->locksfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return hp_err_sys(err, HP_INTERNAL, "content store: open lock %s", name);
        while (flock(fd, LOCK_EX) < 0) {
            if (errno != EINTR) {
                hp_err_sys(err, HP_INTERNAL, "content store: flock %s", name);
                close(fd);
                return -1;
            }
        }
        if (fstat(fd, &a) == 0 && fstatat(cs->locksfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
            a.st_ino == b.st_ino && a.st_dev == b.st_dev)
            return fd;
        close(fd); /* the holder unlinked it before releasing: retry */
    }
}

void hp_content_lock_release(hp_content *cs, const char *name, int fd)
{
    if (fd < 0)
        return;
    unlinkat(cs->locksfd, name, 0);
    close(fd);
}

/* Delete tmp/ entries starting with prefix (stale leftovers of a dead writer;
 * the caller holds the matching lock). */
void hp_content_clean_stale(hp_content *cs, const char *prefix)
{
    int fd = openat(cs->tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d;
    struct dirent *de;
    size_t n = strlen(prefix);
    if (fd < 0)
        return;
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, prefix, n) == 0) {
            hp_err e = HP_ERR_INIT;
            hp_info("content store: removing stale temporary %s", de->d_name);
            if (hp_remove_tree_at(cs->tmpfd, de->d_name, &e) < 0)
                hp_warn("content store: %s", e.msg);
        }
    }
    closedir(d);
}

int hp_content_random_suffix(char *out, size_t outsz)
{
    unsigned char r[8];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return -1;
    for (size_t i = 0; i < sizeof r && 2 * i + 2 < outsz; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

int hp_content_exists_at(int dirfd, const char *name)
{
    struct stat sb;
    return fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

/* ---- blobs ---- */

void hp_content_defer_sync(hp_content *cs)
{
    cs->deferred_sync = true;
}

int hp_content_sync(hp_content *cs, hp_err *err)
{
    if (syncfs(cs->rootfd) < 0)
        return hp_err_sys(err, errno == ENOSPC ? HP_RESOURCE_EXHAUSTED : HP_INTERNAL,
                          "content store: syncfs %s", cs->root);
    return 0;
}

int hp_content_has(hp_content *cs, const char *digest)
{
    int dfd;
    hp_err e = HP_ERR_INIT;
    const char *hex = hp_content_blob_hex(cs, digest, &dfd, &e);
    return hex ? hp_content_exists_at(dfd, hex) : 0;
}

int hp_content_open(hp_content *cs, const char *digest, hp_err *err)
{
    int dfd, fd;
    const char *hex = hp_content_blob_hex(cs, digest, &dfd, err);
    if (hex == NULL)
        return -1;
    fd = openat(dfd, hex, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return hp_err_sys(err, errno == ENOENT ? HP_NOT_FOUND : HP_INTERNAL, "blob %s", digest);
    return fd;
}

char *hp_content_blob_path(hp_content *cs, const char *digest, hp_err *err)
{
    int dfd;
    char *out;
    const char *hex = hp_content_blob_hex(cs, digest, &dfd, err);
    if (hex == NULL)
        return NULL;
    if (asprintf(&out, "%s/blobs/sha%s/%s", cs->root, digest[3] == '2' ? "256" : "512", hex) < 0) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    return out;
}

int hp_content_remove(hp_content *cs, const char *digest, hp_err *err)
{
    int dfd, lfd, rc = 0;
    char lockname[160];
    const char *hex = hp_content_blob_hex(cs, digest, &dfd, err);
    if (hex == NULL)
        return -1;
    snprintf(lockname, sizeof lockname, "%s.lock", hex);
    lfd = hp_content_lock_acquire(cs, lockname, err);
    if (lfd < 0)
        return -1;
    if (unlinkat(dfd, hex, 0) < 0)
        rc =
            hp_err_sys(err, errno == ENOENT ? HP_NOT_FOUND : HP_INTERNAL, "remove blob %s", digest);
    hp_content_lock_release(cs, lockname, lfd);
    return rc;
}

/* ---- layers ---- */

int hp_content_layer_has(hp_content *cs, const char *key)
{
    hp_err e = HP_ERR_INIT;
    const char *hex = layer_hex(key, &e);
    return hex ? hp_content_exists_at(cs->layersfd, hex) : 0;
}

char *hp_content_layer_path(hp_content *cs, const char *key, hp_err *err)
{
    char *out;
    const char *hex = layer_hex(key, err);
    if (hex == NULL)
        return NULL;
    if (asprintf(&out, "%s/layers/sha256/%s", cs->root, hex) < 0) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    return out;
}

int hp_content_layer_ensure(hp_content *cs, const char *key, hp_content_fill_fn fill, void *arg,
                            int *already, hp_err *err)
{
    const char *hex = layer_hex(key, err);
    char lockname[160], prefix[160], tmpname[200], rnd[20];
    int lfd, dfd = -1, rc = -1, made = 0;

    if (already)
        *already = 0;
    if (hex == NULL)
        return -1;
    if (hp_content_exists_at(cs->layersfd, hex)) {
        if (already)
            *already = 1;
        return 0;
    }
    snprintf(lockname, sizeof lockname, "layer-%s.lock", hex);
    lfd = hp_content_lock_acquire(cs, lockname, err);
    if (lfd < 0)
        return -1;
    if (hp_content_exists_at(cs->layersfd, hex)) {
        if (already)
            *already = 1;
        rc = 0;
        goto out;
    }
    snprintf(prefix, sizeof prefix, "layer-%s.", hex);
    hp_content_clean_stale(cs, prefix);
    if (hp_content_random_suffix(rnd, sizeof rnd) < 0) {
        hp_err_sys(err, HP_INTERNAL, "getrandom");
        goto out;
    }
    snprintf(tmpname, sizeof tmpname, "%s%s", prefix, rnd);
    if (mkdirat(cs->tmpfd, tmpname, 0755) < 0) {
        hp_err_sys(err, HP_INTERNAL, "content store: mkdir tmp/%s", tmpname);
        goto out;
    }
    made = 1;
    dfd = openat(cs->tmpfd, tmpname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        hp_err_sys(err, HP_INTERNAL, "content store: open tmp/%s", tmpname);
        goto out;
    }
    if (fill(dfd, arg, err) < 0) {
        hp_err_wrap(err, "layer %s", key);
        goto out;
    }
    if (!cs->deferred_sync && syncfs(dfd) < 0)
        hp_warn("content store: syncfs: %s", strerror(errno));
    if (renameat(cs->tmpfd, tmpname, cs->layersfd, hex) < 0) {
        hp_err_sys(err, HP_INTERNAL, "layer %s: rename into place", key);
        goto out;
    }
    made = 0;
    if (!cs->deferred_sync && fsync(cs->layersfd) < 0)
        hp_warn("content store: fsync layers directory: %s", strerror(errno));
    rc = 0;
out:
    if (dfd >= 0)
        close(dfd);
    if (made) {
        hp_err e2 = HP_ERR_INIT;
        if (hp_remove_tree_at(cs->tmpfd, tmpname, &e2) < 0)
            hp_warn("content store: cleanup tmp/%s: %s", tmpname, e2.msg);
    }
    hp_content_lock_release(cs, lockname, lfd);
    return rc;
}

int hp_content_layer_remove(hp_content *cs, const char *key, hp_err *err)
{
    const char *hex = layer_hex(key, err);
    char lockname[160], tmpname[200], rnd[20];
    int lfd, rc = -1;
    if (hex == NULL)
        return -1;
    snprintf(lockname, sizeof lockname, "layer-%s.lock", hex);
    lfd = hp_content_lock_acquire(cs, lockname, err);
    if (lfd < 0)
        return -1;
    if (hp_content_random_suffix(rnd, sizeof rnd) < 0) {
        hp_err_sys(err, HP_INTERNAL, "getrandom");
        goto out;
    }
    /* "rm-" prefix: not mistaken for an in-progress unpack of the same key. */
    snprintf(tmpname, sizeof tmpname, "rm-%s.%s", hex, rnd);
    if (renameat(cs->layersfd, hex, cs->tmpfd, tmpname) < 0) {
        hp_err_sys(err, errno == ENOENT ? HP_NOT_FOUND : HP_INTERNAL, "remove layer %s", key);
        goto out;
    }
    rc = hp_remove_tree_at(cs->tmpfd, tmpname, err);
out:
    hp_content_lock_release(cs, lockname, lfd);
    return rc;
}

/* ---- usage ---- */

static int usage_rec(int fd0, uint64_t *bytes, uint64_t *inodes, int depth, hp_err *err)
{
    DIR *d;
    struct dirent *de;
    int rc = 0;
    if (depth > 4096) {
        close(fd0);
        return hp_err_set(err, HP_INTERNAL, "content store: tree too deep");
    }
    d = fdopendir(fd0);
    if (d == NULL) {
        close(fd0);
        return hp_err_sys(err, HP_INTERNAL, "content store: fdopendir");
    }
    while ((de = readdir(d)) != NULL) {
        struct stat sb;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue; /* removed concurrently */
            rc = hp_err_sys(err, HP_INTERNAL, "content store: stat %s", de->d_name);
            break;
        }
        *bytes += (uint64_t)sb.st_blocks * 512;
        *inodes += 1;
        if (S_ISDIR(sb.st_mode)) {
            int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) {
                if (errno == ENOENT)
                    continue;
                rc = hp_err_sys(err, HP_INTERNAL, "content store: open %s", de->d_name);
                break;
            }
            if ((rc = usage_rec(fd, bytes, inodes, depth + 1, err)) < 0)
                break;
        }
    }
    closedir(d);
    return rc;
}

int hp_content_usage(hp_content *cs, uint64_t *bytes, uint64_t *inodes, hp_err *err)
{
    int fd = openat(cs->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *bytes = 0;
    *inodes = 0;
    if (fd < 0)
        return hp_err_sys(err, HP_INTERNAL, "content store: open %s", cs->root);
    return usage_rec(fd, bytes, inodes, 0, err);
}
