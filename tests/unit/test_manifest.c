/* Manifest, index and image config parsing: table-driven good and bad documents. */
#include <string.h>

#include "image/manifest.h"
#include "t.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEX_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define DA    "sha256:" HEX_A
#define DB    "sha256:" HEX_B
#define DC    "sha256:" HEX_C

#define CFG_OCI          "{\"mediaType\":\"" HP_MT_OCI_CONFIG "\",\"digest\":\"" DA "\",\"size\":100}"
#define LAYER(mt, d, sz) "{\"mediaType\":\"" mt "\",\"digest\":\"" d "\",\"size\":" #sz "}"
#define L_GZ             "application/vnd.oci.image.layer.v1.tar+gzip"
#define L_ZST            "application/vnd.oci.image.layer.v1.tar+zstd"
#define L_TAR            "application/vnd.oci.image.layer.v1.tar"
#define L_DOCKER         "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define L_FOREIGN        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

#define OCI_MANIFEST(layers)                                                                       \
    "{\"schemaVersion\":2,\"mediaType\":\"" HP_MT_OCI_MANIFEST "\",\"config\":" CFG_OCI            \
    ",\"layers\":[" layers "]}"

#define S(x) x, sizeof(x) - 1

T_CASE(digest_valid)
{
    struct {
        const char *s;
        bool ok;
    } cases[] = {
        {DA, true},
        {"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true},
        {"sha256:" HEX_A "a", false},
        {"sha256:aaaa", false},
        {"sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false},
        {"sha256:gaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
        {"sha512:" HEX_A HEX_A, false},
        {"SHA256:" HEX_A, false},
        {HEX_A, false},
        {"", false},
        {NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (hp_digest_valid(cases[i].s) != cases[i].ok)
            T_FAIL("hp_digest_valid(%s) != %d", cases[i].s ? cases[i].s : "NULL", cases[i].ok);
    }
}

T_CASE(oci_manifest_good)
{
    static const char doc[] = OCI_MANIFEST(LAYER(L_TAR, DB, 10) "," LAYER(L_GZ, DC, 0) "," LAYER(
        L_ZST, DA, 12345678901) ",{\"mediaType\":\"application/"
                                "vnd.oci.image.layer.nondistributable.v1.tar+gzip\",\"digest\":"
                                "\"" DB "\",\"size\":5,\"urls\":[\"https://example.com/l\"]}");
    struct hp_manifest m;
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_manifest_kind(S(doc), NULL, &err), HP_MANIFEST_KIND_IMAGE);
    T_EQ_INT(hp_manifest_parse(S(doc), HP_MT_OCI_MANIFEST, &m, &err), 0);
    T_EQ_STR(m.media_type, HP_MT_OCI_MANIFEST);
    T_EQ_STR(m.config.digest, DA);
    T_EQ_STR(m.config.media_type, HP_MT_OCI_CONFIG);
    T_EQ_INT(m.config.size, 100);
    T_EQ_INT(m.n_layers, 4);
    T_EQ_INT(m.layers[0].compression, HP_COMPRESSION_NONE);
    T_EQ_INT(m.layers[1].compression, HP_COMPRESSION_GZIP);
    T_EQ_INT(m.layers[1].size, 0);
    T_EQ_INT(m.layers[2].compression, HP_COMPRESSION_ZSTD);
    T_EQ_INT(m.layers[2].size, 12345678901LL);
    T_ASSERT(!m.layers[2].foreign);
    T_ASSERT(m.layers[3].foreign);
    T_EQ_INT(m.layers[3].compression, HP_COMPRESSION_GZIP);
    T_EQ_STR(m.layers[3].urls[0], "https://example.com/l");
    T_ASSERT(m.layers[3].urls[1] == NULL);
    T_EQ_STR(hp_compression_name(m.layers[2].compression), "tar+zstd");
    hp_manifest_free(&m);
    T_ASSERT(m.layers == NULL && m.n_layers == 0);
}

T_CASE(docker_manifest_good)
{
    static const char doc[] =
        "{\"schemaVersion\":2,\"mediaType\":\"" HP_MT_DOCKER_MANIFEST "\",\"config\":{"
        "\"mediaType\":\"" HP_MT_DOCKER_CONFIG "\",\"digest\":\"" DA "\",\"size\":7},"
        "\"layers\":[" LAYER(L_DOCKER, DB, 3) "," LAYER(L_FOREIGN, DC, 4) "]}";
    struct hp_manifest m;
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_manifest_parse(S(doc), "application/json", &m, &err), 0);
    T_EQ_STR(m.media_type, HP_MT_DOCKER_MANIFEST);
    T_EQ_INT(m.n_layers, 2);
    T_EQ_INT(m.layers[0].compression, HP_COMPRESSION_GZIP);
    T_ASSERT(!m.layers[0].foreign);
    T_ASSERT(m.layers[1].foreign);
    hp_manifest_free(&m);

    /* OCI manifest without mediaType: the Content-Type decides, else the shape. */
    static const char nomt[] =
        "{\"schemaVersion\":2,\"config\":" CFG_OCI ",\"layers\":[" LAYER(L_GZ, DB, 1) "]}";
    T_EQ_INT(hp_manifest_parse(S(nomt), NULL, &m, &err), 0);
    T_EQ_STR(m.media_type, HP_MT_OCI_MANIFEST);
    hp_manifest_free(&m);
    T_EQ_INT(hp_manifest_kind(S(nomt), "application/json", &err), HP_MANIFEST_KIND_IMAGE);
}

T_CASE(manifest_bad)
{
    struct {
        const char *doc;
        const char *media_type;
        const char *want; /* substring of the error */
    } cases[] = {
        {"{", NULL, "malformed JSON"},
        {"", NULL, "malformed JSON"},
        {"[1,2]", NULL, "not an object"},
        {"{\"schemaVersion\":2,\"schemaVersion\":2,\"config\":" CFG_OCI ",\"layers\":[]}", NULL,
         "duplicate"},
        {"{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}", NULL, "schema1"},
        {"{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}", HP_MT_DOCKER_V1_JWS,
         "re-push the image"},
        {"{\"schemaVersion\":2,\"config\":" CFG_OCI ",\"layers\":[]}", HP_MT_DOCKER_V1, "schema1"},
        {"not json at all", HP_MT_DOCKER_V1_JWS, "schema1"},
        {"{\"mediaType\":\"" HP_MT_OCI_MANIFEST "\",\"config\":" CFG_OCI ",\"layers\":[]}", NULL,
         "schemaVersion"},
        {"{\"schemaVersion\":\"2\",\"config\":" CFG_OCI ",\"layers\":[]}", NULL, "schemaVersion"},
        {"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.example+json\",\"layers\":[]}", NULL,
         "unsupported media type"},
        {"{\"schemaVersion\":2,\"mediaType\":7,\"layers\":[]}", NULL, "\"mediaType\" is not"},
        {"{\"schemaVersion\":2,\"mediaType\":\"" HP_MT_OCI_MANIFEST "\",\"layers\":[]}", NULL,
         "missing \"config\""},
        {"{\"schemaVersion\":2,\"mediaType\":\"" HP_MT_OCI_MANIFEST "\",\"config\":" CFG_OCI "}",
         NULL, "\"layers\" missing"},
        {"{\"schemaVersion\":2,\"mediaType\":\"" HP_MT_OCI_MANIFEST "\",\"config\":" CFG_OCI
         ",\"layers\":{}}",
         NULL, "\"layers\" missing or not an array"},
        {OCI_MANIFEST(LAYER(L_GZ, "sha256:AAAA", 1)), NULL, "layers[0]: invalid digest"},
        {OCI_MANIFEST(LAYER(L_GZ, DA, 1) "," LAYER(L_GZ, "sha256:" HEX_A "ff", 1)), NULL,
         "layers[1]: invalid digest"},
        {OCI_MANIFEST(LAYER(L_GZ, "sha512:" HEX_A HEX_A, 1)), NULL, "invalid digest"},
        {OCI_MANIFEST(LAYER(L_GZ, "md5:abc", 1)), NULL, "invalid digest"},
        {OCI_MANIFEST(LAYER(L_GZ, DA, -1)), NULL, "layers[0]: negative size -1"},
        {OCI_MANIFEST(LAYER(L_GZ, DA, 1.5)), NULL, "\"size\" is not an integer"},
        {OCI_MANIFEST(LAYER(L_GZ, DA, "1")), NULL, "\"size\" is not an integer"},
        {OCI_MANIFEST("{\"mediaType\":\"" L_GZ "\",\"digest\":\"" DA "\"}"), NULL,
         "missing \"size\""},
        {OCI_MANIFEST("{\"mediaType\":\"" L_GZ "\",\"size\":1}"), NULL, "missing \"digest\""},
        {OCI_MANIFEST("{\"digest\":\"" DA "\",\"size\":1}"), NULL, "missing \"mediaType\""},
        {OCI_MANIFEST("7"), NULL, "layers[0] is not an object"},
        {OCI_MANIFEST(LAYER("application/vnd.cncf.helm.chart.content.v1.tar+gzip", DA, 1)), NULL,
         "unsupported layer media type"},
        {OCI_MANIFEST(LAYER(L_GZ, DA, 1) ",{\"mediaType\":\"" L_GZ "\",\"digest\":\"" DA
                                         "\",\"size\":1,\"urls\":[1]}"),
         NULL, "\"urls\"[0] is not a string"},
        {"{\"schemaVersion\":2,\"mediaType\":\"" HP_MT_OCI_MANIFEST "\",\"config\":{"
         "\"mediaType\":\"application/vnd.cncf.helm.config.v1+json\",\"digest\":\"" DA
         "\",\"size\":1},\"layers\":[]}",
         NULL, "not a container image config"},
        {"{\"schemaVersion\":2,\"mediaType\":\"" HP_MT_OCI_MANIFEST "\",\"config\":{"
         "\"mediaType\":\"" HP_MT_OCI_CONFIG "\",\"digest\":\"" DA "\",\"size\":-5},\"layers\":[]}",
         NULL, "config: negative size"},
        {"{\"schemaVersion\":2,\"mediaType\":\"" HP_MT_OCI_INDEX "\",\"manifests\":[]}", NULL,
         "is an image index, not an image manifest"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hp_manifest m;
        hp_err err = HP_ERR_INIT;
        int rc =
            hp_manifest_parse(cases[i].doc, strlen(cases[i].doc), cases[i].media_type, &m, &err);
        if (rc != -1) {
            T_FAIL("case %zu parsed: %s", i, cases[i].doc);
            hp_manifest_free(&m);
            continue;
        }
        if (err.code != HP_INVALID_ARGUMENT || !strstr(err.msg, cases[i].want))
            T_FAIL("case %zu: want \"%s\", got %s \"%s\"", i, cases[i].want,
                   hp_status_name(err.code), err.msg);
        if (m.layers != NULL || m.media_type != NULL)
            T_FAIL("case %zu: output not left zeroed", i);
    }
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_manifest_parse(NULL, 0, NULL, &(struct hp_manifest){0}, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
}

T_CASE(manifest_too_large)
{
    size_t n = HP_MANIFEST_MAX_SIZE + 1;
    char *big = malloc(n);
    T_ASSERT(big);
    memset(big, ' ', n);
    struct hp_manifest m;
    hp_err err = HP_ERR_INIT;
    int rc = hp_manifest_parse(big, n, NULL, &m, &err);
    free(big);
    T_EQ_INT(rc, -1);
    T_ASSERT(strstr(err.msg, "exceeds"));
}

#define ENTRY(d, plat)                                                                             \
    "{\"mediaType\":\"" HP_MT_OCI_MANIFEST "\",\"digest\":\"" d "\",\"size\":500" plat "}"
#define PLAT(os, arch) ",\"platform\":{\"os\":\"" os "\",\"architecture\":\"" arch "\"}"
#define PLATV(os, arch, v)                                                                         \
    ",\"platform\":{\"os\":\"" os "\",\"architecture\":\"" arch "\",\"variant\":\"" v "\"}"
#define INDEX(entries)                                                                             \
    "{\"schemaVersion\":2,\"mediaType\":\"" HP_MT_OCI_INDEX "\",\"manifests\":[" entries "]}"

static const char *pick(const struct hp_index *idx, const char *plat, hp_err *err)
{
    struct hp_platform p = {0};
    const struct hp_index_entry *e;
    if (plat && hp_platform_parse(plat, &p, err) < 0)
        return "bad platform";
    e = hp_index_select(idx, plat ? &p : NULL, err);
    hp_platform_free(&p);
    return e ? e->desc.digest : NULL;
}

T_CASE(index_select)
{
    static const char doc[] = INDEX(
        ENTRY(DA, PLAT("linux", "amd64")) "," ENTRY(DB, PLATV("linux", "arm64", "v8")) "," ENTRY(
            DC, PLATV("linux", "arm", "v7")) "," ENTRY(DA, "") "," ENTRY(DB, PLAT("unknown",
                                                                                  "unknown")));
    struct hp_index idx;
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_manifest_kind(S(doc), NULL, &err), HP_MANIFEST_KIND_INDEX);
    T_EQ_INT(hp_index_parse(S(doc), NULL, &idx, &err), 0);
    T_EQ_STR(idx.media_type, HP_MT_OCI_INDEX);
    T_EQ_INT(idx.n_entries, 5);
    T_EQ_STR(idx.entries[1].platform.variant, "v8");
    T_ASSERT(idx.entries[3].platform.os == NULL);
    struct {
        const char *plat;
        const char *want;
    } cases[] = {
        {NULL, DA},          {"linux/amd64", DA},    {"linux/x86_64", DA},  {"LINUX/amd64", DA},
        {"linux/arm64", DB}, {"linux/arm64/v8", DB}, {"linux/aarch64", DB}, {"linux/arm/v7", DC},
        {"linux/arm", DC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = pick(&idx, cases[i].plat, &err);
        if (got == NULL || strcmp(got, cases[i].want) != 0)
            T_FAIL("platform %s: got %s (%s)", cases[i].plat ? cases[i].plat : "default",
                   got ? got : "NULL", err.msg);
    }
    T_ASSERT(pick(&idx, "linux/arm/v6", &err) == NULL);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(pick(&idx, "windows/amd64", &err) == NULL);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(strstr(err.msg, "windows/amd64"));
    T_ASSERT(strstr(err.msg, "available: linux/amd64, linux/arm64/v8, linux/arm/v7, (no "
                             "platform), unknown/unknown"));
    hp_index_free(&idx);
    T_ASSERT(idx.entries == NULL);
}

T_CASE(index_variants)
{
    /* arm64 entry without variant matches a request for arm64/v8; an amd64 entry
     * without variant is preferred over amd64/v3 when no variant is asked for. */
    static const char doc[] =
        "{\"schemaVersion\":2,\"mediaType\":\"" HP_MT_DOCKER_LIST
        "\",\"manifests\":[" ENTRY(DC, PLATV("linux", "amd64", "v3")) "," ENTRY(
            DA, PLAT("linux", "amd64")) "," ENTRY(DB, PLAT("linux", "arm64")) "]}";
    struct hp_index idx;
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_index_parse(S(doc), HP_MT_DOCKER_LIST, &idx, &err), 0);
    T_EQ_STR(idx.media_type, HP_MT_DOCKER_LIST);
    T_EQ_STR(pick(&idx, "linux/arm64/v8", &err), DB);
    T_EQ_STR(pick(&idx, "linux/amd64", &err), DA);
    T_EQ_STR(pick(&idx, "linux/amd64/v3", &err), DC);
    hp_index_free(&idx);

    /* Only a variant entry: taken when no variant is asked for. */
    static const char only_v3[] = INDEX(ENTRY(DC, PLATV("linux", "amd64", "v3")));
    T_EQ_INT(hp_index_parse(S(only_v3), NULL, &idx, &err), 0);
    T_EQ_STR(pick(&idx, NULL, &err), DC);
    hp_index_free(&idx);

    static const char empty[] = INDEX("");
    T_EQ_INT(hp_index_parse(S(empty), NULL, &idx, &err), 0);
    T_ASSERT(pick(&idx, NULL, &err) == NULL);
    T_ASSERT(strstr(err.msg, "no image for platform linux/amd64") && strstr(err.msg, "none"));
    hp_index_free(&idx);
}

T_CASE(index_bad)
{
    struct {
        const char *doc;
        const char *want;
    } cases[] = {
        {"{\"schemaVersion\":2,\"mediaType\":\"" HP_MT_OCI_INDEX "\"}", "\"manifests\" missing"},
        {"{\"schemaVersion\":2,\"mediaType\":\"" HP_MT_OCI_INDEX "\",\"manifests\":{}}",
         "not an array"},
        {INDEX(ENTRY("sha256:xyz", PLAT("linux", "amd64"))), "manifests[0]: invalid digest"},
        {INDEX(ENTRY(DA, "") "," ENTRY(DA, ",\"platform\":{\"architecture\":\"amd64\"}")),
         "manifests[1]: missing \"os\""},
        {INDEX(ENTRY(DA, ",\"platform\":\"linux/amd64\"")), "\"platform\" is not an object"},
        {INDEX(ENTRY(DA, ",\"platform\":{\"os\":\"linux\",\"architecture\":5}")),
         "\"architecture\" is not a string"},
        {INDEX("{\"mediaType\":\"" HP_MT_DOCKER_V1_JWS "\",\"digest\":\"" DA "\",\"size\":1}"),
         "schema1"},
        {INDEX("{\"mediaType\":\"" HP_MT_OCI_MANIFEST "\",\"digest\":\"" DA "\",\"size\":-1}"),
         "negative size"},
        {"{\"schemaVersion\":3,\"mediaType\":\"" HP_MT_OCI_INDEX "\",\"manifests\":[]}",
         "schemaVersion"},
        {OCI_MANIFEST(""), "is an image manifest, not an image index"},
        {"{\"schemaVersion\":2}", "neither"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hp_index idx;
        hp_err err = HP_ERR_INIT;
        if (hp_index_parse(cases[i].doc, strlen(cases[i].doc), NULL, &idx, &err) != -1) {
            T_FAIL("case %zu parsed", i);
            hp_index_free(&idx);
            continue;
        }
        if (err.code != HP_INVALID_ARGUMENT || !strstr(err.msg, cases[i].want))
            T_FAIL("case %zu: want \"%s\", got %s \"%s\"", i, cases[i].want,
                   hp_status_name(err.code), err.msg);
        if (idx.entries != NULL)
            T_FAIL("case %zu: output not zeroed", i);
    }
}

T_CASE(platform_parse)
{
    struct hp_platform p;
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_platform_parse("linux/arm64", &p, &err), 0);
    T_EQ_STR(p.os, "linux");
    T_EQ_STR(p.architecture, "arm64");
    T_EQ_STR(p.variant, "v8");
    hp_platform_free(&p);
    T_EQ_INT(hp_platform_parse("linux/x86_64", &p, &err), 0);
    T_EQ_STR(p.architecture, "amd64");
    T_ASSERT(p.variant == NULL);
    hp_platform_free(&p);
    const char *bad[] = {"linux", "/amd64", "linux/", "linux/arm/", "linux/arm/v7/x", "", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (hp_platform_parse(bad[i], &p, &err) != -1) {
            T_FAIL("platform \"%s\" accepted", bad[i] ? bad[i] : "NULL");
            hp_platform_free(&p);
        } else if (err.code != HP_INVALID_ARGUMENT) {
            T_FAIL("platform \"%s\": code %d", bad[i] ? bad[i] : "NULL", err.code);
        }
    }
}

#define CONFIG_DOC(rootfs, config)                                                                 \
    "{\"architecture\":\"arm64\",\"os\":\"linux\",\"rootfs\":" rootfs ",\"config\":" config "}"
#define ROOTFS2 "{\"type\":\"layers\",\"diff_ids\":[\"" DA "\",\"" DB "\"]}"

T_CASE(config_good)
{
    static const char doc[] = CONFIG_DOC(
        ROOTFS2, "{\"User\":\"1000:1000\",\"Env\":[\"PATH=/usr/bin\",\"A=b=c\"],"
                 "\"Entrypoint\":[\"/bin/sh\",\"-c\"],\"Cmd\":null,\"WorkingDir\":\"/srv\","
                 "\"StopSignal\":\"SIGQUIT\",\"Labels\":{\"z\":\"1\",\"a\":\"2\"},"
                 "\"ExposedPorts\":{\"80/tcp\":{},\"53/udp\":{}},\"Volumes\":{\"/data\":{}},"
                 "\"Unknown\":[1,2,3]}");
    struct hp_image_config c;
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_image_config_parse(S(doc), &c, &err), 0);
    T_EQ_STR(c.architecture, "arm64");
    T_EQ_STR(c.variant, "v8");
    T_EQ_STR(c.os, "linux");
    T_EQ_STR(c.user, "1000:1000");
    T_EQ_INT(c.n_env, 2);
    T_EQ_STR(c.env[1], "A=b=c");
    T_ASSERT(c.env[2] == NULL);
    T_EQ_INT(c.n_entrypoint, 2);
    T_EQ_STR(c.entrypoint[1], "-c");
    T_EQ_INT(c.n_cmd, 0);
    T_ASSERT(c.cmd == NULL);
    T_EQ_STR(c.working_dir, "/srv");
    T_EQ_STR(c.stop_signal, "SIGQUIT");
    T_EQ_INT(c.n_labels, 2);
    T_EQ_STR(c.labels[0].key, "a");
    T_EQ_STR(c.labels[0].value, "2");
    T_EQ_STR(c.labels[1].key, "z");
    T_EQ_INT(c.n_exposed_ports, 2);
    T_EQ_STR(c.exposed_ports[0], "53/udp");
    T_EQ_STR(c.exposed_ports[1], "80/tcp");
    T_EQ_INT(c.n_volumes, 1);
    T_EQ_STR(c.volumes[0], "/data");
    T_EQ_INT(c.n_diff_ids, 2);
    T_EQ_STR(c.diff_ids[1], DB);

    /* Manifest/config agreement. */
    static const char two[] = OCI_MANIFEST(LAYER(L_GZ, DB, 1) "," LAYER(L_GZ, DC, 2));
    static const char three[] =
        OCI_MANIFEST(LAYER(L_GZ, DB, 1) "," LAYER(L_GZ, DC, 2) "," LAYER(L_GZ, DA, 3));
    struct hp_manifest m;
    T_EQ_INT(hp_manifest_parse(S(two), NULL, &m, &err), 0);
    T_EQ_INT(hp_image_config_check(&m, &c, &err), 0);
    hp_manifest_free(&m);
    T_EQ_INT(hp_manifest_parse(S(three), NULL, &m, &err), 0);
    T_EQ_INT(hp_image_config_check(&m, &c, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_EQ_STR(err.msg, "image config lists 2 diff_ids but the manifest has 3 layers");
    hp_manifest_free(&m);
    hp_image_config_free(&c);
    T_ASSERT(c.env == NULL && c.labels == NULL);

    /* Minimal: no runtime config at all. */
    static const char minimal[] =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
        "\"diff_ids\":[]}}";
    T_EQ_INT(hp_image_config_parse(S(minimal), &c, &err), 0);
    T_ASSERT(c.user == NULL && c.env == NULL && c.n_diff_ids == 0 && c.variant == NULL);
    hp_image_config_free(&c);
}

T_CASE(config_bad)
{
    struct {
        const char *doc;
        const char *want;
    } cases[] = {
        {"{\"os\":\"linux\",\"rootfs\":" ROOTFS2 "}", "missing \"architecture\""},
        {"{\"architecture\":\"amd64\",\"rootfs\":" ROOTFS2 "}", "missing \"os\""},
        {"{\"architecture\":\"amd64\",\"os\":\"linux\"}", "\"rootfs\" missing"},
        {CONFIG_DOC("{\"type\":\"layers\"}", "{}"), "diff_ids missing"},
        {CONFIG_DOC("{\"type\":\"other\",\"diff_ids\":[]}", "{}"), "is not \"layers\""},
        {CONFIG_DOC("{\"type\":\"layers\",\"diff_ids\":[\"" DA "\",\"sha256:x\"]}", "{}"),
         "diff_ids[1]"},
        {CONFIG_DOC("{\"type\":\"layers\",\"diff_ids\":[5]}", "{}"), "\"diff_ids\"[0] is not"},
        {CONFIG_DOC(ROOTFS2, "{\"Env\":\"PATH=/bin\"}"), "\"Env\" is not an array"},
        {CONFIG_DOC(ROOTFS2, "{\"Cmd\":[\"sh\",null]}"), "\"Cmd\"[1] is not a string"},
        {CONFIG_DOC(ROOTFS2, "{\"Labels\":{\"a\":1}}"), "label \"a\" is not a string"},
        {CONFIG_DOC(ROOTFS2, "{\"Labels\":[]}"), "\"Labels\" is not an object"},
        {CONFIG_DOC(ROOTFS2, "{\"ExposedPorts\":[\"80/tcp\"]}"), "\"ExposedPorts\" is not"},
        {CONFIG_DOC(ROOTFS2, "{\"User\":0}"), "\"User\" is not a string"},
        {CONFIG_DOC(ROOTFS2, "[]"), "config is not an object"},
        {"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
         "\"diff_ids\":[\"a\\u0000b\"]}}",
         "malformed JSON"},
        {"{\"architecture\":\"amd64\",\"os\":\"linux\",", "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hp_image_config c;
        hp_err err = HP_ERR_INIT;
        if (hp_image_config_parse(cases[i].doc, strlen(cases[i].doc), &c, &err) != -1) {
            T_FAIL("case %zu parsed", i);
            hp_image_config_free(&c);
            continue;
        }
        if (err.code != HP_INVALID_ARGUMENT || !strstr(err.msg, cases[i].want))
            T_FAIL("case %zu: want \"%s\", got %s \"%s\"", i, cases[i].want,
                   hp_status_name(err.code), err.msg);
        if (c.diff_ids != NULL || c.os != NULL)
            T_FAIL("case %zu: output not zeroed", i);
    }
}

T_MAIN()
