/* hpcri configuration reports: hp_config_describe (--check-config) and
 * hp_config_diff (SIGHUP). */
#include "config/config.h"
#include "config/config_spec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/log.h"

static const char *or_unset(const char *s)
{
    return s ? s : "(unset)";
}

static void describe_registry(const hp_registry_host_config *r, FILE *out)
{
    fprintf(out, "  %s:\n", r->host);
    if (r->n_mirrors) {
        fprintf(out, "    mirrors, in order:  ");
        for (size_t i = 0; i < r->n_mirrors; i++)
            fprintf(out, " %s", r->mirrors[i]);
        fprintf(out, "\n    then upstream:       %s\n",
                r->mirror_only ? "never (mirror_only)" : r->host);
    } else {
        fprintf(out, "    mirrors:             none, pulls from %s directly\n", r->host);
    }
    fprintf(out, "    TLS:                 %s\n",
            r->insecure ? "insecure (plain HTTP or no certificate verification)" : "verified");
    fprintf(out, "    ca_file:             %s\n", r->ca_file ? r->ca_file : "(system CA store)");
}

static void describe_handler(const hp_handler_config *h, FILE *out)
{
    size_t n;
    const hp_opt_spec *specs = hp_spec_for_type(h->type, &n);
    if (h->name[0])
        fprintf(out, "  \"%s\": type %s\n", h->name, hp_backend_type_name(h->type));
    else
        fprintf(out, "  \"\" (default handler): type %s%s\n", hp_backend_type_name(h->type),
                h->line ? "" : " (embedded default)");
    for (size_t i = 0; i < n; i++) {
        const char *conf = hp_handler_configured(h, specs[i].key);
        const char *eff = hp_handler_opt(h, specs[i].key);
        if (!eff)
            fprintf(out, "    %-17s   (unset: %s)\n", specs[i].key,
                    specs[i].unset ? specs[i].unset : "no value");
        else
            fprintf(out, "    %-17s = %s%s\n", specs[i].key, eff, conf ? "" : " (default)");
    }
}

int hp_config_describe(const hp_config *cfg, FILE *out)
{
    fprintf(out, "hpcri configuration from %s\n",
            cfg->path ? cfg->path : "the embedded defaults (no config file)");
    fprintf(out, "running as uid %u (%s)\n", (unsigned)cfg->uid,
            cfg->uid == 0 ? "root" : "unprivileged");
    fprintf(out, "listen:          %s\n", cfg->listen);
    fprintf(out, "root:            %s\n", cfg->root);
    fprintf(out, "run_dir:         %s%s\n", cfg->run_dir,
            cfg->run_dir_explicit ? "" : " (directory of the socket)");
    fprintf(out, "log_level:       %s\n", hp_log_level_name(cfg->log_level));
    fprintf(out, "workers:         %d\n", cfg->workers);
    fprintf(out, "pause_path:      %s\n",
            cfg->pause_path ? cfg->pause_path : "hpcri-pause next to the hpcri binary");
    if (cfg->stream_port)
        fprintf(out, "streaming:       %s port %d\n", cfg->stream_address, cfg->stream_port);
    else
        fprintf(out, "streaming:       %s, ephemeral port\n", cfg->stream_address);
    fprintf(out, "image:\n");
    fprintf(out, "  default_platform:         %s\n", cfg->default_platform);
    fprintf(out, "  max_concurrent_downloads: %d\n", cfg->max_concurrent_downloads);
    fprintf(out, "registries:\n");
    if (!cfg->n_registries)
        fprintf(out, "  (none configured: every registry is contacted directly over verified "
                     "TLS)\n");
    for (size_t i = 0; i < cfg->n_registries; i++)
        describe_registry(&cfg->registries[i], out);
    fprintf(out, "runtime handlers:\n");
    for (size_t i = 0; i < cfg->n_handlers; i++)
        describe_handler(&cfg->handlers[i], out);
    fflush(out);
    return ferror(out) ? -1 : 0;
}

/* ------------------------------------------------------------------------ */

static bool str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static void line_start(FILE *m, bool *first)
{
    if (!*first)
        fputc('\n', m);
    *first = false;
}

static void diff_str(FILE *m, bool *first, const char *key, const char *a, const char *b,
                     bool restart, bool *needs_restart)
{
    if (str_eq(a, b))
        return;
    line_start(m, first);
    fprintf(m, "%s: %s -> %s%s", key, or_unset(a), or_unset(b),
            restart ? ": needs a restart, not applied" : "");
    if (restart)
        *needs_restart = true;
}

static void diff_int(FILE *m, bool *first, const char *key, int a, int b, bool restart,
                     bool *needs_restart)
{
    char sa[16], sb[16];
    snprintf(sa, sizeof sa, "%d", a);
    snprintf(sb, sizeof sb, "%d", b);
    diff_str(m, first, key, sa, sb, restart, needs_restart);
}

/* Append "; " between details of one changed item. */
static void detail(FILE *m, bool *any, const char *fmt, const char *a, const char *b,
                   const char *key)
{
    fputs(*any ? "; " : ": ", m);
    *any = true;
    if (key)
        fprintf(m, fmt, key, a, b);
    else
        fprintf(m, fmt, a, b);
}

static bool mirrors_eq(const hp_registry_host_config *a, const hp_registry_host_config *b)
{
    if (a->n_mirrors != b->n_mirrors)
        return false;
    for (size_t i = 0; i < a->n_mirrors; i++)
        if (strcmp(a->mirrors[i], b->mirrors[i]) != 0)
            return false;
    return true;
}

static char *mirrors_str(const hp_registry_host_config *r)
{
    char *s = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&s, &len);
    if (!m)
        return NULL;
    if (!r->n_mirrors)
        fputs("(none)", m);
    for (size_t i = 0; i < r->n_mirrors; i++)
        fprintf(m, "%s%s", i ? ", " : "", r->mirrors[i]);
    if (fclose(m) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

static void diff_registry(FILE *m, bool *first, const hp_registry_host_config *a,
                          const hp_registry_host_config *b)
{
    bool ma = mirrors_eq(a, b);
    if (ma && a->mirror_only == b->mirror_only && a->insecure == b->insecure &&
        str_eq(a->ca_file, b->ca_file))
        return;
    bool any = false;
    line_start(m, first);
    fprintf(m, "registry \"%s\" changed", b->host);
    if (!ma) {
        _cleanup_free_ char *sa = mirrors_str(a);
        _cleanup_free_ char *sb = mirrors_str(b);
        detail(m, &any, "mirrors %s -> %s", or_unset(sa), or_unset(sb), NULL);
    }
    if (a->mirror_only != b->mirror_only)
        detail(m, &any, "mirror_only %s -> %s", a->mirror_only ? "true" : "false",
               b->mirror_only ? "true" : "false", NULL);
    if (a->insecure != b->insecure)
        detail(m, &any, "insecure %s -> %s", a->insecure ? "true" : "false",
               b->insecure ? "true" : "false", NULL);
    if (!str_eq(a->ca_file, b->ca_file))
        detail(m, &any, "ca_file %s -> %s", or_unset(a->ca_file), or_unset(b->ca_file), NULL);
}

static const char *handler_label(const hp_handler_config *h)
{
    return h->name[0] ? h->name : "";
}

static void diff_handler(FILE *m, bool *first, const hp_handler_config *a,
                         const hp_handler_config *b)
{
    bool any = false;
    const char *suffix = b->name[0] ? "" : " (default)";
    if (a->type != b->type) {
        line_start(m, first);
        fprintf(m, "handler \"%s\"%s changed: type %s -> %s", handler_label(b), suffix,
                hp_backend_type_name(a->type), hp_backend_type_name(b->type));
        return;
    }
    size_t n;
    const hp_opt_spec *specs = hp_spec_for_type(b->type, &n);
    for (size_t i = 0; i < n; i++) {
        const char *va = hp_handler_opt(a, specs[i].key);
        const char *vb = hp_handler_opt(b, specs[i].key);
        if (str_eq(va, vb))
            continue;
        if (!any) {
            line_start(m, first);
            fprintf(m, "handler \"%s\"%s changed", handler_label(b), suffix);
        }
        detail(m, &any, "%s %s -> %s", or_unset(va), or_unset(vb), specs[i].key);
    }
}

int hp_config_diff(const hp_config *old, const hp_config *new, char **summary, bool *needs_restart)
{
    char *s = NULL;
    size_t len = 0;
    bool first = true;
    *summary = NULL;
    *needs_restart = false;
    FILE *m = open_memstream(&s, &len);
    if (!m)
        return -1;

    diff_str(m, &first, "listen", old->listen, new->listen, true, needs_restart);
    diff_str(m, &first, "root", old->root, new->root, true, needs_restart);
    diff_str(m, &first, "run_dir", old->run_dir, new->run_dir, true, needs_restart);
    diff_int(m, &first, "workers", old->workers, new->workers, true, needs_restart);
    diff_str(m, &first, "stream_address", old->stream_address, new->stream_address, true,
             needs_restart);
    diff_int(m, &first, "stream_port", old->stream_port, new->stream_port, true, needs_restart);
    diff_str(m, &first, "log_level", hp_log_level_name(old->log_level),
             hp_log_level_name(new->log_level), false, needs_restart);
    diff_str(m, &first, "pause_path", old->pause_path, new->pause_path, false, needs_restart);
    diff_str(m, &first, "default_platform", old->default_platform, new->default_platform, false,
             needs_restart);
    diff_int(m, &first, "max_concurrent_downloads", old->max_concurrent_downloads,
             new->max_concurrent_downloads, false, needs_restart);

    for (size_t i = 0; i < old->n_registries; i++) {
        const hp_registry_host_config *b = hp_config_registry(new, old->registries[i].host);
        if (!b) {
            line_start(m, &first);
            fprintf(m, "registry \"%s\" removed", old->registries[i].host);
        } else {
            diff_registry(m, &first, &old->registries[i], b);
        }
    }
    for (size_t i = 0; i < new->n_registries; i++) {
        if (!hp_config_registry(old, new->registries[i].host)) {
            line_start(m, &first);
            fprintf(m, "registry \"%s\" added", new->registries[i].host);
        }
    }

    for (size_t i = 0; i < old->n_handlers; i++) {
        const hp_handler_config *a = &old->handlers[i];
        const hp_handler_config *b = hp_config_handler(new, a->name, NULL);
        if (!b) {
            line_start(m, &first);
            fprintf(m, "handler \"%s\" removed", a->name);
        } else {
            diff_handler(m, &first, a, b);
        }
    }
    for (size_t i = 0; i < new->n_handlers; i++) {
        if (!hp_config_handler(old, new->handlers[i].name, NULL)) {
            line_start(m, &first);
            fprintf(m, "handler \"%s\" added (type %s)", new->handlers[i].name,
                    hp_backend_type_name(new->handlers[i].type));
        }
    }

    if (fclose(m) != 0) {
        free(s);
        errno = ENOMEM;
        return -1;
    }
    *summary = s;
    return 0;
}
