/* hpcri configuration: defaults, INI parsing (libinih) and validation.
 *
 * libinih (Debian build) gives the handler no line numbers and does not report
 * section headers, so the file is fed to ini_parse_stream() through our own
 * line reader: it counts lines, classifies each line the way inih will, and
 * opens sections itself.  The key/value callback then knows the current line
 * and section.  Every problem is recorded with its line; the one with the
 * smallest line number is reported, so the message names the first problem in
 * the file whatever order the checks ran in.
 */
#include "config/config.h"
#include "config/config_spec.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "util/cleanup.h"
#include "util/log.h"

#define MAX_CONFIG_SIZE (1024 * 1024)
#define SUN_PATH_MAX    (sizeof(((struct sockaddr_un *)0)->sun_path))

/* ------------------------------------------------------------------------ */
/* Schema                                                                    */

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const type_names[] = {"oci", "charliecloud", "slurm", "remote", NULL};
static const char *const cgroup_managers[] = {"cgroupfs", "none", NULL};
static const char *const rootless_modes[] = {"auto", "true", "false", NULL};
static const char *const seccomp_modes[] = {"runtime/default", "unconfined", NULL};
static const char *const network_modes[] = {"host", "pod", NULL};
static const char *const mpi_modes[] = {"none", "pmi2", "pmix", NULL};

static const hp_opt_spec hpcri_specs[] = {
    {.key = "listen", .kind = HP_K_LISTEN},
    {.key = "root", .kind = HP_K_ABS_PATH},
    {.key = "run_dir", .kind = HP_K_ABS_PATH},
    {.key = "log_level", .kind = HP_K_ENUM, .choices = log_levels},
    {.key = "workers", .kind = HP_K_INT, .min = 1, .max = 64},
    {.key = "pause_path", .kind = HP_K_ABS_PATH_EMPTY},
    {.key = "stream_address", .kind = HP_K_IP},
    {.key = "stream_port", .kind = HP_K_INT, .min = 0, .max = 65535},
};

static const hp_opt_spec image_specs[] = {
    {.key = "default_platform", .kind = HP_K_PLATFORM},
    {.key = "max_concurrent_downloads", .kind = HP_K_INT, .min = 1, .max = 32},
};

static const hp_opt_spec registry_specs[] = {
    {.key = "mirrors", .kind = HP_K_URL_LIST},
    {.key = "mirror_only", .kind = HP_K_BOOL},
    {.key = "insecure", .kind = HP_K_BOOL},
    {.key = "ca_file", .kind = HP_K_ABS_PATH},
};

static const hp_opt_spec oci_specs[] = {
    {.key = "runtime_path", .kind = HP_K_PROGRAM, .def_root = "runc", .def_user = "runc"},
    {.key = "runtime_root", .kind = HP_K_ABS_PATH, .unset = "the OCI runtime's own default"},
    {.key = "conmon_path", .kind = HP_K_PROGRAM, .def_root = "conmon", .def_user = "conmon"},
    {.key = "cgroup_manager",
     .kind = HP_K_ENUM,
     .choices = cgroup_managers,
     .def_root = "cgroupfs",
     .def_user = "none"},
    {.key = "rootless",
     .kind = HP_K_ENUM,
     .choices = rootless_modes,
     .def_root = "auto",
     .def_user = "auto"},
    {.key = "default_seccomp",
     .kind = HP_K_ENUM,
     .choices = seccomp_modes,
     .def_root = "runtime/default",
     .def_user = "runtime/default"},
    {.key = "network",
     .kind = HP_K_ENUM,
     .choices = network_modes,
     .def_root = "pod",
     .def_user = "host"},
};

static const hp_opt_spec charliecloud_specs[] = {
    {.key = "runtime_path", .kind = HP_K_PROGRAM, .def_root = "runc", .def_user = "runc"},
    {.key = "conmon_path", .kind = HP_K_PROGRAM, .def_root = "conmon", .def_user = "conmon"},
};

static const hp_opt_spec slurm_specs[] = {
    {.key = "partition", .kind = HP_K_SLURM_NAME, .unset = "the cluster's default partition"},
    {.key = "account", .kind = HP_K_SLURM_NAME, .unset = "the user's default account"},
    {.key = "qos", .kind = HP_K_SLURM_NAME, .unset = "the default QOS"},
    {.key = "time_limit", .kind = HP_K_SLURM_TIME, .unset = "the partition's default"},
    {.key = "shared_dir", .kind = HP_K_ABS_PATH, .required = true},
    {.key = "runtime_path", .kind = HP_K_PROGRAM, .def_root = "runc", .def_user = "runc"},
    {.key = "slurm_bin_dir", .kind = HP_K_ABS_PATH, .def_root = "/usr/bin", .def_user = "/usr/bin"},
    {.key = "poll_interval_ms",
     .kind = HP_K_INT,
     .min = 100,
     .max = 60000,
     .def_root = "2000",
     .def_user = "2000"},
    {.key = "job_name_prefix", .kind = HP_K_JOB_PREFIX, .def_root = "hpcri-", .def_user = "hpcri-"},
    {.key = "mpi", .kind = HP_K_ENUM, .choices = mpi_modes, .def_root = "pmi2", .def_user = "pmi2"},
    {.key = "step_helper",
     .kind = HP_K_ABS_PATH,
     .unset = "hpcri-step next to the pause binary (pause_path), i.e. next to hpcri"},
    {.key = "stats_interval_ms",
     .kind = HP_K_INT,
     .min = 100,
     .max = 600000,
     .def_root = "2000",
     .def_user = "2000"},
    {.key = "gpu_devices", .kind = HP_K_DEV_LIST, .unset = "no GPU device nodes are added"},
};

static const hp_opt_spec remote_specs[] = {
    {.key = "endpoint", .kind = HP_K_UNIX_URI, .required = true},
    {.key = "timeout_ms",
     .kind = HP_K_INT,
     .min = 100,
     .max = 3600000,
     .def_root = "10000",
     .def_user = "10000"},
    {.key = "image_endpoint", .kind = HP_K_UNIX_URI, .def_from = "endpoint"},
    {.key = "remote_handler", .kind = HP_K_SLURM_NAME},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

const hp_opt_spec *hp_spec_for_type(hp_backend_type type, size_t *n)
{
    switch (type) {
    case HP_BACKEND_OCI:
        *n = N_OF(oci_specs);
        return oci_specs;
    case HP_BACKEND_CHARLIECLOUD:
        *n = N_OF(charliecloud_specs);
        return charliecloud_specs;
    case HP_BACKEND_SLURM:
        *n = N_OF(slurm_specs);
        return slurm_specs;
    case HP_BACKEND_REMOTE:
        *n = N_OF(remote_specs);
        return remote_specs;
    }
    *n = 0;
    return NULL;
}

static const hp_opt_spec *spec_lookup(const hp_opt_spec *specs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(specs[i].key, key) == 0)
            return &specs[i];
    return NULL;
}

const hp_opt_spec *hp_spec_find(hp_backend_type type, const char *key)
{
    size_t n;
    const hp_opt_spec *specs = hp_spec_for_type(type, &n);
    return spec_lookup(specs, n, key);
}

const char *hp_backend_type_name(hp_backend_type type)
{
    switch (type) {
    case HP_BACKEND_OCI:
        return "oci";
    case HP_BACKEND_SLURM:
        return "slurm";
    case HP_BACKEND_REMOTE:
        return "remote";
    case HP_BACKEND_CHARLIECLOUD:
        return "charliecloud";
    }
    return "?";
}

static int backend_type_parse(const char *s, hp_backend_type *out)
{
    static const hp_backend_type vals[] = {HP_BACKEND_OCI, HP_BACKEND_CHARLIECLOUD,
                                           HP_BACKEND_SLURM, HP_BACKEND_REMOTE};
    for (size_t i = 0; type_names[i]; i++)
        if (strcmp(s, type_names[i]) == 0) {
            *out = vals[i];
            return 0;
        }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Value validation                                                          */

static int parse_long(const char *s, long *out)
{
    char *end;
    if (!*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"true", "yes", "1", "on"};
    static const char *const f[] = {"false", "no", "0", "off"};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (strcasecmp(s, t[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, f[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static bool all_chars(const char *s, const char *extra)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
            return false;
    return true;
}

static bool has_space(const char *s)
{
    for (; *s; s++)
        if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s))
            return true;
    return false;
}

static bool is_abs_path(const char *s)
{
    return s[0] == '/' && strlen(s) < PATH_MAX && !strchr(s, '\n');
}

/* Parse up to 9 decimal digits; -1 if s is not all digits. */
static long digits(const char *s, size_t len)
{
    long v = 0;
    if (len == 0 || len > 9)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Split s at ':' into up to 3 numbers; returns the count, -1 on bad syntax. */
static int split_colon(const char *s, long out[3])
{
    int n = 0;
    const char *p = s;
    for (;;) {
        const char *c = strchr(p, ':');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (n == 3)
            return -1;
        out[n] = digits(p, len);
        if (out[n] < 0)
            return -1;
        n++;
        if (!c)
            return n;
        p = c + 1;
    }
}

int hp_config_parse_slurm_time(const char *s, int64_t *seconds, hp_err *err)
{
    const char *expect = "expected MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED";
    long f[3];
    int n;
    if (strcasecmp(s, "UNLIMITED") == 0) {
        *seconds = -1;
        return 0;
    }
    const char *dash = strchr(s, '-');
    if (dash) {
        long days = digits(s, (size_t)(dash - s));
        n = days < 0 ? -1 : split_colon(dash + 1, f);
        if (n < 0)
            return hp_err_set(err, HP_INVALID_ARGUMENT, "bad time limit \"%s\": %s", s, expect);
        if (f[0] > 23 || (n > 1 && f[1] > 59) || (n > 2 && f[2] > 59))
            return hp_err_set(err, HP_INVALID_ARGUMENT,
                              "bad time limit \"%s\": hours must be below 24, minutes and "
                              "seconds below 60",
                              s);
        *seconds = (int64_t)days * 86400 + (int64_t)f[0] * 3600 + (n > 1 ? f[1] * 60 : 0) +
                   (n > 2 ? f[2] : 0);
        return 0;
    }
    n = split_colon(s, f);
    if (n < 0)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "bad time limit \"%s\": %s", s, expect);
    if ((n == 2 && f[1] > 59) || (n == 3 && (f[1] > 59 || f[2] > 59)))
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "bad time limit \"%s\": minutes and seconds must be below 60", s);
    if (n == 1)
        *seconds = (int64_t)f[0] * 60;
    else if (n == 2)
        *seconds = (int64_t)f[0] * 60 + f[1];
    else
        *seconds = (int64_t)f[0] * 3600 + (int64_t)f[1] * 60 + f[2];
    return 0;
}

static bool valid_url(const char *u)
{
    const char *h;
    if (strncmp(u, "http://", 7) == 0)
        h = u + 7;
    else if (strncmp(u, "https://", 8) == 0)
        h = u + 8;
    else
        return false;
    return *h && *h != '/' && !has_space(u);
}

/* Split a comma-separated URL list.  Returns 0 with *out (malloc'd array of
 * malloc'd URLs, trailing '/' removed; caller frees both levels) and *n, or -1
 * with `why` filled (empty why = ENOMEM). */
static int url_list_split(const char *v, char ***out, size_t *n, char *why, size_t wlen)
{
    char **list = NULL;
    size_t cnt = 0;
    const char *p = v;
    why[0] = '\0';
    for (;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        while (len && isspace((unsigned char)*p))
            p++, len--;
        while (len && isspace((unsigned char)p[len - 1]))
            len--;
        while (len > 1 && p[len - 1] == '/')
            len--;
        char *u = strndup(p, len);
        char **nl = u ? realloc(list, (cnt + 1) * sizeof *list) : NULL;
        if (!nl) {
            free(u);
            goto fail;
        }
        list = nl;
        list[cnt++] = u;
        if (!valid_url(u)) {
            snprintf(why, wlen, "\"%s\" is not an http:// or https:// URL", u);
            goto fail;
        }
        if (!c)
            break;
        p = c + 1;
    }
    *out = list;
    *n = cnt;
    return 0;
fail:
    for (size_t i = 0; i < cnt; i++)
        free(list[i]);
    free(list);
    return -1;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Validate `v` against spec.  Returns the normalized value (malloc'd, caller
 * frees), or NULL with `why` describing what is expected (why[0] == '\0' means
 * out of memory). */
static char *opt_normalize(const hp_opt_spec *s, const char *v, char *why, size_t wlen)
{
    why[0] = '\0';
    switch (s->kind) {
    case HP_K_ABS_PATH:
        if (!is_abs_path(v)) {
            snprintf(why, wlen, "expected an absolute path");
            return NULL;
        }
        return strdup(v);
    case HP_K_ABS_PATH_EMPTY:
        if (*v && !is_abs_path(v)) {
            snprintf(why, wlen, "expected an absolute path or nothing");
            return NULL;
        }
        return strdup(v);
    case HP_K_PROGRAM:
        if (!*v || has_space(v) || (strchr(v, '/') && !is_abs_path(v))) {
            snprintf(why, wlen, "expected an absolute path or a program name to look up in PATH");
            return NULL;
        }
        return strdup(v);
    case HP_K_ENUM: {
        for (size_t i = 0; s->choices[i]; i++)
            if (strcmp(v, s->choices[i]) == 0)
                return strdup(v);
        size_t off = (size_t)snprintf(why, wlen, "expected one of");
        for (size_t i = 0; s->choices[i] && off < wlen; i++)
            off += (size_t)snprintf(why + off, wlen - off, "%s %s", i ? "," : "", s->choices[i]);
        return NULL;
    }
    case HP_K_INT: {
        long n;
        if (parse_long(v, &n) < 0 || n < s->min || n > s->max) {
            snprintf(why, wlen, "expected an integer from %ld to %ld", s->min, s->max);
            return NULL;
        }
        char buf[32];
        snprintf(buf, sizeof buf, "%ld", n);
        return strdup(buf);
    }
    case HP_K_BOOL: {
        bool b;
        if (parse_bool(v, &b) < 0) {
            snprintf(why, wlen, "expected true, false, yes, no, on, off, 1 or 0");
            return NULL;
        }
        return strdup(b ? "true" : "false");
    }
    case HP_K_SLURM_TIME: {
        hp_err e = HP_ERR_INIT;
        int64_t secs;
        if (hp_config_parse_slurm_time(v, &secs, &e) < 0) {
            const char *m = strstr(e.msg, ": ");
            m = m ? m + 2 : e.msg;
            size_t l = strnlen(m, wlen - 1);
            memcpy(why, m, l);
            why[l] = '\0';
            return NULL;
        }
        return strdup(secs < 0 ? "UNLIMITED" : v);
    }
    case HP_K_SLURM_NAME:
        if (!all_chars(v, "_.,-")) {
            snprintf(why, wlen, "expected letters, digits and _ . , - only");
            return NULL;
        }
        return strdup(v);
    case HP_K_JOB_PREFIX:
        if (!all_chars(v, "_.-") || strlen(v) > 64) {
            snprintf(why, wlen, "expected 1 to 64 letters, digits, _ . or -");
            return NULL;
        }
        return strdup(v);
    case HP_K_UNIX_URI:
        if (strncmp(v, "unix://", 7) != 0 || !is_abs_path(v + 7) || has_space(v) ||
            strlen(v + 7) >= SUN_PATH_MAX) {
            snprintf(why, wlen, "expected unix:///absolute/path/to.sock (path under %zu bytes)",
                     SUN_PATH_MAX);
            return NULL;
        }
        return strdup(v);
    case HP_K_LISTEN: {
        const char *p = strncmp(v, "unix://", 7) == 0 ? v + 7 : v;
        if (!is_abs_path(p) || strlen(p) >= SUN_PATH_MAX) {
            snprintf(why, wlen,
                     "expected an absolute unix socket path (or unix:///path) under %zu bytes",
                     SUN_PATH_MAX);
            return NULL;
        }
        return strdup(p);
    }
    case HP_K_IP: {
        unsigned char buf[sizeof(struct in6_addr)];
        if (inet_pton(AF_INET, v, buf) != 1 && inet_pton(AF_INET6, v, buf) != 1) {
            snprintf(why, wlen, "expected an IPv4 or IPv6 address");
            return NULL;
        }
        return strdup(v);
    }
    case HP_K_PLATFORM: {
        int parts = 1;
        bool ok = *v && v[strlen(v) - 1] != '/' && *v != '/';
        for (const char *p = v; *p && ok; p++) {
            if (*p == '/') {
                ok = p[1] != '/';
                parts++;
            } else if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_') {
                ok = false;
            }
        }
        if (!ok || parts < 2 || parts > 3) {
            snprintf(why, wlen, "expected os/arch or os/arch/variant, e.g. linux/amd64");
            return NULL;
        }
        return strdup(v);
    }
    case HP_K_DEV_LIST: {
        /* "/dev/nvidia%d" or "/dev/a, /dev/b": no spaces inside a path, no
         * '%' other than one %d */
        char *out = malloc(strlen(v) + 1);
        if (!out)
            return NULL;
        size_t o = 0;
        for (const char *p = v; *p;) {
            while (*p == ' ' || *p == '\t')
                p++;
            size_t l = strcspn(p, ",");
            size_t tl = l;
            while (tl > 0 && (p[tl - 1] == ' ' || p[tl - 1] == '\t'))
                tl--;
            const char *pct = memchr(p, '%', tl);
            bool ok = tl > 1 && p[0] == '/' && !memchr(p, ' ', tl) && !memchr(p, '\t', tl) &&
                      (!pct || (pct + 1 < p + tl && pct[1] == 'd' &&
                                !memchr(pct + 1, '%', tl - (size_t)(pct + 1 - p))));
            if (!ok) {
                free(out);
                snprintf(why, wlen,
                         "expected absolute device paths separated by commas, each with at most "
                         "one %%d (the GPU index)");
                return NULL;
            }
            if (o)
                out[o++] = ',';
            memcpy(out + o, p, tl);
            o += tl;
            p += l;
            if (*p == ',')
                p++;
        }
        out[o] = '\0';
        if (!o) {
            free(out);
            snprintf(why, wlen, "expected at least one device path");
            return NULL;
        }
        return out;
    }
    case HP_K_URL_LIST: {
        char **list;
        size_t n, len = 1;
        if (url_list_split(v, &list, &n, why, wlen) < 0)
            return NULL;
        for (size_t i = 0; i < n; i++)
            len += strlen(list[i]) + 2;
        char *joined = malloc(len);
        if (joined) {
            joined[0] = '\0';
            for (size_t i = 0; i < n; i++) {
                if (i)
                    strcat(joined, ", ");
                strcat(joined, list[i]);
            }
        }
        free_strv(list, n);
        return joined;
    }
    }
    snprintf(why, wlen, "unsupported value");
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Freeing                                                                   */

static void handler_clear(hp_handler_config *h)
{
    free(h->name);
    for (size_t i = 0; i < h->n_opts; i++) {
        free(h->opts[i].key);
        free(h->opts[i].value);
    }
    free(h->opts);
    memset(h, 0, sizeof *h);
}

static void registry_clear(hp_registry_host_config *r)
{
    free(r->host);
    free_strv(r->mirrors, r->n_mirrors);
    free(r->ca_file);
    memset(r, 0, sizeof *r);
}

void hp_config_free(hp_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->path);
    free(cfg->listen);
    free(cfg->root);
    free(cfg->run_dir);
    free(cfg->pause_path);
    free(cfg->stream_address);
    free(cfg->default_platform);
    for (size_t i = 0; i < cfg->n_registries; i++)
        registry_clear(&cfg->registries[i]);
    free(cfg->registries);
    for (size_t i = 0; i < cfg->n_handlers; i++)
        handler_clear(&cfg->handlers[i]);
    free(cfg->handlers);
    free(cfg);
}

/* ------------------------------------------------------------------------ */
/* Defaults                                                                  */

#if defined(__x86_64__)
#define HOST_ARCH "amd64"
#elif defined(__aarch64__)
#define HOST_ARCH "arm64"
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_ARCH "ppc64le"
#elif defined(__s390x__)
#define HOST_ARCH "s390x"
#elif defined(__riscv) && __riscv_xlen == 64
#define HOST_ARCH "riscv64"
#elif defined(__i386__)
#define HOST_ARCH "386"
#elif defined(__arm__)
#define HOST_ARCH "arm"
#else
#define HOST_ARCH "unknown"
#endif

/* dirname() of an absolute path as a new string (caller frees); "/" for "/x". */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 0;
    return len ? strndup(path, len) : strdup("/");
}

static char *home_of(uid_t uid)
{
    const char *home = getenv("HOME");
    if (home && home[0] == '/')
        return strdup(home);
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res && res->pw_dir &&
        res->pw_dir[0] == '/')
        return strdup(res->pw_dir);
    return NULL;
}

static int set_str(char **field, const char *value, hp_err *err)
{
    char *dup = value ? strdup(value) : NULL;
    if (value && !dup)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    free(*field);
    *field = dup;
    return 0;
}

hp_config *hp_config_default(uid_t uid, hp_err *err)
{
    hp_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        goto enomem;
    cfg->uid = uid;
    cfg->log_level = HP_LOG_INFO;
    cfg->workers = 4;
    cfg->stream_port = 0;
    cfg->max_concurrent_downloads = 3;
    if (uid == 0) {
        cfg->listen = strdup("/run/hpcri/hpcri.sock");
        cfg->root = strdup("/var/lib/hpcri");
        if (!cfg->listen || !cfg->root)
            goto enomem;
    } else {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        const char *data = getenv("XDG_DATA_HOME");
        int r = (xdg && xdg[0] == '/')
                    ? asprintf(&cfg->listen, "%s/hpcri/hpcri.sock", xdg)
                    : asprintf(&cfg->listen, "/tmp/hpcri-%u/hpcri.sock", (unsigned)uid);
        if (r < 0) {
            cfg->listen = NULL;
            goto enomem;
        }
        if (data && data[0] == '/') {
            r = asprintf(&cfg->root, "%s/hpcri", data);
        } else {
            _cleanup_free_ char *home = home_of(uid);
            if (!home) {
                hp_err_set(err, HP_FAILED_PRECONDITION,
                           "cannot choose a state directory for uid %u: neither XDG_DATA_HOME "
                           "nor HOME is set and the uid has no home directory; set root in the "
                           "config file or pass --root",
                           (unsigned)uid);
                hp_config_free(cfg);
                return NULL;
            }
            r = asprintf(&cfg->root, "%s/.local/share/hpcri", home);
        }
        if (r < 0) {
            cfg->root = NULL;
            goto enomem;
        }
        if (strlen(cfg->listen) >= SUN_PATH_MAX) {
            hp_err_set(err, HP_FAILED_PRECONDITION,
                       "default socket path %s is too long for a unix socket; set listen in the "
                       "config file or pass --listen",
                       cfg->listen);
            hp_config_free(cfg);
            return NULL;
        }
    }
    cfg->run_dir = dir_of(cfg->listen);
    cfg->stream_address = strdup("127.0.0.1");
    cfg->default_platform = strdup("linux/" HOST_ARCH);
    cfg->handlers = calloc(1, sizeof *cfg->handlers);
    if (!cfg->run_dir || !cfg->stream_address || !cfg->default_platform || !cfg->handlers)
        goto enomem;
    cfg->n_handlers = 1;
    cfg->handlers[0].name = strdup("");
    cfg->handlers[0].type = HP_BACKEND_OCI;
    cfg->handlers[0].uid = uid;
    if (!cfg->handlers[0].name)
        goto enomem;
    return cfg;
enomem:
    hp_config_free(cfg);
    hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory building the default configuration");
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */

enum section_kind { S_NONE, S_BAD, S_HPCRI, S_IMAGE, S_REGISTRY, S_RUNTIME };
enum line_kind { L_SKIP, L_SECTION, L_KEY, L_CONT, L_BAD };

typedef struct seen_key {
    char *key;
    int line;
} seen_key;

typedef struct section_seen {
    char *name; /* canonical: hpcri, image, runtime, registry "h", runtime "n" */
    int line;
} section_seen;

typedef struct parse_ctx {
    hp_config *cfg;
    const char *fname;
    const char *cur; /* reader position in the text */
    int lineno;
    enum line_kind kind;
    bool have_prev_key; /* inih continues a value on indented lines after a key */

    enum section_kind sect;
    size_t sect_index; /* registry or handler index */
    seen_key *seen;    /* keys of the current global/registry section */
    size_t n_seen;
    section_seen *sections;
    size_t n_sections;

    hp_handler_config *fh; /* handlers from the file, raw options incl. "type" */
    size_t n_fh;
    bool listen_set;

    int err_line; /* line of the recorded error, INT_MAX = none */
    hp_err err;
} parse_ctx;

static void ctx_fail(parse_ctx *c, int line, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Record a problem at `line` (0 = not tied to a line) unless an earlier one is known. */
static void ctx_fail(parse_ctx *c, int line, int code, const char *fmt, ...)
{
    char msg[HP_ERR_MSG_MAX];
    va_list ap;
    if (line >= c->err_line)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->err_line = line;
    if (line > 0)
        hp_err_set(&c->err, code, "%s:%d: %s", c->fname, line, msg);
    else
        hp_err_set(&c->err, code, "%s: %s", c->fname, msg);
}

static void ctx_enomem(parse_ctx *c)
{
    ctx_fail(c, 0, HP_RESOURCE_EXHAUSTED, "out of memory");
}

/* Append the keys of specs as "a, b, c" to buf. */
static void spec_keys(char *buf, size_t len, const char *first, const hp_opt_spec *specs, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    if (first)
        off += (size_t)snprintf(buf, len, "%s", first);
    for (size_t i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", specs[i].key);
}

static void handler_section_name(const hp_handler_config *h, char *buf, size_t len)
{
    if (h->name[0])
        snprintf(buf, len, "[runtime \"%s\"]", h->name);
    else
        snprintf(buf, len, "[runtime]");
}

/* DNS-1123 label, as RuntimeClass handler names are. */
static bool valid_handler_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
        return false;
    for (; *s; s++)
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '-')
            return false;
    return true;
}

static bool valid_registry_host(const char *s)
{
    if (!*s || strlen(s) > 255 || *s == '.' || *s == '-' || *s == ':')
        return false;
    return all_chars(s, ".-:_");
}

static void seen_reset(parse_ctx *c)
{
    for (size_t i = 0; i < c->n_seen; i++)
        free(c->seen[i].key);
    free(c->seen);
    c->seen = NULL;
    c->n_seen = 0;
}

/* Parse `word "arg"`: returns 1 with *arg pointing into s (quote replaced by NUL). */
static int split_quoted(char *s, const char *word, char **arg)
{
    size_t wl = strlen(word);
    if (strncmp(s, word, wl) != 0 || !isspace((unsigned char)s[wl]))
        return 0;
    char *p = s + wl;
    while (isspace((unsigned char)*p))
        p++;
    size_t len = strlen(p);
    if (len < 2 || p[0] != '"' || p[len - 1] != '"')
        return 0;
    p[len - 1] = '\0';
    if (strchr(p + 1, '"'))
        return 0;
    *arg = p + 1;
    return 1;
}

static void begin_section(parse_ctx *c, const char *raw, size_t rawlen)
{
    _cleanup_free_ char *name = strndup(raw, rawlen);
    _cleanup_free_ char *canon = NULL;
    char *arg = NULL;
    int line = c->lineno;

    seen_reset(c);
    c->sect = S_BAD;
    if (!name) {
        ctx_enomem(c);
        return;
    }
    /* trim */
    char *s = name;
    while (isspace((unsigned char)*s))
        s++;
    for (size_t l = strlen(s); l && isspace((unsigned char)s[l - 1]); l--)
        s[l - 1] = '\0';

    enum section_kind kind;
    if (strcmp(s, "hpcri") == 0 || strcmp(s, "image") == 0 || strcmp(s, "runtime") == 0) {
        kind = s[0] == 'h' ? S_HPCRI : s[0] == 'i' ? S_IMAGE : S_RUNTIME;
        canon = strdup(s);
    } else if (split_quoted(s, "registry", &arg)) {
        kind = S_REGISTRY;
        for (char *p = arg; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (!valid_registry_host(arg)) {
            ctx_fail(c, line, HP_INVALID_ARGUMENT,
                     "invalid registry host \"%s\" in section header: expected a host name or "
                     "host:port as used in image references, e.g. [registry \"docker.io\"]",
                     arg);
            return;
        }
        if (asprintf(&canon, "registry \"%s\"", arg) < 0)
            canon = NULL;
    } else if (split_quoted(s, "runtime", &arg)) {
        kind = S_RUNTIME;
        if (!arg[0]) {
            ctx_fail(c, line, HP_INVALID_ARGUMENT,
                     "[runtime \"\"]: the default handler's section is plain [runtime]");
            return;
        }
        if (!valid_handler_name(arg)) {
            ctx_fail(c, line, HP_INVALID_ARGUMENT,
                     "invalid runtime handler name \"%s\": expected a DNS label (lower-case "
                     "letters, digits and '-', at most 63 characters), as in a RuntimeClass's "
                     "handler field",
                     arg);
            return;
        }
        if (asprintf(&canon, "runtime \"%s\"", arg) < 0)
            canon = NULL;
    } else {
        ctx_fail(c, line, HP_INVALID_ARGUMENT,
                 "unknown section [%s]; allowed sections: [hpcri], [image], [registry \"HOST\"], "
                 "[runtime], [runtime \"HANDLER\"]",
                 s);
        return;
    }
    if (!canon) {
        ctx_enomem(c);
        return;
    }
    for (size_t i = 0; i < c->n_sections; i++) {
        if (strcmp(c->sections[i].name, canon) == 0) {
            ctx_fail(c, line, HP_INVALID_ARGUMENT,
                     "duplicate section [%s] (first defined on line %d)%s", canon,
                     c->sections[i].line,
                     kind == S_RUNTIME ? ": each runtime handler may be defined only once" : "");
            return;
        }
    }
    section_seen *ns = realloc(c->sections, (c->n_sections + 1) * sizeof *ns);
    if (!ns) {
        ctx_enomem(c);
        return;
    }
    c->sections = ns;
    c->sections[c->n_sections].name = hp_steal_ptr(&canon);
    c->sections[c->n_sections].line = line;
    c->n_sections++;

    if (kind == S_REGISTRY) {
        hp_config *cfg = c->cfg;
        hp_registry_host_config *nr =
            realloc(cfg->registries, (cfg->n_registries + 1) * sizeof *nr);
        if (!nr) {
            ctx_enomem(c);
            return;
        }
        cfg->registries = nr;
        memset(&nr[cfg->n_registries], 0, sizeof *nr);
        nr[cfg->n_registries].host = strdup(arg);
        nr[cfg->n_registries].line = line;
        if (!nr[cfg->n_registries].host) {
            ctx_enomem(c);
            return;
        }
        c->sect_index = cfg->n_registries++;
    } else if (kind == S_RUNTIME) {
        hp_handler_config *nh = realloc(c->fh, (c->n_fh + 1) * sizeof *nh);
        if (!nh) {
            ctx_enomem(c);
            return;
        }
        c->fh = nh;
        memset(&nh[c->n_fh], 0, sizeof *nh);
        nh[c->n_fh].name = strdup(arg ? arg : "");
        nh[c->n_fh].uid = c->cfg->uid;
        nh[c->n_fh].line = line;
        if (!nh[c->n_fh].name) {
            ctx_enomem(c);
            return;
        }
        c->sect_index = c->n_fh++;
    }
    c->sect = kind;
}

/* inih's find_chars_or_comment: first char of `chars`, or an inline ';'
 * comment preceded by whitespace, or the end. */
static const char *find_chars_or_comment(const char *s, const char *chars)
{
    bool was_space = false;
    while (*s && (!chars || !strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* Classify a line exactly as inih (r55, default options) will treat it. */
static void classify(parse_ctx *c, const char *line)
{
    const char *p = line;
    if (c->lineno == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF)
        p += 3;
    const char *s = p;
    while (*s && isspace((unsigned char)*s))
        s++;
    if (*s == '\0' || *s == ';' || *s == '#') {
        c->kind = L_SKIP;
    } else if (c->have_prev_key && s > line) {
        c->kind = L_CONT;
    } else if (*s == '[') {
        const char *end = find_chars_or_comment(s + 1, "]");
        if (*end == ']') {
            c->kind = L_SECTION;
            c->have_prev_key = false;
            begin_section(c, s + 1, (size_t)(end - s - 1));
        } else {
            c->kind = L_BAD;
            c->sect = S_BAD;
            ctx_fail(c, c->lineno, HP_INVALID_ARGUMENT,
                     "syntax error: section header without closing ']'");
        }
    } else {
        const char *end = find_chars_or_comment(s, "=:");
        if (*end == '=' || *end == ':') {
            c->kind = L_KEY;
            c->have_prev_key = true;
        } else {
            c->kind = L_BAD;
            ctx_fail(c, c->lineno, HP_INVALID_ARGUMENT,
                     "syntax error: expected \"key = value\" or \"[section]\"");
        }
    }
}

/* fgets-like reader over the in-memory text that counts and classifies lines. */
static char *line_reader(char *str, int num, void *stream)
{
    parse_ctx *c = stream;
    if (*c->cur == '\0')
        return NULL;
    const char *nl = strchr(c->cur, '\n');
    size_t len = nl ? (size_t)(nl - c->cur) : strlen(c->cur);
    c->lineno++;
    if (num < 3 || len > (size_t)num - 2) {
        ctx_fail(c, c->lineno, HP_INVALID_ARGUMENT,
                 "line is too long (%zu characters, at most %d); split long mirror lists over "
                 "indented continuation lines",
                 len, num - 2);
        return NULL; /* stops inih */
    }
    memcpy(str, c->cur, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    c->cur += len + (nl ? 1 : 0);
    classify(c, str);
    return str;
}

/* Duplicate-key check for global and registry sections; records the key. */
static int check_dup(parse_ctx *c, const char *key, const char *section)
{
    for (size_t i = 0; i < c->n_seen; i++) {
        if (strcmp(c->seen[i].key, key) == 0) {
            ctx_fail(c, c->lineno, HP_INVALID_ARGUMENT,
                     "duplicate key \"%s\" in [%s] (first set on line %d)", key, section,
                     c->seen[i].line);
            return -1;
        }
    }
    seen_key *ns = realloc(c->seen, (c->n_seen + 1) * sizeof *ns);
    if (!ns || !(ns[c->n_seen].key = strdup(key))) {
        if (ns)
            c->seen = ns;
        ctx_enomem(c);
        return -1;
    }
    c->seen = ns;
    ns[c->n_seen].line = c->lineno;
    c->n_seen++;
    return 0;
}

static void apply_hpcri(parse_ctx *c, const char *key, char *val)
{
    hp_config *cfg = c->cfg;
    long n = 0;
    (void)parse_long(val, &n);
    if (strcmp(key, "listen") == 0) {
        free(cfg->listen);
        cfg->listen = hp_steal_ptr(&val);
        c->listen_set = true;
    } else if (strcmp(key, "root") == 0) {
        free(cfg->root);
        cfg->root = hp_steal_ptr(&val);
    } else if (strcmp(key, "run_dir") == 0) {
        free(cfg->run_dir);
        cfg->run_dir = hp_steal_ptr(&val);
        cfg->run_dir_explicit = true;
    } else if (strcmp(key, "log_level") == 0) {
        cfg->log_level = hp_log_parse_level(val);
    } else if (strcmp(key, "workers") == 0) {
        cfg->workers = (int)n;
    } else if (strcmp(key, "pause_path") == 0) {
        free(cfg->pause_path);
        cfg->pause_path = val[0] ? hp_steal_ptr(&val) : NULL;
    } else if (strcmp(key, "stream_address") == 0) {
        free(cfg->stream_address);
        cfg->stream_address = hp_steal_ptr(&val);
    } else if (strcmp(key, "stream_port") == 0) {
        cfg->stream_port = (int)n;
    } else if (strcmp(key, "default_platform") == 0) {
        free(cfg->default_platform);
        cfg->default_platform = hp_steal_ptr(&val);
    } else if (strcmp(key, "max_concurrent_downloads") == 0) {
        cfg->max_concurrent_downloads = (int)n;
    }
    free(val);
}

static int registry_add_mirrors(parse_ctx *c, hp_registry_host_config *r, const char *value)
{
    char why[256];
    char **list;
    size_t n;
    if (url_list_split(value, &list, &n, why, sizeof why) < 0) {
        if (why[0])
            ctx_fail(c, c->lineno, HP_INVALID_ARGUMENT, "invalid value for mirrors: %s", why);
        else
            ctx_enomem(c);
        return -1;
    }
    char **nm = realloc(r->mirrors, (r->n_mirrors + n) * sizeof *nm);
    if (!nm) {
        free_strv(list, n);
        ctx_enomem(c);
        return -1;
    }
    memcpy(nm + r->n_mirrors, list, n * sizeof *list);
    r->mirrors = nm;
    r->n_mirrors += n;
    free(list);
    return 0;
}

static void apply_registry(parse_ctx *c, const char *key, char *val)
{
    hp_registry_host_config *r = &c->cfg->registries[c->sect_index];
    bool b = strcmp(val, "true") == 0;
    if (strcmp(key, "mirrors") == 0)
        (void)registry_add_mirrors(c, r, val);
    else if (strcmp(key, "mirror_only") == 0)
        r->mirror_only = b;
    else if (strcmp(key, "insecure") == 0)
        r->insecure = b;
    else if (strcmp(key, "ca_file") == 0) {
        free(r->ca_file);
        r->ca_file = hp_steal_ptr(&val);
    }
    free(val);
}

static void global_kv(parse_ctx *c, const char *section, const hp_opt_spec *specs, size_t n,
                      const char *key, const char *value)
{
    char why[512], allowed[512];
    const hp_opt_spec *s = spec_lookup(specs, n, key);
    if (!s) {
        spec_keys(allowed, sizeof allowed, NULL, specs, n);
        ctx_fail(c, c->lineno, HP_INVALID_ARGUMENT, "unknown key \"%s\" in [%s]; allowed keys: %s",
                 key, section, allowed);
        return;
    }
    if (check_dup(c, key, section) < 0)
        return;
    char *norm = opt_normalize(s, value, why, sizeof why);
    if (!norm) {
        if (why[0])
            ctx_fail(c, c->lineno, HP_INVALID_ARGUMENT, "invalid value \"%s\" for %s: %s", value,
                     key, why);
        else
            ctx_enomem(c);
        return;
    }
    if (c->sect == S_REGISTRY)
        apply_registry(c, key, norm);
    else
        apply_hpcri(c, key, norm);
}

static void handler_kv(parse_ctx *c, const char *key, const char *value)
{
    hp_handler_config *h = &c->fh[c->sect_index];
    char sect[128];
    handler_section_name(h, sect, sizeof sect);
    for (size_t i = 0; i < h->n_opts; i++) {
        if (strcmp(h->opts[i].key, key) == 0) {
            ctx_fail(c, c->lineno, HP_INVALID_ARGUMENT,
                     "duplicate key \"%s\" in %s (first set on line %d)", key, sect,
                     h->opts[i].line);
            return;
        }
    }
    hp_config_opt *no = realloc(h->opts, (h->n_opts + 1) * sizeof *no);
    if (!no) {
        ctx_enomem(c);
        return;
    }
    h->opts = no;
    no[h->n_opts].key = strdup(key);
    no[h->n_opts].value = strdup(value);
    no[h->n_opts].line = c->lineno;
    h->n_opts++;
    if (!no[h->n_opts - 1].key || !no[h->n_opts - 1].value)
        ctx_enomem(c);
}

static int on_kv(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *c = user;
    (void)section; /* the reader tracks sections itself */

    if (c->kind == L_CONT) {
        if (c->sect == S_REGISTRY && strcmp(name, "mirrors") == 0 && c->n_seen &&
            strcmp(c->seen[c->n_seen - 1].key, "mirrors") == 0) {
            /* inih (r55) keeps inline comments on continuation lines: drop them */
            size_t len = (size_t)(find_chars_or_comment(value, NULL) - value);
            while (len && isspace((unsigned char)value[len - 1]))
                len--;
            _cleanup_free_ char *v = strndup(value, len);
            if (!v)
                ctx_enomem(c);
            else
                (void)registry_add_mirrors(c, &c->cfg->registries[c->sect_index], v);
        } else if (c->sect != S_BAD)
            ctx_fail(c, c->lineno, HP_INVALID_ARGUMENT,
                     "indented line continues the value of \"%s\"; only mirrors may span several "
                     "lines (remove the indentation)",
                     name);
        return 1;
    }
    if (!name[0]) {
        ctx_fail(c, c->lineno, HP_INVALID_ARGUMENT, "syntax error: empty key before '='");
        return 1;
    }
    switch (c->sect) {
    case S_NONE:
        ctx_fail(c, c->lineno, HP_INVALID_ARGUMENT,
                 "key \"%s\" outside of any section; global settings go under [hpcri]", name);
        break;
    case S_BAD:
        break;
    case S_HPCRI:
        global_kv(c, "hpcri", hpcri_specs, N_OF(hpcri_specs), name, value);
        break;
    case S_IMAGE:
        global_kv(c, "image", image_specs, N_OF(image_specs), name, value);
        break;
    case S_REGISTRY: {
        char sect[300];
        snprintf(sect, sizeof sect, "registry \"%s\"", c->cfg->registries[c->sect_index].host);
        global_kv(c, sect, registry_specs, N_OF(registry_specs), name, value);
        break;
    }
    case S_RUNTIME:
        handler_kv(c, name, value);
        break;
    }
    return 1;
}

/* Validate the raw options of a handler from the file: pick the type, check
 * every key against the type's schema, normalize values, check required keys. */
static void finish_handler(parse_ctx *c, hp_handler_config *h)
{
    char sect[128], why[512], allowed[512];
    handler_section_name(h, sect, sizeof sect);

    h->type = HP_BACKEND_OCI;
    for (size_t i = 0; i < h->n_opts; i++) {
        if (strcmp(h->opts[i].key, "type") != 0)
            continue;
        if (backend_type_parse(h->opts[i].value, &h->type) < 0)
            ctx_fail(c, h->opts[i].line, HP_INVALID_ARGUMENT,
                     "unknown runtime type \"%s\" in %s; allowed types: oci, charliecloud, "
                     "slurm, remote",
                     h->opts[i].value, sect);
        free(h->opts[i].key);
        free(h->opts[i].value);
        memmove(&h->opts[i], &h->opts[i + 1], (h->n_opts - i - 1) * sizeof *h->opts);
        h->n_opts--;
        break;
    }
    size_t n;
    const hp_opt_spec *specs = hp_spec_for_type(h->type, &n);
    for (size_t i = 0; i < h->n_opts; i++) {
        hp_config_opt *o = &h->opts[i];
        const hp_opt_spec *s = spec_lookup(specs, n, o->key);
        if (!s) {
            spec_keys(allowed, sizeof allowed, "type", specs, n);
            ctx_fail(c, o->line, HP_INVALID_ARGUMENT,
                     "unknown key \"%s\" in %s (type %s); allowed keys: %s", o->key, sect,
                     hp_backend_type_name(h->type), allowed);
            continue;
        }
        char *norm = opt_normalize(s, o->value, why, sizeof why);
        if (!norm) {
            if (why[0])
                ctx_fail(c, o->line, HP_INVALID_ARGUMENT, "invalid value \"%s\" for %s: %s",
                         o->value, o->key, why);
            else
                ctx_enomem(c);
            continue;
        }
        free(o->value);
        o->value = norm;
    }
    for (size_t i = 0; i < n; i++)
        if (specs[i].required && !hp_handler_configured(h, specs[i].key))
            ctx_fail(c, h->line, HP_INVALID_ARGUMENT, "%s (type %s) is missing required key %s",
                     sect, hp_backend_type_name(h->type), specs[i].key);
}

/* Replace cfg's handlers by the file's (default first; the embedded default
 * handler is kept when the file has no [runtime] section). */
static int install_handlers(parse_ctx *c)
{
    hp_config *cfg = c->cfg;
    size_t def = SIZE_MAX;
    for (size_t i = 0; i < c->n_fh; i++)
        if (!c->fh[i].name[0])
            def = i;
    size_t total = c->n_fh + (def == SIZE_MAX ? 1 : 0);
    hp_handler_config *hs = calloc(total, sizeof *hs);
    if (!hs)
        return -1;
    size_t k = 0;
    if (def == SIZE_MAX) {
        hs[k++] = cfg->handlers[0];
        memset(&cfg->handlers[0], 0, sizeof cfg->handlers[0]);
    } else {
        hs[k++] = c->fh[def];
    }
    for (size_t i = 0; i < c->n_fh; i++)
        if (i != def)
            hs[k++] = c->fh[i];
    free(c->fh);
    c->fh = NULL;
    c->n_fh = 0;
    for (size_t i = 0; i < cfg->n_handlers; i++)
        handler_clear(&cfg->handlers[i]);
    free(cfg->handlers);
    cfg->handlers = hs;
    cfg->n_handlers = total;
    return 0;
}

static void ctx_release(parse_ctx *c)
{
    seen_reset(c);
    for (size_t i = 0; i < c->n_sections; i++)
        free(c->sections[i].name);
    free(c->sections);
    for (size_t i = 0; i < c->n_fh; i++)
        handler_clear(&c->fh[i]);
    free(c->fh);
}

hp_config *hp_config_load_string(const char *text, const char *name, uid_t uid, hp_err *err)
{
    hp_config *cfg = hp_config_default(uid, err);
    if (!cfg)
        return NULL;
    if (set_str(&cfg->path, name, err) < 0) {
        hp_config_free(cfg);
        return NULL;
    }
    parse_ctx c = {.cfg = cfg, .fname = name, .cur = text, .err_line = INT_MAX};

    int ret = ini_parse_stream(line_reader, &c, on_kv, &c);
    if (ret == -2)
        ctx_enomem(&c);
    else if (ret > 0)
        ctx_fail(&c, ret, HP_INVALID_ARGUMENT, "syntax error");

    for (size_t i = 0; i < c.n_fh; i++)
        finish_handler(&c, &c.fh[i]);
    for (size_t i = 0; i < cfg->n_registries; i++) {
        hp_registry_host_config *r = &cfg->registries[i];
        if (r->mirror_only && r->n_mirrors == 0)
            ctx_fail(&c, r->line, HP_INVALID_ARGUMENT,
                     "[registry \"%s\"] sets mirror_only but has no mirrors", r->host);
    }
    if (c.err_line == INT_MAX && install_handlers(&c) < 0)
        ctx_enomem(&c);
    if (c.err_line == INT_MAX && c.listen_set && !cfg->run_dir_explicit) {
        free(cfg->run_dir);
        if (!(cfg->run_dir = dir_of(cfg->listen)))
            ctx_enomem(&c);
    }
    ctx_release(&c);
    if (c.err_line != INT_MAX) {
        *err = c.err;
        hp_config_free(cfg);
        return NULL;
    }
    return cfg;
}

hp_config *hp_config_load(const char *path, uid_t uid, hp_err *err)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            hp_err_set(err, HP_NOT_FOUND, "config file %s not found", path);
        else
            hp_err_sys(err, errno == EACCES ? HP_PERMISSION_DENIED : HP_UNKNOWN,
                       "cannot open config file %s", path);
        return NULL;
    }
    _cleanup_free_ char *text = malloc(MAX_CONFIG_SIZE + 1);
    if (!text) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory reading %s", path);
        return NULL;
    }
    size_t len = fread(text, 1, MAX_CONFIG_SIZE + 1, f);
    if (ferror(f)) {
        hp_err_sys(err, HP_UNKNOWN, "cannot read config file %s", path);
        return NULL;
    }
    if (len > MAX_CONFIG_SIZE) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "config file %s is larger than %d bytes", path,
                   MAX_CONFIG_SIZE);
        return NULL;
    }
    text[len] = '\0';
    if (memchr(text, '\0', len)) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "config file %s contains a NUL byte", path);
        return NULL;
    }
    return hp_config_load_string(text, path, uid, err);
}

/* ------------------------------------------------------------------------ */
/* Setters                                                                   */

static int set_path(char **field, const char *what, const char *path, hp_err *err)
{
    if (!path || !is_abs_path(path))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s must be an absolute path, got \"%s\"", what,
                          path ? path : "");
    return set_str(field, path, err);
}

int hp_config_set_listen(hp_config *cfg, const char *path, hp_err *err)
{
    static const hp_opt_spec spec = {.key = "listen", .kind = HP_K_LISTEN};
    char why[256];
    _cleanup_free_ char *norm = opt_normalize(&spec, path ? path : "", why, sizeof why);
    if (!norm)
        return why[0] ? hp_err_set(err, HP_INVALID_ARGUMENT, "invalid listen address \"%s\": %s",
                                   path ? path : "", why)
                      : hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    if (!cfg->run_dir_explicit) {
        char *d = dir_of(norm);
        if (!d)
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        free(cfg->run_dir);
        cfg->run_dir = d;
    }
    free(cfg->listen);
    cfg->listen = hp_steal_ptr(&norm);
    return 0;
}

int hp_config_set_root(hp_config *cfg, const char *path, hp_err *err)
{
    return set_path(&cfg->root, "root", path, err);
}

int hp_config_set_run_dir(hp_config *cfg, const char *path, hp_err *err)
{
    if (set_path(&cfg->run_dir, "run_dir", path, err) < 0)
        return -1;
    cfg->run_dir_explicit = true;
    return 0;
}

int hp_config_set_log_level(hp_config *cfg, const char *level, hp_err *err)
{
    int l = level ? hp_log_parse_level(level) : -1;
    if (l < 0)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "invalid log level \"%s\": expected error, warn, info or debug",
                          level ? level : "");
    cfg->log_level = l;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Lookups                                                                   */

const hp_handler_config *hp_config_handler(const hp_config *cfg, const char *name, hp_err *err)
{
    char list[HP_ERR_MSG_MAX];
    size_t off = 0;
    if (!name || !name[0])
        return &cfg->handlers[0];
    for (size_t i = 0; i < cfg->n_handlers; i++)
        if (strcmp(cfg->handlers[i].name, name) == 0)
            return &cfg->handlers[i];
    list[0] = '\0';
    for (size_t i = 0; i < cfg->n_handlers && off < sizeof list; i++) {
        const hp_handler_config *h = &cfg->handlers[i];
        off +=
            (size_t)snprintf(list + off, sizeof list - off, "%s\"%s\" (%s%s)", i ? ", " : "",
                             h->name, h->name[0] ? "" : "default, ", hp_backend_type_name(h->type));
    }
    hp_err_set(err, HP_INVALID_ARGUMENT, "unknown runtime handler \"%s\"; configured handlers: %s",
               name, list);
    return NULL;
}

const char *hp_handler_configured(const hp_handler_config *h, const char *key)
{
    for (size_t i = 0; i < h->n_opts; i++)
        if (strcmp(h->opts[i].key, key) == 0)
            return h->opts[i].value;
    return NULL;
}

const char *hp_handler_opt(const hp_handler_config *h, const char *key)
{
    if (strcmp(key, "type") == 0)
        return hp_backend_type_name(h->type);
    const char *v = hp_handler_configured(h, key);
    if (v)
        return v;
    const hp_opt_spec *s = hp_spec_find(h->type, key);
    if (!s)
        return NULL;
    if (s->def_from)
        return hp_handler_opt(h, s->def_from);
    return h->uid == 0 ? s->def_root : s->def_user;
}

int hp_handler_opt_int(const hp_handler_config *h, const char *key, long *out, hp_err *err)
{
    const char *v = hp_handler_opt(h, key);
    if (!v)
        return hp_err_set(err, HP_NOT_FOUND, "runtime handler \"%s\" has no value for %s", h->name,
                          key);
    if (parse_long(v, out) < 0)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "runtime handler \"%s\": %s = \"%s\" is not an integer", h->name, key, v);
    return 0;
}

int hp_handler_opt_bool(const hp_handler_config *h, const char *key, bool *out, hp_err *err)
{
    const char *v = hp_handler_opt(h, key);
    if (!v)
        return hp_err_set(err, HP_NOT_FOUND, "runtime handler \"%s\" has no value for %s", h->name,
                          key);
    if (parse_bool(v, out) < 0)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "runtime handler \"%s\": %s = \"%s\" is not a boolean", h->name, key, v);
    return 0;
}

const hp_registry_host_config *hp_config_registry(const hp_config *cfg, const char *host)
{
    if (!host)
        return NULL;
    for (size_t i = 0; i < cfg->n_registries; i++)
        if (strcasecmp(cfg->registries[i].host, host) == 0)
            return &cfg->registries[i];
    return NULL;
}

int hp_config_keep_restart_settings(hp_config *new, const hp_config *old, hp_err *err)
{
    char *listen = strdup(old->listen);
    char *root = strdup(old->root);
    char *run_dir = strdup(old->run_dir);
    char *addr = strdup(old->stream_address);
    if (!listen || !root || !run_dir || !addr) {
        free(listen);
        free(root);
        free(run_dir);
        free(addr);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    free(new->listen);
    free(new->root);
    free(new->run_dir);
    free(new->stream_address);
    new->listen = listen;
    new->root = root;
    new->run_dir = run_dir;
    new->run_dir_explicit = old->run_dir_explicit;
    new->stream_address = addr;
    new->workers = old->workers;
    new->stream_port = old->stream_port;
    return 0;
}
