/* Safe application of an OCI image layer (a tar stream, optionally gzip or
 * zstd compressed) onto a directory: the flattened root file system being
 * built, layers applied in order.
 *
 * Layers are untrusted input.  Guarantees:
 *
 *  - Nothing is created, modified or removed outside the target directory.
 *    Entry names are cleaned lexically: leading '/' and "." components are
 *    dropped, "a/../b" becomes "b"; a name that climbs above the root
 *    ("../x", "a/../../x") fails the whole layer with INVALID_ARGUMENT.
 *  - Symlinks are never followed while writing.  Every parent directory is
 *    reached from the target dirfd with openat2(RESOLVE_BENEATH |
 *    RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) when the kernel has it, else
 *    by a component-by-component openat(O_NOFOLLOW | O_DIRECTORY) walk; both
 *    give the same result.  (RESOLVE_IN_ROOT is deliberately not used: it would
 *    follow a symlink, clamped to the root, which changes what a layer means.)
 *    An entry whose parent path contains a symlink ("evil -> /tmp/x" then
 *    "evil/pwned") fails the layer with INVALID_ARGUMENT.  Image builders never
 *    produce such entries (a layer diff records real paths).
 *  - Missing parent directories are created with mode 0755.
 *  - An existing entry is replaced (unlinked, or removed recursively when it is
 *    a directory), except that a directory over a directory is merged and
 *    takes the new metadata.  Regular files are created with O_CREAT|O_EXCL|
 *    O_NOFOLLOW after removing what was there, so a file written over a symlink
 *    replaces the link and never writes through it.
 *  - Symlinks are created with their target as-is (absolute or relative) and
 *    are never followed afterwards.
 *  - Hard links: the target is cleaned like an entry name (so "/etc/passwd"
 *    means <root>/etc/passwd) and must already exist in the target, reached
 *    without symlinks and without climbing out; otherwise INVALID_ARGUMENT.
 *    A link to a symlink links the symlink itself.
 *  - Whiteouts (OCI image spec, layer.md): ".wh.NAME" removes NAME coming from
 *    lower layers; ".wh..wh..opq" removes everything the lower layers put in
 *    that directory.  Both only ever affect lower content: entries this layer
 *    itself creates survive, whatever the order of the tar (opaque marker
 *    before or after the directory's new entries).  Other ".wh..wh." names
 *    (aufs metadata) are ignored.  A whiteout naming ".", ".." or "" fails the
 *    layer.
 *  - Ownership and permissions: as root, uid/gid are applied with fchown/
 *    lchown and the full mode (setuid, setgid, sticky) is kept.  Unprivileged
 *    (euid != 0, or opts->rootless), the entries are owned by the calling user,
 *    the uid/gid in the tar are ignored, and setuid/setgid bits are dropped
 *    (a user-owned setuid file would let others run code as this user).
 *  - Device nodes are created as root and skipped (counted in st->skipped,
 *    debug log) when unprivileged.  FIFOs need no privilege and are always
 *    created.  Sockets and unknown types are skipped and counted.
 *  - Extended attributes: "user.*" always, and "security.capability" as root
 *    (file capabilities such as ping's cap_net_raw), are applied to regular
 *    files and directories; failure with ENOTSUP/EPERM is ignored (debug log).
 *    All other namespaces (trusted.*, security.selinux, POSIX ACLs) are
 *    ignored: they grant privileges or need policy this runtime does not own.
 *  - Directory modes and times are applied after the whole layer is written
 *    (a 0555 directory can still receive its entries).
 *  - Limits: opts->max_bytes bounds both the uncompressed tar stream and the
 *    sum of regular file sizes; opts->max_entries bounds the number of tar
 *    headers.  Exceeding either fails with RESOURCE_EXHAUSTED.  A corrupt or
 *    truncated archive fails with DATA_LOSS.
 *
 * Contract: on failure the target is left partly written.  Callers unpack into
 * a private temporary directory and rename it into place only on success
 * (hp_content_layer_unpack does this), so a failed unpack is never visible.
 * The target must not be modified concurrently by anyone else.
 *
 * Compression: gzip, zstd and uncompressed tar are supported, using
 * libarchive's built-in filters only (archive_read_support_filter_all would
 * also enable filters that exec external programs on untrusted input).
 */
#ifndef HP_IMAGE_UNPACK_H
#define HP_IMAGE_UNPACK_H

#include <stdint.h>

#include "util/err.h"

#define HP_UNPACK_DEFAULT_MAX_BYTES   (64ull << 30) /* 64 GiB */
#define HP_UNPACK_DEFAULT_MAX_ENTRIES 4000000ull

typedef struct hp_unpack_opts {
    uint64_t max_bytes;   /* 0: HP_UNPACK_DEFAULT_MAX_BYTES; UINT64_MAX: no limit */
    uint64_t max_entries; /* 0: HP_UNPACK_DEFAULT_MAX_ENTRIES; UINT64_MAX: no limit */
    int rootless;         /* behave as unprivileged even when euid is 0 */
    int no_openat2;       /* use the manual O_NOFOLLOW walk only (tests; seccomp'd hosts) */
    const char *diffid;   /* when set ("sha256:<hex>"), the uncompressed stream must
                             hash to it, else DATA_LOSS */
} hp_unpack_opts;

typedef struct hp_unpack_stats {
    uint64_t entries;      /* tar headers read */
    uint64_t files;        /* regular files written */
    uint64_t dirs;         /* directories created or updated */
    uint64_t symlinks;     /* symlinks created */
    uint64_t hardlinks;    /* hard links created */
    uint64_t devices;      /* device nodes and fifos created */
    uint64_t whiteouts;    /* whiteout and opaque markers applied */
    uint64_t skipped;      /* entries not created (devices when unprivileged, sockets) */
    uint64_t bytes;        /* regular file content bytes (logical sizes) */
    uint64_t stream_bytes; /* uncompressed tar stream length */
    char diffid[72];       /* "sha256:<hex>" of the uncompressed stream */
} hp_unpack_stats;

/* Apply the layer read from layer_fd (read to its end; not closed) onto the
 * directory target_dirfd.  opts may be NULL for defaults; st may be NULL.
 * Returns 0, or -1 with err filled (see the codes above).  No allocation
 * outlives the call. */
int hp_unpack_layer(int target_dirfd, int layer_fd, const hp_unpack_opts *opts, hp_unpack_stats *st,
                    hp_err *err);

/* Convenience: open target_dir (must exist, a directory, not a symlink) and
 * layer_path and call hp_unpack_layer. */
int hp_unpack_layer_path(const char *target_dir, const char *layer_path, const hp_unpack_opts *opts,
                         hp_unpack_stats *st, hp_err *err);

/* Remove `name` under dirfd recursively without following symlinks (like
 * rm -rf, confined to the tree).  A missing name is not an error.  Returns 0 or
 * -1 with err filled. */
int hp_remove_tree_at(int dirfd, const char *name, hp_err *err);

#endif
