/* The image service: images on local disk, ready for containers.
 *
 * Layout under <root>/images (docs/images.md):
 *   blobs/sha256/<hex>     verified layer blobs (image/content.h)
 *   layers/sha256/<chain>  one read-only flattened rootfs per layer chain:
 *                          chain(0) = layer 0, chain(n) = a hard-link clone of
 *                          chain(n-1) with layer n applied on top.  The image's
 *                          rootfs is the chain dir of its top layer.
 *   tmp/, locks/           in-progress writes (content store)
 * Image metadata (tags, digests, config JSON, layer list) lives in the state
 * store (store/store.h).  An image is recorded only once every blob and chain
 * dir it needs is complete, so a crash mid-pull never leaves a half-visible
 * image; the next pull reuses what was finished.
 *
 * Threads: every function may be called from any thread.  Pulls, imports and
 * removals run concurrently; garbage collection waits until no pull or import
 * is running (it is deferred, never blocking RemoveImage).
 */
#ifndef HP_IMAGE_SERVICE_H
#define HP_IMAGE_SERVICE_H

#include <stdint.h>

#include "image/manifest.h"
#include "store/store.h"
#include "util/err.h"

typedef struct hp_image_service hp_image_service;

/* Create the service over <root>/images with the state store `store`
 * (borrowed; outlives the service).  Leftovers of interrupted pulls in tmp/
 * are removed.  Returns a new service owned by the caller
 * (hp_image_service_free), or NULL with err. */
hp_image_service *hp_image_service_new(const char *root, hp_store *store, hp_err *err);
void hp_image_service_free(hp_image_service *svc);

/* Directory holding everything the image service stores (for ImageFsInfo).
 * Borrowed; lives as long as svc. */
const char *hp_image_service_dir(const hp_image_service *svc);

/* Bytes (st_blocks * 512) and inodes used by the image store. */
int hp_image_service_usage(hp_image_service *svc, uint64_t *bytes, uint64_t *inodes, hp_err *err);

/* Resolve a user's reference: a name ("busybox" -> docker.io/library/busybox:
 * latest), name@digest, an image id ("sha256:<hex>") or a unique id prefix.
 * Returns a record owned by the caller (hp_image_rec_free), or NULL with
 * NOT_FOUND (or another code). */
hp_image_rec *hp_image_service_find(hp_image_service *svc, const char *ref, hp_err *err);

/* The read-only flattened root file system of image `image_id` (the lower dir
 * of a container's overlay).  Returns a malloc'd absolute path the caller
 * frees, or NULL with NOT_FOUND (unknown image) or DATA_LOSS (rootfs missing
 * on disk: pull the image again). */
char *hp_image_service_rootfs(hp_image_service *svc, const char *image_id, hp_err *err);

/* The parsed config (entrypoint, cmd, env, working dir, user, stop signal,
 * labels, ...) of image `image_id`.  On success *out is owned by the caller
 * (hp_image_config_free).  NOT_FOUND for an unknown image. */
int hp_image_service_config(hp_image_service *svc, const char *image_id,
                            struct hp_image_config *out, hp_err *err);

/* RemoveImage semantics: `ref` is an id, id prefix, tag or digest reference.
 * A tag of an image that has other tags is only detached; otherwise the image
 * is deleted (FAILED_PRECONDITION naming the number of containers when
 * containers use it) and garbage is collected.  An unknown image is not an
 * error (*removed = 0).  *removed (may be NULL): 1 image deleted, 2 tag
 * detached. */
int hp_image_service_remove(hp_image_service *svc, const char *ref, int *removed, hp_err *err);

/* Delete blobs, chain dirs and layer records no image references.  Runs now
 * when no pull/import is in progress, else when the last one finishes. */
int hp_image_service_gc(hp_image_service *svc, hp_err *err);

#endif
