/* The oci backend: see oci.h and docs/oci-backend.md.
 *
 * Layout (R = <env root>/oci, X = <env run_dir>/oci):
 *   R/pods/<pod>/{hostname,hosts,resolv.conf,shm/}    per-pod files
 *   R/pods/<pod>/pause/{config.json,rootfs/,pidfile}    the pause container's bundle
 *   R/containers/<id>/{config.json,rootfs/,upper/,work/,pidfile,pidstart,conmon.pid,ctl,
 *                      pod,stopsignal,started,cgroup}    a container's bundle
 *   X/exits/<id>      conmon's exit files (the exit code as text)
 *   X/sock/<id>       conmon's attach socket directory links
 * The runc id of a pod's pause container is "pod-<pod>".
 */
#include "backend/oci/oci.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "backend/oci/proc.h"
#include "backend/oci/spec.h"
#include "util/cleanup.h"
#include "util/log.h"

#define EXEC_MAX_OUTPUT    (16u << 20)
#define RUNTIME_TIMEOUT_MS 120000
#define POD_PREFIX         "pod-"

typedef struct oci_be {
    hp_backend base;
    char *runtime;      /* absolute path */
    char *conmon;       /* absolute path */
    char *unshare, *rm; /* absolute paths (rootless removal), NULL = not found */
    char *runtime_root; /* NULL = runtime default */
    char *root;         /* <root>/oci */
    char *run;          /* <run_dir>/oci */
    char *exits;
    char *socks;
    char *pause_path;
    char *default_seccomp;
    bool rootless, cgroups, host_network;
    bool userns_overlay; /* the kernel mounts overlayfs in a user namespace (>= 5.11) */
    uid_t uid;
    gid_t gid;
    uint32_t subuid_start, subuid_len, subgid_start, subgid_len;
    int min_oom;
    int inotify_fd;
    /* the janitor: removes directories moved into `trash` off the calls' path */
    char *trash;
    pthread_t janitor;
    bool janitor_started, janitor_stop;
    unsigned janitor_work; /* bumped for every directory discarded */
    pthread_mutex_t janitor_lock;
    pthread_cond_t janitor_cond;
} oci_be;

/* ---------- small helpers ---------- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int valid_id(const char *id, const char *what, hp_err *err)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 128 || strcmp(id, ".") == 0 || strcmp(id, "..") == 0 ||
        strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != n)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "%s id \"%s\" is invalid: 1-128 characters of [A-Za-z0-9_.-]", what,
                          id ? id : "");
    return 0;
}

static int mkdir_p(const char *path, mode_t mode, hp_err *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return hp_err_sys(err, HP_INTERNAL, "mkdir %s", buf);
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return hp_err_sys(err, HP_INTERNAL, "mkdir %s", buf);
    return 0;
}

static int write_file(const char *path, const char *data, size_t len, hp_err *err)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return hp_err_sys(err, HP_INTERNAL, "create %s", path);
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return hp_err_sys(err, HP_INTERNAL, "write %s", path);
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Whole small file, NUL-terminated, malloc'd (caller frees); NULL if absent. */
static char *read_small(const char *path)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = malloc(65537);
    if (!buf)
        return NULL;
    size_t len = 0;
    ssize_t n;
    while (len < 65536 && (n = read(fd, buf + len, 65536 - len)) > 0)
        len += (size_t)n;
    buf[len] = 0;
    return buf;
}

static int64_t read_int_file(const char *path, int64_t dflt)
{
    _cleanup_free_ char *s = read_small(path);
    if (!s || !*s)
        return dflt;
    return strtoll(s, NULL, 10);
}

/* rm -rf that never crosses into another file system (a mount left behind). */
static int rm_rf_at(int dfd, const char *name, dev_t dev)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
    if (st.st_dev != dev) {
        errno = EBUSY;
        return -1;
    }
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (rm_rf_at(fd, de->d_name, dev) < 0)
            rc = -1;
    }
    closedir(d);
    if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = -1;
    return rc;
}

static int rm_rf(const char *path, hp_err *err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : hp_err_sys(err, HP_INTERNAL, "stat %s", path);
    if (rm_rf_at(AT_FDCWD, path, st.st_dev) < 0)
        return hp_err_sys(err, HP_INTERNAL, "remove %s", path);
    return 0;
}

static bool pid_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static char *ctr_dir(oci_be *be, const char *id)
{
    char *p;
    return asprintf(&p, "%s/containers/%s", be->root, id) < 0 ? NULL : p;
}

static char *pod_dir(oci_be *be, const char *id)
{
    char *p;
    return asprintf(&p, "%s/pods/%s", be->root, id) < 0 ? NULL : p;
}

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p;
    int r = vasprintf(&p, fmt, ap);
    va_end(ap);
    return r < 0 ? NULL : p;
}

/* ---------- running the runtime ---------- */

/* argv for `<runtime> [--root R] <args...>`; malloc'd array, strings borrowed. */
static int runtime_run(oci_be *be, const char *const *args, int64_t timeout_ms, hp_proc_result *res,
                       hp_err *err)
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = be->runtime;
    if (be->runtime_root) {
        argv[n++] = "--root";
        argv[n++] = be->runtime_root;
    }
    for (size_t i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    hp_proc_opts po = HP_PROC_OPTS_INIT;
    po.timeout_ms = timeout_ms;
    return hp_proc_run((char *const *)argv, &po, res, err);
}

/* Run the runtime; failure of the command is an error with its message. */
static int runtime_ok(oci_be *be, const char *const *args, const char *what, hp_err *err)
{
    hp_proc_result r;
    if (runtime_run(be, args, RUNTIME_TIMEOUT_MS, &r, err) < 0)
        return -1;
    int rc = 0;
    if (r.timed_out || r.status != 0) {
        char msg[600];
        hp_proc_err_summary(r.err, msg, sizeof(msg));
        rc = hp_err_set(err, r.timed_out ? HP_DEADLINE_EXCEEDED : HP_INTERNAL, "%s %s: %s",
                        be->runtime, what, r.timed_out ? "timed out" : msg);
    }
    hp_proc_result_clear(&r);
    return rc;
}

/* Start conmon for the bundle; conmon runs `runtime create` and reports the
 * container pid (or the runtime's error) on the sync pipe. */
static int conmon_create(oci_be *be, const char *id, const char *bundle, const char *log_path,
                         bool tty, bool stdin_open, hp_err *err)
{
    _cleanup_free_ char *pidfile = pathf("%s/pidfile", bundle);
    _cleanup_free_ char *cpidfile = pathf("%s/conmon.pid", bundle);
    _cleanup_free_ char *errfile = pathf("%s/conmon.err", bundle);
    _cleanup_free_ char *logarg = pathf("k8s-file:%s", log_path);
    _cleanup_free_ char *rootarg = be->runtime_root ? pathf("--root=%s", be->runtime_root) : NULL;
    if (!pidfile || !cpidfile || !errfile || !logarg)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    const char *argv[48];
    size_t n = 0;
    argv[n++] = be->conmon;
    argv[n++] = "--api-version";
    argv[n++] = "1";
    argv[n++] = "-c";
    argv[n++] = id;
    argv[n++] = "-u";
    argv[n++] = id;
    argv[n++] = "-r";
    argv[n++] = be->runtime;
    argv[n++] = "-b";
    argv[n++] = bundle;
    argv[n++] = "-p";
    argv[n++] = pidfile;
    argv[n++] = "-n";
    argv[n++] = id;
    argv[n++] = "--exit-dir";
    argv[n++] = be->exits;
    /* conmon writes its files (e.g. "oom") here, not in the daemon's cwd */
    argv[n++] = "--persist-dir";
    argv[n++] = bundle;
    argv[n++] = "--socket-dir-path";
    argv[n++] = be->socks;
    argv[n++] = "-l";
    argv[n++] = logarg;
    argv[n++] = "--conmon-pidfile";
    argv[n++] = cpidfile;
    if (rootarg) {
        argv[n++] = "--runtime-arg";
        argv[n++] = rootarg;
    }
    if (tty)
        argv[n++] = "-t";
    if (stdin_open)
        argv[n++] = "-i";
    argv[n] = NULL;

    int sp[2];
    if (pipe2(sp, O_CLOEXEC) < 0)
        return hp_err_sys(err, HP_INTERNAL, "pipe");
    _cleanup_close_ int rd = sp[0];
    _cleanup_close_ int wr = sp[1];
    _cleanup_close_ int efd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    _cleanup_close_ int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (efd < 0 || nul < 0)
        return hp_err_sys(err, HP_INTERNAL, "open %s", errfile);
    char envsync[64];
    snprintf(envsync, sizeof(envsync), "_OCI_SYNCPIPE=%d", wr);
    char *extra[] = {envsync, NULL};
    hp_proc_opts po = HP_PROC_OPTS_INIT;
    po.extra_env = extra;
    po.keep_fd = wr;
    po.stdout_fd = nul;
    po.stderr_fd = efd;
    po.timeout_ms = RUNTIME_TIMEOUT_MS;
    po.cwd = bundle; /* conmon drops files (e.g. "oom") in its working directory */
    hp_proc_result r;
    if (hp_proc_run((char *const *)argv, &po, &r, err) < 0)
        return -1;
    int status = r.status;
    hp_proc_result_clear(&r);
    close(hp_steal_fd(&wr));

    /* one JSON line: {"data": pid} or {"data": -1, "message": "..."} */
    char buf[8192];
    size_t len = 0;
    int64_t deadline = mono_ms() + RUNTIME_TIMEOUT_MS;
    while (len < sizeof(buf) - 1 && !memchr(buf, '\n', len)) {
        struct pollfd pf = {rd, POLLIN, 0};
        int64_t left = deadline - mono_ms();
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            break;
        ssize_t k = read(rd, buf + len, sizeof(buf) - 1 - len);
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    buf[len] = 0;
    json_t *j = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
    json_int_t pid = j ? json_integer_value(json_object_get(j, "data")) : -1;
    if (pid <= 0) {
        char msg[700] = "";
        const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
        _cleanup_free_ char *etext = NULL;
        if (!m || !*m)
            m = etext = read_small(errfile);
        hp_proc_err_summary(m ? m : "", msg, sizeof(msg));
        json_decref(j);
        return hp_err_set(err, HP_FAILED_PRECONDITION,
                          "creating container %s failed (conmon exit %d): %s", id, status,
                          msg[0] ? msg : "no error message from conmon/runtime");
    }
    json_decref(j);
    return 0;
}

static pid_t read_pid(const char *bundle)
{
    _cleanup_free_ char *p = pathf("%s/pidfile", bundle);
    return p ? (pid_t)read_int_file(p, 0) : 0;
}

/* Start time of a process (field 22 of /proc/PID/stat, clock ticks since
 * boot), or -1 when it is gone; *state (if given) gets field 3 (R, S, Z...). */
static int64_t proc_stat_start(pid_t pid, char *state)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    _cleanup_free_ char *s = read_small(p);
    const char *rp = s ? strrchr(s, ')') : NULL;
    unsigned long long start = 0;
    char st = 0;
    if (!rp || sscanf(rp + 2,
                      "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
                      "%*d %llu",
                      &st, &start) != 2)
        return -1;
    if (state)
        *state = st;
    return (int64_t)start;
}

static int64_t proc_start_time(pid_t pid)
{
    return proc_stat_start(pid, NULL);
}

/* After a successful create: remember the start time of the container's init
 * (bundle/pidstart) so that a later stop can tell the process from another
 * one that got the same pid. */
static void record_pid_start(const char *bundle)
{
    pid_t pid = read_pid(bundle);
    int64_t start = pid > 0 ? proc_start_time(pid) : -1;
    _cleanup_free_ char *p = pathf("%s/pidstart", bundle);
    if (start < 0 || !p)
        return;
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%" PRId64, start);
    hp_err e = HP_ERR_INIT;
    if (write_file(p, buf, (size_t)n, &e) < 0)
        hp_debug("%s", e.msg);
}

/* A pidfd (owned by the caller) of the container's init `pid`, verified
 * against the start time recorded at create: the pidfd is opened first, so
 * a matching start time read afterwards proves it refers to the container.
 * -1 when the process is gone, was replaced, or nothing was recorded. */
static int open_init_pidfd(const char *bundle, pid_t pid)
{
    _cleanup_free_ char *p = pathf("%s/pidstart", bundle);
    int64_t want = p ? read_int_file(p, -1) : -1;
    if (want < 0 || pid <= 0)
        return -1;
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return -1;
    if (proc_start_time(pid) != want) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool exit_file_exists(oci_be *be, const char *rid)
{
    _cleanup_free_ char *p = pathf("%s/%s", be->exits, rid);
    return p && access(p, F_OK) == 0;
}

/* Wait until conmon wrote the exit file, or the process is gone (conmon
 * writes the file right after reaping; without it for a second, give up
 * waiting).  Blocks in poll on an inotify watch of the exit directory and a
 * pidfd of the process; falls back to 5 ms polling if either cannot be had. */
static bool wait_exit(oci_be *be, const char *rid, pid_t pid, int64_t timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    int64_t gone_since = 0;
    _cleanup_close_ int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ifd >= 0 && inotify_add_watch(ifd, be->exits, IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
        close(ifd);
        ifd = -1;
    }
    _cleanup_close_ int pfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    bool pfd_ok = pfd >= 0 || (pid > 0 && errno == ESRCH);
    for (;;) {
        if (exit_file_exists(be, rid))
            return true;
        int64_t now = mono_ms();
        bool gone;
        if (pfd >= 0) {
            struct pollfd xp = {pfd, POLLIN, 0};
            gone = poll(&xp, 1, 0) > 0;
        } else {
            gone = !pid_alive(pid);
        }
        if (gone) {
            if (!gone_since)
                gone_since = now;
            else if (now - gone_since > 1000)
                return true;
        }
        if (now >= deadline)
            return false;
        int64_t until = gone ? gone_since + 1001 : deadline;
        if (until > deadline)
            until = deadline;
        int wait = (int)(until - now);
        if (ifd < 0 || (!gone && !pfd_ok)) {
            if (wait > 5)
                wait = 5;
        }
        struct pollfd pf[2] = {{ifd, POLLIN, 0}, {gone ? -1 : pfd, POLLIN, 0}};
        if (poll(pf, 2, wait) < 0 && errno != EINTR)
            usleep(5000);
        if (ifd >= 0 && (pf[0].revents & POLLIN)) {
            char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
            while (read(ifd, buf, sizeof(buf)) > 0)
                ;
        }
    }
}

/* Send sig to the container's init: through a verified pidfd when one is
 * given (no runtime process), else with `runtime kill`. */
static int signal_init(oci_be *be, const char *rid, int pidfd, int sig, hp_err *err)
{
    if (pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0)
        return 0;
    char sigbuf[16];
    snprintf(sigbuf, sizeof(sigbuf), "%d", sig);
    return runtime_ok(be, (const char *[]){"kill", rid, sigbuf, NULL}, "kill", err);
}

/* Signal, wait, SIGKILL, wait.  Idempotent. */
static int stop_rid(oci_be *be, const char *rid, const char *bundle, int sig, int64_t timeout_s,
                    hp_err *err)
{
    if (exit_file_exists(be, rid))
        return 0;
    pid_t pid = read_pid(bundle);
    if (!pid_alive(pid))
        return 0;
    _cleanup_close_ int pidfd = open_init_pidfd(bundle, pid);
    if (sig > 0 && sig != SIGKILL && timeout_s > 0) {
        hp_err e2 = HP_ERR_INIT;
        if (signal_init(be, rid, pidfd, sig, &e2) < 0)
            hp_debug("%s: %s", rid, e2.msg);
        if (wait_exit(be, rid, pid, timeout_s * 1000))
            return 0;
    }
    hp_err e3 = HP_ERR_INIT;
    if (signal_init(be, rid, pidfd, SIGKILL, &e3) < 0) {
        /* the runtime may have lost track; kill the process directly */
        kill(pid, SIGKILL);
    }
    if (!wait_exit(be, rid, pid, 10000))
        return hp_err_set(err, HP_INTERNAL, "container %s did not exit after SIGKILL", rid);
    return 0;
}

static void unmount_quiet(const char *path)
{
    if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        hp_warn("umount %s: %s", path, strerror(errno));
}

/* Rootless: files a container wrote into its overlay upper dir as a
 * subordinate id (uid 1000 inside = subuid_start + 999 outside) cannot be
 * removed by the daemon's user.  Remove the tree from a user namespace with
 * the same mapping as the containers', where the user is root:
 * `unshare --user --map-root-user --map-users=S,1,N --map-groups=G,1,N
 *  rm -rf --one-file-system -- PATH` (util-linux >= 2.38; newuidmap).
 * Called after a plain removal failed (err holds that error); returns 0, or
 * -1 with err kept/filled. */
static int rm_rf_userns(oci_be *be, const char *path, hp_err *err)
{
    if (!be->rootless || !be->unshare || !be->rm || !be->subuid_len || !be->subgid_len)
        return -1;
    char mu[64], mg[64];
    snprintf(mu, sizeof(mu), "--map-users=%u,1,%u", be->subuid_start, be->subuid_len);
    snprintf(mg, sizeof(mg), "--map-groups=%u,1,%u", be->subgid_start, be->subgid_len);
    const char *argv[] = {be->unshare, "--user", "--map-root-user",   mu,   mg,
                          be->rm,      "-rf",    "--one-file-system", "--", path,
                          NULL};
    hp_proc_opts po = HP_PROC_OPTS_INIT;
    po.timeout_ms = RUNTIME_TIMEOUT_MS;
    hp_proc_result r;
    hp_err e2 = HP_ERR_INIT;
    if (hp_proc_run((char *const *)argv, &po, &r, &e2) < 0) {
        hp_err_wrap(err, "%s", e2.msg);
        return -1;
    }
    int rc = 0;
    if (r.timed_out || r.status != 0) {
        char msg[600];
        hp_proc_err_summary(r.err, msg, sizeof(msg));
        rc = hp_err_set(err, HP_INTERNAL, "remove %s in a user namespace: %s", path,
                        r.timed_out ? "timed out" : msg);
    } else {
        hp_debug("removed %s in a user namespace (files of subordinate ids)", path);
        hp_err_clear(err);
    }
    hp_proc_result_clear(&r);
    return rc;
}

/* ---------- the janitor ----------
 *
 * RemoveContainer and RemovePodSandbox do not wait for the recursive removal
 * of a bundle (the overlay's upper dir, runc's leftovers...): the directory
 * is renamed into <root>/oci/trash (one syscall; from then on nothing refers
 * to it) and the janitor thread deletes it.  containerd likewise leaves the
 * snapshot's removal to its garbage collector.  The trash is emptied at
 * start-up (a crash between rename and delete) and at shutdown. */

static void empty_trash(oci_be *be)
{
    _cleanup_closedir_ DIR *d = opendir(be->trash);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *p = pathf("%s/%s", be->trash, de->d_name);
        hp_err e = HP_ERR_INIT;
        if (p && rm_rf(p, &e) < 0 && rm_rf_userns(be, p, &e) < 0)
            hp_warn("janitor: %s", e.msg);
    }
}

static void *janitor_main(void *ud)
{
    oci_be *be = ud;
    unsigned done = (unsigned)-1; /* first pass: whatever a crash left */
    pthread_mutex_lock(&be->janitor_lock);
    for (;;) {
        while (!be->janitor_stop && done == be->janitor_work)
            pthread_cond_wait(&be->janitor_cond, &be->janitor_lock);
        done = be->janitor_work;
        bool stop = be->janitor_stop;
        pthread_mutex_unlock(&be->janitor_lock);
        empty_trash(be);
        pthread_mutex_lock(&be->janitor_lock);
        if (stop)
            break;
    }
    pthread_mutex_unlock(&be->janitor_lock);
    return NULL;
}

/* Remove a directory tree: moved into the trash for the janitor, or removed
 * here when there is no janitor or the rename fails. */
static int discard_dir(oci_be *be, const char *path, hp_err *err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : hp_err_sys(err, HP_INTERNAL, "stat %s", path);
    if (be->janitor_started) {
        const char *base = strrchr(path, '/');
        _cleanup_free_ char *to =
            pathf("%s/%s.%" PRIx64, be->trash, base ? base + 1 : path, (uint64_t)now_ns());
        if (to && rename(path, to) == 0) {
            pthread_mutex_lock(&be->janitor_lock);
            be->janitor_work++;
            pthread_cond_signal(&be->janitor_cond);
            pthread_mutex_unlock(&be->janitor_lock);
            return 0;
        }
        hp_debug("rename %s into the trash: %s; removing it now", path, strerror(errno));
    }
    if (rm_rf(path, err) < 0 && rm_rf_userns(be, path, err) < 0)
        return -1;
    return 0;
}

/* runc's state directory of a container (malloc'd, caller frees), or NULL
 * when the runtime is not runc (its state layout is unknown). */
static char *runc_state_dir(oci_be *be, const char *rid)
{
    const char *base = strrchr(be->runtime, '/');
    if (strcmp(base ? base + 1 : be->runtime, "runc") != 0)
        return NULL;
    return pathf("%s/%s", be->runtime_root ? be->runtime_root : "/run/runc", rid);
}

/* What `runc start` does, without running runc (~40 ms): the created
 * container's init (runc init) blocks opening <state>/exec.fifo for writing;
 * opening it for reading lets it write one byte and exec the process (the
 * fifo's write end is close-on-exec: EOF = exec'd).  Then the fifo is
 * removed, which is how runc tells "running" from "created".  Returns 0
 * started, 1 when `runtime start` must do it (not runc, no fifo: not in the
 * created state, no verified pidfd of the init), -1 with err when the init
 * died before it could be started. */
static int fast_start(oci_be *be, const char *rid, const char *bundle, hp_err *err)
{
    _cleanup_free_ char *dir = runc_state_dir(be, rid);
    _cleanup_free_ char *fifo = dir ? pathf("%s/exec.fifo", dir) : NULL;
    if (!fifo)
        return 1;
    _cleanup_close_ int pidfd = open_init_pidfd(bundle, read_pid(bundle));
    if (pidfd < 0)
        return 1;
    _cleanup_close_ int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISFIFO(sb.st_mode))
        return 1;
    int64_t deadline = mono_ms() + RUNTIME_TIMEOUT_MS;
    size_t got = 0;
    bool dead = false;
    for (;;) {
        char buf[64];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0 && got > 0)
            break; /* written and exec'd */
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return hp_err_sys(err, HP_INTERNAL, "read %s", fifo);
        /* n == 0 without data: no writer yet (or it died); EAGAIN: written,
         * not exec'd yet */
        if (dead)
            break;
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return hp_err_set(err, HP_DEADLINE_EXCEEDED, "starting %s: timed out", rid);
        struct pollfd pf[2] = {{fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
        if (poll(pf, 2, (int)(left > 100 ? 100 : left)) < 0 && errno != EINTR)
            return hp_err_sys(err, HP_INTERNAL, "poll");
        /* the init exited: read what it may have written, then stop */
        if (pf[1].revents & POLLIN)
            dead = true;
    }
    if (got == 0)
        return hp_err_set(err, HP_FAILED_PRECONDITION,
                          "starting %s: the container process is already dead", rid);
    if (unlink(fifo) < 0 && errno != ENOENT)
        return hp_err_sys(err, HP_INTERNAL, "remove %s", fifo);
    return 0;
}

/* Start a created container: fast_start, else `runtime start`. */
static int start_rid(oci_be *be, const char *rid, const char *bundle, hp_err *err)
{
    int rc = fast_start(be, rid, bundle, err);
    if (rc <= 0)
        return rc;
    return runtime_ok(be, (const char *[]){"start", rid, NULL}, "start", err);
}

/* rmdir of a cgroup directory; the kernel may still be detaching the tasks
 * of a container that has just exited (EBUSY for a few ms).  0 or -1. */
static int rmdir_cgroup(const char *path)
{
    for (int i = 0; i < 4; i++) {
        if (rmdir(path) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            return -1;
        usleep(1000 << i);
    }
    return -1;
}

/* What `runc delete` does for a container whose init has exited, without
 * running runc (each runc process costs ~40 ms before doing anything): remove
 * the container's cgroups (state.json's cgroup_paths) and its state
 * directory.  Only for runc's state format, no poststop hook, no Intel RDT, an init
 * that is gone; a cgroup that cannot be removed (processes left in a
 * container without its own PID namespace, which `runc delete --force` kills)
 * also sends the caller to the runtime.  `exited`: conmon wrote the exit
 * file.  Returns 0 done (or no state: runc never created the container or it
 * was deleted already), -1 when `runtime delete` must do the work. */
static int fast_delete(oci_be *be, const char *rid, bool exited)
{
    _cleanup_free_ char *dir = runc_state_dir(be, rid);
    _cleanup_free_ char *sf = dir ? pathf("%s/state.json", dir) : NULL;
    if (!sf)
        return -1;
    struct stat sb;
    if (stat(dir, &sb) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!exited)
        return -1;
    json_t *st = json_load_file(sf, 0, NULL);
    if (!st)
        return -1;
    int rc = -1;
    const char *id = json_string_value(json_object_get(st, "id"));
    json_t *cfg = json_object_get(st, "config");
    json_t *poststop = json_object_get(json_object_get(cfg, "Hooks"), "poststop");
    const char *rdt = json_string_value(json_object_get(st, "intel_rdt_path"));
    json_t *cgp = json_object_get(st, "cgroup_paths");
    json_int_t pid = json_integer_value(json_object_get(st, "init_process_pid"));
    json_int_t start = json_integer_value(json_object_get(st, "init_process_start"));
    if (!id || strcmp(id, rid) != 0 || !json_is_object(cfg) || json_array_size(poststop) > 0 ||
        (rdt && *rdt) || (cgp && !json_is_object(cgp)) || pid <= 0 ||
        proc_start_time((pid_t)pid) == (int64_t)start)
        goto out;
    /* without a PID namespace of its own, processes may outlive the init:
     * runc delete kills them (runc's destroy() makes the same test) */
    bool own_pidns = false;
    size_t i;
    json_t *ns;
    json_array_foreach(json_object_get(cfg, "namespaces"), i, ns)
    {
        const char *t = json_string_value(json_object_get(ns, "type"));
        const char *p = json_string_value(json_object_get(ns, "path"));
        if (t && strcmp(t, "NEWPID") == 0 && (!p || !*p))
            own_pidns = true;
    }
    if (!own_pidns)
        goto out;
    const char *k;
    json_t *v;
    json_object_foreach(cgp, k, v)
    {
        const char *path = json_string_value(v);
        if (path && *path && rmdir_cgroup(path) < 0) {
            hp_debug("%s: rmdir %s: %s; using %s delete", rid, path, strerror(errno), be->runtime);
            goto out;
        }
    }
    hp_err e = HP_ERR_INIT;
    if (rm_rf(dir, &e) < 0) {
        hp_debug("%s: %s", rid, e.msg);
        goto out;
    }
    rc = 0;
out:
    json_decref(st);
    return rc;
}

/* runc delete, unmount, remove the bundle and conmon's files. */
static int remove_rid(oci_be *be, const char *rid, const char *bundle, hp_err *err)
{
    if (fast_delete(be, rid, exit_file_exists(be, rid)) < 0) {
        hp_proc_result r;
        if (runtime_run(be, (const char *[]){"delete", "--force", rid, NULL}, RUNTIME_TIMEOUT_MS,
                        &r, err) < 0)
            return -1;
        if (r.status != 0 && !strstr(r.err, "does not exist") && !strstr(r.err, "not exist"))
            hp_warn("%s delete %s: %s", be->runtime, rid, r.err);
        hp_proc_result_clear(&r);
    }
    _cleanup_free_ char *rootfs = pathf("%s/rootfs", bundle);
    if (rootfs && !be->rootless)
        unmount_quiet(rootfs);
    if (discard_dir(be, bundle, err) < 0)
        return -1;
    _cleanup_free_ char *ef = pathf("%s/%s", be->exits, rid);
    _cleanup_free_ char *sf = pathf("%s/%s", be->socks, rid);
    if (ef)
        unlink(ef);
    if (sf)
        unlink(sf);
    return 0;
}

/* ---------- pod sandbox ---------- */

static char *cgroup_parent(oci_be *be, const Runtime__V1__PodSandboxConfig *pod, const char *pod_id)
{
    if (!be->cgroups)
        return NULL;
    if (pod && pod->linux && pod->linux->cgroup_parent && pod->linux->cgroup_parent[0] == '/')
        return strdup(pod->linux->cgroup_parent);
    return pathf("/hpcri/%s", pod_id);
}

static void fill_spec_opts(oci_be *be, hp_oci_spec_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host_network = be->host_network;
    o->rootless = be->rootless;
    o->uid = be->uid;
    o->gid = be->gid;
    o->subuid_start = be->subuid_start;
    o->subuid_len = be->subuid_len;
    o->subgid_start = be->subgid_start;
    o->subgid_len = be->subgid_len;
    o->min_oom_score_adj = be->min_oom;
    o->default_seccomp = be->default_seccomp;
}

static int write_json(const char *path, json_t *j, hp_err *err)
{
    char *s = json_dumps(j, JSON_COMPACT);
    if (!s)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    int rc = write_file(path, s, strlen(s), err);
    free(s);
    return rc;
}

static int write_pod_files(oci_be *be, const char *dir, const Runtime__V1__PodSandboxConfig *cfg,
                           hp_err *err)
{
    (void)be;
    const char *hostname = cfg && cfg->hostname && *cfg->hostname ? cfg->hostname
                           : cfg && cfg->metadata && cfg->metadata->name && *cfg->metadata->name
                               ? cfg->metadata->name
                               : "localhost";
    char buf[8192];
    _cleanup_free_ char *p = pathf("%s/hostname", dir);
    int n = snprintf(buf, sizeof(buf), "%s\n", hostname);
    if (write_file(p, buf, (size_t)n, err) < 0)
        return -1;
    free(p);
    p = pathf("%s/hosts", dir);
    n = snprintf(buf, sizeof(buf),
                 "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "127.0.1.1\t%s\n",
                 hostname);
    if (write_file(p, buf, (size_t)n, err) < 0)
        return -1;
    free(p);
    p = pathf("%s/resolv.conf", dir);
    const Runtime__V1__DNSConfig *dns = cfg ? cfg->dns_config : NULL;
    if (dns && (dns->n_servers || dns->n_searches || dns->n_options)) {
        size_t len = 0;
        for (size_t i = 0; i < dns->n_servers && len < sizeof(buf); i++)
            len +=
                (size_t)snprintf(buf + len, sizeof(buf) - len, "nameserver %s\n", dns->servers[i]);
        if (dns->n_searches && len < sizeof(buf)) {
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "search");
            for (size_t i = 0; i < dns->n_searches && len < sizeof(buf); i++)
                len += (size_t)snprintf(buf + len, sizeof(buf) - len, " %s", dns->searches[i]);
            if (len < sizeof(buf))
                len += (size_t)snprintf(buf + len, sizeof(buf) - len, "\n");
        }
        if (dns->n_options && len < sizeof(buf)) {
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "options");
            for (size_t i = 0; i < dns->n_options && len < sizeof(buf); i++)
                len += (size_t)snprintf(buf + len, sizeof(buf) - len, " %s", dns->options[i]);
            if (len < sizeof(buf))
                len += (size_t)snprintf(buf + len, sizeof(buf) - len, "\n");
        }
        if (len >= sizeof(buf))
            return hp_err_set(err, HP_INVALID_ARGUMENT, "dns_config is too large");
        if (write_file(p, buf, len, err) < 0)
            return -1;
    } else {
        _cleanup_free_ char *host = read_small("/etc/resolv.conf");
        if (write_file(p, host ? host : "", host ? strlen(host) : 0, err) < 0)
            return -1;
    }
    return 0;
}

/* ---------- the pause process without a runtime (root) ----------
 *
 * As root the pod's namespaces are held by `hpcri-pause --spawn`, which
 * unshares them itself (src/pause/pause.c): one fork+exec of a static binary
 * instead of conmon + `runtime create` + `runtime start`.  The pause spec is
 * still built (hp_oci_spec_pause) and is the single description of what the
 * pause gets: its namespaces, hostname, sysctls, oom_score_adj and cgroup
 * become the spawner's options.  Rootless pods keep the runtime: their pause
 * also owns the user namespace with the subordinate id mapping.  The bundle
 * holds `direct` (marker), `pidfile` and `pidstart`; the process is known by
 * pid + start time, and no exit file is ever written for it. */

static bool pause_is_direct(const char *bundle)
{
    _cleanup_free_ char *m = pathf("%s/direct", bundle);
    return m && access(m, F_OK) == 0;
}

/* Run hpcri-pause --spawn with the options of `spec` (a pause spec without a
 * user namespace); on success the pause's pid is in bundle/pidfile. */
static int spawn_pause(oci_be *be, const char *bundle, json_t *spec, hp_err *err)
{
    const char *argv[16 + 2 * 128];
    size_t n = 0;
    char nsbuf[32] = "";
    char oombuf[16];
    argv[n++] = be->pause_path;
    argv[n++] = "--spawn";
    json_t *linux = json_object_get(spec, "linux");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(linux, "namespaces"), i, v)
    {
        const char *t = json_string_value(json_object_get(v, "type"));
        const char *ns = !t                          ? NULL
                         : strcmp(t, "network") == 0 ? "net"
                         : strcmp(t, "ipc") == 0     ? "ipc"
                         : strcmp(t, "uts") == 0     ? "uts"
                         : strcmp(t, "pid") == 0     ? "pid"
                                                     : NULL;
        if (ns) {
            if (nsbuf[0])
                strcat(nsbuf, ",");
            strcat(nsbuf, ns);
        }
    }
    if (nsbuf[0]) {
        argv[n++] = "--ns";
        argv[n++] = nsbuf;
    }
    const char *host = json_string_value(json_object_get(spec, "hostname"));
    if (host) {
        argv[n++] = "--hostname";
        argv[n++] = host;
    }
    json_t *sysctl = json_object_get(linux, "sysctl");
    if (json_object_size(sysctl) > 128)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "too many sysctls (%zu, at most 128)",
                          json_object_size(sysctl));
    char *kv[128];
    size_t nkv = 0;
    const char *k;
    json_object_foreach(sysctl, k, v)
    {
        kv[nkv] = pathf("%s=%s", k, json_string_value(v) ? json_string_value(v) : "");
        if (!kv[nkv]) {
            for (size_t j = 0; j < nkv; j++)
                free(kv[j]);
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        }
        argv[n++] = "--sysctl";
        argv[n++] = kv[nkv++];
    }
    snprintf(
        oombuf, sizeof(oombuf), "%d",
        (int)json_integer_value(json_object_get(json_object_get(spec, "process"), "oomScoreAdj")));
    argv[n++] = "--oom-score-adj";
    argv[n++] = oombuf;
    const char *cg = json_string_value(json_object_get(linux, "cgroupsPath"));
    if (cg) {
        argv[n++] = "--cgroup";
        argv[n++] = cg;
    }
    argv[n] = NULL;
    hp_proc_opts po = HP_PROC_OPTS_INIT;
    po.timeout_ms = 10000;
    hp_proc_result r;
    int rc = hp_proc_run((char *const *)argv, &po, &r, err);
    for (size_t j = 0; j < nkv; j++)
        free(kv[j]);
    if (rc < 0)
        return -1;
    long pid = r.status == 0 && !r.timed_out ? strtol(r.out, NULL, 10) : 0;
    if (pid <= 0) {
        char msg[600];
        hp_proc_err_summary(r.err, msg, sizeof(msg));
        hp_proc_result_clear(&r);
        return hp_err_set(err, HP_FAILED_PRECONDITION, "starting the pod's pause process: %s",
                          msg[0] ? msg : "no pid reported");
    }
    hp_proc_result_clear(&r);
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%ld", pid);
    _cleanup_free_ char *pf = pathf("%s/pidfile", bundle);
    _cleanup_free_ char *mk = pathf("%s/direct", bundle);
    if (write_file(pf, buf, (size_t)len, err) < 0 || write_file(mk, "", 0, err) < 0) {
        kill((pid_t)pid, SIGKILL);
        return -1;
    }
    record_pid_start(bundle);
    return 0;
}

/* The pod's pause is alive (and is the process that was started: pid +
 * start time for a direct pause; no exit file for a runtime one).  *pidp
 * gets its pid (0 if none was recorded). */
static bool pause_running(oci_be *be, const char *pod_id, pid_t *pidp)
{
    _cleanup_free_ char *dir = pod_dir(be, pod_id);
    _cleanup_free_ char *bundle = pathf("%s/pause", dir);
    _cleanup_free_ char *rid = pathf(POD_PREFIX "%s", pod_id);
    if (!bundle || !rid)
        return false;
    pid_t pid = read_pid(bundle);
    if (pidp)
        *pidp = pid;
    if (pid <= 0)
        return false;
    if (!pause_is_direct(bundle))
        return !exit_file_exists(be, rid) && pid_alive(pid);
    _cleanup_free_ char *sf = pathf("%s/pidstart", bundle);
    int64_t want = sf ? read_int_file(sf, -1) : -1;
    char state = 0;
    return want >= 0 && proc_stat_start(pid, &state) == want && state != 'Z' && state != 'X';
}

/* SIGKILL the pod's pause and wait until it is gone.  Idempotent. */
static int stop_pause(oci_be *be, const char *pod_id, hp_err *err)
{
    _cleanup_free_ char *dir = pod_dir(be, pod_id);
    _cleanup_free_ char *bundle = pathf("%s/pause", dir);
    _cleanup_free_ char *rid = pathf(POD_PREFIX "%s", pod_id);
    if (!bundle || !rid)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    /* the pause has no state to save: SIGKILL, like containerd (a SIGTERM
     * could also arrive before hpcri-pause installed its handler and be
     * dropped: it is PID 1 of its PID namespace) */
    if (!pause_is_direct(bundle))
        return stop_rid(be, rid, bundle, SIGKILL, 0, err);
    _cleanup_close_ int pidfd = open_init_pidfd(bundle, read_pid(bundle));
    if (pidfd < 0)
        return 0; /* gone, or another process has its pid now */
    if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
        return hp_err_sys(err, HP_INTERNAL, "kill the pause of pod %s", pod_id);
    struct pollfd pf = {pidfd, POLLIN, 0};
    int64_t deadline = mono_ms() + 10000;
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return hp_err_set(err, HP_INTERNAL, "the pause of pod %s did not exit after SIGKILL",
                              pod_id);
        int k = poll(&pf, 1, (int)left);
        if (k > 0)
            return 0;
        if (k < 0 && errno != EINTR)
            return hp_err_sys(err, HP_INTERNAL, "poll");
    }
}

static int oci_sandbox_stop(hp_backend *b, hp_be_pod *pod, hp_err *err);
static int oci_sandbox_remove(hp_backend *b, hp_be_pod *pod, hp_err *err);

static int oci_sandbox_run(hp_backend *b, hp_be_pod *pod, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    if (valid_id(pod->id, "pod sandbox", err) < 0)
        return -1;
    _cleanup_free_ char *dir = pod_dir(be, pod->id);
    _cleanup_free_ char *bundle = pathf("%s/pause", dir);
    _cleanup_free_ char *rootfs = pathf("%s/pause/rootfs", dir);
    _cleanup_free_ char *shm = pathf("%s/shm", dir);
    _cleanup_free_ char *pausef = pathf("%s/pause/rootfs/pause", dir);
    _cleanup_free_ char *cfgpath = pathf("%s/pause/config.json", dir);
    _cleanup_free_ char *logp = pathf("%s/pause/pause.log", dir);
    _cleanup_free_ char *rid = pathf(POD_PREFIX "%s", pod->id);
    _cleanup_free_ char *cgp = cgroup_parent(be, pod->config, pod->id);
    _cleanup_free_ char *cgpause = cgp ? pathf("%s/pause", cgp) : NULL;
    if (!dir || !bundle || !rootfs || !shm || !pausef || !cfgpath || !logp || !rid)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    struct stat st;
    if (stat(dir, &st) == 0)
        return hp_err_set(err, HP_ALREADY_EXISTS, "pod sandbox %s already exists in %s", pod->id,
                          dir);
    /* a runtime's pause container gets an empty root with /pause bound in */
    if (mkdir_p(be->rootless ? rootfs : bundle, 0755, err) < 0 || mkdir_p(shm, 01777, err) < 0)
        goto fail;
    chmod(shm, 01777);
    if (write_pod_files(be, dir, pod->config, err) < 0 ||
        (be->rootless && write_file(pausef, "", 0, err) < 0))
        goto fail;
    if (!be->rootless &&
        mount("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k") < 0) {
        hp_err_sys(err, HP_INTERNAL, "mount tmpfs on %s", shm);
        goto fail;
    }
    hp_oci_spec_opts o;
    fill_spec_opts(be, &o);
    o.root_path = "rootfs";
    o.cgroups_path = cgpause;
    json_t *spec = hp_oci_spec_pause(pod->config, be->pause_path, &o, err);
    if (!spec)
        goto fail;
    if (!be->rootless) {
        int rc = spawn_pause(be, bundle, spec, err);
        json_decref(spec);
        if (rc < 0)
            goto fail;
    } else {
        int rc = write_json(cfgpath, spec, err);
        json_decref(spec);
        if (rc < 0)
            goto fail;
        if (conmon_create(be, rid, bundle, logp, false, false, err) < 0)
            goto fail;
        record_pid_start(bundle);
        if (start_rid(be, rid, bundle, err) < 0)
            goto fail;
    }
    pid_t pid = read_pid(bundle);
    free(pod->backend_state);
    pod->backend_state = pathf("{\"pid\":%d,\"pod_dir\":\"%s\"}", (int)pid, dir);
    return 0;
fail:;
    hp_err e2 = HP_ERR_INIT;
    oci_sandbox_remove(b, pod, &e2);
    return -1;
}

/* Calls fn for every container bundle whose `pod` file names pod_id. */
static int for_pod_containers(oci_be *be, const char *pod_id,
                              int (*fn)(oci_be *, const char *id, void *), void *ud, hp_err *err)
{
    _cleanup_free_ char *cdir = pathf("%s/containers", be->root);
    _cleanup_closedir_ DIR *d = opendir(cdir);
    if (!d)
        return 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *pf = pathf("%s/%s/pod", cdir, de->d_name);
        _cleanup_free_ char *owner = pf ? read_small(pf) : NULL;
        if (owner && strcmp(owner, pod_id) == 0 && fn(be, de->d_name, ud) < 0) {
            hp_err_set(err, HP_INTERNAL, "could not stop/remove container %s of pod %s", de->d_name,
                       pod_id);
            rc = -1;
        }
    }
    return rc;
}

static int stop_container_id(oci_be *be, const char *id, int64_t timeout_s, hp_err *err);
static int remove_container_id(oci_be *be, const char *id, hp_err *err);

static int pod_stop_cb(oci_be *be, const char *id, void *ud)
{
    (void)ud;
    hp_err e = HP_ERR_INIT;
    int rc = stop_container_id(be, id, 2, &e);
    if (rc < 0)
        hp_warn("stopping container %s: %s", id, e.msg);
    return rc;
}

static int pod_remove_cb(oci_be *be, const char *id, void *ud)
{
    (void)ud;
    hp_err e = HP_ERR_INIT;
    int rc = remove_container_id(be, id, &e);
    if (rc < 0)
        hp_warn("removing container %s: %s", id, e.msg);
    return rc;
}

static int oci_sandbox_stop(hp_backend *b, hp_be_pod *pod, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    if (valid_id(pod->id, "pod sandbox", err) < 0)
        return -1;
    if (for_pod_containers(be, pod->id, pod_stop_cb, NULL, err) < 0)
        return -1;
    if (stop_pause(be, pod->id, err) < 0)
        return -1;
    /* nothing runs in the pod any more: its /dev/shm goes now, like
     * containerd's (remove only deletes the directory) */
    _cleanup_free_ char *dir = pod_dir(be, pod->id);
    _cleanup_free_ char *shm = dir ? pathf("%s/shm", dir) : NULL;
    if (!be->rootless && shm)
        unmount_quiet(shm);
    return 0;
}

static void remove_cgroup_dirs(const char *cgpath)
{
    _cleanup_closedir_ DIR *d = opendir("/sys/fs/cgroup");
    if (!d || !cgpath)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *p = pathf("/sys/fs/cgroup/%s%s", de->d_name, cgpath);
        if (p)
            rmdir(p);
    }
}

static int oci_sandbox_remove(hp_backend *b, hp_be_pod *pod, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    if (valid_id(pod->id, "pod sandbox", err) < 0)
        return -1;
    if (for_pod_containers(be, pod->id, pod_remove_cb, NULL, err) < 0)
        return -1;
    _cleanup_free_ char *dir = pod_dir(be, pod->id);
    _cleanup_free_ char *bundle = pathf("%s/pause", dir);
    _cleanup_free_ char *shm = pathf("%s/shm", dir);
    _cleanup_free_ char *rid = pathf(POD_PREFIX "%s", pod->id);
    if (stop_pause(be, pod->id, err) < 0)
        return -1;
    if (remove_rid(be, rid, bundle, err) < 0)
        return -1;
    if (!be->rootless)
        unmount_quiet(shm);
    if (discard_dir(be, dir, err) < 0)
        return -1;
    _cleanup_free_ char *cgp = cgroup_parent(be, pod->config, pod->id);
    _cleanup_free_ char *cgpause = cgp ? pathf("%s/pause", cgp) : NULL;
    if (cgpause)
        remove_cgroup_dirs(cgpause); /* a direct pause's (runc removes its own) */
    if (cgp && strncmp(cgp, "/hpcri/", 7) == 0)
        remove_cgroup_dirs(cgp);
    return 0;
}

static int oci_sandbox_status(hp_backend *b, hp_be_pod *pod, bool *ready, char **info, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    if (valid_id(pod->id, "pod sandbox", err) < 0)
        return -1;
    _cleanup_free_ char *dir = pod_dir(be, pod->id);
    _cleanup_free_ char *bundle = pathf("%s/pause", dir);
    pid_t pid = 0;
    *ready = pause_running(be, pod->id, &pid);
    if (info)
        *info = pathf("{\"pid\":%d,\"pod_dir\":\"%s\",\"runtime\":\"%s\",\"pause\":\"%s\"}",
                      (int)pid, dir, be->runtime,
                      bundle && pause_is_direct(bundle) ? "hpcri-pause --spawn" : "runtime");
    return 0;
}

/* ---------- containers ---------- */

static int load_image_config(const char *json_text, hp_oci_image_config *ic, hp_err *err)
{
    memset(ic, 0, sizeof(*ic));
    if (!json_text || !*json_text)
        return 0;
    return hp_oci_image_config_parse(json_text, ic, err);
}

static int oci_container_create(hp_backend *b, hp_be_container *c, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    const Runtime__V1__ContainerConfig *cfg = c->config;
    if (valid_id(c->id, "container", err) < 0 || valid_id(c->pod_id, "pod sandbox", err) < 0)
        return -1;
    if (!cfg)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "container %s has no config", c->id);
    if (!c->rootfs_hint)
        return hp_err_set(err, HP_FAILED_PRECONDITION,
                          "container %s: no image root file system was prepared", c->id);
    _cleanup_free_ char *pdir = pod_dir(be, c->pod_id);
    pid_t pause = 0;
    if (!pause_running(be, c->pod_id, &pause))
        return hp_err_set(err, HP_FAILED_PRECONDITION, "pod sandbox %s is not running", c->pod_id);
    _cleanup_free_ char *dir = ctr_dir(be, c->id);
    struct stat st;
    if (stat(dir, &st) == 0)
        return hp_err_set(err, HP_ALREADY_EXISTS, "container %s already exists", c->id);

    hp_oci_image_config ic;
    if (load_image_config(c->image_config_json, &ic, err) < 0)
        return -1;
    _cleanup_free_ char *rootfs = pathf("%s/rootfs", dir);
    _cleanup_free_ char *upper = pathf("%s/upper", dir);
    _cleanup_free_ char *work = pathf("%s/work", dir);
    _cleanup_free_ char *cgp = cgroup_parent(be, c->pod_config, c->pod_id);
    _cleanup_free_ char *cgpath = cgp ? pathf("%s/%s", cgp, c->id) : NULL;
    _cleanup_free_ char *deflog = pathf("%s/container.log", dir);
    const char *log_path = c->log_path && *c->log_path ? c->log_path : deflog;
    /* root: an overlay on the image (mounted here, or by the runtime inside
     * the user namespace when rootless); without userns overlay support the
     * image itself, read-only, with tmpfs scratch dirs */
    bool overlay = !be->rootless || be->userns_overlay;
    _cleanup_free_ char *ovl =
        pathf("lowerdir=%s,upperdir=%s,workdir=%s", c->rootfs_hint, upper, work);
    if (!ovl || !rootfs || !upper || !work) {
        hp_oci_image_config_clear(&ic);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    hp_oci_spec_opts o;
    fill_spec_opts(be, &o);
    o.root_path = overlay ? "rootfs" : c->rootfs_hint;
    o.root_overlay = overlay && be->rootless ? ovl : NULL;
    o.rootfs_dir = c->rootfs_hint;
    o.rootfs_tmpfs = !overlay;
    o.pod_dir = pdir;
    o.pause_pid = pause;
    o.join_pause_userns = be->rootless;
    o.cgroups_path = cgpath;
    const Runtime__V1__LinuxContainerSecurityContext *sc =
        cfg->linux ? cfg->linux->security_context : NULL;
    if (sc && sc->namespace_options &&
        sc->namespace_options->pid == RUNTIME__V1__NAMESPACE_MODE__TARGET) {
        const char *t = sc->namespace_options->target_id;
        if (valid_id(t, "target container", err) < 0) {
            hp_oci_image_config_clear(&ic);
            return -1;
        }
        _cleanup_free_ char *tdir = ctr_dir(be, t);
        o.target_pid = read_pid(tdir);
    }
    json_t *spec = hp_oci_spec_container(c->pod_config, cfg, &ic, &o, err);
    int sig = hp_oci_cri_signal(cfg->stop_signal);
    if (!sig)
        sig = hp_oci_signal_by_name(ic.stop_signal);
    if (!sig)
        sig = SIGTERM;
    hp_oci_image_config_clear(&ic);
    if (!spec)
        return -1;

    char sigbuf[16];
    int sn = snprintf(sigbuf, sizeof(sigbuf), "%d", sig);
    _cleanup_free_ char *logdir = strdup(log_path);
    if (mkdir_p(rootfs, 0755, err) < 0 || (overlay && mkdir_p(upper, 0755, err) < 0) ||
        (overlay && mkdir_p(work, 0700, err) < 0) || mkdir_p(dirname(logdir), 0755, err) < 0)
        goto fail;
    /* bind mount sources that do not exist are created as directories */
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        const char *hp = cfg->mounts[i]->host_path;
        if (lstat(hp, &st) < 0 && errno == ENOENT && mkdir_p(hp, 0755, err) < 0)
            goto fail;
    }
    {
        _cleanup_free_ char *cj = pathf("%s/config.json", dir);
        _cleanup_free_ char *podf = pathf("%s/pod", dir);
        _cleanup_free_ char *sigf = pathf("%s/stopsignal", dir);
        _cleanup_free_ char *cgf = pathf("%s/cgroup", dir);
        if (write_json(cj, spec, err) < 0 ||
            write_file(podf, c->pod_id, strlen(c->pod_id), err) < 0 ||
            write_file(sigf, sigbuf, (size_t)sn, err) < 0 ||
            (cgpath && write_file(cgf, cgpath, strlen(cgpath), err) < 0))
            goto fail;
    }
    if (overlay && !be->rootless) {
        if (mount("overlay", rootfs, "overlay", 0, ovl) < 0) {
            hp_err_sys(err, HP_INTERNAL, "mount overlay on %s (lower %s)", rootfs, c->rootfs_hint);
            goto fail;
        }
    }
    /* The runtime's create (conmon + `runc create`) waits for StartContainer,
     * like containerd: CreateContainer only prepares the bundle; what the
     * monitor needs then is kept in the bundle (survives a restart). */
    {
        json_t *cj = json_pack("{s:s, s:b, s:b}", "log_path", log_path, "tty", cfg->tty, "stdin",
                               cfg->stdin);
        _cleanup_free_ char *mf = pathf("%s/monitor.json", dir);
        int rc = cj && mf ? write_json(mf, cj, err)
                          : hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        json_decref(cj);
        if (rc < 0)
            goto fail;
    }
    json_decref(spec);
    free(c->backend_state);
    c->backend_state = pathf("{\"bundle\":\"%s\",\"pid\":0}", dir);
    return 0;
fail:
    json_decref(spec);
    hp_err e2 = HP_ERR_INIT;
    remove_container_id(be, c->id, &e2);
    return -1;
}

/* The deferred half of CreateContainer: conmon + `runtime create` for the
 * bundle prepared by oci_container_create (monitor.json: log path, tty,
 * stdin).  On success the init's pid is in bundle/pidfile. */
static int runtime_create(oci_be *be, const char *id, const char *dir, hp_err *err)
{
    _cleanup_free_ char *mf = pathf("%s/monitor.json", dir);
    json_t *m = mf ? json_load_file(mf, 0, NULL) : NULL;
    const char *log_path = json_string_value(json_object_get(m, "log_path"));
    if (!log_path) {
        json_decref(m);
        return hp_err_set(err, HP_FAILED_PRECONDITION,
                          "container %s: its bundle is incomplete (%s missing or unreadable)", id,
                          mf ? mf : "monitor.json");
    }
    int rc = conmon_create(be, id, dir, log_path, json_is_true(json_object_get(m, "tty")),
                           json_is_true(json_object_get(m, "stdin")), err);
    json_decref(m);
    if (rc < 0)
        return -1;
    record_pid_start(dir);
    return 0;
}

static int oci_container_start(hp_backend *b, hp_be_container *c, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    if (valid_id(c->id, "container", err) < 0)
        return -1;
    _cleanup_free_ char *dir = ctr_dir(be, c->id);
    struct stat st;
    if (stat(dir, &st) < 0)
        return hp_err_set(err, HP_NOT_FOUND, "container %s does not exist", c->id);
    if (exit_file_exists(be, c->id))
        return hp_err_set(err, HP_FAILED_PRECONDITION, "container %s has already exited", c->id);
    if (read_pid(dir) <= 0 && runtime_create(be, c->id, dir, err) < 0)
        return -1;
    /* taken before the start so that started_at <= finished_at always holds */
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%" PRId64, now_ns());
    if (start_rid(be, c->id, dir, err) < 0)
        return -1;
    _cleanup_free_ char *sf = pathf("%s/started", dir);
    if (write_file(sf, buf, (size_t)n, err) < 0)
        return -1;
    free(c->backend_state);
    c->backend_state =
        pathf("{\"bundle\":\"%s\",\"pid\":%d,\"started_at\":%s}", dir, (int)read_pid(dir), buf);
    return 0;
}

/* A container whose init has exited needs neither its runtime state, its
 * cgroups nor its root mount any more: release them when the stop is seen
 * (containerd's task delete does the same at exit), so that Remove only
 * deletes files.  Best effort: what is left here, remove_rid does. */
static void release_exited(oci_be *be, const char *id, const char *dir)
{
    if (!exit_file_exists(be, id) || fast_delete(be, id, true) < 0)
        return;
    _cleanup_free_ char *rootfs = pathf("%s/rootfs", dir);
    if (rootfs && !be->rootless)
        unmount_quiet(rootfs);
}

static int stop_container_id(oci_be *be, const char *id, int64_t timeout_s, hp_err *err)
{
    _cleanup_free_ char *dir = ctr_dir(be, id);
    _cleanup_free_ char *sigf = pathf("%s/stopsignal", dir);
    int sig = (int)read_int_file(sigf, SIGTERM);
    if (stop_rid(be, id, dir, sig, timeout_s, err) < 0)
        return -1;
    release_exited(be, id, dir);
    return 0;
}

static int oci_container_stop(hp_backend *b, hp_be_container *c, int64_t timeout_s, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    if (valid_id(c->id, "container", err) < 0)
        return -1;
    return stop_container_id(be, c->id, timeout_s, err);
}

static int remove_container_id(oci_be *be, const char *id, hp_err *err)
{
    _cleanup_free_ char *dir = ctr_dir(be, id);
    if (stop_rid(be, id, dir, SIGKILL, 0, err) < 0)
        return -1;
    return remove_rid(be, id, dir, err);
}

static int oci_container_remove(hp_backend *b, hp_be_container *c, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    if (valid_id(c->id, "container", err) < 0)
        return -1;
    return remove_container_id(be, c->id, err);
}

static bool cgroup_oom_killed(const char *cgpath)
{
    if (!cgpath)
        return false;
    _cleanup_free_ char *p = pathf("/sys/fs/cgroup/memory%s/memory.oom_control", cgpath);
    _cleanup_free_ char *s = p ? read_small(p) : NULL;
    const char *k = s ? strstr(s, "oom_kill ") : NULL;
    return k && strtoll(k + 9, NULL, 10) > 0;
}

static int status_by_id(oci_be *be, const char *id, hp_be_status *st, hp_err *err)
{
    memset(st, 0, sizeof(*st));
    _cleanup_free_ char *dir = ctr_dir(be, id);
    struct stat sb;
    if (!dir || stat(dir, &sb) < 0)
        return hp_err_set(err, HP_NOT_FOUND, "container %s does not exist", id);
    _cleanup_free_ char *sf = pathf("%s/started", dir);
    st->started_at = read_int_file(sf, 0);
    _cleanup_free_ char *ef = pathf("%s/%s", be->exits, id);
    if (ef && stat(ef, &sb) == 0) {
        st->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
        st->exit_code = (int32_t)read_int_file(ef, -1);
        st->finished_at = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        _cleanup_free_ char *oomf = pathf("%s/oom", dir);
        _cleanup_free_ char *cgf = pathf("%s/cgroup", dir);
        _cleanup_free_ char *cg = cgf ? read_small(cgf) : NULL;
        bool oom = (oomf && access(oomf, F_OK) == 0) || cgroup_oom_killed(cg);
        if (oom)
            snprintf(st->reason, sizeof(st->reason), "OOMKilled");
        else
            snprintf(st->reason, sizeof(st->reason), "%s",
                     st->exit_code == 0 ? "Completed" : "Error");
        if (st->started_at == 0)
            st->started_at = st->finished_at; /* killed before start */
        return 0;
    }
    pid_t pid = read_pid(dir);
    if (pid > 0 && pid_alive(pid)) {
        st->state = st->started_at ? RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING
                                   : RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED;
        return 0;
    }
    if (pid <= 0 && st->started_at == 0) {
        /* the bundle is ready; the runtime creates it at start */
        st->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED;
        return 0;
    }
    st->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_UNKNOWN;
    snprintf(st->reason, sizeof(st->reason), "Unknown");
    snprintf(st->message, sizeof(st->message),
             "the container process is gone and conmon recorded no exit status");
    return 0;
}

static int oci_container_status(hp_backend *b, hp_be_container *c, hp_be_status *st, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    if (valid_id(c->id, "container", err) < 0)
        return -1;
    return status_by_id(be, c->id, st, err);
}

static int oci_exec_sync(hp_backend *b, hp_be_container *c, char *const *argv, size_t argc,
                         int64_t timeout_s, hp_be_exec_result *res, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    memset(res, 0, sizeof(*res));
    if (valid_id(c->id, "container", err) < 0)
        return -1;
    if (argc == 0)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "exec: empty command");
    hp_be_status st;
    if (status_by_id(be, c->id, &st, err) < 0)
        return -1;
    if (st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING)
        return hp_err_set(err, HP_FAILED_PRECONDITION, "container %s is not running", c->id);
    _cleanup_free_ char *dir = ctr_dir(be, c->id);
    char rnd[32];
    snprintf(rnd, sizeof(rnd), "%" PRIx64, (uint64_t)now_ns() ^ ((uint64_t)gettid() << 40));
    _cleanup_free_ char *pidf = pathf("%s/exec-%s.pid", dir, rnd);
    _cleanup_free_ const char **args = calloc(argc + 10, sizeof(char *));
    if (!args || !pidf)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    size_t n = 0;
    args[n++] = be->runtime;
    if (be->runtime_root) {
        args[n++] = "--root";
        args[n++] = be->runtime_root;
    }
    args[n++] = "exec";
    args[n++] = "--pid-file";
    args[n++] = pidf;
    args[n++] = c->id;
    for (size_t i = 0; i < argc; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    hp_proc_opts po = HP_PROC_OPTS_INIT;
    po.timeout_ms = timeout_s > 0 ? timeout_s * 1000 : 0;
    po.max_output = EXEC_MAX_OUTPUT;
    po.kill_pidfile = pidf;
    hp_proc_result r;
    if (hp_proc_run((char *const *)args, &po, &r, err) < 0)
        return -1;
    unlink(pidf);
    if (r.timed_out) {
        hp_proc_result_clear(&r);
        return hp_err_set(err, HP_DEADLINE_EXCEEDED, "command timed out after %lld s",
                          (long long)timeout_s);
    }
    res->out = (uint8_t *)r.out;
    res->out_len = r.out_len;
    res->errout = (uint8_t *)r.err;
    res->err_len = r.err_len;
    res->exit_code = r.status;
    return 0;
}

/* ---------- streaming ---------- */

static char **strv_new(const char *const *v, size_t n, char *const *tail, size_t ntail)
{
    char **out = calloc(n + ntail + 1, sizeof(char *));
    if (!out)
        return NULL;
    for (size_t i = 0; i < n + ntail; i++) {
        out[i] = strdup(i < n ? v[i] : tail[i - n]);
        if (!out[i]) {
            for (size_t j = 0; j < i; j++)
                free(out[j]);
            free(out);
            return NULL;
        }
    }
    return out;
}

static int running_or_fail(oci_be *be, const char *id, const char *what, hp_err *err)
{
    hp_be_status st;
    if (status_by_id(be, id, &st, err) < 0)
        return -1;
    if (st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING)
        return hp_err_set(err, HP_FAILED_PRECONDITION, "%s: container %s is not running", what, id);
    return 0;
}

/* `runtime exec [-t] id argv...`: with -t the runtime gives the process a
 * terminal inside the container and relays it to its own stdio, which the
 * stream server makes a pseudo-terminal of its own. */
static int oci_exec_command(hp_backend *b, hp_be_container *c, char *const *argv, size_t argc,
                            bool tty, char ***out, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    if (valid_id(c->id, "container", err) < 0 || running_or_fail(be, c->id, "Exec", err) < 0)
        return -1;
    const char *head[8];
    size_t n = 0;
    head[n++] = be->runtime;
    if (be->runtime_root) {
        head[n++] = "--root";
        head[n++] = be->runtime_root;
    }
    head[n++] = "exec";
    if (tty)
        head[n++] = "-t";
    head[n++] = c->id;
    *out = strv_new(head, n, argv, argc);
    return *out ? 0 : hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
}

static int oci_attach_target(hp_backend *b, hp_be_container *c, char **sock, char **control,
                             char **exit_file, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    if (valid_id(c->id, "container", err) < 0 || running_or_fail(be, c->id, "Attach", err) < 0)
        return -1;
    *sock = pathf("%s/%s/attach", be->socks, c->id);
    *control = pathf("%s/containers/%s/ctl", be->root, c->id);
    *exit_file = pathf("%s/%s", be->exits, c->id);
    if (!*sock || !*control || !*exit_file)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    if (access(*sock, F_OK) < 0)
        return hp_err_sys(err, HP_FAILED_PRECONDITION,
                          "Attach: container %s has no attach socket %s", c->id, *sock);
    return 0;
}

static int oci_forward_netns(hp_backend *b, hp_be_pod *pod, char **netns, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    *netns = NULL;
    if (valid_id(pod->id, "pod sandbox", err) < 0)
        return -1;
    pid_t pause = 0;
    if (!pause_running(be, pod->id, &pause))
        return hp_err_set(err, HP_FAILED_PRECONDITION, "PortForward: pod sandbox %s is not running",
                          pod->id);
    const Runtime__V1__NamespaceOption *nso =
        pod->config && pod->config->linux && pod->config->linux->security_context
            ? pod->config->linux->security_context->namespace_options
            : NULL;
    if (be->host_network || (nso && nso->network == RUNTIME__V1__NAMESPACE_MODE__NODE))
        return 0; /* the host's network: connect right here */
    if (be->rootless)
        return hp_err_set(err, HP_FAILED_PRECONDITION,
                          "PortForward: pod %s has its own network namespace inside a user "
                          "namespace, which an unprivileged daemon cannot enter",
                          pod->id);
    *netns = pathf("/proc/%d/ns/net", (int)pause);
    return *netns ? 0 : hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
}

static int oci_reopen_log(hp_backend *b, hp_be_container *c, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    if (valid_id(c->id, "container", err) < 0)
        return -1;
    _cleanup_free_ char *ctl = pathf("%s/containers/%s/ctl", be->root, c->id);
    _cleanup_close_ int fd = open(ctl, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return hp_err_sys(err, errno == ENOENT ? HP_NOT_FOUND : HP_FAILED_PRECONDITION,
                          "container %s: cannot reach conmon's control fifo %s", c->id, ctl);
    static const char msg[] = "2 0 0\n"; /* 2 = reopen log */
    if (write(fd, msg, sizeof(msg) - 1) != (ssize_t)(sizeof(msg) - 1))
        return hp_err_sys(err, HP_INTERNAL, "write %s", ctl);
    return 0;
}

static int oci_update_resources(hp_backend *b, hp_be_container *c,
                                const Runtime__V1__LinuxContainerResources *r, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    if (valid_id(c->id, "container", err) < 0)
        return -1;
    if (!be->cgroups)
        return hp_err_set(err, HP_FAILED_PRECONDITION,
                          "this handler does not manage cgroups: resources cannot be updated");
    json_t *res = json_object();
    json_t *cpu = json_object(), *mem = json_object();
    if (r->cpu_shares > 0)
        json_object_set_new(cpu, "shares", json_integer(r->cpu_shares));
    if (r->cpu_quota != 0)
        json_object_set_new(cpu, "quota", json_integer(r->cpu_quota));
    if (r->cpu_period > 0)
        json_object_set_new(cpu, "period", json_integer(r->cpu_period));
    if (r->cpuset_cpus && *r->cpuset_cpus)
        json_object_set_new(cpu, "cpus", json_string(r->cpuset_cpus));
    if (r->cpuset_mems && *r->cpuset_mems)
        json_object_set_new(cpu, "mems", json_string(r->cpuset_mems));
    if (r->memory_limit_in_bytes > 0)
        json_object_set_new(mem, "limit", json_integer(r->memory_limit_in_bytes));
    json_object_set_new(res, "cpu", cpu);
    json_object_set_new(res, "memory", mem);
    _cleanup_free_ char *f = pathf("%s/containers/%s/update.json", be->root, c->id);
    int rc = write_json(f, res, err);
    json_decref(res);
    if (rc < 0)
        return -1;
    rc = runtime_ok(be, (const char *[]){"update", "-r", f, c->id, NULL}, "update", err);
    unlink(f);
    return rc;
}

/* ---------- stats ---------- */

static void du_at(int dfd, const char *name, dev_t dev, uint64_t *bytes, uint64_t *inodes,
                  int depth)
{
    struct stat st;
    if (depth > 256 || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
        return;
    *bytes += (uint64_t)st.st_blocks * 512;
    *inodes += 1;
    if (!S_ISDIR(st.st_mode))
        return;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            du_at(fd, de->d_name, dev, bytes, inodes, depth + 1);
    closedir(d);
}

static uint64_t memstat_field(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
            return strtoull(p + kl + 1, NULL, 10);
    return 0;
}

/* One process of /proc/<pid>/stat: parent, CPU ticks (utime + stime of the
 * process and cutime + cstime of the children it reaped) and RSS pages. */
typedef struct proc_usage {
    pid_t pid, ppid;
    uint64_t ticks, rss_pages;
    bool in_tree;
} proc_usage;

static int read_proc_usage(pid_t pid, proc_usage *pu)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    _cleanup_free_ char *s = read_small(p);
    const char *rp = s ? strrchr(s, ')') : NULL;
    unsigned long long ut = 0, st = 0;
    long long cut = 0, cst = 0, rss = 0;
    int ppid = 0;
    if (!rp || sscanf(rp + 2,
                      "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld %*d %*d "
                      "%*d %*d %*u %*u %lld",
                      &ppid, &ut, &st, &cut, &cst, &rss) != 6)
        return -1;
    pu->pid = pid;
    pu->ppid = (pid_t)ppid;
    pu->ticks = ut + st + (uint64_t)(cut > 0 ? cut : 0) + (uint64_t)(cst > 0 ? cst : 0);
    pu->rss_pages = rss > 0 ? (uint64_t)rss : 0;
    pu->in_tree = false;
    return 0;
}

/* CPU ticks and RSS pages of the process tree rooted at `init` (a container
 * without a cgroup): every live descendant's own and reaped children's CPU
 * time, and the sum of their RSS.  Processes that left the tree (exec'd by
 * `runc exec`, which are children of runc) are not counted.  Returns 0, or -1
 * when init is gone. */
static int proc_tree_usage(pid_t init, uint64_t *ticks, uint64_t *pages)
{
    proc_usage root;
    if (read_proc_usage(init, &root) < 0)
        return -1;
    *ticks = root.ticks;
    *pages = root.rss_pages;
    _cleanup_closedir_ DIR *d = opendir("/proc");
    if (!d)
        return 0;
    proc_usage *all = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long v = strtol(de->d_name, &end, 10);
        if (*end || v <= 0 || (pid_t)v == init)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 256;
            proc_usage *na = realloc(all, nc * sizeof(*na));
            if (!na)
                break;
            all = na;
            cap = nc;
        }
        if (read_proc_usage((pid_t)v, &all[n]) == 0)
            n++;
    }
    /* descendants: one pass per tree level; `tree` lists the pids found so
     * far (containers have few processes, the host may have many) */
    pid_t *tree = malloc((n + 1) * sizeof(*tree));
    size_t nt = 0;
    if (tree)
        tree[nt++] = init;
    bool changed = tree != NULL;
    while (changed) {
        changed = false;
        for (size_t i = 0; i < n; i++) {
            if (all[i].in_tree)
                continue;
            bool parent_in = false;
            for (size_t j = 0; !parent_in && j < nt; j++)
                parent_in = tree[j] == all[i].ppid;
            if (parent_in) {
                all[i].in_tree = true;
                tree[nt++] = all[i].pid;
                changed = true;
                *ticks += all[i].ticks;
                *pages += all[i].rss_pages;
            }
        }
    }
    free(tree);
    free(all);
    return 0;
}

static int oci_container_stats(hp_backend *b, hp_be_container *c, hp_be_stats *out, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    if (valid_id(c->id, "container", err) < 0)
        return -1;
    _cleanup_free_ char *dir = ctr_dir(be, c->id);
    struct stat sb;
    if (stat(dir, &sb) < 0)
        return hp_err_set(err, HP_NOT_FOUND, "container %s does not exist", c->id);
    int64_t ts = now_ns();
    uint64_t cpu_ns = 0, ws = 0, rss = 0, usage = 0;
    bool have_cg = false;
    _cleanup_free_ char *cgf = pathf("%s/cgroup", dir);
    _cleanup_free_ char *cg = read_small(cgf);
    if (cg) {
        _cleanup_free_ char *cpu = pathf("/sys/fs/cgroup/cpuacct%s/cpuacct.usage", cg);
        _cleanup_free_ char *mu = pathf("/sys/fs/cgroup/memory%s/memory.usage_in_bytes", cg);
        _cleanup_free_ char *ms = pathf("/sys/fs/cgroup/memory%s/memory.stat", cg);
        _cleanup_free_ char *cputxt = read_small(cpu);
        _cleanup_free_ char *stat_txt = read_small(ms);
        if (cputxt) {
            have_cg = true;
            cpu_ns = strtoull(cputxt, NULL, 10);
            usage = (uint64_t)read_int_file(mu, 0);
            uint64_t inactive = stat_txt ? memstat_field(stat_txt, "total_inactive_file") : 0;
            ws = usage > inactive ? usage - inactive : 0;
            rss = stat_txt ? memstat_field(stat_txt, "total_rss") : 0;
        }
    }
    bool have_proc = false;
    if (!have_cg) {
        pid_t pid = read_pid(dir);
        uint64_t ticks = 0, pages = 0;
        if (pid > 0 && !exit_file_exists(be, c->id) && proc_tree_usage(pid, &ticks, &pages) == 0) {
            long hz = sysconf(_SC_CLK_TCK);
            cpu_ns = ticks * (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
            rss = pages * (uint64_t)sysconf(_SC_PAGESIZE);
            ws = usage = rss;
            have_proc = true;
        }
    }
    uint64_t bytes = 0, inodes = 0;
    _cleanup_free_ char *upper = pathf("%s/upper", dir);
    struct stat us;
    if (upper && lstat(upper, &us) == 0)
        du_at(AT_FDCWD, upper, us.st_dev, &bytes, &inodes, 0);

    memset(out, 0, sizeof(*out));
    out->timestamp = ts;
    out->has_cpu = cpu_ns > 0 || have_cg || have_proc;
    out->cpu_usage_ns = cpu_ns;
    out->has_memory = usage > 0 || have_cg || have_proc;
    out->memory_working_set = ws;
    out->memory_rss = rss;
    out->memory_usage = usage;
    out->has_writable_layer = inodes > 0;
    out->writable_bytes = bytes;
    out->writable_inodes = inodes;
    snprintf(out->writable_mountpoint, sizeof(out->writable_mountpoint), "%s", be->root);
    return 0;
}

/* ---------- exits ---------- */

static void report_exit(oci_be *be, const char *name)
{
    if (!be->base.host.on_container_exit || strncmp(name, POD_PREFIX, strlen(POD_PREFIX)) == 0 ||
        name[0] == '.')
        return;
    hp_be_status st;
    hp_err e = HP_ERR_INIT;
    if (status_by_id(be, name, &st, &e) < 0)
        return;
    if (st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED)
        return;
    be->base.host.on_container_exit(be->base.host.ud, name, &st);
}

int hp_oci_poll_exits(hp_backend *b)
{
    oci_be *be = (oci_be *)b;
    if (be->inotify_fd < 0)
        return 0;
    int count = 0;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(be->inotify_fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->len && (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO))) {
                report_exit(be, ev->name);
                count++;
            }
            p += sizeof(*ev) + ev->len;
        }
    }
    return count;
}

static void on_exit_fd(void *ud, int fd, uint32_t events)
{
    (void)fd;
    (void)events;
    hp_oci_poll_exits(ud);
}

int hp_oci_scan_exits(hp_backend *b, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    _cleanup_closedir_ DIR *d = opendir(be->exits);
    if (!d)
        return hp_err_sys(err, HP_INTERNAL, "open %s", be->exits);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strncmp(de->d_name, POD_PREFIX, strlen(POD_PREFIX)) == 0)
            continue;
        report_exit(be, de->d_name);
        n++;
    }
    return n;
}

/* ---------- files of a container ---------- */

/* Fallback without openat2: walk component by component, never following a
 * symlink and refusing "..".  Returns an fd or -1 with errno. */
static int open_beneath_nofollow(int rootfd, const char *rel)
{
    _cleanup_free_ char *copy = strdup(rel);
    if (!copy)
        return -1;
    int dfd = dup(rootfd);
    char *save = NULL;
    char *comp = strtok_r(copy, "/", &save);
    while (comp && dfd >= 0) {
        char *next = strtok_r(NULL, "/", &save);
        if (strcmp(comp, "..") == 0) {
            close(dfd);
            errno = EPERM;
            return -1;
        }
        int flags = next ? O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
                         : O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC;
        int nfd = strcmp(comp, ".") == 0 ? dup(dfd) : openat(dfd, comp, flags);
        int e = errno;
        close(dfd);
        errno = e;
        dfd = nfd;
        comp = next;
    }
    return dfd;
}

int hp_oci_open_container_file(hp_backend *b, const char *id, const char *path, hp_err *err)
{
    oci_be *be = (oci_be *)b;
    if (valid_id(id, "container", err) < 0)
        return -1;
    if (!path || path[0] != '/')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "path \"%s\" is not absolute",
                          path ? path : "");
    _cleanup_free_ char *dir = ctr_dir(be, id);
    _cleanup_free_ char *cj = pathf("%s/config.json", dir);
    json_t *spec = json_load_file(cj, 0, NULL);
    if (!spec)
        return hp_err_set(err, HP_NOT_FOUND, "container %s does not exist", id);
    /* longest bind mount destination that is a prefix of path */
    const char *best_src = NULL;
    size_t best_len = 0;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(spec, "mounts"), i, m)
    {
        const char *type = json_string_value(json_object_get(m, "type"));
        const char *dst = json_string_value(json_object_get(m, "destination"));
        const char *src = json_string_value(json_object_get(m, "source"));
        if (!type || strcmp(type, "bind") || !dst || !src)
            continue;
        size_t dl = strlen(dst);
        if (strncmp(path, dst, dl) == 0 && (path[dl] == '/' || path[dl] == 0) && dl > best_len) {
            best_src = src;
            best_len = dl;
        }
    }
    _cleanup_free_ char *base = NULL;
    _cleanup_free_ char *lower = NULL; /* rootless overlay: tried when not in upper */
    const char *rest = path;
    json_t *m0 = json_array_get(json_object_get(spec, "mounts"), 0);
    const char *m0type = json_string_value(json_object_get(m0, "type"));
    const char *m0dst = json_string_value(json_object_get(m0, "destination"));
    const char *m0opt = json_string_value(json_array_get(json_object_get(m0, "options"), 0));
    if (best_src) {
        base = strdup(best_src);
        rest = path + best_len;
    } else if (m0type && strcmp(m0type, "overlay") == 0 && m0dst && strcmp(m0dst, "/") == 0 &&
               m0opt) {
        /* the root overlay exists only in the container's mount namespace:
         * look in the upper dir, then in the image (lowerdir) */
        const char *l = strstr(m0opt, "lowerdir="), *u = strstr(m0opt, "upperdir=");
        if (l)
            lower = strndup(l + 9, strcspn(l + 9, ",:"));
        if (u)
            base = strndup(u + 9, strcspn(u + 9, ","));
    } else {
        const char *rp = json_string_value(json_object_get(json_object_get(spec, "root"), "path"));
        base = rp && rp[0] == '/' ? strdup(rp) : pathf("%s/%s", dir, rp ? rp : "rootfs");
    }
    json_decref(spec);
    if (!base)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    _cleanup_close_ int rfd = open(base, O_PATH | O_CLOEXEC);
    if (rfd < 0)
        return hp_err_sys(err, HP_NOT_FOUND, "container %s: %s", id, base);
    while (*rest == '/')
        rest++;
    if (!*rest)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s is a directory", path);
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, rfd, rest, &how, sizeof(how));
    if (fd < 0 && errno == ENOSYS)
        fd = open_beneath_nofollow(rfd, rest);
    if (fd < 0 && errno == ENOENT && lower) {
        _cleanup_close_ int lfd = open(lower, O_PATH | O_CLOEXEC);
        if (lfd >= 0) {
            fd = (int)syscall(SYS_openat2, lfd, rest, &how, sizeof(how));
            if (fd < 0 && errno == ENOSYS)
                fd = open_beneath_nofollow(lfd, rest);
        }
    }
    if (fd < 0)
        return hp_err_sys(err, HP_NOT_FOUND, "container %s: %s", id, path);
    return fd;
}

/* ---------- instance ---------- */

static void oci_destroy(hp_backend *b)
{
    oci_be *be = (oci_be *)b;
    if (!be)
        return;
    if (be->janitor_started) {
        pthread_mutex_lock(&be->janitor_lock);
        be->janitor_stop = true;
        pthread_cond_signal(&be->janitor_cond);
        pthread_mutex_unlock(&be->janitor_lock);
        pthread_join(be->janitor, NULL);
    }
    pthread_mutex_destroy(&be->janitor_lock);
    pthread_cond_destroy(&be->janitor_cond);
    free(be->trash);
    if (be->inotify_fd >= 0)
        close(be->inotify_fd);
    free(be->base.handler);
    free(be->runtime);
    free(be->conmon);
    free(be->unshare);
    free(be->rm);
    free(be->runtime_root);
    free(be->root);
    free(be->run);
    free(be->exits);
    free(be->socks);
    free(be->pause_path);
    free(be->default_seccomp);
    free(be);
}

static const hp_backend_ops oci_ops = {
    .type = "oci",
    .sandbox_run = oci_sandbox_run,
    .sandbox_stop = oci_sandbox_stop,
    .sandbox_remove = oci_sandbox_remove,
    .sandbox_status = oci_sandbox_status,
    .container_create = oci_container_create,
    .container_start = oci_container_start,
    .container_stop = oci_container_stop,
    .container_remove = oci_container_remove,
    .container_status = oci_container_status,
    .container_stats = oci_container_stats,
    .exec_sync = oci_exec_sync,
    .reopen_log = oci_reopen_log,
    .update_resources = oci_update_resources,
    .exec_command = oci_exec_command,
    .attach_target = oci_attach_target,
    .forward_netns = oci_forward_netns,
    .destroy = oci_destroy,
};

static const hp_backend_ops charliecloud_ops = {
    .type = "charliecloud",
    .sandbox_run = oci_sandbox_run,
    .sandbox_stop = oci_sandbox_stop,
    .sandbox_remove = oci_sandbox_remove,
    .sandbox_status = oci_sandbox_status,
    .container_create = oci_container_create,
    .container_start = oci_container_start,
    .container_stop = oci_container_stop,
    .container_remove = oci_container_remove,
    .container_status = oci_container_status,
    .container_stats = oci_container_stats,
    .exec_sync = oci_exec_sync,
    .reopen_log = oci_reopen_log,
    .update_resources = oci_update_resources,
    .exec_command = oci_exec_command,
    .attach_target = oci_attach_target,
    .forward_netns = oci_forward_netns,
    .destroy = oci_destroy,
};

/* First /etc/subuid-style range for user (name or uid). */
static void subid_range(const char *file, uid_t uid, uint32_t *start, uint32_t *len)
{
    *start = *len = 0;
    _cleanup_fclose_ FILE *f = fopen(file, "re");
    if (!f)
        return;
    char name[256] = "";
    _cleanup_fclose_ FILE *pw = fopen("/etc/passwd", "re");
    char line[1024];
    while (pw && fgets(line, sizeof(line), pw)) {
        char *f1 = strchr(line, ':'), *f2 = f1 ? strchr(f1 + 1, ':') : NULL;
        if (f1 && f2 && (uid_t)strtoul(f2 + 1, NULL, 10) == uid) {
            snprintf(name, sizeof(name), "%.*s", (int)(f1 - line), line);
            break;
        }
    }
    char ustr[32];
    snprintf(ustr, sizeof(ustr), "%u", (unsigned)uid);
    while (fgets(line, sizeof(line), f)) {
        char *c1 = strchr(line, ':');
        if (!c1)
            continue;
        *c1 = 0;
        if (strcmp(line, ustr) && (!name[0] || strcmp(line, name)))
            continue;
        unsigned long s = 0, l = 0;
        if (sscanf(c1 + 1, "%lu:%lu", &s, &l) == 2 && l > 0) {
            *start = (uint32_t)s;
            *len = (uint32_t)(l > 65536 ? 65536 : l);
            return;
        }
    }
}

hp_backend *hp_oci_backend_new(const hp_handler_config *h, const hp_backend_env *env, hp_err *err)
{
    bool cc = h->type == HP_BACKEND_CHARLIECLOUD;
    _cleanup_free_ char *pods = NULL;
    _cleanup_free_ char *ctrs = NULL;
    if (!env || !env->root || !env->run_dir || !env->pause_path) {
        hp_err_set(err, HP_INVALID_ARGUMENT,
                   "oci backend: root, run_dir and pause_path are "
                   "required");
        return NULL;
    }
    oci_be *be = calloc(1, sizeof(*be));
    if (!be) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    be->inotify_fd = -1;
    pthread_mutex_init(&be->janitor_lock, NULL);
    pthread_cond_init(&be->janitor_cond, NULL);
    be->base.ops = cc ? &charliecloud_ops : &oci_ops;
    be->base.handler = strdup(h->name ? h->name : "");
    be->base.host = env->host;
    be->uid = env->uid;
    be->gid = getegid();
    const char *rt = hp_handler_opt(h, "runtime_path");
    const char *cm = hp_handler_opt(h, "conmon_path");
    const char *rr = hp_handler_opt(h, "runtime_root");
    const char *cgm = hp_handler_opt(h, "cgroup_manager");
    const char *rl = hp_handler_opt(h, "rootless");
    const char *net = hp_handler_opt(h, "network");
    const char *sec = hp_handler_opt(h, "default_seccomp");
    be->runtime = hp_proc_find_program(rt ? rt : "runc", err);
    if (!be->runtime)
        goto fail;
    be->conmon = hp_proc_find_program(cm ? cm : "conmon", err);
    if (!be->conmon)
        goto fail;
    if (access(env->pause_path, X_OK) < 0) {
        hp_err_sys(err, HP_FAILED_PRECONDITION, "pause program %s", env->pause_path);
        goto fail;
    }
    /* unprivileged: runc's own default (/run/runc unless XDG_RUNTIME_DIR is
     * set) may not be writable; keep its state next to ours */
    be->runtime_root = rr ? strdup(rr) : env->uid != 0 ? pathf("%s/oci/runc", env->run_dir) : NULL;
    if ((rr || env->uid != 0) && !be->runtime_root) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    be->pause_path = strdup(env->pause_path);
    be->default_seccomp = strdup(sec ? sec : "runtime/default");
    if (cc) {
        be->rootless = true;
        be->host_network = true;
        be->cgroups = false;
    } else {
        be->rootless = rl && strcmp(rl, "true") == 0    ? true
                       : rl && strcmp(rl, "false") == 0 ? false
                                                        : env->uid != 0;
        be->host_network = net ? strcmp(net, "host") == 0 : be->rootless;
        be->cgroups = cgm ? strcmp(cgm, "cgroupfs") == 0 : !be->rootless;
        if (be->cgroups && be->rootless && access("/sys/fs/cgroup/cpuacct", W_OK) < 0) {
            hp_info("handler \"%s\": rootless without a delegated cgroup tree: cgroups are not "
                    "managed",
                    h->name ? h->name : "");
            be->cgroups = false;
        }
    }
    if (be->rootless) {
        struct utsname un;
        unsigned maj = 0, min = 0;
        be->userns_overlay = uname(&un) == 0 && sscanf(un.release, "%u.%u", &maj, &min) == 2 &&
                             (maj > 5 || (maj == 5 && min >= 11));
        hp_err e2 = HP_ERR_INIT;
        be->unshare = hp_proc_find_program("unshare", &e2);
        be->rm = hp_proc_find_program("rm", &e2);
        subid_range("/etc/subuid", be->uid, &be->subuid_start, &be->subuid_len);
        subid_range("/etc/subgid", be->uid, &be->subgid_start, &be->subgid_len);
    }
    be->min_oom = (int)read_int_file("/proc/self/oom_score_adj", 0);
    be->root = pathf("%s/oci", env->root);
    be->run = pathf("%s/oci", env->run_dir);
    be->exits = pathf("%s/oci/exits", env->run_dir);
    be->socks = pathf("%s/oci/sock", env->run_dir);
    if (!be->root || !be->run || !be->exits || !be->socks || !be->pause_path) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    pods = pathf("%s/pods", be->root);
    ctrs = pathf("%s/containers", be->root);
    be->trash = pathf("%s/trash", be->root);
    if (!be->trash || mkdir_p(be->trash, 0700, err) < 0)
        goto fail;
    if (pthread_create(&be->janitor, NULL, janitor_main, be) == 0)
        be->janitor_started = true;
    else
        hp_warn("oci backend: no janitor thread; removals are synchronous");
    if (mkdir_p(pods, 0700, err) < 0 || mkdir_p(ctrs, 0700, err) < 0 ||
        mkdir_p(be->exits, 0700, err) < 0 || mkdir_p(be->socks, 0700, err) < 0)
        goto fail;
    be->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (be->inotify_fd < 0 ||
        inotify_add_watch(be->inotify_fd, be->exits, IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
        hp_err_sys(err, HP_INTERNAL, "inotify on %s", be->exits);
        goto fail;
    }
    if (env->watch_fd && env->watch_fd(env->loop_ud, be->inotify_fd, on_exit_fd, be, err) < 0)
        goto fail;
    return &be->base;
fail:
    oci_destroy(&be->base);
    return NULL;
}
