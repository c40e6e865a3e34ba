/* hpcri state store: every pod sandbox, container and image record lives in
 * one SQLite database so that a daemon crash or restart loses nothing.
 *
 * Durability
 *   The database runs in WAL mode with `synchronous=NORMAL`.  A committed
 *   transaction is in the WAL file (in the kernel's page cache) before the
 *   commit returns, so it survives any crash of the hpcri process itself
 *   (SIGKILL, abort, OOM kill).  Only an OS crash or power loss can roll back
 *   the last few commits, and never corrupts the file; at that point every
 *   container died with the machine and the daemon reconciles on start-up
 *   anyway.  FULL would add one fsync per commit for no gain in that case.
 *   Every state-changing call below is exactly one transaction, and
 *   hp_store_begin()/hp_store_commit() group several calls into one.
 *
 * Threads
 *   One SQLite connection per hp_store, guarded by one recursive mutex held
 *   for the duration of each call (or of an explicit transaction).  Any thread
 *   may call any function; calls are serialized.  A call may block on the
 *   mutex or on the disk for a few milliseconds; callers on the event loop
 *   should keep to the cheap reads (get/list).  Other processes (hpcri-ctl,
 *   tests) may open the same file: SQLite file locks plus a 5 s busy timeout
 *   arbitrate.  An hp_store must not be used in a forked child.
 *
 * Schema
 *   `PRAGMA user_version` holds the schema version; hp_store_open() applies
 *   the missing migrations in order, each in its own transaction.  A file
 *   written by a newer hpcri is refused with FAILED_PRECONDITION.
 *
 * Ownership
 *   Records passed *into* the store are borrowed (the store copies what it
 *   needs).  Records returned by the store are heap-allocated and owned by
 *   the caller, who frees them with the matching *_free function named in
 *   each comment.  Lists come back as one malloc'd array of records plus a
 *   count; an empty result is (NULL, 0).
 */
#ifndef HP_STORE_STORE_H
#define HP_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define HP_STORE_ID_LEN 64 /* pod / container ids: 64 lowercase hex characters */

/* Highest schema version this binary knows (the number of migrations). */
#define HP_STORE_SCHEMA_VERSION 1

typedef struct hp_store hp_store;

/* ---------------------------------------------------------------------------
 * Small owned containers used by the records.
 */

/* One string pair; both strings owned by the map. */
typedef struct hp_kv_pair {
    char *key;
    char *value;
} hp_kv_pair;

/* String map (labels, annotations) in insertion order; keys are unique.
 * Zero-initialize ({0}) for an empty map; free the contents with
 * hp_strmap_clear(). */
typedef struct hp_strmap {
    hp_kv_pair *items; /* owned array of n owned pairs */
    size_t n;
    size_t cap;
} hp_strmap;

/* Set key to value (both copied); an existing key's value is replaced.
 * Returns 0, or -1 with RESOURCE_EXHAUSTED. */
int hp_strmap_set(hp_strmap *m, const char *key, const char *value, hp_err *err);
/* The value for key (borrowed from the map), or NULL when absent. */
const char *hp_strmap_get(const hp_strmap *m, const char *key);
/* Free every pair and the array; the map is empty and reusable afterwards. */
void hp_strmap_clear(hp_strmap *m);

/* Ordered list of strings (image tags, repo digests). Zero-initialize for an
 * empty list; free the contents with hp_strlist_clear(). */
typedef struct hp_strlist {
    char **items; /* owned array of n owned strings */
    size_t n;
    size_t cap;
} hp_strlist;

/* Append a copy of s. Returns 0, or -1 with RESOURCE_EXHAUSTED. */
int hp_strlist_add(hp_strlist *l, const char *s, hp_err *err);
/* True when s is in the list. */
bool hp_strlist_contains(const hp_strlist *l, const char *s);
/* Free every string and the array; the list is empty and reusable afterwards. */
void hp_strlist_clear(hp_strlist *l);

/* ---------------------------------------------------------------------------
 * Records.  All char* / uint8_t* members are owned by the record when it was
 * returned by the store; when passed in they are only read.  NULL strings are
 * stored as "" (except where a member says it is nullable).
 */

enum hp_pod_state { HP_POD_READY = 0, HP_POD_NOTREADY = 1 };

typedef struct hp_pod_rec {
    char id[HP_STORE_ID_LEN + 1];
    char *name;
    char *ns; /* Kubernetes namespace */
    char *uid;
    uint32_t attempt;
    int state;          /* enum hp_pod_state */
    int64_t created_at; /* unix ns */
    char *runtime_handler;
    hp_strmap labels;
    hp_strmap annotations;
    uint8_t *config; /* serialized CRI PodSandboxConfig; nullable */
    size_t config_len;
    char *backend_state; /* backend-owned JSON text; nullable */
} hp_pod_rec;

enum hp_ctr_state {
    HP_CTR_CREATED = 0,
    HP_CTR_RUNNING = 1,
    HP_CTR_EXITED = 2,
    HP_CTR_UNKNOWN = 3,
};

typedef struct hp_ctr_rec {
    char id[HP_STORE_ID_LEN + 1];
    char pod_id[HP_STORE_ID_LEN + 1];
    char *name;
    uint32_t attempt;
    int state;                                   /* enum hp_ctr_state */
    int64_t created_at, started_at, finished_at; /* unix ns; 0 = not yet */
    int32_t exit_code;
    char *reason;
    char *message;
    char *image;     /* image reference as the user wrote it */
    char *image_ref; /* image id ("sha256:<hex>") */
    char *log_path;
    hp_strmap labels;
    hp_strmap annotations;
    uint8_t *config; /* serialized CRI ContainerConfig; nullable */
    size_t config_len;
    char *backend_state; /* backend-owned JSON text; nullable */
} hp_ctr_rec;

/* The mutable status fields of a container, written together. */
typedef struct hp_ctr_status {
    int state;
    int64_t started_at, finished_at;
    int32_t exit_code;
    const char *reason;  /* NULL = "" */
    const char *message; /* NULL = "" */
} hp_ctr_status;

typedef struct hp_layer_rec {
    char *digest;  /* compressed blob digest "sha256:<hex>" (the layer's key) */
    char *diff_id; /* uncompressed digest "sha256:<hex>" */
    int64_t size;  /* blob size in bytes */
    /* Only set by hp_store_layers_unreferenced(): another, still referenced
     * layer has the same diff_id, so the unpacked tree must be kept. */
    bool diff_id_in_use;
} hp_layer_rec;

typedef struct hp_image_rec {
    char *id;                /* "sha256:<hex>" config digest */
    hp_strlist repo_tags;    /* "docker.io/library/busybox:1.36" */
    hp_strlist repo_digests; /* "docker.io/library/busybox@sha256:..." */
    int64_t size;            /* bytes */
    bool has_uid;            /* uid is meaningful (image config user is numeric) */
    int64_t uid;
    char *username;       /* image config user when not numeric, else "" */
    bool pinned;          /* exempt from kubelet image GC */
    char *config_json;    /* OCI image config JSON; nullable */
    hp_layer_rec *layers; /* owned array, base layer first */
    size_t n_layers;
    int64_t created_at; /* unix ns, when hpcri stored it */
} hp_image_rec;

/* Free a record's members and zero it (for records embedded in arrays or on
 * the stack; safe on a zeroed record). */
void hp_pod_rec_clear(hp_pod_rec *p);
void hp_ctr_rec_clear(hp_ctr_rec *c);
void hp_image_rec_clear(hp_image_rec *im);
void hp_layer_rec_clear(hp_layer_rec *l);
/* Free a record returned by a *_get / *_lookup call (members and struct). NULL is fine. */
void hp_pod_rec_free(hp_pod_rec *p);
void hp_ctr_rec_free(hp_ctr_rec *c);
void hp_image_rec_free(hp_image_rec *im);
/* Free an array returned by a *_list call: every record's members and the array. */
void hp_pod_recs_free(hp_pod_rec *a, size_t n);
void hp_ctr_recs_free(hp_ctr_rec *a, size_t n);
void hp_image_recs_free(hp_image_rec *a, size_t n);
void hp_layer_recs_free(hp_layer_rec *a, size_t n);

/* ---------------------------------------------------------------------------
 * Opening, closing, transactions.
 */

/* Open (creating if needed, mode 0600) the database at path, configure the
 * connection and migrate the schema.  Errors: FAILED_PRECONDITION when the
 * file has a newer schema than HP_STORE_SCHEMA_VERSION; DATA_LOSS when it is
 * not a database; INTERNAL / UNAVAILABLE otherwise.
 * Returns a store owned by the caller, freed with hp_store_close(); NULL on error. */
hp_store *hp_store_open(const char *path, hp_err *err);

/* Finalize cached statements, close the connection and free s. NULL is fine.
 * An explicit transaction still open is rolled back. */
void hp_store_close(hp_store *s);

/* The schema version of the open database (PRAGMA user_version), or -1. */
int hp_store_schema_version(hp_store *s, hp_err *err);

/* Group several calls into one write transaction.  hp_store_begin() takes
 * the store's mutex and keeps it until hp_store_commit() or
 * hp_store_rollback() on the same thread; calls made in between join the
 * transaction (each is a savepoint inside it: a failed call undoes only
 * itself).  Nesting is allowed.  hp_store_commit() returns -1 (and rolls
 * back) if the transaction could not be committed. */
int hp_store_begin(hp_store *s, hp_err *err);
int hp_store_commit(hp_store *s, hp_err *err);
void hp_store_rollback(hp_store *s);

/* Fill out with a fresh random id: 64 lowercase hex characters and a NUL
 * (256 bits from getrandom). Returns 0, or -1 with INTERNAL. */
int hp_store_new_id(char out[HP_STORE_ID_LEN + 1], hp_err *err);

/* ---------------------------------------------------------------------------
 * Pod sandboxes.
 */

/* Insert a pod.  p->id must be 64 lowercase hex characters (INVALID_ARGUMENT).
 * ALREADY_EXISTS when the id or (name, namespace, uid, attempt) is taken; the
 * message names the existing pod's id. */
int hp_store_pod_insert(hp_store *s, const hp_pod_rec *p, hp_err *err);

/* The pod with exactly this id.  NOT_FOUND when absent.
 * Returns a record owned by the caller (hp_pod_rec_free), NULL on error. */
hp_pod_rec *hp_store_pod_get(hp_store *s, const char *id, hp_err *err);

/* The one pod whose id starts with prefix (a full id also works).  NOT_FOUND
 * when none matches, INVALID_ARGUMENT when the prefix is empty or matches
 * several pods (the message lists them).
 * Returns a record owned by the caller (hp_pod_rec_free), NULL on error. */
hp_pod_rec *hp_store_pod_lookup(hp_store *s, const char *prefix, hp_err *err);

/* Pod list filter; zero-initialize and set what you need.  All set
 * conditions must hold. */
typedef struct hp_pod_filter {
    const char *id_prefix; /* NULL or "" = any id */
    bool has_state;
    int state;
    const hp_strmap *labels; /* every key=value must be among the pod's labels */
} hp_pod_filter;

/* Pods matching filter (NULL = all), oldest first.  On success *out is an
 * array of *n records owned by the caller (hp_pod_recs_free), or NULL when
 * *n == 0.  Returns 0, or -1 (with *out NULL, *n 0). */
int hp_store_pod_list(hp_store *s, const hp_pod_filter *filter, hp_pod_rec **out, size_t *n,
                      hp_err *err);

/* Set a pod's state.  NOT_FOUND when the pod does not exist. */
int hp_store_pod_set_state(hp_store *s, const char *id, int state, hp_err *err);

/* Replace a pod's backend_state (NULL allowed).  NOT_FOUND when absent. */
int hp_store_pod_set_backend_state(hp_store *s, const char *id, const char *json, hp_err *err);

/* Delete a pod.  FAILED_PRECONDITION when it still has containers (the
 * message says how many), NOT_FOUND when absent. */
int hp_store_pod_delete(hp_store *s, const char *id, hp_err *err);

/* Delete a pod and all its containers in one transaction.  NOT_FOUND when
 * the pod is absent.  *n_ctrs (may be NULL) receives the number of
 * containers removed. */
int hp_store_pod_delete_with_containers(hp_store *s, const char *id, size_t *n_ctrs, hp_err *err);

/* ---------------------------------------------------------------------------
 * Containers.
 */

/* Insert a container.  Ids must be 64 lowercase hex characters
 * (INVALID_ARGUMENT); NOT_FOUND when the pod does not exist; ALREADY_EXISTS
 * when the id or (pod_id, name, attempt) is taken (message names the
 * existing container's id). */
int hp_store_ctr_insert(hp_store *s, const hp_ctr_rec *c, hp_err *err);

/* The container with exactly this id.  NOT_FOUND when absent.
 * Returns a record owned by the caller (hp_ctr_rec_free), NULL on error. */
hp_ctr_rec *hp_store_ctr_get(hp_store *s, const char *id, hp_err *err);

/* The one container whose id starts with prefix; errors as for
 * hp_store_pod_lookup().  Returns a record owned by the caller
 * (hp_ctr_rec_free), NULL on error. */
hp_ctr_rec *hp_store_ctr_lookup(hp_store *s, const char *prefix, hp_err *err);

typedef struct hp_ctr_filter {
    const char *id_prefix;     /* NULL or "" = any */
    const char *pod_id_prefix; /* NULL or "" = any pod */
    bool has_state;
    int state;
    const hp_strmap *labels; /* every key=value must be among the container's labels */
} hp_ctr_filter;

/* Containers matching filter (NULL = all), oldest first.  Ownership as for
 * hp_store_pod_list(); free with hp_ctr_recs_free(). */
int hp_store_ctr_list(hp_store *s, const hp_ctr_filter *filter, hp_ctr_rec **out, size_t *n,
                      hp_err *err);

/* Write state, started_at, finished_at, exit_code, reason and message in one
 * statement.  NOT_FOUND when absent, INVALID_ARGUMENT for a bad state. */
int hp_store_ctr_set_status(hp_store *s, const char *id, const hp_ctr_status *st, hp_err *err);

/* Replace a container's backend_state (NULL allowed).  NOT_FOUND when absent. */
int hp_store_ctr_set_backend_state(hp_store *s, const char *id, const char *json, hp_err *err);

/* Delete a container.  NOT_FOUND when absent. */
int hp_store_ctr_delete(hp_store *s, const char *id, hp_err *err);

/* ---------------------------------------------------------------------------
 * Images and layers.  References (tags, digests) are stored as given: the
 * image module normalizes them ("busybox" -> "docker.io/library/busybox:latest")
 * before calling.
 */

/* Insert or update an image, in one transaction:
 *  - the scalar fields and the layer list are replaced;
 *  - every tag and repo digest in im is attached to this image, moving it
 *    away from whichever image had it (that image keeps its other tags and
 *    digests, and stays even if it has none left);
 *  - tags/digests this image already had and that im does not list are kept;
 *  - layers are registered in the layer table (see hp_store_layers_unreferenced).
 * INVALID_ARGUMENT when id is empty or a tag/digest is empty. */
int hp_store_image_upsert(hp_store *s, const hp_image_rec *im, hp_err *err);

/* The image with exactly this id.  NOT_FOUND when absent.
 * Returns a record owned by the caller (hp_image_rec_free), NULL on error. */
hp_image_rec *hp_store_image_get(hp_store *s, const char *id, hp_err *err);

/* Resolve a user reference: exact id, then tag, then repo digest, then a
 * unique id prefix ("sha256:ab12" or "ab12").  NOT_FOUND when nothing
 * matches, INVALID_ARGUMENT when the prefix is ambiguous.
 * Returns a record owned by the caller (hp_image_rec_free), NULL on error. */
hp_image_rec *hp_store_image_lookup(hp_store *s, const char *ref, hp_err *err);

/* Every image, oldest first; ownership as for hp_store_pod_list(); free
 * with hp_image_recs_free(). */
int hp_store_image_list(hp_store *s, hp_image_rec **out, size_t *n, hp_err *err);

/* Detach a tag (or repo digest reference) from its image; the image stays.
 * NOT_FOUND when no image has it. */
int hp_store_image_untag(hp_store *s, const char *ref, hp_err *err);

/* Delete an image with its tags, digests and layer references (the layers
 * themselves stay in the layer table for GC).  Does not check containers:
 * call hp_store_image_users() first.  NOT_FOUND when absent. */
int hp_store_image_delete(hp_store *s, const char *id, hp_err *err);

/* Number of containers whose image_ref is image_id. Returns 0, or -1. */
int hp_store_image_users(hp_store *s, const char *image_id, size_t *count, hp_err *err);

/* Layers that no image references any more (candidates for GC), each with
 * diff_id_in_use set when a referenced layer shares its diff_id.  Ownership
 * as for hp_store_pod_list(); free with hp_layer_recs_free(). */
int hp_store_layers_unreferenced(hp_store *s, hp_layer_rec **out, size_t *n, hp_err *err);

/* Forget a layer.  FAILED_PRECONDITION when an image references it again
 * (race with a pull: keep the blob), NOT_FOUND when absent. */
int hp_store_layer_delete(hp_store *s, const char *digest, hp_err *err);

/* ---------------------------------------------------------------------------
 * Settings (small key/value table, e.g. "pod_cidr").
 */

/* The value for key, owned by the caller (free()).  NULL with NOT_FOUND when
 * the key is absent, NULL with another code on error. */
char *hp_store_kv_get(hp_store *s, const char *key, hp_err *err);
/* Insert or replace. */
int hp_store_kv_set(hp_store *s, const char *key, const char *value, hp_err *err);
/* Remove; NOT_FOUND when absent. */
int hp_store_kv_delete(hp_store *s, const char *key, hp_err *err);

#endif
