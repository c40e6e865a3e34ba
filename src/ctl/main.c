/* hpcri-ctl: a crictl-like command-line client for hpcri. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "ctl/ctl.h"

struct command {
    const char *name;
    ctl_cmd_fn fn;
    const char *help;
};

static const struct command commands[] = {
    {"version", cmd_version, "Show the runtime name and version"},
    {"info", cmd_info, "Show the runtime status (Status, verbose)"},
    {"images", cmd_images, "List images [-q] [REF]"},
    {"imagefsinfo", cmd_imagefsinfo, "Show image filesystem usage"},
    {"pull", cmd_pull, "Pull an image: pull REF [--creds USER:PASS]"},
    {"rmi", cmd_rmi, "Remove images: rmi ID..."},
    {"import", cmd_import,
     "Import a local image (OCI layout/archive, docker save): import [--name REF] FILE"},
    {"inspecti", cmd_inspecti, "Show image status: inspecti ID"},
    {"pods", cmd_pods, "List pod sandboxes [-q]"},
    {"runp", cmd_runp, "Run a pod sandbox: runp POD_CONFIG.json"},
    {"stopp", cmd_stopp, "Stop pod sandboxes: stopp ID..."},
    {"rmp", cmd_rmp, "Remove pod sandboxes: rmp ID..."},
    {"inspectp", cmd_inspectp, "Show pod sandbox status: inspectp ID"},
    {"ps", cmd_ps, "List containers [-a] [-q] [-p POD]"},
    {"create", cmd_create, "Create a container: create POD_ID CONTAINER.json POD.json"},
    {"start", cmd_start, "Start containers: start ID..."},
    {"stop", cmd_stop, "Stop containers: stop [-t SECONDS] ID..."},
    {"rm", cmd_rm, "Remove containers: rm ID..."},
    {"inspect", cmd_inspect, "Show container status: inspect ID"},
    {"exec", cmd_exec, "Run a command in a container: exec --sync ID CMD..."},
    {"logs", cmd_logs, "Print a container's log: logs [-f] [--tail N] [--timestamps] ID"},
    {"stats", cmd_stats, "Show container resource usage [ID...]"},
    {"events", cmd_events, "Stream container events until interrupted"},
    {"raw", cmd_raw, "Call any method: raw METHOD [-d DATA] [--print] [--stream]"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: hpcri-ctl [--socket PATH] [--timeout SECONDS] [-o table|json] COMMAND "
               "[ARGS]\n\n"
               "Socket: --socket, else $HPCRI_SOCKET, else /run/hpcri/hpcri.sock (root) or\n"
               "$XDG_RUNTIME_DIR/hpcri/hpcri.sock (fallback /tmp/hpcri-$UID/hpcri.sock).\n\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    struct ctl ctl = {.timeout_ms = -1, .sigfd = -1};
    hp_err err = HP_ERR_INIT;
    static const struct option longopts[] = {
        CTL_COMMON_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "+ho:", longopts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 0;
        }
        int r = ctl_common_opt(&ctl, opt, optarg, &err);
        if (r < 0)
            goto fail;
        if (r == 0) {
            usage(stderr);
            return 1;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 1;
    }
    const char *name = argv[optind];
    const struct command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            cmd = &commands[i];
    if (!cmd) {
        if (strcmp(name, "help") == 0) {
            usage(stdout);
            return 0;
        }
        hp_err_set(&err, HP_INVALID_ARGUMENT, "unknown command \"%s\" (see hpcri-ctl --help)",
                   name);
        goto fail;
    }

    if (optind + 1 < argc &&
        (strcmp(argv[optind + 1], "--help") == 0 || strcmp(argv[optind + 1], "-h") == 0)) {
        printf("hpcri-ctl %s: %s\n", cmd->name, cmd->help);
        return 0;
    }

    /* SIGINT/SIGTERM become readable on a signalfd that cancels calls in flight. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) == 0)
        ctl.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    optind = 0; /* re-initialise getopt for the command */
    int rc = cmd->fn(&ctl, sub_argc, sub_argv, &err);
    hp_client_free(ctl.client);
    if (ctl.sigfd >= 0)
        close(ctl.sigfd);
    if (fflush(stdout) != 0 && rc >= 0) {
        hp_err_sys(&err, HP_INTERNAL, "writing output");
        rc = -1;
    }
    if (rc >= 0)
        return rc;
fail:
    fprintf(stderr, "hpcri-ctl: %s: %s\n", hp_status_name(err.code), err.msg);
    return 1;
}
