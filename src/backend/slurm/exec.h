/* Running Slurm's commands: fork/exec with an argv, never a shell.
 *
 * Every value reaches the command as its own argv element; output is
 * captured through pipes, bounded in size, and the child is killed when it
 * outlives its timeout.
 */
#ifndef HP_BACKEND_SLURM_EXEC_H
#define HP_BACKEND_SLURM_EXEC_H

#include <stddef.h>

#include "util/err.h"

/* Outcome of one command. */
typedef struct hp_slurm_out {
    char *out; /* malloc'd, NUL-terminated stdout (owned by the struct) */
    size_t out_len;
    char *errout; /* malloc'd, NUL-terminated stderr (owned by the struct) */
    size_t err_len;
    int status; /* exit code, or 128+signal when killed */
} hp_slurm_out;

/* Free the buffers of `o` (not o itself). */
void hp_slurm_out_free(hp_slurm_out *o);

/* Run `path` with argv (NULL-terminated, argv[0] included), stdin from
 * /dev/null, for at most timeout_ms (then SIGKILL, DEADLINE_EXCEEDED).  At
 * most 4 MiB of each output stream is kept.  Fills *o (the caller frees it
 * with hp_slurm_out_free) whatever the exit code; returns 0, or -1 with err
 * when the program could not be run at all (NOT_FOUND / INTERNAL) or timed
 * out (o is then empty). */
int hp_slurm_exec(const char *path, char *const *argv, int timeout_ms, hp_slurm_out *o,
                  hp_err *err);

/* Slurm's error text from a command's stderr: lines joined by "; ", with
 * the "prog: error: " prefixes removed, at most `cap` bytes.  Writes into
 * buf (caller's). */
void hp_slurm_errtext(const char *errout, char *buf, size_t cap);

#endif
