/* Docker / OCI image references.
 *
 * Grammar and normalisation follow docker's reference package
 * (github.com/distribution/reference, ParseNormalizedNamed):
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [ domain "/" ] path
 *   domain    := host [ ":" port ]    host: DNS labels joined by '.', or "[ipv6]"
 *   path      := component ( "/" component )*
 *   component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *   digest    := "sha256:" 64 lowercase hex | "sha512:" 128 lowercase hex
 *
 * The first '/'-separated component is a domain when it contains '.' or ':',
 * is "localhost", or contains an upper-case letter (docker's rule); otherwise
 * the domain is docker.io.  On docker.io a single-component path gets the
 * "library/" prefix, and "index.docker.io" is rewritten to "docker.io".
 * The domain keeps its case (as docker does, so that formatting and re-parsing
 * give the same reference); path components must be lower case (docker
 * rejects "Busybox": so do we).  A missing
 * tag becomes "latest" unless a digest is given; "name:tag@digest" keeps both.
 * The repository name (domain/path) is limited to 255 characters, and a bare
 * 64-hex-digit name is rejected as ambiguous with an image ID.
 *
 *   busybox                  -> docker.io/library/busybox:latest
 *   user/app                 -> docker.io/user/app:latest
 *   reg.example:5000/ns/x:v1 -> reg.example:5000/ns/x:v1
 *   x@sha256:<hex>           -> docker.io/library/x@sha256:<hex>   (tag NULL)
 */
#ifndef HP_IMAGE_REF_H
#define HP_IMAGE_REF_H

#include "util/err.h"

typedef struct hp_ref {
    char *domain; /* "docker.io", "localhost:5000", ... (owned) */
    char *path;   /* "library/busybox" (owned) */
    char *tag;    /* "latest", or NULL when only a digest was given (owned) */
    char *digest; /* "sha256:<hex>" or NULL (owned) */
} hp_ref;

#define HP_REF_NAME_MAX 255

/* Parse and normalise `s` into *ref (fields malloc'd; release with
 * hp_ref_free).  On failure *ref is left zeroed and err holds
 * INVALID_ARGUMENT naming the reference and the problem (or RESOURCE_EXHAUSTED
 * on allocation failure). */
int hp_ref_parse(const char *s, hp_ref *ref, hp_err *err);

/* Free the fields of *ref and zero it; the struct itself is the caller's. */
void hp_ref_free(hp_ref *ref);

/* "domain/path[:tag][@digest]".  Returns a malloc'd string the caller frees,
 * or NULL on allocation failure. */
char *hp_ref_format(const hp_ref *ref);

/* "domain/path".  Returns a malloc'd string the caller frees, or NULL on
 * allocation failure. */
char *hp_ref_repository(const hp_ref *ref);

/* Host (and port) to talk to for the registry API: "registry-1.docker.io" for
 * docker.io, else the domain.  Borrowed pointer (static storage or
 * ref->domain); valid as long as *ref is. */
const char *hp_ref_api_host(const hp_ref *ref);

/* The reference for API calls: the digest when present, else the tag.
 * Borrowed pointer into *ref. */
const char *hp_ref_api_reference(const hp_ref *ref);

/* 1 when `d` is a digest this code accepts ("sha256:" + 64 lowercase hex or
 * "sha512:" + 128 lowercase hex), else 0. */
int hp_ref_digest_valid(const char *d);

#endif
