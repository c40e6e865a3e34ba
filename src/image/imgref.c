/* See imgref.h. */
#include "image/imgref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/ref.h"

void hp_imgref_free(hp_imgref *r)
{
    free(r->domain);
    free(r->path);
    free(r->repo);
    free(r->tag);
    free(r->digest);
    free(r->tagged);
    free(r->digested);
    memset(r, 0, sizeof *r);
}

int hp_imgref_parse(const char *s, hp_imgref *out, hp_err *err)
{
    hp_ref ref = {0};
    memset(out, 0, sizeof *out);
    if (hp_ref_parse(s, &ref, err) < 0)
        return -1;
    out->domain = ref.domain;
    out->path = ref.path;
    out->tag = ref.tag;
    out->digest = ref.digest;
    out->repo = hp_ref_repository(&ref);
    if (out->repo == NULL)
        goto oom;
    if (out->tag && asprintf(&out->tagged, "%s:%s", out->repo, out->tag) < 0) {
        out->tagged = NULL;
        goto oom;
    }
    if (out->digest && asprintf(&out->digested, "%s@%s", out->repo, out->digest) < 0) {
        out->digested = NULL;
        goto oom;
    }
    out->api_ref = out->digest ? out->digest : out->tag;
    return 0;
oom:
    hp_imgref_free(out);
    return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory parsing image reference");
}
