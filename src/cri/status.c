/* Daemon-level helpers for the CRI handlers: readiness, Status(verbose)
 * info, CIDR validation, image lookup and directories. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cri/cri_internal.h"
#include "util/cleanup.h"

int hp_cri_runtime_ready(hp_daemon *d, char *reason, size_t reason_len, char *msg, size_t msg_len)
{
    hp_err err = HP_ERR_INIT;
    /* Ready when the default handler's backend exists: creating it checks
     * its prerequisites (OCI runtime, conmon, pause binary, Slurm commands). */
    if (hp_cri_backend(d, "", &err) == NULL) {
        snprintf(reason, reason_len, "%s",
                 err.code == HP_UNIMPLEMENTED ? "BackendNotAvailable" : "BackendNotReady");
        snprintf(msg, msg_len, "default runtime handler: %s", err.msg);
        return 0;
    }
    reason[0] = msg[0] = '\0';
    return 1;
}

char *hp_cri_status_info(hp_daemon *d, hp_err *err)
{
    json_t *root = json_object(), *handlers = json_array();
    _cleanup_free_ char *cidr = NULL;
    hp_err kverr = HP_ERR_INIT;
    char *text;

    if (root == NULL || handlers == NULL) {
        json_decref(root);
        json_decref(handlers);
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    cidr = hp_store_kv_get(d->store, "pod_cidr", &kverr);
    pthread_rwlock_rdlock(&d->cfg_lock);
    for (size_t i = 0; i < d->cfg->n_handlers; i++) {
        const hp_handler_config *h = &d->cfg->handlers[i];
        json_t *opts = json_object();
        for (size_t j = 0; j < h->n_opts; j++)
            json_object_set_new(opts, h->opts[j].key, json_string(h->opts[j].value));
        json_array_append_new(handlers, json_pack("{s:s, s:s, s:o}", "name", h->name, "type",
                                                  hp_backend_type_name(h->type), "options", opts));
    }
    json_object_set_new(root, "version", json_string(HPCRI_VERSION));
    json_object_set_new(root, "socket", json_string(d->socket_path));
    json_object_set_new(root, "root", json_string(d->root));
    json_object_set_new(root, "runDir", json_string(d->cfg->run_dir));
    json_object_set_new(root, "configFile",
                        d->config_path ? json_string(d->config_path) : json_null());
    json_object_set_new(root, "logLevel", json_string(hp_log_level_name(d->cfg->log_level)));
    json_object_set_new(root, "defaultPlatform", json_string(d->cfg->default_platform));
    pthread_rwlock_unlock(&d->cfg_lock);
    json_object_set_new(root, "handlers", handlers);
    json_object_set_new(root, "podCIDR", json_string(cidr ? cidr : ""));
    json_object_set_new(root, "startedAt", json_integer(d->started_at));
    json_object_set_new(root, "pid", json_integer(getpid()));
    json_object_set_new(root, "uid", json_integer(getuid()));
    text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (text == NULL)
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    return text;
}

static int valid_cidr(const char *s, size_t len)
{
    char buf[64];
    char *slash, *end;
    unsigned char addr[16];
    long bits;
    int family;

    if (len == 0 || len >= sizeof buf)
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    slash = strchr(buf, '/');
    if (slash == NULL)
        return 0;
    *slash = '\0';
    family = strchr(buf, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(family, buf, addr) != 1)
        return 0;
    errno = 0;
    bits = strtol(slash + 1, &end, 10);
    if (errno || *end || end == slash + 1 || bits < 0 || bits > (family == AF_INET ? 32 : 128))
        return 0;
    return 1;
}

int hp_cri_validate_cidrs(const char *cidrs, hp_err *err)
{
    const char *p = cidrs;
    if (*p == '\0')
        return 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && *p == ' ') {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ')
            len--;
        if (!valid_cidr(p, len))
            return hp_err_set(err, HP_INVALID_ARGUMENT,
                              "pod CIDR \"%s\" is not a list of CIDRs (e.g. 10.244.0.0/24 or "
                              "10.244.0.0/24,fd00::/64)",
                              cidrs);
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}
