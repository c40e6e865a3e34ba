/* hpcri-ctl commands: version, info, raw, events. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "ctl/ctl.h"
#include "ctl/pbjson.h"
#include "util/cleanup.h"

#define PBM(m) ((ProtobufCMessage *)(m))

/* Parse only the common options; the rest of argv stays in argv[optind..]. */
static int common_only(struct ctl *ctl, int argc, char **argv, const char *usage, hp_err *err)
{
    static const struct option lo[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "o:", lo, NULL)) != -1)
        if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
            return -1;
    return 0;
}

int cmd_version(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "version";
    if (common_only(ctl, argc, argv, usage, err) < 0)
        return -1;
    if (optind != argc)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "usage: hpcri-ctl %s", usage);
    Runtime__V1__VersionRequest req = RUNTIME__V1__VERSION_REQUEST__INIT;
    req.version = "v1";
    Runtime__V1__VersionResponse *r = CTL_CALL(
        ctl, CTL_RUNTIME, Version, &req, Runtime__V1__VersionResponse,
        runtime__v1__version_response__descriptor, ctl_timeout(ctl, CTL_DEFAULT_TIMEOUT_MS), err);
    if (!r)
        return -1;
    int rc = 0;
    if (ctl->out == CTL_OUT_JSON)
        rc = ctl_print_json(PBM(r), err);
    else
        printf("Version:  %s\nRuntimeName:  %s\nRuntimeVersion:  %s\nRuntimeApiVersion:  %s\n",
               r->version, r->runtime_name, r->runtime_version, r->runtime_api_version);
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    return rc;
}

/* Status (verbose) as one JSON document, crictl-style: {"status":..., <info
 * keys with their values parsed as JSON when they are JSON>}. */
int cmd_info(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "info";
    if (common_only(ctl, argc, argv, usage, err) < 0)
        return -1;
    if (optind != argc)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "usage: hpcri-ctl %s", usage);
    Runtime__V1__StatusRequest req = RUNTIME__V1__STATUS_REQUEST__INIT;
    req.verbose = 1;
    Runtime__V1__StatusResponse *r = CTL_CALL(
        ctl, CTL_RUNTIME, Status, &req, Runtime__V1__StatusResponse,
        runtime__v1__status_response__descriptor, ctl_timeout(ctl, CTL_DEFAULT_TIMEOUT_MS), err);
    if (!r)
        return -1;
    json_t *doc = pbjson_from_message(PBM(r), err);
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    if (!doc)
        return -1;
    /* Replace the string map "info" by its entries, decoded. */
    json_t *info = json_object_get(doc, "info");
    if (info) {
        json_incref(info);
        json_object_del(doc, "info");
        const char *k;
        json_t *v;
        json_object_foreach(info, k, v)
        {
            json_t *parsed = json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);
            json_object_set_new(doc, k, parsed ? parsed : json_incref(v));
        }
        json_decref(info);
    }
    int rc = json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (rc < 0)
        return hp_err_set(err, HP_INTERNAL, "cannot write JSON");
    putchar('\n');
    return 0;
}

struct raw_stream {
    bool print;
    size_t n;
};

static int raw_on_msg(void *ud, const uint8_t *msg, size_t len)
{
    struct raw_stream *s = ud;
    s->n++;
    if (s->print) {
        fwrite(msg, 1, len, stdout);
        putchar('\n');
    } else {
        printf("message %zu: %zu bytes\n", s->n, len);
    }
    fflush(stdout);
    return 0;
}

/* N concurrent unary calls on the one connection; all must succeed. */
static int raw_parallel(struct ctl *ctl, hp_client *c, const char *method, const char *data,
                        size_t n, hp_err *err)
{
    _cleanup_free_ hp_call **calls = calloc(n, sizeof *calls);
    if (!calls)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    int rc = 0;
    size_t started = 0;
    for (; started < n; started++) {
        calls[started] = hp_client_start(c, method, (const uint8_t *)data, strlen(data),
                                         ctl_timeout(ctl, CTL_DEFAULT_TIMEOUT_MS), NULL, NULL, err);
        if (!calls[started]) {
            rc = -1;
            break;
        }
    }
    for (size_t i = 0; i < started; i++) {
        hp_client_wait(c, calls[i]);
        if (rc == 0 && hp_call_status(calls[i]) != HP_OK)
            rc = hp_err_set(err, hp_call_status(calls[i]), "call %zu: %s", i,
                            hp_call_message(calls[i]));
    }
    for (size_t i = 0; i < started; i++)
        hp_call_free(calls[i]);
    if (rc == 0)
        printf("OK (%zu concurrent calls)\n", n);
    return rc;
}

/* raw METHOD [-d DATA] [--print] [--stream]: send DATA (default: empty) as
 * the serialized request to any method and report the status. */
int cmd_raw(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "raw METHOD [-d DATA] [--print] [--stream] [--parallel N]";
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS,
        {"data", required_argument, NULL, 'd'},
        {"print", no_argument, NULL, 'p'},
        {"stream", no_argument, NULL, 's'},
        {"parallel", required_argument, NULL, 'P'},
        {NULL, 0, NULL, 0},
    };
    const char *data = "";
    bool print = false, stream = false;
    long parallel = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "o:d:ps", lo, NULL)) != -1) {
        if (opt == 'P') {
            char *end;
            parallel = strtol(optarg, &end, 10);
            if (end == optarg || *end || parallel < 1 || parallel > 1000)
                return hp_err_set(err, HP_INVALID_ARGUMENT, "--parallel: expected 1..1000");
        } else if (opt == 'd')
            data = optarg;
        else if (opt == 'p')
            print = true;
        else if (opt == 's')
            stream = true;
        else if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
            return -1;
    }
    if (optind + 1 != argc)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "usage: hpcri-ctl %s", usage);
    const char *method = argv[optind];
    hp_client *c = ctl_client(ctl, err);
    if (!c)
        return -1;
    if (parallel)
        return raw_parallel(ctl, c, method, data, (size_t)parallel, err);
    int status;
    _cleanup_free_ char *msg = NULL;
    if (stream) {
        struct raw_stream s = {.print = print};
        if (hp_client_stream(c, method, (const uint8_t *)data, strlen(data), ctl_timeout(ctl, 0),
                             raw_on_msg, &s, &status, &msg, err) < 0)
            return -1;
        if (status != HP_OK)
            return hp_err_set(err, status, "%s", msg);
        printf("OK (%zu messages)\n", s.n);
        return 0;
    }
    _cleanup_free_ uint8_t *resp = NULL;
    size_t len = 0;
    if (hp_client_call(c, method, (const uint8_t *)data, strlen(data),
                       ctl_timeout(ctl, CTL_DEFAULT_TIMEOUT_MS), &resp, &len, &status, &msg,
                       err) < 0)
        return -1;
    if (status != HP_OK)
        return hp_err_set(err, status, "%s", msg);
    if (print)
        fwrite(resp, 1, len, stdout);
    else
        printf("OK (%zu bytes)\n", len);
    return 0;
}

static int event_on_msg(void *ud, const uint8_t *msg, size_t len)
{
    struct ctl *ctl = ud;
    Runtime__V1__ContainerEventResponse *ev =
        runtime__v1__container_event_response__unpack(NULL, len, msg);
    if (!ev) {
        fprintf(stderr, "hpcri-ctl: INTERNAL: undecodable event (%zu bytes)\n", len);
        return -1;
    }
    hp_err err = HP_ERR_INIT;
    if (ctl->out == CTL_OUT_JSON) {
        json_t *j = pbjson_from_message(PBM(ev), &err);
        if (j) {
            json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
            putchar('\n');
            json_decref(j);
        }
    } else {
        const ProtobufCEnumValue *t = protobuf_c_enum_descriptor_get_value(
            &runtime__v1__container_event_type__descriptor, ev->container_event_type);
        char ago[64];
        ctl_fmt_ago(ev->created_at, ago, sizeof ago);
        printf("%-22s %-64s %s\n", t ? t->name : "?", ev->container_id, ago);
    }
    fflush(stdout);
    runtime__v1__container_event_response__free_unpacked(ev, NULL);
    return 0;
}

int cmd_events(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "events";
    if (common_only(ctl, argc, argv, usage, err) < 0)
        return -1;
    if (optind != argc)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "usage: hpcri-ctl %s", usage);
    hp_client *c = ctl_client(ctl, err);
    if (!c)
        return -1;
    Runtime__V1__GetEventsRequest req = RUNTIME__V1__GET_EVENTS_REQUEST__INIT;
    uint8_t buf[16];
    size_t len = runtime__v1__get_events_request__pack(&req, buf);
    int status;
    _cleanup_free_ char *msg = NULL;
    if (hp_client_stream(c, CTL_RUNTIME "GetContainerEvents", buf, len, ctl_timeout(ctl, 0),
                         event_on_msg, ctl, &status, &msg, err) < 0)
        return err->code == HP_CANCELLED ? 0 : -1; /* interrupted: a normal end */
    if (status != HP_OK)
        return hp_err_set(err, status, "%s", msg);
    return 0;
}
