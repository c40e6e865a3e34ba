/* hpcri configuration: embedded defaults plus one INI file (docs/config.md).
 *
 *   [hpcri]                  global settings (socket, directories, logging, ...)
 *   [image]                  image service settings
 *   [registry "HOST"]        per-registry mirrors / TLS settings, one per host
 *   [runtime]                the default RuntimeClass handler ("")
 *   [runtime "NAME"]         the RuntimeClass handler NAME
 *
 * A loaded hp_config is immutable after hp_config_load() apart from the
 * command-line setters below (called by main before the config is shared).
 * On SIGHUP main loads a fresh config, re-applies its command-line overrides
 * to it, calls hp_config_diff(old, new) to log what changed, and
 * hp_config_keep_restart_settings(new, old) before switching to it.
 *
 * Ownership: an hp_config owns every string and array reachable from it
 * (malloc'd); hp_config_free() releases all of it.  Pointers returned by the
 * lookup functions point into the config and live as long as it does.
 */
#ifndef HP_CONFIG_CONFIG_H
#define HP_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "util/err.h"

/* Backend (runtime handler) types. */
typedef enum hp_backend_type {
    HP_BACKEND_OCI = 0,
    HP_BACKEND_SLURM,
    HP_BACKEND_REMOTE,
    HP_BACKEND_CHARLIECLOUD,
} hp_backend_type;

/* "oci", "slurm", "remote", "charliecloud" (static storage). */
const char *hp_backend_type_name(hp_backend_type type);

/* One configured handler option, already validated and normalized
 * (booleans are "true"/"false", time_limit UNLIMITED upper-case). */
typedef struct hp_config_opt {
    char *key;   /* owned */
    char *value; /* owned */
    int line;    /* line in the config file, 0 when not from a file */
} hp_config_opt;

/* A RuntimeClass handler. */
typedef struct hp_handler_config {
    char *name; /* owned; "" for the default handler */
    hp_backend_type type;
    uid_t uid;           /* uid hpcri runs as: some defaults depend on it */
    hp_config_opt *opts; /* owned; configured options in file order ("type" excluded) */
    size_t n_opts;
    int line; /* line of the section header, 0 for the embedded default */
} hp_handler_config;

/* Settings for one registry host ([registry "HOST"]).  Named *_host_config so as
 * not to clash with struct hp_registry_config of src/image/registry.h, the
 * registry client's own settings, which the image service fills from these. */
typedef struct hp_registry_host_config {
    char *host;     /* owned, lower-case, "host" or "host:port" */
    char **mirrors; /* owned array of owned URLs (no trailing '/'), tried in order */
    size_t n_mirrors;
    bool mirror_only; /* never contact the upstream host */
    bool insecure;    /* plain HTTP / no TLS verification for this host */
    char *ca_file;    /* owned absolute path, NULL = system CA store */
    int line;
} hp_registry_host_config;

typedef struct hp_config {
    uid_t uid;
    char *path; /* owned; file this was loaded from, NULL for the embedded defaults */

    /* [hpcri]  All strings owned by the struct and freed by hp_config_free();
     * command-line overrides go through the hp_config_set_* functions. */
    char *listen;          /* absolute unix socket path */
    char *root;            /* absolute state dir */
    char *run_dir;         /* absolute runtime dir */
    bool run_dir_explicit; /* run_dir set in the file or by a setter; else dirname(listen) */
    int log_level;         /* enum hp_log_level */
    int workers;           /* 1..64 */
    char *pause_path;      /* absolute path, NULL = hpcri-pause next to the hpcri binary */
    char *stream_address;  /* IPv4/IPv6 literal */
    int stream_port;       /* 0..65535, 0 = ephemeral */

    /* [image] */
    char *default_platform; /* "os/arch[/variant]" */
    int max_concurrent_downloads;

    hp_registry_host_config *registries; /* owned array, file order */
    size_t n_registries;

    /* owned array; handlers[0] is always the default handler "" */
    hp_handler_config *handlers;
    size_t n_handlers;
} hp_config;

/* The embedded defaults for a daemon running as `uid` (no config file).
 * Returns a new config the caller frees with hp_config_free(), or NULL with
 * err filled (FAILED_PRECONDITION when no home/state dir can be determined for
 * an unprivileged uid, RESOURCE_EXHAUSTED on ENOMEM). */
hp_config *hp_config_default(uid_t uid, hp_err *err);

/* The defaults for `uid`, then the file at `path` on top.  Returns a new config
 * the caller frees with hp_config_free(), or NULL with err filled: NOT_FOUND
 * when the file does not exist, INVALID_ARGUMENT for any syntax or validation
 * problem ("FILE:LINE: what is wrong"; the first problem in the file). */
hp_config *hp_config_load(const char *path, uid_t uid, hp_err *err);

/* Same as hp_config_load() on in-memory text; `name` is used in messages and
 * stored as cfg->path.  Caller frees the result with hp_config_free(). */
hp_config *hp_config_load_string(const char *text, const char *name, uid_t uid, hp_err *err);

/* Free a config and everything it owns. NULL is a no-op. */
void hp_config_free(hp_config *cfg);

/* Command-line overrides (main).  The value is validated and copied; the
 * previous string is freed.  Paths must be absolute.  set_listen also moves
 * run_dir to the socket's directory unless run_dir was set explicitly.
 * Return 0, or -1 with err filled (INVALID_ARGUMENT). */
int hp_config_set_listen(hp_config *cfg, const char *path, hp_err *err);
int hp_config_set_root(hp_config *cfg, const char *path, hp_err *err);
int hp_config_set_run_dir(hp_config *cfg, const char *path, hp_err *err);
int hp_config_set_log_level(hp_config *cfg, const char *level, hp_err *err);

/* The handler for a RuntimeClass handler name; NULL or "" = the default.
 * Returns a pointer into cfg, or NULL with INVALID_ARGUMENT naming the
 * configured handlers. */
const hp_handler_config *hp_config_handler(const hp_config *cfg, const char *name, hp_err *err);

/* Option `key` of a handler: the configured value, else the type's default
 * (which may depend on the uid), else NULL (unset, or not a key of this type).
 * The string lives as long as the config (or is static). */
const char *hp_handler_opt(const hp_handler_config *h, const char *key);

/* Typed getters on hp_handler_opt().  Return 0 with *out set, or -1 with
 * NOT_FOUND when the option has no value and no default (INVALID_ARGUMENT
 * if it is not an integer / boolean, which validation normally rules out). */
int hp_handler_opt_int(const hp_handler_config *h, const char *key, long *out, hp_err *err);
int hp_handler_opt_bool(const hp_handler_config *h, const char *key, bool *out, hp_err *err);

/* Parse a Slurm time limit (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS,
 * UNLIMITED) into seconds; UNLIMITED gives -1.  Returns 0 or -1 with
 * INVALID_ARGUMENT. */
int hp_config_parse_slurm_time(const char *s, int64_t *seconds, hp_err *err);

/* Settings for a registry host ("docker.io", "host:5000"; case-insensitive),
 * or NULL when the host has no [registry] section.  Pointer into cfg. */
const hp_registry_host_config *hp_config_registry(const hp_config *cfg, const char *host);

/* Write a human-readable summary of what hpcri would do with this config
 * (hpcri --check-config).  Returns 0, or -1 when writing failed. */
int hp_config_describe(const hp_config *cfg, FILE *out);

/* What changed from old to new, one line per change ('\n'-separated, "" when
 * nothing changed), e.g. "log_level: info -> debug", "handler \"slurm\" added",
 * "listen: /a.sock -> /b.sock: needs a restart, not applied".  *needs_restart
 * is set when a setting that cannot be reloaded changed (listen, root, run_dir,
 * workers, stream_address, stream_port).  *summary is malloc'd, caller frees.
 * Returns 0, or -1 on ENOMEM (*summary NULL). */
int hp_config_diff(const hp_config *old, const hp_config *new, char **summary, bool *needs_restart);

/* For SIGHUP: copy the settings that cannot change without a restart
 * (listen, root, run_dir, workers, stream_address, stream_port) from the
 * running config `old` into the freshly loaded `new`, so that `new` describes
 * what is actually in effect.  Call after hp_config_diff().  Returns 0, or -1
 * with RESOURCE_EXHAUSTED (new is unchanged then). */
int hp_config_keep_restart_settings(hp_config *new, const hp_config *old, hp_err *err);

#endif
