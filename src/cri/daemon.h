/* The daemon context: the one place hpcri keeps mutable state.
 *
 * main() fills it, the CRI handlers receive it as their `ud`, and every
 * subsystem hangs off it.  Fields are written at start-up only, except `cfg`
 * (replaced on SIGHUP under cfg_lock) and the log level.
 */
#ifndef HP_CRI_DAEMON_H
#define HP_CRI_DAEMON_H

#include <pthread.h>
#include <stdint.h>

#include "backend/backend.h"
#include "config/config.h"
#include "image/service.h"
#include "rpc/rpc.h"
#include "store/store.h"
#include "util/log.h"

#define HPCRI_VERSION "0.1.0"

typedef struct hp_daemon {
    struct hp_log log;
    char *config_path; /* file given or found; NULL = embedded defaults; owned */
    hp_config *cfg;    /* owned; swap under cfg_lock */
    pthread_rwlock_t cfg_lock;
    hp_store *store;                  /* owned */
    hp_image_service *images;         /* owned */
    hp_rpc_server *rpc;               /* owned */
    struct hp_stream_server *streams; /* owned: Exec/Attach/PortForward sessions */
    char *socket_path;                /* owned copy of the socket we serve */
    char *root;                       /* owned: state dir */
    char *pause_path;                 /* owned: hpcri-pause binary */
    char *image_helper;               /* owned: hpcri-image binary (image/helper.h) */
    int lock_fd;                      /* flock'd <socket>.lock, -1 if none */
    int64_t started_at;               /* unix ns */
    /* Backend instances, one per RuntimeClass handler, created on first use
     * (backends.c).  Stale ones (handler changed on SIGHUP) are retired, not
     * freed, until shutdown so a call in flight keeps a valid pointer. */
    pthread_mutex_t be_lock;
    struct hp_backend_slot *backends; /* owned array */
    size_t n_backends;
    /* GetContainerEvents subscribers (events.c). */
    pthread_mutex_t ev_lock;
    /* Serialises recording container exits (containers.c: record_exit). */
    pthread_mutex_t exit_lock;
    hp_rpc_stream **subscribers; /* owned array of references */
    size_t n_subscribers;
    const char *opt_listen; /* command-line overrides (argv storage), NULL if not given */
    const char *opt_root;
    const char *opt_level;
} hp_daemon;

/* Register every runtime.v1 method on d->rpc: implemented ones with their
 * handlers, the rest answering UNIMPLEMENTED with the method's name. */
int hp_cri_register(hp_daemon *d, hp_err *err);

#endif
