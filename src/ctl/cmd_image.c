/* hpcri-ctl commands: images, imagefsinfo, pull, rmi, inspecti. */
#include <getopt.h>
#include <stdbool.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.pb-c.h"
#include "hpcri.pb-c.h"
#include "ctl/ctl.h"
#include "ctl/pbjson.h"
#include "util/cleanup.h"

#define PBM(m) ((ProtobufCMessage *)(m))

static void usage_err(const char *usage, hp_err *err)
{
    hp_err_set(err, HP_INVALID_ARGUMENT, "usage: hpcri-ctl %s", usage);
}

/* "sha256:abcd..." -> first 13 hex chars, as crictl shows image IDs. */
static void short_image_id(const char *id, char *buf, size_t size)
{
    const char *colon = strchr(id, ':');
    ctl_fmt_id(colon ? colon + 1 : id, buf, size);
}

/* Split "repo:tag" (the tag is after the last ':' that follows the last '/'). */
static void split_tag(const char *ref, char *repo, size_t rsize, char *tag, size_t tsize)
{
    const char *slash = strrchr(ref, '/');
    const char *colon = strrchr(ref, ':');
    if (colon && (!slash || colon > slash)) {
        snprintf(repo, rsize, "%.*s", (int)(colon - ref), ref);
        snprintf(tag, tsize, "%s", colon + 1);
    } else {
        snprintf(repo, rsize, "%s", ref);
        snprintf(tag, tsize, "<none>");
    }
}

static Runtime__V1__ListImagesResponse *list_images(struct ctl *ctl, const char *ref, hp_err *err)
{
    Runtime__V1__ListImagesRequest req = RUNTIME__V1__LIST_IMAGES_REQUEST__INIT;
    Runtime__V1__ImageFilter filter = RUNTIME__V1__IMAGE_FILTER__INIT;
    Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
    if (ref) {
        spec.image = (char *)ref;
        filter.image = &spec;
        req.filter = &filter;
    }
    return CTL_CALL(ctl, CTL_IMAGE, ListImages, &req, Runtime__V1__ListImagesResponse,
                    runtime__v1__list_images_response__descriptor,
                    ctl_timeout(ctl, CTL_DEFAULT_TIMEOUT_MS), err);
}

int cmd_images(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "images [-q] [--digests] [REF]";
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS,
        {"quiet", no_argument, NULL, 'q'},
        {"digests", no_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    bool quiet = false, digests = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "o:q", lo, NULL)) != -1) {
        if (opt == 'q')
            quiet = true;
        else if (opt == 'D')
            digests = true;
        else if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
            return -1;
    }
    if (argc - optind > 1) {
        usage_err(usage, err);
        return -1;
    }
    Runtime__V1__ListImagesResponse *r = list_images(ctl, argv[optind], err);
    if (!r)
        return -1;
    int rc = 0;
    if (ctl->out == CTL_OUT_JSON) {
        rc = ctl_print_json(PBM(r), err);
    } else if (quiet) {
        for (size_t i = 0; i < r->n_images; i++)
            printf("%s\n", r->images[i]->id);
    } else {
        if (digests)
            printf("%-40s %-20s %-20s %-15s %s\n", "IMAGE", "TAG", "DIGEST", "IMAGE ID", "SIZE");
        else
            printf("%-40s %-20s %-15s %s\n", "IMAGE", "TAG", "IMAGE ID", "SIZE");
        for (size_t i = 0; i < r->n_images; i++) {
            Runtime__V1__Image *im = r->images[i];
            char id[32], size[32], repo[512], tag[256], dg[32] = "<none>";
            short_image_id(im->id, id, sizeof id);
            ctl_fmt_bytes(im->size, size, sizeof size);
            if (im->n_repo_digests > 0) {
                const char *at = strchr(im->repo_digests[0], '@');
                short_image_id(at ? at + 1 : im->repo_digests[0], dg, sizeof dg);
            }
            /* One line per tag; untagged images show their digest repository. */
            size_t lines = im->n_repo_tags ? im->n_repo_tags : 1;
            for (size_t t = 0; t < lines; t++) {
                if (im->n_repo_tags) {
                    split_tag(im->repo_tags[t], repo, sizeof repo, tag, sizeof tag);
                } else if (im->n_repo_digests) {
                    const char *d = im->repo_digests[0];
                    const char *at = strchr(d, '@');
                    snprintf(repo, sizeof repo, "%.*s", (int)(at ? at - d : (long)strlen(d)), d);
                    snprintf(tag, sizeof tag, "<none>");
                } else {
                    snprintf(repo, sizeof repo, "<none>");
                    snprintf(tag, sizeof tag, "<none>");
                }
                if (digests)
                    printf("%-40s %-20s %-20s %-15s %s\n", repo, tag, dg, id, size);
                else
                    printf("%-40s %-20s %-15s %s\n", repo, tag, id, size);
            }
        }
    }
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    return rc;
}

int cmd_imagefsinfo(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "imagefsinfo";
    static const struct option lo[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "o:", lo, NULL)) != -1)
        if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
            return -1;
    if (optind != argc) {
        usage_err(usage, err);
        return -1;
    }
    Runtime__V1__ImageFsInfoRequest req = RUNTIME__V1__IMAGE_FS_INFO_REQUEST__INIT;
    Runtime__V1__ImageFsInfoResponse *r =
        CTL_CALL(ctl, CTL_IMAGE, ImageFsInfo, &req, Runtime__V1__ImageFsInfoResponse,
                 runtime__v1__image_fs_info_response__descriptor,
                 ctl_timeout(ctl, CTL_DEFAULT_TIMEOUT_MS), err);
    if (!r)
        return -1;
    int rc = 0;
    if (ctl->out == CTL_OUT_JSON) {
        rc = ctl_print_json(PBM(r), err);
    } else {
        printf("%-10s %-50s %-12s %s\n", "KIND", "MOUNTPOINT", "USED", "INODES");
        for (int kind = 0; kind < 2; kind++) {
            size_t n = kind ? r->n_container_filesystems : r->n_image_filesystems;
            Runtime__V1__FilesystemUsage **fs =
                kind ? r->container_filesystems : r->image_filesystems;
            for (size_t i = 0; i < n; i++) {
                char used[32] = "-";
                if (fs[i]->used_bytes)
                    ctl_fmt_bytes(fs[i]->used_bytes->value, used, sizeof used);
                char inodes[32] = "-";
                if (fs[i]->inodes_used)
                    snprintf(inodes, sizeof inodes, "%" PRIu64, fs[i]->inodes_used->value);
                printf("%-10s %-50s %-12s %s\n", kind ? "container" : "image",
                       fs[i]->fs_id ? fs[i]->fs_id->mountpoint : "-", used, inodes);
            }
        }
    }
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    return rc;
}

/* Progress display of `pull` (one Admin/PullImage stream). */
struct pull_view {
    bool tty;                       /* stdout is a terminal: one \r-updated line */
    bool quiet;                     /* print only the image id */
    bool json;                      /* print the last message as JSON */
    bool drawn;                     /* a progress line is on screen (tty) */
    int phase;                      /* last phase printed (plain lines) */
    double t0;                      /* monotonic seconds at the first report */
    double last;                    /* last plain line */
    Hpcri__V1__PullProgress *final; /* the DONE message (owned) */
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *phase_name(int phase)
{
    switch (phase) {
    case HPCRI__V1__PULL_PROGRESS__PHASE__RESOLVING:
        return "resolving";
    case HPCRI__V1__PULL_PROGRESS__PHASE__DOWNLOADING:
        return "downloading";
    case HPCRI__V1__PULL_PROGRESS__PHASE__UNPACKING:
        return "unpacking";
    case HPCRI__V1__PULL_PROGRESS__PHASE__DONE:
        return "done";
    default:
        return "?";
    }
}

static void pull_show(struct pull_view *v, const Hpcri__V1__PullProgress *p)
{
    double t = mono_s(), dt = t - v->t0;
    double mb = (double)p->bytes_done / 1e6, total = (double)p->bytes_total / 1e6;
    double rate = dt > 0.05 ? mb / dt : 0.0;
    int phase = (int)p->phase;

    if (v->tty) {
        enum { WIDTH = 30 };
        char bar[WIDTH + 1];
        int fill = p->bytes_total ? (int)((double)p->bytes_done * WIDTH / (double)p->bytes_total)
                                  : (phase == HPCRI__V1__PULL_PROGRESS__PHASE__DONE ? WIDTH : 0);
        if (fill > WIDTH)
            fill = WIDTH;
        for (int i = 0; i < WIDTH; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = '\0';
        printf("\r[%s] %u/%u layers  %.1f/%.1f MB  %.1f MB/s  %-11s\033[K", bar, p->layers_done,
               p->layer_count, mb, total, rate, phase_name(phase));
        v->drawn = true;
    } else {
        /* Plain lines: at phase changes and at most once a second. */
        if (phase == v->phase && t - v->last < 1.0)
            return;
        printf("%-11s %u/%u layers  %.1f/%.1f MB  %.1f MB/s\n", phase_name(phase), p->layers_done,
               p->layer_count, mb, total, rate);
        v->last = t;
    }
    v->phase = phase;
    fflush(stdout);
}

static int pull_on_msg(void *ud, const uint8_t *msg, size_t len)
{
    struct pull_view *v = ud;
    Hpcri__V1__PullProgress *p = hpcri__v1__pull_progress__unpack(NULL, len, msg);
    if (p == NULL)
        return -1;
    if (v->t0 == 0)
        v->t0 = mono_s();
    if (!v->quiet && !v->json)
        pull_show(v, p);
    if (p->phase == HPCRI__V1__PULL_PROGRESS__PHASE__DONE) {
        if (v->final)
            hpcri__v1__pull_progress__free_unpacked(v->final, NULL);
        v->final = p;
    } else {
        hpcri__v1__pull_progress__free_unpacked(p, NULL);
    }
    return 0;
}

int cmd_pull(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "pull [-q|--quiet] [--creds USER:PASS] [--auth BASE64] REF";
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS,
        {"creds", required_argument, NULL, 'c'},
        {"auth", required_argument, NULL, 'a'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    const char *creds = NULL, *auth = NULL;
    struct pull_view v = {.phase = -1};
    int opt;
    while ((opt = getopt_long(argc, argv, "o:q", lo, NULL)) != -1) {
        if (opt == 'c')
            creds = optarg;
        else if (opt == 'a')
            auth = optarg;
        else if (opt == 'q')
            v.quiet = true;
        else if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
            return -1;
    }
    if (argc - optind != 1) {
        usage_err(usage, err);
        return -1;
    }
    Runtime__V1__PullImageRequest req = RUNTIME__V1__PULL_IMAGE_REQUEST__INIT;
    Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
    Runtime__V1__AuthConfig ac = RUNTIME__V1__AUTH_CONFIG__INIT;
    spec.image = argv[optind];
    req.image = &spec;
    _cleanup_free_ char *user = NULL;
    if (creds) {
        const char *colon = strchr(creds, ':');
        if (!colon || colon == creds)
            return hp_err_set(err, HP_INVALID_ARGUMENT, "--creds: expected USER:PASSWORD");
        user = strndup(creds, (size_t)(colon - creds));
        if (!user)
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        ac.username = user;
        ac.password = (char *)colon + 1;
        req.auth = &ac;
    }
    if (auth) {
        ac.auth = (char *)auth;
        req.auth = &ac;
    }
    hp_client *c = ctl_client(ctl, err);
    if (!c)
        return -1;
    size_t len = runtime__v1__pull_image_request__get_packed_size(&req);
    _cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    runtime__v1__pull_image_request__pack(&req, buf);
    v.json = ctl->out == CTL_OUT_JSON;
    v.tty = isatty(STDOUT_FILENO) == 1;
    int status, rc = 0;
    _cleanup_free_ char *msg = NULL;
    /* Pulls can be slow: no deadline unless --timeout was given. */
    rc = hp_client_stream(c, "/hpcri.v1.Admin/PullImage", buf, len, ctl_timeout(ctl, 0),
                          pull_on_msg, &v, &status, &msg, err);
    if (v.drawn)
        printf("\n");
    if (rc == 0 && status != HP_OK)
        rc = hp_err_set(err, status, "%s", msg ? msg : "pull failed");
    else if (rc == 0 && v.final == NULL)
        rc = hp_err_set(err, HP_INTERNAL, "pull: the stream ended without an image id");
    if (rc == 0) {
        if (v.json)
            rc = ctl_print_json(PBM(v.final), err);
        else if (v.quiet)
            printf("%s\n", v.final->image_id);
        else
            printf("Image is up to date for %s\n", v.final->image_id);
    }
    if (v.final)
        hpcri__v1__pull_progress__free_unpacked(v.final, NULL);
    return rc;
}

static Runtime__V1__ImageStatusResponse *image_status(struct ctl *ctl, const char *ref,
                                                      bool verbose, hp_err *err)
{
    Runtime__V1__ImageStatusRequest req = RUNTIME__V1__IMAGE_STATUS_REQUEST__INIT;
    Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
    spec.image = (char *)ref;
    req.image = &spec;
    req.verbose = verbose;
    Runtime__V1__ImageStatusResponse *r =
        CTL_CALL(ctl, CTL_IMAGE, ImageStatus, &req, Runtime__V1__ImageStatusResponse,
                 runtime__v1__image_status_response__descriptor,
                 ctl_timeout(ctl, CTL_DEFAULT_TIMEOUT_MS), err);
    if (r && !r->image) {
        hp_err_set(err, HP_NOT_FOUND, "no such image \"%s\" present", ref);
        protobuf_c_message_free_unpacked(PBM(r), NULL);
        return NULL;
    }
    return r;
}

int cmd_rmi(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "rmi ID|REF...";
    static const struct option lo[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "o:", lo, NULL)) != -1)
        if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
            return -1;
    if (optind >= argc) {
        usage_err(usage, err);
        return -1;
    }
    int failed = 0;
    for (int i = optind; i < argc; i++) {
        hp_err e = HP_ERR_INIT;
        Runtime__V1__ImageStatusResponse *st = image_status(ctl, argv[i], false, &e);
        if (!st && argc - optind == 1) {
            *err = e;
            return -1;
        }
        if (!st) {
            fprintf(stderr, "hpcri-ctl: %s: %s\n", hp_status_name(e.code), e.msg);
            failed++;
            continue;
        }
        Runtime__V1__RemoveImageRequest req = RUNTIME__V1__REMOVE_IMAGE_REQUEST__INIT;
        Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
        spec.image = st->image->id;
        req.image = &spec;
        Runtime__V1__RemoveImageResponse *r =
            CTL_CALL(ctl, CTL_IMAGE, RemoveImage, &req, Runtime__V1__RemoveImageResponse,
                     runtime__v1__remove_image_response__descriptor,
                     ctl_timeout(ctl, CTL_DEFAULT_TIMEOUT_MS), &e);
        if (r) {
            for (size_t t = 0; t < st->image->n_repo_tags; t++)
                printf("Deleted: %s\n", st->image->repo_tags[t]);
            if (st->image->n_repo_tags == 0)
                printf("Deleted: %s\n", st->image->id);
            protobuf_c_message_free_unpacked(PBM(r), NULL);
        } else if (argc - optind == 1) {
            *err = e;
            failed++;
        } else {
            fprintf(stderr, "hpcri-ctl: %s: removing %s: %s\n", hp_status_name(e.code), argv[i],
                    e.msg);
            failed++;
        }
        protobuf_c_message_free_unpacked(PBM(st), NULL);
    }
    if (failed && argc - optind == 1)
        return -1;
    if (failed)
        return hp_err_set(err, HP_UNKNOWN, "%d of %d images not removed", failed, argc - optind);
    return 0;
}

int cmd_inspecti(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "inspecti ID|REF";
    static const struct option lo[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "o:", lo, NULL)) != -1)
        if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
            return -1;
    if (argc - optind != 1) {
        usage_err(usage, err);
        return -1;
    }
    Runtime__V1__ImageStatusResponse *r = image_status(ctl, argv[optind], true, err);
    if (!r)
        return -1;
    int rc = ctl_print_json(PBM(r), err);
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    return rc;
}

int cmd_import(struct ctl *ctl, int argc, char **argv, hp_err *err)
{
    const char *usage = "import [--name REF] FILE";
    static const struct option lo[] = {
        CTL_COMMON_LONGOPTS,
        {"name", required_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    const char *name = NULL;
    char path[PATH_MAX];
    int opt;
    while ((opt = getopt_long(argc, argv, "o:", lo, NULL)) != -1) {
        if (opt == 'n')
            name = optarg;
        else if (ctl_opt(ctl, opt, optarg, usage, err) < 0)
            return -1;
    }
    if (argc - optind != 1) {
        usage_err(usage, err);
        return -1;
    }
    /* The daemon reads the file: give it an absolute path. */
    if (realpath(argv[optind], path) == NULL)
        return hp_err_sys(err, HP_NOT_FOUND, "%s", argv[optind]);
    Hpcri__V1__ImportImageRequest req = HPCRI__V1__IMPORT_IMAGE_REQUEST__INIT;
    req.path = path;
    req.name = (char *)(name ? name : "");
    Hpcri__V1__ImportImageResponse *r =
        CTL_CALL(ctl, "/hpcri.v1.Admin/", ImportImage, &req, Hpcri__V1__ImportImageResponse,
                 hpcri__v1__import_image_response__descriptor, ctl_timeout(ctl, 0), err);
    if (!r)
        return -1;
    int rc = 0;
    if (ctl->out == CTL_OUT_JSON) {
        rc = ctl_print_json(PBM(r), err);
    } else {
        printf("Imported %s", r->image_id);
        for (size_t i = 0; i < r->n_repo_tags; i++)
            printf("%s%s", i ? ", " : " as ", r->repo_tags[i]);
        printf("\n");
    }
    protobuf_c_message_free_unpacked(PBM(r), NULL);
    return rc;
}
