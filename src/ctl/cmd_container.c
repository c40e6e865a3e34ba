/* hpcri-ctl commands: ps, create, start, stop, rm, inspect, exec, logs, stats. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "ctl/ctl.h"
#include "ctl/pbjson.h"
#include "util/cleanup.h"

#define PBM(m) ((ProtobufCMessage *)(m))

static int usage_err(const char *usage, hp_err *err)
{
    return hp_err_set(err, HP_INVALID_ARGUMENT, "usage: hpcri-ctl %s", usage);
}

/* Parse only the common options. */
static int common_only(struct ctl *ctl, int argc, char **argv, const char *usage, hp_err *err)
{
    static const struct option lo[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "o:", lo, NULL)) != -1)
        if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
            return -1;
    return 0;
}

static Runtime__V1__ListContainersResponse *
list_containers(struct ctl *ctl, Runtime__V1__ContainerFilter *filter, hp_err *err)
{
    Runtime__V1__ListContainersRequest req = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
    req.filter = filter;
    return CTL_CALL(ctl, CTL_RUNTIME, ListContainers, &req, Runtime__V1__ListContainersResponse,
                    runtime__v1__list_containers_response__descriptor,
                    ctl_timeout(ctl, CTL_DEFAULT_TIMEOUT_MS), err);
}

char *ctl_resolve_container(struct ctl *ctl, const char *id, hp_err *err)
{
    hp_err e = HP_ERR_INIT;
    Runtime__V1__ListContainersResponse *r = list_containers(ctl, NULL, &e);
    char *out = NULL;
    if (r) {
        _cleanup_free_ char **ids = calloc(r->n_containers + 1, sizeof *ids);
        for (size_t i = 0; ids && i < r->n_containers; i++)
            ids[i] = r->containers[i]->id;
        int k = ids ? ctl_match_id(id, ids, r->n_containers, "container", &e) : -1;
        if (k >= 0)
            out = strdup(ids[k]);
        protobuf_c_message_free_unpacked(PBM(r), NULL);
        if (k < 0 && e.code == HP_INVALID_ARGUMENT) { /* ambiguous */
            *err = e;
            return NULL;
        }
    } else if (e.code == HP_UNAVAILABLE) {
        *err = e;
        return NULL;
    }
    if (!out)
        out = strdup(id);
    if (!out)
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    return out;
}

static const char *container_state_name(int s)
{
    switch (s) {
    case RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED:
        return "Created";
    case RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING:
        return "Running";
    case RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED:
        return "Exited";
    default:
        return "Unknown";
    }
}

static int parse_container_state(const char *s, int *out)
{
    static const struct {
        const char *name;
        int v;
    } t[] = {
        {"created", RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED},
        {"running", RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING},
        {"exited", RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED},
        {"unknown", RUNTIME__V1__CONTAINER_STATE__CONTAINER_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcasecmp(s, t[i].name) == 0) {
            *out = t[i].v;
            return 0;
        }
    return -1;
}

int cmd_ps(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "ps [-a] [-q] [-p POD] [--name NAME] [--state STATE] [--id ID]";
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS,
        {"all", no_argument, NULL, 'a'},
        {"quiet", no_argument, NULL, 'q'},
        {"pod", required_argument, NULL, 'p'},
        {"name", required_argument, NULL, 'n'},
        {"state", required_argument, NULL, 's'},
        {"id", required_argument, NULL, 'i'},
        {NULL, 0, NULL, 0},
    };
    bool all = false, quiet = false;
    const char *name = NULL, *pod = NULL;
    Runtime__V1__ContainerFilter filter = RUNTIME__V1__CONTAINER_FILTER__INIT;
    Runtime__V1__ContainerStateValue state = RUNTIME__V1__CONTAINER_STATE_VALUE__INIT;
    bool have_state = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "o:aqp:", lo, NULL)) != -1) {
        switch (opt) {
        case 'a':
            all = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'p':
            pod = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'i':
            filter.id = optarg;
            break;
        case 's':
            if (parse_container_state(optarg, (int *)&state.state) < 0)
                return hp_err_set(err, HP_INVALID_ARGUMENT,
                                  "--state: expected created, running, exited or unknown");
            have_state = true;
            break;
        default:
            if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
                return -1;
        }
    }
    if (optind != argc)
        return usage_err(usage, err);
    _cleanup_free_ char *pod_id = NULL;
    if (pod) {
        pod_id = ctl_resolve_pod(ctl, pod, err);
        if (!pod_id)
            return -1;
        filter.pod_sandbox_id = pod_id;
    }
    if (!have_state && !all && !filter.id[0]) {
        state.state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
        have_state = true;
    }
    if (have_state)
        filter.state = &state;
    Runtime__V1__ListContainersResponse *r = list_containers(ctl, &filter, err);
    if (!r)
        return -1;
    size_t kept = 0;
    for (size_t i = 0; i < r->n_containers; i++) {
        Runtime__V1__Container *c = r->containers[i];
        if (name && !(c->metadata && strstr(c->metadata->name, name))) {
            protobuf_c_message_free_unpacked(PBM(c), NULL);
            continue;
        }
        r->containers[kept++] = c;
    }
    r->n_containers = kept;
    int rc = 0;
    if (ctl->out == CTL_OUT_JSON) {
        rc = ctl_print_json(PBM(r), err);
    } else if (quiet) {
        for (size_t i = 0; i < r->n_containers; i++)
            printf("%s\n", r->containers[i]->id);
    } else {
        /* Pod names, for the POD column (best effort). */
        hp_err e = HP_ERR_INIT;
        Runtime__V1__ListPodSandboxRequest preq = RUNTIME__V1__LIST_POD_SANDBOX_REQUEST__INIT;
        Runtime__V1__ListPodSandboxResponse *pods =
            r->n_containers ? CTL_CALL(ctl, CTL_RUNTIME, ListPodSandbox, &preq,
                                       Runtime__V1__ListPodSandboxResponse,
                                       runtime__v1__list_pod_sandbox_response__descriptor,
                                       ctl_timeout(ctl, CTL_DEFAULT_TIMEOUT_MS), &e)
                            : NULL;
        printf("%-13s   %-30s %-20s %-10s %-25s %-7s %-13s   %s\n", "CONTAINER", "IMAGE", "CREATED",
               "STATE", "NAME", "ATTEMPT", "POD ID", "POD");
        for (size_t i = 0; i < r->n_containers; i++) {
            Runtime__V1__Container *c = r->containers[i];
            char id[16], pid[16], ago[48];
            ctl_fmt_id(c->id, id, sizeof id);
            ctl_fmt_id(c->pod_sandbox_id, pid, sizeof pid);
            ctl_fmt_ago(c->created_at, ago, sizeof ago);
            const char *podname = "";
            for (size_t k = 0; pods && k < pods->n_items; k++)
                if (strcmp(pods->items[k]->id, c->pod_sandbox_id) == 0 && pods->items[k]->metadata)
                    podname = pods->items[k]->metadata->name;
            const char *image = c->image && *c->image->image ? c->image->image : c->image_ref;
            printf("%-13s   %-30s %-20s %-10s %-25s %-7u %-13s   %s\n", id, image, ago,
                   container_state_name(c->state), c->metadata ? c->metadata->name : "",
                   c->metadata ? c->metadata->attempt : 0, pid, podname);
        }
        if (pods)
            protobuf_c_message_free_unpacked(PBM(pods), NULL);
    }
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    return rc;
}

int cmd_create(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "create POD_ID CONTAINER_CONFIG.json POD_CONFIG.json";
    if (common_only(ctl, argc, argv, usage, err) < 0)
        return -1;
    if (argc - optind != 3)
        return usage_err(usage, err);
    _cleanup_free_ char *pod_id = ctl_resolve_pod(ctl, argv[optind], err);
    if (!pod_id)
        return -1;
    Runtime__V1__ContainerConfig *cc = (Runtime__V1__ContainerConfig *)ctl_load_json(
        argv[optind + 1], &runtime__v1__container_config__descriptor, err);
    if (!cc)
        return -1;
    Runtime__V1__PodSandboxConfig *pc = (Runtime__V1__PodSandboxConfig *)ctl_load_json(
        argv[optind + 2], &runtime__v1__pod_sandbox_config__descriptor, err);
    if (!pc) {
        pbjson_free_message(PBM(cc));
        return -1;
    }
    Runtime__V1__CreateContainerRequest req = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
    req.pod_sandbox_id = pod_id;
    req.config = cc;
    req.sandbox_config = pc;
    Runtime__V1__CreateContainerResponse *r =
        CTL_CALL(ctl, CTL_RUNTIME, CreateContainer, &req, Runtime__V1__CreateContainerResponse,
                 runtime__v1__create_container_response__descriptor, ctl_timeout(ctl, 120000), err);
    pbjson_free_message(PBM(cc));
    pbjson_free_message(PBM(pc));
    if (!r)
        return -1;
    printf("%s\n", r->container_id);
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    return 0;
}

enum each_op { OP_START, OP_STOP, OP_RM };

/* start / stop / rm: one call per ID, report each, fail if any failed. */
static int containers_each(struct ctl *ctl, int argc, char **argv, enum each_op op, hp_err *err)
{
    static const char *usages[] = {"start ID...", "stop [-t SECONDS] ID...", "rm [-f] ID..."};
    static const char *verbs[] = {"starting", "stopping", "removing"};
    const char *usage = usages[op];
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS,
        {"time", required_argument, NULL, 't'},
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    long grace = 0;
    bool force = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "o:t:f", lo, NULL)) != -1) {
        if (opt == 't' && op == OP_STOP) {
            char *end;
            errno = 0;
            grace = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || grace < 0 || grace > 86400)
                return hp_err_set(err, HP_INVALID_ARGUMENT,
                                  "-t: expected 0 to 86400 seconds, got \"%s\"", optarg);
        } else if (opt == 'f' && op == OP_RM) {
            force = true;
        } else if (opt == 't' || opt == 'f') {
            return usage_err(usage, err);
        } else if (ctl_opt(ctl, opt, optarg, usage, err) < 0) {
            return -1;
        }
    }
    if (optind >= argc)
        return usage_err(usage, err);
    int failed = 0;
    for (int i = optind; i < argc; i++) {
        hp_err e = HP_ERR_INIT;
        _cleanup_free_ char *id = ctl_resolve_container(ctl, argv[i], &e);
        ProtobufCMessage *r = NULL;
        if (id && (op == OP_STOP || (op == OP_RM && force))) {
            Runtime__V1__StopContainerRequest req = RUNTIME__V1__STOP_CONTAINER_REQUEST__INIT;
            req.container_id = id;
            req.timeout = grace;
            r = ctl_call(ctl, CTL_RUNTIME "StopContainer", PBM(&req),
                         &runtime__v1__stop_container_response__descriptor,
                         ctl_timeout(ctl, (int)(grace * 1000) + 30000), &e);
            if (r && op == OP_RM) {
                protobuf_c_message_free_unpacked(r, NULL);
                r = NULL;
            }
        }
        if (id && op == OP_START) {
            Runtime__V1__StartContainerRequest req = RUNTIME__V1__START_CONTAINER_REQUEST__INIT;
            req.container_id = id;
            r = ctl_call(ctl, CTL_RUNTIME "StartContainer", PBM(&req),
                         &runtime__v1__start_container_response__descriptor,
                         ctl_timeout(ctl, 60000), &e);
        } else if (id && op == OP_RM && (!force || e.code == HP_OK)) {
            Runtime__V1__RemoveContainerRequest req = RUNTIME__V1__REMOVE_CONTAINER_REQUEST__INIT;
            req.container_id = id;
            r = ctl_call(ctl, CTL_RUNTIME "RemoveContainer", PBM(&req),
                         &runtime__v1__remove_container_response__descriptor,
                         ctl_timeout(ctl, 60000), &e);
        }
        if (!r && argc - optind == 1) { /* a single ID: its own error */
            *err = e;
            return -1;
        }
        if (!r) {
            fprintf(stderr, "hpcri-ctl: %s: %s %s: %s\n", hp_status_name(e.code), verbs[op],
                    argv[i], e.msg);
            failed++;
            continue;
        }
        printf("%s\n", id);
        protobuf_c_message_free_unpacked(r, NULL);
    }
    if (failed)
        return hp_err_set(err, HP_UNKNOWN, "%d of %d containers failed", failed, argc - optind);
    return 0;
}

int cmd_start(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    return containers_each(ctl, argc, argv, OP_START, err);
}

int cmd_stop(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    return containers_each(ctl, argc, argv, OP_STOP, err);
}

int cmd_rm(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    return containers_each(ctl, argc, argv, OP_RM, err);
}

static Runtime__V1__ContainerStatusResponse *container_status(struct ctl *ctl, const char *arg,
                                                              bool verbose, hp_err *err)
{
    _cleanup_free_ char *id = ctl_resolve_container(ctl, arg, err);
    if (!id)
        return NULL;
    Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
    req.container_id = id;
    req.verbose = verbose;
    return CTL_CALL(ctl, CTL_RUNTIME, ContainerStatus, &req, Runtime__V1__ContainerStatusResponse,
                    runtime__v1__container_status_response__descriptor,
                    ctl_timeout(ctl, CTL_DEFAULT_TIMEOUT_MS), err);
}

int cmd_inspect(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "inspect ID";
    if (common_only(ctl, argc, argv, usage, err) < 0)
        return -1;
    if (argc - optind != 1)
        return usage_err(usage, err);
    Runtime__V1__ContainerStatusResponse *r = container_status(ctl, argv[optind], true, err);
    if (!r)
        return -1;
    int rc = ctl_print_json(PBM(r), err);
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    return rc;
}

/* exec --sync ID CMD...: the exec timeout is --timeout (0/none = unlimited). */
int cmd_exec(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "exec --sync [--timeout SECONDS] ID CMD [ARG...]";
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS,
        {"sync", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    bool sync = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "+o:s", lo, NULL)) != -1) {
        if (opt == 's')
            sync = true;
        else if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
            return -1;
    }
    if (argc - optind < 2)
        return usage_err(usage, err);
    if (!sync)
        return hp_err_set(err, HP_UNIMPLEMENTED,
                          "only exec --sync is supported (streaming exec is not implemented)");
    _cleanup_free_ char *id = ctl_resolve_container(ctl, argv[optind], err);
    if (!id)
        return -1;
    Runtime__V1__ExecSyncRequest req = RUNTIME__V1__EXEC_SYNC_REQUEST__INIT;
    req.container_id = id;
    req.cmd = argv + optind + 1;
    req.n_cmd = (size_t)(argc - optind - 1);
    int tmo = ctl_timeout(ctl, 0);
    req.timeout = (tmo + 999) / 1000;
    Runtime__V1__ExecSyncResponse *r =
        CTL_CALL(ctl, CTL_RUNTIME, ExecSync, &req, Runtime__V1__ExecSyncResponse,
                 runtime__v1__exec_sync_response__descriptor, tmo ? tmo + 10000 : 0, err);
    if (!r)
        return -1;
    if (r->stdout.len)
        fwrite(r->stdout.data, 1, r->stdout.len, stdout);
    fflush(stdout);
    if (r->stderr.len)
        fwrite(r->stderr.data, 1, r->stderr.len, stderr);
    int code = r->exit_code;
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    return code < 0 ? 1 : code > 255 ? 255 : code;
}

/* One CRI log line: "<RFC3339Nano> <stdout|stderr> <F|P> <message>". */
static void print_log_line(char *line, size_t len, bool timestamps)
{
    if (len && line[len - 1] == '\n')
        line[--len] = '\0';
    char *ts = line;
    char *sp1 = memchr(line, ' ', len);
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line)) : NULL;
    char *sp3 = sp2 ? memchr(sp2 + 1, ' ', len - (size_t)(sp2 + 1 - line)) : NULL;
    if (!sp1 || !sp2) { /* not CRI format: print verbatim */
        printf("%s\n", line);
        return;
    }
    bool is_err = (size_t)(sp2 - sp1 - 1) == 6 && memcmp(sp1 + 1, "stderr", 6) == 0;
    bool partial = sp3 && sp3 - sp2 - 1 == 1 && sp2[1] == 'P';
    const char *msg = sp3 ? sp3 + 1 : sp2 + 1;
    FILE *out = is_err ? stderr : stdout;
    if (timestamps)
        fprintf(out, "%.*s ", (int)(sp1 - ts), ts);
    fputs(msg, out);
    if (!partial)
        fputc('\n', out);
}

int cmd_logs(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "logs [-f] [--tail N] [--timestamps] ID";
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS,
        {"tail", required_argument, NULL, 'T'},
        {"timestamps", no_argument, NULL, 't'},
        {"follow", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    long tail = -1;
    bool timestamps = false, follow = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "o:tf", lo, NULL)) != -1) {
        if (opt == 'f') {
            follow = true;
        } else if (opt == 'T') {
            char *end;
            tail = strtol(optarg, &end, 10);
            if (end == optarg || *end)
                return hp_err_set(err, HP_INVALID_ARGUMENT, "--tail: expected a number");
        } else if (opt == 't') {
            timestamps = true;
        } else if (ctl_opt(ctl, opt, optarg, usage, err) < 0) {
            return -1;
        }
    }
    if (argc - optind != 1)
        return usage_err(usage, err);
    Runtime__V1__ContainerStatusResponse *r = container_status(ctl, argv[optind], false, err);
    if (!r)
        return -1;
    _cleanup_free_ char *path = NULL;
    if (r->status && *r->status->log_path)
        path = strdup(r->status->log_path);
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    if (!path)
        return hp_err_set(err, HP_FAILED_PRECONDITION, "container %s has no log path",
                          argv[optind]);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return hp_err_sys(err, HP_NOT_FOUND, "cannot open log %s", path);
    /* With --tail, first count lines, then skip all but the last N. */
    long skip = 0;
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    if (tail >= 0) {
        long total = 0;
        while ((n = getline(&line, &cap, f)) > 0)
            total++;
        skip = total > tail ? total - tail : 0;
        rewind(f);
    }
    for (;;) {
        while ((n = getline(&line, &cap, f)) > 0) {
            if (follow && line[n - 1] != '\n') {
                /* A line still being written: re-read it once complete. */
                if (fseeko(f, -(off_t)n, SEEK_CUR) < 0)
                    return hp_err_sys(err, HP_INTERNAL, "seeking in %s", path);
                break;
            }
            if (skip > 0) {
                skip--;
                continue;
            }
            print_log_line(line, (size_t)n, timestamps);
        }
        if (ferror(f))
            return hp_err_sys(err, HP_INTERNAL, "reading %s", path);
        if (!follow)
            return 0;
        fflush(stdout);
        fflush(stderr);
        clearerr(f);
        /* Poll for more until SIGINT/SIGTERM. */
        struct pollfd pfd = {.fd = ctl->sigfd, .events = POLLIN};
        int r = poll(&pfd, ctl->sigfd >= 0 ? 1 : 0, 200);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return hp_err_sys(err, HP_INTERNAL, "poll");
    }
}

int cmd_stats(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "stats [-p POD] [ID]";
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS,
        {"pod", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    const char *pod = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "o:p:", lo, NULL)) != -1) {
        if (opt == 'p')
            pod = optarg;
        else if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
            return -1;
    }
    if (argc - optind > 1)
        return usage_err(usage, err);
    Runtime__V1__ListContainerStatsRequest req = RUNTIME__V1__LIST_CONTAINER_STATS_REQUEST__INIT;
    Runtime__V1__ContainerStatsFilter filter = RUNTIME__V1__CONTAINER_STATS_FILTER__INIT;
    _cleanup_free_ char *pod_id = NULL, *id = NULL;
    if (pod) {
        if (!(pod_id = ctl_resolve_pod(ctl, pod, err)))
            return -1;
        filter.pod_sandbox_id = pod_id;
    }
    if (optind < argc) {
        if (!(id = ctl_resolve_container(ctl, argv[optind], err)))
            return -1;
        filter.id = id;
    }
    req.filter = &filter;
    Runtime__V1__ListContainerStatsResponse *r = CTL_CALL(
        ctl, CTL_RUNTIME, ListContainerStats, &req, Runtime__V1__ListContainerStatsResponse,
        runtime__v1__list_container_stats_response__descriptor,
        ctl_timeout(ctl, CTL_DEFAULT_TIMEOUT_MS), err);
    if (!r)
        return -1;
    int rc = 0;
    if (ctl->out == CTL_OUT_JSON) {
        rc = ctl_print_json(PBM(r), err);
    } else {
        printf("%-13s   %-25s %-8s %-10s %-10s %s\n", "CONTAINER", "NAME", "CPU %", "MEM", "DISK",
               "INODES");
        for (size_t i = 0; i < r->n_stats; i++) {
            Runtime__V1__ContainerStats *s = r->stats[i];
            char cid[16] = "", cpu[16] = "-", mem[32] = "-", disk[32] = "-", inodes[32] = "-";
            const char *name = "";
            if (s->attributes) {
                ctl_fmt_id(s->attributes->id, cid, sizeof cid);
                if (s->attributes->metadata)
                    name = s->attributes->metadata->name;
            }
            if (s->cpu && s->cpu->usage_nano_cores)
                snprintf(cpu, sizeof cpu, "%.2f", (double)s->cpu->usage_nano_cores->value / 1e7);
            if (s->memory && s->memory->working_set_bytes)
                ctl_fmt_bytes(s->memory->working_set_bytes->value, mem, sizeof mem);
            if (s->writable_layer && s->writable_layer->used_bytes)
                ctl_fmt_bytes(s->writable_layer->used_bytes->value, disk, sizeof disk);
            if (s->writable_layer && s->writable_layer->inodes_used)
                snprintf(inodes, sizeof inodes, "%" PRIu64, s->writable_layer->inodes_used->value);
            printf("%-13s   %-25s %-8s %-10s %-10s %s\n", cid, name, cpu, mem, disk, inodes);
        }
    }
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    return rc;
}
