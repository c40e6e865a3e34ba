/* hpcri: a CRI v1 runtime server for HPC.
 *
 * main() parses the command line, loads the config (or the embedded
 * defaults), takes the socket lock, opens the state store, registers the CRI
 * services on the gRPC server and runs its event loop until SIGTERM/SIGINT.
 * SIGHUP reloads the config file where that is safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cri/cri_internal.h"
#include "cri/daemon.h"
#include "stream/stream.h"
#include "image/helper.h"
#include "util/cleanup.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage: hpcri [OPTIONS]\n"
                 "A Container Runtime Interface (CRI v1) server for HPC.\n\n"
                 "  --listen PATH        unix socket to serve (default: /run/hpcri/hpcri.sock as\n"
                 "                       root, $XDG_RUNTIME_DIR/hpcri/hpcri.sock otherwise)\n"
                 "  --config FILE        configuration file (default: /etc/hpcri/hpcri.conf as\n"
                 "                       root, $XDG_CONFIG_HOME/hpcri/hpcri.conf otherwise, when\n"
                 "                       present; embedded defaults without one)\n"
                 "  --root DIR           state directory (database, images, bundles)\n"
                 "  --log-level LEVEL    error, warn, info or debug\n"
                 "  --check-config FILE  validate FILE, print what hpcri would do, and exit\n"
                 "  --version            print the version and exit\n"
                 "  --help               print this help and exit\n");
}

/* Default config file path when --config is not given. Returns a malloc'd path
 * (caller frees) when the file exists, else NULL. */
static char *default_config_path(void)
{
    char *p = NULL;
    if (getuid() == 0) {
        p = strdup("/etc/hpcri/hpcri.conf");
    } else {
        const char *xdg = getenv("XDG_CONFIG_HOME");
        const char *home = getenv("HOME");
        if (xdg && *xdg) {
            if (asprintf(&p, "%s/hpcri/hpcri.conf", xdg) < 0)
                p = NULL;
        } else if (home && *home) {
            if (asprintf(&p, "%s/.config/hpcri/hpcri.conf", home) < 0)
                p = NULL;
        }
    }
    if (p && access(p, F_OK) != 0) {
        free(p);
        p = NULL;
    }
    return p;
}

/* mkdir -p with the given mode for newly created components. */
static int mkdir_p(const char *path, mode_t mode, hp_err *err)
{
    _cleanup_free_ char *tmp = strdup(path);
    if (tmp == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, mode) < 0 && errno != EEXIST)
                return hp_err_sys(err, HP_INTERNAL, "cannot create directory %s", tmp);
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return 0;
}

/* Take an exclusive lock on <socket>.lock so a second instance refuses to
 * start instead of stealing the socket.  Returns the locked fd. */
static int take_socket_lock(const char *socket_path, hp_err *err)
{
    _cleanup_free_ char *lock_path = NULL;
    _cleanup_close_ int fd = -1;
    char pid[32];
    int n;

    if (asprintf(&lock_path, "%s.lock", socket_path) < 0)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return hp_err_sys(err, HP_INTERNAL, "cannot open lock file %s", lock_path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) {
            char other[32] = "";
            ssize_t r = pread(fd, other, sizeof other - 1, 0);
            if (r > 0)
                other[strcspn(other, "\n")] = '\0';
            return hp_err_set(err, HP_FAILED_PRECONDITION,
                              "another hpcri (pid %s) is already serving %s (lock %s held)",
                              r > 0 ? other : "?", socket_path, lock_path);
        }
        return hp_err_sys(err, HP_INTERNAL, "cannot lock %s", lock_path);
    }
    n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        return hp_err_sys(err, HP_INTERNAL, "cannot write %s", lock_path);
    return hp_steal_fd(&fd);
}

/* Command-line settings win over the config file, at start and on reload. */
static int apply_overrides(hp_daemon *d, hp_config *cfg, hp_err *err)
{
    if (d->opt_listen && hp_config_set_listen(cfg, d->opt_listen, err) < 0)
        return hp_err_wrap(err, "--listen");
    if (d->opt_root && hp_config_set_root(cfg, d->opt_root, err) < 0)
        return hp_err_wrap(err, "--root");
    if (d->opt_level && hp_config_set_log_level(cfg, d->opt_level, err) < 0)
        return hp_err_wrap(err, "--log-level");
    return 0;
}

/* Loop callback for the signalfd: TERM/INT shut down, HUP reloads. */
static void on_signal(void *ud, int fd, uint32_t events)
{
    hp_daemon *d = ud;
    struct signalfd_siginfo si;
    (void)events;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            hp_err err = HP_ERR_INIT;
            hp_config *next;
            _cleanup_free_ char *summary = NULL;
            bool needs_restart = false;
            if (d->config_path == NULL) {
                hp_info("SIGHUP: no config file in use (embedded defaults); nothing to reload");
                continue;
            }
            next = hp_config_load(d->config_path, getuid(), &err);
            if (next == NULL) {
                hp_error("SIGHUP: config not reloaded, keeping the current one: %s", err.msg);
                continue;
            }
            if (apply_overrides(d, next, &err) < 0 ||
                hp_config_diff(d->cfg, next, &summary, &needs_restart) < 0) {
                hp_error("SIGHUP: config not reloaded: %s", err.code ? err.msg : "out of memory");
                hp_config_free(next);
                continue;
            }
            if (needs_restart && hp_config_keep_restart_settings(next, d->cfg, &err) < 0) {
                hp_error("SIGHUP: config not reloaded: %s", err.msg);
                hp_config_free(next);
                continue;
            }
            hp_cri_backends_retire(d, d->cfg, next);
            pthread_rwlock_wrlock(&d->cfg_lock);
            hp_config *old = d->cfg;
            d->cfg = next;
            atomic_store(&d->log.level, next->log_level);
            pthread_rwlock_unlock(&d->cfg_lock);
            hp_config_free(old);
            if (summary && *summary) {
                for (char *line = strtok(summary, "\n"); line; line = strtok(NULL, "\n"))
                    hp_info("SIGHUP: %s", line);
            }
            hp_info("SIGHUP: config %s reloaded%s", d->config_path,
                    summary && *summary ? "" : " (no changes)");
        } else {
            hp_info("received %s, shutting down (in-flight calls get 5 s)",
                    strsignal((int)si.ssi_signo));
            hp_rpc_server_shutdown(d->rpc, 5000);
            /* event streams never end by themselves: end them now so they do
             * not hold the shutdown for the whole grace period */
            hp_cri_events_free(d);
        }
    }
}

/* The pause binary: the configured path, else hpcri-pause next to hpcri.
 * Returns a malloc'd path (caller frees), NULL on ENOMEM. */
static char *find_pause(const hp_config *cfg)
{
    char self[4096];
    ssize_t n;
    char *slash, *out = NULL;
    if (cfg->pause_path)
        return strdup(cfg->pause_path);
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return strdup("hpcri-pause");
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    if (asprintf(&out, "%s/hpcri-pause", self) < 0)
        return NULL;
    return out;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void daemon_fini(hp_daemon *d)
{
    hp_cri_events_free(d);
    hp_rpc_server_free(d->rpc);
    hp_stream_server_free(d->streams); /* after the RPC workers: none offers any more */
    hp_cri_backends_free(d);
    hp_image_service_free(d->images);
    hp_store_close(d->store);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    hp_config_free(d->cfg);
    pthread_rwlock_destroy(&d->cfg_lock);
    pthread_mutex_destroy(&d->be_lock);
    pthread_mutex_destroy(&d->ev_lock);
    pthread_mutex_destroy(&d->exit_lock);
    free(d->pause_path);
    free(d->image_helper);
    free(d->config_path);
    free(d->socket_path);
    free(d->root);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"config", required_argument, NULL, 'c'},
        {"root", required_argument, NULL, 'r'},
        {"log-level", required_argument, NULL, 'L'},
        {"check-config", required_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *listen = NULL, *config = NULL, *root = NULL, *level = NULL, *check = NULL;
    /* Two malloc arenas, not eight per core: the worker threads mostly wait
     * for child processes, and every arena keeps its own resident pages
     * (bench/README.md, "Daemon memory": 8.4 -> 7.1 MB after 50 pods). */
    mallopt(M_ARENA_MAX, 2);
    hp_daemon d = {.lock_fd = -1};
    hp_err err = HP_ERR_INIT;
    _cleanup_free_ char *db_path = NULL;
    _cleanup_close_ int sfd = -1;
    sigset_t mask;
    int c, rc = 1;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            listen = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'r':
            root = optarg;
            break;
        case 'L':
            level = optarg;
            break;
        case 'C':
            check = optarg;
            break;
        case 'V':
            printf("hpcri %s (CRI runtime.v1)\n", HPCRI_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hpcri: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    atomic_store(&d.log.level, HP_LOG_INFO);
    hp_log_attach(&d.log);

    if (check) {
        hp_config *cfg = hp_config_load(check, getuid(), &err);
        if (cfg == NULL) {
            fprintf(stderr, "hpcri: %s\n", err.msg);
            return 1;
        }
        printf("%s: configuration is valid\n", check);
        hp_config_describe(cfg, stdout);
        hp_config_free(cfg);
        return 0;
    }

    pthread_rwlock_init(&d.cfg_lock, NULL);
    pthread_mutex_init(&d.be_lock, NULL);
    pthread_mutex_init(&d.ev_lock, NULL);
    pthread_mutex_init(&d.exit_lock, NULL);
    d.config_path = config ? strdup(config) : default_config_path();
    d.cfg = d.config_path ? hp_config_load(d.config_path, getuid(), &err)
                          : hp_config_default(getuid(), &err);
    if (d.cfg == NULL) {
        hp_error("configuration: %s", err.msg);
        goto out;
    }
    d.opt_listen = listen;
    d.opt_root = root;
    d.opt_level = level;
    if (apply_overrides(&d, d.cfg, &err) < 0) {
        hp_error("%s", err.msg);
        goto out;
    }
    atomic_store(&d.log.level, d.cfg->log_level);
    d.socket_path = strdup(d.cfg->listen);
    d.root = strdup(d.cfg->root);
    d.started_at = now_ns();
    d.pause_path = find_pause(d.cfg);
    d.image_helper = hp_image_helper_find();
    if (d.socket_path == NULL || d.root == NULL || d.image_helper == NULL) {
        hp_error("out of memory");
        goto out;
    }

    {
        _cleanup_free_ char *sockdir = strdup(d.socket_path);
        char *slash = sockdir ? strrchr(sockdir, '/') : NULL;
        if (slash && slash != sockdir) {
            *slash = '\0';
            if (mkdir_p(sockdir, 0711, &err) < 0) {
                hp_error("%s", err.msg);
                goto out;
            }
        }
    }
    if (mkdir_p(d.root, 0700, &err) < 0) {
        hp_error("%s", err.msg);
        goto out;
    }
    d.lock_fd = take_socket_lock(d.socket_path, &err);
    if (d.lock_fd < 0) {
        hp_error("%s", err.msg);
        goto out;
    }
    if (asprintf(&db_path, "%s/hpcri.db", d.root) < 0) {
        db_path = NULL;
        goto out;
    }
    d.store = hp_store_open(db_path, &err);
    if (d.store == NULL) {
        hp_error("state store %s: %s", db_path, err.msg);
        goto out;
    }

    d.images = hp_image_service_new(d.root, d.store, &err);
    if (d.images == NULL) {
        hp_error("image service: %s", err.msg);
        goto out;
    }

    hp_rpc_options ro = {
        .socket_path = d.socket_path,
        .socket_mode = getuid() == 0 ? 0660 : 0600,
        .workers = (unsigned)d.cfg->workers,
    };
    d.rpc = hp_rpc_server_new(&ro, &err);
    if (d.rpc == NULL) {
        hp_error("cannot serve %s: %s", d.socket_path, err.msg);
        goto out;
    }
    d.streams = hp_stream_server_new(d.cfg->stream_address, d.cfg->stream_port, &err);
    if (d.streams == NULL) {
        hp_error("%s", err.msg);
        goto out;
    }
    hp_debug("streaming server on %s port %d", d.cfg->stream_address,
             hp_stream_server_port(d.streams));
    if (hp_cri_register(&d, &err) < 0) {
        hp_error("%s", err.msg);
        goto out;
    }

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || hp_rpc_server_watch_fd(d.rpc, sfd, on_signal, &d, &err) < 0) {
        hp_error("cannot watch signals: %s", sfd < 0 ? strerror(errno) : err.msg);
        goto out;
    }

    if (hp_cri_reconcile(&d, &err) < 0)
        hp_warn("recovery: %s", err.msg);
    hp_info("hpcri %s serving CRI v1 on %s (state %s, config %s)", HPCRI_VERSION, d.socket_path,
            d.root, d.config_path ? d.config_path : "embedded defaults");
    if (hp_rpc_server_run(d.rpc, &err) < 0) {
        hp_error("event loop: %s", err.msg);
        goto out;
    }
    hp_rpc_server_unwatch_fd(d.rpc, sfd);
    hp_info("hpcri stopped");
    rc = 0;
out:
    daemon_fini(&d);
    return rc;
}
