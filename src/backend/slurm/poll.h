/* The batched job-state poller of the Slurm backend.
 *
 * One `squeue` call per interval answers for every job of the user whose
 * name starts with the handler's job-name prefix (filtered here, in C): the
 * cost per interval is one command whatever the number of pods.  Lookups
 * (any thread) read the cached snapshot under a mutex and never run a
 * command.  A job the backend tracks that disappears from squeue (after
 * MinJobAge) is resolved once, through `sacct`, then `sacct -c`
 * (jobcomp/filetxt), then `scontrol show job`, and the answer is kept.
 */
#ifndef HP_BACKEND_SLURM_POLL_H
#define HP_BACKEND_SLURM_POLL_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

typedef struct hp_slurm_job {
    char id[24];
    char name[160];
    char state[24];     /* Slurm's state name: PENDING, RUNNING, COMPLETED, TIMEOUT... */
    char reason[128];   /* pending reason ("Resources", "Priority"...), "None" otherwise */
    char nodes[256];    /* node list, "" while pending */
    int64_t start_time; /* unix s, 0 unknown */
    int64_t end_time;   /* unix s, 0 unknown (expected end while running) */
    char exit_code[16]; /* "N:S" when known from sacct/scontrol, else "" */
    bool resolved;      /* came from the one-time resolution after vanishing */
} hp_slurm_job;

typedef struct hp_slurm_poller hp_slurm_poller;

typedef struct hp_slurm_poller_cfg {
    const char *bin_dir; /* where squeue, sacct, scontrol live */
    const char *user;    /* squeue -u */
    const char *prefix;  /* job-name prefix of this handler's jobs */
    int interval_ms;
} hp_slurm_poller_cfg;

/* New poller (strings copied); no thread yet.  Returns an instance the
 * caller frees with hp_slurm_poller_free, or NULL with err. */
hp_slurm_poller *hp_slurm_poller_new(const hp_slurm_poller_cfg *cfg, hp_err *err);
/* Start the background thread: one poll per interval (fixed rate). */
int hp_slurm_poller_start(hp_slurm_poller *p, hp_err *err);
/* Stop the thread (if any) and free everything.  NULL is a no-op. */
void hp_slurm_poller_free(hp_slurm_poller *p);

/* One poll now, on the calling thread (tests; the thread calls the same).
 * Returns 0, or -1 with err when squeue failed (the previous snapshot is
 * kept). */
int hp_slurm_poller_poll_once(hp_slurm_poller *p, hp_err *err);

/* Tell the poller that job `id` (named `name`) is ours: if it vanishes from
 * squeue it is resolved once.  Until a poll started after this call has
 * seen it, lookups answer 1 ("submitted, not seen yet"). */
void hp_slurm_poller_track(hp_slurm_poller *p, const char *id, const char *name);
/* Forget a job (pod removed). */
void hp_slurm_poller_untrack(hp_slurm_poller *p, const char *id);

/* Cached state of job `id`: 0 with *out filled; 1 when tracked but not yet
 * seen by a poll; -1 when unknown. Never runs a command. */
int hp_slurm_poller_get(hp_slurm_poller *p, const char *id, hp_slurm_job *out);
/* Cached job by exact name (recovery when the job id was lost): the newest
 * job id with that name.  0 found, -1 not. */
int hp_slurm_poller_find_name(hp_slurm_poller *p, const char *name, hp_slurm_job *out);

/* Number of completed polls; wait until it exceeds `after` or timeout_ms
 * passed; returns the current number. */
uint64_t hp_slurm_poller_generation(hp_slurm_poller *p);
uint64_t hp_slurm_poller_wait(hp_slurm_poller *p, uint64_t after, int timeout_ms);
/* Age in ms of the snapshot (time since the last successful poll), -1 if none. */
int64_t hp_slurm_poller_age_ms(hp_slurm_poller *p);

/* CLOCK_REALTIME (ns) at which the newest successful poll started, 0 if
 * none: a state seen by that poll is at least that recent. */
int64_t hp_slurm_poller_last_start_ns(hp_slurm_poller *p);
/* The configured interval. */
int hp_slurm_poller_interval_ms(const hp_slurm_poller *p);

/* Parse one line of `squeue -h -o '%i|%T|%r|%N|%S|%e|%j'` (the name last,
 * since only it may contain '|').  Returns 0 with *out filled when the job
 * name starts with prefix, 1 when it does not, -1 when the line is
 * malformed. Pure. */
int hp_slurm_parse_squeue_line(const char *line, const char *prefix, hp_slurm_job *out);

/* Parse "YYYY-MM-DDTHH:MM:SS" (local time) to unix seconds; 0 for "N/A",
 * "Unknown", "None" or garbage. */
int64_t hp_slurm_parse_time(const char *s);

/* True for the states a job never leaves. */
bool hp_slurm_state_final(const char *state);

#endif
