#include "image/service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct hp_image_service {
    char *dir;
    hp_store *store;
};

hp_image_service *hp_image_service_new(const char *root, hp_store *store, hp_err *err)
{
    hp_image_service *svc = calloc(1, sizeof *svc);
    if (svc == NULL || asprintf(&svc->dir, "%s/images", root) < 0) {
        free(svc);
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    if (mkdir(svc->dir, 0700) < 0 && errno != EEXIST) {
        hp_err_sys(err, HP_INTERNAL, "cannot create %s", svc->dir);
        hp_image_service_free(svc);
        return NULL;
    }
    svc->store = store;
    return svc;
}

void hp_image_service_free(hp_image_service *svc)
{
    if (svc == NULL)
        return;
    free(svc->dir);
    free(svc);
}

const char *hp_image_service_dir(const hp_image_service *svc)
{
    return svc->dir;
}
