/* hpcri-step: runs inside a container's Slurm job step, on the compute node.
 *
 *   hpcri-step --stats FILE [--interval-ms N] [--cgroup NAME] -- PROG ARGS...
 *
 * Starts PROG (the OCI runtime: `runc run --bundle B ID`) as its child with
 * the step's stdin/stdout/stderr, and every N ms (default 2000, first
 * sample after 200 ms) writes the container's resource usage to FILE
 * (FILE.tmp + rename, format in src/backend/slurm/sample.h): from cgroup
 * NAME below the helper's own cgroup when that exists, else from the
 * process tree below the helper.  Exits with PROG's exit status; when PROG
 * dies from a signal, the helper re-raises it on itself so that srun
 * reports the same thing as without the helper.
 *
 * Signals: Slurm signals every process of the step (scancel --signal,
 * time limit, srun's forwarding), so the helper does not forward them to
 * PROG (which would get them twice); it ignores them while PROG runs.
 *
 * Static binary, libc only; no allocation it has to free beyond the
 * sampler's own.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/slurm/sample.h"

static void noop(int sig)
{
    (void)sig;
}

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void write_stats(const char *file, const char *cgroup)
{
    hp_step_sample s;
    memset(&s, 0, sizeof s);
    s.ts_ns = real_ns();
    char self[8192];
    int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, self, sizeof self - 1) : -1;
    if (fd >= 0)
        close(fd);
    self[n > 0 ? n : 0] = '\0';
    pid_t init = hp_step_container_pid("/proc", getpid());
    if (!cgroup || !*cgroup || hp_step_sample_cgroup(self, "/sys/fs/cgroup", cgroup, &s) < 0) {
        /* the container's tree without the runtime's own process, else
         * everything below the helper */
        if (init <= 0 || hp_step_sample_proc("/proc", init, true, &s) < 0)
            hp_step_sample_proc("/proc", getpid(), false, &s);
    }
    hp_step_sample_writable("/proc", init, &s);
    char line[512];
    size_t len = hp_step_sample_format(&s, line, sizeof line);
    char tmp[4200];
    if (!len || (size_t)snprintf(tmp, sizeof tmp, "%s.tmp", file) >= sizeof tmp)
        return;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    bool ok = write(fd, line, len) == (ssize_t)len;
    ok = close(fd) == 0 && ok;
    if (ok)
        rename(tmp, file);
    else
        unlink(tmp);
}

static void usage(void)
{
    fprintf(stderr, "usage: hpcri-step --stats FILE [--interval-ms N] [--cgroup NAME] -- "
                    "PROG ARGS...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *stats = NULL, *cgroup = NULL;
    long interval = 2000;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--stats") == 0)
            stats = argv[++i];
        else if (strcmp(argv[i], "--cgroup") == 0)
            cgroup = argv[++i];
        else if (strcmp(argv[i], "--interval-ms") == 0) {
            char *end;
            interval = strtol(argv[++i], &end, 10);
            if (*end || interval < 100 || interval > 3600000)
                usage();
        } else
            usage();
    }
    if (i >= argc || !stats)
        usage();

    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    pid_t c = fork();
    if (c < 0) {
        perror("hpcri-step: fork");
        return 127;
    }
    if (c == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[i], argv + i);
        fprintf(stderr, "hpcri-step: cannot run %s: %s\n", argv[i], strerror(errno));
        _exit(127);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = noop;
    static const int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM};
    for (size_t k = 0; k < sizeof fwd / sizeof fwd[0]; k++)
        sigaction(fwd[k], &sa, NULL);

    long wait_ms = interval < 200 ? interval : 200;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(c, &st, WNOHANG);
        if (r == c)
            break;
        if (r < 0 && errno != EINTR)
            return 127;
        struct timespec ts = {.tv_sec = wait_ms / 1000, .tv_nsec = (wait_ms % 1000) * 1000000};
        int sr = sigtimedwait(&chld, NULL, &ts);
        if (sr == SIGCHLD)
            continue;
        if (sr < 0 && errno == EINTR)
            continue;
        write_stats(stats, cgroup);
        wait_ms = interval;
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    int sig = WTERMSIG(st);
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, NULL);
    sigprocmask(SIG_UNBLOCK, &chld, NULL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
    raise(sig);
    return 128 + sig;
}
