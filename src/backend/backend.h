/* The backend interface: what every runtime handler type implements.
 *
 * The CRI layer (src/cri) validates requests, owns the state store and the
 * ids, and calls exactly one backend instance per pod, chosen by the pod's
 * RuntimeClass handler from the config.  Nothing above src/backend knows which
 * kind of backend it talks to: all it sees is this ops table.
 *
 * Conventions:
 *  - Every op returns 0 or -1 with `err` filled (gRPC status code + message).
 *  - Ops may block (they run on the worker pool), except `container_status`
 *    and `sandbox_status`, which must answer from cached state quickly because
 *    the kubelet polls them.
 *  - A backend persists what it needs to re-attach after a daemon restart in
 *    the record's `backend_state` (a JSON string it owns the format of); the
 *    CRI layer stores it in the same transaction as the state change.
 *  - Exits and other state changes discovered asynchronously are reported
 *    through `hp_backend_host.on_container_exit` so that the CRI layer can
 *    update the store and emit GetContainerEvents.
 */
#ifndef HP_BACKEND_BACKEND_H
#define HP_BACKEND_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "api.pb-c.h"
#include "util/err.h"

typedef struct hp_backend hp_backend;

/* What a backend needs to know about a pod: ids plus the decoded CRI config. */
typedef struct hp_be_pod {
    const char *id;
    const Runtime__V1__PodSandboxConfig *config;
    const char *handler;
    char *backend_state; /* in: last persisted JSON (may be NULL); out: new JSON (malloc'd, the
                            CRI layer takes ownership) */
} hp_be_pod;

typedef struct hp_be_container {
    const char *id;
    const char *pod_id;
    const Runtime__V1__ContainerConfig *config;
    const Runtime__V1__PodSandboxConfig *pod_config;
    const char *image_id;          /* resolved image id (sha256:...) */
    const char *rootfs_hint;       /* image rootfs prepared by the image service, or NULL */
    const char *image_config_json; /* the image's OCI config JSON (entrypoint, env, user...),
                                      or NULL */
    const char *log_path;          /* absolute CRI log path, or NULL */
    char *backend_state;           /* as for hp_be_pod */
} hp_be_container;

/* Observed runtime state of a container. */
typedef struct hp_be_status {
    int state;           /* Runtime__V1__ContainerState */
    int64_t started_at;  /* unix ns, 0 if not started */
    int64_t finished_at; /* unix ns, 0 if running */
    int32_t exit_code;
    char reason[64]; /* "Completed", "Error", "OOMKilled", or a backend-specific reason */
    char message[512];
} hp_be_status;

/* Resource usage of one container; a field the backend cannot measure is
 * left at 0 and its has_ flag false (never a made-up number). */
typedef struct hp_be_stats {
    int64_t timestamp; /* unix ns when measured */
    bool has_cpu;
    uint64_t cpu_usage_ns; /* cumulative CPU time */
    bool has_memory;
    uint64_t memory_working_set; /* bytes: usage minus inactive file cache */
    uint64_t memory_rss;         /* bytes */
    uint64_t memory_usage;       /* bytes */
    bool has_writable_layer;
    uint64_t writable_bytes; /* container's writable layer */
    uint64_t writable_inodes;
    char writable_mountpoint[256];
} hp_be_stats;

typedef struct hp_be_exec_result {
    uint8_t *out; /* malloc'd stdout, owned by the caller after the call */
    size_t out_len;
    uint8_t *errout; /* malloc'd stderr */
    size_t err_len;
    int32_t exit_code;
} hp_be_exec_result;

/* Callbacks from a backend into the CRI layer; any thread. */
typedef struct hp_backend_host {
    void *ud;
    void (*on_container_exit)(void *ud, const char *container_id, const hp_be_status *st);
} hp_backend_host;

typedef struct hp_backend_ops {
    const char *type; /* "oci", "slurm", "remote", "charliecloud" */
    /* The backend keeps its own images (e.g. a remote CRI endpoint): the CRI
     * layer then skips the local image lookup at CreateContainer and passes
     * the reference as given in hp_be_container.image_id. */
    bool own_images;

    /* Pod sandbox. run creates the pod's shared environment; stop is idempotent
     * and stops every container of the pod; remove frees all of it. */
    int (*sandbox_run)(hp_backend *be, hp_be_pod *pod, hp_err *err);
    int (*sandbox_stop)(hp_backend *be, hp_be_pod *pod, hp_err *err);
    int (*sandbox_remove)(hp_backend *be, hp_be_pod *pod, hp_err *err);
    /* Fill info (JSON, malloc'd, caller frees) for verbose status; may be NULL. */
    int (*sandbox_status)(hp_backend *be, hp_be_pod *pod, bool *ready, char **info, hp_err *err);

    /* Containers. */
    int (*container_create)(hp_backend *be, hp_be_container *c, hp_err *err);
    int (*container_start)(hp_backend *be, hp_be_container *c, hp_err *err);
    int (*container_stop)(hp_backend *be, hp_be_container *c, int64_t timeout_s, hp_err *err);
    int (*container_remove)(hp_backend *be, hp_be_container *c, hp_err *err);
    int (*container_status)(hp_backend *be, hp_be_container *c, hp_be_status *st, hp_err *err);
    /* Stats: plain numbers; the CRI layer builds the CRI message. */
    int (*container_stats)(hp_backend *be, hp_be_container *c, hp_be_stats *out, hp_err *err);
    int (*exec_sync)(hp_backend *be, hp_be_container *c, char *const *argv, size_t argc,
                     int64_t timeout_s, hp_be_exec_result *res, hp_err *err);
    int (*reopen_log)(hp_backend *be, hp_be_container *c, hp_err *err);
    int (*update_resources)(hp_backend *be, hp_be_container *c,
                            const Runtime__V1__LinuxContainerResources *res, hp_err *err);

    /* Streaming (Exec, Attach, PortForward; src/stream).  A backend either
     * says how the daemon's streaming server reaches the container, or, when
     * it has its own streaming server (remote), answers with its URL.  Any
     * of these may be NULL: the call then answers UNIMPLEMENTED.
     *
     * exec_command: the host command whose stdio becomes the process's: argv
     * run in the container (on a terminal when tty).  *out is a malloc'd
     * NULL-terminated array of malloc'd strings, owned by the caller. */
    int (*exec_command)(hp_backend *be, hp_be_container *c, char *const *argv, size_t argc,
                        bool tty, char ***out, hp_err *err);
    /* attach_target: the monitor's attach socket, control fifo (resizes) and
     * exit file; malloc'd strings owned by the caller. */
    int (*attach_target)(hp_backend *be, hp_be_container *c, char **socket, char **control,
                         char **exit_file, hp_err *err);
    /* forward_netns: the pod's network namespace to connect in (*netns
     * malloc'd, owned by the caller), or *netns NULL for the host's. */
    int (*forward_netns)(hp_backend *be, hp_be_pod *pod, char **netns, hp_err *err);
    /* stream_url: forward the decoded CRI request (an ExecRequest or
     * AttachRequest for container c, or a PortForwardRequest for pod, the
     * other one NULL) and return the URL the backend's own server answered
     * (malloc'd, owned by the caller). */
    int (*stream_url)(hp_backend *be, hp_be_container *c, hp_be_pod *pod,
                      const ProtobufCMessage *req, char **url, hp_err *err);

    /* Tear down the instance (not the containers: they outlive the daemon). */
    void (*destroy)(hp_backend *be);
} hp_backend_ops;

/* Every backend instance starts with this header. */
struct hp_backend {
    const hp_backend_ops *ops;
    char *handler; /* RuntimeClass handler name ("" = default), owned */
    hp_backend_host host;
};

/* What the daemon gives a backend at creation.  Strings are borrowed and
 * outlive the backend. */
typedef struct hp_backend_env {
    const char *root;       /* daemon state dir (bundles go under <root>/<type>/...) */
    const char *run_dir;    /* runtime dir (exit files, attach sockets, pid files) */
    const char *pause_path; /* hpcri-pause binary */
    uid_t uid;              /* uid the daemon runs as */
    hp_backend_host host;
    /* Put an fd into the daemon's event loop (EPOLLIN); cb runs on the loop
     * thread and must not block. NULL in unit tests: poll instead. */
    int (*watch_fd)(void *loop_ud, int fd, void (*cb)(void *ud, int fd, uint32_t events),
                    void *cb_ud, hp_err *err);
    void *loop_ud;
} hp_backend_env;

struct hp_handler_config;

/* Create the backend instance for a configured handler (switches on its
 * type).  Returns a new instance owned by the caller (be->ops->destroy), or
 * NULL with UNIMPLEMENTED when this build has no such backend type yet, or
 * another error when the handler's prerequisites are missing (e.g. runtime
 * binary not found: FAILED_PRECONDITION naming it). */
hp_backend *hp_backend_new(const struct hp_handler_config *h, const hp_backend_env *env,
                           hp_err *err);

#endif
