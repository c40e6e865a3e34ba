/* Private declarations shared by the CRI handler files (src/cri/). */
#ifndef HP_CRI_INTERNAL_H
#define HP_CRI_INTERNAL_H

#include <stddef.h>

#include "cri/daemon.h"
#include "rpc/rpc.h"
#include "store/store.h"
#include "api.pb-c.h"

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

int hp_cri_stop_pod_sandbox(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_remove_pod_sandbox(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
/* Decode a stored pod config; caller frees with
 * runtime__v1__pod_sandbox_config__free_unpacked (or _cleanup_pb_). */
Runtime__V1__PodSandboxConfig *hp_cri_pod_config(const hp_pod_rec *p, hp_err *err);

/* containers.c */
int hp_cri_list_containers(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_container_status(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_create_container(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_start_container(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_stop_container_rpc(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_remove_container(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_exec_sync(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_exec(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_attach(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_port_forward(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_reopen_container_log(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
/* Decode a stored container config; caller frees it like hp_cri_pod_config. */
Runtime__V1__ContainerConfig *hp_cri_ctr_config(const hp_ctr_rec *c, hp_err *err);
/* Stop a running container (grace timeout_s), persist its exit, emit the event. */
int hp_cri_stop_container(hp_daemon *d, const hp_ctr_rec *c, int64_t timeout_s, hp_err *err);
/* Stop if needed, remove through the backend, delete the record, emit the event. */
int hp_cri_remove_container_rec(hp_daemon *d, const hp_ctr_rec *c, hp_err *err);
/* Backend stats for one container. */
int hp_cri_container_stats_raw(hp_daemon *d, const hp_ctr_rec *c, hp_be_stats *st, hp_err *err);
/* Create the parent directories of path (mode 0755). */
int hp_cri_mkdir_parent(const char *path, hp_err *err);
/* hp_backend_host.on_container_exit for every backend. */
void hp_cri_on_container_exit(void *ud, const char *container_id, const hp_be_status *st);

/* Start-up recovery: ask the backends about every container the store says
 * is running and record the exits that happened while hpcri was down. */
int hp_cri_reconcile(hp_daemon *d, hp_err *err);

/* stats.c */
int hp_cri_container_stats(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_list_container_stats(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_pod_sandbox_stats(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);
int hp_cri_list_pod_sandbox_stats(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err);

/* backends.c: the backend for a RuntimeClass handler, created on first use.
 * The pointer stays valid until hp_cri_backends_free (daemon shutdown). */
hp_backend *hp_cri_backend(hp_daemon *d, const char *handler, hp_err *err);
/* SIGHUP: handlers whose settings changed get a fresh instance on next use. */
void hp_cri_backends_retire(hp_daemon *d, const hp_config *old, const hp_config *next);
void hp_cri_backends_free(hp_daemon *d);

/* events.c */
void hp_cri_emit(hp_daemon *d, int type, const char *container_id, const char *pod_id);
void hp_cri_events_free(hp_daemon *d);

/* The read-only rootfs directory of an image for a container's lower layer
 * (malloc'd, caller frees), or NULL with err->code == HP_OK when the image
 * service has none for it, or NULL with an error. */
char *hp_cri_image_rootfs(hp_daemon *d, const char *image_id, hp_err *err);

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
