/* Registry client against a real registry (Debian docker-registry, started
 * with tests/tools/registry.sh on a free loopback port, images pushed with
 * tests/tools/push_image.py) and, for failures a real registry cannot produce
 * on demand (503s, dropped connections, Bearer token flow, schema1), the
 * stdlib fake tests/tools/fake_registry.py.  Every case sets up only what it
 * needs; everything started is stopped at exit.  When the registry cannot be
 * started the case fails (no skipping).  Run from the repository root. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image/registry.h"
#include "t.h"

#define TOOLS "tests/tools"
#define PY    "/usr/bin/python3"

/* ---- fixture (test-process state) ---- */

struct reg {
    char dir[300];
    char host[64];
    int port;
    json_t *images;
};

static struct {
    char dir[256];
    struct reg plain, auth, tls;
    pid_t fake_pid;
    char fake_dir[300];
    char fake_host[64];
    bool cleanup_registered;
} F;

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int run(char *const argv[])
{
    pid_t pid = fork();
    int st;
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void stop_registry(struct reg *r)
{
    if (r->port) {
        char *argv[] = {"/bin/sh", TOOLS "/registry.sh", "stop", r->dir, NULL};
        run(argv);
        r->port = 0;
    }
    if (r->images)
        json_decref(r->images);
    r->images = NULL;
}

static void teardown(void)
{
    stop_registry(&F.plain);
    stop_registry(&F.auth);
    stop_registry(&F.tls);
    if (F.fake_pid > 0) {
        kill(F.fake_pid, SIGTERM);
        waitpid(F.fake_pid, NULL, 0);
        F.fake_pid = 0;
    }
    if (F.dir[0])
        nftw(F.dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    F.dir[0] = '\0';
    hp_registry_global_cleanup();
}

static int base_setup(void)
{
    if (F.dir[0])
        return 0;
    strcpy(F.dir, "/tmp/hpcri-test-registry.XXXXXX");
    if (mkdtemp(F.dir) == NULL) {
        F.dir[0] = '\0';
        return -1;
    }
    if (!F.cleanup_registered) {
        hp_err err = HP_ERR_INIT;
        if (hp_registry_global_init(&err) < 0)
            return -1;
        atexit(teardown);
        F.cleanup_registered = true;
    }
    return 0;
}

/* A loopback port nothing listens on right now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* Push the images in the comma-separated list `only` not pushed yet into r. */
static int push_images(struct reg *r, const char *creds, const char *only)
{
    char storage[400], out[400], todo[200] = "", list[200];
    json_error_t jerr;
    snprintf(list, sizeof list, "%s", only);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (json_object_get(r->images, tok) == NULL)
            snprintf(todo + strlen(todo), sizeof todo - strlen(todo), "%s%s", *todo ? "," : "",
                     tok);
    }
    if (*todo == '\0')
        return 0;
    snprintf(storage, sizeof storage, "%s/storage", r->dir);
    snprintf(out, sizeof out, "%s/images.json", r->dir);
    char *push[] = {PY,
                    TOOLS "/push_image.py",
                    "--registry",
                    r->host,
                    "--out",
                    out,
                    "--storage",
                    storage,
                    "--only",
                    todo,
                    creds ? "--user" : NULL,
                    (char *)creds,
                    NULL};
    if (run(push) != 0) {
        fprintf(stderr, "push_image.py failed\n");
        return -1;
    }
    json_t *j = json_load_file(out, 0, &jerr);
    if (j == NULL)
        return -1;
    json_object_update(r->images, j);
    json_decref(j);
    return 0;
}

/* Start a registry (creds "user:pass" or NULL) once and push `only` images into it. */
static int start_registry(struct reg *r, const char *name, const char *creds, const char *only)
{
    char port[16], watch[32];
    if (r->port)
        return push_images(r, creds, only);
    if (base_setup() < 0)
        return -1;
    snprintf(r->dir, sizeof r->dir, "%s/%s", F.dir, name);
    if (mkdir(r->dir, 0700) < 0 && errno != EEXIST)
        return -1;
    int p = free_port();
    if (p <= 0)
        return -1;
    snprintf(port, sizeof port, "%d", p);
    snprintf(watch, sizeof watch, "%d", (int)getpid());
    setenv("REGISTRY_WATCH_PID", watch, 1);
    char *argv[] = {"/bin/sh", TOOLS "/registry.sh", "start", r->dir, port, (char *)creds, NULL};
    if (run(argv) != 0) {
        fprintf(stderr, "registry.sh start %s %s failed: is docker-registry installed?\n", r->dir,
                port);
        return -1;
    }
    r->port = p;
    snprintf(r->host, sizeof r->host, "127.0.0.1:%d", p);
    r->images = json_object();
    return r->images ? push_images(r, creds, only) : -1;
}

static int start_fake(void)
{
    char portfile[400], buf[16] = "";
    if (F.fake_pid > 0)
        return 0;
    if (base_setup() < 0)
        return -1;
    snprintf(F.fake_dir, sizeof F.fake_dir, "%s/fake", F.dir);
    if (mkdir(F.fake_dir, 0700) < 0 && errno != EEXIST)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execl(PY, PY, TOOLS "/fake_registry.py", F.fake_dir, (char *)NULL);
        _exit(127);
    }
    F.fake_pid = pid;
    snprintf(portfile, sizeof portfile, "%s/port", F.fake_dir);
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            buf[n] = '\0';
            fclose(f);
            snprintf(F.fake_host, sizeof F.fake_host, "127.0.0.1:%s", buf);
            return 0;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "fake_registry.py did not start\n");
    return -1;
}

/* Number of lines in the fake's request log containing needle. */
static int fake_count(const char *needle)
{
    char path[400], line[2048];
    int n = 0;
    snprintf(path, sizeof path, "%s/requests.log", F.fake_dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

static const char *img_str(struct reg *r, const char *img, const char *key)
{
    return json_string_value(json_object_get(json_object_get(r->images, img), key));
}

static json_t *img_layer(struct reg *r, const char *img, size_t i)
{
    return json_array_get(json_object_get(json_object_get(r->images, img), "layers"), i);
}

static struct hp_registry *client(const struct hp_registry_settings *s, size_t n)
{
    hp_err err = HP_ERR_INIT;
    struct hp_registry_config cfg = {.registries = s, .n_registries = n, .retry_delay_ms = 50};
    struct hp_registry *r = hp_registry_new(&cfg, &err);
    if (r == NULL)
        fprintf(stderr, "hp_registry_new: %s\n", err.msg);
    return r;
}

/* A sink that hashes and counts what it receives. */
struct hsink {
    EVP_MD_CTX *md;
    uint64_t n;
    uint64_t progress_done, progress_total;
    int progress_calls;
    atomic_bool cancel;
    uint64_t cancel_after; /* set cancel once this many bytes arrived (0: never) */
    bool fail;             /* fail every write */
};

static int hsink_write(void *ud, const void *buf, size_t n, hp_err *err)
{
    struct hsink *s = ud;
    if (s->fail)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "test sink: disk full");
    EVP_DigestUpdate(s->md, buf, n);
    s->n += n;
    if (s->cancel_after && s->n >= s->cancel_after)
        atomic_store(&s->cancel, true);
    return 0;
}

static void hsink_progress(void *ud, uint64_t done, uint64_t total)
{
    struct hsink *s = ud;
    s->progress_done = done;
    s->progress_total = total;
    s->progress_calls++;
}

static void hsink_digest(struct hsink *s, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    static const char hx[] = "0123456789abcdef";
    EVP_DigestFinal_ex(s->md, md, &len);
    strcpy(out, "sha256:");
    for (unsigned i = 0; i < len; i++) {
        out[7 + 2 * i] = hx[md[i] >> 4];
        out[8 + 2 * i] = hx[md[i] & 15];
    }
    out[7 + 2 * len] = '\0';
}

static void hsink_init(struct hsink *s)
{
    memset(s, 0, sizeof *s);
    s->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(s->md, EVP_sha256(), NULL);
}

static void hsink_free(struct hsink *s)
{
    EVP_MD_CTX_free(s->md);
    s->md = NULL;
}

/* ---- real registry ---- */

T_CASE(manifest_by_tag_and_digest)
{
    T_ASSERT(start_registry(&F.plain, "plain", NULL, "busybox,docker") == 0);
    struct hp_registry *r = client(NULL, 0);
    T_ASSERT(r);
    hp_err err = HP_ERR_INIT;
    struct hp_fetched_manifest m;
    int rc = hp_registry_get_manifest(r, F.plain.host, "test/busybox", "latest", NULL, &m, &err);
    if (rc < 0)
        T_FAIL("%s", err.msg);
    T_ASSERT(rc == 0);
    T_EQ_STR(m.digest, img_str(&F.plain, "busybox", "manifest_digest"));
    T_EQ_STR(m.media_type, HP_MT_OCI_MANIFEST);
    struct hp_manifest pm;
    T_EQ_INT(hp_manifest_parse(m.data, m.len, m.media_type, &pm, &err), 0);
    T_EQ_INT(pm.n_layers, 1);
    T_EQ_STR(pm.layers[0].digest,
             json_string_value(json_object_get(img_layer(&F.plain, "busybox", 0), "digest")));
    T_EQ_INT(pm.layers[0].compression, HP_COMPRESSION_GZIP);
    hp_manifest_free(&pm);

    char dg[80];
    snprintf(dg, sizeof dg, "%s", m.digest);
    hp_fetched_manifest_free(&m);
    T_EQ_INT(hp_registry_get_manifest(r, F.plain.host, "test/busybox", dg, NULL, &m, &err), 0);
    T_EQ_STR(m.digest, dg);
    hp_fetched_manifest_free(&m);

    /* Docker schema2 by tag. */
    T_EQ_INT(hp_registry_get_manifest(r, F.plain.host, "test/docker", "latest", NULL, &m, &err), 0);
    T_EQ_STR(m.media_type, HP_MT_DOCKER_MANIFEST);
    T_EQ_STR(m.digest, img_str(&F.plain, "docker", "manifest_digest"));
    hp_fetched_manifest_free(&m);
    hp_registry_free(r);
}

T_CASE(manifest_digest_verified)
{
    T_ASSERT(start_registry(&F.plain, "plain", NULL, "corrupt") == 0);
    struct hp_registry *r = client(NULL, 0);
    T_ASSERT(r);
    hp_err err = HP_ERR_INIT;
    struct hp_fetched_manifest m;
    const char *want = img_str(&F.plain, "corrupt", "manifest_digest");
    const char *got = img_str(&F.plain, "corrupt", "bad_manifest_digest");
    T_ASSERT(want && got);
    T_EQ_INT(hp_registry_get_manifest(r, F.plain.host, "test/corrupt", want, NULL, &m, &err), -1);
    T_EQ_INT(err.code, HP_DATA_LOSS);
    T_ASSERT(strstr(err.msg, "digest mismatch") && strstr(err.msg, got));
    T_ASSERT(strstr(err.msg, F.plain.host));
    T_ASSERT(m.data == NULL);
    hp_registry_free(r);
}

static void check_resolve(int *t_failed, struct hp_registry *r, const char *img,
                          const char *platform, const char *want_key, const char *want_arch)
{
    hp_err err = HP_ERR_INIT;
    struct hp_platform p = {0};
    struct hp_resolved_image ri;
    char repo[64];
    snprintf(repo, sizeof repo, "test/%s", img);
    T_EQ_INT(hp_platform_parse(platform, &p, &err), 0);
    int rc = hp_registry_resolve(r, F.plain.host, repo, "latest", &p, NULL, &ri, &err);
    hp_platform_free(&p);
    if (rc < 0)
        T_FAIL("%s %s: %s", img, platform, err.msg);
    T_EQ_INT(rc, 0);
    T_EQ_STR(ri.manifest_digest, img_str(&F.plain, img, want_key));
    T_EQ_STR(ri.index_digest, img_str(&F.plain, img, "digest"));
    T_EQ_STR(ri.config.architecture, want_arch);
    T_EQ_INT(ri.manifest.n_layers, 1);
    T_EQ_INT(ri.config.n_diff_ids, 1);
    T_EQ_STR(ri.config.labels[0].value, want_arch);
    hp_resolved_image_free(&ri);
}

T_CASE(index_platform_selection)
{
    T_ASSERT(start_registry(&F.plain, "plain", NULL, "index,list") == 0);
    struct hp_registry *r = client(NULL, 0);
    T_ASSERT(r);
    const char *imgs[] = {"index", "list"};
    for (int i = 0; i < 2; i++) {
        int f = 0;
        check_resolve(&f, r, imgs[i], "linux/amd64", "amd64", "amd64");
        check_resolve(&f, r, imgs[i], "linux/arm64/v8", "arm64", "arm64");
        check_resolve(&f, r, imgs[i], "linux/arm64", "arm64", "arm64");
        check_resolve(&f, r, imgs[i], "linux/aarch64", "arm64", "arm64");
        if (f) {
            *t_failed = 1;
            hp_registry_free(r);
            return;
        }
    }
    /* Default platform: linux/amd64. */
    hp_err err = HP_ERR_INIT;
    struct hp_resolved_image ri;
    T_EQ_INT(hp_registry_resolve(r, F.plain.host, "test/index", "latest", NULL, NULL, &ri, &err),
             0);
    T_EQ_STR(ri.manifest_digest, img_str(&F.plain, "index", "amd64"));
    hp_resolved_image_free(&ri);
    /* No match: the error lists what there is. */
    struct hp_platform p;
    T_EQ_INT(hp_platform_parse("linux/s390x", &p, &err), 0);
    T_EQ_INT(hp_registry_resolve(r, F.plain.host, "test/index", "latest", &p, NULL, &ri, &err), -1);
    hp_platform_free(&p);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(strstr(err.msg, "linux/s390x") && strstr(err.msg, "linux/amd64") &&
             strstr(err.msg, "linux/arm64/v8"));
    hp_registry_free(r);
}

T_CASE(blob_download_verified)
{
    T_ASSERT(start_registry(&F.plain, "plain", NULL, "multi") == 0);
    struct hp_registry *r = client(NULL, 0);
    T_ASSERT(r);
    hp_err err = HP_ERR_INIT;
    struct hp_resolved_image ri;
    T_EQ_INT(hp_registry_resolve(r, F.plain.host, "test/multi", "latest", NULL, NULL, &ri, &err),
             0);
    T_EQ_INT(ri.manifest.n_layers, 3);
    T_EQ_INT(ri.manifest.layers[0].compression, HP_COMPRESSION_NONE);
    T_EQ_INT(ri.manifest.layers[1].compression, HP_COMPRESSION_GZIP);
    T_EQ_INT(ri.manifest.layers[2].compression, HP_COMPRESSION_ZSTD);
    T_EQ_STR(ri.config.cmd[0], "sh");
    T_EQ_STR(ri.config.env[0], "PATH=/bin");
    T_EQ_STR(ri.config.working_dir, "/");
    T_EQ_STR(ri.config.exposed_ports[0], "8080/tcp");
    for (size_t i = 0; i < ri.manifest.n_layers; i++) {
        const struct hp_descriptor *d = &ri.manifest.layers[i];
        struct hsink s;
        struct hp_pull_opts o = {.progress = hsink_progress};
        char got[80];
        hsink_init(&s);
        o.progress_ud = &s;
        int rc = hp_registry_get_blob(r, F.plain.host, "test/multi", d->digest, d->size, &o,
                                      hsink_write, &s, &err);
        hsink_digest(&s, got);
        hsink_free(&s);
        if (rc < 0)
            T_FAIL("layer %zu: %s", i, err.msg);
        T_EQ_INT(rc, 0);
        T_EQ_INT(s.n, d->size);
        T_EQ_STR(got, d->digest);
        T_ASSERT(s.progress_calls > 0);
        T_EQ_INT(s.progress_done, d->size);
        T_EQ_INT(s.progress_total, d->size);
    }
    hp_resolved_image_free(&ri);
    hp_registry_free(r);
}

T_CASE(blob_digest_and_size_mismatch)
{
    T_ASSERT(start_registry(&F.plain, "plain", NULL, "corrupt,busybox") == 0);
    struct hp_registry *r = client(NULL, 0);
    T_ASSERT(r);
    hp_err err = HP_ERR_INIT;
    json_t *l = img_layer(&F.plain, "corrupt", 0);
    const char *dg = json_string_value(json_object_get(l, "digest"));
    int64_t size = json_integer_value(json_object_get(l, "size"));
    struct hsink s;
    hsink_init(&s);
    int rc = hp_registry_get_blob(r, F.plain.host, "test/corrupt", dg, size, NULL, hsink_write, &s,
                                  &err);
    hsink_free(&s);
    T_EQ_INT(rc, -1);
    T_EQ_INT(err.code, HP_DATA_LOSS);
    char want[300];
    snprintf(want, sizeof want, "blob %s from %s: digest mismatch (got %s)", dg, F.plain.host,
             img_str(&F.plain, "corrupt", "bad_digest"));
    T_EQ_STR(err.msg, want);

    /* Good blob, descriptor claims one byte less: refused before the sink sees too much. */
    l = img_layer(&F.plain, "busybox", 0);
    dg = json_string_value(json_object_get(l, "digest"));
    size = json_integer_value(json_object_get(l, "size"));
    hsink_init(&s);
    rc = hp_registry_get_blob(r, F.plain.host, "test/busybox", dg, size - 1, NULL, hsink_write, &s,
                              &err);
    hsink_free(&s);
    T_EQ_INT(rc, -1);
    T_EQ_INT(err.code, HP_DATA_LOSS);
    T_ASSERT(strstr(err.msg, "larger than the expected"));
    T_ASSERT(s.n <= (uint64_t)size - 1);
    hp_registry_free(r);
}

T_CASE(not_found)
{
    T_ASSERT(start_registry(&F.plain, "plain", NULL, "busybox") == 0);
    struct hp_registry *r = client(NULL, 0);
    T_ASSERT(r);
    hp_err err = HP_ERR_INIT;
    struct hp_fetched_manifest m;
    T_EQ_INT(hp_registry_get_manifest(r, F.plain.host, "test/busybox", "nope", NULL, &m, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(strstr(err.msg, "test/busybox:nope"));
    T_ASSERT(strstr(err.msg, F.plain.host));
    T_EQ_INT(hp_registry_get_manifest(r, F.plain.host, "test/none", "latest", NULL, &m, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(strstr(err.msg, "test/none:latest"));
    struct hsink s;
    hsink_init(&s);
    const char *missing = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    T_EQ_INT(hp_registry_get_blob(r, F.plain.host, "test/busybox", missing, 10, NULL, hsink_write,
                                  &s, &err),
             -1);
    hsink_free(&s);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(strstr(err.msg, missing));
    T_EQ_INT(s.n, 0);
    hp_registry_free(r);
}

T_CASE(htpasswd_auth)
{
    T_ASSERT(start_registry(&F.auth, "auth", "hpuser:hppass", "busybox") == 0);
    struct hp_registry *r = client(NULL, 0);
    T_ASSERT(r);
    hp_err err = HP_ERR_INIT;
    struct hp_fetched_manifest m;
    T_EQ_INT(hp_registry_get_manifest(r, F.auth.host, "test/busybox", "latest", NULL, &m, &err),
             -1);
    T_EQ_INT(err.code, HP_UNAUTHENTICATED);
    char want[200];
    snprintf(want, sizeof want, "registry %s answered 401 Unauthorized for test/busybox",
             F.auth.host);
    T_ASSERT(strstr(err.msg, want));

    struct hp_registry_creds bad = {.username = "hpuser", .password = "wrong"};
    struct hp_pull_opts o = {.creds = &bad};
    T_EQ_INT(hp_registry_get_manifest(r, F.auth.host, "test/busybox", "latest", &o, &m, &err), -1);
    T_EQ_INT(err.code, HP_UNAUTHENTICATED);
    T_ASSERT(strstr(err.msg, want) && strstr(err.msg, "check the credentials"));

    struct hp_registry_creds good = {.username = "hpuser", .password = "hppass"};
    o.creds = &good;
    int rc = hp_registry_get_manifest(r, F.auth.host, "test/busybox", "latest", &o, &m, &err);
    if (rc < 0)
        T_FAIL("%s", err.msg);
    T_EQ_INT(rc, 0);
    T_EQ_STR(m.digest, img_str(&F.auth, "busybox", "manifest_digest"));
    hp_fetched_manifest_free(&m);
    /* And a blob with the same credentials (Basic remembered per endpoint). */
    json_t *l = img_layer(&F.auth, "busybox", 0);
    struct hsink s;
    hsink_init(&s);
    rc = hp_registry_get_blob(
        r, F.auth.host, "test/busybox", json_string_value(json_object_get(l, "digest")),
        json_integer_value(json_object_get(l, "size")), &o, hsink_write, &s, &err);
    hsink_free(&s);
    if (rc < 0)
        T_FAIL("%s", err.msg);
    T_EQ_INT(rc, 0);
    /* The wrong password still fails after the right one was cached. */
    o.creds = &bad;
    T_EQ_INT(hp_registry_get_manifest(r, F.auth.host, "test/busybox", "latest", &o, &m, &err), -1);
    T_EQ_INT(err.code, HP_UNAUTHENTICATED);
    hp_registry_free(r);
}

T_CASE(mirrors)
{
    T_ASSERT(start_registry(&F.plain, "plain", NULL, "busybox") == 0);
    T_ASSERT(start_fake() == 0);
    char dead[64], live[128];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d", free_port());
    snprintf(live, sizeof live, "http://%s/", F.plain.host);
    const char *mirrors[] = {dead, live};
    /* The fake stands in for the upstream: it must not be asked while a mirror works. */
    struct hp_registry_settings s = {.host = F.fake_host, .mirrors = mirrors, .n_mirrors = 2};
    struct hp_registry *r = client(&s, 1);
    T_ASSERT(r);
    hp_err err = HP_ERR_INIT;
    struct hp_fetched_manifest m;
    int rc = hp_registry_get_manifest(r, F.fake_host, "test/busybox", "latest", NULL, &m, &err);
    if (rc < 0)
        T_FAIL("%s", err.msg);
    T_EQ_INT(rc, 0);
    T_EQ_STR(m.digest, img_str(&F.plain, "busybox", "manifest_digest"));
    hp_fetched_manifest_free(&m);
    T_EQ_INT(fake_count("/v2/test/busybox/"), 0);
    hp_registry_free(r);

    /* A mirror answering 404 is skipped too (the fake as mirror, registry as upstream). */
    char fake_url[128];
    snprintf(fake_url, sizeof fake_url, "http://%s", F.fake_host);
    const char *fake_mirror[] = {fake_url};
    struct hp_registry_settings s3 = {.host = F.plain.host, .mirrors = fake_mirror, .n_mirrors = 1};
    r = client(&s3, 1);
    T_ASSERT(r);
    rc = hp_registry_get_manifest(r, F.plain.host, "test/busybox", "latest", NULL, &m, &err);
    if (rc < 0)
        T_FAIL("%s", err.msg);
    T_EQ_INT(rc, 0);
    T_EQ_STR(m.digest, img_str(&F.plain, "busybox", "manifest_digest"));
    hp_fetched_manifest_free(&m);
    T_EQ_INT(fake_count("GET /v2/test/busybox/manifests/latest "), 1);
    hp_registry_free(r);

    /* mirror_only with only a dead mirror: fails, upstream never contacted. */
    const char *deadonly[] = {dead};
    struct hp_registry_settings s2 = {
        .host = F.fake_host, .mirrors = deadonly, .n_mirrors = 1, .mirror_only = true};
    r = client(&s2, 1);
    T_ASSERT(r);
    T_EQ_INT(hp_registry_get_manifest(r, F.fake_host, "test/mirroronly", "latest", NULL, &m, &err),
             -1);
    T_EQ_INT(err.code, HP_UNAVAILABLE);
    T_ASSERT(strstr(err.msg, dead));
    T_EQ_INT(fake_count("/v2/test/mirroronly/"), 0);
    hp_registry_free(r);

    /* Same without mirror_only: after the dead mirror the upstream is asked (404). */
    s2.mirror_only = false;
    r = client(&s2, 1);
    T_ASSERT(r);
    T_EQ_INT(hp_registry_get_manifest(r, F.fake_host, "test/mirroronly", "latest", NULL, &m, &err),
             -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_EQ_INT(fake_count("/v2/test/mirroronly/"), 1);
    hp_registry_free(r);
}

T_CASE(tls_ca_file_and_insecure)
{
    setenv("REGISTRY_TLS", "1", 1);
    int started = start_registry(&F.tls, "tls", NULL, "");
    unsetenv("REGISTRY_TLS");
    T_ASSERT(started == 0);
    char url[128], ca[400];
    snprintf(url, sizeof url, "https://%s", F.tls.host);
    snprintf(ca, sizeof ca, "%s/cert.pem", F.tls.dir);
    const char *mirrors[] = {url};
    /* An HTTP answer (404) proves the TLS handshake went through. */
    struct hp_registry_settings s = {
        .host = "tls.example", .mirrors = mirrors, .n_mirrors = 1, .mirror_only = true};
    hp_err err = HP_ERR_INIT;
    struct hp_fetched_manifest m;
    struct hp_registry *r = client(&s, 1);
    T_ASSERT(r);
    T_EQ_INT(hp_registry_get_manifest(r, "tls.example", "test/x", "latest", NULL, &m, &err), -1);
    T_EQ_INT(err.code, HP_UNAVAILABLE);
    T_ASSERT(strstr(err.msg, url) && strstr(err.msg, "SSL"));
    hp_registry_free(r);

    s.ca_file = ca;
    r = client(&s, 1);
    T_ASSERT(r);
    T_EQ_INT(hp_registry_get_manifest(r, "tls.example", "test/x", "latest", NULL, &m, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(strstr(err.msg, "test/x:latest"));
    hp_registry_free(r);

    s.ca_file = NULL;
    s.insecure = true;
    r = client(&s, 1);
    T_ASSERT(r);
    T_EQ_INT(hp_registry_get_manifest(r, "tls.example", "test/x", "latest", NULL, &m, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    hp_registry_free(r);
}

/* ---- fake registry: failures on demand ---- */

T_CASE(retries_on_5xx_not_on_4xx)
{
    T_ASSERT(start_fake() == 0);
    struct hp_registry *r = client(NULL, 0);
    T_ASSERT(r);
    hp_err err = HP_ERR_INIT;
    struct hp_fetched_manifest m;
    int rc = hp_registry_get_manifest(r, F.fake_host, "flaky", "latest", NULL, &m, &err);
    if (rc < 0)
        T_FAIL("%s", err.msg);
    T_EQ_INT(rc, 0);
    T_EQ_INT(fake_count("GET /v2/flaky/manifests/latest "), 3);
    /* Each request asked for the four supported manifest types. */
    char accept[600];
    int k = snprintf(accept, sizeof accept, "GET /v2/flaky/manifests/latest - - ");
    for (const char *p = HP_MANIFEST_ACCEPT; *p && k < (int)sizeof accept - 1; p++)
        if (*p != ' ')
            accept[k++] = *p;
    accept[k] = '\0';
    T_EQ_INT(fake_count(accept), 3);
    hp_fetched_manifest_free(&m);

    struct hsink s;
    hsink_init(&s);
    const char *hello = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    rc = hp_registry_get_blob(r, F.fake_host, "flakyblob", hello, 6, NULL, hsink_write, &s, &err);
    hsink_free(&s);
    if (rc < 0)
        T_FAIL("%s", err.msg);
    T_EQ_INT(rc, 0);
    T_EQ_INT(s.n, 6);
    T_EQ_INT(fake_count("GET /v2/flakyblob/blobs/"), 3);

    /* Blob behind a redirect. */
    hsink_init(&s);
    rc = hp_registry_get_blob(r, F.fake_host, "redir", hello, 6, NULL, hsink_write, &s, &err);
    hsink_free(&s);
    if (rc < 0)
        T_FAIL("%s", err.msg);
    T_EQ_INT(rc, 0);
    T_EQ_INT(s.n, 6);
    T_EQ_INT(fake_count("GET /storage/hello "), 1);

    T_EQ_INT(hp_registry_get_manifest(r, F.fake_host, "nothere", "latest", NULL, &m, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_EQ_INT(fake_count("GET /v2/nothere/manifests/latest "), 1);

    T_EQ_INT(hp_registry_get_manifest(r, F.fake_host, "down", "latest", NULL, &m, &err), -1);
    T_EQ_INT(err.code, HP_UNAVAILABLE);
    T_ASSERT(strstr(err.msg, "503"));
    T_EQ_INT(fake_count("GET /v2/down/manifests/latest "), 3);

    /* Connection refused: UNAVAILABLE after the retries. */
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", free_port());
    T_EQ_INT(hp_registry_get_manifest(r, dead, "x", "latest", NULL, &m, &err), -1);
    T_EQ_INT(err.code, HP_UNAVAILABLE);
    T_ASSERT(strstr(err.msg, dead));
    hp_registry_free(r);
}

T_CASE(resume_after_dropped_connection)
{
    T_ASSERT(start_fake() == 0);
    struct hp_registry *r = client(NULL, 0);
    T_ASSERT(r);
    /* The fake's 16 KiB blob: bytes 0..255 repeated 64 times. */
    unsigned char big[16384];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i & 255);
    unsigned char md[32];
    unsigned len = 0;
    char dg[80] = "sha256:";
    EVP_Digest(big, sizeof big, md, &len, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(dg + 7 + 2 * i, 3, "%02x", md[i]);
    struct hsink s;
    hsink_init(&s);
    hp_err err = HP_ERR_INIT;
    int rc =
        hp_registry_get_blob(r, F.fake_host, "cut", dg, sizeof big, NULL, hsink_write, &s, &err);
    char got[80];
    hsink_digest(&s, got);
    hsink_free(&s);
    if (rc < 0)
        T_FAIL("%s", err.msg);
    T_EQ_INT(rc, 0);
    T_EQ_INT(s.n, sizeof big);
    T_EQ_STR(got, dg);
    T_EQ_INT(fake_count("GET /v2/cut/blobs/"), 2);
    T_EQ_INT(fake_count("GET /v2/cut/blobs/" /* resumed at the half */), 2);
    T_EQ_INT(fake_count(" bytes=8192-"), 1);
    hp_registry_free(r);
}

T_CASE(schema1_rejected)
{
    T_ASSERT(start_fake() == 0);
    struct hp_registry *r = client(NULL, 0);
    T_ASSERT(r);
    hp_err err = HP_ERR_INIT;
    struct hp_fetched_manifest m;
    T_EQ_INT(hp_registry_get_manifest(r, F.fake_host, "schema1", "latest", NULL, &m, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_ASSERT(strstr(err.msg, "schema1") && strstr(err.msg, "re-push"));
    T_ASSERT(m.data == NULL);
    hp_registry_free(r);
}

T_CASE(bearer_token_flow)
{
    T_ASSERT(start_fake() == 0);
    struct hp_registry *r = client(NULL, 0);
    T_ASSERT(r);
    hp_err err = HP_ERR_INIT;
    struct hp_fetched_manifest m;
    /* Anonymous token, then cached for the second request. */
    for (int i = 0; i < 2; i++) {
        int rc = hp_registry_get_manifest(r, F.fake_host, "bearer", "latest", NULL, &m, &err);
        if (rc < 0)
            T_FAIL("%s", err.msg);
        T_EQ_INT(rc, 0);
        hp_fetched_manifest_free(&m);
    }
    T_EQ_INT(fake_count("GET /token?service=fake&scope=repository%3Abearer%3Apull -"), 1);
    T_EQ_INT(fake_count("GET /v2/bearer/manifests/latest Bearer_tok-1"), 2);

    /* Basic credentials at the token server: a separate token (not the anonymous one). */
    struct hp_registry_creds good = {.username = "user", .password = "pass"};
    struct hp_pull_opts o = {.creds = &good};
    T_EQ_INT(hp_registry_get_manifest(r, F.fake_host, "bearer", "latest", &o, &m, &err), 0);
    hp_fetched_manifest_free(&m);
    T_EQ_INT(fake_count("GET /token?service=fake&scope=repository%3Abearer%3Apull Basic_"), 1);

    struct hp_registry_creds bad = {.username = "user", .password = "nope"};
    o.creds = &bad;
    T_EQ_INT(hp_registry_get_manifest(r, F.fake_host, "bearer", "latest", &o, &m, &err), -1);
    T_EQ_INT(err.code, HP_UNAUTHENTICATED);
    T_ASSERT(strstr(err.msg, F.fake_host) && strstr(err.msg, "401") &&
             strstr(err.msg, "check the credentials"));

    /* Identity token: OAuth2 refresh_token POST. */
    struct hp_registry_creds idt = {.identity_token = "idtok"};
    o.creds = &idt;
    int rc = hp_registry_get_manifest(r, F.fake_host, "bearer", "latest", &o, &m, &err);
    if (rc < 0)
        T_FAIL("%s", err.msg);
    T_EQ_INT(rc, 0);
    hp_fetched_manifest_free(&m);
    T_EQ_INT(fake_count("POST /token "), 1);

    /* Registry token: sent directly, no token request. */
    int before = fake_count(" /token");
    struct hp_registry_creds rt = {.registry_token = "tok-77"};
    o.creds = &rt;
    T_EQ_INT(hp_registry_get_manifest(r, F.fake_host, "bearer", "latest", &o, &m, &err), 0);
    hp_fetched_manifest_free(&m);
    T_EQ_INT(fake_count(" /token"), before);
    T_EQ_INT(fake_count("GET /v2/bearer/manifests/latest Bearer_tok-77"), 1);
    hp_registry_free(r);
}

T_CASE(cancel_and_sink_errors)
{
    T_ASSERT(start_registry(&F.plain, "plain", NULL, "busybox") == 0);
    struct hp_registry *r = client(NULL, 0);
    T_ASSERT(r);
    hp_err err = HP_ERR_INIT;
    json_t *l = img_layer(&F.plain, "busybox", 0);
    const char *dg = json_string_value(json_object_get(l, "digest"));
    int64_t size = json_integer_value(json_object_get(l, "size"));
    T_ASSERT(size > 100000);

    struct hsink s;
    hsink_init(&s);
    s.cancel_after = 1;
    struct hp_pull_opts o = {.cancel = &s.cancel};
    int rc =
        hp_registry_get_blob(r, F.plain.host, "test/busybox", dg, size, &o, hsink_write, &s, &err);
    hsink_free(&s);
    T_EQ_INT(rc, -1);
    T_EQ_INT(err.code, HP_CANCELLED);
    T_ASSERT(s.n > 0 && s.n < (uint64_t)size);

    hsink_init(&s);
    s.fail = true;
    rc = hp_registry_get_blob(r, F.plain.host, "test/busybox", dg, size, NULL, hsink_write, &s,
                              &err);
    hsink_free(&s);
    T_EQ_INT(rc, -1);
    T_EQ_INT(err.code, HP_RESOURCE_EXHAUSTED);
    T_EQ_STR(err.msg, "test sink: disk full");

    /* Cancelled before start: no request at all. */
    struct hp_fetched_manifest m;
    atomic_bool c = true;
    o.cancel = &c;
    T_EQ_INT(hp_registry_get_manifest(r, F.plain.host, "test/busybox", "latest", &o, &m, &err), -1);
    T_EQ_INT(err.code, HP_CANCELLED);
    hp_registry_free(r);
}

T_CASE(bad_arguments)
{
    struct hp_registry *r = client(NULL, 0);
    T_ASSERT(r);
    hp_err err = HP_ERR_INIT;
    struct hp_fetched_manifest m;
    T_EQ_INT(hp_registry_get_manifest(r, "127.0.0.1:1", "a/../b", "latest", NULL, &m, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_EQ_INT(hp_registry_get_manifest(r, "127.0.0.1:1", "a", "la test", NULL, &m, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_EQ_INT(hp_registry_get_manifest(r, "127.0.0.1:1", "a", "sha256:abc", NULL, &m, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_EQ_INT(hp_registry_get_manifest(r, "evil/host", "a", "latest", NULL, &m, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    hp_registry_free(r);

    const char *none[] = {NULL};
    struct hp_registry_settings s = {.host = "x.example", .mirrors = none, .mirror_only = true};
    struct hp_registry_config cfg = {.registries = &s, .n_registries = 1};
    T_ASSERT(hp_registry_new(&cfg, &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
}

T_MAIN()
