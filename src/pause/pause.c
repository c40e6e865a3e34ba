/* hpcri-pause: the process that holds a pod sandbox's namespaces.
 *
 * It does nothing but wait: it exits 0 on SIGTERM/SIGINT, reaps any child
 * that is re-parented to it (it is PID 1 of the pod's PID namespace when the
 * pod shares one), and ignores everything else.  Static, no allocation.
 *
 * Two ways to run it:
 *  - as the process of a pause container (`hpcri-pause`, no arguments): the
 *    OCI runtime made the namespaces; used for rootless pods, whose pause
 *    also owns the pod's user namespace;
 *  - `hpcri-pause --spawn [options]`: it makes the namespaces itself, without
 *    an OCI runtime or a monitor (the daemon runs this as root; one fork+exec
 *    of a static binary instead of conmon + `runc create` + `runc start`):
 *        --ns LIST          comma-separated: ipc, uts, net, pid
 *        --hostname NAME    set in the new UTS namespace
 *        --sysctl KEY=VALUE written to /proc/sys/KEY (dots = slashes), in the
 *                           new namespaces; repeatable
 *        --oom-score-adj N
 *        --cgroup PATH      joined in every mounted hierarchy (created if need be)
 *    The namespaces are unshared, then a child is forked (PID 1 of the new PID
 *    namespace when `pid` is listed) that sets everything up, detaches
 *    (setsid, stdio on /dev/null, every capability dropped, no_new_privs) and
 *    waits.  The first process prints the child's pid on stdout and exits 0
 *    once the child reported success, or prints the child's error on stderr
 *    and exits 1.  The child is re-parented away from the daemon, so it lives
 *    on across daemon restarts; the daemon recognises it by pid + start time.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SYSCTLS 128

static int wait_forever(void)
{
    sigset_t set;
    int sig;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGCHLD) {
            while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
            continue;
        }
        return 0;
    }
}

typedef struct spawn_opts {
    int ns_flags;
    const char *hostname;
    const char *sysctls[MAX_SYSCTLS];
    int n_sysctls;
    const char *oom;
    const char *cgroup;
} spawn_opts;

/* Report an error through the sync pipe (the first process prints it) and
 * exit: only in the child. */
static void __attribute__((noreturn, format(printf, 2, 3))) fail(int sync_fd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(msg))
        n = sizeof(msg) - 1;
    if (write(sync_fd, msg, (size_t)n) < 0)
        _exit(2);
    _exit(1);
}

static int write_str(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = strlen(s);
    ssize_t n = write(fd, s, len);
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)len ? 0 : -1;
}

static int mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc < 0 && errno != EEXIST)
            return -1;
    }
    return mkdir(path, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* Join `cg` in every hierarchy under /sys/fs/cgroup (cgroup v1 controllers
 * and named hierarchies; or the v2 unified root).  Symlinks (cpu ->
 * cpu,cpuacct) are skipped: they name a hierarchy already listed.  A
 * hierarchy that refuses (not delegated, read-only) is left out. */
static void join_cgroup(const char *cg)
{
    char path[4096];
    if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) {
        snprintf(path, sizeof(path), "/sys/fs/cgroup%s", cg);
        if (mkdir_p(path) == 0) {
            strncat(path, "/cgroup.procs", sizeof(path) - strlen(path) - 1);
            write_str(path, "0");
        }
        return;
    }
    DIR *d = opendir("/sys/fs/cgroup");
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || de->d_type != DT_DIR)
            continue;
        int n = snprintf(path, sizeof(path), "/sys/fs/cgroup/%s%s", de->d_name, cg);
        if (n < 0 || (size_t)n >= sizeof(path) - 16 || mkdir_p(path) < 0)
            continue;
        strcat(path, "/cgroup.procs");
        write_str(path, "0");
    }
    closedir(d);
}

static void drop_caps(int sync_fd)
{
    for (int c = 0; c <= 63; c++)
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
            fail(sync_fd, "drop capability %d from the bounding set: %s", c, strerror(errno));
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &h, data) < 0)
        fail(sync_fd, "capset: %s", strerror(errno));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail(sync_fd, "no_new_privs: %s", strerror(errno));
}

/* The pause child: set up, report "ok", wait. */
static int __attribute__((noreturn)) child(const spawn_opts *o, int sync_fd)
{
    if (setsid() < 0)
        fail(sync_fd, "setsid: %s", strerror(errno));
    if (o->hostname && sethostname(o->hostname, strlen(o->hostname)) < 0)
        fail(sync_fd, "sethostname %s: %s", o->hostname, strerror(errno));
    if (o->ns_flags & CLONE_NEWNET) {
        /* a new network namespace has a loopback device that is down */
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        strcpy(ifr.ifr_name, "lo");
        if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
            fail(sync_fd, "loopback: %s", strerror(errno));
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
            fail(sync_fd, "bring up loopback: %s", strerror(errno));
        close(s);
    }
    for (int i = 0; i < o->n_sysctls; i++) {
        char path[512];
        const char *eq = strchr(o->sysctls[i], '=');
        int klen = (int)(eq - o->sysctls[i]);
        int n = snprintf(path, sizeof(path), "/proc/sys/%.*s", klen, o->sysctls[i]);
        if (n < 0 || (size_t)n >= sizeof(path))
            fail(sync_fd, "sysctl %.*s: name too long", klen, o->sysctls[i]);
        for (char *p = path + 10; *p; p++)
            if (*p == '.')
                *p = '/';
        if (write_str(path, eq + 1) < 0)
            fail(sync_fd, "sysctl %.*s=%s: %s", klen, o->sysctls[i], eq + 1, strerror(errno));
    }
    if (o->cgroup)
        join_cgroup(o->cgroup);
    if (o->oom && write_str("/proc/self/oom_score_adj", o->oom) < 0)
        fail(sync_fd, "oom_score_adj %s: %s", o->oom, strerror(errno));
    if (chdir("/") < 0)
        fail(sync_fd, "chdir /: %s", strerror(errno));
    drop_caps(sync_fd);
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0)
        fail(sync_fd, "/dev/null: %s", strerror(errno));
    close(nul);
    if (write(sync_fd, "ok", 2) != 2)
        _exit(1);
    close(sync_fd);
    _exit(wait_forever());
}

static int usage(const char *msg, const char *arg)
{
    fprintf(stderr, "hpcri-pause: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    return 2;
}

static int parse_ns(const char *list, int *flags)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "ipc") == 0)
            *flags |= CLONE_NEWIPC;
        else if (strcmp(t, "uts") == 0)
            *flags |= CLONE_NEWUTS;
        else if (strcmp(t, "net") == 0)
            *flags |= CLONE_NEWNET;
        else if (strcmp(t, "pid") == 0)
            *flags |= CLONE_NEWPID;
        else
            return -1;
    }
    return 0;
}

static int spawn(int argc, char **argv)
{
    spawn_opts o;
    memset(&o, 0, sizeof(o));
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage("missing value", a);
        if (strcmp(a, "--ns") == 0) {
            if (parse_ns(v, &o.ns_flags) < 0)
                return usage("unknown namespace in", v);
        } else if (strcmp(a, "--hostname") == 0) {
            o.hostname = v;
        } else if (strcmp(a, "--sysctl") == 0) {
            if (!strchr(v, '=') || v[0] == '=' || strstr(v, "..") || o.n_sysctls >= MAX_SYSCTLS)
                return usage("bad sysctl", v);
            o.sysctls[o.n_sysctls++] = v;
        } else if (strcmp(a, "--oom-score-adj") == 0) {
            o.oom = v;
        } else if (strcmp(a, "--cgroup") == 0) {
            if (v[0] != '/' || strstr(v, ".."))
                return usage("bad cgroup path", v);
            o.cgroup = v;
        } else {
            return usage("unknown option", a);
        }
        i++;
    }
    if (o.hostname && !(o.ns_flags & CLONE_NEWUTS))
        return usage("--hostname needs the uts namespace", NULL);
    if (o.ns_flags && unshare(o.ns_flags) < 0) {
        fprintf(stderr, "hpcri-pause: unshare: %s\n", strerror(errno));
        return 1;
    }
    int sp[2];
    if (pipe2(sp, O_CLOEXEC) < 0) {
        fprintf(stderr, "hpcri-pause: pipe: %s\n", strerror(errno));
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "hpcri-pause: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        close(sp[0]);
        child(&o, sp[1]);
    }
    close(sp[1]);
    char msg[512];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(sp[0], msg + len, sizeof(msg) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof(msg) - 1)
            break;
    }
    msg[len] = 0;
    if (strcmp(msg, "ok") != 0) {
        fprintf(stderr, "hpcri-pause: %s\n", len ? msg : "the pause process died during set-up");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return 1;
    }
    printf("%d\n", (int)pid);
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        puts("hpcri-pause 0.2.0");
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--spawn") == 0)
        return spawn(argc, argv);
    return wait_forever();
}
