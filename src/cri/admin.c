/* hpcri's own administrative service (proto/hpcri.proto): calls that are not
 * part of the CRI, such as importing a local image archive. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cri/cri_internal.h"
#include "cri/pb.h"
#include "hpcri.pb-c.h"
#include "image/helper.h"
#include "util/cleanup.h"

static int admin_import_image(void *ud, const hp_rpc_req *req, hp_buf *resp, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Hpcri__V1__ImportImageRequest *in =
        hp_pb_decode(&hpcri__v1__import_image_request__descriptor, req, err);
    Hpcri__V1__ImportImageResponse out = HPCRI__V1__IMPORT_IMAGE_RESPONSE__INIT;
    _cleanup_free_ char *id = NULL, *platform = NULL, *request = NULL;
    hp_strlist tags = {0};
    int rc;

    if (in == NULL)
        return -1;
    if (in->path == NULL || in->path[0] == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "ImportImage: path is empty");
    pthread_rwlock_rdlock(&d->cfg_lock);
    platform = d->cfg->default_platform ? strdup(d->cfg->default_platform) : NULL;
    pthread_rwlock_unlock(&d->cfg_lock);
    request = hp_image_helper_import_request(d->root, in->path, in->name, platform, err);
    if (request == NULL)
        return -1;
    rc = hp_image_helper_run(d->images, d->image_helper, request, req->cancelled, NULL, NULL, &id,
                             &tags, err);
    if (rc == 0) {
        out.image_id = id;
        out.repo_tags = tags.items;
        out.n_repo_tags = tags.n;
        rc = hp_pb_reply(resp, &out, err);
    }
    hp_strlist_clear(&tags);
    return rc;
}

/* Server-streaming PullImage with progress (images.c, next to the CRI
 * PullImage it shares its implementation with). */
int hp_cri_admin_pull_image(void *ud, const hp_rpc_req *req, hp_rpc_stream *s, hp_err *err);

int hp_cri_register_admin(hp_daemon *d, hp_err *err)
{
    static const struct {
        const char *name;
        hp_rpc_unary_fn fn;
        hp_rpc_stream_fn stream;
    } methods[] = {
        {"ImportImage", admin_import_image, NULL},
        {"PullImage", NULL, hp_cri_admin_pull_image},
    };
    const ProtobufCServiceDescriptor *svc = &hpcri__v1__admin__descriptor;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        char path[256];
        hp_rpc_method m = {
            .path = path,
            .kind = methods[i].stream ? HP_RPC_SERVER_STREAM : HP_RPC_UNARY,
            .flags = HP_RPC_BLOCKING,
            .unary = methods[i].fn,
            .stream = methods[i].stream,
            .ud = d,
        };
        snprintf(path, sizeof path, "/%s/%s", svc->name, methods[i].name);
        if (hp_rpc_server_register(d->rpc, &m, err) < 0)
            return -1;
    }
    return 0;
}
