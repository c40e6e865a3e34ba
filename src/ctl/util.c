/* hpcri-ctl helpers: options, connection, protobuf calls, formatting. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "ctl/pbjson.h"
#include "util/cleanup.h"

int ctl_common_opt(struct ctl *ctl, int opt, const char *arg, hp_err *err)
{
    switch (opt) {
    case CTL_OPT_SOCKET:
        ctl->socket = arg;
        return 1;
    case CTL_OPT_TIMEOUT: {
        char *end;
        errno = 0;
        double s = strtod(arg, &end);
        if (errno || end == arg || *end || s < 0 || s > CTL_MAX_TIMEOUT_S)
            return hp_err_set(err, HP_INVALID_ARGUMENT,
                              "--timeout: expected 0 (none) to %d seconds, got \"%s\"",
                              CTL_MAX_TIMEOUT_S, arg);
        ctl->timeout_ms = (int)(s * 1000 + 0.5);
        return 1;
    }
    case 'o':
    case CTL_OPT_OUTPUT:
        if (strcmp(arg, "json") == 0)
            ctl->out = CTL_OUT_JSON;
        else if (strcmp(arg, "table") == 0)
            ctl->out = CTL_OUT_TABLE;
        else
            return hp_err_set(err, HP_INVALID_ARGUMENT,
                              "-o: unknown output format \"%s\" (table or json)", arg);
        return 1;
    default:
        return 0;
    }
}

int ctl_opt(struct ctl *ctl, int opt, const char *arg, const char *usage, hp_err *err)
{
    int r = (opt == '?' || opt == ':') ? 0 : ctl_common_opt(ctl, opt, arg, err);
    if (r < 0)
        return -1;
    if (r == 0) /* getopt already printed what was wrong */
        return hp_err_set(err, HP_INVALID_ARGUMENT, "usage: hpcri-ctl %s", usage);
    return 0;
}

int ctl_timeout(const struct ctl *ctl, int dflt)
{
    return ctl->timeout_ms >= 0 ? ctl->timeout_ms : dflt;
}

static void resolve_socket(struct ctl *ctl)
{
    const char *env = getenv("HPCRI_SOCKET");
    if (ctl->socket) {
        /* --socket */
    } else if (env && *env) {
        ctl->socket = env;
    } else if (geteuid() == 0) {
        ctl->socket = "/run/hpcri/hpcri.sock";
    } else {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        if (xdg && *xdg && access(xdg, W_OK | X_OK) == 0)
            snprintf(ctl->path_buf, sizeof ctl->path_buf, "%s/hpcri/hpcri.sock", xdg);
        else
            snprintf(ctl->path_buf, sizeof ctl->path_buf, "/tmp/hpcri-%u/hpcri.sock",
                     (unsigned)getuid());
        ctl->socket = ctl->path_buf;
    }
    if (strncmp(ctl->socket, "unix://", 7) == 0)
        ctl->socket += 7;
}

hp_client *ctl_client(struct ctl *ctl, hp_err *err)
{
    if (ctl->client)
        return ctl->client;
    resolve_socket(ctl);
    ctl->client = hp_client_connect(ctl->socket, err);
    if (ctl->client)
        hp_client_set_cancel_fd(ctl->client, ctl->sigfd);
    return ctl->client;
}

ProtobufCMessage *ctl_call(struct ctl *ctl, const char *method, const ProtobufCMessage *req,
                           const ProtobufCMessageDescriptor *resp_desc, int timeout_ms, hp_err *err)
{
    hp_client *c = ctl_client(ctl, err);
    if (!c)
        return NULL;
    size_t len = protobuf_c_message_get_packed_size(req);
    _cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    protobuf_c_message_pack(req, buf);
    _cleanup_free_ uint8_t *resp = NULL;
    size_t resp_len = 0;
    if (hp_client_unary(c, method, buf, len, timeout_ms, &resp, &resp_len, err) < 0)
        return NULL;
    ProtobufCMessage *m = protobuf_c_message_unpack(resp_desc, NULL, resp_len, resp);
    if (!m)
        hp_err_set(err, HP_INTERNAL, "cannot decode the %s response (%zu bytes) as %s", method,
                   resp_len, resp_desc->name);
    return m;
}

int ctl_print_json(const ProtobufCMessage *msg, hp_err *err)
{
    json_t *j = pbjson_from_message(msg, err);
    if (!j)
        return -1;
    int rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (rc < 0)
        return hp_err_set(err, HP_INTERNAL, "cannot write JSON");
    putchar('\n');
    return 0;
}

ProtobufCMessage *ctl_load_json(const char *path, const ProtobufCMessageDescriptor *desc,
                                hp_err *err)
{
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "%s:%d: %s", path, je.line, je.text);
        return NULL;
    }
    ProtobufCMessage *m = pbjson_to_message(desc, j, err);
    json_decref(j);
    if (!m)
        hp_err_wrap(err, "%s", path);
    return m;
}

int ctl_match_id(const char *prefix, char *const *ids, size_t n, const char *what, hp_err *err)
{
    size_t plen = strlen(prefix);
    int found = -1;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ids[i], prefix) == 0)
            return (int)i;
        if (plen > 0 && strncmp(ids[i], prefix, plen) == 0) {
            if (found >= 0)
                return hp_err_set(err, HP_INVALID_ARGUMENT, "%s ID \"%s\" is ambiguous", what,
                                  prefix);
            found = (int)i;
        }
    }
    if (found < 0)
        return hp_err_set(err, HP_NOT_FOUND, "%s \"%s\" not found", what, prefix);
    return found;
}

void ctl_fmt_bytes(uint64_t bytes, char *buf, size_t size)
{
    static const char *units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1000 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%" PRIu64 "B", bytes);
    else
        snprintf(buf, size, "%.3g%s", v, units[u]);
}

void ctl_fmt_ago(int64_t unix_ns, char *buf, size_t size)
{
    if (unix_ns <= 0) {
        snprintf(buf, size, "-");
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    int64_t s = (now - unix_ns) / 1000000000;
    if (s < 0)
        s = 0;
    if (s < 60)
        snprintf(buf, size, "%" PRId64 " second%s ago", s, s == 1 ? "" : "s");
    else if (s < 3600)
        snprintf(buf, size, "%" PRId64 " minute%s ago", s / 60, s / 60 == 1 ? "" : "s");
    else if (s < 86400)
        snprintf(buf, size, "%" PRId64 " hour%s ago", s / 3600, s / 3600 == 1 ? "" : "s");
    else
        snprintf(buf, size, "%" PRId64 " day%s ago", s / 86400, s / 86400 == 1 ? "" : "s");
}

void ctl_fmt_id(const char *id, char *buf, size_t size)
{
    snprintf(buf, size, "%.13s", id ? id : "");
}
