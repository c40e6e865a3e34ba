/* Internals shared by slurm.c (pods) and containers.c (containers as job
 * steps).  Not for use outside src/backend/slurm. */
#ifndef HP_BACKEND_SLURM_SLURM_INT_H
#define HP_BACKEND_SLURM_SLURM_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "backend/backend.h"
#include "backend/slurm/poll.h"

/* A container the backend watches: started (or asked to start) and not
 * removed.  Strings owned by the entry. */
typedef enum { CE_PENDING, CE_LAUNCHING, CE_LAUNCHED, CE_DONE } ce_state;

typedef struct ctr_entry {
    char *id, *pod_id, *dir;
    char job_id[24];
    ce_state state;
    bool reported; /* exit passed to host.on_container_exit */
    struct ctr_entry *next;
} ctr_entry;

typedef struct slurm_be {
    hp_backend base;
    char *shared_dir, *pods_dir, *script_path;
    char *sbatch, *scancel, *srun, *squeue, *scontrol;
    char *runtime; /* runtime_path on the compute nodes (crun or runc) */
    bool runtime_crun;
    uid_t uid;
    gid_t gid;
    char *prefix, *user;
    char *partition, *account, *qos, *time_limit, *mpi; /* handler defaults, NULL = unset */
    hp_slurm_poller *poller;
    char *step_helper;     /* hpcri-step on the compute nodes, NULL = none (no stats) */
    int stats_interval_ms; /* the helper's sampling interval */
    char *gpu_devices;     /* handler gpu_devices ("/dev/nvidia%d" or a list), NULL = unset */

    /* containers (containers.c) */
    pthread_mutex_t mu;
    pthread_cond_t cond; /* entry state changes */
    ctr_entry *ctrs;
    bool stop, ctrs_inited;
    bool thread_running;
    pthread_t thread; /* launcher: starts queued steps, reports exits */
} slurm_be;

static inline slurm_be *sbe(hp_backend *be)
{
    return (slurm_be *)be;
}

/* <pods_dir>/<pod id> into buf; INVALID_ARGUMENT for a bad id. */
int hp_slurm_pod_dir(slurm_be *b, const char *pod_id, char *buf, size_t cap, hp_err *err);

/* Container ops (containers.c). */
int hp_slurm_ctr_create(hp_backend *be, hp_be_container *c, hp_err *err);
int hp_slurm_ctr_start(hp_backend *be, hp_be_container *c, hp_err *err);
int hp_slurm_ctr_stop(hp_backend *be, hp_be_container *c, int64_t timeout_s, hp_err *err);
int hp_slurm_ctr_remove(hp_backend *be, hp_be_container *c, hp_err *err);
int hp_slurm_ctr_status(hp_backend *be, hp_be_container *c, hp_be_status *st, hp_err *err);
int hp_slurm_ctr_stats(hp_backend *be, hp_be_container *c, hp_be_stats *out, hp_err *err);
int hp_slurm_ctr_exec_command(hp_backend *be, hp_be_container *c, char *const *argv, size_t argc,
                              bool tty, char ***out, hp_err *err);
int hp_slurm_ctr_exec_sync(hp_backend *be, hp_be_container *c, char *const *argv, size_t argc,
                           int64_t timeout_s, hp_be_exec_result *res, hp_err *err);
int hp_slurm_ctr_reopen_log(hp_backend *be, hp_be_container *c, hp_err *err);

/* Start / stop the launcher thread and free the entries. */
int hp_slurm_ctrs_init(slurm_be *b, hp_err *err);
void hp_slurm_ctrs_fini(slurm_be *b);

#endif
