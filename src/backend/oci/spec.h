/* OCI runtime-spec (config.json) generation for the oci backend.
 *
 * Pure functions apart from reading files named by the inputs: the rootfs's
 * etc/passwd and etc/group (user and group names are resolved in the image,
 * never on the host), a localhost seccomp profile, and stat() of device
 * nodes.  Nothing is run, nothing is written.  docs/oci-backend.md describes
 * every mapping rule.
 */
#ifndef HP_BACKEND_OCI_SPEC_H
#define HP_BACKEND_OCI_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "api.pb-c.h"
#include "util/err.h"

/* The parts of an OCI image config ("config" object of the image config
 * JSON) that shape a container's process.  All strings and arrays are owned
 * by the struct when it was filled by hp_oci_image_config_parse() (free with
 * hp_oci_image_config_clear()); callers that build one by hand may point at
 * their own storage and must then not call the clear function. */
typedef struct hp_oci_image_config {
    char **entrypoint;
    size_t n_entrypoint;
    char **cmd;
    size_t n_cmd;
    char **env; /* "KEY=VALUE" */
    size_t n_env;
    char *working_dir; /* NULL or "" = "/" */
    char *user;        /* "", "uid", "uid:gid", "name", "name:group" */
    char *stop_signal; /* NULL, "SIGTERM", "TERM" or "15" */
} hp_oci_image_config;

/* Fill *out from an OCI image config JSON text: either the whole image config
 * (with a "config" member) or just its "config" object.  Returns 0, or -1 with
 * INVALID_ARGUMENT (malformed JSON / wrong member types).  *out is owned by
 * the caller: hp_oci_image_config_clear(). */
int hp_oci_image_config_parse(const char *json_text, hp_oci_image_config *out, hp_err *err);
void hp_oci_image_config_clear(hp_oci_image_config *ic);

/* How the backend runs a container: everything the spec depends on that is
 * not in the CRI configs.  Strings are borrowed. */
typedef struct hp_oci_spec_opts {
    const char *root_path;  /* root.path in config.json (e.g. "rootfs" or an absolute path) */
    const char *rootfs_dir; /* host dir holding the image's etc/passwd (for user lookup) */
    bool rootfs_tmpfs;      /* image rootfs used read-only: add tmpfs on /tmp /run /var/tmp */
    /* rootless: overlay options "lowerdir=L,upperdir=U,workdir=W" of an
     * overlay the runtime mounts at "/" inside the container's user namespace
     * (first mount; root_path is then an empty directory); NULL = none */
    const char *root_overlay;
    const char *pod_dir; /* dir with hostname, hosts, resolv.conf, shm/ ; NULL = none */
    pid_t pause_pid;     /* pod's pause process (namespaces to join); 0 = none */
    pid_t target_pid;    /* for NamespaceMode TARGET (pid) */
    bool host_network;   /* the handler forces host networking */
    bool rootless;       /* user namespace, no device nodes, sysfs bind */
    uid_t uid;           /* daemon uid/gid (rootless mapping for container root) */
    gid_t gid;
    uint32_t subuid_start, subuid_len; /* extra mapping for container ids 1..len (0 = none) */
    uint32_t subgid_start, subgid_len;
    bool join_pause_userns;      /* rootless: join the pause's user namespace */
    const char *cgroups_path;    /* NULL = no cgroup management */
    int min_oom_score_adj;       /* the daemon's own oom_score_adj (lower bound) */
    const char *default_seccomp; /* "runtime/default" (NULL) or "unconfined" */
} hp_oci_spec_opts;

/* The config.json for a container.  img may be NULL (no image config).
 * Returns a new JSON object owned by the caller (json_decref), or NULL with
 * INVALID_ARGUMENT naming the offending field (relative path, unknown user,
 * unknown capability, no command, bad seccomp profile...). */
json_t *hp_oci_spec_container(const Runtime__V1__PodSandboxConfig *pod,
                              const Runtime__V1__ContainerConfig *cfg,
                              const hp_oci_image_config *img, const hp_oci_spec_opts *o,
                              hp_err *err);

/* The config.json for a pod's pause container: runs `pause_in_rootfs` (an
 * absolute path inside the root), owns the pod's IPC/UTS/PID (pid mode POD)
 * and network (unless host) namespaces.  The pause binary is expected to be
 * bind-mounted by the caller (see pause_host_path).  Returns a new JSON object
 * owned by the caller, or NULL with err filled. */
json_t *hp_oci_spec_pause(const Runtime__V1__PodSandboxConfig *pod, const char *pause_host_path,
                          const hp_oci_spec_opts *o, hp_err *err);

/* Resolve a user name in <rootfs>/etc/passwd.  Returns 0 with *uid and *gid set,
 * or -1 with INVALID_ARGUMENT (no such user / no passwd file). */
int hp_oci_lookup_user(const char *rootfs, const char *name, uid_t *uid, gid_t *gid, hp_err *err);
/* Resolve a group name in <rootfs>/etc/group; 0 or -1 with INVALID_ARGUMENT. */
int hp_oci_lookup_group(const char *rootfs, const char *name, gid_t *gid, hp_err *err);

/* Signal number for a CRI Signal enum value; 0 for RUNTIME_DEFAULT/unknown. */
int hp_oci_cri_signal(int cri_signal);
/* Signal number for "SIGTERM", "TERM" or "15"; 0 when unknown/NULL. */
int hp_oci_signal_by_name(const char *s);

/* The capability set a container gets: the default set (containerd's), then
 * add "ALL" = every capability, drop "ALL" = none, then the other adds and
 * drops.  Names with or without "CAP_", any case.  Returns a new JSON array
 * of "CAP_..." strings owned by the caller, or NULL with INVALID_ARGUMENT for
 * an unknown name. */
json_t *hp_oci_capabilities(const Runtime__V1__Capability *caps, bool privileged, hp_err *err);

/* The built-in runtime/default seccomp profile (new JSON object, caller owns),
 * relaxed for the capabilities present in `caps` (a JSON array as above). */
json_t *hp_oci_default_seccomp(const json_t *caps);

#endif
