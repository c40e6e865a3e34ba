/* Private interface shared by the image service files (service.c, pull.c,
 * import.c). */
#ifndef HP_IMAGE_IMAGE_INT_H
#define HP_IMAGE_IMAGE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "image/content.h"
#include "image/manifest.h"
#include "image/service.h"
#include "store/store.h"

#define HP_CHAIN_ID_LEN 71 /* "sha256:" + 64 hex */

struct hp_image_new;

struct hp_image_service {
    char *dir;
    int dirfd; /* dir, for the "unsynced" marker (service.c) */
    hp_store *store;
    hp_content *cs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned active; /* pulls/imports between op_begin and op_end */
    bool gc_running;
    bool gc_pending;
    /* The image helper (hp_image_service_new_helper): store NULL, commits go
     * to record(record_ud, ...) instead of the state store, op_begin/op_end
     * and GC are the daemon's business.  NULL in the daemon. */
    int (*record)(void *ud, const struct hp_image_new *im, hp_err *err);
    void *record_ud;
};

/* Pulls and imports bracket their work with these: GC never runs in between. */
void hp_image_op_begin(hp_image_service *svc);
void hp_image_op_end(hp_image_service *svc);

/* chain(0) = diff_id(0); chain(n) = sha256(chain(n-1) + " " + diff_id(n)).
 * parent NULL for the base layer.  out gets "sha256:<hex>". */
void hp_chain_id(const char *parent, const char *diff_id, char out[HP_CHAIN_ID_LEN + 1]);

/* The key of the rootfs of an image without layers. */
void hp_chain_empty(char out[HP_CHAIN_ID_LEN + 1]);

/* Make sure the chain dir `chain` exists: a hard-link clone of chain dir
 * `parent` (NULL: empty) with the stored blob `blob_digest` applied, which
 * must unpack to diff_id.  *already (may be NULL) tells whether it existed. */
int hp_image_chain_build(hp_image_service *svc, const char *parent, const char *chain,
                         const char *blob_digest, const char *diff_id, int *already, hp_err *err);

/* A new image whose blobs are all in the content store. */
struct hp_image_new {
    const char *id;          /* "sha256:<config digest>" */
    const char *config_json; /* raw config */
    const struct hp_image_config *config;
    const struct hp_descriptor *layers; /* blob digest + size, base first */
    size_t n_layers;
    const char *const *repo_tags; /* normalised */
    size_t n_repo_tags;
    const char *repo_digest; /* "repo@sha256:..." or NULL */
    int64_t size;            /* bytes: config + blobs */
};

/* Build any missing chain dir (all layers' blobs must be stored), then
 * record the image: in the state store (hp_image_record), or in the image
 * helper through svc->record.  Returns 0, or -1 with err.  (chain.c) */
int hp_image_commit(hp_image_service *svc, const struct hp_image_new *im, hp_err *err);

/* Record an image whose blobs and chain dirs are complete (checked: DATA_LOSS
 * when one is missing) in the state store, after a syncfs of the store.  The
 * daemon calls it for an image the helper reports.  Returns 0 or -1 with err. */
int hp_image_record(hp_image_service *svc, const struct hp_image_new *im, hp_err *err);

typedef int (*hp_image_record_fn)(void *ud, const struct hp_image_new *im, hp_err *err);

/* The image service as the image helper opens it: the content store under
 * <root>/images, no state store, no start-up cleanup or GC (the daemon does
 * those), commits handed to record(record_ud, im, err).  Returns a service the
 * caller frees with hp_image_service_free, or NULL with err. */
hp_image_service *hp_image_service_new_helper(const char *root, hp_image_record_fn record,
                                              void *record_ud, hp_err *err);

#endif
