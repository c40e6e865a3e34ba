/* Containers as job steps: the per-container monitor and its files.
 *
 * A container of a Slurm pod runs as `srun --jobid=J --overlap ... <runtime>
 * run --bundle B <id>` (a job step in the pod's allocation).  srun runs on
 * the daemon's node under a small monitor process that hpcri forks (and
 * detaches: setsid, re-parented to init) so that it outlives a daemon
 * restart or kill -9.  The monitor
 *   - writes `<dir>/monitor`  "MONITOR_PID SRUN_PID STARTED_NS\n" once srun runs,
 *   - turns srun's stdout/stderr into CRI log lines
 *     `RFC3339NANO stdout|stderr F|P msg` appended to the log path as they
 *     come (kubectl logs -f works while the step runs),
 *   - reopens the log on SIGUSR1 (ReopenContainerLog),
 *   - writes `<dir>/exit` "EXIT_CODE FINISHED_NS\n" (srun's exit status, or
 *     128+signal) atomically (tmp + rename) when srun ends.
 * After fork the monitor only uses async-signal-safe calls (the daemon is
 * multi-threaded): everything it needs is prepared before the fork.
 */
#ifndef HP_BACKEND_SLURM_STEP_H
#define HP_BACKEND_SLURM_STEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"

/* Format a CRI log line prefix for unix time `ns` into buf:
 * "2024-05-01T12:00:00.123456789Z stdout F " (stream "stdout"/"stderr",
 * tag 'F' full line or 'P' partial).  Async-signal-safe (no locale, no
 * libc time functions).  Returns the length, or 0 when cap is too small
 * (needs 64). */
size_t hp_slurm_log_prefix(int64_t ns, const char *stream, char tag, char *buf, size_t cap);

/* Spawn the detached monitor for srun_argv (NULL-terminated, argv[0]
 * included; run as `srun_path`).  log_path may be NULL (output discarded);
 * dir must exist.  Waits until srun has been started (or failed to start)
 * and returns 0 with *monitor_pid, or -1 with err (INTERNAL, with the exec
 * failure's errno text).  Nothing is allocated that the caller must free. */
int hp_slurm_monitor_spawn(const char *srun_path, char *const *srun_argv, const char *log_path,
                           const char *dir, pid_t *monitor_pid, hp_err *err);

/* The monitor file of a container dir: returns 0 with pids and start time,
 * -1 when absent/malformed. */
int hp_slurm_read_monitor(const char *dir, pid_t *monitor_pid, pid_t *srun_pid,
                          int64_t *started_ns);
/* The exit file: 0 with code and finish time, -1 when absent/malformed. */
int hp_slurm_read_exit(const char *dir, int32_t *code, int64_t *finished_ns);
/* Write the exit file (tmp + rename); used by the daemon for containers
 * that never got a step.  Returns 0 or -1 with err. */
int hp_slurm_write_exit(const char *dir, int32_t code, int64_t finished_ns, hp_err *err);

/* True when pid exists and is not a zombie we could reap (kill(pid, 0)). */
bool hp_slurm_pid_alive(pid_t pid);

/* Map a final Slurm job state to a container reason ("Cancelled",
 * "SlurmTimeLimit", "OOMKilled", "NodeFail", "Preempted", "Deadline",
 * "Error"); NULL for COMPLETED and non-final states.  Static strings. */
const char *hp_slurm_state_reason(const char *job_state);

/* CUDA_VISIBLE_DEVICES value from `scontrol -d show job` output: the first
 * "GRES=gpu...(IDX:a-b,c)" of the node lines, expanded to "a,...,b,c".
 * Writes into buf (caller's); returns 0, or -1 when there is none. */
int hp_slurm_gpu_idx(const char *scontrol_out, char *buf, size_t cap);

/* Device node of GPU index idx per the handler's gpu_devices value: a
 * single path with %d ("/dev/nvidia%d") is used for every index, else the
 * comma-separated list is indexed (gres.conf order).  Writes the host path
 * into host and the path inside the container into ctr (the host path when
 * it is under /dev/, else /dev/<basename>; both caller's buffers).
 * Returns 0, or -1 when the list has no entry idx or a buffer is small. */
int hp_slurm_gpu_device(const char *spec, long idx, char *host, size_t hcap, char *ctr,
                        size_t ccap);

#endif
