/* The image helper: pulls and imports run in a separate process.
 *
 * Registry traffic (libcurl + TLS), layer archives (libarchive) and local
 * image archives are untrusted input handled by library-heavy code.  The
 * daemon does not link any of it: for each PullImage / ImportImage it runs
 * `hpcri-image` (fork + execve, no shell), found next to the daemon's own
 * executable or at $HPCRI_IMAGE_HELPER.  That keeps those libraries out of
 * the daemon's memory (docs/ARCHITECTURE.md, "Memory") and is privilege
 * separation of a kind: a parser bug in the helper cannot corrupt the
 * daemon's state; the helper never opens the state database.
 *
 * Protocol (one JSON document per line, src/image/helper.c):
 *   stdin  <- the request: {"op":"pull"|"import", "root", "log_level", ...}
 *             then EOF (credentials never go on the command line);
 *   stdout -> {"progress":{...}}*, then {"image":{...}} or {"error":{...}};
 *   stderr -> the helper's log lines, inherited from the daemon.
 * The helper writes blobs and chain dirs into the content store itself
 * (temp file + verify + rename, per-digest flock: safe across processes);
 * the daemon checks what the "image" message names exists, then records the
 * image in the state store, and only after the helper exited 0.  A helper
 * that dies, lies or is killed leaves no record.
 *
 * Threads: any; each call runs its own helper process.
 */
#ifndef HP_IMAGE_HELPER_H
#define HP_IMAGE_HELPER_H

#include <stdatomic.h>

#include "config/config.h"
#include "image/pull.h"
#include "image/service.h"
#include "store/store.h"
#include "util/err.h"

struct hp_image_new;

/* The helper binary: $HPCRI_IMAGE_HELPER when set and not empty, else
 * "hpcri-image" in the directory of /proc/self/exe.  Returns a malloc'd path
 * the caller frees, or NULL on ENOMEM. */
char *hp_image_helper_find(void);

/* Request documents (malloc'd JSON text the caller frees; NULL with err on
 * ENOMEM).  cfg is only read during the call (hold the config lock).  auth may
 * be NULL.  root is the daemon's state dir (the store is <root>/images). */
char *hp_image_helper_pull_request(const hp_config *cfg, const char *root, const char *image,
                                   const struct hp_pull_auth *auth, hp_err *err);
char *hp_image_helper_import_request(const char *root, const char *path, const char *name,
                                     const char *platform, hp_err *err);

/* Run helper `helper` with `request` and record the image it reports in svc's
 * state store.  Brackets the run with hp_image_op_begin/end (no GC while it
 * runs).  progress (may be NULL) gets the helper's reports; the DONE report
 * comes from here, after the image is recorded.  When *cancel becomes true
 * (RPC cancelled, deadline passed) the helper is killed (SIGKILL by pid) and
 * reaped, and the call fails with CANCELLED.  On success *image_id is
 * malloc'd and, when tags is not NULL, *tags holds the image's new repo tags
 * (the caller frees both: free(), hp_strlist_clear()). */
int hp_image_helper_run(hp_image_service *svc, const char *helper, const char *request,
                        const atomic_bool *cancel, hp_pull_progress_fn progress, void *progress_ud,
                        char **image_id, hp_strlist *tags, hp_err *err);

/* --- the helper's side (src/imagehelper/main.c) --------------------------- */

/* One output line for a progress report / the finished image / an error.
 * Returns malloc'd text ending in '\n' that the caller frees, or NULL on ENOMEM. */
char *hp_image_helper_progress_line(const struct hp_pull_progress *p);
char *hp_image_helper_image_line(const struct hp_image_new *im);
char *hp_image_helper_error_line(const hp_err *e);

#endif
