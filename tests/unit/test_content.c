/* Content store: verified blob writes, cross-thread/process single writer,
 * crash safety, unpack-once layers, usage. */
#include "t.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image/content.h"
#include "util/cleanup.h"

static void sha256_hex(const void *buf, size_t len, char out[72])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL);
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

struct store {
    char root[64];
    hp_content *cs;
};

static int store_init(struct store *s)
{
    hp_err err = HP_ERR_INIT;
    snprintf(s->root, sizeof s->root, "/tmp/hpcontent.XXXXXX");
    if (!mkdtemp(s->root))
        return -1;
    s->cs = hp_content_new(s->root, &err);
    if (!s->cs)
        fprintf(stderr, "  %s\n", err.msg);
    return s->cs ? 0 : -1;
}

static void store_free(struct store *s)
{
    hp_err err = HP_ERR_INIT;
    _cleanup_close_ int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    hp_content_free(s->cs);
    hp_remove_tree_at(fd, s->root + 5, &err);
}

/* Entries in <root>/<sub> */
static int count_dir(const char *root, const char *sub)
{
    char p[256];
    int n = 0;
    snprintf(p, sizeof p, "%s/%s", root, sub);
    DIR *d = opendir(p);
    struct dirent *de;
    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static char *make_data(size_t n, unsigned seed)
{
    char *b = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (char)((i * 2654435761u + seed) >> 13);
    return b;
}

T_CASE(write_and_verify)
{
    struct store s;
    hp_err err = HP_ERR_INIT;
    hp_content_writer *w;
    int already;
    char dg[72], buf[4096];
    size_t n = 300000;
    char *data = make_data(n, 1);
    T_ASSERT(store_init(&s) == 0);
    sha256_hex(data, n, dg);
    T_EQ_INT(hp_content_has(s.cs, dg), 0);
    T_EQ_INT(hp_content_begin(s.cs, dg, (int64_t)n, &w, &already, &err), 0);
    T_ASSERT(w != NULL && already == 0);
    for (size_t off = 0; off < n; off += 7000)
        T_EQ_INT(hp_content_write(w, data + off, off + 7000 > n ? n - off : 7000, &err), 0);
    T_EQ_INT(hp_content_written(w), n);
    T_EQ_INT(count_dir(s.root, "tmp"), 1); /* in progress: temp file, not visible */
    T_EQ_INT(hp_content_has(s.cs, dg), 0);
    T_EQ_INT(hp_content_commit(w, &err), 0);
    T_EQ_INT(hp_content_has(s.cs, dg), 1);
    T_EQ_INT(count_dir(s.root, "tmp"), 0);
    T_EQ_INT(count_dir(s.root, "locks"), 0);
    /* content reads back */
    int fd = hp_content_open(s.cs, dg, &err);
    T_ASSERT(fd >= 0);
    size_t off = 0;
    ssize_t r;
    int same = 1;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        if (off + (size_t)r > n || memcmp(buf, data + off, (size_t)r) != 0)
            same = 0;
        off += (size_t)r;
    }
    close(fd);
    T_ASSERT(same && off == n);
    char *path = hp_content_blob_path(s.cs, dg, &err);
    char want[256];
    snprintf(want, sizeof want, "%s/blobs/sha256/%s", s.root, dg + 7);
    T_EQ_STR(path, want);
    free(path);
    /* writing it again: already present, no writer */
    T_EQ_INT(hp_content_begin(s.cs, dg, (int64_t)n, &w, &already, &err), 0);
    T_ASSERT(w == NULL && already == 1);
    /* remove */
    T_EQ_INT(hp_content_remove(s.cs, dg, &err), 0);
    T_EQ_INT(hp_content_has(s.cs, dg), 0);
    T_EQ_INT(hp_content_remove(s.cs, dg, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_EQ_INT(hp_content_open(s.cs, dg, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    free(data);
    store_free(&s);
}

T_CASE(wrong_digest_rejected)
{
    struct store s;
    hp_err err = HP_ERR_INIT;
    char dg[72], other[72];
    T_ASSERT(store_init(&s) == 0);
    sha256_hex("hello", 5, dg);
    sha256_hex("hellO", 5, other);
    T_EQ_INT(hp_content_put(s.cs, dg, "hellO", 5, &err), -1);
    T_EQ_INT(err.code, HP_DATA_LOSS);
    T_ASSERT(strstr(err.msg, dg) != NULL);    /* expected */
    T_ASSERT(strstr(err.msg, other) != NULL); /* actual */
    T_EQ_INT(hp_content_has(s.cs, dg), 0);
    T_EQ_INT(hp_content_has(s.cs, other), 0);
    T_EQ_INT(count_dir(s.root, "tmp"), 0);
    T_EQ_INT(count_dir(s.root, "blobs/sha256"), 0);
    T_EQ_INT(count_dir(s.root, "locks"), 0);
    /* the right data still goes in afterwards */
    T_EQ_INT(hp_content_put(s.cs, dg, "hello", 5, &err), 0);
    T_EQ_INT(hp_content_has(s.cs, dg), 1);
    store_free(&s);
}

T_CASE(wrong_size_rejected)
{
    struct store s;
    hp_err err = HP_ERR_INIT;
    hp_content_writer *w;
    int already;
    char dg[72];
    T_ASSERT(store_init(&s) == 0);
    sha256_hex("hello", 5, dg);
    /* fewer bytes than announced (right digest of what was sent) */
    T_EQ_INT(hp_content_begin(s.cs, dg, 6, &w, &already, &err), 0);
    T_EQ_INT(hp_content_write(w, "hello", 5, &err), 0);
    T_EQ_INT(hp_content_commit(w, &err), -1);
    T_EQ_INT(err.code, HP_DATA_LOSS);
    T_ASSERT(strstr(err.msg, "6 bytes") != NULL);
    /* more bytes than announced: refused while writing */
    T_EQ_INT(hp_content_begin(s.cs, dg, 4, &w, &already, &err), 0);
    T_EQ_INT(hp_content_write(w, "hello", 5, &err), -1);
    T_EQ_INT(err.code, HP_DATA_LOSS);
    hp_content_abort(w);
    T_EQ_INT(hp_content_has(s.cs, dg), 0);
    T_EQ_INT(count_dir(s.root, "tmp"), 0);
    T_EQ_INT(count_dir(s.root, "locks"), 0);
    /* unknown size (-1) is accepted */
    T_EQ_INT(hp_content_begin(s.cs, dg, -1, &w, &already, &err), 0);
    T_EQ_INT(hp_content_write(w, "hello", 5, &err), 0);
    T_EQ_INT(hp_content_commit(w, &err), 0);
    T_EQ_INT(hp_content_has(s.cs, dg), 1);
    store_free(&s);
}

T_CASE(invalid_digests)
{
    struct store s;
    hp_err err = HP_ERR_INIT;
    hp_content_writer *w;
    int already;
    T_ASSERT(store_init(&s) == 0);
    T_EQ_INT(hp_content_begin(s.cs, "sha256:../../etc/passwd", 1, &w, &already, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_EQ_INT(hp_content_open(s.cs, "md5:abc", &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_EQ_INT(hp_content_has(s.cs, "sha256:xyz"), 0);
    T_ASSERT(hp_content_layer_path(s.cs, "sha512:00", &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    store_free(&s);
}

T_CASE(sha512_blob)
{
    struct store s;
    hp_err err = HP_ERR_INIT;
    unsigned char md[64];
    unsigned int n;
    char dg[140] = "sha512:";
    T_ASSERT(store_init(&s) == 0);
    EVP_Digest("abc", 3, md, &n, EVP_sha512(), NULL);
    for (int i = 0; i < 64; i++)
        snprintf(dg + 7 + 2 * i, 3, "%02x", md[i]);
    T_EQ_INT(hp_content_put(s.cs, dg, "abc", 3, &err), 0);
    T_EQ_INT(hp_content_has(s.cs, dg), 1);
    T_EQ_INT(count_dir(s.root, "blobs/sha512"), 1);
    store_free(&s);
}

/* ---- 8 threads, one blob ---- */

struct race {
    hp_content *cs;
    const char *digest;
    const char *data;
    size_t len;
    atomic_int writers, ok, present;
};

static void *race_thread(void *p)
{
    struct race *r = p;
    hp_err err = HP_ERR_INIT;
    hp_content_writer *w;
    int already;
    if (hp_content_begin(r->cs, r->digest, (int64_t)r->len, &w, &already, &err) < 0)
        return NULL;
    if (already) {
        atomic_fetch_add(&r->present, 1);
        atomic_fetch_add(&r->ok, 1);
        return NULL;
    }
    atomic_fetch_add(&r->writers, 1);
    for (size_t off = 0; off < r->len; off += 65536) {
        size_t n = off + 65536 > r->len ? r->len - off : 65536;
        if (hp_content_write(w, r->data + off, n, &err) < 0) {
            hp_content_abort(w);
            return NULL;
        }
        usleep(2000); /* keep the others waiting on the lock */
    }
    if (hp_content_commit(w, &err) == 0)
        atomic_fetch_add(&r->ok, 1);
    return NULL;
}

T_CASE(eight_threads_same_blob)
{
    struct store s;
    pthread_t th[8];
    char dg[72];
    size_t n = 2 << 20;
    char *data = make_data(n, 8);
    struct stat sb;
    char p[256];
    T_ASSERT(store_init(&s) == 0);
    sha256_hex(data, n, dg);
    struct race r = {.cs = s.cs, .digest = dg, .data = data, .len = n};
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, race_thread, &r);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    T_EQ_INT(atomic_load(&r.ok), 8);
    T_EQ_INT(atomic_load(&r.writers), 1);
    T_EQ_INT(atomic_load(&r.present), 7);
    T_EQ_INT(count_dir(s.root, "blobs/sha256"), 1);
    T_EQ_INT(count_dir(s.root, "tmp"), 0);
    T_EQ_INT(count_dir(s.root, "locks"), 0);
    snprintf(p, sizeof p, "%s/blobs/sha256/%s", s.root, dg + 7);
    T_ASSERT(stat(p, &sb) == 0);
    T_EQ_INT(sb.st_size, n);
    T_EQ_INT(sb.st_nlink, 1);
    free(data);
    store_free(&s);
}

/* ---- processes ---- */

T_CASE(sigkill_mid_write_then_retry)
{
    struct store s;
    hp_err err = HP_ERR_INIT;
    char dg[72], c;
    size_t n = 1 << 20;
    char *data = make_data(n, 3);
    int pfd[2];
    T_ASSERT(store_init(&s) == 0);
    sha256_hex(data, n, dg);
    T_ASSERT(pipe(pfd) == 0);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        hp_content_writer *w;
        int already;
        close(pfd[0]);
        if (hp_content_begin(s.cs, dg, (int64_t)n, &w, &already, &err) < 0 || already)
            _exit(1);
        if (hp_content_write(w, data, n / 2, &err) < 0)
            _exit(1);
        if (write(pfd[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(pfd[1]);
    T_EQ_INT(read(pfd[0], &c, 1), 1);
    close(pfd[0]);
    T_EQ_INT(count_dir(s.root, "tmp"), 1); /* the half-written temp file */
    T_EQ_INT(hp_content_has(s.cs, dg), 0);
    kill(pid, SIGKILL);
    int status;
    T_EQ_INT(waitpid(pid, &status, 0), pid);
    T_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    T_EQ_INT(hp_content_has(s.cs, dg), 0);
    T_EQ_INT(count_dir(s.root, "blobs/sha256"), 0);
    /* retry: the dead writer's lock is gone, its temp file is cleaned */
    hp_content_writer *w;
    int already;
    T_EQ_INT(hp_content_begin(s.cs, dg, (int64_t)n, &w, &already, &err), 0);
    T_ASSERT(w != NULL && !already);
    T_EQ_INT(count_dir(s.root, "tmp"), 1); /* only ours */
    T_EQ_INT(hp_content_write(w, data, n, &err), 0);
    T_EQ_INT(hp_content_commit(w, &err), 0);
    T_EQ_INT(hp_content_has(s.cs, dg), 1);
    T_EQ_INT(count_dir(s.root, "tmp"), 0);
    free(data);
    store_free(&s);
}

T_CASE(second_process_waits_and_sees_blob)
{
    struct store s;
    hp_err err = HP_ERR_INIT;
    char dg[72], c;
    size_t n = 100000;
    char *data = make_data(n, 5);
    int pfd[2];
    struct timespec t0, t1;
    T_ASSERT(store_init(&s) == 0);
    sha256_hex(data, n, dg);
    T_ASSERT(pipe(pfd) == 0);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        hp_content_writer *w;
        int already;
        close(pfd[0]);
        if (hp_content_begin(s.cs, dg, (int64_t)n, &w, &already, &err) < 0 || already)
            _exit(1);
        if (write(pfd[1], "x", 1) != 1)
            _exit(1);
        usleep(300000);
        if (hp_content_write(w, data, n, &err) < 0 || hp_content_commit(w, &err) < 0)
            _exit(2);
        _exit(0);
    }
    close(pfd[1]);
    T_EQ_INT(read(pfd[0], &c, 1), 1);
    close(pfd[0]);
    hp_content_writer *w;
    int already;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    T_EQ_INT(hp_content_begin(s.cs, dg, (int64_t)n, &w, &already, &err), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    T_ASSERT(w == NULL && already == 1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    T_ASSERT(ms >= 150); /* it really waited for the other process */
    int status;
    T_EQ_INT(waitpid(pid, &status, 0), pid);
    T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    free(data);
    store_free(&s);
}

/* ---- layers ---- */

static size_t make_layer(char **out, const char *fname, const char *content)
{
    struct archive *a = archive_write_new();
    size_t cap = 1 << 20, used = 0;
    char *buf = malloc(cap);
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_gzip(a);
    archive_write_set_bytes_in_last_block(a, 1);
    archive_write_open_memory(a, buf, cap, &used);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, fname);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)strlen(content));
    archive_write_header(a, e);
    archive_write_data(a, content, strlen(content));
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
    *out = buf;
    return used;
}

/* diff ID = sha256 of the uncompressed tar: ask the unpacker once. */
static int diffid_of(const char *blob, size_t len, char out[72])
{
    char dir[] = "/tmp/hpdiff.XXXXXX", f[64];
    hp_err err = HP_ERR_INIT;
    hp_unpack_stats st;
    if (!mkdtemp(dir))
        return -1;
    snprintf(f, sizeof f, "%s.tgz", dir);
    FILE *fp = fopen(f, "w");
    fwrite(blob, 1, len, fp);
    fclose(fp);
    int rc = hp_unpack_layer_path(dir, f, NULL, &st, &err);
    unlink(f);
    _cleanup_close_ int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    hp_remove_tree_at(fd, dir + 5, &err);
    memcpy(out, st.diffid, 72);
    return rc;
}

struct lrace {
    hp_content *cs;
    const char *diffid, *blob;
    atomic_int fresh, ok;
};

static void *layer_thread(void *p)
{
    struct lrace *r = p;
    hp_err err = HP_ERR_INIT;
    int already;
    if (hp_content_layer_unpack(r->cs, r->diffid, r->blob, NULL, NULL, &already, &err) == 0) {
        atomic_fetch_add(&r->ok, 1);
        if (!already)
            atomic_fetch_add(&r->fresh, 1);
    } else {
        fprintf(stderr, "  layer_unpack: %s\n", err.msg);
    }
    return NULL;
}

T_CASE(layer_unpacked_once_under_concurrency)
{
    struct store s;
    hp_err err = HP_ERR_INIT;
    char *blob, bd[72], diffid[72], p[300];
    pthread_t th[6];
    T_ASSERT(store_init(&s) == 0);
    size_t len = make_layer(&blob, "etc/os-release", "ID=hpcri\n");
    sha256_hex(blob, len, bd);
    T_EQ_INT(diffid_of(blob, len, diffid), 0);
    T_ASSERT(strcmp(bd, diffid) != 0); /* compressed blob != diff ID */
    T_EQ_INT(hp_content_put(s.cs, bd, blob, len, &err), 0);
    struct lrace r = {.cs = s.cs, .diffid = diffid, .blob = bd};
    for (int i = 0; i < 6; i++)
        pthread_create(&th[i], NULL, layer_thread, &r);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    T_EQ_INT(atomic_load(&r.ok), 6);
    T_EQ_INT(atomic_load(&r.fresh), 1);
    T_EQ_INT(hp_content_layer_has(s.cs, diffid), 1);
    char *lp = hp_content_layer_path(s.cs, diffid, &err);
    T_ASSERT(lp != NULL);
    snprintf(p, sizeof p, "%s/etc/os-release", lp);
    free(lp);
    FILE *f = fopen(p, "r");
    T_ASSERT(f != NULL);
    char line[64] = {0};
    T_ASSERT(fgets(line, sizeof line, f) != NULL);
    fclose(f);
    T_EQ_STR(line, "ID=hpcri\n");
    T_EQ_INT(count_dir(s.root, "tmp"), 0);
    T_EQ_INT(count_dir(s.root, "locks"), 0);
    /* remove */
    T_EQ_INT(hp_content_layer_remove(s.cs, diffid, &err), 0);
    T_EQ_INT(hp_content_layer_has(s.cs, diffid), 0);
    T_EQ_INT(count_dir(s.root, "tmp"), 0);
    T_EQ_INT(hp_content_layer_remove(s.cs, diffid, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    free(blob);
    store_free(&s);
}

T_CASE(failed_layer_unpack_leaves_nothing)
{
    struct store s;
    hp_err err = HP_ERR_INIT;
    char *blob, bd[72], diffid[72], wrong[72];
    T_ASSERT(store_init(&s) == 0);
    size_t len = make_layer(&blob, "../../escape", "x");
    sha256_hex(blob, len, bd);
    sha256_hex("whatever", 8, wrong);
    T_EQ_INT(hp_content_put(s.cs, bd, blob, len, &err), 0);
    T_EQ_INT(hp_content_layer_unpack(s.cs, wrong, bd, NULL, NULL, NULL, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_EQ_INT(hp_content_layer_has(s.cs, wrong), 0);
    T_EQ_INT(count_dir(s.root, "tmp"), 0);
    T_EQ_INT(count_dir(s.root, "layers/sha256"), 0);
    free(blob);
    /* a good layer but the wrong diff ID: DATA_LOSS, nothing published */
    len = make_layer(&blob, "ok", "fine");
    sha256_hex(blob, len, bd);
    T_EQ_INT(hp_content_put(s.cs, bd, blob, len, &err), 0);
    T_EQ_INT(hp_content_layer_unpack(s.cs, wrong, bd, NULL, NULL, NULL, &err), -1);
    T_EQ_INT(err.code, HP_DATA_LOSS);
    T_EQ_INT(hp_content_layer_has(s.cs, wrong), 0);
    T_EQ_INT(count_dir(s.root, "tmp"), 0);
    /* missing blob: NOT_FOUND */
    T_EQ_INT(diffid_of(blob, len, diffid), 0);
    T_EQ_INT(hp_content_layer_unpack(s.cs, diffid, wrong, NULL, NULL, NULL, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    /* and the right one works */
    hp_unpack_stats st;
    int already = -1;
    T_EQ_INT(hp_content_layer_unpack(s.cs, diffid, bd, NULL, &st, &already, &err), 0);
    T_EQ_INT(already, 0);
    T_EQ_INT(st.files, 1);
    T_EQ_INT(hp_content_layer_unpack(s.cs, diffid, bd, NULL, &st, &already, &err), 0);
    T_EQ_INT(already, 1);
    free(blob);
    store_free(&s);
}

static int fill_marker(int dirfd, void *arg, hp_err *err)
{
    (void)arg;
    int fd = openat(dirfd, "marker", O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        return hp_err_sys(err, HP_INTERNAL, "marker");
    close(fd);
    return 0;
}

T_CASE(stale_layer_tmp_cleaned_by_next_holder)
{
    struct store s;
    hp_err err = HP_ERR_INIT;
    char key[72], p[300];
    T_ASSERT(store_init(&s) == 0);
    sha256_hex("k", 1, key);
    /* as if a process died mid-unpack */
    snprintf(p, sizeof p, "%s/tmp/layer-%s.deadbeef", s.root, key + 7);
    T_ASSERT(mkdir(p, 0755) == 0);
    snprintf(p, sizeof p, "%s/tmp/layer-%s.deadbeef/half", s.root, key + 7);
    T_ASSERT(mkdir(p, 0555) == 0);
    T_EQ_INT(hp_content_layer_ensure(s.cs, key, fill_marker, NULL, NULL, &err), 0);
    T_EQ_INT(count_dir(s.root, "tmp"), 0);
    T_EQ_INT(hp_content_layer_has(s.cs, key), 1);
    store_free(&s);
}

T_CASE(usage_changes)
{
    struct store s;
    hp_err err = HP_ERR_INIT;
    uint64_t b0, i0, b1, i1, b2, i2;
    char dg[72];
    size_t n = 1 << 20;
    char *data = make_data(n, 9);
    T_ASSERT(store_init(&s) == 0);
    sha256_hex(data, n, dg);
    T_EQ_INT(hp_content_usage(s.cs, &b0, &i0, &err), 0);
    T_EQ_INT(hp_content_put(s.cs, dg, data, n, &err), 0);
    T_EQ_INT(hp_content_usage(s.cs, &b1, &i1, &err), 0);
    T_EQ_INT(i1, i0 + 1);
    T_ASSERT(b1 >= b0 + n);
    T_EQ_INT(hp_content_remove(s.cs, dg, &err), 0);
    T_EQ_INT(hp_content_usage(s.cs, &b2, &i2, &err), 0);
    T_EQ_INT(i2, i0);
    T_EQ_INT(b2, b0);
    free(data);
    store_free(&s);
}

T_MAIN()
