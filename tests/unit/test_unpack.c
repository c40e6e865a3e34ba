/* Layer unpacking: real tar files built with libarchive's writer, unpacked into
 * real directories; malicious layers must not touch anything outside. */
#include "t.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>

#include "image/unpack.h"
#include "util/cleanup.h"

enum { NONE = 0, GZIP = 1, ZSTD = 2 };

struct tent {
    const char *name;
    char type;       /* f file, d dir, l symlink, h hardlink, c chardev, p fifo */
    const char *arg; /* file data, link target */
    int mode;        /* permission bits; 0: 0644 (files) / 0755 (dirs); -1: 0000 */
    int uid, gid;
};

static int make_tar(const char *path, int filter, const struct tent *ents, size_t n)
{
    struct archive *a = archive_write_new();
    int rc = -1;
    archive_write_set_format_pax_restricted(a);
    if (filter == GZIP)
        archive_write_add_filter_gzip(a);
    else if (filter == ZSTD)
        archive_write_add_filter_zstd(a);
    if (archive_write_open_filename(a, path) != ARCHIVE_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const struct tent *t = &ents[i];
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, t->name);
        archive_entry_set_uid(e, t->uid);
        archive_entry_set_gid(e, t->gid);
        archive_entry_set_mtime(e, 1000000000 + (time_t)i, 0);
        switch (t->type) {
        case 'f':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, t->mode ? t->mode : 0644);
            archive_entry_set_size(e, t->arg ? (la_int64_t)strlen(t->arg) : 0);
            break;
        case 'd':
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, t->mode == -1 ? 0 : t->mode ? t->mode : 0755);
            break;
        case 'l':
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_perm(e, 0777);
            archive_entry_set_symlink(e, t->arg);
            break;
        case 'h':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_hardlink(e, t->arg);
            archive_entry_set_size(e, 0);
            break;
        case 'c':
            archive_entry_set_filetype(e, AE_IFCHR);
            archive_entry_set_perm(e, 0666);
            archive_entry_set_rdev(e, makedev(1, 3));
            break;
        case 'p':
            archive_entry_set_filetype(e, AE_IFIFO);
            archive_entry_set_perm(e, 0600);
            break;
        }
        if (archive_write_header(a, e) != ARCHIVE_OK) {
            fprintf(stderr, "write header %s: %s\n", t->name, archive_error_string(a));
            archive_entry_free(e);
            goto out;
        }
        if (t->type == 'f' && t->arg)
            archive_write_data(a, t->arg, strlen(t->arg));
        archive_entry_free(e);
    }
    rc = archive_write_close(a) == ARCHIVE_OK ? 0 : -1;
out:
    archive_write_free(a);
    return rc;
}

/* A test sandbox: <base>/a/b/root is the target, <base>/outside a sentinel dir
 * holding <base>/outside/secret. */
struct box {
    char base[64];
    char root[128];
    char outside[128];
    char layer[128];
    char snapshot[8192];
};

static void list_tree(const char *dir, const char *skip, char *out, size_t outsz)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        char p[512];
        struct stat sb;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (strcmp(p, skip) == 0 || strstr(p, "/layer") != NULL)
            continue;
        lstat(p, &sb);
        size_t n = strlen(out);
        snprintf(out + n, outsz - n, "%s:%o:%ld:%ld;", p, sb.st_mode, (long)sb.st_size,
                 (long)sb.st_nlink);
        if (S_ISDIR(sb.st_mode))
            list_tree(p, skip, out, outsz);
    }
    closedir(d);
}

static void box_snapshot(struct box *b, char *out, size_t outsz)
{
    out[0] = '\0';
    list_tree(b->base, b->root, out, outsz);
    /* also the parent of base: nothing may appear next to it */
}

static int box_init(struct box *b)
{
    char p[256];
    snprintf(b->base, sizeof b->base, "/tmp/hpunpack.XXXXXX");
    if (!mkdtemp(b->base))
        return -1;
    snprintf(p, sizeof p, "%s/a", b->base);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/a/b", b->base);
    mkdir(p, 0755);
    snprintf(b->root, sizeof b->root, "%s/a/b/root", b->base);
    mkdir(b->root, 0755);
    snprintf(b->outside, sizeof b->outside, "%s/outside", b->base);
    mkdir(b->outside, 0755);
    snprintf(p, sizeof p, "%s/outside/secret", b->base);
    FILE *f = fopen(p, "w");
    if (!f)
        return -1;
    fputs("secret", f);
    fclose(f);
    snprintf(b->layer, sizeof b->layer, "%s/layer.tar", b->base);
    box_snapshot(b, b->snapshot, sizeof b->snapshot);
    return 0;
}

static int box_unchanged(struct box *b)
{
    char now[8192];
    box_snapshot(b, now, sizeof now);
    if (strcmp(now, b->snapshot) != 0) {
        fprintf(stderr, "  outside changed:\n    before %s\n    after  %s\n", b->snapshot, now);
        return 0;
    }
    return 1;
}

static void box_free(struct box *b)
{
    hp_err err = HP_ERR_INIT;
    _cleanup_close_ int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    hp_remove_tree_at(fd, b->base + 5, &err);
}

static int apply(struct box *b, int filter, const struct tent *ents, size_t n,
                 const hp_unpack_opts *o, hp_unpack_stats *st, hp_err *err)
{
    if (make_tar(b->layer, filter, ents, n) < 0)
        return hp_err_set(err, HP_INTERNAL, "test: make_tar failed");
    return hp_unpack_layer_path(b->root, b->layer, o, st, err);
}

#define N(x) (sizeof(x) / sizeof((x)[0]))

static char *slurp(const char *dir, const char *rel)
{
    char p[512];
    static char buf[4096];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    int fd = open(p, O_RDONLY | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    return buf;
}

static int lstat_in(const char *dir, const char *rel, struct stat *sb)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return lstat(p, sb);
}

static int exists_in(const char *dir, const char *rel)
{
    struct stat sb;
    return lstat_in(dir, rel, &sb) == 0;
}

/* ---------------- well-formed layers ---------------- */

static void basic_layer(int *t_failed, int filter)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    hp_unpack_stats st;
    struct stat sb;
    char lnk[192], target[64];
    static const struct tent ents[] = {
        {"etc/", 'd', NULL, 0755, 0, 0},
        {"etc/hostname", 'f', "box\n", 0644, 0, 0},
        {"bin/", 'd', NULL, 0755, 0, 0},
        {"bin/tool", 'f', "#!/bin/sh\necho hi\n", 0755, 0, 0},
        {"bin/alias", 'l', "tool", 0, 0, 0},
        {"bin/hard", 'h', "bin/tool", 0, 0, 0},
        {"/abs/leading/slash", 'f', "abs", 0600, 0, 0},
        {"./dot/./file", 'f', "dot", 0, 0, 0},
        {"ro/", 'd', NULL, 0555, 0, 0},
        {"ro/inside", 'f', "x", 0444, 0, 0},
        {"implicit/parent/file", 'f', "p", 0, 0, 0},
        {"dangling", 'l', "/does/not/exist", 0, 0, 0},
    };
    T_ASSERT(box_init(&b) == 0);
    T_EQ_INT(apply(&b, filter, ents, N(ents), NULL, &st, &err), 0);
    T_EQ_STR(slurp(b.root, "etc/hostname"), "box\n");
    T_EQ_STR(slurp(b.root, "bin/tool"), "#!/bin/sh\necho hi\n");
    T_EQ_STR(slurp(b.root, "abs/leading/slash"), "abs");
    T_EQ_STR(slurp(b.root, "dot/file"), "dot");
    T_EQ_STR(slurp(b.root, "implicit/parent/file"), "p");
    T_ASSERT(lstat_in(b.root, "bin/tool", &sb) == 0);
    T_EQ_INT(sb.st_mode & 07777, 0755);
    T_EQ_INT(sb.st_nlink, 2);
    T_EQ_INT(sb.st_mtime, 1000000003);
    ino_t ino = sb.st_ino;
    T_ASSERT(lstat_in(b.root, "bin/hard", &sb) == 0);
    T_EQ_INT(sb.st_ino, ino);
    T_ASSERT(lstat_in(b.root, "abs/leading/slash", &sb) == 0);
    T_EQ_INT(sb.st_mode & 07777, 0600);
    T_ASSERT(lstat_in(b.root, "ro", &sb) == 0);
    T_EQ_INT(sb.st_mode & 07777, 0555);
    T_EQ_INT(sb.st_mtime, 1000000008);
    T_ASSERT(lstat_in(b.root, "etc", &sb) == 0 && S_ISDIR(sb.st_mode));
    T_EQ_INT(sb.st_mtime, 1000000000);
    T_ASSERT(lstat_in(b.root, "implicit/parent", &sb) == 0 && S_ISDIR(sb.st_mode));
    T_EQ_INT(sb.st_mode & 0777, 0755);
    T_ASSERT(lstat_in(b.root, "bin/alias", &sb) == 0 && S_ISLNK(sb.st_mode));
    snprintf(lnk, sizeof lnk, "%s/bin/alias", b.root);
    ssize_t n = readlink(lnk, target, sizeof target - 1);
    T_ASSERT(n == 4 && memcmp(target, "tool", 4) == 0);
    T_ASSERT(lstat_in(b.root, "dangling", &sb) == 0 && S_ISLNK(sb.st_mode));
    T_EQ_INT(st.entries, N(ents));
    T_EQ_INT(st.files, 6);
    T_EQ_INT(st.dirs, 3);
    T_EQ_INT(st.symlinks, 2);
    T_EQ_INT(st.hardlinks, 1);
    T_EQ_INT(st.bytes, 4 + 18 + 3 + 3 + 1 + 1);
    T_ASSERT(strncmp(st.diffid, "sha256:", 7) == 0 && strlen(st.diffid) == 71);
    T_ASSERT(box_unchanged(&b));
    box_free(&b);
}

T_CASE(basic_plain)
{
    basic_layer(t_failed, NONE);
}
T_CASE(basic_gzip)
{
    basic_layer(t_failed, GZIP);
}
T_CASE(basic_zstd)
{
    basic_layer(t_failed, ZSTD);
}

/* The diff ID is the sha256 of the uncompressed tar, whatever the compression. */
T_CASE(diffid_computed_and_verified)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    hp_unpack_stats st;
    hp_unpack_opts o = {0};
    static const struct tent ents[] = {{"a", 'f', "alpha", 0, 0, 0}, {"b/", 'd', NULL, 0, 0, 0}};
    unsigned char md[32];
    char want[72] = "sha256:";
    char buf[65536];
    T_ASSERT(box_init(&b) == 0);
    T_ASSERT(make_tar(b.layer, NONE, ents, N(ents)) == 0);
    int fd = open(b.layer, O_RDONLY);
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    T_ASSERT(n > 0 && n < (ssize_t)sizeof buf);
    unsigned int mdlen = 0;
    EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(want + 7 + 2 * i, 3, "%02x", md[i]);
    /* gzip-compressed: same diff ID */
    T_EQ_INT(apply(&b, GZIP, ents, N(ents), NULL, &st, &err), 0);
    T_EQ_STR(st.diffid, want);
    T_EQ_INT(st.stream_bytes, n);
    o.diffid = want;
    T_EQ_INT(apply(&b, ZSTD, ents, N(ents), &o, &st, &err), 0);
    want[10] = want[10] == '0' ? '1' : '0';
    T_EQ_INT(apply(&b, GZIP, ents, N(ents), &o, &st, &err), -1);
    T_EQ_INT(err.code, HP_DATA_LOSS);
    T_ASSERT(strstr(err.msg, "diff ID mismatch") != NULL);
    box_free(&b);
}

T_CASE(replace_types)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    struct stat sb;
    static const struct tent l1[] = {
        {"x/", 'd', NULL, 0, 0, 0},          {"x/inner", 'f', "in", 0, 0, 0},
        {"y", 'f', "file-y", 0, 0, 0},       {"z", 'l', "y", 0, 0, 0},
        {"keepdir/", 'd', NULL, 0700, 0, 0}, {"keepdir/old", 'f', "old", 0, 0, 0},
    };
    static const struct tent l2[] = {
        {"x", 'f', "now a file", 0, 0, 0},
        {"y/", 'd', NULL, 0, 0, 0},
        {"z", 'f', "not a link", 0, 0, 0},
        {"keepdir/", 'd', NULL, 0751, 0, 0},
    };
    T_ASSERT(box_init(&b) == 0);
    T_EQ_INT(apply(&b, NONE, l1, N(l1), NULL, NULL, &err), 0);
    T_EQ_INT(apply(&b, GZIP, l2, N(l2), NULL, NULL, &err), 0);
    T_EQ_STR(slurp(b.root, "x"), "now a file");
    T_ASSERT(lstat_in(b.root, "y", &sb) == 0 && S_ISDIR(sb.st_mode));
    T_ASSERT(lstat_in(b.root, "z", &sb) == 0 && S_ISREG(sb.st_mode));
    T_EQ_STR(slurp(b.root, "z"), "not a link");
    T_ASSERT(lstat_in(b.root, "keepdir", &sb) == 0 && S_ISDIR(sb.st_mode));
    T_EQ_INT(sb.st_mode & 0777, 0751);
    T_EQ_STR(slurp(b.root, "keepdir/old"), "old"); /* dir over dir merges */
    box_free(&b);
}

T_CASE(whiteouts)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    hp_unpack_stats st;
    static const struct tent l1[] = {
        {"gone", 'f', "1", 0, 0, 0},      {"gonedir/", 'd', NULL, 0, 0, 0},
        {"gonedir/a", 'f', "a", 0, 0, 0}, {"gonedir/sub/b", 'f', "b", 0, 0, 0},
        {"stay", 'f', "s", 0, 0, 0},      {"d/", 'd', NULL, 0, 0, 0},
        {"d/gone2", 'f', "g", 0, 0, 0},   {"d/stay2", 'f', "s2", 0, 0, 0},
        {"glink", 'l', "/etc", 0, 0, 0},
    };
    static const struct tent l2[] = {
        {".wh.gone", 'f', NULL, 0, 0, 0},
        {".wh.gonedir", 'f', NULL, 0, 0, 0},
        {"d/.wh.gone2", 'f', NULL, 0, 0, 0},
        {".wh.glink", 'f', NULL, 0, 0, 0},
        {".wh.nonexistent", 'f', NULL, 0, 0, 0},
        {"nodir/.wh.x", 'f', NULL, 0, 0, 0},
        {".wh..wh.plnk", 'f', NULL, 0, 0, 0},
        /* same-layer content is not hidden by a whiteout in that layer */
        {"fresh", 'f', "f", 0, 0, 0},
        {".wh.fresh", 'f', NULL, 0, 0, 0},
    };
    T_ASSERT(box_init(&b) == 0);
    T_EQ_INT(apply(&b, NONE, l1, N(l1), NULL, NULL, &err), 0);
    T_EQ_INT(apply(&b, ZSTD, l2, N(l2), NULL, &st, &err), 0);
    T_ASSERT(!exists_in(b.root, "gone"));
    T_ASSERT(!exists_in(b.root, "gonedir"));
    T_ASSERT(!exists_in(b.root, "d/gone2"));
    T_ASSERT(!exists_in(b.root, "glink"));
    T_ASSERT(exists_in("/", "etc/hostname") || exists_in("/", "etc/passwd"));
    T_EQ_STR(slurp(b.root, "stay"), "s");
    T_EQ_STR(slurp(b.root, "d/stay2"), "s2");
    T_EQ_STR(slurp(b.root, "fresh"), "f");
    T_ASSERT(!exists_in(b.root, ".wh.gone"));
    T_ASSERT(!exists_in(b.root, ".wh..wh.plnk"));
    T_ASSERT(!exists_in(b.root, "nodir"));
    T_EQ_INT(st.whiteouts, 5);
    T_ASSERT(box_unchanged(&b));
    box_free(&b);
}

static void opaque_case(int *t_failed, int marker_first)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    struct stat sb;
    static const struct tent l1[] = {
        {"d/", 'd', NULL, 0, 0, 0},        {"d/old1", 'f', "o1", 0, 0, 0},
        {"d/sub/", 'd', NULL, 0, 0, 0},    {"d/sub/old2", 'f', "o2", 0, 0, 0},
        {"d/lnk", 'l', "old1", 0, 0, 0},   {"other/keep", 'f', "k", 0, 0, 0},
        {"d/deep/x/y", 'f', "y", 0, 0, 0},
    };
    static const struct tent after[] = {
        {"d/", 'd', NULL, 0750, 0, 0},     {"d/new1", 'f', "n1", 0, 0, 0},
        {"d/sub/", 'd', NULL, 0, 0, 0},    {"d/sub/new2", 'f', "n2", 0, 0, 0},
        {"d/deep/x/z", 'f', "z", 0, 0, 0}, {"d/.wh..wh..opq", 'f', NULL, 0, 0, 0},
    };
    static const struct tent before[] = {
        {"d/", 'd', NULL, 0750, 0, 0},      {"d/.wh..wh..opq", 'f', NULL, 0, 0, 0},
        {"d/new1", 'f', "n1", 0, 0, 0},     {"d/sub/", 'd', NULL, 0, 0, 0},
        {"d/sub/new2", 'f', "n2", 0, 0, 0}, {"d/deep/x/z", 'f', "z", 0, 0, 0},
    };
    T_ASSERT(box_init(&b) == 0);
    T_EQ_INT(apply(&b, NONE, l1, N(l1), NULL, NULL, &err), 0);
    T_EQ_INT(apply(&b, GZIP, marker_first ? before : after, 6, NULL, NULL, &err), 0);
    T_EQ_STR(slurp(b.root, "d/new1"), "n1");
    T_EQ_STR(slurp(b.root, "d/sub/new2"), "n2");
    T_EQ_STR(slurp(b.root, "d/deep/x/z"), "z");
    T_ASSERT(!exists_in(b.root, "d/old1"));
    T_ASSERT(!exists_in(b.root, "d/sub/old2"));
    T_ASSERT(!exists_in(b.root, "d/lnk"));
    T_ASSERT(!exists_in(b.root, "d/deep/x/y"));
    T_ASSERT(!exists_in(b.root, "d/.wh..wh..opq"));
    T_EQ_STR(slurp(b.root, "other/keep"), "k");
    T_ASSERT(lstat_in(b.root, "d", &sb) == 0);
    T_EQ_INT(sb.st_mode & 0777, 0750);
    box_free(&b);
}

T_CASE(opaque_marker_after_entries)
{
    opaque_case(t_failed, 0);
}
T_CASE(opaque_marker_before_entries)
{
    opaque_case(t_failed, 1);
}

T_CASE(opaque_creates_missing_dir)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    static const struct tent l[] = {{"new/.wh..wh..opq", 'f', NULL, 0, 0, 0}};
    T_ASSERT(box_init(&b) == 0);
    T_EQ_INT(apply(&b, NONE, l, N(l), NULL, NULL, &err), 0);
    struct stat sb;
    T_ASSERT(lstat_in(b.root, "new", &sb) == 0 && S_ISDIR(sb.st_mode));
    box_free(&b);
}

T_CASE(ownership_and_special_as_root)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    hp_unpack_stats st;
    struct stat sb;
    static const struct tent l[] = {
        {"suid", 'f', "x", 04755, 1234, 2345}, {"owned/", 'd', NULL, 0700, 1111, 2222},
        {"lnk", 'l', "suid", 0, 3333, 4444},   {"null", 'c', NULL, 0, 0, 0},
        {"fifo", 'p', NULL, 0, 0, 0},
    };
    if (geteuid() != 0) {
        fprintf(stderr, "  (not root: ownership case skipped)\n");
        return;
    }
    T_ASSERT(box_init(&b) == 0);
    T_EQ_INT(apply(&b, NONE, l, N(l), NULL, &st, &err), 0);
    T_ASSERT(lstat_in(b.root, "suid", &sb) == 0);
    T_EQ_INT(sb.st_uid, 1234);
    T_EQ_INT(sb.st_gid, 2345);
    T_EQ_INT(sb.st_mode & 07777, 04755);
    T_ASSERT(lstat_in(b.root, "owned", &sb) == 0);
    T_EQ_INT(sb.st_uid, 1111);
    T_EQ_INT(sb.st_mode & 07777, 0700);
    T_ASSERT(lstat_in(b.root, "lnk", &sb) == 0 && S_ISLNK(sb.st_mode));
    T_EQ_INT(sb.st_uid, 3333);
    T_ASSERT(lstat_in(b.root, "null", &sb) == 0 && S_ISCHR(sb.st_mode));
    T_EQ_INT(major(sb.st_rdev), 1);
    T_EQ_INT(minor(sb.st_rdev), 3);
    T_ASSERT(lstat_in(b.root, "fifo", &sb) == 0 && S_ISFIFO(sb.st_mode));
    T_EQ_INT(st.devices, 2);
    T_EQ_INT(st.skipped, 0);
    box_free(&b);
}

T_CASE(rootless_mode)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    hp_unpack_stats st;
    hp_unpack_opts o = {.rootless = 1};
    struct stat sb;
    static const struct tent l[] = {
        {"suid", 'f', "x", 06755, 1234, 2345}, {"null", 'c', NULL, 0, 0, 0},
        {"fifo", 'p', NULL, 0, 0, 0},          {"ro/", 'd', NULL, 0555, 0, 0},
        {"ro/f", 'f', "f", 0, 0, 0},
    };
    static const struct tent l2[] = {{"ro/g", 'f', "g", 0, 0, 0},
                                     {"locked/", 'd', NULL, 0700, 0, 0},
                                     {"locked/inner/", 'd', NULL, 0750, 0, 0},
                                     {"locked/", 'd', NULL, -1, 0, 0}};
    T_ASSERT(box_init(&b) == 0);
    T_EQ_INT(apply(&b, NONE, l, N(l), &o, &st, &err), 0);
    T_ASSERT(lstat_in(b.root, "suid", &sb) == 0);
    T_EQ_INT(sb.st_uid, geteuid());
    T_EQ_INT(sb.st_mode & 07777, 0755); /* setuid/setgid dropped */
    T_ASSERT(!exists_in(b.root, "null"));
    T_ASSERT(lstat_in(b.root, "fifo", &sb) == 0 && S_ISFIFO(sb.st_mode));
    T_EQ_INT(st.skipped, 1);
    T_EQ_INT(st.devices, 1);
    T_ASSERT(lstat_in(b.root, "ro", &sb) == 0);
    T_EQ_INT(sb.st_mode & 0777, 0555);
    /* A later layer can still write into the lower read-only dir; mode restored. */
    T_EQ_INT(apply(&b, NONE, l2, N(l2), &o, &st, &err), 0);
    T_EQ_STR(slurp(b.root, "ro/g"), "g");
    T_ASSERT(lstat_in(b.root, "ro", &sb) == 0);
    T_EQ_INT(sb.st_mode & 0777, 0555);
    /* "locked" ends up 0000 (its later record wins) and its child still got 0750 */
    T_ASSERT(lstat_in(b.root, "locked", &sb) == 0);
    T_EQ_INT(sb.st_mode & 0777, 0);
    T_ASSERT(chmod(b.root, 0755) == 0);
    char lp[256];
    snprintf(lp, sizeof lp, "%s/locked", b.root);
    T_ASSERT(chmod(lp, 0700) == 0);
    T_ASSERT(lstat_in(b.root, "locked/inner", &sb) == 0);
    T_EQ_INT(sb.st_mode & 0777, 0750);
    box_free(&b);
}

/* A real unprivileged process (uid 65534) unpacking into a directory it owns. */
T_CASE(unprivileged_process)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    struct stat sb;
    static const struct tent l1[] = {
        {"suid", 'f', "x", 04755, 0, 0},       {"null", 'c', NULL, 0, 0, 0},
        {"ro/", 'd', NULL, 0555, 0, 0},        {"ro/f", 'f', "f", 0, 0, 0},
        {"locked/", 'd', NULL, 0700, 0, 0},    {"locked/inner/", 'd', NULL, 0750, 0, 0},
        {"locked/inner/z", 'f', "z", 0, 0, 0}, {"locked/", 'd', NULL, 0400, 0, 0},
    };
    static const struct tent l2[] = {{"ro/g", 'f', "g", 0, 0, 0}, {"locked/inner/.wh.z", 'f'}};
    char l2path[120];
    if (geteuid() != 0) {
        fprintf(stderr, "  (not root: cannot switch to uid 65534; skipped)\n");
        return;
    }
    T_ASSERT(box_init(&b) == 0);
    T_ASSERT(chmod(b.base, 0755) == 0);
    T_ASSERT(chown(b.root, 65534, 65534) == 0);
    T_ASSERT(make_tar(b.layer, GZIP, l1, N(l1)) == 0);
    snprintf(l2path, sizeof l2path, "%s/layer2.tar", b.base);
    char saved[128];
    snprintf(saved, sizeof saved, "%s", b.layer);
    snprintf(b.layer, sizeof b.layer, "%s", l2path);
    T_ASSERT(make_tar(b.layer, NONE, l2, N(l2)) == 0);
    snprintf(b.layer, sizeof b.layer, "%s", saved);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        hp_unpack_stats st;
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
            _exit(10);
        if (hp_unpack_layer_path(b.root, saved, NULL, &st, &err) < 0) {
            fprintf(stderr, "  child: %s\n", err.msg);
            _exit(11);
        }
        if (st.skipped != 1)
            _exit(12);
        if (hp_unpack_layer_path(b.root, l2path, NULL, &st, &err) < 0) {
            fprintf(stderr, "  child layer 2: %s\n", err.msg);
            _exit(13);
        }
        _exit(0);
    }
    int status;
    T_EQ_INT(waitpid(pid, &status, 0), pid);
    T_ASSERT(WIFEXITED(status));
    T_EQ_INT(WEXITSTATUS(status), 0);
    T_ASSERT(lstat_in(b.root, "suid", &sb) == 0);
    T_EQ_INT(sb.st_uid, 65534);
    T_EQ_INT(sb.st_mode & 07777, 0755);
    T_ASSERT(!exists_in(b.root, "null"));
    T_EQ_STR(slurp(b.root, "ro/g"), "g");
    T_ASSERT(lstat_in(b.root, "ro", &sb) == 0);
    T_EQ_INT(sb.st_mode & 0777, 0555);
    T_ASSERT(lstat_in(b.root, "locked", &sb) == 0);
    T_EQ_INT(sb.st_mode & 0777, 0400); /* no search bit: children were finished first */
    T_ASSERT(lstat_in(b.root, "locked/inner", &sb) == 0);
    T_EQ_INT(sb.st_mode & 0777, 0750);
    T_ASSERT(exists_in(b.root, "locked/inner"));
    T_ASSERT(!exists_in(b.root, "locked/inner/z"));
    T_ASSERT(box_unchanged(&b));
    box_free(&b);
}

T_CASE(xattrs_user_namespace)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    struct archive *a;
    struct archive_entry *e;
    char p[256], v[32];
    T_ASSERT(box_init(&b) == 0);
    a = archive_write_new();
    archive_write_set_format_pax(a);
    T_ASSERT(archive_write_open_filename(a, b.layer) == ARCHIVE_OK);
    e = archive_entry_new();
    archive_entry_set_pathname(e, "xf");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 0);
    archive_entry_xattr_add_entry(e, "user.hpcri", "yes", 3);
    archive_entry_xattr_add_entry(e, "trusted.evil", "no", 2);
    T_ASSERT(archive_write_header(a, e) == ARCHIVE_OK);
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
    T_EQ_INT(hp_unpack_layer_path(b.root, b.layer, NULL, NULL, &err), 0);
    snprintf(p, sizeof p, "%s/xf", b.root);
    T_ASSERT(exists_in(b.root, "xf"));
    ssize_t n = lgetxattr(p, "user.hpcri", v, sizeof v);
    if (n < 0 && errno == ENOTSUP) {
        fprintf(stderr, "  (no user xattrs on /tmp: skipped)\n");
    } else {
        T_EQ_INT(n, 3);
        T_ASSERT(memcmp(v, "yes", 3) == 0);
    }
    T_ASSERT(lgetxattr(p, "trusted.evil", v, sizeof v) < 0);
    box_free(&b);
}

/* ---------------- malicious layers ---------------- */

static void expect_refused_mode(int *t_failed, const struct tent *ents, size_t n,
                                const char *needle, int no_openat2);

/* Both path resolvers (openat2 fast path, manual walk) must refuse. */
static void expect_refused(int *t_failed, const struct tent *ents, size_t n, const char *needle)
{
    expect_refused_mode(t_failed, ents, n, needle, 0);
    if (*t_failed)
        return;
    expect_refused_mode(t_failed, ents, n, needle, 1);
}

static void expect_refused_mode(int *t_failed, const struct tent *ents, size_t n,
                                const char *needle, int no_openat2)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    hp_unpack_opts o = {.no_openat2 = no_openat2};
    T_ASSERT(box_init(&b) == 0);
    int rc = apply(&b, GZIP, ents, n, &o, NULL, &err);
    if (rc != -1 || err.code != HP_INVALID_ARGUMENT || strstr(err.msg, needle) == NULL) {
        T_FAIL("expected INVALID_ARGUMENT with \"%s\", got rc=%d code=%d msg=%s", needle, rc,
               err.code, err.msg);
    }
    T_ASSERT(box_unchanged(&b));
    T_EQ_STR(slurp(b.outside, "secret"), "secret");
    box_free(&b);
}

T_CASE(evil_dotdot)
{
    static const struct tent l[] = {{"../../x", 'f', "pwned", 0, 0, 0}};
    expect_refused(t_failed, l, N(l), "escapes the root");
}

T_CASE(evil_dotdot_inner)
{
    static const struct tent l[] = {{"a/../../../../outside/secret", 'f', "pwned", 0, 0, 0}};
    expect_refused(t_failed, l, N(l), "escapes the root");
}

T_CASE(dotdot_that_stays_inside_is_cleaned)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    static const struct tent l[] = {{"a/b/../c", 'f', "c", 0, 0, 0}};
    T_ASSERT(box_init(&b) == 0);
    T_EQ_INT(apply(&b, NONE, l, N(l), NULL, NULL, &err), 0);
    T_EQ_STR(slurp(b.root, "a/c"), "c");
    T_ASSERT(box_unchanged(&b));
    box_free(&b);
}

T_CASE(evil_absolute_is_confined)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    char abs[256];
    T_ASSERT(box_init(&b) == 0);
    snprintf(abs, sizeof abs, "%s/pwned", b.outside);
    struct tent l[] = {{abs, 'f', "pwned", 0, 0, 0}};
    T_EQ_INT(apply(&b, NONE, l, N(l), NULL, NULL, &err), 0);
    T_ASSERT(box_unchanged(&b));
    T_EQ_STR(slurp(b.root, abs + 1), "pwned"); /* landed inside, under the root */
    box_free(&b);
}

static void symlink_parent(int *t_failed, int no_openat2)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    hp_unpack_opts o = {.no_openat2 = no_openat2};
    T_ASSERT(box_init(&b) == 0);
    struct tent l[] = {{"evil", 'l', b.outside, 0, 0, 0}, {"evil/pwned", 'f', "pwned", 0, 0, 0}};
    T_EQ_INT(apply(&b, GZIP, l, N(l), &o, NULL, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_ASSERT(strstr(err.msg, "symlink") != NULL);
    T_ASSERT(box_unchanged(&b));
    /* Same across layers: the link from layer 1, the file in layer 2. */
    T_EQ_INT(apply(&b, NONE, l, 1, &o, NULL, &err), 0);
    T_EQ_INT(apply(&b, NONE, l + 1, 1, &o, NULL, &err), -1);
    T_ASSERT(strstr(err.msg, "symlink") != NULL);
    /* and a deeper path through it; and through a regular directory first */
    struct tent l3[] = {{"evil/a/b/c", 'f', "pwned", 0, 0, 0}};
    T_EQ_INT(apply(&b, NONE, l3, 1, &o, NULL, &err), -1);
    struct tent l4[] = {{"real/", 'd', NULL, 0, 0, 0},
                        {"real/ln", 'l', "../evil", 0, 0, 0},
                        {"real/ln/x", 'f', "pwned", 0, 0, 0}};
    T_EQ_INT(apply(&b, NONE, l4, 3, &o, NULL, &err), -1);
    T_ASSERT(strstr(err.msg, "real/ln") != NULL);
    T_ASSERT(box_unchanged(&b));
    box_free(&b);
}

T_CASE(evil_symlink_parent)
{
    symlink_parent(t_failed, 0);
}

T_CASE(evil_symlink_parent_manual_walk)
{
    symlink_parent(t_failed, 1);
}

T_CASE(evil_symlink_chain_to_dotdot)
{
    static const struct tent l[] = {
        {"a", 'l', "..", 0, 0, 0},
        {"b", 'l', "a/../..", 0, 0, 0},
        {"c", 'l', "b/outside", 0, 0, 0},
        {"c/pwned", 'f', "pwned", 0, 0, 0},
    };
    static const struct tent l2[] = {
        {"a", 'l', "..", 0, 0, 0},
        {"a/a/a/outside/pwned", 'f', "pwned", 0, 0, 0},
    };
    expect_refused(t_failed, l, N(l), "symlink");
    expect_refused(t_failed, l2, N(l2), "symlink");
}

T_CASE(evil_hardlink_etc_passwd)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    struct stat before, after, sb;
    static const struct tent l[] = {{"hl", 'h', "/etc/passwd", 0, 0, 0}};
    static const struct tent own[] = {{"etc/passwd", 'f', "root:x:0:0::/:/bin/sh\n", 0, 0, 0}};
    T_ASSERT(stat("/etc/passwd", &before) == 0);
    T_ASSERT(box_init(&b) == 0);
    /* Target does not exist inside the root: refused. */
    T_EQ_INT(apply(&b, NONE, l, N(l), NULL, NULL, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_ASSERT(!exists_in(b.root, "hl"));
    /* With the root's own /etc/passwd, the link resolves inside the root. */
    T_EQ_INT(apply(&b, NONE, own, N(own), NULL, NULL, &err), 0);
    T_EQ_INT(apply(&b, NONE, l, N(l), NULL, NULL, &err), 0);
    T_ASSERT(lstat_in(b.root, "hl", &sb) == 0);
    T_ASSERT(stat("/etc/passwd", &after) == 0);
    T_ASSERT(sb.st_ino != after.st_ino || sb.st_dev != after.st_dev);
    T_EQ_INT(after.st_nlink, before.st_nlink);
    T_EQ_STR(slurp(b.root, "hl"), "root:x:0:0::/:/bin/sh\n");
    T_ASSERT(box_unchanged(&b));
    box_free(&b);
}

T_CASE(evil_hardlink_dotdot)
{
    static const struct tent l[] = {{"hl", 'h', "../../../outside/secret", 0, 0, 0}};
    expect_refused(t_failed, l, N(l), "escapes the root");
}

T_CASE(evil_hardlink_through_symlink)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    struct stat sb;
    char sec[256];
    T_ASSERT(box_init(&b) == 0);
    snprintf(sec, sizeof sec, "%s/secret", b.outside);
    T_ASSERT(stat(sec, &sb) == 0);
    nlink_t nl = sb.st_nlink;
    struct tent l[] = {{"s", 'l', b.outside, 0, 0, 0}, {"hl", 'h', "s/secret", 0, 0, 0}};
    T_EQ_INT(apply(&b, GZIP, l, N(l), NULL, NULL, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_ASSERT(strstr(err.msg, "symlink") != NULL);
    T_ASSERT(stat(sec, &sb) == 0);
    T_EQ_INT(sb.st_nlink, nl);
    /* A hard link to the symlink itself is fine: it links the link. */
    struct tent l2[] = {{"s2", 'l', sec, 0, 0, 0}, {"hl2", 'h', "s2", 0, 0, 0}};
    T_EQ_INT(apply(&b, NONE, l2, N(l2), NULL, NULL, &err), 0);
    T_ASSERT(lstat_in(b.root, "hl2", &sb) == 0 && S_ISLNK(sb.st_mode));
    T_ASSERT(stat(sec, &sb) == 0);
    T_EQ_INT(sb.st_nlink, nl);
    T_ASSERT(box_unchanged(&b));
    box_free(&b);
}

T_CASE(evil_file_over_outside_symlink)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    char sec[256];
    struct stat sb;
    T_ASSERT(box_init(&b) == 0);
    snprintf(sec, sizeof sec, "%s/secret", b.outside);
    struct tent l1[] = {{"link", 'l', sec, 0, 0, 0}};
    struct tent l2[] = {{"link", 'f', "overwritten?", 0, 0, 0}};
    T_EQ_INT(apply(&b, NONE, l1, N(l1), NULL, NULL, &err), 0);
    T_EQ_INT(apply(&b, GZIP, l2, N(l2), NULL, NULL, &err), 0);
    T_EQ_STR(slurp(b.outside, "secret"), "secret");
    T_ASSERT(lstat_in(b.root, "link", &sb) == 0 && S_ISREG(sb.st_mode));
    T_EQ_STR(slurp(b.root, "link"), "overwritten?");
    /* and within one layer */
    struct tent l3[] = {{"link2", 'l', sec, 0, 0, 0}, {"link2", 'f', "again", 0, 0, 0}};
    T_EQ_INT(apply(&b, NONE, l3, N(l3), NULL, NULL, &err), 0);
    T_EQ_STR(slurp(b.outside, "secret"), "secret");
    T_EQ_STR(slurp(b.root, "link2"), "again");
    /* a directory entry over an outside dir symlink replaces the link */
    struct tent l4[] = {{"dl", 'l', b.outside, 0, 0, 0}, {"dl/", 'd', NULL, 0700, 0, 0}};
    T_EQ_INT(apply(&b, NONE, l4, N(l4), NULL, NULL, &err), 0);
    T_ASSERT(lstat_in(b.root, "dl", &sb) == 0 && S_ISDIR(sb.st_mode));
    T_ASSERT(box_unchanged(&b));
    box_free(&b);
}

T_CASE(evil_whiteout_dotdot)
{
    static const struct tent l[] = {{"../.wh.outside", 'f', NULL, 0, 0, 0}};
    static const struct tent l2[] = {{"sub/.wh...", 'f', NULL, 0, 0, 0}};
    static const struct tent l3[] = {{".wh..", 'f', NULL, 0, 0, 0}};
    expect_refused(t_failed, l, N(l), "escapes the root");
    expect_refused(t_failed, l2, N(l2), "whiteout names no valid file");
    expect_refused(t_failed, l3, N(l3), "whiteout names no valid file");
}

T_CASE(evil_whiteout_through_symlink)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    T_ASSERT(box_init(&b) == 0);
    struct tent l1[] = {{"s", 'l', b.outside, 0, 0, 0}};
    static const struct tent l2[] = {{"s/.wh.secret", 'f', NULL, 0, 0, 0}};
    static const struct tent l3[] = {{"s/.wh..wh..opq", 'f', NULL, 0, 0, 0}};
    T_EQ_INT(apply(&b, NONE, l1, N(l1), NULL, NULL, &err), 0);
    T_EQ_INT(apply(&b, NONE, l2, N(l2), NULL, NULL, &err), -1);
    T_ASSERT(strstr(err.msg, "symlink") != NULL);
    T_EQ_INT(apply(&b, NONE, l3, N(l3), NULL, NULL, &err), -1);
    T_ASSERT(strstr(err.msg, "symlink") != NULL);
    T_EQ_STR(slurp(b.outside, "secret"), "secret");
    T_ASSERT(box_unchanged(&b));
    box_free(&b);
}

T_CASE(evil_root_replacement)
{
    static const struct tent l[] = {{"/", 'l', "/", 0, 0, 0}};
    expect_refused(t_failed, l, N(l), "replaces the root");
}

/* ---------------- limits and corrupt input ---------------- */

T_CASE(limit_entries)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    hp_unpack_opts o = {.max_entries = 5};
    struct tent l[10];
    char names[10][8];
    for (int i = 0; i < 10; i++) {
        snprintf(names[i], sizeof names[i], "f%d", i);
        l[i] = (struct tent){names[i], 'f', "x", 0, 0, 0};
    }
    T_ASSERT(box_init(&b) == 0);
    T_EQ_INT(apply(&b, NONE, l, 10, &o, NULL, &err), -1);
    T_EQ_INT(err.code, HP_RESOURCE_EXHAUSTED);
    T_ASSERT(!exists_in(b.root, "f5"));
    o.max_entries = 10;
    T_EQ_INT(apply(&b, NONE, l, 10, &o, NULL, &err), 0);
    box_free(&b);
}

T_CASE(limit_bytes)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    hp_unpack_opts o = {.max_bytes = 1000};
    static char big[2001];
    memset(big, 'z', 2000);
    struct tent l[] = {{"big", 'f', big, 0, 0, 0}};
    T_ASSERT(box_init(&b) == 0);
    T_EQ_INT(apply(&b, GZIP, l, 1, &o, NULL, &err), -1);
    T_EQ_INT(err.code, HP_RESOURCE_EXHAUSTED);
    o.max_bytes = 100000;
    T_EQ_INT(apply(&b, GZIP, l, 1, &o, NULL, &err), 0);
    box_free(&b);
}

/* A gzip bomb: 64 MiB of zeros after the end-of-archive marker. */
T_CASE(limit_stream_bomb)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    hp_unpack_opts o = {.max_bytes = 1 << 20};
    T_ASSERT(box_init(&b) == 0);
    struct archive *a = archive_write_new();
    archive_write_add_filter_gzip(a);
    archive_write_set_format_raw(a);
    T_ASSERT(archive_write_open_filename(a, b.layer) == ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_filetype(e, AE_IFREG);
    archive_write_header(a, e);
    archive_entry_free(e);
    static char zero[65536];
    for (int i = 0; i < 1024; i++)
        archive_write_data(a, zero, sizeof zero);
    archive_write_close(a);
    archive_write_free(a);
    T_EQ_INT(hp_unpack_layer_path(b.root, b.layer, &o, NULL, &err), -1);
    T_EQ_INT(err.code, HP_RESOURCE_EXHAUSTED);
    box_free(&b);
}

T_CASE(corrupt_inputs)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    static char big[100001];
    memset(big, 'q', 100000);
    struct tent l[] = {{"f", 'f', big, 0, 0, 0}};
    T_ASSERT(box_init(&b) == 0);
    T_ASSERT(make_tar(b.layer, GZIP, l, 1) == 0);
    struct stat sb;
    T_ASSERT(stat(b.layer, &sb) == 0);
    T_ASSERT(truncate(b.layer, sb.st_size / 2) == 0);
    T_EQ_INT(hp_unpack_layer_path(b.root, b.layer, NULL, NULL, &err), -1);
    T_EQ_INT(err.code, HP_DATA_LOSS);
    /* uncompressed, truncated mid-file */
    T_ASSERT(make_tar(b.layer, NONE, l, 1) == 0);
    T_ASSERT(truncate(b.layer, 5000) == 0);
    T_EQ_INT(hp_unpack_layer_path(b.root, b.layer, NULL, NULL, &err), -1);
    T_EQ_INT(err.code, HP_DATA_LOSS);
    /* not a tar at all */
    FILE *f = fopen(b.layer, "w");
    T_ASSERT(f != NULL);
    for (int i = 0; i < 3000; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    T_EQ_INT(hp_unpack_layer_path(b.root, b.layer, NULL, NULL, &err), -1);
    T_EQ_INT(err.code, HP_DATA_LOSS);
    /* empty file */
    f = fopen(b.layer, "w");
    fclose(f);
    T_EQ_INT(hp_unpack_layer_path(b.root, b.layer, NULL, NULL, &err), -1);
    T_EQ_INT(err.code, HP_DATA_LOSS);
    /* target is not a directory / does not exist */
    T_EQ_INT(hp_unpack_layer_path("/nonexistent-hpcri", b.layer, NULL, NULL, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    box_free(&b);
}

T_CASE(remove_tree)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    char p[256];
    T_ASSERT(box_init(&b) == 0);
    snprintf(p, sizeof p, "%s/a/b/root/x", b.base);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/a/b/root/x/y", b.base);
    mkdir(p, 0555);
    snprintf(p, sizeof p, "%s/a/b/root/x/out", b.base);
    T_ASSERT(symlink(b.outside, p) == 0);
    int fd = open(b.root, O_RDONLY | O_DIRECTORY);
    T_EQ_INT(hp_remove_tree_at(fd, "x", &err), 0);
    T_EQ_INT(hp_remove_tree_at(fd, "x", &err), 0); /* missing: fine */
    T_EQ_INT(hp_remove_tree_at(fd, "../x", &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    close(fd);
    T_ASSERT(!exists_in(b.root, "x"));
    T_EQ_STR(slurp(b.outside, "secret"), "secret");
    box_free(&b);
}

/* ---------------- throughput ---------------- */

T_CASE(big_zero_file_gzip)
{
    struct box b;
    hp_err err = HP_ERR_INIT;
    hp_unpack_stats st;
    const long long size = 200ll << 20;
    struct timespec t0, t1;
    T_ASSERT(box_init(&b) == 0);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_gzip(a);
    archive_write_set_filter_option(a, "gzip", "compression-level", "1");
    T_ASSERT(archive_write_open_filename(a, b.layer) == ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "zeros");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, size);
    T_ASSERT(archive_write_header(a, e) == ARCHIVE_OK);
    archive_entry_free(e);
    static char zero[1 << 20];
    for (long long i = 0; i < size; i += sizeof zero)
        archive_write_data(a, zero, sizeof zero);
    archive_write_close(a);
    archive_write_free(a);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    T_EQ_INT(hp_unpack_layer_path(b.root, b.layer, NULL, &st, &err), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    struct stat sb;
    T_ASSERT(lstat_in(b.root, "zeros", &sb) == 0);
    T_EQ_INT(sb.st_size, size);
    T_EQ_INT(st.bytes, size);
    fprintf(stderr, "  200 MiB gzip zero layer: %.2f s, %.0f MiB/s (uncompressed)\n", secs,
            200.0 / secs);
    box_free(&b);
}

T_MAIN()
