/* PullImage: fetch an image from a registry into the image service.
 *
 *   p = hp_puller_new(cfg, &err);         under the config read lock: copies
 *                                         what it needs (registries, platform)
 *   hp_image_pull(svc, p, "busybox", &auth, cancel, NULL, NULL, &id, &err);
 *   hp_puller_free(p);
 *
 * The manifest (an index is resolved to the configured platform) and config
 * are fetched and verified, the layer blobs are downloaded into the content
 * store (up to max_concurrent_downloads at once, each digest once even across
 * concurrent pulls), the chain dirs are built while later layers still
 * download, and only then is the image recorded.
 */
#ifndef HP_IMAGE_PULL_H
#define HP_IMAGE_PULL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "image/service.h"
#include "util/err.h"

/* Credentials from the CRI AuthConfig (all borrowed, NULL or "" = unset).
 * `auth` is base64("user:password") and is used when username is unset. */
struct hp_pull_auth {
    const char *username;
    const char *password;
    const char *auth;
    const char *identity_token;
    const char *registry_token;
};

typedef struct hp_puller hp_puller;

/* A registry client configured from cfg ([registry "HOST"] sections, [image]
 * default_platform and max_concurrent_downloads).  cfg is only read during the
 * call.  Returns an object owned by the caller (hp_puller_free), or NULL. */
hp_puller *hp_puller_new(const hp_config *cfg, hp_err *err);
void hp_puller_free(hp_puller *p);

/* Phases of a pull, in order (progress reports). */
enum hp_pull_phase {
    HP_PULL_RESOLVING = 0,   /* manifest and config */
    HP_PULL_DOWNLOADING = 1, /* layer blobs (chain dirs are built meanwhile) */
    HP_PULL_UNPACKING = 2,   /* every blob stored, chain dirs still being built */
    HP_PULL_DONE = 3,        /* image recorded; image_id set */
};

/* One progress report.  Every pointer is borrowed for the callback's duration.
 * Byte counts are compressed layer bytes (what is downloaded) over all layers;
 * a layer already in the store counts as done.  bytes_done never decreases. */
struct hp_pull_progress {
    enum hp_pull_phase phase;
    const char *layer_digest; /* layer the report is about; NULL while resolving */
    size_t layer_index;       /* its index, base layer 0 */
    size_t layer_count;
    size_t layers_done; /* layers downloaded and applied (chain dir built) */
    uint64_t bytes_done, bytes_total;
    const char *image_id; /* "sha256:<config digest>", DONE only */
};

/* Progress callback: runs on the puller's threads (never two at once, never
 * under a lock of the image service); must not block for long.  Reports come
 * at phase changes, at each finished layer and at most every
 * HP_PULL_PROGRESS_MS while bytes arrive; the last one is DONE. */
typedef void (*hp_pull_progress_fn)(void *ud, const struct hp_pull_progress *p);
#define HP_PULL_PROGRESS_MS 200

/* Pull `image` (any reference form).  auth, cancel and progress may be NULL
 * (progress_ud is passed to progress).  On success *image_id is a malloc'd
 * "sha256:<config digest>" the caller frees. */
int hp_image_pull(hp_image_service *svc, hp_puller *p, const char *image,
                  const struct hp_pull_auth *auth, const atomic_bool *cancel,
                  hp_pull_progress_fn progress, void *progress_ud, char **image_id, hp_err *err);

#endif
