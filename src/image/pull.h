/* PullImage: fetch an image from a registry into the image service.
 *
 *   p = hp_puller_new(cfg, &err);         under the config read lock: copies
 *                                         what it needs (registries, platform)
 *   hp_image_pull(svc, p, "busybox", &auth, cancel, &id, &err);
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

/* Pull `image` (any reference form).  auth and cancel may be NULL.  On success
 * *image_id is a malloc'd "sha256:<config digest>" the caller frees. */
int hp_image_pull(hp_image_service *svc, hp_puller *p, const char *image,
                  const struct hp_pull_auth *auth, const atomic_bool *cancel, char **image_id,
                  hp_err *err);

#endif
