/* The streaming server: Exec, Attach and PortForward sessions.
 *
 * The CRI calls Exec/Attach/PortForward only hand out a URL; the kubelet (or
 * crictl) then connects to it with HTTP/1.1, upgrades to SPDY/3.1 and speaks
 * Kubernetes' remotecommand or portforward protocol (src/stream/session.c).
 * The CRI layer resolves what a session needs (the host command that runs the
 * process in the container, the monitor's attach socket, the pod's network
 * namespace) through the backend and offers it here; the server keeps each
 * offer under a random single-use token for 60 s.
 *
 * Threads: one listener thread; one thread per session (sessions are few and
 * long-lived; each polls its socket and its process's pipes).
 */
#ifndef HP_STREAM_STREAM_H
#define HP_STREAM_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

typedef struct hp_stream_server hp_stream_server;

typedef enum hp_stream_kind {
    HP_STREAM_EXEC,
    HP_STREAM_ATTACH,
    HP_STREAM_PORTFORWARD,
} hp_stream_kind;

/* What one session does.  Every string and array is owned by the request and
 * freed by hp_stream_req_free. */
typedef struct hp_stream_req {
    hp_stream_kind kind;
    char *target; /* container or pod id, for logs */
    bool tty, in, out, err;
    /* exec: argv (NULL-terminated) of a host command whose stdio is the
     * process's (the backend's `runc exec`, `srun ... runc exec`, ...); with
     * tty it runs on a pseudo-terminal as a session leader. */
    char **argv;
    /* attach: the monitor's attach socket (SOCK_SEQPACKET, conmon framing),
     * its control fifo (resize), and the exit file holding the exit code. */
    char *attach_socket, *control_fifo, *exit_file;
    /* portforward: the network namespace to connect in (NULL = the host's),
     * and the port the CRI call named (0 = any the client asks for). */
    char *netns;
    int32_t port;
} hp_stream_req;

void hp_stream_req_free(hp_stream_req *r);

/* Listen on addr:port (port 0 = ephemeral).  Returns a running server owned
 * by the caller (hp_stream_server_free), or NULL with err. */
hp_stream_server *hp_stream_server_new(const char *addr, int port, hp_err *err);

/* Keep req (ownership passes to the server, also on error) under a new
 * token.  Returns the session URL (malloc'd, caller frees), or NULL with err
 * (RESOURCE_EXHAUSTED when too many offers are pending). */
char *hp_stream_server_offer(hp_stream_server *srv, hp_stream_req *req, hp_err *err);

/* The port the server listens on. */
int hp_stream_server_port(const hp_stream_server *srv);

/* Stop listening, end every session (their processes get SIGTERM/SIGKILL)
 * and wait for their threads.  NULL is a no-op. */
void hp_stream_server_free(hp_stream_server *srv);

/* One session over an upgraded connection (session.c); protocol is the
 * negotiated X-Stream-Protocol-Version.  Runs until the session ends; fd is
 * borrowed.  `stop` is an eventfd that becomes readable at shutdown. */
void hp_stream_session_run(int fd, int stop_fd, const hp_stream_req *req, const char *protocol);

#endif
