/* Running helper programs (runc, conmon) without a shell: fork + execve of an
 * argv array, every fd above 2 closed in the child except one the caller
 * names, stdout/stderr captured through pipes with a size bound, optional
 * timeout after which the child's process group is killed. */
#ifndef HP_BACKEND_OCI_PROC_H
#define HP_BACKEND_OCI_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"

typedef struct hp_proc_opts {
    char *const *extra_env;   /* "K=V" entries added to (overriding) the daemon's environ */
    int keep_fd;              /* an fd inherited by the child as is (-1 = none) */
    int stdout_fd;            /* >= 0: child's stdout goes there instead of being captured */
    int stderr_fd;            /* >= 0: child's stderr goes there instead of being captured */
    int64_t timeout_ms;       /* <= 0: no timeout */
    size_t max_output;        /* per stream; 0 = 1 MiB */
    const char *kill_pidfile; /* on timeout, also SIGKILL the pid written in this file */
    const char *cwd;          /* child's working directory; NULL = the daemon's */
} hp_proc_opts;

#define HP_PROC_OPTS_INIT                                                                          \
    {                                                                                              \
        NULL, -1, -1, -1, 0, 0, NULL, NULL                                                         \
    }

typedef struct hp_proc_result {
    int status;     /* exit code, or 128 + signal number */
    bool timed_out; /* the timeout fired: the process group was killed */
    char *out;      /* captured stdout, NUL-terminated, malloc'd (caller frees) */
    size_t out_len;
    char *err; /* captured stderr, NUL-terminated, malloc'd (caller frees) */
    size_t err_len;
    bool truncated; /* some output beyond max_output was discarded */
} hp_proc_result;

/* Run argv[0] (an absolute path) and wait for it.  Returns 0 with *res filled
 * (also when the program failed or timed out: look at res), or -1 with err
 * filled when it could not be started.  The caller frees res->out/res->err
 * (hp_proc_result_clear). */
int hp_proc_run(char *const *argv, const hp_proc_opts *opts, hp_proc_result *res, hp_err *err);
void hp_proc_result_clear(hp_proc_result *res);

/* The most useful line of a runtime's stderr: runc prints logrus lines
 * (time=... level=error msg="..."); this returns the msg of the last error
 * line, else the last non-empty line.  Writes into buf (always terminated). */
void hp_proc_err_summary(const char *stderr_text, char *buf, size_t len);

/* Absolute path of a program: `name` itself when it contains '/', else looked
 * up in $PATH.  Returns a malloc'd string (caller frees), or NULL with
 * FAILED_PRECONDITION naming the program. */
char *hp_proc_find_program(const char *name, hp_err *err);

#endif
