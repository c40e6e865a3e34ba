/* Private interface of the content store, shared by content.c (open, read,
 * remove, sync, layer directories: linked into the daemon) and
 * content_write.c (blob writes and layer unpacking: the image helper only). */
#ifndef HP_IMAGE_CONTENT_INT_H
#define HP_IMAGE_CONTENT_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "image/content.h"
#include "util/err.h"

struct hp_content {
    char *root;
    int rootfd;
    int blobs256, blobs512; /* blobs/sha256, blobs/sha512 */
    int layersfd;           /* layers/sha256 */
    int tmpfd, locksfd;
    bool deferred_sync; /* hp_content_defer_sync: no fsync/syncfs per blob or layer */
};

/* Validate a digest; set *dirfd to its blob directory and return the hex part
 * (pointer into digest), or NULL with err. */
const char *hp_content_blob_hex(hp_content *cs, const char *digest, int *dirfd, hp_err *err);

/* Exclusive flock on locks/<name>, robust against the unlink on release.
 * Returns the lock fd (the caller releases it with hp_content_lock_release)
 * or -1 with err. */
int hp_content_lock_acquire(hp_content *cs, const char *name, hp_err *err);
void hp_content_lock_release(hp_content *cs, const char *name, int fd);

/* Delete tmp/ entries starting with prefix (stale leftovers of a dead writer;
 * the caller holds the matching lock). */
void hp_content_clean_stale(hp_content *cs, const char *prefix);

/* 16 random hex digits into out (outsz >= 17).  0, or -1 when getrandom fails. */
int hp_content_random_suffix(char *out, size_t outsz);

/* 1 when dirfd/name exists (not following a symlink), else 0. */
int hp_content_exists_at(int dirfd, const char *name);

#endif
