/* OCI distribution (registry v2 API) client: manifests and blobs over libcurl.
 *
 *   hp_registry_global_init()                 once in main, before any thread
 *   r = hp_registry_new(&cfg, &err)           one client per daemon (thread-safe)
 *   hp_registry_get_manifest(r, "docker.io", "library/busybox", "latest", &opts, &m, &err)
 *   hp_registry_get_blob(r, host, repo, digest, size, &opts, write, ud, &err)
 *   hp_registry_free(r)
 *
 * Callers pass already-parsed strings: the registry host as it appears in image
 * references ("docker.io", "127.0.0.1:5000"), the repository path
 * ("library/busybox") and a tag or "sha256:..." digest.
 *
 * Endpoints: the mirrors configured for the host are tried in order, then the
 * upstream registry unless mirror_only is set.  docker.io's upstream API host
 * is registry-1.docker.io.  Upstream uses https, or plain http when the
 * registry is marked insecure or is a loopback address (localhost, 127.x,
 * [::1]).  Mirrors are base URLs ("http://127.0.0.1:5000",
 * "https://mirror.example"; https assumed without a scheme); insecure skips TLS
 * verification for https mirrors.  When an endpoint fails (no answer, 404,
 * 401/403, 429, 5xx, unusable manifest) the next one is tried (logged as a
 * warning) and the error of the last endpoint is returned; cancellation,
 * corrupt data (HP_DATA_LOSS), sink errors and oversize documents stop at once.
 *
 * Each endpoint is tried 3 times on connection errors and 5xx answers, 200 ms
 * then 400 ms apart; 4xx answers are not retried.  An interrupted blob
 * download resumes with a Range request, still hashing every byte.
 *
 * Auth: anonymous first; a 401 with a Bearer challenge gets a token from the
 * challenge's realm (Basic credentials when given, an identity token as an
 * OAuth2 refresh_token POST), cached per (endpoint, scope, credentials) until
 * expires_in; a Basic challenge is answered with the username/password.  A
 * registry token is sent as Bearer directly.  Auth failures are
 * HP_UNAUTHENTICATED (401) or HP_PERMISSION_DENIED (403) naming the registry,
 * the HTTP status and the repository.
 */
#ifndef HP_IMAGE_REGISTRY_H
#define HP_IMAGE_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/manifest.h"
#include "util/err.h"

/* Settings for one registry host (all strings borrowed; hp_registry_new copies). */
struct hp_registry_settings {
    const char *host;           /* as in image refs: "docker.io", "127.0.0.1:5000" */
    const char *const *mirrors; /* endpoint base URLs, tried in order */
    size_t n_mirrors;
    bool mirror_only;    /* never contact the upstream registry */
    bool insecure;       /* plain HTTP upstream; no TLS verification */
    const char *ca_file; /* extra CA bundle (PEM) for TLS, or NULL */
};

struct hp_registry_config {
    const struct hp_registry_settings *registries; /* hosts without an entry: defaults */
    size_t n_registries;
    const char *user_agent;  /* NULL: "hpcri" */
    long connect_timeout_ms; /* 0: 10000 */
    long low_speed_limit;    /* bytes/s below which a transfer is stalled; 0: 1024 */
    long low_speed_time;     /* seconds a stall may last; 0: 30 */
    long retry_delay_ms;     /* first backoff delay, doubled each retry; 0: 200 */
};

/* Credentials for one pull (borrowed).  Use username+password, or
 * identity_token (an OAuth2 refresh token, e.g. from `docker login`), or
 * registry_token (a bearer token sent as is). */
struct hp_registry_creds {
    const char *username;
    const char *password;
    const char *identity_token;
    const char *registry_token;
};

/* Progress of a blob download: bytes verified so far and expected total. */
typedef void (*hp_progress_fn)(void *ud, uint64_t done, uint64_t total);

/* A blob sink: consume n bytes, return 0, or -1 with err filled to abort. */
typedef int (*hp_sink_write_fn)(void *ud, const void *buf, size_t n, hp_err *err);

struct hp_pull_opts {
    const struct hp_registry_creds *creds; /* NULL: anonymous */
    const atomic_bool *cancel;             /* set to true to abort (HP_CANCELLED); may be NULL */
    hp_progress_fn progress;               /* may be NULL */
    void *progress_ud;
    /* Blobs only: the sink verifies digest and size itself (the content
     * store's writer does), so the bytes are not hashed twice; the size is
     * still checked here. */
    bool sink_verifies;
};

/* A fetched manifest document, owned: free with hp_fetched_manifest_free(). */
struct hp_fetched_manifest {
    char *data; /* raw bytes (NUL-terminated for convenience; len excludes it) */
    size_t len;
    char *media_type; /* Content-Type answered by the registry (never NULL) */
    char *digest;     /* "sha256:..." computed over data */
};

/* Initialise libcurl (curl_global_init).  Call once from main before any
 * thread starts; not thread-safe.  Returns 0 or -1 with HP_INTERNAL. */
int hp_registry_global_init(hp_err *err);
/* Counterpart at exit (curl_global_cleanup); optional. */
void hp_registry_global_cleanup(void);

/* Create a client.  Copies cfg.  Returns an owned client (free with
 * hp_registry_free) or NULL with err.  A client may be used from several
 * threads at once; it holds the token cache. */
struct hp_registry *hp_registry_new(const struct hp_registry_config *cfg, hp_err *err);
void hp_registry_free(struct hp_registry *r);

/* GET /v2/<repo>/manifests/<ref> with Accept listing the four supported types.
 * When ref is a digest the content must hash to it (else HP_DATA_LOSS); a
 * Docker-Content-Digest header, when present, must match too.  Documents over
 * HP_MANIFEST_MAX_SIZE are refused; schema1 answers are rejected
 * (HP_INVALID_ARGUMENT).  Missing manifest: HP_NOT_FOUND naming repo:ref.
 * On success *out is owned by the caller (hp_fetched_manifest_free). */
int hp_registry_get_manifest(struct hp_registry *r, const char *host, const char *repo,
                             const char *ref, const struct hp_pull_opts *opts,
                             struct hp_fetched_manifest *out, hp_err *err);
void hp_fetched_manifest_free(struct hp_fetched_manifest *m);

/* GET /v2/<repo>/blobs/<digest>, following redirects, streaming the bytes to
 * write(ud, ...).  Bytes are hashed while streaming; more than size bytes, or a
 * different digest at the end, is HP_DATA_LOSS ("blob sha256:… from HOST: digest
 * mismatch (got sha256:…)").  The sink sees the data before the final check:
 * it must treat the content as unverified until this returns 0 (write to a
 * temporary file, commit on success).  A sink error aborts with that error. */
int hp_registry_get_blob(struct hp_registry *r, const char *host, const char *repo,
                         const char *digest, int64_t size, const struct hp_pull_opts *opts,
                         hp_sink_write_fn write, void *ud, hp_err *err);

/* Fetch a small blob (an image config) into memory.  size must not exceed
 * HP_MANIFEST_MAX_SIZE.  On success *data (NUL-terminated, *len excludes the
 * NUL) is owned by the caller and freed with free(). */
int hp_registry_get_blob_mem(struct hp_registry *r, const char *host, const char *repo,
                             const char *digest, int64_t size, const struct hp_pull_opts *opts,
                             char **data, size_t *len, hp_err *err);

/* An image resolved for one platform: what a pull needs before the layers. */
struct hp_resolved_image {
    char *manifest_digest; /* digest of the platform's image manifest */
    char *index_digest;    /* digest of the index it was selected from, or NULL */
    struct hp_manifest manifest;
    struct hp_image_config config;
    char *config_data; /* raw config JSON (NUL-terminated) */
    size_t config_len;
};

/* Fetch ref's manifest; if it is an index pick the platform (NULL:
 * linux/amd64) and fetch that manifest by digest; then fetch and parse the
 * config and check it against the manifest.  On success *out is owned by the
 * caller; free with hp_resolved_image_free(). */
int hp_registry_resolve(struct hp_registry *r, const char *host, const char *repo, const char *ref,
                        const struct hp_platform *platform, const struct hp_pull_opts *opts,
                        struct hp_resolved_image *out, hp_err *err);
void hp_resolved_image_free(struct hp_resolved_image *img);

#endif
