/* Local image import (see import.h). */
#include "image/import.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/content.h"
#include "image/image_int.h"
#include "image/imgref.h"
#include "image/unpack.h"
#include "util/cleanup.h"
#include "util/log.h"

#define SMALL_MAX    ((size_t)HP_MANIFEST_MAX_SIZE) /* documents kept in memory */
#define MEM_TOTAL    ((size_t)64 << 20)             /* all in-memory entries together */
#define MAX_ENTRIES  100000
#define ALIAS_DEPTH  8
#define COPY_BUFSIZE (256 * 1024)

struct entry {
    char *name;   /* cleaned relative name */
    char *alias;  /* symlink: cleaned name it points to */
    char *digest; /* stored in the content store under this digest */
    int64_t size;
    char *data; /* or kept in memory */
    size_t len;
};

struct src {
    hp_image_service *svc;
    int dirfd; /* directory import; -1 for an archive */
    struct entry *e;
    size_t n, cap, mem;
};

static void src_free(struct src *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->e[i].name);
        free(s->e[i].alias);
        free(s->e[i].digest);
        free(s->e[i].data);
    }
    free(s->e);
    if (s->dirfd >= 0)
        close(s->dirfd);
}

/* Clean an archive-relative name: drop "./" and leading '/'?  No: absolute
 * names and ".." components are refused (an archive that tries to climb out is
 * malicious).  Writes the result into out.  base (may be NULL) is the
 * directory a relative symlink target is resolved against. */
static int clean_name(const char *base, const char *name, char *out, size_t outlen, hp_err *err)
{
    char buf[4096];
    size_t o = 0;
    const char *p;
    if (name[0] == '/')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "archive entry \"%.512s\" is absolute", name);
    if (snprintf(buf, sizeof buf, "%s%s%s", base ? base : "", base && base[0] ? "/" : "", name) >=
        (int)sizeof buf)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "archive entry name too long");
    p = buf;
    out[0] = '\0';
    while (*p) {
        size_t len = strcspn(p, "/");
        if (len == 0 || (len == 1 && p[0] == '.')) {
            /* skip */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            return hp_err_set(err, HP_INVALID_ARGUMENT,
                              "archive entry \"%.512s\" contains \"..\" (path traversal)", name);
        } else {
            if (o + len + 2 > outlen)
                return hp_err_set(err, HP_INVALID_ARGUMENT, "archive entry name too long");
            if (o)
                out[o++] = '/';
            memcpy(out + o, p, len);
            o += len;
            out[o] = '\0';
        }
        p += len;
        if (*p == '/')
            p++;
    }
    return 0;
}

static struct entry *find_entry(struct src *s, const char *name)
{
    for (int depth = 0; depth < ALIAS_DEPTH; depth++) {
        struct entry *hit = NULL;
        for (size_t i = s->n; i-- > 0;)
            if (strcmp(s->e[i].name, name) == 0) {
                hit = &s->e[i];
                break;
            }
        if (hit == NULL || hit->alias == NULL)
            return hit;
        name = hit->alias;
    }
    return NULL;
}

static struct entry *add_entry(struct src *s, const char *name, hp_err *err)
{
    struct entry *e;
    if (s->n >= MAX_ENTRIES) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "archive has more than %d entries", MAX_ENTRIES);
        return NULL;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 32;
        void *p = realloc(s->e, cap * sizeof *s->e);
        if (p == NULL) {
            hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
            return NULL;
        }
        s->e = p;
        s->cap = cap;
    }
    e = &s->e[s->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (e->name == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    s->n++;
    return e;
}

static void to_hex(const unsigned char *md, char out[72])
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[71] = '\0';
}

static void sha256_mem(const void *data, size_t len, char out[72])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int l = 0;
    EVP_Digest(data, len, md, &l, EVP_sha256(), NULL);
    to_hex(md, out);
}

/* "blobs/sha256/<64 hex>" -> "sha256:<hex>" in out; else 0. */
static int blob_name_digest(const char *name, char out[72])
{
    const char *h;
    if (strncmp(name, "blobs/sha256/", 13) != 0)
        return 0;
    h = name + 13;
    if (strlen(h) != 64 || strspn(h, "0123456789abcdef") != 64)
        return 0;
    snprintf(out, 72, "sha256:%s", h);
    return 1;
}

/* Copy fd (to its end) into the content store as `digest` (verified). */
static int store_from_fd(hp_image_service *svc, int fd, const char *digest, int64_t size,
                         hp_err *err)
{
    hp_content_writer *w = NULL;
    int present = 0;
    _cleanup_free_ char *buf = NULL;
    if (hp_content_begin(svc->cs, digest, size, &w, &present, err) < 0)
        return -1;
    if (present)
        return 0;
    buf = malloc(COPY_BUFSIZE);
    if (buf == NULL) {
        hp_content_abort(w);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (;;) {
        ssize_t r = read(fd, buf, COPY_BUFSIZE);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            hp_err_sys(err, HP_INTERNAL, "read");
            hp_content_abort(w);
            return -1;
        }
        if (r == 0)
            break;
        if (hp_content_write(w, buf, (size_t)r, err) < 0) {
            hp_content_abort(w);
            return -1;
        }
    }
    return hp_content_commit(w, err);
}

/* sha256 of fd's content from its current offset to the end. */
static int hash_fd(int fd, char out[72], int64_t *size, hp_err *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    _cleanup_free_ char *buf = malloc(COPY_BUFSIZE);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int l = 0;
    int rc = 0;
    *size = 0;
    if (ctx == NULL || buf == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (;;) {
        ssize_t r = read(fd, buf, COPY_BUFSIZE);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = hp_err_sys(err, HP_INTERNAL, "read");
            break;
        }
        if (r == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)r);
        *size += r;
    }
    if (rc == 0) {
        EVP_DigestFinal_ex(ctx, md, &l);
        to_hex(md, out);
    }
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* ---- reading an archive ------------------------------------------------- */

struct arch_sink {
    struct archive *a;
    hp_content_writer *w; /* into the store, digest known */
    int fd;               /* or a scratch file */
    EVP_MD_CTX *md;
};

static int ingest_archive(struct src *s, const char *path, const char *scratch, hp_err *err)
{
    struct archive *a = archive_read_new();
    struct archive_entry *ae;
    char *buf = NULL;
    int rc = -1, r;
    unsigned scratch_n = 0;

    if (a == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    /* Built-in filters only (no external programs on untrusted input). */
    archive_read_support_filter_none(a);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "%s: %s", path, archive_error_string(a));
        goto out;
    }
    buf = malloc(COPY_BUFSIZE);
    if (buf == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
        const char *raw = archive_entry_pathname(ae);
        char name[4096], digest[72];
        mode_t type = archive_entry_filetype(ae);
        int64_t size = archive_entry_size(ae);
        struct entry *e;

        if (raw == NULL) {
            hp_err_set(err, HP_INVALID_ARGUMENT, "%s: entry without a name", path);
            goto out;
        }
        if (clean_name(NULL, raw, name, sizeof name, err) < 0) {
            hp_err_wrap(err, "%s", path);
            goto out;
        }
        if (archive_entry_hardlink(ae) != NULL) {
            char target[4096];
            if (clean_name(NULL, archive_entry_hardlink(ae), target, sizeof target, err) < 0 ||
                (e = add_entry(s, name, err)) == NULL || (e->alias = strdup(target)) == NULL) {
                if (err->code == HP_OK)
                    hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
                hp_err_wrap(err, "%s", path);
                goto out;
            }
            continue;
        }
        if (type == AE_IFLNK) {
            char dir[4096], target[4096];
            const char *t = archive_entry_symlink(ae);
            char *slash;
            snprintf(dir, sizeof dir, "%s", name);
            slash = strrchr(dir, '/');
            if (slash)
                *slash = '\0';
            else
                dir[0] = '\0';
            if (t == NULL || clean_name(dir, t, target, sizeof target, err) < 0 ||
                (e = add_entry(s, name, err)) == NULL || (e->alias = strdup(target)) == NULL) {
                if (err->code == HP_OK)
                    hp_err_set(err, HP_INVALID_ARGUMENT, "bad symlink %s", name);
                hp_err_wrap(err, "%s", path);
                goto out;
            }
            continue;
        }
        if (type != AE_IFREG)
            continue; /* directories and anything else: nothing to keep */
        if (size < 0) {
            hp_err_set(err, HP_INVALID_ARGUMENT, "%s: entry %s has no size", path, name);
            goto out;
        }
        if ((e = add_entry(s, name, err)) == NULL)
            goto out;
        e->size = size;
        if ((size_t)size <= SMALL_MAX) {
            if (s->mem + (size_t)size > MEM_TOTAL) {
                hp_err_set(err, HP_RESOURCE_EXHAUSTED, "%s: more than %zu MiB of small files", path,
                           MEM_TOTAL >> 20);
                goto out;
            }
            e->data = malloc((size_t)size + 1);
            if (e->data == NULL) {
                hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
                goto out;
            }
            while (e->len < (size_t)size) {
                la_ssize_t n = archive_read_data(a, e->data + e->len, (size_t)size - e->len);
                if (n <= 0) {
                    hp_err_set(err, HP_DATA_LOSS, "%s: entry %s: %s", path, name,
                               n < 0 ? archive_error_string(a) : "truncated");
                    goto out;
                }
                e->len += (size_t)n;
            }
            e->data[e->len] = '\0';
            s->mem += e->len;
            continue;
        }
        if (blob_name_digest(name, digest)) {
            /* Large blob named by its digest: straight into the store. */
            hp_content_writer *w = NULL;
            int present = 0;
            if (hp_content_begin(s->svc->cs, digest, size, &w, &present, err) < 0)
                goto out;
            while (!present) {
                la_ssize_t n = archive_read_data(a, buf, COPY_BUFSIZE);
                if (n < 0) {
                    hp_err_set(err, HP_DATA_LOSS, "%s: entry %s: %s", path, name,
                               archive_error_string(a));
                    hp_content_abort(w);
                    goto out;
                }
                if (n == 0)
                    break;
                if (hp_content_write(w, buf, (size_t)n, err) < 0) {
                    hp_content_abort(w);
                    goto out;
                }
            }
            if (!present && hp_content_commit(w, err) < 0) {
                hp_err_wrap(err, "%s: entry %s", path, name);
                goto out;
            }
            e->digest = strdup(digest);
        } else {
            /* Large file without a digest (docker save layer.tar): hash it
             * into a scratch file, then store it under that hash. */
            char sp[4096];
            _cleanup_close_ int fd = -1;
            EVP_MD_CTX *ctx = EVP_MD_CTX_new();
            unsigned char md[EVP_MAX_MD_SIZE];
            unsigned int l = 0;
            snprintf(sp, sizeof sp, "%s/%u", scratch, scratch_n++);
            fd = open(sp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
            if (fd < 0 || ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(ctx);
                hp_err_sys(err, HP_INTERNAL, "scratch file %s", sp);
                goto out;
            }
            for (;;) {
                la_ssize_t n = archive_read_data(a, buf, COPY_BUFSIZE);
                if (n < 0) {
                    EVP_MD_CTX_free(ctx);
                    hp_err_set(err, HP_DATA_LOSS, "%s: entry %s: %s", path, name,
                               archive_error_string(a));
                    goto out;
                }
                if (n == 0)
                    break;
                EVP_DigestUpdate(ctx, buf, (size_t)n);
                for (la_ssize_t off = 0; off < n;) {
                    ssize_t w = write(fd, buf + off, (size_t)(n - off));
                    if (w < 0 && errno == EINTR)
                        continue;
                    if (w < 0) {
                        EVP_MD_CTX_free(ctx);
                        hp_err_sys(err, HP_INTERNAL, "write %s", sp);
                        goto out;
                    }
                    off += w;
                }
            }
            EVP_DigestFinal_ex(ctx, md, &l);
            EVP_MD_CTX_free(ctx);
            to_hex(md, digest);
            if (lseek(fd, 0, SEEK_SET) < 0 || store_from_fd(s->svc, fd, digest, size, err) < 0) {
                if (err->code == HP_OK)
                    hp_err_sys(err, HP_INTERNAL, "seek %s", sp);
                goto out;
            }
            unlink(sp);
            e->digest = strdup(digest);
        }
        if (e->digest == NULL) {
            hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
    }
    if (r != ARCHIVE_EOF) {
        hp_err_set(err, HP_DATA_LOSS, "%s: %s", path, archive_error_string(a));
        goto out;
    }
    rc = 0;
out:
    free(buf);
    archive_read_free(a);
    return rc;
}

/* ---- uniform access ----------------------------------------------------- */

/* Open `name` below dirfd without following any symlink. */
static int open_beneath(int dirfd, const char *name, hp_err *err)
{
    char clean[4096], *p, *slash;
    int fd;
    if (clean_name(NULL, name, clean, sizeof clean, err) < 0)
        return -1;
    fd = dup(dirfd);
    p = clean;
    while (fd >= 0 && (slash = strchr(p, '/')) != NULL) {
        int next;
        *slash = '\0';
        next = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        fd = next;
        p = slash + 1;
    }
    if (fd >= 0) {
        int f = openat(fd, p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        fd = f;
    }
    if (fd < 0)
        return hp_err_sys(err, errno == ENOENT ? HP_NOT_FOUND : HP_INVALID_ARGUMENT, "%.512s",
                          name);
    return fd;
}

/* A small document by name: *data is malloc'd (NUL-terminated), caller frees.
 * NOT_FOUND when absent. */
static int src_read(struct src *s, const char *name, char **data, size_t *len, hp_err *err)
{
    *data = NULL;
    if (s->dirfd < 0) {
        char clean[4096];
        struct entry *e;
        if (clean_name(NULL, name, clean, sizeof clean, err) < 0)
            return -1;
        e = find_entry(s, clean);
        if (e == NULL)
            return hp_err_set(err, HP_NOT_FOUND, "%.512s: not in the archive", name);
        if (e->data == NULL)
            return hp_err_set(err, HP_INVALID_ARGUMENT, "%.512s: larger than %zu bytes", name,
                              SMALL_MAX);
        *data = malloc(e->len + 1);
        if (*data == NULL)
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        memcpy(*data, e->data, e->len + 1);
        *len = e->len;
        return 0;
    }
    _cleanup_close_ int fd = open_beneath(s->dirfd, name, err);
    struct stat sb;
    size_t got = 0;
    if (fd < 0)
        return -1;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > SMALL_MAX)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%.512s: not a regular file up to %zu bytes",
                          name, SMALL_MAX);
    *data = malloc((size_t)sb.st_size + 1);
    if (*data == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, *data + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    (*data)[got] = '\0';
    *len = got;
    return 0;
}

/* A blob by digest (OCI): its bytes must hash to digest. */
static int src_read_blob(struct src *s, const char *digest, char **data, size_t *len, hp_err *err)
{
    char name[128], got[72];
    snprintf(name, sizeof name, "blobs/sha256/%s", digest + 7);
    if (strncmp(digest, "sha256:", 7) != 0)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "unsupported digest %.128s", digest);
    if (src_read(s, name, data, len, err) < 0)
        return -1;
    sha256_mem(*data, *len, got);
    if (strcmp(got, digest) != 0) {
        free(*data);
        *data = NULL;
        return hp_err_set(err, HP_DATA_LOSS, "blob %s: digest mismatch (got %s)", digest, got);
    }
    return 0;
}

/* Put entry `name` into the content store.  expected (may be NULL) must match
 * its digest; the digest and size are returned. */
static int src_store(struct src *s, const char *name, const char *expected, char digest[72],
                     int64_t *size, hp_err *err)
{
    if (s->dirfd < 0) {
        char clean[4096];
        struct entry *e;
        if (clean_name(NULL, name, clean, sizeof clean, err) < 0)
            return -1;
        e = find_entry(s, clean);
        if (e == NULL)
            return hp_err_set(err, HP_NOT_FOUND, "%.512s: not in the archive", name);
        if (e->data) {
            sha256_mem(e->data, e->len, digest);
            *size = (int64_t)e->len;
        } else {
            snprintf(digest, 72, "%s", e->digest);
            *size = e->size;
        }
        if (expected && strcmp(expected, digest) != 0)
            return hp_err_set(err, HP_DATA_LOSS, "%.512s: digest mismatch: expected %s, got %s",
                              name, expected, digest);
        if (e->data)
            return hp_content_put(s->svc->cs, digest, e->data, e->len, err);
        return 0;
    }
    _cleanup_close_ int fd = open_beneath(s->dirfd, name, err);
    struct stat sb;
    if (fd < 0)
        return -1;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%.512s: not a regular file", name);
    *size = sb.st_size;
    if (expected) {
        snprintf(digest, 72, "%s", expected);
    } else {
        int64_t n;
        if (hash_fd(fd, digest, &n, err) < 0 || lseek(fd, 0, SEEK_SET) < 0)
            return err->code ? -1 : hp_err_sys(err, HP_INTERNAL, "seek");
    }
    if (store_from_fd(s->svc, fd, digest, sb.st_size, err) < 0)
        return hp_err_wrap(err, "%.512s", name);
    return 0;
}

/* ---- formats ------------------------------------------------------------ */

struct result {
    char *config; /* raw config JSON */
    size_t config_len;
    struct hp_image_config cfg;
    struct hp_descriptor *layers;
    size_t n_layers;
    char *archive_name; /* name from the archive, or NULL */
    char *top_digest;   /* manifest (or index entry) digest for the repo digest, or NULL */
};

static void result_free(struct result *r)
{
    free(r->config);
    hp_image_config_free(&r->cfg);
    for (size_t i = 0; i < r->n_layers; i++)
        free(r->layers[i].digest);
    free(r->layers);
    free(r->archive_name);
    free(r->top_digest);
}

static char *annotation_name(const char *index_json, size_t len, const char *digest)
{
    json_t *root = json_loadb(index_json, len, 0, NULL), *m, *v;
    size_t i;
    char *out = NULL;
    json_array_foreach(json_object_get(root, "manifests"), i, m)
    {
        const char *d = json_string_value(json_object_get(m, "digest"));
        json_t *ann = json_object_get(m, "annotations");
        if (d == NULL || strcmp(d, digest) != 0)
            continue;
        v = json_object_get(ann, "io.containerd.image.name");
        if (!json_is_string(v)) {
            v = json_object_get(ann, "org.opencontainers.image.ref.name");
            /* A bare tag ("latest") names no repository. */
            if (json_is_string(v) && !strchr(json_string_value(v), '/'))
                v = NULL;
        }
        if (json_is_string(v))
            out = strdup(json_string_value(v));
        break;
    }
    json_decref(root);
    return out;
}

static int load_oci(struct src *s, const char *platform, struct result *r, hp_err *err)
{
    _cleanup_free_ char *idx_data = NULL, *mdata = NULL;
    size_t idx_len, mlen;
    struct hp_index idx = {0};
    struct hp_manifest m = {0};
    struct hp_platform want = {0};
    const struct hp_index_entry *sel;
    int rc = -1;

    if (src_read(s, "index.json", &idx_data, &idx_len, err) < 0)
        return -1;
    if (hp_index_parse(idx_data, idx_len, HP_MT_OCI_INDEX, &idx, err) < 0)
        return hp_err_wrap(err, "index.json");
    if (hp_platform_parse(platform ? platform : "linux/amd64", &want, err) < 0)
        goto out;
    if (idx.n_entries == 0) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "index.json lists no image");
        goto out;
    }
    sel = idx.n_entries == 1 ? &idx.entries[0] : hp_index_select(&idx, &want, err);
    if (sel == NULL)
        goto out;
    r->archive_name = annotation_name(idx_data, idx_len, sel->desc.digest);
    r->top_digest = strdup(sel->desc.digest);
    if (src_read_blob(s, sel->desc.digest, &mdata, &mlen, err) < 0)
        goto out;
    for (int depth = 0;; depth++) {
        int kind = hp_manifest_kind(mdata, mlen, sel ? sel->desc.media_type : NULL, err);
        if (kind < 0)
            goto out;
        if (kind == HP_MANIFEST_KIND_IMAGE)
            break;
        /* A nested index (docker save >= 25, buildx): pick the platform. */
        struct hp_index sub = {0};
        const struct hp_index_entry *e;
        if (depth > 2) {
            hp_err_set(err, HP_INVALID_ARGUMENT, "indexes nested too deep");
            goto out;
        }
        if (hp_index_parse(mdata, mlen, NULL, &sub, err) < 0)
            goto out;
        e = hp_index_select(&sub, &want, err);
        if (e == NULL) {
            hp_index_free(&sub);
            goto out;
        }
        free(mdata);
        mdata = NULL;
        rc = src_read_blob(s, e->desc.digest, &mdata, &mlen, err);
        hp_index_free(&sub);
        if (rc < 0)
            goto out;
        rc = -1;
        sel = NULL;
    }
    if (hp_manifest_parse(mdata, mlen, NULL, &m, err) < 0)
        goto out;
    if (src_read_blob(s, m.config.digest, &r->config, &r->config_len, err) < 0 ||
        hp_image_config_parse(r->config, r->config_len, &r->cfg, err) < 0 ||
        hp_image_config_check(&m, &r->cfg, err) < 0)
        goto out;
    r->layers = calloc(m.n_layers + 1, sizeof *r->layers);
    if (r->layers == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < m.n_layers; i++) {
        char name[128], digest[72];
        int64_t size;
        snprintf(name, sizeof name, "blobs/sha256/%s", m.layers[i].digest + 7);
        if (src_store(s, name, m.layers[i].digest, digest, &size, err) < 0)
            goto out;
        if (size != m.layers[i].size) {
            hp_err_set(err, HP_DATA_LOSS, "layer %s: size %lld, manifest says %lld", digest,
                       (long long)size, (long long)m.layers[i].size);
            goto out;
        }
        r->layers[i].digest = strdup(digest);
        r->layers[i].size = size;
        r->n_layers++;
        if (r->layers[i].digest == NULL) {
            hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
    }
    rc = 0;
out:
    hp_manifest_free(&m);
    hp_index_free(&idx);
    hp_platform_free(&want);
    return rc;
}

static int load_docker(struct src *s, struct result *r, hp_err *err)
{
    _cleanup_free_ char *data = NULL;
    size_t len;
    json_t *root = NULL, *img, *layers, *tags;
    json_error_t je;
    const char *cfgname;
    int rc = -1;

    if (src_read(s, "manifest.json", &data, &len, err) < 0)
        return -1;
    root = json_loadb(data, len, 0, &je);
    img = json_array_get(root, 0);
    cfgname = json_string_value(json_object_get(img, "Config"));
    layers = json_object_get(img, "Layers");
    if (!json_is_array(root) || cfgname == NULL || !json_is_array(layers)) {
        hp_err_set(err, HP_INVALID_ARGUMENT,
                   "manifest.json: expected [{\"Config\": ..., \"Layers\": [...]}]%s%s",
                   root ? "" : ": ", root ? "" : je.text);
        goto out;
    }
    if (json_array_size(root) > 1)
        hp_warn("import: manifest.json lists %zu images; importing the first",
                json_array_size(root));
    tags = json_object_get(img, "RepoTags");
    if (json_is_string(json_array_get(tags, 0)))
        r->archive_name = strdup(json_string_value(json_array_get(tags, 0)));
    if (src_read(s, cfgname, &r->config, &r->config_len, err) < 0 ||
        hp_image_config_parse(r->config, r->config_len, &r->cfg, err) < 0) {
        hp_err_wrap(err, "config %.256s", cfgname);
        goto out;
    }
    if (json_array_size(layers) != r->cfg.n_diff_ids) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "manifest.json: %zu layers but %zu diff_ids",
                   json_array_size(layers), r->cfg.n_diff_ids);
        goto out;
    }
    r->layers = calloc(json_array_size(layers) + 1, sizeof *r->layers);
    if (r->layers == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < json_array_size(layers); i++) {
        const char *ln = json_string_value(json_array_get(layers, i));
        char digest[72], bn[72];
        int64_t size;
        if (ln == NULL) {
            hp_err_set(err, HP_INVALID_ARGUMENT, "manifest.json: Layers[%zu] is not a string", i);
            goto out;
        }
        if (src_store(s, ln, blob_name_digest(ln, bn) ? bn : NULL, digest, &size, err) < 0)
            goto out;
        r->layers[i].digest = strdup(digest);
        r->layers[i].size = size;
        r->n_layers++;
        if (r->layers[i].digest == NULL) {
            hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

static int has(struct src *s, const char *name)
{
    if (s->dirfd < 0)
        return find_entry(s, name) != NULL;
    return faccessat(s->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int hp_image_import(hp_image_service *svc, const char *path, const char *name, const char *platform,
                    char **image_id, hp_strlist *tags, hp_err *err)
{
    struct src s = {.svc = svc, .dirfd = -1};
    struct result r = {0};
    hp_imgref ref = {0};
    char id[72];
    _cleanup_free_ char *scratch = NULL, *repo_digest = NULL;
    struct stat sb;
    int rc = -1;
    const char *tagname = NULL;

    *image_id = NULL;
    if (path == NULL || path[0] != '/')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "import: path must be absolute, got \"%s\"",
                          path ? path : "");
    if (stat(path, &sb) < 0)
        return hp_err_sys(err, errno == ENOENT ? HP_NOT_FOUND : HP_INVALID_ARGUMENT, "import %s",
                          path);
    if (name && name[0] && hp_imgref_parse(name, &ref, err) < 0)
        return hp_err_wrap(err, "import: name");
    hp_image_op_begin(svc);
    if (S_ISDIR(sb.st_mode)) {
        s.dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s.dirfd < 0) {
            hp_err_sys(err, HP_INVALID_ARGUMENT, "import %s", path);
            goto out;
        }
    } else {
        if (asprintf(&scratch, "%s/import.XXXXXX", svc->dir) < 0) {
            scratch = NULL;
            hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        if (mkdtemp(scratch) == NULL) {
            hp_err_sys(err, HP_INTERNAL, "scratch dir %s", scratch);
            free(scratch);
            scratch = NULL;
            goto out;
        }
        if (ingest_archive(&s, path, scratch, err) < 0)
            goto out;
    }
    if (has(&s, "index.json")) {
        if (load_oci(&s, platform, &r, err) < 0) {
            hp_err_wrap(err, "import %s (OCI layout)", path);
            goto out;
        }
    } else if (has(&s, "manifest.json")) {
        if (load_docker(&s, &r, err) < 0) {
            hp_err_wrap(err, "import %s (docker save)", path);
            goto out;
        }
    } else {
        hp_err_set(err, HP_INVALID_ARGUMENT,
                   "import %s: neither an OCI layout (index.json) nor a docker save archive "
                   "(manifest.json)",
                   path);
        goto out;
    }
    sha256_mem(r.config, r.config_len, id);
    if (ref.repo == NULL && r.archive_name) {
        hp_err perr = HP_ERR_INIT;
        if (hp_imgref_parse(r.archive_name, &ref, &perr) < 0)
            hp_warn("import %s: ignoring the archive's name: %s", path, perr.msg);
    }
    tagname = ref.tagged;
    if (ref.repo && r.top_digest && asprintf(&repo_digest, "%s@%s", ref.repo, r.top_digest) < 0)
        repo_digest = NULL;
    {
        int64_t size = (int64_t)r.config_len;
        for (size_t i = 0; i < r.n_layers; i++)
            size += r.layers[i].size;
        struct hp_image_new im = {
            .id = id,
            .config_json = r.config,
            .config = &r.cfg,
            .layers = r.layers,
            .n_layers = r.n_layers,
            .repo_tags = &tagname,
            .n_repo_tags = tagname ? 1 : 0,
            .repo_digest = repo_digest,
            .size = size,
        };
        if (hp_image_commit(svc, &im, err) < 0) {
            hp_err_wrap(err, "import %s", path);
            goto out;
        }
    }
    *image_id = strdup(id);
    if (*image_id == NULL || (tagname && hp_strlist_add(tags, tagname, err) < 0)) {
        free(*image_id);
        *image_id = NULL;
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    hp_info("import %s: image %s%s%s", path, id, tagname ? " as " : "", tagname ? tagname : "");
    rc = 0;
out:
    if (scratch) {
        hp_err e = HP_ERR_INIT;
        int dfd = open(svc->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int rrc = dfd < 0 ? hp_err_sys(&e, HP_INTERNAL, "open %s", svc->dir)
                          : hp_remove_tree_at(dfd, strrchr(scratch, '/') + 1, &e);
        if (dfd >= 0)
            close(dfd);
        if (rrc < 0)
            hp_warn("import: cannot remove %s: %s", scratch, e.msg);
    }
    src_free(&s);
    result_free(&r);
    hp_imgref_free(&ref);
    hp_image_op_end(svc);
    return rc;
}
