/* The image service: pulls, imports, stores and removes images for the CRI
 * layer.  One instance per daemon, created at start-up, thread-safe. */
#ifndef HP_IMAGE_SERVICE_H
#define HP_IMAGE_SERVICE_H

#include "config/config.h"
#include "store/store.h"
#include "util/err.h"

typedef struct hp_image_service hp_image_service;

/* Create the service over <root>/images with the state store `store`
 * (borrowed; outlives the service).  Returns a new service owned by the
 * caller (hp_image_service_free), or NULL with err. */
hp_image_service *hp_image_service_new(const char *root, hp_store *store, hp_err *err);
void hp_image_service_free(hp_image_service *svc);

/* Directory holding everything the image service stores (for ImageFsInfo). */
const char *hp_image_service_dir(const hp_image_service *svc);

#endif
