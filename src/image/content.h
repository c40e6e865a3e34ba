/* Content-addressed store for image blobs and unpacked layers.
 *
 * Layout under <root>:
 *   blobs/sha256/<hex>          verified blobs (also blobs/sha512/<hex>), mode 0444
 *   layers/sha256/<hex>/        unpacked layers, keyed by diff ID (or any sha256 key)
 *   tmp/                        in-progress writes: "<hex>.<rand>" files and
 *                               "layer-<hex>.<rand>" directories
 *   locks/<hex>.lock            per-digest flock(2) for blob writes
 *   locks/layer-<hex>.lock      per-key flock(2) for layer unpacking
 *
 * Guarantees:
 *  - A blob becomes visible only complete and verified: data goes to a temp
 *    file while sha256/sha512 (OpenSSL EVP) and the byte count are computed;
 *    commit checks both, fsyncs the file, renames it into place and fsyncs the
 *    directory (unless hp_content_defer_sync).  Writeback is started every
 *    8 MiB while writing (sync_file_range), so the final sync is short.  A
 *    mismatch deletes the temp file and fails with DATA_LOSS naming the
 *    expected and actual digest and size.
 *  - One writer per digest, across threads and processes: hp_content_begin
 *    takes an exclusive flock on the digest's lock file and then looks again;
 *    a concurrent caller waits and finds the blob present (already_present),
 *    so the data is written once.  The lock dies with its holder (SIGKILL
 *    included); the next holder deletes that digest's stale temp files.
 *    Lock files are unlinked on release; acquirers check that the locked inode
 *    is still the one at the path, so the unlink is race-free.
 *  - Unpacked layers: the fill callback populates a fresh directory in tmp/,
 *    which is renamed to layers/sha256/<hex> only on success (after syncfs);
 *    a failure removes it.  Same lock scheme, so a layer shared by several
 *    images is unpacked once.
 *
 * An hp_content is immutable after hp_content_new (it holds directory fds) and
 * may be used from several threads at once.
 */
#ifndef HP_IMAGE_CONTENT_H
#define HP_IMAGE_CONTENT_H

#include <stddef.h>
#include <stdint.h>

#include "image/unpack.h"
#include "util/err.h"

typedef struct hp_content hp_content;
typedef struct hp_content_writer hp_content_writer;

/* Open (creating as needed) the store rooted at `root`.  Returns a handle the
 * caller owns and frees with hp_content_free, or NULL with err set. */
hp_content *hp_content_new(const char *root, hp_err *err);
void hp_content_free(hp_content *cs);

/* Deferred durability (the image service uses it): blobs and unpacked layers
 * are published without the per-blob fsync and per-layer syncfs; the caller
 * makes them durable with hp_content_sync before relying on them across a
 * crash, and cleans up after a crash in between (service.c: the "unsynced"
 * marker).  Call once, right after hp_content_new, before other threads use
 * cs. */
void hp_content_defer_sync(hp_content *cs);

/* syncfs(2) of the file system holding the store: every blob and layer
 * written so far is durable when it returns 0. */
int hp_content_sync(hp_content *cs, hp_err *err);

/* Start writing blob `digest` ("sha256:<hex>" or "sha512:<hex>") of `size`
 * bytes (size < 0: unknown, not checked).  When the blob is already stored
 * (possibly after waiting for a concurrent writer), sets *already_present = 1,
 * *w = NULL and returns 0.  Otherwise sets *already_present = 0 and *w to a
 * writer holding the digest lock; the caller must finish it with exactly one
 * of hp_content_commit or hp_content_abort, which free it.  Blocks while
 * another thread or process writes the same digest. */
int hp_content_begin(hp_content *cs, const char *digest, int64_t size, hp_content_writer **w,
                     int *already_present, hp_err *err);

/* Append data.  Fails (DATA_LOSS) as soon as more than `size` bytes arrive; the
 * writer stays valid for hp_content_abort. */
int hp_content_write(hp_content_writer *w, const void *buf, size_t len, hp_err *err);

/* Verify digest and size, fsync and publish.  Always frees w and releases the
 * lock; on failure nothing is published and the temp file is gone. */
int hp_content_commit(hp_content_writer *w, hp_err *err);

/* Discard an unfinished write: deletes the temp file, releases the lock, frees
 * w.  NULL is a no-op. */
void hp_content_abort(hp_content_writer *w);

/* Bytes written so far. */
uint64_t hp_content_written(const hp_content_writer *w);

/* Store `len` bytes from buf as `digest` (begin + write + commit). */
int hp_content_put(hp_content *cs, const char *digest, const void *buf, size_t len, hp_err *err);

/* 1 when the blob is stored, 0 when not (or the digest is invalid). */
int hp_content_has(hp_content *cs, const char *digest);

/* Open a stored blob read-only.  Returns an fd the caller closes, or -1 with
 * err (NOT_FOUND, INVALID_ARGUMENT). */
int hp_content_open(hp_content *cs, const char *digest, hp_err *err);

/* "<root>/blobs/<alg>/<hex>" (whether or not it exists).  malloc'd; the
 * caller frees.  NULL with err on an invalid digest. */
char *hp_content_blob_path(hp_content *cs, const char *digest, hp_err *err);

/* Delete a blob (under its lock).  NOT_FOUND when absent. */
int hp_content_remove(hp_content *cs, const char *digest, hp_err *err);

/* Populates the empty directory dirfd; returns 0 or -1 with err set. */
typedef int (*hp_content_fill_fn)(int dirfd, void *arg, hp_err *err);

/* Make sure layers/sha256/<hex of key> exists, running fill once into a temp
 * directory under the key's lock if it does not.  key is "sha256:<hex>" (a diff
 * ID, or a chain ID if the caller stores flattened stacks).  *already (may be
 * NULL) tells whether it was present.  Returns 0 or -1 with err. */
int hp_content_layer_ensure(hp_content *cs, const char *key, hp_content_fill_fn fill, void *arg,
                            int *already, hp_err *err);

/* hp_content_layer_ensure filling with hp_unpack_layer() of the stored blob
 * `blob_digest`, verifying that it unpacks to `diffid` (opts->diffid is
 * overridden).  opts and st may be NULL; st is left zero when already present. */
int hp_content_layer_unpack(hp_content *cs, const char *diffid, const char *blob_digest,
                            const hp_unpack_opts *opts, hp_unpack_stats *st, int *already,
                            hp_err *err);

/* 1 when the unpacked layer exists, else 0. */
int hp_content_layer_has(hp_content *cs, const char *key);

/* "<root>/layers/sha256/<hex>"; malloc'd, the caller frees.  NULL with err on
 * an invalid key. */
char *hp_content_layer_path(hp_content *cs, const char *key, hp_err *err);

/* Remove an unpacked layer: renamed into tmp/ (disappears atomically), then
 * deleted.  NOT_FOUND when absent. */
int hp_content_layer_remove(hp_content *cs, const char *key, hp_err *err);

/* Disk usage of the whole store (st_blocks * 512 summed; a hard-linked file is
 * counted once per link) and the number of inodes (files, dirs, links). */
int hp_content_usage(hp_content *cs, uint64_t *bytes, uint64_t *inodes, hp_err *err);

#endif
