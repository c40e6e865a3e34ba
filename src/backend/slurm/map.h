/* Pod -> sbatch argv: the pure part of the Slurm backend (docs/slurm.md).
 *
 * No I/O, no global state: table-tested in tests/unit/test_slurm_map.c.
 * Every value that comes from the pod (annotations, metadata, resources) is
 * validated here and ends up as one "--option=value" argv element, so a
 * value can never become another option.
 */
#ifndef HP_BACKEND_SLURM_MAP_H
#define HP_BACKEND_SLURM_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.pb-c.h"
#include "util/err.h"

#define HP_SLURM_ANN_PREFIX "slurm.hpcri.io/"

/* A growable NULL-terminated argv; every string is owned by the struct. */
typedef struct hp_slurm_argv {
    char **v;
    size_t n, cap;
} hp_slurm_argv;

/* Append a printf-formatted element (copied).  Returns 0 or -1 on ENOMEM. */
int hp_slurm_argv_add(hp_slurm_argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Free every element and the array; leaves *a empty. */
void hp_slurm_argv_free(hp_slurm_argv *a);

/* Handler defaults (borrowed strings; NULL = unset). */
typedef struct hp_slurm_defaults {
    const char *partition;
    const char *account;
    const char *qos;
    const char *time_limit; /* Slurm time syntax, validated by the config */
    const char *job_name_prefix;
    const char *mpi; /* none | pmi2 | pmix */
} hp_slurm_defaults;

/* What the mapping decided, for backend_state, status info and tests. */
typedef struct hp_slurm_request {
    char job_name[160];
    long cpus;             /* pod CPUs, 0 = not requested (Slurm default) */
    const char *cpus_from; /* "pod-resources", "annotation", "default" (static) */
    int64_t mem_mb;        /* 0 = not requested (partition default) */
    const char *mem_from;
    long gpus;            /* from slurm.hpcri.io/gpus */
    long ntasks;          /* tasks of the job (>= 1) */
    long cpus_per_task;   /* 0 = not set */
    int64_t time_limit_s; /* -1 UNLIMITED, 0 = not set (partition default) */
    char mpi[8];
} hp_slurm_request;

/* Where the job runs from: the pod directory in shared_dir and the keeper
 * script (see slurm.c). */
typedef struct hp_slurm_paths {
    const char *pod_dir;     /* --chdir, and --output=<pod_dir>/slurm-%j.out */
    const char *script_path; /* the batch script, last argv element */
} hp_slurm_paths;

/* Build the sbatch arguments for a pod: out gets "sbatch" then options then
 * the script path (caller frees with hp_slurm_argv_free, also on error).
 * Returns 0, or -1 with INVALID_ARGUMENT for an unknown slurm.hpcri.io/ key
 * (the message lists the allowed keys) or a malformed value, naming the
 * annotation and the expected syntax. */
int hp_slurm_map_pod(const char *pod_id, const Runtime__V1__PodSandboxConfig *cfg,
                     const hp_slurm_defaults *d, const hp_slurm_paths *paths, hp_slurm_argv *out,
                     hp_slurm_request *req, hp_err *err);

/* Value validators, exposed for tests and for the step code. */
bool hp_slurm_valid_name(const char *s); /* partition/account/qos/reservation: [A-Za-z0-9_.-]+ */
/* Kubernetes-style CPU ("2", "1500m") -> whole CPUs rounded up; -1 if bad. */
long hp_slurm_parse_cpus(const char *s);
/* Kubernetes-style quantity ("512Mi", "2G", "1073741824") -> MiB rounded
 * up; -1 if bad. */
int64_t hp_slurm_parse_mem_mb(const char *s);

#endif
