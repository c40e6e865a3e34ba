#include "image/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/log.h"

#define READ_BLOCK (1024 * 1024)
/* Start writeback of a regular file every this many bytes. */
#define WRITEBACK_CHUNK ((int64_t)8 << 20)

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define WH_META   ".wh..wh."

/* ---- a string set: paths this layer created (and their ancestors) ---- */

enum { P_UNPACKED = 1, P_ANCESTOR = 2, P_META_DONE = 4 };

struct pslot {
    char *key;
    int flags;
};

struct pathset {
    struct pslot *slots;
    size_t cap, len;
};

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void pathset_free(struct pathset *ps)
{
    for (size_t i = 0; i < ps->cap; i++)
        free(ps->slots[i].key);
    free(ps->slots);
    memset(ps, 0, sizeof *ps);
}

static struct pslot *pathset_find(const struct pathset *ps, const char *k, size_t n)
{
    if (ps->cap == 0)
        return NULL;
    for (size_t i = fnv1a(k, n) & (ps->cap - 1);; i = (i + 1) & (ps->cap - 1)) {
        struct pslot *s = &ps->slots[i];
        if (s->key == NULL)
            return s;
        if (strncmp(s->key, k, n) == 0 && s->key[n] == '\0')
            return s;
    }
}

static int pathset_get(const struct pathset *ps, const char *k, size_t n)
{
    struct pslot *s = pathset_find(ps, k, n);
    return s && s->key ? s->flags : 0;
}

static int pathset_grow(struct pathset *ps)
{
    struct pathset nps = {0};
    nps.cap = ps->cap ? ps->cap * 2 : 1024;
    nps.slots = calloc(nps.cap, sizeof *nps.slots);
    if (nps.slots == NULL)
        return -1;
    for (size_t i = 0; i < ps->cap; i++) {
        if (ps->slots[i].key) {
            struct pslot *s = pathset_find(&nps, ps->slots[i].key, strlen(ps->slots[i].key));
            *s = ps->slots[i];
        }
    }
    nps.len = ps->len;
    free(ps->slots);
    *ps = nps;
    return 0;
}

/* OR `flags` into the entry for k[0..n).  Returns the previous flags, or -1 on ENOMEM. */
static int pathset_add(struct pathset *ps, const char *k, size_t n, int flags)
{
    struct pslot *s;
    int old;
    if ((ps->len + 1) * 2 > ps->cap && pathset_grow(ps) < 0)
        return -1;
    s = pathset_find(ps, k, n);
    if (s->key == NULL) {
        s->key = strndup(k, n);
        if (s->key == NULL)
            return -1;
        s->flags = 0;
        ps->len++;
    }
    old = s->flags;
    s->flags |= flags;
    return old;
}

/* ---- context ---- */

struct dirmeta {
    char *rel;
    size_t seq;   /* push order */
    size_t depth; /* number of '/' in rel */
    mode_t perm;
    struct timespec times[2];
};

struct ctx {
    int root;
    int privileged;
    int have_openat2;
    int finishing; /* applying directory metadata: the list must not grow */
    uint64_t max_bytes, max_entries;
    hp_unpack_stats *st;
    struct pathset set;
    /* parent directory cache: the last parent opened (owned fd) */
    char *cache_rel;
    int cache_fd;
    struct dirmeta *dirs;
    size_t ndirs, capdirs;
    /* outer archive: decompression (format raw), hashed; inner: tar over it */
    struct archive *outer;
    EVP_MD_CTX *md;
    hp_err stream_err; /* set by the inner read callback */
};

static void cache_drop(struct ctx *c)
{
    if (c->cache_fd >= 0)
        close(c->cache_fd);
    c->cache_fd = -1;
    free(c->cache_rel);
    c->cache_rel = NULL;
}

/* ---- paths ---- */

/* Clean `in` lexically into out (relative, no leading '/', no "." or ".."
 * components, "" for the root).  Returns 0, or -1 with err set when the name
 * climbs above the root or is too long. */
static int clean_path(const char *what, const char *in, char *out, size_t outsz, hp_err *err)
{
    size_t len = 0;
    const char *p = in;
    while (*p) {
        const char *e;
        size_t n;
        while (*p == '/')
            p++;
        if (!*p)
            break;
        e = strchrnul(p, '/');
        n = (size_t)(e - p);
        if (n == 1 && p[0] == '.') {
            /* skip */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            char *slash;
            if (len == 0)
                return hp_err_set(err, HP_INVALID_ARGUMENT,
                                  "layer %s \"%.512s\" escapes the root directory", what, in);
            out[len] = '\0';
            slash = strrchr(out, '/');
            len = slash ? (size_t)(slash - out) : 0;
        } else {
            if (len + (len ? 1 : 0) + n + 1 > outsz)
                return hp_err_set(err, HP_INVALID_ARGUMENT, "layer %s \"%.512s\" is too long", what,
                                  in);
            if (len)
                out[len++] = '/';
            memcpy(out + len, p, n);
            len += n;
        }
        p = e;
    }
    out[len] = '\0';
    return 0;
}

static int sys_openat2(int dirfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)flags,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static int push_dirmeta(struct ctx *c, const char *rel, mode_t perm, const struct timespec t[2])
{
    if (c->ndirs == c->capdirs) {
        size_t ncap = c->capdirs ? c->capdirs * 2 : 64;
        struct dirmeta *n = realloc(c->dirs, ncap * sizeof *n);
        if (n == NULL)
            return -1;
        c->dirs = n;
        c->capdirs = ncap;
    }
    c->dirs[c->ndirs].rel = strdup(rel);
    if (c->dirs[c->ndirs].rel == NULL)
        return -1;
    c->dirs[c->ndirs].seq = c->ndirs;
    c->dirs[c->ndirs].depth = 0;
    for (const char *q = rel; *q; q++)
        c->dirs[c->ndirs].depth += *q == '/';
    c->dirs[c->ndirs].perm = perm;
    c->dirs[c->ndirs].times[0] = t[0];
    c->dirs[c->ndirs].times[1] = t[1];
    c->ndirs++;
    return 0;
}

/* Unprivileged: a lower directory we own may lack search or read permission
 * for us (cur when it lacks u+x, or the component p when it lacks u+r).  Give
 * it u+rwx now and record its mode for restoring at the end.  buf holds the
 * path with p at its end.  Returns 0 (errno EACCES when nothing could be done),
 * or -1 with err set. */
static int unlock_component(struct ctx *c, int cur, char *buf, char *p, hp_err *err)
{
    struct stat sb;
    if (cur != c->root && fstat(cur, &sb) == 0 && (sb.st_mode & 0700) != 0700) {
        struct timespec t[2] = {sb.st_atim, sb.st_mtim};
        p[-1] = '\0';
        if (push_dirmeta(c, buf, sb.st_mode & 07777, t) < 0) {
            p[-1] = '/';
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        }
        p[-1] = '/';
        if (fchmod(cur, (sb.st_mode & 07777) | 0700) < 0)
            return hp_err_sys(err, HP_INTERNAL, "make \"%.512s\" searchable", buf);
    } else if (fstatat(cur, p, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode) &&
               (sb.st_mode & 0700) != 0700) {
        struct timespec t[2] = {sb.st_atim, sb.st_mtim};
        if (push_dirmeta(c, buf, sb.st_mode & 07777, t) < 0)
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        /* a directory (checked just above) in the private target */
        if (fchmodat(cur, p, (sb.st_mode & 07777) | 0700, 0) < 0)
            return hp_err_sys(err, HP_INTERNAL, "make \"%.512s\" readable", buf);
    }
    errno = EACCES;
    return 0;
}

/* Open the directory `rel` (relative to the root, "" = root) without following
 * any symlink.  With create, missing components are made (0755) and recorded as
 * ancestors of this layer's entries.  Returns a new fd owned by the caller; -1
 * with err set.  When !create and a component is missing, err is NOT_FOUND. */
static int walk(struct ctx *c, const char *rel, int create, const char *entry, hp_err *err)
{
    char buf[PATH_MAX];
    int cur;
    char *p;

    if (*rel == '\0') {
        /* A fresh open file description: callers may readdir it. */
        cur = openat(c->root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cur < 0)
            return hp_err_sys(err, HP_INTERNAL, "open target directory");
        return cur;
    }
    if (c->have_openat2) {
        int fd = sys_openat2(c->root, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno == ENOSYS || errno == E2BIG || errno == EPERM)
            c->have_openat2 = 0;
        /* Anything else (ENOENT, ELOOP, ENOTDIR, EAGAIN, EXDEV): the manual walk
         * creates what is missing and names the offending component. */
    }
    snprintf(buf, sizeof buf, "%s", rel);
    cur = c->root;
    p = buf;
    while (1) {
        char *slash = strchr(p, '/');
        int nfd;
        if (slash)
            *slash = '\0';
        nfd = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0 && errno == ENOENT && create) {
            if (mkdirat(cur, p, 0755) < 0 && errno != EEXIST) {
                hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": mkdir \"%.512s\"", entry,
                           buf);
                goto fail;
            }
            if (pathset_add(&c->set, buf, strlen(buf), P_ANCESTOR) < 0) {
                hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
                goto fail;
            }
            nfd = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (nfd < 0 && errno == EACCES && !c->privileged && !c->finishing &&
            unlock_component(c, cur, buf, p, err) < 0)
            goto fail;
        if (nfd < 0 && errno == EACCES && !c->privileged && !c->finishing)
            nfd = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0) {
            struct stat sb;
            int saved = errno;
            if (saved == ENOENT && !create) {
                hp_err_set(err, HP_NOT_FOUND, "layer entry \"%.512s\": \"%.512s\" does not exist",
                           entry, buf);
            } else if ((saved == ELOOP || saved == ENOTDIR) &&
                       fstatat(cur, p, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
                if (S_ISLNK(sb.st_mode))
                    hp_err_set(err, HP_INVALID_ARGUMENT,
                               "layer entry \"%.512s\": refusing to follow the symlink \"%.512s\" "
                               "in its path",
                               entry, buf);
                else
                    hp_err_set(err, HP_INVALID_ARGUMENT,
                               "layer entry \"%.512s\": \"%.512s\" is not a directory", entry, buf);
            } else {
                errno = saved;
                hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": open \"%.512s\"", entry, buf);
            }
            goto fail;
        }
        if (cur != c->root)
            close(cur);
        cur = nfd;
        if (!slash)
            break;
        *slash = '/';
        p = slash + 1;
    }
    return cur;
fail:
    if (cur != c->root)
        close(cur);
    return -1;
}

/* The parent directory of an entry, cached.  Returns a borrowed fd or -1. */
static int parent_fd(struct ctx *c, const char *rel, int create, const char *entry, hp_err *err)
{
    int fd;
    if (*rel == '\0')
        return c->root;
    if (c->cache_rel && strcmp(c->cache_rel, rel) == 0)
        return c->cache_fd;
    cache_drop(c);
    fd = walk(c, rel, create, entry, err);
    if (fd < 0)
        return -1;
    if (!c->privileged) {
        /* Unprivileged: a lower layer's read-only directory must become
         * writable to receive entries; its mode is restored at the end. */
        struct stat sb;
        if (fstat(fd, &sb) == 0 && (sb.st_mode & 0700) != 0700) {
            struct timespec t[2] = {sb.st_atim, sb.st_mtim};
            if (push_dirmeta(c, rel, sb.st_mode & 07777, t) < 0 ||
                fchmod(fd, (sb.st_mode & 07777) | 0700) < 0) {
                close(fd);
                return hp_err_sys(err, HP_INTERNAL, "make \"%.512s\" writable", rel);
            }
        }
    }
    c->cache_rel = strdup(rel);
    if (c->cache_rel == NULL) {
        close(fd);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    c->cache_fd = fd;
    return fd;
}

/* Remove what lower layers put at rel (= name under dirfd), keeping whatever
 * this layer created there.  rel is a PATH_MAX buffer extended in place. */
static int prune(struct ctx *c, int at, const char *name, char *rel, size_t rlen, hp_err *err)
{
    int flags = pathset_get(&c->set, rel, rlen);
    struct stat sb;

    if (fstatat(at, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : hp_err_sys(err, HP_INTERNAL, "stat \"%.512s\"", rel);
    if (flags && S_ISDIR(sb.st_mode)) {
        int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *d;
        struct dirent *de;
        int rc = 0;
        if (fd < 0)
            return hp_err_sys(err, HP_INTERNAL, "open \"%.512s\"", rel);
        d = fdopendir(fd);
        if (d == NULL) {
            close(fd);
            return hp_err_sys(err, HP_INTERNAL, "fdopendir \"%.512s\"", rel);
        }
        while ((de = readdir(d)) != NULL) {
            size_t n = strlen(de->d_name);
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (rlen + 1 + n + 1 > PATH_MAX) {
                rc = hp_err_set(err, HP_INTERNAL, "path too long under \"%.512s\"", rel);
                break;
            }
            rel[rlen] = '/';
            memcpy(rel + rlen + 1, de->d_name, n + 1);
            rc = prune(c, dirfd(d), de->d_name, rel, rlen + 1 + n, err);
            rel[rlen] = '\0';
            if (rc < 0)
                break;
        }
        closedir(d);
        return rc;
    }
    if (flags & P_UNPACKED)
        return 0;
    return hp_remove_tree_at(at, name, err);
}

/* ---- entries ---- */

static int split(char *rel, const char **parent, const char **base)
{
    char *slash = strrchr(rel, '/');
    if (slash) {
        *slash = '\0';
        *parent = rel;
        *base = slash + 1;
        return 1;
    }
    *parent = "";
    *base = rel;
    return 0;
}

static int record(struct ctx *c, const char *rel, hp_err *err)
{
    size_t n = strlen(rel);
    if (pathset_add(&c->set, rel, n, P_UNPACKED) < 0)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    while (n > 0) {
        const char *s = memrchr(rel, '/', n);
        int old;
        if (s == NULL)
            break;
        n = (size_t)(s - rel);
        old = pathset_add(&c->set, rel, n, P_ANCESTOR);
        if (old < 0)
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        if (old & P_ANCESTOR)
            break;
    }
    return 0;
}

static int do_whiteout(struct ctx *c, const char *rel_parent, const char *base, const char *entry,
                       hp_err *err)
{
    char buf[PATH_MAX];
    int pfd;
    size_t plen = strlen(rel_parent);

    if (strcmp(base, WH_OPAQUE) == 0) {
        DIR *d;
        struct dirent *de;
        int fd, rc = 0;
        /* Children (maybe the cached directory or its ancestors) go away. */
        cache_drop(c);
        pfd = walk(c, rel_parent, 1, entry, err);
        if (pfd < 0)
            return -1;
        fd = pfd;
        d = fdopendir(fd);
        if (d == NULL) {
            close(fd);
            return hp_err_sys(err, HP_INTERNAL, "fdopendir \"%.512s\"", rel_parent);
        }
        while ((de = readdir(d)) != NULL) {
            size_t n = strlen(de->d_name);
            size_t off = plen ? plen + 1 : 0;
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (off + n + 1 > sizeof buf) {
                rc = hp_err_set(err, HP_INTERNAL, "path too long");
                break;
            }
            memcpy(buf, rel_parent, plen);
            if (plen)
                buf[plen] = '/';
            memcpy(buf + off, de->d_name, n + 1);
            if ((rc = prune(c, dirfd(d), de->d_name, buf, off + n, err)) < 0)
                break;
        }
        closedir(d);
        if (rc == 0)
            c->st->whiteouts++;
        return rc;
    }
    if (strncmp(base, WH_META, strlen(WH_META)) == 0) {
        hp_debug("unpack: ignoring whiteout metadata entry \"%s\"", entry);
        return 0;
    }
    const char *victim = base + strlen(WH_PREFIX);
    if (*victim == '\0' || strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "layer entry \"%.512s\": whiteout names no valid file", entry);
    if (snprintf(buf, sizeof buf, "%s%s%s", rel_parent, plen ? "/" : "", victim) >= (int)sizeof buf)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "layer entry \"%.512s\": too long", entry);
    if (pathset_get(&c->set, buf, strlen(buf)) & P_UNPACKED)
        return 0; /* created by this very layer: a whiteout only hides lower content */
    pfd = parent_fd(c, rel_parent, 0, entry, err);
    if (pfd < 0) {
        if (err->code == HP_NOT_FOUND) {
            hp_err_clear(err);
            return 0;
        }
        return -1;
    }
    /* pfd is the cached directory (an ancestor of what is removed: stays
     * valid) or the root (the cache may lie below the victim: drop it). */
    if (pfd != c->cache_fd)
        cache_drop(c);
    if (prune(c, pfd, victim, buf, strlen(buf), err) < 0)
        return -1;
    c->st->whiteouts++;
    return 0;
}

static void entry_times(struct archive_entry *e, struct timespec t[2])
{
    if (archive_entry_mtime_is_set(e)) {
        t[1].tv_sec = archive_entry_mtime(e);
        t[1].tv_nsec = archive_entry_mtime_nsec(e);
    } else {
        t[1].tv_sec = 0;
        t[1].tv_nsec = UTIME_NOW;
    }
    if (archive_entry_atime_is_set(e)) {
        t[0].tv_sec = archive_entry_atime(e);
        t[0].tv_nsec = archive_entry_atime_nsec(e);
    } else {
        t[0] = t[1];
    }
    if (t[0].tv_nsec < 0 || t[0].tv_nsec > 999999999)
        t[0].tv_nsec = 0;
    if (t[1].tv_nsec < 0 || (t[1].tv_nsec > 999999999 && t[1].tv_nsec != UTIME_NOW))
        t[1].tv_nsec = 0;
}

static void apply_xattrs(struct ctx *c, int fd, struct archive_entry *e, const char *entry)
{
    const char *name;
    const void *value;
    size_t size;
    if (archive_entry_xattr_reset(e) == 0)
        return;
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
        int ok = strncmp(name, "user.", 5) == 0 ||
                 (c->privileged && strcmp(name, "security.capability") == 0);
        if (!ok) {
            hp_debug("unpack: \"%s\": ignoring xattr %s", entry, name);
            continue;
        }
        if (fsetxattr(fd, name, value, size, 0) < 0)
            hp_debug("unpack: \"%s\": xattr %s not set: %s", entry, name, strerror(errno));
    }
}

static int pwrite_all(int fd, const char *buf, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, buf, len, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

static int archive_fail(struct ctx *c, struct archive *in, const char *entry, hp_err *err)
{
    if (c->stream_err.code != HP_OK) {
        *err = c->stream_err;
        return -1;
    }
    return hp_err_set(err, HP_DATA_LOSS, "corrupt layer at entry \"%.512s\": %s", entry,
                      archive_error_string(in) ? archive_error_string(in) : "read error");
}

static int write_file(struct ctx *c, struct archive *in, struct archive_entry *e, int pfd,
                      const char *base, const char *entry, mode_t perm, const struct timespec t[2],
                      hp_err *err)
{
    _cleanup_close_ int fd = -1;
    int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    int64_t end = 0, kicked = 0;

    if (size < 0)
        return hp_err_set(err, HP_DATA_LOSS, "layer entry \"%.512s\": negative size", entry);
    if ((uint64_t)size > c->max_bytes || c->st->bytes + (uint64_t)size > c->max_bytes)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED,
                          "layer entry \"%.512s\": layer content exceeds the limit of %llu bytes",
                          entry, (unsigned long long)c->max_bytes);
    fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": create", entry);
    while (1) {
        const void *buf;
        size_t len;
        la_int64_t off;
        int r = archive_read_data_block(in, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN)
            return archive_fail(c, in, entry, err);
        if (off < 0 || off + (int64_t)len > size)
            return hp_err_set(err, HP_DATA_LOSS, "layer entry \"%.512s\": data beyond its size",
                              entry);
        if (len && pwrite_all(fd, buf, len, off) < 0)
            return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": write", entry);
        if (off + (int64_t)len > end)
            end = off + (int64_t)len;
        if (end - kicked >= WRITEBACK_CHUNK) {
            /* Start writeback now (a hint; errors surface at the final
             * sync): the disk works while the layer is still decompressing. */
            (void)sync_file_range(fd, kicked, end - kicked, SYNC_FILE_RANGE_WRITE);
            kicked = end;
        }
    }
    if (end < size && ftruncate(fd, size) < 0)
        return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": truncate", entry);
    if (c->privileged && fchown(fd, archive_entry_uid(e), archive_entry_gid(e)) < 0)
        return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": chown", entry);
    if (fchmod(fd, perm) < 0)
        return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": chmod", entry);
    apply_xattrs(c, fd, e, entry);
    if (futimens(fd, t) < 0)
        return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": set times", entry);
    if (close(hp_steal_fd(&fd)) < 0)
        return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": close", entry);
    c->st->files++;
    c->st->bytes += (uint64_t)size;
    return 0;
}

static int do_hardlink(struct ctx *c, int pfd, const char *base, const char *target,
                       const char *entry, hp_err *err)
{
    char trel[PATH_MAX];
    const char *tparent, *tbase;
    _cleanup_close_ int tfd = -1;
    struct stat sb;

    if (clean_path("hard link target", target, trel, sizeof trel, err) < 0)
        return -1;
    if (*trel == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "layer entry \"%.512s\": hard link to the root directory", entry);
    split(trel, &tparent, &tbase);
    tfd = walk(c, tparent, 0, entry, err);
    if (tfd < 0) {
        if (err->code == HP_NOT_FOUND)
            err->code = HP_INVALID_ARGUMENT;
        return hp_err_wrap(err, "hard link to \"%.512s\"", target);
    }
    if (fstatat(tfd, tbase, &sb, AT_SYMLINK_NOFOLLOW) < 0)
        return hp_err_sys(err, HP_INVALID_ARGUMENT,
                          "layer entry \"%.512s\": hard link target \"%.512s\"", entry, target);
    if (S_ISDIR(sb.st_mode))
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "layer entry \"%.512s\": hard link to a directory \"%.512s\"", entry,
                          target);
    if (linkat(tfd, tbase, pfd, base, 0) < 0)
        return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": link to \"%.512s\"", entry,
                          target);
    c->st->hardlinks++;
    return 0;
}

static int do_entry(struct ctx *c, struct archive *in, struct archive_entry *e, hp_err *err)
{
    const char *name = archive_entry_pathname(e);
    const char *hardlink = archive_entry_hardlink(e);
    char rel[PATH_MAX], full[PATH_MAX];
    const char *parent, *base;
    mode_t type = archive_entry_filetype(e);
    mode_t perm = archive_entry_perm(e) & 07777;
    struct timespec t[2];
    struct stat sb;
    int pfd, exists;

    if (name == NULL)
        return hp_err_set(err, HP_DATA_LOSS, "layer entry without a name");
    if (clean_path("entry", name, rel, sizeof rel, err) < 0)
        return -1;
    if (*rel == '\0') {
        if (type == AE_IFDIR && !hardlink)
            return 0; /* the root itself: keep the target's own metadata */
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "layer entry \"%.512s\" replaces the root directory", name);
    }
    memcpy(full, rel, strlen(rel) + 1);
    split(rel, &parent, &base);

    if (strncmp(base, WH_PREFIX, strlen(WH_PREFIX)) == 0)
        return do_whiteout(c, parent, base, name, err);

    entry_times(e, t);
    pfd = parent_fd(c, parent, 1, name, err);
    if (pfd < 0)
        return -1;

    exists = fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && errno != ENOENT)
        return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": stat", name);
    if (exists && !(type == AE_IFDIR && !hardlink && S_ISDIR(sb.st_mode))) {
        if (S_ISDIR(sb.st_mode)) {
            if (pfd != c->cache_fd)
                cache_drop(c); /* the cache may lie below the removed directory */
            if (hp_remove_tree_at(pfd, base, err) < 0)
                return hp_err_wrap(err, "layer entry \"%.512s\": replace directory", name);
        } else if (unlinkat(pfd, base, 0) < 0) {
            return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": replace", name);
        }
        exists = 0;
    }

    if (hardlink) {
        if (do_hardlink(c, pfd, base, hardlink, name, err) < 0)
            return -1;
        return record(c, full, err);
    }
    if (!c->privileged && type == AE_IFREG)
        perm &= ~(mode_t)(S_ISUID | S_ISGID);

    switch (type) {
    case AE_IFREG:
        if (write_file(c, in, e, pfd, base, name, perm, t, err) < 0)
            return -1;
        break;
    case AE_IFDIR: {
        _cleanup_close_ int dfd = -1;
        if (!exists && mkdirat(pfd, base, 0700) < 0)
            return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": mkdir", name);
        dfd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
            return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": open", name);
        if (c->privileged && fchown(dfd, archive_entry_uid(e), archive_entry_gid(e)) < 0)
            return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": chown", name);
        if (!c->privileged && fchmod(dfd, perm | 0700) < 0)
            return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": chmod", name);
        apply_xattrs(c, dfd, e, name);
        if (push_dirmeta(c, full, perm, t) < 0)
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        c->st->dirs++;
        break;
    }
    case AE_IFLNK: {
        const char *target = archive_entry_symlink(e);
        if (target == NULL || *target == '\0')
            return hp_err_set(err, HP_DATA_LOSS, "layer entry \"%.512s\": empty symlink target",
                              name);
        if (symlinkat(target, pfd, base) < 0)
            return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": symlink", name);
        if (c->privileged && fchownat(pfd, base, archive_entry_uid(e), archive_entry_gid(e),
                                      AT_SYMLINK_NOFOLLOW) < 0)
            return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": lchown", name);
        if (utimensat(pfd, base, t, AT_SYMLINK_NOFOLLOW) < 0)
            hp_debug("unpack: \"%s\": symlink times not set: %s", name, strerror(errno));
        c->st->symlinks++;
        break;
    }
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
        if (type != AE_IFIFO && !c->privileged) {
            hp_debug("unpack: skipping device node \"%s\" (unprivileged)", name);
            c->st->skipped++;
            return 0;
        }
        if (mknodat(pfd, base, (type == AE_IFIFO ? S_IFIFO : type) | (perm & 0777),
                    type == AE_IFIFO ? 0 : archive_entry_rdev(e)) < 0)
            return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": mknod", name);
        if (c->privileged && fchownat(pfd, base, archive_entry_uid(e), archive_entry_gid(e),
                                      AT_SYMLINK_NOFOLLOW) < 0)
            return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": chown", name);
        /* The node was just created by us in a private target: not a symlink. */
        if (fchmodat(pfd, base, perm, 0) < 0 || utimensat(pfd, base, t, AT_SYMLINK_NOFOLLOW) < 0)
            return hp_err_sys(err, HP_INTERNAL, "layer entry \"%.512s\": set mode", name);
        c->st->devices++;
        break;
    default:
        hp_debug("unpack: skipping \"%s\" of unsupported type 0%o", name, (unsigned)type);
        c->st->skipped++;
        return 0;
    }
    return record(c, full, err);
}

/* ---- stream plumbing ---- */

static la_ssize_t inner_read(struct archive *a, void *data, const void **buf)
{
    struct ctx *c = data;
    size_t len;
    la_int64_t off;
    int r;
    (void)a;
    r = archive_read_data_block(c->outer, buf, &len, &off);
    if (r == ARCHIVE_EOF)
        return 0;
    if (r < ARCHIVE_WARN) {
        hp_err_set(&c->stream_err, HP_DATA_LOSS, "corrupt layer stream: %s",
                   archive_error_string(c->outer) ? archive_error_string(c->outer) : "read error");
        return -1;
    }
    c->st->stream_bytes += len;
    if (c->st->stream_bytes > c->max_bytes) {
        hp_err_set(&c->stream_err, HP_RESOURCE_EXHAUSTED,
                   "layer stream exceeds the limit of %llu bytes",
                   (unsigned long long)c->max_bytes);
        return -1;
    }
    EVP_DigestUpdate(c->md, *buf, len);
    return (la_ssize_t)len;
}

/* Deepest first, so that a parent losing its search or read permission does
 * not stop its children from being finished; for a directory recorded twice the
 * later record wins. */
static int dirmeta_cmp(const void *a, const void *b)
{
    const struct dirmeta *x = a, *y = b;
    if (x->depth != y->depth)
        return x->depth > y->depth ? -1 : 1;
    return x->seq > y->seq ? -1 : x->seq < y->seq ? 1 : 0;
}

static int apply_dirmeta(struct ctx *c, hp_err *err)
{
    c->finishing = 1;
    if (c->ndirs > 1)
        qsort(c->dirs, c->ndirs, sizeof *c->dirs, dirmeta_cmp);
    for (size_t i = 0; i < c->ndirs; i++) {
        hp_err ignored = HP_ERR_INIT;
        const char *rel = c->dirs[i].rel;
        int fd, old = pathset_add(&c->set, rel, strlen(rel), P_META_DONE);
        if (old < 0)
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        if (old & P_META_DONE)
            continue;
        fd = walk(c, rel, 0, rel, &ignored);
        if (fd < 0)
            continue; /* replaced or removed later in the layer */
        if (fchmod(fd, c->dirs[i].perm) < 0 || futimens(fd, c->dirs[i].times) < 0) {
            hp_err_sys(err, HP_INTERNAL, "set mode/times of \"%.512s\"", rel);
            close(fd);
            return -1;
        }
        close(fd);
    }
    return 0;
}

static int probe_openat2(int root)
{
    int fd = sys_openat2(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

int hp_unpack_layer(int target_dirfd, int layer_fd, const hp_unpack_opts *opts, hp_unpack_stats *st,
                    hp_err *err)
{
    hp_unpack_stats local_st;
    struct ctx c = {0};
    struct archive *in = NULL;
    struct archive_entry *e;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int rc = -1, r;

    if (st == NULL)
        st = &local_st;
    memset(st, 0, sizeof *st);
    c.root = target_dirfd;
    c.cache_fd = -1;
    c.st = st;
    c.privileged = geteuid() == 0 && !(opts && opts->rootless);
    c.max_bytes = opts && opts->max_bytes ? opts->max_bytes : HP_UNPACK_DEFAULT_MAX_BYTES;
    c.max_entries = opts && opts->max_entries ? opts->max_entries : HP_UNPACK_DEFAULT_MAX_ENTRIES;
    c.have_openat2 = !(opts && opts->no_openat2) && probe_openat2(target_dirfd);
    if (opts && opts->diffid && strncmp(opts->diffid, "sha256:", 7) != 0)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "unsupported diff ID \"%.100s\"", opts->diffid);

    c.md = EVP_MD_CTX_new();
    c.outer = archive_read_new();
    in = archive_read_new();
    if (c.md == NULL || c.outer == NULL || in == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (EVP_DigestInit_ex(c.md, EVP_sha256(), NULL) != 1) {
        hp_err_set(err, HP_INTERNAL, "sha256 init failed");
        goto out;
    }
    if (archive_read_support_filter_gzip(c.outer) != ARCHIVE_OK ||
        archive_read_support_filter_zstd(c.outer) != ARCHIVE_OK ||
        archive_read_support_format_raw(c.outer) != ARCHIVE_OK ||
        archive_read_support_format_empty(c.outer) != ARCHIVE_OK) {
        hp_err_set(err, HP_INTERNAL, "libarchive lacks built-in gzip/zstd support: %s",
                   archive_error_string(c.outer));
        goto out;
    }
    if (archive_read_open_fd(c.outer, layer_fd, READ_BLOCK) != ARCHIVE_OK) {
        hp_err_set(err, HP_DATA_LOSS, "cannot read layer: %s", archive_error_string(c.outer));
        goto out;
    }
    r = archive_read_next_header(c.outer, &e);
    if (r == ARCHIVE_EOF) {
        hp_err_set(err, HP_DATA_LOSS, "layer is empty");
        goto out;
    }
    if (r < ARCHIVE_WARN) {
        hp_err_set(err, HP_DATA_LOSS, "cannot read layer: %s", archive_error_string(c.outer));
        goto out;
    }
    if (archive_read_support_format_tar(in) != ARCHIVE_OK ||
        archive_read_open(in, &c, NULL, inner_read, NULL) != ARCHIVE_OK) {
        if (c.stream_err.code != HP_OK)
            *err = c.stream_err;
        else
            hp_err_set(err, HP_DATA_LOSS, "layer is not a tar archive: %s",
                       archive_error_string(in));
        goto out;
    }
    while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        if (++st->entries > c.max_entries) {
            hp_err_set(err, HP_RESOURCE_EXHAUSTED, "layer has more than %llu entries",
                       (unsigned long long)c.max_entries);
            goto out;
        }
        if (do_entry(&c, in, e, err) < 0)
            goto out;
    }
    if (r != ARCHIVE_EOF) {
        archive_fail(&c, in, st->entries ? "(after last)" : "(first)", err);
        goto out;
    }
    /* Hash whatever follows the end-of-archive marker too (bounded). */
    {
        const void *buf;
        while (inner_read(in, &c, &buf) > 0)
            ;
        if (c.stream_err.code != HP_OK) {
            *err = c.stream_err;
            goto out;
        }
    }
    EVP_DigestFinal_ex(c.md, md, &mdlen);
    memcpy(st->diffid, "sha256:", 7);
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(st->diffid + 7 + 2 * i, 3, "%02x", md[i]);
    if (opts && opts->diffid && strcmp(opts->diffid, st->diffid) != 0) {
        hp_err_set(err, HP_DATA_LOSS, "layer diff ID mismatch: expected %.80s, got %s",
                   opts->diffid, st->diffid);
        goto out;
    }
    cache_drop(&c);
    if (apply_dirmeta(&c, err) < 0)
        goto out;
    rc = 0;
out:
    cache_drop(&c);
    if (in)
        archive_read_free(in);
    if (c.outer)
        archive_read_free(c.outer);
    EVP_MD_CTX_free(c.md);
    pathset_free(&c.set);
    for (size_t i = 0; i < c.ndirs; i++)
        free(c.dirs[i].rel);
    free(c.dirs);
    return rc;
}

int hp_unpack_layer_path(const char *target_dir, const char *layer_path, const hp_unpack_opts *opts,
                         hp_unpack_stats *st, hp_err *err)
{
    _cleanup_close_ int dfd = -1, lfd = -1;
    dfd = open(target_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return hp_err_sys(err, HP_INVALID_ARGUMENT, "open target directory \"%.512s\"", target_dir);
    lfd = open(layer_path, O_RDONLY | O_CLOEXEC);
    if (lfd < 0)
        return hp_err_sys(err, HP_NOT_FOUND, "open layer \"%.512s\"", layer_path);
    return hp_unpack_layer(dfd, lfd, opts, st, err);
}
