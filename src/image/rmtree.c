/* hp_remove_tree_at (declared in image/unpack.h): recursive removal confined
 * to a tree.  Its own file so that the daemon, which removes blobs, chain dirs
 * and import scratch dirs but never unpacks, does not link libarchive. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/unpack.h"

static int remove_tree_rec(int dirfd, const char *name, int depth, hp_err *err);

static int remove_children(int fd, int depth, hp_err *err)
{
    DIR *d;
    struct dirent *de;
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) == 0 && (sb.st_mode & 0700) != 0700)
        (void)fchmod(fd, (sb.st_mode & 07777) | 0700);
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return hp_err_sys(err, HP_INTERNAL, "fdopendir");
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (remove_tree_rec(dirfd(d), de->d_name, depth + 1, err) < 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && errno != 0)
        rc = hp_err_sys(err, HP_INTERNAL, "readdir");
    closedir(d);
    return rc;
}

static int remove_tree_rec(int at, const char *name, int depth, hp_err *err)
{
    int fd;
    if (depth > 4096)
        return hp_err_set(err, HP_INTERNAL, "directory tree too deep to remove");
    if (unlinkat(at, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return hp_err_sys(err, HP_INTERNAL, "unlink \"%.512s\"", name);
    fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return hp_err_sys(err, HP_INTERNAL, "open \"%.512s\"", name);
    if (remove_children(fd, depth, err) < 0)
        return -1;
    if (unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return hp_err_sys(err, HP_INTERNAL, "rmdir \"%.512s\"", name);
    return 0;
}

int hp_remove_tree_at(int dirfd, const char *name, hp_err *err)
{
    if (name == NULL || *name == '\0' || strchr(name, '/') || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "remove tree: \"%s\" is not a single path component", name ? name : "");
    return remove_tree_rec(dirfd, name, 0, err);
}
