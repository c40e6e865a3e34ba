/* The image helper protocol and the daemon's side of it (see helper.h). */
#include "image/helper.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/image_int.h"
#include "image/ref.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/sha256.h"

extern char **environ;

#define LINE_MAX_BYTES (16u << 20) /* an image config is at most a few MB */
#define POLL_MS        100         /* how often *cancel is looked at */

char *hp_image_helper_find(void)
{
    const char *env = getenv("HPCRI_IMAGE_HELPER");
    char self[4096];
    ssize_t n;
    char *slash, *out = NULL;
    if (env && env[0])
        return strdup(env);
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return strdup("hpcri-image");
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    if (asprintf(&out, "%s/hpcri-image", self) < 0)
        return NULL;
    return out;
}

/* ---- requests ------------------------------------------------------------ */

static int current_log_level(void)
{
    int l = HP_LOG_ERROR;
    while (l < HP_LOG_DEBUG && hp_log_enabled(l + 1))
        l++;
    return l;
}

/* json_string(s) for a set string, else json_null(). */
static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* Serialize and free req.  NULL with err when anything failed (req NULL). */
static char *dump(json_t *req, hp_err *err)
{
    char *s = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (s == NULL)
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory (image helper request)");
    return s;
}

char *hp_image_helper_pull_request(const hp_config *cfg, const char *root, const char *image,
                                   const struct hp_pull_auth *auth, hp_err *err)
{
    json_t *regs = json_array();
    json_t *req;
    for (size_t i = 0; regs && i < cfg->n_registries; i++) {
        const hp_registry_host_config *h = &cfg->registries[i];
        json_t *mirrors = json_array();
        for (size_t j = 0; mirrors && j < h->n_mirrors; j++)
            json_array_append_new(mirrors, json_string(h->mirrors[j]));
        json_array_append_new(regs,
                              json_pack("{s:s, s:o*, s:b, s:b, s:o}", "host", h->host, "mirrors",
                                        mirrors, "mirror_only", h->mirror_only, "insecure",
                                        h->insecure, "ca_file", str_or_null(h->ca_file)));
    }
    req = json_pack("{s:s, s:s, s:i, s:s, s:o, s:i, s:o*}", "op", "pull", "root", root, "log_level",
                    current_log_level(), "image", image, "platform",
                    str_or_null(cfg->default_platform), "max_downloads",
                    cfg->max_concurrent_downloads, "registries", regs);
    if (req && auth) {
        json_t *a = json_pack(
            "{s:o, s:o, s:o, s:o, s:o}", "username", str_or_null(auth->username), "password",
            str_or_null(auth->password), "auth", str_or_null(auth->auth), "identity_token",
            str_or_null(auth->identity_token), "registry_token", str_or_null(auth->registry_token));
        if (a == NULL || json_object_set_new(req, "auth", a) < 0) {
            json_decref(req);
            req = NULL;
        }
    }
    return dump(req, err);
}

char *hp_image_helper_import_request(const char *root, const char *path, const char *name,
                                     const char *platform, hp_err *err)
{
    return dump(json_pack("{s:s, s:s, s:i, s:s, s:o, s:o}", "op", "import", "root", root,
                          "log_level", current_log_level(), "path", path, "name", str_or_null(name),
                          "platform", str_or_null(platform)),
                err);
}

/* ---- the helper's output lines ------------------------------------------- */

static char *line(json_t *msg)
{
    char *s = msg ? json_dumps(msg, JSON_COMPACT) : NULL, *out = NULL;
    json_decref(msg);
    if (s && asprintf(&out, "%s\n", s) < 0)
        out = NULL;
    free(s);
    return out;
}

char *hp_image_helper_progress_line(const struct hp_pull_progress *p)
{
    return line(json_pack(
        "{s:{s:i, s:o, s:I, s:I, s:I, s:I, s:I}}", "progress", "phase", (int)p->phase,
        "layer_digest", str_or_null(p->layer_digest), "layer_index", (json_int_t)p->layer_index,
        "layer_count", (json_int_t)p->layer_count, "layers_done", (json_int_t)p->layers_done,
        "bytes_done", (json_int_t)p->bytes_done, "bytes_total", (json_int_t)p->bytes_total));
}

char *hp_image_helper_image_line(const struct hp_image_new *im)
{
    json_t *layers = json_array(), *tags = json_array();
    for (size_t i = 0; layers && i < im->n_layers; i++)
        json_array_append_new(layers, json_pack("{s:s, s:I}", "digest", im->layers[i].digest,
                                                "size", (json_int_t)im->layers[i].size));
    for (size_t i = 0; tags && i < im->n_repo_tags; i++)
        json_array_append_new(tags, json_string(im->repo_tags[i]));
    return line(json_pack("{s:{s:s, s:s, s:o*, s:o*, s:o, s:I}}", "image", "id", im->id,
                          "config_json", im->config_json, "layers", layers, "repo_tags", tags,
                          "repo_digest", str_or_null(im->repo_digest), "size",
                          (json_int_t)im->size));
}

char *hp_image_helper_error_line(const hp_err *e)
{
    return line(json_pack("{s:{s:i, s:s}}", "error", "code", e->code ? e->code : HP_INTERNAL, "msg",
                          e->msg));
}

/* ---- the daemon's side ---------------------------------------------------- */

struct run {
    hp_pull_progress_fn progress;
    void *progress_ud;
    json_t *image; /* the "image" object, owned */
    hp_err helper_err;
    bool got_error;
    bool bad_output;
};

static void on_progress(struct run *r, json_t *p)
{
    struct hp_pull_progress ev = {0};
    json_int_t phase = 0, index = 0, count = 0, done = 0, bytes = 0, total = 0;
    const char *digest = NULL;
    if (json_unpack(p, "{s:I, s:I, s:I, s:I, s:I, s:I}", "phase", &phase, "layer_index", &index,
                    "layer_count", &count, "layers_done", &done, "bytes_done", &bytes,
                    "bytes_total", &total) < 0 ||
        phase < HP_PULL_RESOLVING || phase >= HP_PULL_DONE || index < 0 || count < 0 || done < 0 ||
        bytes < 0 || total < 0) {
        hp_warn("image helper: malformed progress report");
        r->bad_output = true;
        return;
    }
    if (r->progress == NULL)
        return;
    digest = json_string_value(json_object_get(p, "layer_digest")); /* NULL for null */
    ev.phase = (enum hp_pull_phase)phase;
    ev.layer_digest = digest;
    ev.layer_index = (size_t)index;
    ev.layer_count = (size_t)count;
    ev.layers_done = (size_t)done;
    ev.bytes_done = (uint64_t)bytes;
    ev.bytes_total = (uint64_t)total;
    r->progress(r->progress_ud, &ev);
}

static void on_line(struct run *r, const char *buf, size_t len)
{
    json_error_t je;
    json_t *msg = json_loadb(buf, len, 0, &je), *v;
    if (msg == NULL || !json_is_object(msg)) {
        hp_warn("image helper: unexpected output line (%zu bytes): %.200s", len, buf);
        r->bad_output = true;
    } else if ((v = json_object_get(msg, "progress")) != NULL) {
        on_progress(r, v);
    } else if ((v = json_object_get(msg, "image")) != NULL && json_is_object(v) && !r->image) {
        r->image = json_incref(v);
    } else if ((v = json_object_get(msg, "error")) != NULL) {
        json_int_t code = HP_INTERNAL;
        const char *m = "";
        if (json_unpack(v, "{s:I, s:s}", "code", &code, "msg", &m) < 0 || code <= 0 ||
            code > HP_UNAUTHENTICATED)
            code = HP_INTERNAL;
        hp_err_set(&r->helper_err, (int)code, "%s", m);
        r->got_error = true;
    } else {
        hp_warn("image helper: unexpected output line (%zu bytes): %.200s", len, buf);
        r->bad_output = true;
    }
    json_decref(msg);
}

/* Record the image of the helper's "image" message.  *image_id, *tags: see
 * hp_image_helper_run. */
static int record(hp_image_service *svc, json_t *o, char **image_id, hp_strlist *tags, hp_err *err)
{
    const char *id = NULL, *config_json = NULL, *repo_digest = NULL;
    json_t *layers = NULL, *jtags = NULL;
    json_int_t size = 0;
    struct hp_image_config config = {0};
    struct hp_descriptor *descs = NULL;
    const char **tagv = NULL;
    char want[72];
    int rc = -1;

    repo_digest = json_string_value(json_object_get(o, "repo_digest")); /* NULL for null */
    if (json_unpack(o, "{s:s, s:s, s:o, s:o, s:I}", "id", &id, "config_json", &config_json,
                    "layers", &layers, "repo_tags", &jtags, "size", &size) < 0 ||
        !json_is_array(layers) || !json_is_array(jtags) || !hp_ref_digest_valid(id))
        return hp_err_set(err, HP_INTERNAL, "image helper: malformed result");
    /* The id is the config's digest: check the helper reports a consistent
     * pair (the config is what containers will run with). */
    hp_sha256_digest(config_json, strlen(config_json), want);
    if (strncmp(id, "sha256:", 7) == 0 && strcmp(want, id) != 0)
        return hp_err_set(err, HP_DATA_LOSS, "image helper: config does not match image id %s", id);
    if (hp_image_config_parse(config_json, strlen(config_json), &config, err) < 0)
        return hp_err_wrap(err, "image %s", id);
    descs = calloc(json_array_size(layers) + 1, sizeof *descs);
    tagv = calloc(json_array_size(jtags) + 1, sizeof *tagv);
    if (descs == NULL || tagv == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < json_array_size(layers); i++) {
        const char *digest = NULL;
        json_int_t lsize = -1;
        if (json_unpack(json_array_get(layers, i), "{s:s, s:I}", "digest", &digest, "size",
                        &lsize) < 0 ||
            !hp_ref_digest_valid(digest) || lsize < 0) {
            hp_err_set(err, HP_INTERNAL, "image helper: malformed layer in result");
            goto out;
        }
        descs[i].digest = (char *)digest;
        descs[i].size = lsize;
    }
    for (size_t i = 0; i < json_array_size(jtags); i++) {
        tagv[i] = json_string_value(json_array_get(jtags, i));
        if (tagv[i] == NULL) {
            hp_err_set(err, HP_INTERNAL, "image helper: malformed tag in result");
            goto out;
        }
    }
    {
        struct hp_image_new im = {
            .id = id,
            .config_json = config_json,
            .config = &config,
            .layers = descs,
            .n_layers = json_array_size(layers),
            .repo_tags = tagv,
            .n_repo_tags = json_array_size(jtags),
            .repo_digest = repo_digest,
            .size = size,
        };
        if (hp_image_record(svc, &im, err) < 0)
            goto out;
    }
    *image_id = strdup(id);
    if (*image_id == NULL) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; tags && i < json_array_size(jtags); i++)
        if (hp_strlist_add(tags, tagv[i], err) < 0) {
            free(*image_id);
            *image_id = NULL;
            hp_strlist_clear(tags);
            goto out;
        }
    rc = 0;
out:
    free(descs);
    free(tagv);
    hp_image_config_free(&config);
    return rc;
}

static void close_pair(int p[2])
{
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    p[0] = p[1] = -1;
}

static pid_t reap(pid_t pid, int *status)
{
    pid_t w;
    while ((w = waitpid(pid, status, 0)) < 0 && errno == EINTR)
        ;
    return w;
}

/* Start the helper with stdin = in[0], stdout = out[1].  Returns its pid, or
 * -1 with err. */
static pid_t spawn(const char *helper, int in[2], int out[2], hp_err *err)
{
    char *const argv[] = {(char *)helper, NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return hp_err_sys(err, HP_RESOURCE_EXHAUSTED, "image helper: fork");
    if (pid == 0) {
        /* child: async-signal-safe calls only */
        sigset_t none;
        /* Dies with the daemon: a pull must not outlive it (the restarted
         * daemon collects what was left, see service.c).  The death signal
         * follows the forking thread, which waits here until the helper
         * exits, so it only fires when the whole daemon goes. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
            _exit(127);
        syscall(SYS_close_range, 3, ~0U, 0);
        execve(helper, argv, environ);
        _exit(127);
    }
    return pid;
}

int hp_image_helper_run(hp_image_service *svc, const char *helper, const char *request,
                        const atomic_bool *cancel, hp_pull_progress_fn progress, void *progress_ud,
                        char **image_id, hp_strlist *tags, hp_err *err)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, status = 0, rc = -1;
    struct run r = {.progress = progress, .progress_ud = progress_ud};
    _cleanup_free_ char *buf = NULL;
    size_t len = 0, cap = 0, reqlen = strlen(request), off = 0;
    bool cancelled = false;
    pid_t pid;

    *image_id = NULL;
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
        hp_err_sys(err, HP_RESOURCE_EXHAUSTED, "image helper: pipe");
        close_pair(in);
        close_pair(out);
        return -1;
    }
    hp_image_op_begin(svc);
    pid = spawn(helper, in, out, err);
    close(in[0]);
    close(out[1]);
    in[0] = out[1] = -1;
    if (pid < 0)
        goto out;
    hp_debug("image helper %s: pid %d", helper, (int)pid);
    /* The request fits the pipe buffer except for absurd credentials; a
     * helper that died early makes this fail with EPIPE (SIGPIPE is ignored),
     * and its exit status tells why. */
    while (off < reqlen) {
        ssize_t n = write(in[1], request + off, reqlen - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(in[1]);
    in[1] = -1;

    for (;;) {
        struct pollfd pf = {out[0], POLLIN, 0};
        ssize_t n;
        if (cancel && atomic_load(cancel)) {
            cancelled = true;
            break;
        }
        if (poll(&pf, 1, POLL_MS) <= 0)
            continue;
        if (cap - len < 65536) {
            size_t ncap = cap ? 2 * cap : 65536;
            char *nb;
            if (ncap > LINE_MAX_BYTES + 65536 || (nb = realloc(buf, ncap)) == NULL) {
                r.bad_output = true;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        n = read(out[0], buf + len, cap - len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break; /* EOF: the helper is done (or dead) */
        len += (size_t)n;
        for (char *nl; (nl = memchr(buf, '\n', len)) != NULL;) {
            size_t l = (size_t)(nl - buf);
            on_line(&r, buf, l);
            memmove(buf, nl + 1, len - l - 1);
            len -= l + 1;
        }
        if (len > LINE_MAX_BYTES)
            r.bad_output = true;
        if (r.bad_output)
            break; /* a helper that talks nonsense is not waited for */
    }
    if (cancelled || r.bad_output)
        kill(pid, SIGKILL);
    if (reap(pid, &status) < 0) {
        hp_err_sys(err, HP_INTERNAL, "image helper: waitpid %d", (int)pid);
        goto out;
    }
    if (cancelled) {
        hp_info("image helper pid %d killed: the call was cancelled", (int)pid);
        hp_err_set(err, HP_CANCELLED, "cancelled");
    } else if (r.bad_output) {
        hp_err_set(err, HP_INTERNAL, "image helper %s: unexpected output", helper);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && r.image && !r.got_error) {
        rc = record(svc, r.image, image_id, tags, err);
    } else if (r.got_error) {
        *err = r.helper_err;
    } else if (WIFSIGNALED(status)) {
        hp_err_set(err, HP_INTERNAL, "image helper %s (pid %d) killed by signal %d", helper,
                   (int)pid, WTERMSIG(status));
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        hp_err_set(err, HP_INTERNAL, "cannot run image helper %s", helper);
    } else {
        hp_err_set(err, HP_INTERNAL, "image helper %s (pid %d) exited with status %d and no result",
                   helper, (int)pid, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    if (rc == 0 && progress) {
        /* DONE only now: the image is recorded. */
        struct hp_pull_progress ev = {.phase = HP_PULL_DONE, .image_id = *image_id};
        json_t *layers = json_object_get(r.image, "layers");
        size_t nl = json_array_size(layers);
        json_int_t total = 0;
        for (size_t i = 0; i < nl; i++)
            total += json_integer_value(json_object_get(json_array_get(layers, i), "size"));
        ev.layer_count = ev.layers_done = nl;
        ev.bytes_done = ev.bytes_total = (uint64_t)total;
        if (nl > 0) {
            ev.layer_index = nl - 1;
            ev.layer_digest =
                json_string_value(json_object_get(json_array_get(layers, nl - 1), "digest"));
        }
        progress(progress_ud, &ev);
    }
out:
    close_pair(in);
    close_pair(out);
    json_decref(r.image);
    hp_image_op_end(svc);
    return rc;
}
