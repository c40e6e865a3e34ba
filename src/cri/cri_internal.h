/* Private declarations shared by the CRI handler files (src/cri/). */
#ifndef HP_CRI_INTERNAL_H
#define HP_CRI_INTERNAL_H

#include <stddef.h>

#include "cri/daemon.h"
#include "rpc/rpc.h"

/* RuntimeReady condition: returns 1 when ready, else 0 with reason/message
 * filled. */
int hp_cri_runtime_ready(hp_daemon *d, char *reason, size_t reason_len, char *msg, size_t msg_len);

/* JSON text for Status(verbose) info["info"]; malloc'd, caller frees.
 * NULL with err on failure. */
char *hp_cri_status_info(hp_daemon *d, hp_err *err);

/* Validate a comma-separated list of CIDRs ("" is valid: unset). */
int hp_cri_validate_cidrs(const char *cidrs, hp_err *err);

/* Streaming implementations by method name, or NULL. */
hp_rpc_stream_fn hp_cri_stream_impl(const char *method);

/* pods.c */
int hp_cri_list_pod_sandbox(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_pod_sandbox_status(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_run_pod_sandbox(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);

/* containers.c */
int hp_cri_list_containers(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_container_status(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);

/* The image store directory (<root>/images), created if missing; malloc'd,
 * caller frees.  NULL with err on failure. */
char *hp_cri_image_dir(hp_daemon *d, hp_err *err);

/* Resolve a user's image reference (tag, digest, id or id prefix) to the
 * stored image, normalising familiar names ("busybox").  Returns a record the
 * caller frees with hp_image_rec_free(), or NULL with NOT_FOUND (or another
 * code on failure). */
hp_image_rec *hp_cri_image_find(hp_daemon *d, const char *ref, hp_err *err);

/* images.c */
int hp_cri_image_fs_info(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_list_images(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_image_status(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_pull_image(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_remove_image(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);

/* admin.c: hpcri's own service (proto/hpcri.proto) on the same socket, e.g.
 * image import.  Registers its methods on d->rpc. */
int hp_cri_register_admin(hp_daemon *d, hp_err *err);

#endif
