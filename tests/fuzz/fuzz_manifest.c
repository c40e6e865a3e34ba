/* libFuzzer target for the manifest / index / image config parsers.
 *
 * Build and run (from the repository root; needs clang):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE -Isrc \
 *       tests/fuzz/fuzz_manifest.c src/image/manifest.c src/util/err.c \
 *       $(pkg-config --cflags --libs jansson) -o build/fuzz_manifest
 *   mkdir -p build/fuzz-corpus && build/fuzz_manifest -max_total_time=60 build/fuzz-corpus
 *
 * The first input byte selects the media type hint handed to the parsers; the
 * rest is the document.  Every parser runs on every input; a successful parse
 * is checked for the invariants the rest of hpcri relies on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/manifest.h"

static const char *const hints[] = {
    NULL,
    "application/json",
    HP_MT_OCI_INDEX,
    HP_MT_OCI_MANIFEST,
    HP_MT_DOCKER_LIST,
    HP_MT_DOCKER_MANIFEST,
    HP_MT_DOCKER_V1_JWS,
    "",
};

static void check_desc(const struct hp_descriptor *d)
{
    if (!hp_digest_valid(d->digest) || d->size < 0 || d->media_type == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *hint = hints[data[0] % (sizeof hints / sizeof hints[0])];
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    hp_err err = HP_ERR_INIT;

    int kind = hp_manifest_kind(buf, len, hint, &err);
    if (kind < 0 && (err.code != HP_INVALID_ARGUMENT || err.msg[0] == '\0'))
        abort();

    struct hp_index idx;
    if (hp_index_parse(buf, len, hint, &idx, &err) == 0) {
        if (kind != HP_MANIFEST_KIND_INDEX)
            abort();
        for (size_t i = 0; i < idx.n_entries; i++)
            check_desc(&idx.entries[i].desc);
        struct hp_platform p = {0};
        if (hp_platform_parse("linux/arm64", &p, &err) == 0) {
            const struct hp_index_entry *e = hp_index_select(&idx, &p, &err);
            if (e && strcmp(e->platform.architecture, "arm64") != 0)
                abort();
            hp_platform_free(&p);
        }
        (void)hp_index_select(&idx, NULL, &err);
        hp_index_free(&idx);
    }

    struct hp_manifest m;
    if (hp_manifest_parse(buf, len, hint, &m, &err) == 0) {
        if (kind != HP_MANIFEST_KIND_IMAGE)
            abort();
        check_desc(&m.config);
        for (size_t i = 0; i < m.n_layers; i++)
            check_desc(&m.layers[i]);
        hp_manifest_free(&m);
    }

    struct hp_image_config c;
    if (hp_image_config_parse(buf, len, &c, &err) == 0) {
        for (size_t i = 0; i < c.n_diff_ids; i++)
            if (!hp_digest_valid(c.diff_ids[i]))
                abort();
        if (c.architecture == NULL || c.os == NULL)
            abort();
        hp_image_config_free(&c);
    }
    return 0;
}
