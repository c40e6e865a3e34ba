/* hpcri-ctl commands: pods, runp, stopp, rmp, inspectp. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "ctl/ctl.h"
#include "ctl/pbjson.h"
#include "util/cleanup.h"

#define PBM(m) ((ProtobufCMessage *)(m))

static Runtime__V1__ListPodSandboxResponse *
list_pods(struct ctl *ctl, Runtime__V1__PodSandboxFilter *filter, hp_err *err)
{
    Runtime__V1__ListPodSandboxRequest req = RUNTIME__V1__LIST_POD_SANDBOX_REQUEST__INIT;
    req.filter = filter;
    return CTL_CALL(ctl, CTL_RUNTIME, ListPodSandbox, &req, Runtime__V1__ListPodSandboxResponse,
                    runtime__v1__list_pod_sandbox_response__descriptor,
                    ctl_timeout(ctl, CTL_DEFAULT_TIMEOUT_MS), err);
}

char *ctl_resolve_pod(struct ctl *ctl, const char *id, hp_err *err)
{
    hp_err e = HP_ERR_INIT;
    Runtime__V1__ListPodSandboxResponse *r = list_pods(ctl, NULL, &e);
    char *out = NULL;
    if (r) {
        _cleanup_free_ char **ids = calloc(r->n_items + 1, sizeof *ids);
        for (size_t i = 0; ids && i < r->n_items; i++)
            ids[i] = r->items[i]->id;
        int k = ids ? ctl_match_id(id, ids, r->n_items, "pod sandbox", &e) : -1;
        if (k >= 0)
            out = strdup(ids[k]);
        else if (e.code == HP_INVALID_ARGUMENT) /* ambiguous */
            *err = e;
        protobuf_c_message_free_unpacked(PBM(r), NULL);
        if (k < 0 && e.code == HP_INVALID_ARGUMENT)
            return NULL;
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

static const char *pod_state_name(int s)
{
    return s == RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY ? "Ready" : "NotReady";
}

int cmd_pods(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "pods [-q] [--name NAME] [--namespace NS] [--state ready|notready] "
                        "[--id ID] [-l KEY=VALUE]...";
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS,
        {"quiet", no_argument, NULL, 'q'},
        {"name", required_argument, NULL, 'n'},
        {"namespace", required_argument, NULL, 'N'},
        {"state", required_argument, NULL, 's'},
        {"id", required_argument, NULL, 'i'},
        {"label", required_argument, NULL, 'l'},
        {NULL, 0, NULL, 0},
    };
    bool quiet = false;
    const char *name = NULL, *ns = NULL;
    Runtime__V1__PodSandboxFilter filter = RUNTIME__V1__POD_SANDBOX_FILTER__INIT;
    Runtime__V1__PodSandboxStateValue state = RUNTIME__V1__POD_SANDBOX_STATE_VALUE__INIT;
    Runtime__V1__PodSandboxFilter__LabelSelectorEntry sel[16];
    Runtime__V1__PodSandboxFilter__LabelSelectorEntry *selp[16];
    bool use_filter = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "o:ql:", lo, NULL)) != -1) {
        switch (opt) {
        case 'q':
            quiet = true;
            break;
        case 'n':
            name = optarg;
            break;
        case 'N':
            ns = optarg;
            break;
        case 's':
            if (strcasecmp(optarg, "ready") == 0)
                state.state = RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY;
            else if (strcasecmp(optarg, "notready") == 0)
                state.state = RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
            else
                return hp_err_set(err, HP_INVALID_ARGUMENT,
                                  "--state: expected ready or notready, got \"%s\"", optarg);
            filter.state = &state;
            use_filter = true;
            break;
        case 'i':
            filter.id = optarg;
            use_filter = true;
            break;
        case 'l': {
            char *eq = strchr(optarg, '=');
            if (!eq || filter.n_label_selector >= 16)
                return hp_err_set(err, HP_INVALID_ARGUMENT,
                                  "-l: expected KEY=VALUE (at most 16), got \"%s\"", optarg);
            *eq = '\0';
            runtime__v1__pod_sandbox_filter__label_selector_entry__init(
                &sel[filter.n_label_selector]);
            sel[filter.n_label_selector].key = optarg;
            sel[filter.n_label_selector].value = eq + 1;
            selp[filter.n_label_selector] = &sel[filter.n_label_selector];
            filter.n_label_selector++;
            filter.label_selector = selp;
            use_filter = true;
            break;
        }
        default:
            if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
                return -1;
        }
    }
    if (optind != argc)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "usage: hpcri-ctl %s", usage);
    Runtime__V1__ListPodSandboxResponse *r = list_pods(ctl, use_filter ? &filter : NULL, err);
    if (!r)
        return -1;
    /* Client-side filters (as crictl does): name substring and namespace. */
    size_t kept = 0;
    for (size_t i = 0; i < r->n_items; i++) {
        Runtime__V1__PodSandbox *p = r->items[i];
        const char *pn = p->metadata ? p->metadata->name : "";
        const char *pns = p->metadata ? p->metadata->namespace_ : "";
        if ((name && !strstr(pn, name)) || (ns && strcmp(pns, ns) != 0)) {
            protobuf_c_message_free_unpacked(PBM(p), NULL);
            continue;
        }
        r->items[kept++] = p;
    }
    r->n_items = kept;
    int rc = 0;
    if (ctl->out == CTL_OUT_JSON) {
        rc = ctl_print_json(PBM(r), err);
    } else if (quiet) {
        for (size_t i = 0; i < r->n_items; i++)
            printf("%s\n", r->items[i]->id);
    } else {
        printf("%-13s   %-20s %-10s %-30s %-20s %-7s %s\n", "POD ID", "CREATED", "STATE", "NAME",
               "NAMESPACE", "ATTEMPT", "RUNTIME");
        for (size_t i = 0; i < r->n_items; i++) {
            Runtime__V1__PodSandbox *p = r->items[i];
            char id[16], ago[48];
            ctl_fmt_id(p->id, id, sizeof id);
            ctl_fmt_ago(p->created_at, ago, sizeof ago);
            printf("%-13s   %-20s %-10s %-30s %-20s %-7u %s\n", id, ago, pod_state_name(p->state),
                   p->metadata ? p->metadata->name : "", p->metadata ? p->metadata->namespace_ : "",
                   p->metadata ? p->metadata->attempt : 0,
                   *p->runtime_handler ? p->runtime_handler : "(default)");
        }
    }
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    return rc;
}

int cmd_runp(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "runp [--runtime HANDLER] POD_CONFIG.json";
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS,
        {"runtime", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    const char *handler = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "o:r:", lo, NULL)) != -1) {
        if (opt == 'r')
            handler = optarg;
        else if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
            return -1;
    }
    if (argc - optind != 1)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "usage: hpcri-ctl %s", usage);
    Runtime__V1__PodSandboxConfig *cfg = (Runtime__V1__PodSandboxConfig *)ctl_load_json(
        argv[optind], &runtime__v1__pod_sandbox_config__descriptor, err);
    if (!cfg)
        return -1;
    Runtime__V1__RunPodSandboxRequest req = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
    req.config = cfg;
    if (handler)
        req.runtime_handler = (char *)handler;
    /* Sandbox creation may pull the pause image and set up namespaces. */
    Runtime__V1__RunPodSandboxResponse *r =
        CTL_CALL(ctl, CTL_RUNTIME, RunPodSandbox, &req, Runtime__V1__RunPodSandboxResponse,
                 runtime__v1__run_pod_sandbox_response__descriptor, ctl_timeout(ctl, 120000), err);
    pbjson_free_message(PBM(cfg));
    if (!r)
        return -1;
    printf("%s\n", r->pod_sandbox_id);
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    return 0;
}

/* stopp / rmp: one call per ID, report each, fail if any failed. */
static int pods_each(struct ctl *ctl, int argc, char **argv, bool remove, hp_err *err)
{
    const char *usage = remove ? "rmp ID..." : "stopp ID...";
    static const struct option lo[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "o:", lo, NULL)) != -1)
        if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
            return -1;
    if (optind >= argc)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "usage: hpcri-ctl %s", usage);
    int failed = 0;
    for (int i = optind; i < argc; i++) {
        hp_err e = HP_ERR_INIT;
        _cleanup_free_ char *id = ctl_resolve_pod(ctl, argv[i], &e);
        ProtobufCMessage *r = NULL;
        if (id && remove) {
            Runtime__V1__RemovePodSandboxRequest req =
                RUNTIME__V1__REMOVE_POD_SANDBOX_REQUEST__INIT;
            req.pod_sandbox_id = id;
            r = ctl_call(ctl, CTL_RUNTIME "RemovePodSandbox", PBM(&req),
                         &runtime__v1__remove_pod_sandbox_response__descriptor,
                         ctl_timeout(ctl, 60000), &e);
        } else if (id) {
            Runtime__V1__StopPodSandboxRequest req = RUNTIME__V1__STOP_POD_SANDBOX_REQUEST__INIT;
            req.pod_sandbox_id = id;
            r = ctl_call(ctl, CTL_RUNTIME "StopPodSandbox", PBM(&req),
                         &runtime__v1__stop_pod_sandbox_response__descriptor,
                         ctl_timeout(ctl, 60000), &e);
        }
        if (!r && argc - optind == 1) { /* a single ID: its own error */
            *err = e;
            return -1;
        }
        if (!r) {
            fprintf(stderr, "hpcri-ctl: %s: %s %s: %s\n", hp_status_name(e.code),
                    remove ? "removing" : "stopping", argv[i], e.msg);
            failed++;
            continue;
        }
        printf("%s sandbox %s\n", remove ? "Removed" : "Stopped", id);
        protobuf_c_message_free_unpacked(r, NULL);
    }
    if (failed)
        return hp_err_set(err, HP_UNKNOWN, "%d of %d pod sandboxes not %s", failed, argc - optind,
                          remove ? "removed" : "stopped");
    return 0;
}

int cmd_stopp(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    return pods_each(ctl, argc, argv, false, err);
}

int cmd_rmp(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    return pods_each(ctl, argc, argv, true, err);
}

int cmd_inspectp(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "inspectp ID";
    static const struct option lo[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "o:", lo, NULL)) != -1)
        if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
            return -1;
    if (argc - optind != 1)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "usage: hpcri-ctl %s", usage);
    _cleanup_free_ char *id = ctl_resolve_pod(ctl, argv[optind], err);
    if (!id)
        return -1;
    Runtime__V1__PodSandboxStatusRequest req = RUNTIME__V1__POD_SANDBOX_STATUS_REQUEST__INIT;
    req.pod_sandbox_id = id;
    req.verbose = 1;
    Runtime__V1__PodSandboxStatusResponse *r =
        CTL_CALL(ctl, CTL_RUNTIME, PodSandboxStatus, &req, Runtime__V1__PodSandboxStatusResponse,
                 runtime__v1__pod_sandbox_status_response__descriptor,
                 ctl_timeout(ctl, CTL_DEFAULT_TIMEOUT_MS), err);
    if (!r)
        return -1;
    int rc = ctl_print_json(PBM(r), err);
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    return rc;
}
