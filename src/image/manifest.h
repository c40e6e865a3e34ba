/* OCI / Docker image manifests, indexes and image configs.
 *
 * Parsing of the JSON documents a registry serves for an image (all untrusted
 * input): the OCI image index and Docker manifest list (multi-platform), the
 * OCI image manifest and Docker schema2 manifest, and the image config blob.
 * Docker schema1 manifests are rejected.  Validation is strict: digests must be
 * "sha256:" + 64 lowercase hex digits, sizes non-negative integers, media types
 * known; any violation is an HP_INVALID_ARGUMENT error naming the offending
 * field.  Every parsed struct owns its strings; release it with the matching
 * *_free() function (which also accepts a zeroed struct, and leaves it zeroed).
 */
#ifndef HP_IMAGE_MANIFEST_H
#define HP_IMAGE_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define HP_MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define HP_MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define HP_MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define HP_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define HP_MT_DOCKER_V1       "application/vnd.docker.distribution.manifest.v1+json"
#define HP_MT_DOCKER_V1_JWS   "application/vnd.docker.distribution.manifest.v1+prettyjws"
#define HP_MT_OCI_CONFIG      "application/vnd.oci.image.config.v1+json"
#define HP_MT_DOCKER_CONFIG   "application/vnd.docker.container.image.v1+json"

/* Value for an HTTP Accept header listing the four supported manifest types. */
#define HP_MANIFEST_ACCEPT                                                                         \
    HP_MT_OCI_INDEX ", " HP_MT_OCI_MANIFEST ", " HP_MT_DOCKER_LIST ", " HP_MT_DOCKER_MANIFEST

/* Largest manifest/index/config document accepted (bytes). */
#define HP_MANIFEST_MAX_SIZE (4 * 1024 * 1024)

enum hp_manifest_kind {
    HP_MANIFEST_KIND_IMAGE = 1, /* OCI image manifest or Docker schema2 manifest */
    HP_MANIFEST_KIND_INDEX = 2, /* OCI image index or Docker manifest list */
};

enum hp_compression {
    HP_COMPRESSION_NONE = 0, /* plain tar */
    HP_COMPRESSION_GZIP = 1,
    HP_COMPRESSION_ZSTD = 2,
};

/* A content descriptor (config or layer). */
struct hp_descriptor {
    char *media_type;
    char *digest;                    /* "sha256:<64 hex>" */
    int64_t size;                    /* >= 0 */
    enum hp_compression compression; /* layers only; NONE for configs */
    bool foreign;                    /* non-distributable / Docker foreign layer (may carry urls) */
    char **urls;                     /* NULL-terminated, NULL when absent */
};

struct hp_platform {
    char *os;           /* "linux" */
    char *architecture; /* normalised: "amd64", "arm64", "arm", ... */
    char *variant;      /* normalised: "v8" for arm64; NULL when none */
};

struct hp_index_entry {
    struct hp_descriptor desc;   /* media_type is a manifest (or nested index) type */
    struct hp_platform platform; /* all NULL when the entry has no platform */
};

struct hp_index {
    char *media_type; /* HP_MT_OCI_INDEX or HP_MT_DOCKER_LIST */
    struct hp_index_entry *entries;
    size_t n_entries;
};

struct hp_manifest {
    char *media_type; /* HP_MT_OCI_MANIFEST or HP_MT_DOCKER_MANIFEST */
    struct hp_descriptor config;
    struct hp_descriptor *layers; /* in application order, base first */
    size_t n_layers;
};

struct hp_kv {
    char *key;
    char *value;
};

/* The parts of the image config a runtime needs.  String arrays are
 * NULL-terminated (NULL when absent) with their length alongside. */
struct hp_image_config {
    char *architecture;
    char *os;
    char *variant;                          /* may be NULL */
    char *user, *working_dir, *stop_signal; /* may be NULL */
    char **env;
    size_t n_env;
    char **entrypoint;
    size_t n_entrypoint;
    char **cmd;
    size_t n_cmd;
    struct hp_kv *labels; /* sorted by key */
    size_t n_labels;
    char **exposed_ports; /* keys of ExposedPorts ("80/tcp"), sorted */
    size_t n_exposed_ports;
    char **volumes; /* keys of Volumes, sorted */
    size_t n_volumes;
    char **diff_ids; /* rootfs.diff_ids, one per layer, "sha256:..." */
    size_t n_diff_ids;
};

/* true when s is "sha256:" followed by exactly 64 lowercase hex digits. */
bool hp_digest_valid(const char *s);

/* Classify a manifest document.  media_type is the HTTP Content-Type (may be
 * NULL or generic like application/json); the document's own mediaType field
 * wins when present, and schemaVersion/shape decide otherwise.  Returns an
 * enum hp_manifest_kind, or -1 with HP_INVALID_ARGUMENT (schema1, unknown
 * type, malformed JSON). */
int hp_manifest_kind(const char *buf, size_t len, const char *media_type, hp_err *err);

/* Parse an OCI image index or Docker manifest list.  On success *out owns all
 * its strings; free with hp_index_free().  On error *out is left zeroed. */
int hp_index_parse(const char *buf, size_t len, const char *media_type, struct hp_index *out,
                   hp_err *err);
void hp_index_free(struct hp_index *idx);

/* Parse "os/arch[/variant]" (e.g. "linux/arm64/v8") into *out, normalising the
 * architecture (x86_64 -> amd64, aarch64 -> arm64, arm64 variant defaults to
 * v8).  *out is owned by the caller; free with hp_platform_free(). */
int hp_platform_parse(const char *s, struct hp_platform *out, hp_err *err);
void hp_platform_free(struct hp_platform *p);

/* Pick the entry of idx matching want (NULL = linux/amd64).  os and
 * architecture must match; a wanted variant must match (arm64 == arm64/v8); when
 * no variant is wanted an entry without variant is preferred, else the first
 * with the architecture.  Returns a pointer into idx (borrowed, valid while idx
 * lives) or NULL with HP_NOT_FOUND listing the available platforms. */
const struct hp_index_entry *hp_index_select(const struct hp_index *idx,
                                             const struct hp_platform *want, hp_err *err);

/* Parse an OCI image manifest or Docker schema2 manifest.  On success *out
 * owns all its strings; free with hp_manifest_free().  On error *out is zeroed. */
int hp_manifest_parse(const char *buf, size_t len, const char *media_type, struct hp_manifest *out,
                      hp_err *err);
void hp_manifest_free(struct hp_manifest *m);

/* Parse an image config blob.  On success *out owns all its strings; free with
 * hp_image_config_free().  On error *out is zeroed. */
int hp_image_config_parse(const char *buf, size_t len, struct hp_image_config *out, hp_err *err);
void hp_image_config_free(struct hp_image_config *c);

/* Check that a manifest and its config agree (one diff_id per layer). */
int hp_image_config_check(const struct hp_manifest *m, const struct hp_image_config *c,
                          hp_err *err);

/* Static name of a compression ("tar", "tar+gzip", "tar+zstd"). */
const char *hp_compression_name(enum hp_compression c);

#endif
