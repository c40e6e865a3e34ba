/* Blob writes and layer unpacking of the content store (content.h): the
 * parts that hash data (OpenSSL EVP) and read layer archives (libarchive).
 * They live in the image helper's library (libhpcri-image.a), not in the
 * daemon's: the daemon only reads, removes and syncs the store. */
#include "image/content.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/content_int.h"
#include "util/cleanup.h"
#include "util/log.h"

/* Start writeback of every this many dirty bytes of a file being written, so
 * that the disk works while the download goes on and the final fsync/syncfs
 * only waits for the tail. */
#define WRITEBACK_CHUNK (8u << 20)

struct hp_content_writer {
    hp_content *cs;
    int fd, lockfd;
    char lockname[160];
    char tmpname[180];
    char digest[140];
    const char *hex; /* into digest */
    int64_t size;
    uint64_t written;
    uint64_t kicked; /* writeback started up to here */
    EVP_MD_CTX *md;
};

static void writer_free(hp_content_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmpname[0])
        unlinkat(w->cs->tmpfd, w->tmpname, 0);
    hp_content_lock_release(w->cs, w->lockname, w->lockfd);
    EVP_MD_CTX_free(w->md);
    free(w);
}

int hp_content_begin(hp_content *cs, const char *digest, int64_t size, hp_content_writer **wp,
                     int *already_present, hp_err *err)
{
    hp_content_writer *w;
    int dfd;
    const char *hex = hp_content_blob_hex(cs, digest, &dfd, err);
    char prefix[140], rnd[20];

    *wp = NULL;
    *already_present = 0;
    if (hex == NULL)
        return -1;
    if (hp_content_exists_at(dfd, hex)) {
        *already_present = 1;
        return 0;
    }
    w = calloc(1, sizeof *w);
    if (w == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    w->cs = cs;
    w->fd = -1;
    w->size = size;
    snprintf(w->digest, sizeof w->digest, "%s", digest);
    w->hex = w->digest + 7;
    snprintf(w->lockname, sizeof w->lockname, "%s.lock", hex);
    w->lockfd = hp_content_lock_acquire(cs, w->lockname, err);
    if (w->lockfd < 0)
        goto fail;
    if (hp_content_exists_at(dfd, hex)) { /* a concurrent writer finished while we waited */
        writer_free(w);
        *already_present = 1;
        return 0;
    }
    snprintf(prefix, sizeof prefix, "%s.", hex);
    hp_content_clean_stale(cs, prefix);
    if (hp_content_random_suffix(rnd, sizeof rnd) < 0) {
        hp_err_sys(err, HP_INTERNAL, "getrandom");
        goto fail;
    }
    snprintf(w->tmpname, sizeof w->tmpname, "%s.%s", hex, rnd);
    w->fd =
        openat(cs->tmpfd, w->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        hp_err_sys(err, HP_INTERNAL, "content store: create tmp/%s", w->tmpname);
        w->tmpname[0] = '\0';
        goto fail;
    }
    w->md = EVP_MD_CTX_new();
    if (w->md == NULL ||
        EVP_DigestInit_ex(w->md, digest[3] == '2' ? EVP_sha256() : EVP_sha512(), NULL) != 1) {
        hp_err_set(err, HP_INTERNAL, "content store: digest init failed");
        goto fail;
    }
    *wp = w;
    return 0;
fail:
    writer_free(w);
    return -1;
}

uint64_t hp_content_written(const hp_content_writer *w)
{
    return w->written;
}

int hp_content_write(hp_content_writer *w, const void *buf, size_t len, hp_err *err)
{
    const char *p = buf;
    if (w->size >= 0 && w->written + len > (uint64_t)w->size)
        return hp_err_set(err, HP_DATA_LOSS, "blob %s: more than the expected %lld bytes received",
                          w->digest, (long long)w->size);
    if (EVP_DigestUpdate(w->md, buf, len) != 1)
        return hp_err_set(err, HP_INTERNAL, "blob %s: digest update failed", w->digest);
    w->written += len;
    while (len > 0) {
        ssize_t n = write(w->fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return hp_err_sys(err, errno == ENOSPC ? HP_RESOURCE_EXHAUSTED : HP_INTERNAL,
                              "blob %s: write", w->digest);
        }
        p += n;
        len -= (size_t)n;
    }
    if (w->written - w->kicked >= WRITEBACK_CHUNK) {
        /* Only a hint: errors (e.g. ESPIPE on odd file systems) are ignored,
         * the fsync or syncfs at the end reports real I/O errors. */
        (void)sync_file_range(w->fd, (off64_t)w->kicked, (off64_t)(w->written - w->kicked),
                              SYNC_FILE_RANGE_WRITE);
        w->kicked = w->written;
    }
    return 0;
}

void hp_content_abort(hp_content_writer *w)
{
    if (w)
        writer_free(w);
}

int hp_content_commit(hp_content_writer *w, hp_err *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char actual[140];
    int dfd = w->digest[3] == '2' ? w->cs->blobs256 : w->cs->blobs512;
    int rc = -1;

    if (EVP_DigestFinal_ex(w->md, md, &mdlen) != 1) {
        hp_err_set(err, HP_INTERNAL, "blob %s: digest final failed", w->digest);
        goto out;
    }
    memcpy(actual, w->digest, 7);
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(actual + 7 + 2 * i, 3, "%02x", md[i]);
    if (strcmp(actual, w->digest) != 0 || (w->size >= 0 && w->written != (uint64_t)w->size)) {
        hp_err_set(err, HP_DATA_LOSS,
                   "blob verification failed: expected %s (%lld bytes), got %s (%llu bytes)",
                   w->digest, (long long)w->size, actual, (unsigned long long)w->written);
        goto out;
    }
    if (fchmod(w->fd, 0444) < 0 || (!w->cs->deferred_sync && fsync(w->fd) < 0)) {
        hp_err_sys(err, HP_INTERNAL, "blob %s: fsync", w->digest);
        goto out;
    }
    if (renameat(w->cs->tmpfd, w->tmpname, dfd, w->hex) < 0) {
        hp_err_sys(err, HP_INTERNAL, "blob %s: rename into place", w->digest);
        goto out;
    }
    w->tmpname[0] = '\0';
    if (!w->cs->deferred_sync && fsync(dfd) < 0)
        hp_warn("content store: fsync blobs directory: %s", strerror(errno));
    rc = 0;
out:
    writer_free(w);
    return rc;
}

int hp_content_put(hp_content *cs, const char *digest, const void *buf, size_t len, hp_err *err)
{
    hp_content_writer *w;
    int already;
    if (hp_content_begin(cs, digest, (int64_t)len, &w, &already, err) < 0)
        return -1;
    if (already)
        return 0;
    if (hp_content_write(w, buf, len, err) < 0) {
        hp_content_abort(w);
        return -1;
    }
    return hp_content_commit(w, err);
}

struct unpack_arg {
    hp_content *cs;
    const char *blob;
    hp_unpack_opts opts;
    hp_unpack_stats *st;
};

static int fill_unpack(int dirfd, void *p, hp_err *err)
{
    struct unpack_arg *a = p;
    _cleanup_close_ int fd = hp_content_open(a->cs, a->blob, err);
    if (fd < 0)
        return -1;
    return hp_unpack_layer(dirfd, fd, &a->opts, a->st, err);
}

int hp_content_layer_unpack(hp_content *cs, const char *diffid, const char *blob_digest,
                            const hp_unpack_opts *opts, hp_unpack_stats *st, int *already,
                            hp_err *err)
{
    struct unpack_arg a = {.cs = cs, .blob = blob_digest, .st = st};
    if (opts)
        a.opts = *opts;
    a.opts.diffid = diffid;
    if (st)
        memset(st, 0, sizeof *st);
    return hp_content_layer_ensure(cs, diffid, fill_unpack, &a, already, err);
}
