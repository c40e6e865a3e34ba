/* hpcri-ctl: shared state and helpers of the command-line client. */
#ifndef HP_CTL_CTL_H
#define HP_CTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "rpc/client.h"
#include "util/err.h"

#define CTL_RUNTIME "/runtime.v1.RuntimeService/"
#define CTL_IMAGE   "/runtime.v1.ImageService/"

/* Default per-call timeout when --timeout is not given. */
#define CTL_DEFAULT_TIMEOUT_MS 10000

/* Largest --timeout: 20 days, so that milliseconds plus margins fit an int. */
#define CTL_MAX_TIMEOUT_S (20 * 86400)

enum ctl_output { CTL_OUT_TABLE = 0, CTL_OUT_JSON };

struct ctl {
    const char *socket; /* resolved socket path (points into argv/env/path_buf) */
    char path_buf[256];
    int timeout_ms; /* -1 = not given on the command line */
    /* Largest --timeout: 20 days, so that milliseconds plus margins fit an int. */
#define CTL_MAX_TIMEOUT_S (20 * 86400)

    enum ctl_output out;
    int sigfd;         /* signalfd for SIGINT/SIGTERM, or -1 */
    hp_client *client; /* connected lazily by ctl_client(); owned */
};

/* Parse one of the options every command accepts: -o/--output FORMAT,
 * --socket PATH, --timeout SECONDS.  Returns 1 when `opt` was one of them,
 * 0 when not, -1 on a bad value (err filled). */
int ctl_common_opt(struct ctl *ctl, int opt, const char *arg, hp_err *err);

/* getopt_long option codes for ctl_common_opt (for commands' option tables). */
enum { CTL_OPT_SOCKET = 0x1000, CTL_OPT_TIMEOUT, CTL_OPT_OUTPUT };
#define CTL_COMMON_LONGOPTS                                                                        \
    {"socket", required_argument, NULL, CTL_OPT_SOCKET},                                           \
        {"timeout", required_argument, NULL, CTL_OPT_TIMEOUT},                                     \
    {                                                                                              \
        "output", required_argument, NULL, 'o'                                                     \
    }

/* For a command's getopt loop: handles the common options, and turns an
 * unknown option or missing argument into err INVALID_ARGUMENT "usage: ...".
 * Returns 0 when handled, -1 on error. */
int ctl_opt(struct ctl *ctl, int opt, const char *arg, const char *usage, hp_err *err);

/* Timeout for a call: --timeout if given, else `dflt` ms (0 = none). */
int ctl_timeout(const struct ctl *ctl, int dflt);

/* The connection, made on first use.  Returns the client (owned by ctl) or NULL. */
hp_client *ctl_client(struct ctl *ctl, hp_err *err);

/* Unary call with protobuf-c messages: packs `req`, calls `method` (full path),
 * unpacks the response with `resp_desc`.  Returns the response (owned by the
 * caller: protobuf_c_message_free_unpacked(resp, NULL)) or NULL with err =
 * the call's status. */
ProtobufCMessage *ctl_call(struct ctl *ctl, const char *method, const ProtobufCMessage *req,
                           const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
                           hp_err *err);

/* Pack-call-unpack with an explicitly typed response: ctl_call and a cast. */
#define CTL_CALL(ctl, svc, name, req, type, desc, tmo, err)                                        \
    ((type *)ctl_call((ctl), svc #name, (const ProtobufCMessage *)(req), &(desc), (tmo), (err)))

/* Print a message as pretty JSON (camelCase names) to stdout. Returns 0 or -1. */
int ctl_print_json(const ProtobufCMessage *msg, hp_err *err);

/* Read a JSON file (crictl config format) into a new message of type desc,
 * owned by the caller (pbjson_free_message).  NULL with err on failure. */
ProtobufCMessage *ctl_load_json(const char *path, const ProtobufCMessageDescriptor *desc,
                                hp_err *err);

/* Resolve a possibly truncated ID against a list of full IDs (crictl-style
 * prefix match).  Returns the index, or -1 with err NOT_FOUND / INVALID_ARGUMENT
 * (ambiguous). */
int ctl_match_id(const char *prefix, char *const *ids, size_t n, const char *what, hp_err *err);

/* Expand a unique ID prefix to the full pod / container ID (malloc'd, owned
 * by the caller).  When nothing matches, the argument is returned unchanged so
 * that the server reports the error; NULL with err when ambiguous or the
 * daemon is unreachable. */
char *ctl_resolve_pod(struct ctl *ctl, const char *id, hp_err *err);
char *ctl_resolve_container(struct ctl *ctl, const char *id, hp_err *err);

/* Human helpers writing into caller buffers. */
void ctl_fmt_bytes(uint64_t bytes, char *buf, size_t size); /* "1.5MB" */
void ctl_fmt_ago(int64_t unix_ns, char *buf, size_t size);  /* "3 minutes ago" */
void ctl_fmt_id(const char *id, char *buf, size_t size);    /* first 13 chars */

/* Commands: return the process exit code (>= 0), or -1 with err filled. */
typedef int (*ctl_cmd_fn)(struct ctl *ctl, int argc, char **argv, hp_err *err);

int cmd_version(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_info(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_raw(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_events(struct ctl *ctl, int argc, char **argv, hp_err *err);

int cmd_images(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_imagefsinfo(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_pull(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_rmi(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_import(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_inspecti(struct ctl *ctl, int argc, char **argv, hp_err *err);

int cmd_pods(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_runp(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_stopp(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_rmp(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_inspectp(struct ctl *ctl, int argc, char **argv, hp_err *err);

int cmd_ps(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_create(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_start(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_stop(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_rm(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_inspect(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_exec(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_logs(struct ctl *ctl, int argc, char **argv, hp_err *err);
int cmd_stats(struct ctl *ctl, int argc, char **argv, hp_err *err);

#endif
