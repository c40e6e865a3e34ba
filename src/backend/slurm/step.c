/* The per-container step monitor (see step.h). */
#include "backend/slurm/step.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define LINE_MAX_BYTES (16 * 1024) /* longer lines are split into P chunks */

extern char **environ;

/* ---------- async-signal-safe formatting ---------- */

static size_t put_uint(char *p, uint64_t v, int width)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < 20);
    while (n < width)
        tmp[n++] = '0';
    for (int i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return (size_t)n;
}

size_t hp_slurm_log_prefix(int64_t ns, const char *stream, char tag, char *buf, size_t cap)
{
    if (cap < 64)
        return 0;
    if (ns < 0)
        ns = 0;
    int64_t secs = ns / 1000000000, frac = ns % 1000000000;
    int64_t days = secs / 86400, sod = secs % 86400;
    /* civil_from_days (H. Hinnant), days since 1970-01-01 */
    int64_t z = days + 719468;
    int64_t era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2)
        y++;
    char *p = buf;
    p += put_uint(p, (uint64_t)y, 4);
    *p++ = '-';
    p += put_uint(p, (uint64_t)m, 2);
    *p++ = '-';
    p += put_uint(p, (uint64_t)d, 2);
    *p++ = 'T';
    p += put_uint(p, (uint64_t)(sod / 3600), 2);
    *p++ = ':';
    p += put_uint(p, (uint64_t)(sod / 60 % 60), 2);
    *p++ = ':';
    p += put_uint(p, (uint64_t)(sod % 60), 2);
    *p++ = '.';
    p += put_uint(p, (uint64_t)frac, 9);
    *p++ = 'Z';
    *p++ = ' ';
    for (const char *s = stream; *s && p < buf + cap - 4; s++)
        *p++ = *s;
    *p++ = ' ';
    *p++ = tag;
    *p++ = ' ';
    return (size_t)(p - buf);
}

/* ---------- the monitor (runs after fork: async-signal-safe only) ---------- */

typedef struct stream_buf {
    const char *name;
    int fd;
    char data[LINE_MAX_BYTES];
    size_t len;
} stream_buf;

typedef struct mon {
    int logfd;
    const char *log_path;
} mon;

static volatile sig_atomic_t reopen_requested;

static void on_usr1(int sig)
{
    (void)sig;
    reopen_requested = 1;
}

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void write_all(int fd, const struct iovec *iov, int n)
{
    struct iovec v[3];
    for (int i = 0; i < n; i++)
        v[i] = iov[i];
    int first = 0;
    while (first < n) {
        ssize_t w = writev(fd, v + first, n - first);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        size_t left = (size_t)w;
        while (first < n && left >= v[first].iov_len)
            left -= v[first++].iov_len;
        if (first < n) {
            v[first].iov_base = (char *)v[first].iov_base + left;
            v[first].iov_len -= left;
        }
    }
}

static void emit(mon *m, const char *stream, char tag, const char *msg, size_t len)
{
    if (m->logfd < 0)
        return;
    char pre[80];
    size_t pl = hp_slurm_log_prefix(real_ns(), stream, tag, pre, sizeof pre);
    struct iovec iov[3] = {{pre, pl}, {(void *)msg, len}, {"\n", 1}};
    write_all(m->logfd, iov, 3);
}

/* Emit every complete line of s; a full buffer without newline becomes a
 * partial (P) record; at eof the rest becomes a full line. */
static void flush_lines(mon *m, stream_buf *s, int eof)
{
    size_t start = 0;
    for (size_t i = 0; i < s->len; i++)
        if (s->data[i] == '\n') {
            emit(m, s->name, 'F', s->data + start, i - start);
            start = i + 1;
        }
    if (start < s->len && (eof || (start == 0 && s->len == sizeof s->data))) {
        emit(m, s->name, eof ? 'F' : 'P', s->data + start, s->len - start);
        start = s->len;
    }
    memmove(s->data, s->data + start, s->len - start);
    s->len -= start;
}

static size_t cat(char *dst, size_t cap, const char *a, const char *b)
{
    size_t n = 0;
    for (; *a && n + 1 < cap; a++)
        dst[n++] = *a;
    for (; b && *b && n + 1 < cap; b++)
        dst[n++] = *b;
    dst[n] = '\0';
    return n;
}

/* Write "fields\n" to dir/name atomically. */
static void write_file_atomic(const char *tmp, const char *final, const char *text, size_t len)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    struct iovec iov[1] = {{(void *)text, len}};
    write_all(fd, iov, 1);
    fsync(fd);
    close(fd);
    rename(tmp, final);
}

typedef struct hs_msg {
    int ok;
    int err;
    pid_t monitor;
} hs_msg;

static void hs_send(int fd, int ok, int e)
{
    hs_msg msg = {.ok = ok, .err = e, .monitor = getpid()};
    struct iovec iov[1] = {{&msg, sizeof msg}};
    write_all(fd, iov, 1);
}

__attribute__((noreturn)) static void monitor_main(const char *srun_path, char *const *argv,
                                                   const char *log_path, const char *dir, int hs)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);

    /* fds: 0-2 = /dev/null, 3 = handshake, nothing else of the daemon's */
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(nul, 2);
    }
    if (hs != 3) {
        dup2(hs, 3);
        hs = 3;
    }
    fcntl(hs, F_SETFD, FD_CLOEXEC);
    if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
        for (int fd = 4; fd < 4096; fd++)
            close(fd);

    char mfile[4200], mtmp[4200], efile[4200], etmp[4200];
    cat(mfile, sizeof mfile, dir, "/monitor");
    cat(mtmp, sizeof mtmp, dir, "/monitor.tmp");
    cat(efile, sizeof efile, dir, "/exit");
    cat(etmp, sizeof etmp, dir, "/exit.tmp");

    mon m = {.logfd = -1, .log_path = log_path};
    if (log_path)
        m.logfd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    int op[2], ep[2], xp[2];
    if (pipe2(op, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0 || pipe2(xp, O_CLOEXEC) < 0) {
        hs_send(hs, 0, errno);
        _exit(1);
    }
    int64_t started = real_ns();
    pid_t s = fork();
    if (s < 0) {
        hs_send(hs, 0, errno);
        _exit(1);
    }
    if (s == 0) {
        dup2(op[1], 1);
        dup2(ep[1], 2);
        sa.sa_handler = SIG_DFL;
        sigaction(SIGPIPE, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        sigaction(SIGUSR1, &sa, NULL);
        execve(srun_path, argv, environ);
        int e = errno;
        struct iovec iov[1] = {{&e, sizeof e}};
        write_all(xp[1], iov, 1);
        _exit(127);
    }
    close(op[1]);
    close(ep[1]);
    close(xp[1]);
    int e = 0;
    ssize_t r;
    while ((r = read(xp[0], &e, sizeof e)) < 0 && errno == EINTR)
        ;
    close(xp[0]);
    if (r == (ssize_t)sizeof e) {
        hs_send(hs, 0, e);
        int st;
        waitpid(s, &st, 0);
        _exit(1);
    }
    /* "MONITOR SRUN STARTED_NS\n" */
    char line[96];
    size_t n = put_uint(line, (uint64_t)getpid(), 1);
    line[n++] = ' ';
    n += put_uint(line + n, (uint64_t)s, 1);
    line[n++] = ' ';
    n += put_uint(line + n, (uint64_t)started, 1);
    line[n++] = '\n';
    write_file_atomic(mtmp, mfile, line, n);
    hs_send(hs, 1, 0);
    close(hs);

    stream_buf sb[2];
    memset(sb, 0, sizeof sb);
    sb[0].name = "stdout";
    sb[0].fd = op[0];
    sb[1].name = "stderr";
    sb[1].fd = ep[0];
    int open_n = 2;
    while (open_n > 0) {
        struct pollfd pf[2] = {{.fd = sb[0].fd, .events = POLLIN},
                               {.fd = sb[1].fd, .events = POLLIN}};
        int pn = poll(pf, 2, -1);
        if (reopen_requested) {
            reopen_requested = 0;
            if (m.log_path) {
                int nfd = open(m.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
                if (nfd >= 0) {
                    if (m.logfd >= 0)
                        close(m.logfd);
                    m.logfd = nfd;
                }
            }
        }
        if (pn <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (sb[i].fd < 0 || !pf[i].revents)
                continue;
            ssize_t got = read(sb[i].fd, sb[i].data + sb[i].len, sizeof sb[i].data - sb[i].len);
            if (got < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (got <= 0) {
                flush_lines(&m, &sb[i], 1);
                close(sb[i].fd);
                sb[i].fd = -1;
                open_n--;
                continue;
            }
            sb[i].len += (size_t)got;
            flush_lines(&m, &sb[i], 0);
        }
    }
    int st = 0;
    while (waitpid(s, &st, 0) < 0 && errno == EINTR)
        ;
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    n = put_uint(line, (uint64_t)code, 1);
    line[n++] = ' ';
    n += put_uint(line + n, (uint64_t)real_ns(), 1);
    line[n++] = '\n';
    write_file_atomic(etmp, efile, line, n);
    if (m.logfd >= 0)
        close(m.logfd);
    _exit(0);
}

int hp_slurm_monitor_spawn(const char *srun_path, char *const *srun_argv, const char *log_path,
                           const char *dir, pid_t *monitor_pid, hp_err *err)
{
    int hs[2];
    if (pipe2(hs, O_CLOEXEC) < 0)
        return hp_err_sys(err, HP_INTERNAL, "pipe");
    pid_t c = fork();
    if (c < 0) {
        int e = errno;
        close(hs[0]);
        close(hs[1]);
        errno = e;
        return hp_err_sys(err, HP_INTERNAL, "fork");
    }
    if (c == 0) {
        close(hs[0]);
        setsid();
        pid_t g = fork();
        if (g == 0)
            monitor_main(srun_path, srun_argv, log_path, dir, hs[1]);
        _exit(g < 0 ? 1 : 0);
    }
    close(hs[1]);
    int st;
    while (waitpid(c, &st, 0) < 0 && errno == EINTR)
        ;
    hs_msg msg = {0};
    size_t got = 0;
    struct pollfd pf = {.fd = hs[0], .events = POLLIN};
    while (got < sizeof msg) {
        int pr = poll(&pf, 1, 30000);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        ssize_t r = read(hs[0], (char *)&msg + got, sizeof msg - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(hs[0]);
    if (got < sizeof msg)
        return hp_err_set(err, HP_INTERNAL, "the step monitor for %s did not start", srun_path);
    if (!msg.ok) {
        errno = msg.err;
        return hp_err_sys(err, HP_INTERNAL, "cannot start %s for the container's step", srun_path);
    }
    *monitor_pid = msg.monitor;
    return 0;
}

/* ---------- files ---------- */

static int read_small(const char *dir, const char *name, char *buf, size_t cap)
{
    char path[4200];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

int hp_slurm_read_monitor(const char *dir, pid_t *monitor_pid, pid_t *srun_pid, int64_t *started_ns)
{
    char buf[128];
    long long m, s, t;
    if (read_small(dir, "monitor", buf, sizeof buf) < 0 ||
        sscanf(buf, "%lld %lld %lld", &m, &s, &t) != 3 || m <= 0 || s <= 0)
        return -1;
    *monitor_pid = (pid_t)m;
    *srun_pid = (pid_t)s;
    *started_ns = (int64_t)t;
    return 0;
}

int hp_slurm_read_exit(const char *dir, int32_t *code, int64_t *finished_ns)
{
    char buf[128];
    long long c, t;
    if (read_small(dir, "exit", buf, sizeof buf) < 0 || sscanf(buf, "%lld %lld", &c, &t) != 2)
        return -1;
    *code = (int32_t)c;
    *finished_ns = (int64_t)t;
    return 0;
}

int hp_slurm_write_exit(const char *dir, int32_t code, int64_t finished_ns, hp_err *err)
{
    char tmp[4200], fin[4200], line[64];
    snprintf(tmp, sizeof tmp, "%s/exit.tmp", dir);
    snprintf(fin, sizeof fin, "%s/exit", dir);
    int n = snprintf(line, sizeof line, "%d %lld\n", (int)code, (long long)finished_ns);
    _cleanup_fclose_ FILE *f = fopen(tmp, "w");
    if (!f)
        return hp_err_sys(err, HP_INTERNAL, "cannot write %s", tmp);
    if (fwrite(line, 1, (size_t)n, f) != (size_t)n || fflush(f) != 0)
        return hp_err_sys(err, HP_INTERNAL, "cannot write %s", tmp);
    if (rename(tmp, fin) < 0)
        return hp_err_sys(err, HP_INTERNAL, "cannot rename %s", tmp);
    return 0;
}

bool hp_slurm_pid_alive(pid_t pid)
{
    if (pid <= 0)
        return false;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return false;
    /* a zombie counts as dead */
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return true;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

const char *hp_slurm_state_reason(const char *s)
{
    static const struct {
        const char *state, *reason;
    } map[] = {{"CANCELLED", "Cancelled"},     {"TIMEOUT", "SlurmTimeLimit"},
               {"OUT_OF_MEMORY", "OOMKilled"}, {"NODE_FAIL", "NodeFail"},
               {"BOOT_FAIL", "NodeFail"},      {"PREEMPTED", "Preempted"},
               {"DEADLINE", "Deadline"},       {"FAILED", "Error"},
               {"REVOKED", "Error"},           {"SPECIAL_EXIT", "Error"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(s, map[i].state) == 0)
            return map[i].reason;
    return NULL;
}

int hp_slurm_gpu_idx(const char *out, char *buf, size_t cap)
{
    if (cap == 0)
        return -1;
    buf[0] = '\0';
    for (const char *p = out; (p = strstr(p, "GRES=")) != NULL; p += 5) {
        if (p != out && p[-1] != ' ' && p[-1] != '\n')
            continue;
        const char *v = p + 5;
        const char *end = v + strcspn(v, " \n");
        if (strncmp(v, "gpu", 3) != 0)
            continue;
        const char *idx = strstr(v, "(IDX:");
        if (!idx || idx > end)
            continue;
        idx += 5;
        size_t len = 0;
        while (*idx && *idx != ')') {
            char *e1;
            long a = strtol(idx, &e1, 10);
            if (e1 == idx || a < 0)
                return -1;
            long b = a;
            if (*e1 == '-') {
                char *e2;
                b = strtol(e1 + 1, &e2, 10);
                if (e2 == e1 + 1 || b < a || b - a > 1024)
                    return -1;
                e1 = e2;
            }
            for (long k = a; k <= b; k++) {
                int w = snprintf(buf + len, cap - len, "%s%ld", len ? "," : "", k);
                if (w < 0 || (size_t)w >= cap - len)
                    return -1;
                len += (size_t)w;
            }
            if (*e1 == ',')
                e1++;
            else if (*e1 != ')')
                return -1;
            idx = e1;
        }
        return len ? 0 : -1;
    }
    return -1;
}

int hp_slurm_gpu_device(const char *spec, long idx, char *host, size_t hcap, char *ctr, size_t ccap)
{
    if (!spec || idx < 0 || hcap == 0 || ccap == 0)
        return -1;
    const char *el = spec;
    size_t len = strcspn(spec, ",");
    if (spec[len] != '\0' || !memmem(spec, len, "%d", 2)) {
        for (long i = 0; i < idx; i++) {
            el += len;
            if (*el != ',')
                return -1;
            el++;
            len = strcspn(el, ",");
        }
    }
    if (len == 0)
        return -1;
    const char *pct = memmem(el, len, "%d", 2);
    int w;
    if (pct)
        w = snprintf(host, hcap, "%.*s%ld%.*s", (int)(pct - el), el, idx,
                     (int)(len - (size_t)(pct + 2 - el)), pct + 2);
    else
        w = snprintf(host, hcap, "%.*s", (int)len, el);
    if (w < 0 || (size_t)w >= hcap)
        return -1;
    const char *base = strrchr(host, '/');
    if (strncmp(host, "/dev/", 5) == 0)
        w = snprintf(ctr, ccap, "%s", host);
    else
        w = snprintf(ctr, ccap, "/dev/%s", base ? base + 1 : host);
    return w < 0 || (size_t)w >= ccap ? -1 : 0;
}
