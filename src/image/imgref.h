/* Image reference normalisation for the image service.
 *
 * A thin wrapper over image/ref.h that hands back plain strings, so that the
 * service files need not include ref.h next to manifest.h.
 */
#ifndef HP_IMAGE_IMGREF_H
#define HP_IMAGE_IMGREF_H

#include "util/err.h"

typedef struct hp_imgref {
    char *domain;   /* "docker.io", "127.0.0.1:5000" */
    char *path;     /* "library/busybox" */
    char *repo;     /* "docker.io/library/busybox" */
    char *tag;      /* "latest", or NULL when only a digest was given */
    char *digest;   /* "sha256:<hex>" or NULL */
    char *tagged;   /* "repo:tag", or NULL when tag is NULL */
    char *digested; /* "repo@digest", or NULL when digest is NULL */
    char *api_ref;  /* digest when present, else tag (borrowed from the fields above) */
} hp_imgref;

/* Parse and normalise s ("busybox" -> docker.io/library/busybox:latest).  On
 * success every string in *out is malloc'd and owned by *out (release with
 * hp_imgref_free); on failure *out is zeroed and err holds INVALID_ARGUMENT. */
int hp_imgref_parse(const char *s, hp_imgref *out, hp_err *err);
void hp_imgref_free(hp_imgref *r);

#endif
