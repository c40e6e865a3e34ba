/* Unit tests for src/config: defaults, the example file, validation errors,
 * lookups, describe and diff. */
#include "config/config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t.h"
#include "util/cleanup.h"
#include "util/log.h"

#define EXAMPLE "examples/hpcri.conf"

/* Load text as uid 0; returns the config or NULL with err filled. */
static hp_config *load(const char *text, hp_err *err)
{
    hp_err_clear(err);
    return hp_config_load_string(text, "test.conf", 0, err);
}

/* Expect text to fail with INVALID_ARGUMENT and a message containing every
 * NULL-terminated needle.  Returns 1 when it did, 0 (after printing) when not. */
static int fails_with(const char *text, ...)
{
    hp_err err = HP_ERR_INIT;
    hp_config *cfg = load(text, &err);
    va_list ap;
    int ok = 1;
    if (cfg) {
        fprintf(stderr, "  expected failure, config loaded:\n%s\n", text);
        hp_config_free(cfg);
        return 0;
    }
    if (err.code != HP_INVALID_ARGUMENT) {
        fprintf(stderr, "  code %d (%s): %s\n", err.code, hp_status_name(err.code), err.msg);
        return 0;
    }
    va_start(ap, text);
    for (const char *n; (n = va_arg(ap, const char *));) {
        if (!strstr(err.msg, n)) {
            fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err.msg, n);
            ok = 0;
        }
    }
    va_end(ap);
    return ok;
}

T_CASE(defaults_root)
{
    hp_err err = HP_ERR_INIT;
    hp_config *cfg = hp_config_default(0, &err);
    T_ASSERT(cfg);
    T_EQ_STR(cfg->listen, "/run/hpcri/hpcri.sock");
    T_EQ_STR(cfg->root, "/var/lib/hpcri");
    T_EQ_STR(cfg->run_dir, "/run/hpcri");
    T_EQ_INT(cfg->log_level, HP_LOG_INFO);
    T_EQ_INT(cfg->workers, 4);
    T_ASSERT(cfg->pause_path == NULL);
    T_EQ_STR(cfg->stream_address, "127.0.0.1");
    T_EQ_INT(cfg->stream_port, 0);
    T_EQ_INT(cfg->max_concurrent_downloads, 3);
    T_ASSERT(strncmp(cfg->default_platform, "linux/", 6) == 0);
    T_EQ_INT(cfg->n_handlers, 1);
    T_EQ_INT(cfg->n_registries, 0);
    const hp_handler_config *h = hp_config_handler(cfg, "", &err);
    T_ASSERT(h);
    T_EQ_STR(h->name, "");
    T_EQ_INT(h->type, HP_BACKEND_OCI);
    T_EQ_STR(hp_handler_opt(h, "runtime_path"), "runc");
    T_EQ_STR(hp_handler_opt(h, "conmon_path"), "conmon");
    T_EQ_STR(hp_handler_opt(h, "cgroup_manager"), "cgroupfs");
    T_EQ_STR(hp_handler_opt(h, "network"), "pod");
    T_EQ_STR(hp_handler_opt(h, "rootless"), "auto");
    T_ASSERT(hp_handler_opt(h, "runtime_root") == NULL);
    T_ASSERT(hp_handler_opt(h, "partition") == NULL);
    hp_config_free(cfg);
}

T_CASE(defaults_unprivileged_xdg)
{
    hp_err err = HP_ERR_INIT;
    setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    setenv("XDG_DATA_HOME", "/home/u/.data", 1);
    hp_config *cfg = hp_config_default(1000, &err);
    unsetenv("XDG_RUNTIME_DIR");
    unsetenv("XDG_DATA_HOME");
    T_ASSERT(cfg);
    T_EQ_STR(cfg->listen, "/run/user/1000/hpcri/hpcri.sock");
    T_EQ_STR(cfg->run_dir, "/run/user/1000/hpcri");
    T_EQ_STR(cfg->root, "/home/u/.data/hpcri");
    const hp_handler_config *h = hp_config_handler(cfg, NULL, &err);
    T_ASSERT(h);
    T_EQ_STR(hp_handler_opt(h, "cgroup_manager"), "none");
    T_EQ_STR(hp_handler_opt(h, "network"), "host");
    hp_config_free(cfg);
}

T_CASE(defaults_unprivileged_fallback)
{
    hp_err err = HP_ERR_INIT;
    const char *old_home = getenv("HOME");
    _cleanup_free_ char *saved = old_home ? strdup(old_home) : NULL;
    unsetenv("XDG_RUNTIME_DIR");
    unsetenv("XDG_DATA_HOME");
    setenv("HOME", "/home/alice", 1);
    hp_config *cfg = hp_config_default(4242, &err);
    if (saved)
        setenv("HOME", saved, 1);
    else
        unsetenv("HOME");
    T_ASSERT(cfg);
    T_EQ_STR(cfg->listen, "/tmp/hpcri-4242/hpcri.sock");
    T_EQ_STR(cfg->run_dir, "/tmp/hpcri-4242");
    T_EQ_STR(cfg->root, "/home/alice/.local/share/hpcri");
    hp_config_free(cfg);
}

T_CASE(example_file_loads)
{
    hp_err err = HP_ERR_INIT;
    hp_config *cfg = hp_config_load(EXAMPLE, 0, &err);
    if (!cfg)
        T_FAIL("%s", err.msg);
    T_ASSERT(cfg);
    T_EQ_STR(cfg->path, EXAMPLE);
    T_EQ_STR(cfg->listen, "/run/hpcri/hpcri.sock");
    T_EQ_STR(cfg->default_platform, "linux/amd64");
    T_ASSERT(cfg->pause_path == NULL);
    T_EQ_INT(cfg->n_handlers, 5);
    T_EQ_STR(cfg->handlers[0].name, "");
    T_EQ_INT(cfg->n_registries, 2);

    const hp_handler_config *h = hp_config_handler(cfg, "slurm", &err);
    T_ASSERT(h);
    T_EQ_INT(h->type, HP_BACKEND_SLURM);
    T_EQ_STR(hp_handler_opt(h, "shared_dir"), "/shared/hpcri");
    T_EQ_STR(hp_handler_opt(h, "time_limit"), "1-00:00:00");
    long poll = 0;
    T_EQ_INT(hp_handler_opt_int(h, "poll_interval_ms", &poll, &err), 0);
    T_EQ_INT(poll, 2000);
    T_ASSERT(hp_handler_opt(h, "type") && strcmp(hp_handler_opt(h, "type"), "slurm") == 0);

    h = hp_config_handler(cfg, "remote", &err);
    T_ASSERT(h);
    T_EQ_INT(h->type, HP_BACKEND_REMOTE);
    T_EQ_STR(hp_handler_opt(h, "endpoint"), "unix:///run/containerd/containerd.sock");
    h = hp_config_handler(cfg, "unpriv", &err);
    T_ASSERT(h);
    T_EQ_INT(h->type, HP_BACKEND_CHARLIECLOUD);
    T_EQ_STR(hp_handler_opt(h, "runtime_path"), "crun");
    T_EQ_STR(hp_handler_opt(h, "conmon_path"), "conmon");

    const hp_registry_host_config *r = hp_config_registry(cfg, "registry.internal:5000");
    T_ASSERT(r);
    T_EQ_INT(r->n_mirrors, 2); /* second one on an indented continuation line */
    T_EQ_STR(r->mirrors[1], "https://cache-b.internal");
    T_ASSERT(r->insecure);
    hp_config_free(cfg);
}

T_CASE(file_overrides_and_run_dir_follows_listen)
{
    hp_err err = HP_ERR_INIT;
    hp_config *cfg = load("[hpcri]\n"
                          "listen = unix:///tmp/x/y.sock\n"
                          "log_level = debug\n"
                          "workers = 64\n"
                          "stream_address = ::1\n"
                          "stream_port = 10010\n"
                          "[image]\n"
                          "max_concurrent_downloads = 1\n",
                          &err);
    if (!cfg)
        T_FAIL("%s", err.msg);
    T_ASSERT(cfg);
    T_EQ_STR(cfg->listen, "/tmp/x/y.sock");
    T_EQ_STR(cfg->run_dir, "/tmp/x");
    T_EQ_INT(cfg->log_level, HP_LOG_DEBUG);
    T_EQ_INT(cfg->workers, 64);
    T_EQ_STR(cfg->stream_address, "::1");
    T_EQ_INT(cfg->stream_port, 10010);
    T_EQ_INT(cfg->max_concurrent_downloads, 1);
    /* no [runtime] section: the embedded default handler is kept */
    T_EQ_INT(cfg->n_handlers, 1);
    T_EQ_INT(cfg->handlers[0].type, HP_BACKEND_OCI);
    T_EQ_INT(cfg->handlers[0].n_opts, 0);
    hp_config_free(cfg);
}

T_CASE(missing_file_not_found)
{
    hp_err err = HP_ERR_INIT;
    hp_config *cfg = hp_config_load("/nonexistent/hpcri.conf", 0, &err);
    T_ASSERT(cfg == NULL);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(strstr(err.msg, "/nonexistent/hpcri.conf"));
}

T_CASE(error_unknown_key_lists_allowed)
{
    T_ASSERT(fails_with("[hpcri]\nlisten = /a.sock\nlisen = /b\n",
                        "test.conf:3:", "unknown key \"lisen\"", "listen, root, run_dir", NULL));
    T_ASSERT(fails_with("[runtime \"s\"]\ntype = slurm\nshared_dir = /s\nnetwork = host\n",
                        "test.conf:4:", "unknown key \"network\"", "type slurm",
                        "partition, account", NULL));
    /* keys before `type` are checked against the type given later */
    T_ASSERT(fails_with("[runtime]\npartition = x\ntype = oci\n",
                        "test.conf:2:", "unknown key \"partition\"", "runtime_path", NULL));
}

T_CASE(error_bad_int)
{
    T_ASSERT(fails_with("[hpcri]\nworkers = 65\n", "test.conf:2:", "workers",
                        "integer from 1 to 64", NULL));
    T_ASSERT(fails_with("[hpcri]\nworkers = 4x\n", "test.conf:2:", "\"4x\"", NULL));
    T_ASSERT(fails_with("[runtime \"s\"]\ntype = slurm\nshared_dir = /s\npoll_interval_ms = 50\n",
                        "test.conf:4:", "poll_interval_ms", "100 to 60000", NULL));
}

T_CASE(error_bad_bool)
{
    T_ASSERT(fails_with("[registry \"docker.io\"]\ninsecure = maybe\n", "test.conf:2:", "\"maybe\"",
                        "insecure", "true, false", NULL));
}

T_CASE(bool_forms_accepted)
{
    hp_err err = HP_ERR_INIT;
    hp_config *cfg = load("[registry \"a.io\"]\ninsecure = YES\n"
                          "[registry \"b.io\"]\ninsecure = 0\nmirrors = https://m\n"
                          "mirror_only = 1\n",
                          &err);
    T_ASSERT(cfg);
    T_ASSERT(hp_config_registry(cfg, "a.io")->insecure);
    T_ASSERT(!hp_config_registry(cfg, "b.io")->insecure);
    T_ASSERT(hp_config_registry(cfg, "b.io")->mirror_only);
    hp_config_free(cfg);
}

T_CASE(error_relative_path)
{
    T_ASSERT(fails_with("[hpcri]\nroot = var/lib/hpcri\n", "test.conf:2:", "root", "absolute path",
                        NULL));
    T_ASSERT(
        fails_with("[runtime]\nruntime_path = ./runc\n", "test.conf:2:", "runtime_path", NULL));
}

T_CASE(error_missing_required)
{
    T_ASSERT(fails_with("# comment\n[runtime \"hpc\"]\ntype = slurm\npartition = batch\n",
                        "test.conf:2:", "[runtime \"hpc\"]", "missing required key shared_dir",
                        NULL));
    T_ASSERT(fails_with("[runtime \"fwd\"]\ntype = remote\ntimeout_ms = 500\n",
                        "test.conf:1:", "missing required key endpoint", NULL));
    T_ASSERT(fails_with("[runtime \"fwd\"]\ntype = remote\nendpoint = /run/x.sock\n",
                        "test.conf:3:", "unix:///", NULL));
}

T_CASE(error_unknown_type)
{
    T_ASSERT(fails_with("[runtime \"gpu\"]\ntype = kata\n", "test.conf:2:",
                        "unknown runtime type \"kata\"", "oci, charliecloud, slurm, remote", NULL));
}

T_CASE(error_duplicates)
{
    T_ASSERT(fails_with("[runtime \"s\"]\ntype = oci\n\n[runtime \"s\"]\ntype = oci\n",
                        "test.conf:4:", "duplicate section", "first defined on line 1", NULL));
    T_ASSERT(
        fails_with("[runtime]\n[hpcri]\n[runtime]\n", "test.conf:3:", "duplicate section", NULL));
    T_ASSERT(fails_with("[hpcri]\nworkers = 2\nworkers = 3\n",
                        "test.conf:3:", "duplicate key \"workers\"", "line 2", NULL));
    T_ASSERT(fails_with("[runtime]\nconmon_path = a\nconmon_path = b\n",
                        "test.conf:3:", "duplicate key", NULL));
}

T_CASE(error_syntax_with_line)
{
    T_ASSERT(fails_with("[hpcri]\nworkers = 2\nthis is not ini\n", "test.conf:3:", "syntax error",
                        NULL));
    T_ASSERT(fails_with("[hpcri]\n[image\n", "test.conf:2:", "']'", NULL));
    T_ASSERT(fails_with("workers = 2\n", "test.conf:1:", "outside of any section", NULL));
    T_ASSERT(fails_with("[hpcri]\n[images]\n", "test.conf:2:", "unknown section [images]", NULL));
    T_ASSERT(fails_with("[runtime \"GPU\"]\n", "test.conf:1:", "DNS label", NULL));
    T_ASSERT(fails_with("[hpcri]\nworkers = 2\n  3\n", "test.conf:3:", "indented line", NULL));
    /* the first problem in the file is reported, not the first one found */
    T_ASSERT(fails_with("[runtime \"x\"]\ntype = oci\nbogus = 1\n[hpcri]\nworkers = 0\n",
                        "test.conf:3:", "bogus", NULL));
}

T_CASE(error_long_line)
{
    char text[400];
    snprintf(text, sizeof text, "[hpcri]\nroot = /%0300d\n", 0);
    T_ASSERT(fails_with(text, "test.conf:2:", "too long", NULL));
}

T_CASE(slurm_time_formats)
{
    static const struct {
        const char *s;
        int64_t secs;
    } ok[] = {{"30", 1800},      {"30:15", 1815},   {"2:00:00", 7200},
              {"1-12", 129600},  {"1-0:30", 88200}, {"2-03:04:05", 183845},
              {"UNLIMITED", -1}, {"unlimited", -1}, {"0", 0}};
    static const char *const bad[] = {"",      "1:2:3:4", "1-",     "-5",  "1-24",
                                      "10:60", "a",       "1-2:60", "1.5", "1-2-3"};
    hp_err err = HP_ERR_INIT;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t s = -2;
        if (hp_config_parse_slurm_time(ok[i].s, &s, &err) < 0)
            T_FAIL("\"%s\": %s", ok[i].s, err.msg);
        T_EQ_INT(s, ok[i].secs);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t s;
        if (hp_config_parse_slurm_time(bad[i], &s, &err) == 0)
            T_FAIL("\"%s\" accepted", bad[i]);
        T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    }
    T_ASSERT(fails_with("[runtime \"s\"]\ntype = slurm\nshared_dir = /s\ntime_limit = 1:99\n",
                        "test.conf:4:", "time_limit", NULL));
}

T_CASE(handler_lookup_unknown_lists_names)
{
    hp_err err = HP_ERR_INIT;
    hp_config *cfg = load("[runtime \"slurm\"]\ntype = slurm\nshared_dir = /shared\n", &err);
    T_ASSERT(cfg);
    T_ASSERT(hp_config_handler(cfg, "slurm", &err) == &cfg->handlers[1]);
    T_ASSERT(hp_config_handler(cfg, NULL, &err) == &cfg->handlers[0]);
    T_ASSERT(hp_config_handler(cfg, "gpu", &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_EQ_STR(err.msg, "unknown runtime handler \"gpu\"; configured handlers: \"\" (default, oci), "
                      "\"slurm\" (slurm)");
    hp_config_free(cfg);
}

T_CASE(handler_opts_ordered_and_typed)
{
    hp_err err = HP_ERR_INIT;
    hp_config *cfg = load("[runtime]\ntype = remote\ntimeout_ms = 250\n"
                          "endpoint = unix:///run/other.sock\n",
                          &err);
    T_ASSERT(cfg);
    const hp_handler_config *h = &cfg->handlers[0];
    T_EQ_INT(h->n_opts, 2); /* "type" is not an option */
    T_EQ_STR(h->opts[0].key, "timeout_ms");
    T_EQ_STR(h->opts[1].key, "endpoint");
    T_EQ_INT(h->opts[1].line, 4);
    long t = 0;
    T_EQ_INT(hp_handler_opt_int(h, "timeout_ms", &t, &err), 0);
    T_EQ_INT(t, 250);
    /* image_endpoint defaults to endpoint */
    T_EQ_STR(hp_handler_opt(h, "image_endpoint"), "unix:///run/other.sock");
    bool b;
    T_EQ_INT(hp_handler_opt_bool(h, "nonexistent", &b, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_EQ_INT(hp_handler_opt_bool(h, "endpoint", &b, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    hp_config_free(cfg);
}

T_CASE(registry_lookup)
{
    hp_err err = HP_ERR_INIT;
    hp_config *cfg = load("[registry \"Docker.IO\"]\n"
                          "mirrors = http://127.0.0.1:5000/, https://m.example.org\n"
                          "mirror_only = true\n"
                          "ca_file = /etc/ca.pem\n",
                          &err);
    if (!cfg)
        T_FAIL("%s", err.msg);
    T_ASSERT(cfg);
    const hp_registry_host_config *r = hp_config_registry(cfg, "docker.io");
    T_ASSERT(r);
    T_EQ_STR(r->host, "docker.io");
    T_EQ_INT(r->n_mirrors, 2);
    T_EQ_STR(r->mirrors[0], "http://127.0.0.1:5000");
    T_EQ_STR(r->mirrors[1], "https://m.example.org");
    T_ASSERT(r->mirror_only);
    T_ASSERT(!r->insecure);
    T_EQ_STR(r->ca_file, "/etc/ca.pem");
    T_ASSERT(hp_config_registry(cfg, "quay.io") == NULL);
    hp_config_free(cfg);

    T_ASSERT(
        fails_with("[registry \"q.io\"]\nmirrors = ftp://x\n", "test.conf:2:", "ftp://x", NULL));
    T_ASSERT(fails_with("[registry \"q.io\"]\nmirror_only = true\n", "test.conf:1:", "no mirrors",
                        NULL));
}

T_CASE(setters_cli_overrides)
{
    hp_err err = HP_ERR_INIT;
    hp_config *cfg = hp_config_default(0, &err);
    T_ASSERT(cfg);
    T_EQ_INT(hp_config_set_listen(cfg, "/tmp/t/hpcri.sock", &err), 0);
    T_EQ_STR(cfg->run_dir, "/tmp/t");
    T_EQ_INT(hp_config_set_root(cfg, "/tmp/t/root", &err), 0);
    T_EQ_STR(cfg->root, "/tmp/t/root");
    T_EQ_INT(hp_config_set_log_level(cfg, "debug", &err), 0);
    T_EQ_INT(cfg->log_level, HP_LOG_DEBUG);
    T_EQ_INT(hp_config_set_log_level(cfg, "loud", &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_EQ_INT(hp_config_set_root(cfg, "rel", &err), -1);
    T_EQ_INT(hp_config_set_run_dir(cfg, "/tmp/r", &err), 0);
    T_EQ_INT(hp_config_set_listen(cfg, "/tmp/u/hpcri.sock", &err), 0);
    T_EQ_STR(cfg->run_dir, "/tmp/r"); /* explicit run_dir no longer follows listen */
    hp_config_free(cfg);
}

T_CASE(describe_output)
{
    hp_err err = HP_ERR_INIT;
    hp_config *cfg = hp_config_load(EXAMPLE, 0, &err);
    T_ASSERT(cfg);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    T_ASSERT(m);
    int rc = hp_config_describe(cfg, m);
    fclose(m);
    hp_config_free(cfg);
    _cleanup_free_ char *out = buf;
    T_EQ_INT(rc, 0);
    T_ASSERT(strstr(out, "listen:          /run/hpcri/hpcri.sock"));
    T_ASSERT(strstr(out, "log_level:       info"));
    T_ASSERT(strstr(out, "\"slurm\": type slurm"));
    T_ASSERT(strstr(out, "shared_dir        = /shared/hpcri"));
    T_ASSERT(strstr(out, "\"unpriv\": type charliecloud"));
    T_ASSERT(strstr(out, "conmon_path       = conmon (default)"));
    T_ASSERT(strstr(out, "http://127.0.0.1:5000 https://mirror.example.org"));
    T_ASSERT(strstr(out, "registry.internal:5000"));
}

T_CASE(describe_defaults)
{
    hp_err err = HP_ERR_INIT;
    hp_config *cfg = hp_config_default(0, &err);
    T_ASSERT(cfg);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    T_ASSERT(m);
    int rc = hp_config_describe(cfg, m);
    fclose(m);
    hp_config_free(cfg);
    _cleanup_free_ char *out = buf;
    T_EQ_INT(rc, 0);
    T_ASSERT(strstr(out, "embedded defaults"));
    T_ASSERT(strstr(out, "network           = pod (default)"));
    T_ASSERT(strstr(out, "(none configured"));
}

T_CASE(diff_summary)
{
    hp_err err = HP_ERR_INIT;
    hp_config *a = load("[hpcri]\nlog_level = info\n"
                        "[registry \"docker.io\"]\nmirrors = http://a\n"
                        "[runtime \"old\"]\ntype = oci\n"
                        "[runtime \"slurm\"]\ntype = slurm\nshared_dir = /s\n",
                        &err);
    T_ASSERT(a);
    hp_config *b = load("[hpcri]\nlog_level = debug\n"
                        "[registry \"docker.io\"]\nmirrors = http://b\n"
                        "[runtime \"slurm\"]\ntype = slurm\nshared_dir = /s\n"
                        "poll_interval_ms = 500\n"
                        "[runtime \"new\"]\ntype = remote\nendpoint = unix:///x.sock\n",
                        &err);
    T_ASSERT(b);
    char *s = NULL;
    bool restart = true;
    T_EQ_INT(hp_config_diff(a, b, &s, &restart), 0);
    _cleanup_free_ char *sum = s;
    T_ASSERT(sum);
    T_ASSERT(!restart);
    T_ASSERT(strstr(sum, "log_level: info -> debug"));
    T_ASSERT(strstr(sum, "registry \"docker.io\" changed: mirrors http://a -> http://b"));
    T_ASSERT(strstr(sum, "handler \"old\" removed"));
    T_ASSERT(strstr(sum, "handler \"new\" added (type remote)"));
    T_ASSERT(strstr(sum, "handler \"slurm\" changed: poll_interval_ms 2000 -> 500"));
    T_ASSERT(!strstr(sum, "listen"));

    /* no change at all */
    char *s2 = NULL;
    T_EQ_INT(hp_config_diff(a, a, &s2, &restart), 0);
    _cleanup_free_ char *same = s2;
    T_EQ_STR(same, "");
    T_ASSERT(!restart);

    /* a non-reloadable change */
    T_EQ_INT(hp_config_set_listen(b, "/tmp/other.sock", &err), 0);
    char *s3 = NULL;
    T_EQ_INT(hp_config_diff(a, b, &s3, &restart), 0);
    _cleanup_free_ char *r = s3;
    T_ASSERT(restart);
    T_ASSERT(strstr(r, "listen: /run/hpcri/hpcri.sock -> /tmp/other.sock: needs a restart, "
                       "not applied"));
    T_ASSERT(strstr(r, "run_dir: /run/hpcri -> /tmp: needs a restart"));

    /* keeping the running values makes the restart-only differences disappear */
    T_EQ_INT(hp_config_keep_restart_settings(b, a, &err), 0);
    T_EQ_STR(b->listen, "/run/hpcri/hpcri.sock");
    T_EQ_STR(b->run_dir, "/run/hpcri");
    char *s4 = NULL;
    T_EQ_INT(hp_config_diff(a, b, &s4, &restart), 0);
    _cleanup_free_ char *kept = s4;
    T_ASSERT(!restart);
    T_ASSERT(!strstr(kept, "listen"));
    T_ASSERT(strstr(kept, "log_level: info -> debug"));
    hp_config_free(a);
    hp_config_free(b);
}

/* Read a whole file (malloc'd, caller frees) or NULL. */
static char *slurp(const char *path)
{
    _cleanup_fclose_ FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0;
    if (!f)
        return NULL;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return NULL;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(m);
    return buf;
}

T_CASE(docs_example_matches_file)
{
    _cleanup_free_ char *doc = slurp("docs/config.md");
    _cleanup_free_ char *ex = slurp(EXAMPLE);
    T_ASSERT(doc);
    T_ASSERT(ex);
    const char *sec = strstr(doc, "## Complete example");
    T_ASSERT(sec);
    const char *start = strstr(sec, "```ini\n");
    T_ASSERT(start);
    start += 7;
    T_ASSERT(strncmp(start, ex, strlen(ex)) == 0);
    T_ASSERT(strncmp(start + strlen(ex), "```", 3) == 0);
}

T_CASE(slurm_gpu_devices)
{
    hp_err err = HP_ERR_INIT;
    hp_config *cfg = load("[runtime \"s\"]\ntype = slurm\nshared_dir = /s\n"
                          "gpu_devices = /dev/nvidia0 , /dev/nvidia1\nstats_interval_ms = 500\n",
                          &err);
    T_ASSERT(cfg);
    const hp_handler_config *h = hp_config_handler(cfg, "s", &err);
    T_ASSERT(h);
    T_EQ_STR(hp_handler_opt(h, "gpu_devices"), "/dev/nvidia0,/dev/nvidia1");
    long iv = 0;
    T_EQ_INT(hp_handler_opt_int(h, "stats_interval_ms", &iv, &err), 0);
    T_EQ_INT(iv, 500);
    hp_config_free(cfg);
    cfg = load("[runtime \"s\"]\ntype = slurm\nshared_dir = /s\ngpu_devices = /dev/gpu%d\n", &err);
    T_ASSERT(cfg);
    T_EQ_STR(hp_handler_opt(hp_config_handler(cfg, "s", &err), "gpu_devices"), "/dev/gpu%d");
    hp_config_free(cfg);
    T_ASSERT(fails_with("[runtime \"s\"]\ntype = slurm\nshared_dir = /s\ngpu_devices = dev/x\n",
                        "test.conf:4:", "gpu_devices", "absolute device paths", NULL));
    T_ASSERT(fails_with("[runtime \"s\"]\ntype = slurm\nshared_dir = /s\n"
                        "gpu_devices = /dev/g%s\n",
                        "test.conf:4:", "at most one %d", NULL));
    T_ASSERT(fails_with("[runtime \"s\"]\ntype = slurm\nshared_dir = /s\n"
                        "gpu_devices = /dev/g%d%d\n",
                        "test.conf:4:", "gpu_devices", NULL));
    T_ASSERT(fails_with("[runtime \"s\"]\ntype = slurm\nshared_dir = /s\n"
                        "gpu_devices = /dev/a,,/dev/b\n",
                        "test.conf:4:", "gpu_devices", NULL));
    T_ASSERT(fails_with("[runtime \"s\"]\ntype = slurm\nshared_dir = /s\nstats_interval_ms = 5\n",
                        "test.conf:4:", "stats_interval_ms", NULL));
}

T_MAIN()
