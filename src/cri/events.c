/* GetContainerEvents: subscribers and event fan-out. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.pb-c.h"
#include "cri/cri_internal.h"
#include "cri/pb.h"

static int subscribe(void *ud, const hp_rpc_req *req, hp_rpc_stream *s, hp_err *err)
{
    hp_daemon *d = ud;
    _cleanup_pb_ Runtime__V1__GetEventsRequest *in =
        hp_pb_decode(&runtime__v1__get_events_request__descriptor, req, err);
    hp_rpc_stream **ns;

    if (in == NULL)
        return -1;
    pthread_mutex_lock(&d->ev_lock);
    ns = realloc(d->subscribers, (d->n_subscribers + 1) * sizeof *ns);
    if (ns == NULL) {
        pthread_mutex_unlock(&d->ev_lock);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    d->subscribers = ns;
    d->subscribers[d->n_subscribers++] = hp_rpc_stream_ref(s);
    pthread_mutex_unlock(&d->ev_lock);
    hp_debug("GetContainerEvents: new subscriber (%zu in all)", d->n_subscribers);
    return 0;
}

hp_rpc_stream_fn hp_cri_stream_impl(const char *method)
{
    if (strcmp(method, "GetContainerEvents") == 0)
        return subscribe;
    return NULL;
}

void hp_cri_emit(hp_daemon *d, int type, const char *container_id, const char *pod_id)
{
    Runtime__V1__ContainerEventResponse ev = RUNTIME__V1__CONTAINER_EVENT_RESPONSE__INIT;
    Runtime__V1__PodSandboxStatus ps = RUNTIME__V1__POD_SANDBOX_STATUS__INIT;
    struct timespec ts;
    uint8_t *buf;
    size_t n, keep = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    ev.container_id = (char *)container_id;
    ev.container_event_type = (Runtime__V1__ContainerEventType)type;
    ev.created_at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    ps.id = (char *)pod_id;
    ev.pod_sandbox_status = &ps;

    pthread_mutex_lock(&d->ev_lock);
    if (d->n_subscribers == 0) {
        pthread_mutex_unlock(&d->ev_lock);
        return;
    }
    n = runtime__v1__container_event_response__get_packed_size(&ev);
    buf = malloc(n ? n : 1);
    if (buf != NULL)
        runtime__v1__container_event_response__pack(&ev, buf);
    for (size_t i = 0; i < d->n_subscribers; i++) {
        hp_rpc_stream *s = d->subscribers[i];
        if (buf == NULL || hp_rpc_stream_send(s, buf, n) < 0) {
            if (hp_rpc_stream_closed(s)) {
                hp_rpc_stream_unref(s);
                continue;
            }
        }
        d->subscribers[keep++] = s;
    }
    d->n_subscribers = keep;
    pthread_mutex_unlock(&d->ev_lock);
    free(buf);
}

void hp_cri_events_free(hp_daemon *d)
{
    pthread_mutex_lock(&d->ev_lock);
    for (size_t i = 0; i < d->n_subscribers; i++) {
        hp_rpc_stream_finish(d->subscribers[i], HP_UNAVAILABLE, "hpcri is shutting down");
        hp_rpc_stream_unref(d->subscribers[i]);
    }
    free(d->subscribers);
    d->subscribers = NULL;
    d->n_subscribers = 0;
    pthread_mutex_unlock(&d->ev_lock);
}
