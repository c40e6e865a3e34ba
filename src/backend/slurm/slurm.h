/* The "slurm" backend: a pod is a Slurm job, its containers run inside the
 * job's allocation (design and mapping rules: docs/slurm.md).
 */
#ifndef HP_BACKEND_SLURM_SLURM_H
#define HP_BACKEND_SLURM_SLURM_H

#include "backend/backend.h"
#include "config/config.h"

/* Create a slurm backend instance for handler h (type slurm).  Checks that
 * shared_dir exists and that sbatch, squeue and scancel are in
 * slurm_bin_dir (FAILED_PRECONDITION naming what is missing), writes the
 * pod keeper script into shared_dir and starts the batched squeue poller.
 * Returns a new instance owned by the caller (be->ops->destroy), or NULL
 * with err filled. */
hp_backend *hp_slurm_backend_new(const hp_handler_config *h, const hp_backend_env *env,
                                 hp_err *err);

/* Job id of a pod from the backend_state JSON written by sandbox_run, or
 * from the poller's cache by job name when the state has none.  Writes into
 * buf (caller's); returns 0, or -1 with NOT_FOUND. */
int hp_slurm_pod_job_id(hp_backend *be, const hp_be_pod *pod, char *buf, size_t cap, hp_err *err);

/* The instance's poller (tests: wait for generations, count polls). */
struct hp_slurm_poller *hp_slurm_backend_poller(hp_backend *be);

#endif
