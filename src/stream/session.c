/* One streaming session over SPDY: Kubernetes' remotecommand protocol
 * (Exec, Attach; channel.k8s.io v1-v4) and portforward.k8s.io.
 *
 * remotecommand: the client opens an `error` stream and one stream per
 * requested channel (`stdin`, `stdout`, `stderr`, `resize` with a tty).  Once
 * they are all there, the process starts (exec) or the monitor's attach
 * socket is joined (attach); output goes out as DATA, stdin comes in, resize
 * events ({"Width":W,"Height":H}) set the terminal size.  At the end the
 * error stream carries the result: v4 a metav1.Status JSON (exit code in a
 * NonZeroExitCode cause), older versions a text message on failure only; then
 * every stream is closed and the session says GOAWAY.
 *
 * portforward: per forwarded connection the client opens an `error` and a
 * `data` stream sharing a `requestid` and naming a `port`; the data stream is
 * spliced to a TCP connection to 127.0.0.1:port inside the pod's network
 * namespace.
 */
#include "stream/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "stream/spdy.h"
#include "util/cleanup.h"
#include "util/log.h"

#define STREAM_WAIT_MS      30000      /* the kubelet's stream creation timeout */
#define MAX_PENDING         (4u << 20) /* buffered client input before we stop reading */
#define DRAIN_AFTER_EXIT_MS 2000       /* output still read once the process exited */
#define KILL_GRACE_MS       2000
#define MAX_PAIRS           32

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *header(const hp_spdy_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

/* Has the daemon asked every session to end? */
static bool p_stop_requested(int stop_fd)
{
    struct pollfd p = {.fd = stop_fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

struct buf {
    uint8_t *p;
    size_t len;
};

static int buf_add(struct buf *b, const uint8_t *d, size_t n)
{
    uint8_t *p = realloc(b->p, b->len + n + 1);
    if (!p)
        return -1;
    memcpy(p + b->len, d, n);
    b->p = p;
    b->len += n;
    return 0;
}

static void buf_drop(struct buf *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

/* ========================================================= remotecommand */

struct rc {
    const hp_stream_req *req;
    int version; /* 1..4 */
    hp_spdy *spdy;
    uint32_t id_error, id_stdin, id_stdout, id_stderr, id_resize;
    bool stdin_fin, gone;
    struct buf in;     /* stdin not yet written */
    struct buf resize; /* partial resize JSON */
    int width, height;
    bool size_pending;
    /* the process (exec) or the attach socket */
    pid_t pid;
    int pidfd, in_fd, out_fd, err_fd, tty_fd, attach_fd;
    bool exited;
    int status; /* exit code */
    char failure[1100];
};

static void rc_on_stream(void *ud, uint32_t id, const hp_spdy_header *h, size_t n, bool fin)
{
    struct rc *r = ud;
    hp_err e = HP_ERR_INIT;
    const char *t = header(h, n, "streamtype");
    uint32_t *slot = NULL;
    if (t && strcmp(t, "error") == 0)
        slot = &r->id_error;
    else if (t && strcmp(t, "stdin") == 0 && r->req->in)
        slot = &r->id_stdin;
    else if (t && strcmp(t, "stdout") == 0 && r->req->out)
        slot = &r->id_stdout;
    else if (t && strcmp(t, "stderr") == 0 && r->req->err && !r->req->tty)
        slot = &r->id_stderr;
    else if (t && strcmp(t, "resize") == 0 && r->req->tty)
        slot = &r->id_resize;
    if (!slot || *slot) {
        hp_warn("stream %s: unexpected stream type %s", r->req->target, t ? t : "(none)");
        hp_spdy_reset(r->spdy, id, 3 /* REFUSED_STREAM */, &e);
        return;
    }
    *slot = id;
    if (hp_spdy_reply(r->spdy, id, false, &e) < 0)
        r->gone = true;
    if (fin && slot == &r->id_stdin)
        r->stdin_fin = true;
}

static void apply_size(struct rc *r)
{
    if (!r->size_pending || r->width <= 0 || r->height <= 0)
        return;
    if (r->tty_fd >= 0) {
        struct winsize ws = {.ws_row = (unsigned short)r->height,
                             .ws_col = (unsigned short)r->width};
        ioctl(r->tty_fd, TIOCSWINSZ, &ws);
        r->size_pending = false;
    } else if (r->attach_fd >= 0 && r->req->control_fifo) {
        int fd = open(r->req->control_fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            char msg[64];
            int l = snprintf(msg, sizeof msg, "1 %d %d\n", r->height, r->width);
            if (write(fd, msg, (size_t)l) != l)
                hp_debug("stream %s: resize not delivered", r->req->target);
            close(fd);
        }
        r->size_pending = false;
    }
}

/* Resize events are concatenated JSON objects; take each complete one. */
static void parse_resize(struct rc *r)
{
    while (r->resize.len > 0) {
        json_error_t je;
        json_t *o =
            json_loadb((const char *)r->resize.p, r->resize.len, JSON_DISABLE_EOF_CHECK, &je);
        if (!o) {
            if (r->resize.len > 4096) /* garbage, not a partial object */
                r->resize.len = 0;
            return;
        }
        json_t *w = json_object_get(o, "Width"), *h = json_object_get(o, "Height");
        if (json_is_integer(w) && json_is_integer(h)) {
            r->width = (int)json_integer_value(w);
            r->height = (int)json_integer_value(h);
            r->size_pending = true;
        }
        json_decref(o);
        size_t used = (size_t)je.position;
        if (used == 0 || used > r->resize.len)
            used = r->resize.len;
        buf_drop(&r->resize, used);
        while (r->resize.len && (r->resize.p[0] == ' ' || r->resize.p[0] == '\n' ||
                                 r->resize.p[0] == '\r' || r->resize.p[0] == '\t'))
            buf_drop(&r->resize, 1);
    }
    apply_size(r);
}

static void rc_on_data(void *ud, uint32_t id, const uint8_t *d, size_t n, bool fin)
{
    struct rc *r = ud;
    if (id && id == r->id_stdin) {
        if (n && buf_add(&r->in, d, n) < 0)
            r->gone = true;
        if (fin)
            r->stdin_fin = true;
    } else if (id && id == r->id_resize) {
        if (n && buf_add(&r->resize, d, n) == 0)
            parse_resize(r);
    }
}

static void rc_on_reset(void *ud, uint32_t id)
{
    struct rc *r = ud;
    if (id == r->id_error || id == r->id_stdout || id == r->id_stderr)
        r->gone = true;
    else if (id == r->id_stdin)
        r->stdin_fin = true;
}

static bool rc_ready(const struct rc *r)
{
    return r->id_error && (!r->req->in || r->id_stdin) && (!r->req->out || r->id_stdout) &&
           (!r->req->err || r->req->tty || r->id_stderr);
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Start req->argv with pipes or on a pseudo-terminal. */
static int rc_spawn(struct rc *r, hp_err *err)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1};
    int slave = -1;
    const hp_stream_req *q = r->req;
    if (q->tty) {
        r->tty_fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        char name[128];
        if (r->tty_fd < 0 || grantpt(r->tty_fd) < 0 || unlockpt(r->tty_fd) < 0 ||
            ptsname_r(r->tty_fd, name, sizeof name) != 0)
            return hp_err_sys(err, HP_INTERNAL, "cannot allocate a pseudo-terminal");
        slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
            return hp_err_sys(err, HP_INTERNAL, "open %s", name);
        /* the container's own terminal does the line discipline */
        struct termios tio;
        if (tcgetattr(slave, &tio) == 0) {
            cfmakeraw(&tio);
            tcsetattr(slave, TCSANOW, &tio);
        }
        apply_size(r);
    } else {
        if ((q->in && pipe2(in, O_CLOEXEC) < 0) || (q->out && pipe2(out, O_CLOEXEC) < 0) ||
            (q->err && pipe2(er, O_CLOEXEC) < 0))
            return hp_err_sys(err, HP_INTERNAL, "pipe");
    }
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(nul);
        errno = e;
        return hp_err_sys(err, HP_INTERNAL, "fork");
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        for (int s = 1; s < NSIG; s++)
            signal(s, SIG_DFL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (q->tty) {
            setsid();
            ioctl(slave, TIOCSCTTY, 0);
            dup2(slave, 0);
            dup2(slave, 1);
            dup2(slave, 2);
        } else {
            setpgid(0, 0);
            dup2(q->in ? in[0] : nul, 0);
            dup2(q->out ? out[1] : nul, 1);
            dup2(q->err ? er[1] : nul, 2);
        }
        execvp(q->argv[0], q->argv);
        _exit(127);
    }
    close(nul);
    r->pid = pid;
    r->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (q->tty) {
        close(slave);
        set_nonblock(r->tty_fd);
        if (q->out)
            r->out_fd = dup(r->tty_fd);
        if (q->in)
            r->in_fd = dup(r->tty_fd);
        /* tty_fd itself stays for resizes; out/in are the same terminal */
        if (r->out_fd >= 0)
            set_nonblock(r->out_fd);
    } else {
        if (q->in) {
            close(in[0]);
            r->in_fd = in[1];
            set_nonblock(r->in_fd);
        }
        if (q->out) {
            close(out[1]);
            r->out_fd = out[0];
            set_nonblock(r->out_fd);
        }
        if (q->err) {
            close(er[1]);
            r->err_fd = er[0];
            set_nonblock(r->err_fd);
        }
    }
    return 0;
}

/* Join the monitor's attach socket (conmon: SOCK_SEQPACKET, each packet
 * from it starts with the pipe it came from: 2 stdout, 3 stderr). */
static int rc_attach(struct rc *r, hp_err *err)
{
    const char *path = r->req->attach_socket;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    _cleanup_close_ int dirfd = -1;
    if (strlen(path) >= sizeof sa.sun_path) { /* reach it through its directory */
        _cleanup_free_ char *dir = strdup(path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (!slash)
            return hp_err_set(err, HP_INTERNAL, "attach socket path %s", path);
        *slash = '\0';
        dirfd = open(dir, O_PATH | O_CLOEXEC);
        if (dirfd < 0)
            return hp_err_sys(err, HP_FAILED_PRECONDITION, "open %s", dir);
        snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/%s", dirfd, slash + 1);
    } else {
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    }
    r->attach_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (r->attach_fd < 0 || connect(r->attach_fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        return hp_err_sys(err, HP_FAILED_PRECONDITION, "cannot attach to %s", path);
    set_nonblock(r->attach_fd);
    apply_size(r);
    return 0;
}

static void rc_fail(struct rc *r, const char *fmt, const char *msg)
{
    snprintf(r->failure, sizeof r->failure, fmt, msg);
}

/* Send the result on the error stream, close our side of every stream. */
static void rc_finish(struct rc *r)
{
    hp_err e = HP_ERR_INIT;
    if (r->id_error) {
        char *msg = NULL;
        if (r->version >= 4) {
            json_t *st;
            if (r->failure[0])
                st = json_pack("{s:{}, s:s, s:s}", "metadata", "status", "Failure", "message",
                               r->failure);
            else if (r->status == 0)
                st = json_pack("{s:{}, s:s}", "metadata", "status", "Success");
            else {
                char code[16], text[256];
                snprintf(code, sizeof code, "%d", r->status);
                snprintf(text, sizeof text, "command terminated with non-zero exit code: %d",
                         r->status);
                st = json_pack("{s:{}, s:s, s:s, s:s, s:{s:[{s:s, s:s}]}}", "metadata", "status",
                               "Failure", "message", text, "reason", "NonZeroExitCode", "details",
                               "causes", "reason", "ExitCode", "message", code);
            }
            msg = st ? json_dumps(st, JSON_COMPACT) : NULL;
            json_decref(st);
        } else if (r->failure[0]) {
            msg = strdup(r->failure);
        } else if (r->status != 0) {
            if (asprintf(&msg, "command terminated with non-zero exit code: %d", r->status) < 0)
                msg = NULL;
        }
        hp_spdy_send(r->spdy, r->id_error, msg, msg ? strlen(msg) : 0, true, &e);
        free(msg);
    }
    if (r->id_stdout)
        hp_spdy_send(r->spdy, r->id_stdout, NULL, 0, true, &e);
    if (r->id_stderr)
        hp_spdy_send(r->spdy, r->id_stderr, NULL, 0, true, &e);
    hp_spdy_goaway(r->spdy, &e);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Copy what fd has to stream id; close fd at EOF. attach: strip the pipe
 * byte and route by it. */
static void pump_out(struct rc *r, int *fd, uint32_t id, bool attach)
{
    uint8_t buf[32768 + 1];
    hp_err e = HP_ERR_INIT;
    for (int rounds = 0; rounds < 8; rounds++) {
        ssize_t n = read(*fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) { /* EOF, or EIO once a terminal's last writer left */
            close_fd(fd);
            return;
        }
        if (attach) {
            uint32_t to = buf[0] == 3 ? (r->id_stderr ? r->id_stderr : 0) : r->id_stdout;
            if (to && n > 1 && hp_spdy_send(r->spdy, to, buf + 1, (size_t)n - 1, false, &e) < 0)
                r->gone = true;
        } else if (id && hp_spdy_send(r->spdy, id, buf, (size_t)n, false, &e) < 0) {
            r->gone = true;
        }
        if (r->gone)
            return;
    }
}

static void reap(struct rc *r, bool block)
{
    int st;
    if (r->exited || r->pid <= 0)
        return;
    if (waitpid(r->pid, &st, block ? 0 : WNOHANG) == r->pid) {
        r->exited = true;
        r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
}

/* The client left or the daemon stops: end the process (SIGTERM to its
 * process group, SIGKILL after a grace period). */
static void stop_process(struct rc *r)
{
    if (r->pid <= 0 || r->exited)
        return;
    kill(-r->pid, SIGTERM);
    kill(r->pid, SIGTERM);
    int64_t until = mono_ms() + KILL_GRACE_MS;
    while (!r->exited && mono_ms() < until) {
        reap(r, false);
        if (!r->exited)
            usleep(20000);
    }
    if (!r->exited) {
        kill(-r->pid, SIGKILL);
        kill(r->pid, SIGKILL);
        reap(r, true);
    }
}

static int read_exit_file(const char *path, int wait_ms)
{
    int64_t until = mono_ms() + wait_ms;
    do {
        FILE *f = path ? fopen(path, "re") : NULL;
        if (f) {
            int code = -1;
            int ok = fscanf(f, "%d", &code);
            fclose(f);
            if (ok == 1)
                return code;
        }
        usleep(50000);
    } while (mono_ms() < until);
    return -1;
}

static void run_remotecommand(int fd, int stop_fd, const hp_stream_req *req, int version)
{
    struct rc r = {.req = req,
                   .version = version,
                   .pidfd = -1,
                   .in_fd = -1,
                   .out_fd = -1,
                   .err_fd = -1,
                   .tty_fd = -1,
                   .attach_fd = -1};
    hp_err e = HP_ERR_INIT;
    hp_spdy_cb cb = {
        .ud = &r, .on_stream = rc_on_stream, .on_data = rc_on_data, .on_reset = rc_on_reset};
    r.spdy = hp_spdy_new(fd, &cb, &e);
    if (!r.spdy) {
        hp_warn("stream %s: %s", req->target, e.msg);
        return;
    }
    /* 1. the client opens its streams */
    int64_t until = mono_ms() + STREAM_WAIT_MS;
    while (!rc_ready(&r) && !r.gone) {
        int left = (int)(until - mono_ms());
        if (left <= 0) {
            hp_warn("stream %s: the client did not open its streams within %d s", req->target,
                    STREAM_WAIT_MS / 1000);
            goto out;
        }
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};
        if (poll(p, 2, left) < 0 && errno != EINTR)
            goto out;
        if (p[1].revents)
            goto out;
        if (p[0].revents && hp_spdy_read(r.spdy, &e) != 0)
            goto out;
    }
    if (r.gone)
        goto out;
    /* 2. start */
    if ((req->kind == HP_STREAM_EXEC ? rc_spawn(&r, &e) : rc_attach(&r, &e)) < 0) {
        hp_warn("stream %s: %s", req->target, e.msg);
        rc_fail(&r, "%s", e.msg);
        rc_finish(&r);
        goto out;
    }
    /* 3. copy until the process is gone and its output drained */
    int64_t drain_until = 0;
    bool attach = req->kind == HP_STREAM_ATTACH;
    for (;;) {
        if (r.in_fd >= 0 && r.in.len == 0 && r.stdin_fin && !req->tty)
            close_fd(&r.in_fd); /* EOF for the process */
        bool outputs = r.out_fd >= 0 || r.err_fd >= 0 || r.attach_fd >= 0;
        if (!attach && r.exited && !outputs)
            break;
        if (attach && r.attach_fd < 0)
            break;
        if (r.gone)
            break;
        if (r.exited && drain_until == 0)
            drain_until = mono_ms() + DRAIN_AFTER_EXIT_MS;
        if (drain_until && mono_ms() >= drain_until)
            break; /* something in the container still holds the output open */
        struct pollfd p[7];
        int np = 0, i_sock = -1, i_stop, i_out = -1, i_err = -1, i_in = -1, i_pid = -1, i_att = -1;
        if (r.in.len < MAX_PENDING) {
            i_sock = np;
            p[np++] = (struct pollfd){.fd = fd, .events = POLLIN};
        }
        i_stop = np;
        p[np++] = (struct pollfd){.fd = stop_fd, .events = POLLIN};
        if (r.out_fd >= 0) {
            i_out = np;
            p[np++] = (struct pollfd){.fd = r.out_fd, .events = POLLIN};
        }
        if (r.err_fd >= 0) {
            i_err = np;
            p[np++] = (struct pollfd){.fd = r.err_fd, .events = POLLIN};
        }
        if (r.attach_fd >= 0) {
            i_att = np;
            p[np++] =
                (struct pollfd){.fd = r.attach_fd, .events = POLLIN | (r.in.len ? POLLOUT : 0)};
        }
        if (r.in_fd >= 0 && r.in.len) {
            i_in = np;
            p[np++] = (struct pollfd){.fd = r.in_fd, .events = POLLOUT};
        }
        if (r.pidfd >= 0 && !r.exited) {
            i_pid = np;
            p[np++] = (struct pollfd){.fd = r.pidfd, .events = POLLIN};
        }
        int timeout = drain_until ? (int)(drain_until - mono_ms()) : (r.pidfd < 0 ? 100 : -1);
        if (poll(p, (nfds_t)np, timeout < 0 && drain_until ? 0 : timeout) < 0 && errno != EINTR)
            break;
        if (p[i_stop].revents)
            break;
        if (i_sock >= 0 && p[i_sock].revents) {
            int rc = hp_spdy_read(r.spdy, &e);
            if (rc != 0) {
                r.gone = true;
                break;
            }
        }
        if (i_out >= 0 && p[i_out].revents)
            pump_out(&r, &r.out_fd, r.id_stdout, false);
        if (i_err >= 0 && p[i_err].revents)
            pump_out(&r, &r.err_fd, r.id_stderr, false);
        if (i_att >= 0 && (p[i_att].revents & (POLLIN | POLLHUP | POLLERR)))
            pump_out(&r, &r.attach_fd, 0, true);
        if (i_att >= 0 && r.attach_fd >= 0 && (p[i_att].revents & POLLOUT) && r.in.len) {
            size_t n = r.in.len > 8192 ? 8192 : r.in.len; /* conmon reads 8 KiB packets */
            ssize_t w = write(r.attach_fd, r.in.p, n);
            if (w > 0)
                buf_drop(&r.in, (size_t)w);
        }
        if (i_in >= 0 && (p[i_in].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(r.in_fd, r.in.p, r.in.len);
            if (w > 0)
                buf_drop(&r.in, (size_t)w);
            else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                close_fd(&r.in_fd); /* the process closed its stdin */
                r.in.len = 0;
            }
        }
        if (r.pidfd < 0 || (i_pid >= 0 && p[i_pid].revents))
            reap(&r, false);
    }
    if (r.gone) {
        stop_process(&r);
        goto out;
    }
    if (p_stop_requested(stop_fd)) {
        stop_process(&r);
        rc_fail(&r, "%s", "the runtime is shutting down");
    } else if (attach) {
        int code = read_exit_file(req->exit_file, 2000);
        if (code < 0)
            r.status = 0; /* detached from a container that still runs */
        else
            r.status = code;
    } else if (!r.exited) {
        reap(&r, true);
    }
    rc_finish(&r);
out:
    if (!r.exited && r.pid > 0)
        stop_process(&r);
    close_fd(&r.pidfd);
    close_fd(&r.in_fd);
    close_fd(&r.out_fd);
    close_fd(&r.err_fd);
    close_fd(&r.tty_fd);
    close_fd(&r.attach_fd);
    free(r.in.p);
    free(r.resize.p);
    hp_spdy_free(r.spdy);
}

/* ============================================================ portforward */

struct pair {
    bool used;
    char request[32];
    int port;
    uint32_t id_error, id_data;
    int sock; /* TCP connection into the pod, -1 until connected */
    struct buf to_pod;
    bool client_fin, pod_eof, failed, closed;
};

struct pf {
    const hp_stream_req *req;
    hp_spdy *spdy;
    struct pair pairs[MAX_PAIRS];
    bool gone;
};

static struct pair *pf_pair(struct pf *f, const char *request, bool create)
{
    for (int i = 0; i < MAX_PAIRS; i++)
        if (f->pairs[i].used && strcmp(f->pairs[i].request, request) == 0)
            return &f->pairs[i];
    if (!create)
        return NULL;
    for (int i = 0; i < MAX_PAIRS; i++)
        if (!f->pairs[i].used) {
            struct pair *p = &f->pairs[i];
            *p = (struct pair){.used = true, .sock = -1};
            snprintf(p->request, sizeof p->request, "%s", request);
            return p;
        }
    return NULL;
}

/* A TCP socket to 127.0.0.1:port created inside netns (NULL: here). */
static int connect_port(const char *netns, int port, hp_err *err)
{
    _cleanup_close_ int sock = -1;
    if (netns) {
        _cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int target = open(netns, O_RDONLY | O_CLOEXEC);
        if (self < 0 || target < 0)
            return hp_err_sys(err, HP_FAILED_PRECONDITION, "open the pod's network namespace");
        if (setns(target, CLONE_NEWNET) < 0)
            return hp_err_sys(err, HP_FAILED_PRECONDITION, "enter the pod's network namespace");
        sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int e = errno;
        if (setns(self, CLONE_NEWNET) < 0) {
            /* this thread now lives in the pod's namespace: never let it go on */
            hp_error("stream: cannot return to the daemon's network namespace: %s",
                     strerror(errno));
            abort();
        }
        errno = e;
    } else {
        sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    }
    if (sock < 0)
        return hp_err_sys(err, HP_INTERNAL, "socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(sock, (struct sockaddr *)&sa, sizeof sa) < 0)
        return hp_err_sys(err, HP_UNAVAILABLE, "failed to connect to localhost:%d in the pod",
                          port);
    set_nonblock(sock);
    return hp_steal_fd(&sock);
}

static void pf_close(struct pf *f, struct pair *p)
{
    hp_err e = HP_ERR_INIT;
    if (p->closed)
        return;
    p->closed = true;
    if (p->id_data)
        hp_spdy_send(f->spdy, p->id_data, NULL, 0, true, &e);
    if (p->id_error)
        hp_spdy_send(f->spdy, p->id_error, NULL, 0, true, &e);
    close_fd(&p->sock);
    free(p->to_pod.p);
    p->to_pod = (struct buf){0};
    p->used = false;
}

static void pf_try_connect(struct pf *f, struct pair *p)
{
    hp_err e = HP_ERR_INIT;
    if (!p->id_data || !p->id_error || p->sock >= 0 || p->failed)
        return;
    if (f->req->port > 0 && p->port != f->req->port) {
        hp_err_set(&e, HP_INVALID_ARGUMENT, "port %d was not requested (PortForward named %d)",
                   p->port, f->req->port);
    } else if (p->port <= 0 || p->port > 65535) {
        hp_err_set(&e, HP_INVALID_ARGUMENT, "invalid port %d", p->port);
    } else {
        p->sock = connect_port(f->req->netns, p->port, &e);
    }
    if (p->sock < 0) {
        hp_err e2 = HP_ERR_INIT;
        p->failed = true;
        hp_debug("stream %s: port %d: %s", f->req->target, p->port, e.msg);
        hp_spdy_send(f->spdy, p->id_error, e.msg, strlen(e.msg), false, &e2);
        pf_close(f, p);
    }
}

static void pf_on_stream(void *ud, uint32_t id, const hp_spdy_header *h, size_t n, bool fin)
{
    struct pf *f = ud;
    hp_err e = HP_ERR_INIT;
    const char *t = header(h, n, "streamtype"), *port = header(h, n, "port"),
               *request = header(h, n, "requestid");
    bool is_err = t && strcmp(t, "error") == 0, is_data = t && strcmp(t, "data") == 0;
    struct pair *p = (is_err || is_data) && port ? pf_pair(f, request ? request : "", true) : NULL;
    if (!p) {
        hp_spdy_reset(f->spdy, id, 3 /* REFUSED_STREAM */, &e);
        return;
    }
    p->port = atoi(port);
    if (hp_spdy_reply(f->spdy, id, false, &e) < 0) {
        f->gone = true;
        return;
    }
    if (is_err)
        p->id_error = id;
    else
        p->id_data = id;
    if (fin && is_data)
        p->client_fin = true;
    pf_try_connect(f, p);
}

static struct pair *pf_by_stream(struct pf *f, uint32_t id)
{
    for (int i = 0; i < MAX_PAIRS; i++)
        if (f->pairs[i].used && (f->pairs[i].id_data == id || f->pairs[i].id_error == id))
            return &f->pairs[i];
    return NULL;
}

static void pf_on_data(void *ud, uint32_t id, const uint8_t *d, size_t n, bool fin)
{
    struct pf *f = ud;
    struct pair *p = pf_by_stream(f, id);
    if (!p || id != p->id_data)
        return;
    if (n && buf_add(&p->to_pod, d, n) < 0)
        f->gone = true;
    if (fin)
        p->client_fin = true;
}

static void pf_on_reset(void *ud, uint32_t id)
{
    struct pf *f = ud;
    struct pair *p = pf_by_stream(f, id);
    if (p) {
        p->id_data = p->id_data == id ? 0 : p->id_data;
        p->id_error = p->id_error == id ? 0 : p->id_error;
        pf_close(f, p);
    }
}

static void run_portforward(int fd, int stop_fd, const hp_stream_req *req)
{
    struct pf f = {.req = req};
    hp_err e = HP_ERR_INIT;
    hp_spdy_cb cb = {
        .ud = &f, .on_stream = pf_on_stream, .on_data = pf_on_data, .on_reset = pf_on_reset};
    f.spdy = hp_spdy_new(fd, &cb, &e);
    if (!f.spdy) {
        hp_warn("stream %s: %s", req->target, e.msg);
        return;
    }
    while (!f.gone) {
        struct pollfd p[2 + MAX_PAIRS];
        struct pair *who[2 + MAX_PAIRS];
        int np = 0;
        size_t pending = 0;
        for (int i = 0; i < MAX_PAIRS; i++)
            pending += f.pairs[i].used ? f.pairs[i].to_pod.len : 0;
        p[np] = (struct pollfd){.fd = stop_fd, .events = POLLIN};
        who[np++] = NULL;
        p[np] = (struct pollfd){.fd = pending < MAX_PENDING ? fd : -1, .events = POLLIN};
        who[np++] = NULL;
        for (int i = 0; i < MAX_PAIRS; i++) {
            struct pair *q = &f.pairs[i];
            if (!q->used || q->sock < 0)
                continue;
            short ev = (q->pod_eof ? 0 : POLLIN) | (q->to_pod.len ? POLLOUT : 0);
            p[np] = (struct pollfd){.fd = q->sock, .events = ev};
            who[np++] = q;
        }
        if (poll(p, (nfds_t)np, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents)
            break;
        if (p[1].revents && hp_spdy_read(f.spdy, &e) != 0)
            break;
        for (int i = 2; i < np; i++) {
            struct pair *q = who[i];
            if (!q->used || q->sock < 0 || q->closed)
                continue;
            if (p[i].revents & POLLOUT && q->to_pod.len) {
                ssize_t w = write(q->sock, q->to_pod.p, q->to_pod.len);
                if (w > 0)
                    buf_drop(&q->to_pod, (size_t)w);
            }
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR) && !q->pod_eof) {
                uint8_t buf[32768];
                ssize_t n = read(q->sock, buf, sizeof buf);
                if (n > 0) {
                    if (hp_spdy_send(f.spdy, q->id_data, buf, (size_t)n, false, &e) < 0)
                        f.gone = true;
                } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                    q->pod_eof = true;
                }
            }
        }
        for (int i = 0; i < MAX_PAIRS; i++) {
            struct pair *q = &f.pairs[i];
            if (!q->used || q->sock < 0)
                continue;
            if (q->client_fin && q->to_pod.len == 0)
                shutdown(q->sock, SHUT_WR);
            if (q->pod_eof) /* the pod's side closed: this connection is done */
                pf_close(&f, q);
        }
    }
    for (int i = 0; i < MAX_PAIRS; i++)
        if (f.pairs[i].used) {
            close_fd(&f.pairs[i].sock);
            free(f.pairs[i].to_pod.p);
        }
    hp_spdy_goaway(f.spdy, &e);
    hp_spdy_free(f.spdy);
}

void hp_stream_session_run(int fd, int stop_fd, const hp_stream_req *req, const char *protocol)
{
    if (req->kind == HP_STREAM_PORTFORWARD) {
        run_portforward(fd, stop_fd, req);
        return;
    }
    int version = 1;
    if (strncmp(protocol, "v", 1) == 0)
        version = atoi(protocol + 1);
    run_remotecommand(fd, stop_fd, req, version);
}
