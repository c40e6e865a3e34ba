/* hpcri-pause: the process that holds a pod sandbox's namespaces.
 *
 * It does nothing but wait: it exits 0 on SIGTERM/SIGINT, reaps any child
 * that is re-parented to it (it is PID 1 of the pod's PID namespace when the
 * pod shares one), and ignores everything else.  Static, no allocation.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    sigset_t set;
    int sig;

    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        puts("hpcri-pause 0.1.0");
        return 0;
    }
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
