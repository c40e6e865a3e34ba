/* fork/exec of Slurm commands with captured output (see exec.h). */
#include "backend/slurm/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"

#define OUT_MAX (4u << 20)

extern char **environ;

void hp_slurm_out_free(hp_slurm_out *o)
{
    free(o->out);
    free(o->errout);
    o->out = o->errout = NULL;
    o->out_len = o->err_len = 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

/* Append what fd has; returns 1 at EOF, 0 when more may come, -1 on ENOMEM. */
static int drain(int fd, buf *b)
{
    char tmp[8192];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n < 0)
        return (errno == EINTR || errno == EAGAIN) ? 0 : 1;
    if (n == 0)
        return 1;
    if (b->len >= OUT_MAX)
        return 0; /* keep reading so that the child never blocks, drop the rest */
    size_t take = (size_t)n;
    if (b->len + take > OUT_MAX)
        take = OUT_MAX - b->len;
    if (b->len + take + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->len + take + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np)
            return -1;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, tmp, take);
    b->len += take;
    b->p[b->len] = '\0';
    return 0;
}

static char *finish(buf *b)
{
    if (!b->p)
        return strdup("");
    return b->p;
}

int hp_slurm_exec(const char *path, char *const *argv, int timeout_ms, hp_slurm_out *o, hp_err *err)
{
    memset(o, 0, sizeof *o);
    int outp[2] = {-1, -1}, errp[2] = {-1, -1};
    if (pipe2(outp, O_CLOEXEC) < 0)
        return hp_err_sys(err, HP_INTERNAL, "pipe");
    if (pipe2(errp, O_CLOEXEC) < 0) {
        hp_err_sys(err, HP_INTERNAL, "pipe");
        close(outp[0]);
        close(outp[1]);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, path, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(outp[1]);
    close(errp[1]);
    if (rc != 0) {
        close(outp[0]);
        close(errp[0]);
        errno = rc;
        return hp_err_sys(err, rc == ENOENT ? HP_NOT_FOUND : HP_INTERNAL, "cannot run %s", path);
    }
    buf bo = {0}, be = {0};
    int open_n = 2;
    bool oom = false, timed_out = false;
    int64_t deadline = now_ms() + timeout_ms;
    struct pollfd pf[2] = {{.fd = outp[0], .events = POLLIN}, {.fd = errp[0], .events = POLLIN}};
    while (open_n > 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        int n = poll(pf, 2, (int)left);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2 && n > 0; i++) {
            if (pf[i].fd < 0 || !pf[i].revents)
                continue;
            int r = drain(pf[i].fd, i == 0 ? &bo : &be);
            if (r < 0)
                oom = true;
            if (r != 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_n--;
            }
        }
        if (oom)
            break;
    }
    for (int i = 0; i < 2; i++)
        if (pf[i].fd >= 0)
            close(pf[i].fd);
    if (timed_out || oom)
        kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (timed_out || oom) {
        free(bo.p);
        free(be.p);
        if (oom)
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory reading %s", path);
        return hp_err_set(err, HP_DEADLINE_EXCEEDED, "%s did not finish within %d ms", path,
                          timeout_ms);
    }
    o->out_len = bo.len;
    o->err_len = be.len;
    o->out = finish(&bo);
    o->errout = finish(&be);
    if (!o->out || !o->errout) {
        hp_slurm_out_free(o);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    o->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 0;
}

void hp_slurm_errtext(const char *errout, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return;
    buf[0] = '\0';
    const char *p = errout ? errout : "";
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        const char *line = p;
        p = eol ? eol + 1 : p + ll;
        /* "sbatch: error: X" -> "X" */
        const char *e = memmem(line, ll, ": error: ", 9);
        if (e) {
            ll -= (size_t)(e + 9 - line);
            line = e + 9;
        }
        while (ll && (line[ll - 1] == ' ' || line[ll - 1] == '\r'))
            ll--;
        if (ll == 0)
            continue;
        if (len && len + 2 < cap) {
            memcpy(buf + len, "; ", 2);
            len += 2;
        }
        size_t take = ll < cap - 1 - len ? ll : cap - 1 - len;
        memcpy(buf + len, line, take);
        len += take;
        buf[len] = '\0';
        if (len + 1 >= cap)
            break;
    }
}
