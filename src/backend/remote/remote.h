/* The "remote" backend: forwards ordinary pods to another CRI endpoint
 * (containerd, CRI-O, another hpcri) over a unix socket.  Design and limits:
 * docs/remote.md.
 *
 * hpcri stays the source of truth for the kubelet (its own ids and store
 * records); the remote's ids live in backend_state:
 *   pod:       {"remote_pod_id": "..."}
 *   container: {"remote_container_id": "...", "remote_pod_id": "..."}
 * Every forwarded pod and container also carries the label
 * HP_REMOTE_LABEL_POD / HP_REMOTE_LABEL_CTR with hpcri's own id, so that the
 * remote objects can be found again without backend_state (a container
 * create after a restart, cleanup after a call that timed out).
 */
#ifndef HP_BACKEND_REMOTE_REMOTE_H
#define HP_BACKEND_REMOTE_REMOTE_H

#include <stdint.h>

#include "backend/backend.h"
#include "config/config.h"

#define HP_REMOTE_LABEL_POD "io.hpcri.front-pod-id"
#define HP_REMOTE_LABEL_CTR "io.hpcri.front-container-id"

/* Create a remote backend instance for handler h (type remote): reads
 * endpoint, image_endpoint, timeout_ms (and remote_handler when the config
 * knows that key).  Does not connect: an unreachable endpoint is reported by
 * each call (UNAVAILABLE naming the endpoint), so the daemon starts while the
 * remote is down.  Returns a new instance owned by the caller
 * (be->ops->destroy), or NULL with INVALID_ARGUMENT for a bad endpoint. */
hp_backend *hp_remote_backend_new(const hp_handler_config *h, const hp_backend_env *env,
                                  hp_err *err);

/* Connections opened and calls made so far on the runtime endpoint (tests). */
uint64_t hp_remote_backend_connects(hp_backend *be);
uint64_t hp_remote_backend_calls(hp_backend *be);

#endif
