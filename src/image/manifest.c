#include "image/manifest.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/cleanup.h"

/* jansson's own json_decrefp() releases a json_t at scope exit. */
#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))

bool hp_digest_valid(const char *s)
{
    if (s == NULL || strncmp(s, "sha256:", 7) != 0)
        return false;
    s += 7;
    for (int i = 0; i < 64; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return s[64] == '\0';
}

const char *hp_compression_name(enum hp_compression c)
{
    switch (c) {
    case HP_COMPRESSION_GZIP:
        return "tar+gzip";
    case HP_COMPRESSION_ZSTD:
        return "tar+zstd";
    default:
        return "tar";
    }
}

/* Parse a JSON document that must be an object.  Returns a new reference
 * (caller decrefs) or NULL with INVALID_ARGUMENT naming `what`. */
static json_t *load_object(const char *buf, size_t len, const char *what, hp_err *err)
{
    json_error_t jerr;
    if (buf == NULL) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "%s: empty document", what);
        return NULL;
    }
    if (len > HP_MANIFEST_MAX_SIZE) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "%s: document of %zu bytes exceeds the %d byte limit",
                   what, len, HP_MANIFEST_MAX_SIZE);
        return NULL;
    }
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "%s: malformed JSON at line %d column %d: %s", what,
                   jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        hp_err_set(err, HP_INVALID_ARGUMENT, "%s: JSON document is not an object", what);
        return NULL;
    }
    return root;
}

/* Read optional/required string member `key` of obj.  *out borrowed from obj
 * (NULL when absent and optional). */
static int get_str(json_t *obj, const char *key, bool required, const char **out, const char *what,
                   hp_err *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required)
            return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: missing \"%s\"", what, key);
        return 0;
    }
    if (!json_is_string(v))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: \"%s\" is not a string", what, key);
    *out = json_string_value(v);
    return 0;
}

/* strdup that reports ENOMEM as an hp_err.  s may be NULL (result NULL, no error). */
static int dup_str(const char *s, char **out, hp_err *err)
{
    *out = NULL;
    if (s == NULL)
        return 0;
    *out = strdup(s);
    if (*out == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
}

static void free_strv(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

/* Copy a JSON array of strings into a NULL-terminated vector (owned by the
 * caller, freed with free_strv).  Absent/null → NULL, count 0. */
static int get_strv(json_t *obj, const char *key, char ***out, size_t *n_out, const char *what,
                    hp_err *err)
{
    json_t *arr = json_object_get(obj, key);
    *out = NULL;
    *n_out = 0;
    if (arr == NULL || json_is_null(arr))
        return 0;
    if (!json_is_array(arr))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: \"%s\" is not an array", what, key);
    size_t n = json_array_size(arr);
    char **v = calloc(n + 1, sizeof *v);
    if (v == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        if (!json_is_string(e)) {
            free_strv(v);
            return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: \"%s\"[%zu] is not a string", what,
                              key, i);
        }
        if (dup_str(json_string_value(e), &v[i], err) < 0) {
            free_strv(v);
            return -1;
        }
    }
    *out = v;
    *n_out = n;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keys of a JSON object ({"80/tcp": {}}) as a sorted NULL-terminated vector. */
static int get_keys(json_t *obj, const char *key, char ***out, size_t *n_out, const char *what,
                    hp_err *err)
{
    json_t *o = json_object_get(obj, key);
    const char *k;
    json_t *v;
    size_t i = 0;
    *out = NULL;
    *n_out = 0;
    if (o == NULL || json_is_null(o))
        return 0;
    if (!json_is_object(o))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: \"%s\" is not an object", what, key);
    size_t n = json_object_size(o);
    char **vec = calloc(n + 1, sizeof *vec);
    if (vec == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    json_object_foreach(o, k, v)
    {
        if (i >= n || dup_str(k, &vec[i], err) < 0) {
            free_strv(vec);
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        }
        i++;
    }
    qsort(vec, i, sizeof *vec, cmp_str);
    *out = vec;
    *n_out = i;
    return 0;
}

static int cmp_kv(const void *a, const void *b)
{
    return strcmp(((const struct hp_kv *)a)->key, ((const struct hp_kv *)b)->key);
}

static void free_kvs(struct hp_kv *kv, size_t n)
{
    if (kv == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static int get_labels(json_t *obj, struct hp_kv **out, size_t *n_out, const char *what, hp_err *err)
{
    json_t *o = json_object_get(obj, "Labels");
    const char *k;
    json_t *v;
    size_t i = 0;
    *out = NULL;
    *n_out = 0;
    if (o == NULL || json_is_null(o))
        return 0;
    if (!json_is_object(o))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: \"Labels\" is not an object", what);
    size_t n = json_object_size(o);
    struct hp_kv *kv = calloc(n + 1, sizeof *kv);
    if (kv == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    json_object_foreach(o, k, v)
    {
        if (i >= n)
            break;
        if (!json_is_string(v)) {
            free_kvs(kv, i);
            return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: label \"%s\" is not a string", what,
                              k);
        }
        if (dup_str(k, &kv[i].key, err) < 0 || dup_str(json_string_value(v), &kv[i].value, err)) {
            free_kvs(kv, i + 1);
            return -1;
        }
        i++;
    }
    qsort(kv, i, sizeof *kv, cmp_kv);
    *out = kv;
    *n_out = i;
    return 0;
}

/* ---- media types ---- */

struct layer_type {
    const char *media_type;
    enum hp_compression compression;
    bool foreign;
};

static const struct layer_type layer_types[] = {
    {"application/vnd.oci.image.layer.v1.tar", HP_COMPRESSION_NONE, false},
    {"application/vnd.oci.image.layer.v1.tar+gzip", HP_COMPRESSION_GZIP, false},
    {"application/vnd.oci.image.layer.v1.tar+zstd", HP_COMPRESSION_ZSTD, false},
    {"application/vnd.oci.image.layer.nondistributable.v1.tar", HP_COMPRESSION_NONE, true},
    {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", HP_COMPRESSION_GZIP, true},
    {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", HP_COMPRESSION_ZSTD, true},
    {"application/vnd.docker.image.rootfs.diff.tar", HP_COMPRESSION_NONE, false},
    {"application/vnd.docker.image.rootfs.diff.tar.gzip", HP_COMPRESSION_GZIP, false},
    {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", HP_COMPRESSION_GZIP, true},
};

static bool is_schema1(const char *mt)
{
    return mt && (strcmp(mt, HP_MT_DOCKER_V1) == 0 || strcmp(mt, HP_MT_DOCKER_V1_JWS) == 0);
}

static int schema1_error(hp_err *err)
{
    return hp_err_set(err, HP_INVALID_ARGUMENT,
                      "Docker schema1 manifests (%s) are not supported: re-push the image as "
                      "Docker schema2 or OCI (for example with a current docker, skopeo or crane)",
                      HP_MT_DOCKER_V1_JWS);
}

/* A generic Content-Type that tells nothing about the document. */
static bool generic_type(const char *mt)
{
    return mt == NULL || *mt == '\0' || strcmp(mt, "application/json") == 0 ||
           strcmp(mt, "application/octet-stream") == 0 || strcmp(mt, "text/plain") == 0;
}

static int kind_from_json(json_t *root, const char *media_type, hp_err *err)
{
    const char *mt = NULL;
    json_t *sv = json_object_get(root, "schemaVersion");
    if (get_str(root, "mediaType", false, &mt, "manifest", err) < 0)
        return -1;
    if (is_schema1(mt) || is_schema1(media_type) ||
        (json_is_integer(sv) && json_integer_value(sv) == 1))
        return schema1_error(err);
    if (mt == NULL && !generic_type(media_type))
        mt = media_type;
    if (mt == NULL) {
        /* OCI documents may omit mediaType: decide by shape. */
        if (json_object_get(root, "manifests"))
            return HP_MANIFEST_KIND_INDEX;
        if (json_object_get(root, "config") || json_object_get(root, "layers"))
            return HP_MANIFEST_KIND_IMAGE;
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "manifest: no mediaType and neither \"manifests\" nor \"layers\"");
    }
    if (strcmp(mt, HP_MT_OCI_INDEX) == 0 || strcmp(mt, HP_MT_DOCKER_LIST) == 0)
        return HP_MANIFEST_KIND_INDEX;
    if (strcmp(mt, HP_MT_OCI_MANIFEST) == 0 || strcmp(mt, HP_MT_DOCKER_MANIFEST) == 0)
        return HP_MANIFEST_KIND_IMAGE;
    return hp_err_set(err, HP_INVALID_ARGUMENT, "manifest: unsupported media type \"%s\"", mt);
}

int hp_manifest_kind(const char *buf, size_t len, const char *media_type, hp_err *err)
{
    if (is_schema1(media_type))
        return schema1_error(err);
    _cleanup_json_ json_t *root = load_object(buf, len, "manifest", err);
    if (root == NULL)
        return -1;
    return kind_from_json(root, media_type, err);
}

/* Check schemaVersion == 2 and that the document's mediaType (if any) agrees
 * with the expected kind; returns the effective media type (static). */
static const char *check_header(json_t *root, const char *media_type, int want_kind,
                                const char *what, hp_err *err)
{
    json_t *sv = json_object_get(root, "schemaVersion");
    const char *mt = NULL;
    int kind = kind_from_json(root, media_type, err);
    if (kind < 0)
        return NULL;
    if (kind != want_kind) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "%s: document is an image %s, not an image %s", what,
                   kind == HP_MANIFEST_KIND_INDEX ? "index" : "manifest",
                   want_kind == HP_MANIFEST_KIND_INDEX ? "index" : "manifest");
        return NULL;
    }
    if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "%s: \"schemaVersion\" must be the integer 2", what);
        return NULL;
    }
    (void)get_str(root, "mediaType", false, &mt, what, err);
    if (mt == NULL && !generic_type(media_type))
        mt = media_type;
    if (want_kind == HP_MANIFEST_KIND_INDEX)
        return mt && strcmp(mt, HP_MT_DOCKER_LIST) == 0 ? HP_MT_DOCKER_LIST : HP_MT_OCI_INDEX;
    return mt && strcmp(mt, HP_MT_DOCKER_MANIFEST) == 0 ? HP_MT_DOCKER_MANIFEST
                                                        : HP_MT_OCI_MANIFEST;
}

/* ---- descriptors ---- */

static void descriptor_free(struct hp_descriptor *d)
{
    free(d->media_type);
    free(d->digest);
    free_strv(d->urls);
    memset(d, 0, sizeof *d);
}

/* Parse the common descriptor fields of JSON object o into *d (owned). */
static int parse_descriptor(json_t *o, struct hp_descriptor *d, const char *what, hp_err *err)
{
    const char *mt, *dg;
    size_t nurls;
    memset(d, 0, sizeof *d);
    if (!json_is_object(o))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s is not an object", what);
    if (get_str(o, "mediaType", true, &mt, what, err) < 0 ||
        get_str(o, "digest", true, &dg, what, err) < 0)
        return -1;
    if (!hp_digest_valid(dg))
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "%s: invalid digest \"%.80s\" (want sha256: and 64 lowercase hex digits)",
                          what, dg);
    json_t *sz = json_object_get(o, "size");
    if (sz == NULL)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: missing \"size\"", what);
    if (!json_is_integer(sz))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: \"size\" is not an integer", what);
    if (json_integer_value(sz) < 0)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: negative size %lld", what,
                          (long long)json_integer_value(sz));
    d->size = json_integer_value(sz);
    if (dup_str(mt, &d->media_type, err) < 0 || dup_str(dg, &d->digest, err) < 0 ||
        get_strv(o, "urls", &d->urls, &nurls, what, err) < 0) {
        descriptor_free(d);
        return -1;
    }
    return 0;
}

/* ---- platforms ---- */

void hp_platform_free(struct hp_platform *p)
{
    if (p == NULL)
        return;
    free(p->os);
    free(p->architecture);
    free(p->variant);
    memset(p, 0, sizeof *p);
}

/* Normalise (arch, variant) in place semantics: returns static/borrowed
 * strings via out params. */
static void normalise(const char *arch, const char *variant, const char **arch_out,
                      const char **variant_out)
{
    if (variant && *variant == '\0')
        variant = NULL;
    if (strcmp(arch, "x86_64") == 0 || strcmp(arch, "x86-64") == 0)
        arch = "amd64";
    else if (strcmp(arch, "aarch64") == 0)
        arch = "arm64";
    else if (strcmp(arch, "armhf") == 0) {
        arch = "arm";
        variant = variant ? variant : "v7";
    } else if (strcmp(arch, "armel") == 0) {
        arch = "arm";
        variant = variant ? variant : "v6";
    } else if (strcmp(arch, "i386") == 0)
        arch = "386";
    if (strcmp(arch, "arm64") == 0 && (variant == NULL || strcmp(variant, "8") == 0))
        variant = "v8";
    if (strcmp(arch, "amd64") == 0 && variant && strcmp(variant, "v1") == 0)
        variant = NULL;
    *arch_out = arch;
    *variant_out = variant;
}

static int platform_set(struct hp_platform *p, const char *os, const char *arch,
                        const char *variant, hp_err *err)
{
    const char *na, *nv;
    normalise(arch, variant, &na, &nv);
    memset(p, 0, sizeof *p);
    if (dup_str(os, &p->os, err) < 0 || dup_str(na, &p->architecture, err) < 0 ||
        dup_str(nv, &p->variant, err) < 0) {
        hp_platform_free(p);
        return -1;
    }
    for (char *c = p->os; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return 0;
}

int hp_platform_parse(const char *s, struct hp_platform *out, hp_err *err)
{
    char buf[256];
    memset(out, 0, sizeof *out);
    if (s == NULL || strlen(s) >= sizeof buf)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid platform \"%.80s\"", s ? s : "");
    strcpy(buf, s);
    char *os = buf, *arch = strchr(buf, '/'), *variant = NULL;
    if (arch == NULL)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "invalid platform \"%s\": want os/arch[/variant]", s);
    *arch++ = '\0';
    variant = strchr(arch, '/');
    if (variant)
        *variant++ = '\0';
    if (*os == '\0' || *arch == '\0' || (variant && (*variant == '\0' || strchr(variant, '/'))))
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "invalid platform \"%s\": want os/arch[/variant]", s);
    return platform_set(out, os, arch, variant, err);
}

/* "linux/arm64/v8" into buf. */
static void platform_str(const struct hp_platform *p, char *buf, size_t n)
{
    if (p->os == NULL || p->architecture == NULL)
        snprintf(buf, n, "(no platform)");
    else
        snprintf(buf, n, "%s/%s%s%s", p->os, p->architecture, p->variant ? "/" : "",
                 p->variant ? p->variant : "");
}

/* ---- index ---- */

void hp_index_free(struct hp_index *idx)
{
    if (idx == NULL)
        return;
    for (size_t i = 0; i < idx->n_entries; i++) {
        descriptor_free(&idx->entries[i].desc);
        hp_platform_free(&idx->entries[i].platform);
    }
    free(idx->entries);
    free(idx->media_type);
    memset(idx, 0, sizeof *idx);
}

static int parse_entry(json_t *o, struct hp_index_entry *e, size_t i, hp_err *err)
{
    char what[64];
    snprintf(what, sizeof what, "index: manifests[%zu]", i);
    if (parse_descriptor(o, &e->desc, what, err) < 0)
        return -1;
    const char *mt = e->desc.media_type;
    if (is_schema1(mt))
        return schema1_error(err);
    json_t *p = json_object_get(o, "platform");
    if (p == NULL || json_is_null(p))
        return 0;
    if (!json_is_object(p))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: \"platform\" is not an object", what);
    const char *os, *arch, *variant;
    if (get_str(p, "os", true, &os, what, err) < 0 ||
        get_str(p, "architecture", true, &arch, what, err) < 0 ||
        get_str(p, "variant", false, &variant, what, err) < 0)
        return -1;
    return platform_set(&e->platform, os, arch, variant, err);
}

int hp_index_parse(const char *buf, size_t len, const char *media_type, struct hp_index *out,
                   hp_err *err)
{
    struct hp_index idx = {0};
    memset(out, 0, sizeof *out);
    if (is_schema1(media_type))
        return schema1_error(err);
    _cleanup_json_ json_t *root = load_object(buf, len, "index", err);
    if (root == NULL)
        return -1;
    const char *mt = check_header(root, media_type, HP_MANIFEST_KIND_INDEX, "index", err);
    if (mt == NULL)
        return -1;
    json_t *arr = json_object_get(root, "manifests");
    if (!json_is_array(arr))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "index: \"manifests\" missing or not an array");
    size_t n = json_array_size(arr);
    if (dup_str(mt, &idx.media_type, err) < 0)
        return -1;
    idx.entries = calloc(n ? n : 1, sizeof *idx.entries);
    if (idx.entries == NULL) {
        hp_index_free(&idx);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        idx.n_entries = i + 1;
        if (parse_entry(json_array_get(arr, i), &idx.entries[i], i, err) < 0) {
            hp_index_free(&idx);
            return -1;
        }
    }
    *out = idx;
    return 0;
}

const struct hp_index_entry *hp_index_select(const struct hp_index *idx,
                                             const struct hp_platform *want, hp_err *err)
{
    const char *os = "linux", *arch = "amd64", *variant = NULL;
    const struct hp_index_entry *fallback = NULL;
    char wantbuf[128];
    if (want && want->os && want->architecture) {
        os = want->os;
        normalise(want->architecture, want->variant, &arch, &variant);
    }
    for (size_t i = 0; i < idx->n_entries; i++) {
        const struct hp_index_entry *e = &idx->entries[i];
        const struct hp_platform *p = &e->platform;
        if (p->os == NULL || p->architecture == NULL)
            continue;
        if (strcasecmp(p->os, os) != 0 || strcmp(p->architecture, arch) != 0)
            continue;
        if (variant) {
            if (p->variant && strcmp(p->variant, variant) == 0)
                return e;
            continue;
        }
        if (p->variant == NULL || strcmp(arch, "arm64") == 0)
            return e;
        if (fallback == NULL)
            fallback = e;
    }
    if (fallback)
        return fallback;

    char avail[HP_ERR_MSG_MAX / 2];
    size_t off = 0;
    avail[0] = '\0';
    for (size_t i = 0; i < idx->n_entries && off < sizeof avail - 1; i++) {
        char pb[128];
        platform_str(&idx->entries[i].platform, pb, sizeof pb);
        int w = snprintf(avail + off, sizeof avail - off, "%s%s", off ? ", " : "", pb);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    snprintf(wantbuf, sizeof wantbuf, "%s/%s%s%s", os, arch, variant ? "/" : "",
             variant ? variant : "");
    hp_err_set(err, HP_NOT_FOUND, "no image for platform %s in the index; available: %s", wantbuf,
               idx->n_entries ? avail : "none");
    return NULL;
}

/* ---- image manifest ---- */

void hp_manifest_free(struct hp_manifest *m)
{
    if (m == NULL)
        return;
    descriptor_free(&m->config);
    for (size_t i = 0; i < m->n_layers; i++)
        descriptor_free(&m->layers[i]);
    free(m->layers);
    free(m->media_type);
    memset(m, 0, sizeof *m);
}

static int parse_layer(json_t *o, struct hp_descriptor *d, size_t i, hp_err *err)
{
    char what[64];
    snprintf(what, sizeof what, "manifest: layers[%zu]", i);
    if (parse_descriptor(o, d, what, err) < 0)
        return -1;
    for (size_t k = 0; k < sizeof layer_types / sizeof layer_types[0]; k++) {
        if (strcmp(d->media_type, layer_types[k].media_type) == 0) {
            d->compression = layer_types[k].compression;
            d->foreign = layer_types[k].foreign;
            return 0;
        }
    }
    return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: unsupported layer media type \"%.200s\"", what,
                      d->media_type);
}

int hp_manifest_parse(const char *buf, size_t len, const char *media_type, struct hp_manifest *out,
                      hp_err *err)
{
    struct hp_manifest m = {0};
    memset(out, 0, sizeof *out);
    if (is_schema1(media_type))
        return schema1_error(err);
    _cleanup_json_ json_t *root = load_object(buf, len, "manifest", err);
    if (root == NULL)
        return -1;
    const char *mt = check_header(root, media_type, HP_MANIFEST_KIND_IMAGE, "manifest", err);
    if (mt == NULL)
        return -1;
    if (dup_str(mt, &m.media_type, err) < 0)
        return -1;
    json_t *cfg = json_object_get(root, "config");
    if (cfg == NULL) {
        hp_manifest_free(&m);
        return hp_err_set(err, HP_INVALID_ARGUMENT, "manifest: missing \"config\"");
    }
    if (parse_descriptor(cfg, &m.config, "manifest: config", err) < 0) {
        hp_manifest_free(&m);
        return -1;
    }
    if (strcmp(m.config.media_type, HP_MT_OCI_CONFIG) != 0 &&
        strcmp(m.config.media_type, HP_MT_DOCKER_CONFIG) != 0) {
        hp_err_set(err, HP_INVALID_ARGUMENT,
                   "manifest: config media type \"%.200s\" is not a container image config "
                   "(artifact, not a runnable image?)",
                   m.config.media_type);
        hp_manifest_free(&m);
        return -1;
    }
    json_t *arr = json_object_get(root, "layers");
    if (!json_is_array(arr)) {
        hp_manifest_free(&m);
        return hp_err_set(err, HP_INVALID_ARGUMENT, "manifest: \"layers\" missing or not an array");
    }
    size_t n = json_array_size(arr);
    m.layers = calloc(n ? n : 1, sizeof *m.layers);
    if (m.layers == NULL) {
        hp_manifest_free(&m);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        m.n_layers = i + 1;
        if (parse_layer(json_array_get(arr, i), &m.layers[i], i, err) < 0) {
            hp_manifest_free(&m);
            return -1;
        }
    }
    *out = m;
    return 0;
}

/* ---- image config ---- */

void hp_image_config_free(struct hp_image_config *c)
{
    if (c == NULL)
        return;
    free(c->architecture);
    free(c->os);
    free(c->variant);
    free(c->user);
    free(c->working_dir);
    free(c->stop_signal);
    free_strv(c->env);
    free_strv(c->entrypoint);
    free_strv(c->cmd);
    free_kvs(c->labels, c->n_labels);
    free_strv(c->exposed_ports);
    free_strv(c->volumes);
    free_strv(c->diff_ids);
    memset(c, 0, sizeof *c);
}

static int parse_runtime_config(json_t *cc, struct hp_image_config *c, hp_err *err)
{
    const char *what = "image config: config";
    const char *user, *wd, *sig;
    if (cc == NULL || json_is_null(cc))
        return 0;
    if (!json_is_object(cc))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s is not an object", what);
    if (get_str(cc, "User", false, &user, what, err) < 0 ||
        get_str(cc, "WorkingDir", false, &wd, what, err) < 0 ||
        get_str(cc, "StopSignal", false, &sig, what, err) < 0)
        return -1;
    if (dup_str(user, &c->user, err) < 0 || dup_str(wd, &c->working_dir, err) < 0 ||
        dup_str(sig, &c->stop_signal, err) < 0)
        return -1;
    if (get_strv(cc, "Env", &c->env, &c->n_env, what, err) < 0 ||
        get_strv(cc, "Entrypoint", &c->entrypoint, &c->n_entrypoint, what, err) < 0 ||
        get_strv(cc, "Cmd", &c->cmd, &c->n_cmd, what, err) < 0 ||
        get_labels(cc, &c->labels, &c->n_labels, what, err) < 0 ||
        get_keys(cc, "ExposedPorts", &c->exposed_ports, &c->n_exposed_ports, what, err) < 0 ||
        get_keys(cc, "Volumes", &c->volumes, &c->n_volumes, what, err) < 0)
        return -1;
    return 0;
}

int hp_image_config_parse(const char *buf, size_t len, struct hp_image_config *out, hp_err *err)
{
    const char *what = "image config";
    struct hp_image_config c = {0};
    const char *arch, *os, *variant;
    memset(out, 0, sizeof *out);
    _cleanup_json_ json_t *root = load_object(buf, len, what, err);
    if (root == NULL)
        return -1;
    if (get_str(root, "architecture", true, &arch, what, err) < 0 ||
        get_str(root, "os", true, &os, what, err) < 0 ||
        get_str(root, "variant", false, &variant, what, err) < 0)
        return -1;
    json_t *rootfs = json_object_get(root, "rootfs");
    if (!json_is_object(rootfs))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: \"rootfs\" missing or not an object",
                          what);
    const char *type;
    if (get_str(rootfs, "type", true, &type, "image config: rootfs", err) < 0)
        return -1;
    if (strcmp(type, "layers") != 0)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: rootfs type \"%.80s\" is not \"layers\"",
                          what, type);
    if (!json_is_array(json_object_get(rootfs, "diff_ids")))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: rootfs.diff_ids missing or not an array",
                          what);
    if (get_strv(rootfs, "diff_ids", &c.diff_ids, &c.n_diff_ids, "image config: rootfs", err) < 0)
        goto fail;
    for (size_t i = 0; i < c.n_diff_ids; i++) {
        if (!hp_digest_valid(c.diff_ids[i])) {
            hp_err_set(err, HP_INVALID_ARGUMENT, "%s: rootfs.diff_ids[%zu] \"%.80s\" is invalid",
                       what, i, c.diff_ids[i]);
            goto fail;
        }
    }
    const char *na, *nv;
    normalise(arch, variant, &na, &nv);
    if (dup_str(na, &c.architecture, err) < 0 || dup_str(os, &c.os, err) < 0 ||
        dup_str(nv, &c.variant, err) < 0)
        goto fail;
    if (parse_runtime_config(json_object_get(root, "config"), &c, err) < 0)
        goto fail;
    *out = c;
    return 0;
fail:
    hp_image_config_free(&c);
    return -1;
}

int hp_image_config_check(const struct hp_manifest *m, const struct hp_image_config *c, hp_err *err)
{
    if (m->n_layers != c->n_diff_ids)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "image config lists %zu diff_ids but the manifest has %zu layers",
                          c->n_diff_ids, m->n_layers);
    return 0;
}
