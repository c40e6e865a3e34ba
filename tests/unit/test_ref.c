/* Image reference parsing: table-driven valid and invalid cases. */
#include "t.h"

#include "image/ref.h"

#define H64  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define H128 H64 H64

struct valid_case {
    const char *in;
    const char *full;
    const char *domain;
    const char *path;
    const char *tag;    /* NULL: expect NULL */
    const char *digest; /* NULL: expect NULL */
    const char *api_host;
};

static const struct valid_case valid[] = {
    {"busybox", "docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", NULL,
     "registry-1.docker.io"},
    {"busybox:1.36", "docker.io/library/busybox:1.36", "docker.io", "library/busybox", "1.36", NULL,
     "registry-1.docker.io"},
    {"user/app", "docker.io/user/app:latest", "docker.io", "user/app", "latest", NULL,
     "registry-1.docker.io"},
    {"user/app:v2", "docker.io/user/app:v2", "docker.io", "user/app", "v2", NULL,
     "registry-1.docker.io"},
    {"docker.io/busybox", "docker.io/library/busybox:latest", "docker.io", "library/busybox",
     "latest", NULL, "registry-1.docker.io"},
    {"docker.io/library/busybox", "docker.io/library/busybox:latest", "docker.io",
     "library/busybox", "latest", NULL, "registry-1.docker.io"},
    {"index.docker.io/foo", "docker.io/library/foo:latest", "docker.io", "library/foo", "latest",
     NULL, "registry-1.docker.io"},
    {"quay.io/coreos/etcd:v3.5.0", "quay.io/coreos/etcd:v3.5.0", "quay.io", "coreos/etcd", "v3.5.0",
     NULL, "quay.io"},
    {"registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", "3.9",
     NULL, "registry.k8s.io"},
    {"localhost:5000/ns/name:tag", "localhost:5000/ns/name:tag", "localhost:5000", "ns/name", "tag",
     NULL, "localhost:5000"},
    {"myhost:443/a/b/c", "myhost:443/a/b/c:latest", "myhost:443", "a/b/c", "latest", NULL,
     "myhost:443"},
    {"localhost/name", "localhost/name:latest", "localhost", "name", "latest", NULL, "localhost"},
    {"localhost/name:t", "localhost/name:t", "localhost", "name", "t", NULL, "localhost"},
    {"name@sha256:" H64, "docker.io/library/name@sha256:" H64, "docker.io", "library/name", NULL,
     "sha256:" H64, "registry-1.docker.io"},
    {"name:tag@sha256:" H64, "docker.io/library/name:tag@sha256:" H64, "docker.io", "library/name",
     "tag", "sha256:" H64, "registry-1.docker.io"},
    {"ghcr.io/o/r@sha512:" H128, "ghcr.io/o/r@sha512:" H128, "ghcr.io", "o/r", NULL, "sha512:" H128,
     "ghcr.io"},
    {"Example.COM/x", "Example.COM/x:latest", "Example.COM", "x", "latest", NULL, "Example.COM"},
    {"UpperHost/x", "UpperHost/x:latest", "UpperHost", "x", "latest", NULL, "UpperHost"},
    {"a.b-c.d/e", "a.b-c.d/e:latest", "a.b-c.d", "e", "latest", NULL, "a.b-c.d"},
    {"[::1]:5000/x:y", "[::1]:5000/x:y", "[::1]:5000", "x", "y", NULL, "[::1]:5000"},
    {"foo/bar_baz", "docker.io/foo/bar_baz:latest", "docker.io", "foo/bar_baz", "latest", NULL,
     "registry-1.docker.io"},
    {"foo/bar__baz", "docker.io/foo/bar__baz:latest", "docker.io", "foo/bar__baz", "latest", NULL,
     "registry-1.docker.io"},
    {"foo/bar---baz.qux", "docker.io/foo/bar---baz.qux:latest", "docker.io", "foo/bar---baz.qux",
     "latest", NULL, "registry-1.docker.io"},
    {"x:_under", "docker.io/library/x:_under", "docker.io", "library/x", "_under", NULL,
     "registry-1.docker.io"},
    {"x:Mixed.Case-1_2", "docker.io/library/x:Mixed.Case-1_2", "docker.io", "library/x",
     "Mixed.Case-1_2", NULL, "registry-1.docker.io"},
    {"localhost:5000", "docker.io/library/localhost:5000", "docker.io", "library/localhost", "5000",
     NULL, "registry-1.docker.io"},
    {"a/b/c/d/e", "docker.io/a/b/c/d/e:latest", "docker.io", "a/b/c/d/e", "latest", NULL,
     "registry-1.docker.io"},
    {"0/1", "docker.io/0/1:latest", "docker.io", "0/1", "latest", NULL, "registry-1.docker.io"},
};

struct invalid_case {
    const char *in;
    const char *needle; /* must appear in the error message */
};

static const struct invalid_case invalid[] = {
    {"", "empty"},
    {":tag", "missing repository name"},
    {"@sha256:" H64, "missing repository name"},
    {"Busybox", "lowercase"},
    {"user/App", "lowercase"},
    {"name:", "empty tag"},
    {"name:-bad", "tag must start"},
    {"name:.bad", "tag must start"},
    {"name:ba$d", "invalid character"},
    {"name:"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "longer than 128"},
    {"name@sha256:abc", "64 hex"},
    {"name@sha256:" H64 "0", "64 hex"},
    {"name@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", "lowercase"},
    {"name@md5:0123456789abcdef0123456789abcdef", "unsupported digest algorithm"},
    {"name@" H64, "no algorithm"},
    {"name@sha512:" H64, "128 hex"},
    {"name@", "no algorithm"},
    {"a//b", "empty path component"},
    {"a/", "empty path component"},
    {"/a", "empty path component"},
    {"-a", "must start and end"},
    {"a-", "must start and end"},
    {"a..b", "must start and end"},
    {"a___b", "must start and end"},
    {"a b", "invalid character"},
    {"quay.io/", "missing repository path"},
    {"quay.io:abc/x", "port must be a number"},
    {"quay.io:99999/x", "port out of range"},
    {"-bad.com/x", "invalid domain label"},
    {"bad-.com/x", "invalid domain label"},
    {"a..com/x", "invalid domain label"},
    {"bad_host.com/x", "invalid character"},
    {"[zz]:5000/x", "IPv6"},
    {H64, "ambiguous"},
    {"name:tag:tag2", "invalid character"},
    {"name@sha256:" H64 "@sha256:" H64, "lowercase"},
};

T_CASE(valid_references)
{
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        const struct valid_case *c = &valid[i];
        hp_err err = HP_ERR_INIT;
        hp_ref r;
        if (hp_ref_parse(c->in, &r, &err) != 0) {
            T_FAIL("parse \"%s\" failed: %s", c->in, err.msg);
            return;
        }
        char *full = hp_ref_format(&r);
        char *repo = hp_ref_repository(&r);
        char want_repo[512];
        snprintf(want_repo, sizeof want_repo, "%s/%s", c->domain, c->path);
        int ok = full && repo && strcmp(full, c->full) == 0 && strcmp(r.domain, c->domain) == 0 &&
                 strcmp(r.path, c->path) == 0 && strcmp(repo, want_repo) == 0 &&
                 (c->tag ? r.tag && strcmp(r.tag, c->tag) == 0 : r.tag == NULL) &&
                 (c->digest ? r.digest && strcmp(r.digest, c->digest) == 0 : r.digest == NULL) &&
                 strcmp(hp_ref_api_host(&r), c->api_host) == 0;
        if (!ok)
            T_FAIL("case \"%s\": got full=%s domain=%s path=%s tag=%s digest=%s host=%s", c->in,
                   full ? full : "(null)", r.domain, r.path, r.tag ? r.tag : "(null)",
                   r.digest ? r.digest : "(null)", hp_ref_api_host(&r));
        free(full);
        free(repo);
        hp_ref_free(&r);
        T_ASSERT(ok);
        /* Normalisation is idempotent: parsing the full name gives the same name. */
        T_ASSERT(hp_ref_parse(c->full, &r, &err) == 0);
        full = hp_ref_format(&r);
        int same = full && strcmp(full, c->full) == 0;
        free(full);
        hp_ref_free(&r);
        T_ASSERT(same);
    }
}

T_CASE(invalid_references)
{
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        const struct invalid_case *c = &invalid[i];
        hp_err err = HP_ERR_INIT;
        hp_ref r;
        int rc = hp_ref_parse(c->in, &r, &err);
        if (rc == 0) {
            char *full = hp_ref_format(&r);
            T_FAIL("\"%s\" should be invalid, parsed as %s", c->in, full ? full : "?");
            free(full);
            hp_ref_free(&r);
            return;
        }
        T_EQ_INT(rc, -1);
        T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
        if (strstr(err.msg, c->needle) == NULL) {
            T_FAIL("\"%s\": message \"%s\" lacks \"%s\"", c->in, err.msg, c->needle);
            return;
        }
        /* The message names the reference (possibly truncated). */
        if (*c->in && strncmp(c->in, "aaaa", 4) != 0 &&
            strstr(err.msg, "invalid image reference") == NULL) {
            T_FAIL("\"%s\": message \"%s\" does not name the reference", c->in, err.msg);
            return;
        }
        T_ASSERT(r.domain == NULL && r.path == NULL && r.tag == NULL && r.digest == NULL);
    }
}

T_CASE(case_count)
{
    /* The brief asks for 40+ table cases. */
    T_ASSERT(sizeof valid / sizeof valid[0] + sizeof invalid / sizeof invalid[0] >= 40);
}

T_CASE(repository_name_too_long)
{
    char buf[400];
    hp_err err = HP_ERR_INIT;
    hp_ref r;
    memset(buf, 'a', sizeof buf);
    memcpy(buf, "quay.io/", 8);
    buf[300] = '\0';
    T_EQ_INT(hp_ref_parse(buf, &r, &err), -1);
    T_ASSERT(strstr(err.msg, "longer than 255") != NULL);
    buf[250] = '\0';
    T_EQ_INT(hp_ref_parse(buf, &r, &err), 0);
    hp_ref_free(&r);
}

T_CASE(api_reference_prefers_digest)
{
    hp_err err = HP_ERR_INIT;
    hp_ref r;
    T_EQ_INT(hp_ref_parse("x:t@sha256:" H64, &r, &err), 0);
    T_EQ_STR(hp_ref_api_reference(&r), "sha256:" H64);
    hp_ref_free(&r);
    T_EQ_INT(hp_ref_parse("x:t", &r, &err), 0);
    T_EQ_STR(hp_ref_api_reference(&r), "t");
    hp_ref_free(&r);
}

T_CASE(digest_valid)
{
    T_ASSERT(hp_ref_digest_valid("sha256:" H64));
    T_ASSERT(hp_ref_digest_valid("sha512:" H128));
    T_ASSERT(!hp_ref_digest_valid("sha256:" H128));
    T_ASSERT(!hp_ref_digest_valid("sha256:"));
    T_ASSERT(!hp_ref_digest_valid(NULL));
    T_ASSERT(!hp_ref_digest_valid("sha1:0123456789abcdef0123456789abcdef01234567"));
}

T_MAIN()
