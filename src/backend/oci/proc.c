/* fork/execve helper: see proc.h. */
#include "backend/oci/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"

extern char **environ;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *hp_proc_find_program(const char *name, hp_err *err)
{
    if (!name || !*name) {
        hp_err_set(err, HP_FAILED_PRECONDITION, "no program name given");
        return NULL;
    }
    if (strchr(name, '/')) {
        if (access(name, X_OK) == 0)
            return strdup(name);
        hp_err_sys(err, HP_FAILED_PRECONDITION, "program %s is not executable", name);
        return NULL;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    _cleanup_free_ char *copy = strdup(path);
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char *p;
        if (asprintf(&p, "%s/%s", d, name) < 0)
            break;
        if (access(p, X_OK) == 0)
            return p;
        free(p);
    }
    hp_err_set(err, HP_FAILED_PRECONDITION, "program \"%s\" not found in PATH (%s)", name, path);
    return NULL;
}

/* environ + extra (extra wins).  The array is malloc'd, strings borrowed. */
static char **make_env(char *const *extra)
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (extra && extra[m])
        m++;
    char **env = calloc(n + m + 1, sizeof(char *));
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t klen = strcspn(environ[i], "=");
        bool over = false;
        for (size_t j = 0; j < m; j++)
            if (strncmp(extra[j], environ[i], klen + 1) == 0)
                over = true;
        if (!over)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < m; j++)
        env[k++] = extra[j];
    return env;
}

static void append(char **buf, size_t *len, size_t *cap, const char *data, size_t n, size_t max,
                   bool *trunc)
{
    if (*len + n > max) {
        *trunc = true;
        n = *len < max ? max - *len : 0;
    }
    if (n == 0)
        return;
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < *len + n + 1)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb) {
            *trunc = true;
            return;
        }
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = 0;
}

static void kill_pidfile(const char *path)
{
    if (!path)
        return;
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    int pid = 0;
    if (f && fscanf(f, "%d", &pid) == 1 && pid > 1)
        kill(pid, SIGKILL);
}

int hp_proc_run(char *const *argv, const hp_proc_opts *opts, hp_proc_result *res, hp_err *err)
{
    hp_proc_opts defaults = HP_PROC_OPTS_INIT;
    if (!opts)
        opts = &defaults;
    memset(res, 0, sizeof(*res));
    size_t max = opts->max_output ? opts->max_output : (1u << 20);
    int outp[2] = {-1, -1}, errp[2] = {-1, -1};
    _cleanup_free_ char **env = NULL;
    if ((opts->stdout_fd < 0 && pipe2(outp, O_CLOEXEC) < 0) ||
        (opts->stderr_fd < 0 && pipe2(errp, O_CLOEXEC) < 0)) {
        hp_err_sys(err, HP_INTERNAL, "pipe");
        goto fail_pipes;
    }
    env = make_env(opts->extra_env);
    if (!env) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto fail_pipes;
    }
    pid_t pid = fork();
    if (pid < 0) {
        hp_err_sys(err, HP_INTERNAL, "fork for %s", argv[0]);
        goto fail_pipes;
    }
    if (pid == 0) {
        /* child: async-signal-safe calls only */
        setpgid(0, 0);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        int devnull = open("/dev/null", O_RDWR);
        int o = opts->stdout_fd >= 0 ? opts->stdout_fd : outp[1];
        int e = opts->stderr_fd >= 0 ? opts->stderr_fd : errp[1];
        if (dup2(devnull, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(127);
        int keep = opts->keep_fd;
        if (keep >= 0 && keep <= 2)
            _exit(127);
        /* close everything above 2 except keep_fd */
        if (keep > 3)
            syscall(SYS_close_range, 3, keep - 1, 0);
        if (keep >= 0) {
            int fl = fcntl(keep, F_GETFD);
            fcntl(keep, F_SETFD, fl & ~FD_CLOEXEC);
            syscall(SYS_close_range, keep + 1, ~0U, 0);
        } else {
            syscall(SYS_close_range, 3, ~0U, 0);
        }
        if (opts->cwd && chdir(opts->cwd) < 0)
            _exit(127);
        execve(argv[0], argv, env);
        _exit(127);
    }
    if (outp[1] >= 0)
        close(outp[1]);
    if (errp[1] >= 0)
        close(errp[1]);
    size_t ocap = 0, ecap = 0;
    int64_t deadline = opts->timeout_ms > 0 ? now_ms() + opts->timeout_ms : 0;
    struct pollfd pf[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
    char buf[65536];
    while (pf[0].fd >= 0 || pf[1].fd >= 0) {
        int wait = -1;
        if (deadline) {
            int64_t left = deadline - now_ms();
            if (left <= 0) {
                res->timed_out = true;
                break;
            }
            wait = (int)left;
        }
        int r = poll(pf, 2, wait);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !pf[i].revents)
                continue;
            ssize_t n = read(pf[i].fd, buf, sizeof(buf));
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                continue;
            }
            if (i == 0)
                append(&res->out, &res->out_len, &ocap, buf, (size_t)n, max, &res->truncated);
            else
                append(&res->err, &res->err_len, &ecap, buf, (size_t)n, max, &res->truncated);
        }
    }
    int st = 0;
    if (res->timed_out) {
        kill_pidfile(opts->kill_pidfile);
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    } else if (deadline) {
        /* pipes closed (or captured elsewhere): wait for exit until the
         * deadline, blocked in poll on a pidfd of the child (our child: the
         * pid cannot be reused before we reap it) */
        _cleanup_close_ int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        for (;;) {
            pid_t w = waitpid(pid, &st, WNOHANG);
            if (w == pid)
                goto reaped;
            int64_t left = deadline - now_ms();
            if (left <= 0) {
                res->timed_out = true;
                kill_pidfile(opts->kill_pidfile);
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
                break;
            }
            if (pfd >= 0) {
                struct pollfd xp = {pfd, POLLIN, 0};
                if (poll(&xp, 1, (int)left) < 0 && errno != EINTR)
                    usleep(5000);
            } else {
                usleep(5000); /* no pidfd (kernel < 5.3, fd limit): poll the child */
            }
        }
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
reaped:
    for (int i = 0; i < 2; i++)
        if (pf[i].fd >= 0)
            close(pf[i].fd);
    res->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (!res->out)
        res->out = calloc(1, 1);
    if (!res->err)
        res->err = calloc(1, 1);
    return 0;
fail_pipes:
    for (int i = 0; i < 2; i++) {
        if (outp[i] >= 0)
            close(outp[i]);
        if (errp[i] >= 0)
            close(errp[i]);
    }
    return -1;
}

void hp_proc_result_clear(hp_proc_result *res)
{
    free(res->out);
    free(res->err);
    memset(res, 0, sizeof(*res));
}

void hp_proc_err_summary(const char *text, char *buf, size_t len)
{
    buf[0] = 0;
    if (!text)
        return;
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n > 0) {
            const char *msg = memmem(p, n, "msg=\"", 5);
            const char *lvl = memmem(p, n, "level=", 6);
            bool is_err =
                lvl && (strncmp(lvl + 6, "error", 5) == 0 || strncmp(lvl + 6, "fatal", 5) == 0);
            if (msg && is_err) {
                msg += 5;
                const char *end = p + n;
                /* the closing quote is the last '"' on the line */
                const char *q = end;
                while (q > msg && q[-1] != '"')
                    q--;
                size_t m = q > msg ? (size_t)(q - 1 - msg) : (size_t)(end - msg);
                snprintf(buf, len, "%.*s", (int)m, msg);
            } else if (!lvl || !buf[0]) {
                snprintf(buf, len, "%.*s", (int)n, p);
            }
        }
        p = nl ? nl + 1 : p + n;
    }
    /* unescape \" sequences from logrus */
    char *w = buf;
    for (char *r = buf; *r; r++) {
        if (r[0] == '\\' && (r[1] == '"' || r[1] == '\\'))
            r++;
        *w++ = *r;
    }
    *w = 0;
}
