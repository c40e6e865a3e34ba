/* bench-rpc: unary RPC latency and throughput against a running hpcri.
 *
 *   bench-rpc --socket PATH [--pid PID] [-n CALLS] [--clients 1,4] [--warmup N]
 *
 * For each method (Version, ListContainers) and each client count, starts that
 * many threads, each with its own connection (src/ctl/client.c), makes CALLS
 * sequential calls per thread and reports latency percentiles and aggregate
 * throughput.  With --pid, the daemon's VmRSS is read from /proc before and
 * after the load.  Every response is checked (status OK and decodable).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.pb-c.h"
#include "rpc/client.h"

#define PROTOTYPE_P50_US 43.0 /* the prototype target */
#define MAX_CLIENTS      64

struct method {
    const char *name;
    const char *path;
    uint8_t req[64];
    size_t req_len;
    const ProtobufCMessageDescriptor *resp;
};

struct worker {
    pthread_t thread;
    const char *socket;
    const struct method *m;
    long calls;
    long warmup;
    int64_t *lat_ns; /* owned: calls entries */
    long errors;
    char first_error[HP_ERR_MSG_MAX + 64];
    pthread_barrier_t *start;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int one_call(hp_client *c, const struct method *m, hp_err *err)
{
    uint8_t *resp = NULL;
    size_t len = 0;
    if (hp_client_unary(c, m->path, m->req, m->req_len, 10000, &resp, &len, err) < 0)
        return -1;
    ProtobufCMessage *msg = protobuf_c_message_unpack(m->resp, NULL, len, resp);
    free(resp);
    if (!msg)
        return hp_err_set(err, HP_INTERNAL, "undecodable %s response", m->name);
    protobuf_c_message_free_unpacked(msg, NULL);
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    hp_err err = HP_ERR_INIT;
    hp_client *c = hp_client_connect(w->socket, &err);
    for (long i = 0; c && i < w->warmup; i++)
        if (one_call(c, w->m, &err) < 0)
            break;
    pthread_barrier_wait(w->start);
    if (!c || err.code != HP_OK) {
        w->errors = w->calls;
        snprintf(w->first_error, sizeof w->first_error, "%s: %s", hp_status_name(err.code),
                 err.msg);
        hp_client_free(c);
        return NULL;
    }
    for (long i = 0; i < w->calls; i++) {
        int64_t t0 = now_ns();
        int rc = one_call(c, w->m, &err);
        w->lat_ns[i] = now_ns() - t0;
        if (rc < 0) {
            if (w->errors++ == 0)
                snprintf(w->first_error, sizeof w->first_error, "%s: %s", hp_status_name(err.code),
                         err.msg);
            hp_err_clear(&err);
            if (hp_client_dead(c))
                break;
        }
    }
    hp_client_free(c);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* VmRSS of pid in kB, or -1. */
static long vm_rss_kb(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

struct result {
    double p50_us, p99_us, mean_us, max_us, rps;
    long calls, errors;
};

static int run(const char *socket, const struct method *m, int clients, long calls, long warmup,
               struct result *res)
{
    struct worker w[MAX_CLIENTS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)clients + 1);
    memset(w, 0, sizeof w);
    for (int i = 0; i < clients; i++) {
        w[i].socket = socket;
        w[i].m = m;
        w[i].calls = calls;
        w[i].warmup = warmup;
        w[i].start = &start;
        w[i].lat_ns = calloc((size_t)calls, sizeof(int64_t));
        if (!w[i].lat_ns) {
            fprintf(stderr, "bench-rpc: out of memory\n");
            exit(1);
        }
        if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
            fprintf(stderr, "bench-rpc: pthread_create failed\n");
            exit(1);
        }
    }
    pthread_barrier_wait(&start);
    int64_t t0 = now_ns();
    for (int i = 0; i < clients; i++)
        pthread_join(w[i].thread, NULL);
    int64_t wall = now_ns() - t0;
    pthread_barrier_destroy(&start);

    size_t total = (size_t)clients * (size_t)calls;
    int64_t *all = malloc(total * sizeof *all);
    if (!all) {
        fprintf(stderr, "bench-rpc: out of memory\n");
        exit(1);
    }
    memset(res, 0, sizeof *res);
    double sum = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(all + (size_t)i * (size_t)calls, w[i].lat_ns, (size_t)calls * sizeof(int64_t));
        for (long k = 0; k < calls; k++)
            sum += (double)w[i].lat_ns[k];
        res->errors += w[i].errors;
        if (w[i].errors)
            fprintf(stderr, "bench-rpc: %s client %d: %ld errors, first: %s\n", m->name, i,
                    w[i].errors, w[i].first_error);
        free(w[i].lat_ns);
    }
    qsort(all, total, sizeof *all, cmp_i64);
    res->calls = (long)total;
    res->p50_us = (double)all[total / 2] / 1e3;
    res->p99_us = (double)all[(size_t)((double)total * 0.99)] / 1e3;
    res->max_us = (double)all[total - 1] / 1e3;
    res->mean_us = sum / (double)total / 1e3;
    res->rps = (double)total / ((double)wall / 1e9);
    free(all);
    return res->errors ? -1 : 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench-rpc --socket PATH [--pid PID] [-n CALLS_PER_CLIENT] "
               "[--clients 1,4] [--warmup N]\n");
}

int main(int argc, char **argv)
{
    const char *socket = NULL;
    long pid = 0, calls = 20000, warmup = 500;
    char clients_arg[64] = "1,4";
    static const struct option lo[] = {
        {"socket", required_argument, NULL, 's'},
        {"pid", required_argument, NULL, 'p'},
        {"calls", required_argument, NULL, 'n'},
        {"clients", required_argument, NULL, 'c'},
        {"warmup", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "s:p:n:c:w:h", lo, NULL)) != -1) {
        switch (opt) {
        case 's':
            socket = optarg;
            break;
        case 'p':
            pid = atol(optarg);
            break;
        case 'n':
            calls = atol(optarg);
            break;
        case 'c':
            snprintf(clients_arg, sizeof clients_arg, "%s", optarg);
            break;
        case 'w':
            warmup = atol(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!socket || calls <= 0 || warmup < 0) {
        usage(stderr);
        return 2;
    }
    int nclients[8], ncounts = 0;
    for (char *tok = strtok(clients_arg, ","); tok && ncounts < 8; tok = strtok(NULL, ",")) {
        int n = atoi(tok);
        if (n < 1 || n > MAX_CLIENTS) {
            fprintf(stderr, "bench-rpc: --clients: 1..%d each\n", MAX_CLIENTS);
            return 2;
        }
        nclients[ncounts++] = n;
    }

    struct method methods[2] = {
        {.name = "Version",
         .path = "/runtime.v1.RuntimeService/Version",
         .resp = &runtime__v1__version_response__descriptor},
        {.name = "ListContainers",
         .path = "/runtime.v1.RuntimeService/ListContainers",
         .resp = &runtime__v1__list_containers_response__descriptor},
    };
    Runtime__V1__VersionRequest vreq = RUNTIME__V1__VERSION_REQUEST__INIT;
    vreq.version = "v1";
    methods[0].req_len = runtime__v1__version_request__pack(&vreq, methods[0].req);
    Runtime__V1__ListContainersRequest lreq = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
    methods[1].req_len = runtime__v1__list_containers_request__pack(&lreq, methods[1].req);

    long rss_before = pid ? vm_rss_kb(pid) : -1;
    printf("%-15s %7s %8s %9s %9s %9s %9s %12s %14s\n", "METHOD", "CLIENTS", "CALLS", "P50(us)",
           "P99(us)", "MEAN(us)", "MAX(us)", "CALLS/S", "PROTO P50(us)");
    int failed = 0;
    for (size_t mi = 0; mi < 2; mi++) {
        for (int ci = 0; ci < ncounts; ci++) {
            struct result r;
            if (run(socket, &methods[mi], nclients[ci], calls, warmup, &r) < 0)
                failed = 1;
            printf("%-15s %7d %8ld %9.1f %9.1f %9.1f %9.1f %12.0f %14.0f\n", methods[mi].name,
                   nclients[ci], r.calls, r.p50_us, r.p99_us, r.mean_us, r.max_us, r.rps,
                   PROTOTYPE_P50_US);
            fflush(stdout);
        }
    }
    if (pid) {
        sleep(1); /* let the daemon settle back to idle */
        long rss_after = vm_rss_kb(pid);
        printf("\ndaemon pid %ld VmRSS idle: before load %ld kB, after load %ld kB (%+ld kB)\n",
               pid, rss_before, rss_after, rss_after - rss_before);
    }
    if (failed)
        fprintf(stderr, "bench-rpc: some calls failed (see above)\n");
    return failed;
}
