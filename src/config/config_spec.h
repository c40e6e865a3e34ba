/* Internal to src/config: the schema of every section (keys, value kinds,
 * defaults) shared by the parser (config.c) and the reports (config_report.c). */
#ifndef HP_CONFIG_CONFIG_SPEC_H
#define HP_CONFIG_CONFIG_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

typedef enum hp_opt_kind {
    HP_K_ABS_PATH,       /* absolute path */
    HP_K_ABS_PATH_EMPTY, /* absolute path or empty (= unset) */
    HP_K_PROGRAM,        /* absolute path or a bare name looked up in PATH */
    HP_K_ENUM,           /* one of choices */
    HP_K_INT,            /* decimal integer in [min, max] */
    HP_K_BOOL,           /* true/false/yes/no/1/0 -> "true"/"false" */
    HP_K_SLURM_TIME,     /* Slurm time limit */
    HP_K_SLURM_NAME,     /* partition/account/qos: [A-Za-z0-9_.,-]+ */
    HP_K_JOB_PREFIX,     /* [A-Za-z0-9_.-]+ */
    HP_K_UNIX_URI,       /* unix:///absolute/path */
    HP_K_LISTEN,         /* absolute socket path or unix:///path -> path */
    HP_K_IP,             /* IPv4 or IPv6 literal */
    HP_K_PLATFORM,       /* os/arch[/variant] */
    HP_K_URL_LIST,       /* comma-separated http(s) URLs -> "a, b" */
    HP_K_DEV_LIST,       /* comma-separated absolute paths, each with at most one %d -> "a,b" */
} hp_opt_kind;

typedef struct hp_opt_spec {
    const char *key;
    hp_opt_kind kind;
    const char *const *choices; /* HP_K_ENUM: NULL-terminated */
    long min, max;              /* HP_K_INT */
    const char *def_root;       /* default when running as root, NULL = none */
    const char *def_user;       /* default when unprivileged, NULL = none */
    const char *def_from;       /* default = value of this other key */
    const char *unset;          /* what an unset key without default means (describe) */
    bool required;
} hp_opt_spec;

/* Spec table of a backend type; *n set to its length. Static storage. */
const hp_opt_spec *hp_spec_for_type(hp_backend_type type, size_t *n);

/* Spec of `key` for a type, NULL if the type has no such key. */
const hp_opt_spec *hp_spec_find(hp_backend_type type, const char *key);

/* Configured value of key in h, NULL when not configured. */
const char *hp_handler_configured(const hp_handler_config *h, const char *key);

#endif
