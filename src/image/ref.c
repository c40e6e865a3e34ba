#include "image/ref.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"

#define DOCKER_DOMAIN   "docker.io"
#define DOCKER_LEGACY   "index.docker.io"
#define DOCKER_API_HOST "registry-1.docker.io"
#define TAG_MAX         128

static int is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static int is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int hp_ref_digest_valid(const char *d)
{
    size_t want, n;
    if (d == NULL)
        return 0;
    if (strncmp(d, "sha256:", 7) == 0)
        want = 64;
    else if (strncmp(d, "sha512:", 7) == 0)
        want = 128;
    else
        return 0;
    d += 7;
    for (n = 0; d[n]; n++)
        if (!is_lower_hex(d[n]))
            return 0;
    return n == want;
}

/* Why a digest is invalid, for the error message. */
static const char *digest_problem(const char *d)
{
    const char *colon = strchr(d, ':');
    size_t want, n;
    if (colon == NULL)
        return "digest has no algorithm (expected sha256:<hex>)";
    if (strncmp(d, "sha256:", 7) == 0)
        want = 64;
    else if (strncmp(d, "sha512:", 7) == 0)
        want = 128;
    else
        return "unsupported digest algorithm (expected sha256 or sha512)";
    for (n = 0; d[7 + n]; n++)
        if (!is_lower_hex(d[7 + n]))
            return "digest must be lowercase hexadecimal";
    if (n != want)
        return want == 64 ? "sha256 digest must have 64 hex digits"
                          : "sha512 digest must have 128 hex digits";
    return NULL;
}

/* A tag: [\w][\w.-]{0,127}.  Returns a problem string or NULL. */
static const char *tag_problem(const char *t, size_t len)
{
    if (len == 0)
        return "empty tag";
    if (len > TAG_MAX)
        return "tag longer than 128 characters";
    if (!(is_alnum(t[0]) || t[0] == '_'))
        return "tag must start with a letter, digit or '_'";
    for (size_t i = 1; i < len; i++)
        if (!(is_alnum(t[i]) || t[i] == '_' || t[i] == '.' || t[i] == '-'))
            return "tag contains an invalid character";
    return NULL;
}

/* One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.  Returns a problem or NULL. */
static const char *component_problem(const char *c, size_t len)
{
    size_t i = 0;
    if (len == 0)
        return "empty path component";
    for (size_t k = 0; k < len; k++)
        if (c[k] >= 'A' && c[k] <= 'Z')
            return "repository name must be lowercase";
    while (1) {
        size_t start = i;
        while (i < len && is_lower_alnum(c[i]))
            i++;
        if (i == start)
            return "path component must start and end with a letter or digit and use only "
                   "'.', '_', '__' or '-' as separators";
        if (i == len)
            return NULL;
        /* separator */
        if (c[i] == '.') {
            i++;
        } else if (c[i] == '_') {
            i++;
            if (i < len && c[i] == '_')
                i++;
        } else if (c[i] == '-') {
            while (i < len && c[i] == '-')
                i++;
        } else {
            return "path component contains an invalid character";
        }
    }
}

/* Domain: host[:port] where host is DNS labels ([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)
 * joined by '.', or a bracketed IPv6 address. */
static const char *domain_problem(const char *d, size_t len)
{
    size_t i = 0;
    if (len == 0)
        return "empty domain";
    if (d[0] == '[') {
        size_t j = 1;
        while (j < len && (isxdigit((unsigned char)d[j]) || d[j] == ':' || d[j] == '.'))
            j++;
        if (j == 1 || j >= len || d[j] != ']')
            return "invalid IPv6 address in domain";
        i = j + 1;
    } else {
        while (1) {
            size_t start = i;
            while (i < len && (is_alnum(d[i]) || d[i] == '-'))
                i++;
            if (i == start || d[start] == '-' || d[i - 1] == '-')
                return "invalid domain label";
            if (i < len && d[i] == '.') {
                i++;
                continue;
            }
            break;
        }
    }
    if (i < len) {
        size_t start;
        if (d[i] != ':')
            return "domain contains an invalid character";
        start = ++i;
        while (i < len && d[i] >= '0' && d[i] <= '9')
            i++;
        if (i == start || i != len)
            return "port must be a number";
        if (i - start > 5 || atoi(d + start) > 65535)
            return "port out of range";
    }
    return NULL;
}

void hp_ref_free(hp_ref *ref)
{
    if (ref == NULL)
        return;
    free(ref->domain);
    free(ref->path);
    free(ref->tag);
    free(ref->digest);
    memset(ref, 0, sizeof *ref);
}

static int bad(hp_err *err, const char *s, const char *problem)
{
    return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid image reference \"%.256s\": %s", s,
                      problem);
}

int hp_ref_parse(const char *s, hp_ref *ref, hp_err *err)
{
    _cleanup_free_ char *name = NULL;
    const char *at, *slash, *colon, *first_end, *problem;
    const char *path_start, *p;
    size_t name_len, domain_len;
    hp_ref r = {0};

    memset(ref, 0, sizeof *ref);
    if (s == NULL || *s == '\0')
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid image reference \"\": empty");
    if (strlen(s) > 4096)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "invalid image reference: longer than 4096 characters");

    /* Digest: everything after the first '@'. */
    at = strchr(s, '@');
    if (at) {
        if ((problem = digest_problem(at + 1)) != NULL)
            return bad(err, s, problem);
        name_len = (size_t)(at - s);
    } else {
        name_len = strlen(s);
    }
    if (name_len == 0)
        return bad(err, s, "missing repository name");

    /* Tag: a ':' after the last '/'. */
    name = strndup(s, name_len);
    if (name == NULL)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    slash = strrchr(name, '/');
    colon = strrchr(slash ? slash : name, ':');
    if (colon) {
        const char *tag = colon + 1;
        if ((problem = tag_problem(tag, strlen(tag))) != NULL)
            return bad(err, s, problem);
        r.tag = strdup(tag);
        if (r.tag == NULL)
            goto oom;
        name[colon - name] = '\0';
        name_len = (size_t)(colon - name);
    }
    if (name_len == 0) {
        hp_ref_free(&r);
        return bad(err, s, "missing repository name");
    }

    /* Domain detection (docker's splitDockerDomain). */
    first_end = strchr(name, '/');
    domain_len = 0;
    if (first_end) {
        size_t flen = (size_t)(first_end - name);
        int upper = 0;
        for (size_t i = 0; i < flen; i++)
            if (name[i] >= 'A' && name[i] <= 'Z')
                upper = 1;
        if (memchr(name, '.', flen) || memchr(name, ':', flen) ||
            (flen == 9 && strncmp(name, "localhost", 9) == 0) || upper)
            domain_len = flen;
    }
    if (domain_len) {
        if ((problem = domain_problem(name, domain_len)) != NULL) {
            hp_ref_free(&r);
            return bad(err, s, problem);
        }
        r.domain = strndup(name, domain_len);
        if (r.domain == NULL)
            goto oom;
        if (strcmp(r.domain, DOCKER_LEGACY) == 0) {
            free(r.domain);
            r.domain = strdup(DOCKER_DOMAIN);
            if (r.domain == NULL)
                goto oom;
        }
        path_start = name + domain_len + 1;
    } else {
        r.domain = strdup(DOCKER_DOMAIN);
        if (r.domain == NULL)
            goto oom;
        path_start = name;
    }

    /* Path components. */
    if (*path_start == '\0') {
        hp_ref_free(&r);
        return bad(err, s, "missing repository path after the domain");
    }
    p = path_start;
    while (1) {
        const char *e = strchr(p, '/');
        size_t clen = e ? (size_t)(e - p) : strlen(p);
        if ((problem = component_problem(p, clen)) != NULL) {
            hp_ref_free(&r);
            return bad(err, s, problem);
        }
        if (!e)
            break;
        p = e + 1;
    }
    if (!domain_len && !r.tag && !at && strlen(path_start) == 64) {
        size_t i = 0;
        while (i < 64 && is_lower_hex(path_start[i]))
            i++;
        if (i == 64) {
            hp_ref_free(&r);
            return bad(err, s, "a 64-hex-digit name is ambiguous with an image ID");
        }
    }
    if (strcmp(r.domain, DOCKER_DOMAIN) == 0 && strchr(path_start, '/') == NULL) {
        if (asprintf(&r.path, "library/%s", path_start) < 0) {
            r.path = NULL;
            goto oom;
        }
    } else {
        r.path = strdup(path_start);
        if (r.path == NULL)
            goto oom;
    }
    if (strlen(r.domain) + 1 + strlen(r.path) > HP_REF_NAME_MAX) {
        hp_ref_free(&r);
        return bad(err, s, "repository name longer than 255 characters");
    }
    if (at) {
        r.digest = strdup(at + 1);
        if (r.digest == NULL)
            goto oom;
    }
    if (!r.tag && !r.digest) {
        r.tag = strdup("latest");
        if (r.tag == NULL)
            goto oom;
    }
    *ref = r;
    return 0;
oom:
    hp_ref_free(&r);
    return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory parsing image reference");
}

char *hp_ref_format(const hp_ref *ref)
{
    char *out;
    if (asprintf(&out, "%s/%s%s%s%s%s", ref->domain, ref->path, ref->tag ? ":" : "",
                 ref->tag ? ref->tag : "", ref->digest ? "@" : "",
                 ref->digest ? ref->digest : "") < 0)
        return NULL;
    return out;
}

char *hp_ref_repository(const hp_ref *ref)
{
    char *out;
    if (asprintf(&out, "%s/%s", ref->domain, ref->path) < 0)
        return NULL;
    return out;
}

const char *hp_ref_api_host(const hp_ref *ref)
{
    if (strcmp(ref->domain, DOCKER_DOMAIN) == 0)
        return DOCKER_API_HOST;
    return ref->domain;
}

const char *hp_ref_api_reference(const hp_ref *ref)
{
    return ref->digest ? ref->digest : ref->tag;
}
