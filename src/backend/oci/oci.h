/* The "oci" backend: pods and containers run locally by an OCI runtime (runc)
 * under conmon.  The "charliecloud" handler type uses the same code forced
 * rootless, with host networking and no cgroups.  Design: docs/oci-backend.md.
 */
#ifndef HP_BACKEND_OCI_OCI_H
#define HP_BACKEND_OCI_OCI_H

#include <stdbool.h>

#include "backend/backend.h"
#include "config/config.h"

/* Create an oci (or charliecloud, by h->type) backend instance.  Checks that
 * the runtime and conmon programs exist (FAILED_PRECONDITION naming them),
 * creates <env->root>/oci and <env->run_dir>/oci, and, when env->watch_fd is
 * set, watches the exit directory and reports every container exit once
 * through env->host.on_container_exit.  Returns a new instance owned by the
 * caller (be->ops->destroy), or NULL with err filled. */
hp_backend *hp_oci_backend_new(const hp_handler_config *h, const hp_backend_env *env, hp_err *err);

/* Report, through host.on_container_exit, every container that has an exit
 * file (exited, possibly while the daemon was down).  The CRI layer ignores
 * exits it already recorded.  Returns the number reported, or -1 with err. */
int hp_oci_scan_exits(hp_backend *be, hp_err *err);

/* Drain the exit directory's inotify fd and report new exits: what the
 * watch_fd callback does; unit tests without an event loop call it. Returns
 * the number of exits reported. */
int hp_oci_poll_exits(hp_backend *be);

/* Open a file of a container by its path inside the container (e.g. the
 * termination message path) for reading, after the container exited or while
 * it runs.  Paths under a bind mount of the container config resolve in the
 * mount's host directory, others in the container's root filesystem; symlinks
 * are resolved inside that root (openat2 RESOLVE_IN_ROOT), never on the host.
 * Returns an O_RDONLY fd owned by the caller, or -1 with NOT_FOUND. */
int hp_oci_open_container_file(hp_backend *be, const char *container_id, const char *path,
                               hp_err *err);

#endif
