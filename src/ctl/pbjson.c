/* Generic protobuf-c <-> JSON conversion (see pbjson.h). */
#include "ctl/pbjson.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MEMBER(type, msg, off) (*(type *)((uint8_t *)(msg) + (off)))
#define MEMBER_PTR(msg, off)   ((void *)((uint8_t *)(msg) + (off)))

void pbjson_camel(const char *snake, char *buf, size_t size)
{
    size_t o = 0;
    bool up = false;
    for (const char *p = snake; *p && o + 1 < size; p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        buf[o++] = up && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        up = false;
    }
    buf[o] = '\0';
}

static size_t elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

static bool is_oneof(const ProtobufCFieldDescriptor *f)
{
    return (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
}

/* A map entry message: XxxEntry with fields key (1) and value (2). */
static bool is_map_field(const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const ProtobufCMessageDescriptor *d = f->descriptor;
    size_t nl = strlen(d->name);
    return d->n_fields == 2 && nl > 5 && strcmp(d->name + nl - 5, "Entry") == 0 &&
           strcmp(d->fields[0].name, "key") == 0 && strcmp(d->fields[1].name, "value") == 0;
}

/* Does a singular field hold a value worth printing? */
static bool field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (is_oneof(f))
        return MEMBER(uint32_t, m, f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0 &&
        f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
        return MEMBER(protobuf_c_boolean, m, f->quantifier_offset) != 0;
    const void *p = MEMBER_PTR(m, f->offset);
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s && (f->label == PROTOBUF_C_LABEL_OPTIONAL || *s);
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p != NULL;
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len > 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p != 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p != 0;
    default: {
        size_t sz = elem_size(f->type);
        static const uint8_t zero[8];
        return memcmp(p, zero, sz) != 0;
    }
    }
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t *b64_encode(const uint8_t *d, size_t n)
{
    size_t olen = (n + 2) / 3 * 4;
    char *s = malloc(olen + 1);
    if (!s)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)d[i + 1] << 8;
        if (i + 2 < n)
            v |= d[i + 2];
        s[o++] = b64[(v >> 18) & 63];
        s[o++] = b64[(v >> 12) & 63];
        s[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        s[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    s[o] = '\0';
    json_t *j = json_string(s);
    free(s);
    return j;
}

/* Decode base64 (standard or URL alphabet, padding optional). -1 when invalid. */
static int b64_decode(const char *s, ProtobufCBinaryData *out)
{
    size_t n = strlen(s);
    uint8_t *d = malloc(n / 4 * 3 + 3);
    if (!d)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int v;
        if (ch == '=')
            break;
        if (ch >= 'A' && ch <= 'Z')
            v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z')
            v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9')
            v = ch - '0' + 52;
        else if (ch == '+' || ch == '-')
            v = 62;
        else if (ch == '/' || ch == '_')
            v = 63;
        else {
            free(d);
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            d[o++] = (uint8_t)(acc >> bits);
        }
    }
    out->data = d;
    out->len = o;
    return 0;
}

static json_t *value_to_json(const ProtobufCFieldDescriptor *f, const void *p, hp_err *err);

static json_t *message_to_json(const ProtobufCMessage *m, hp_err *err)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    json_t *obj = json_object();
    if (!obj)
        goto oom;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char name[128];
        pbjson_camel(f->name, name, sizeof name);
        json_t *v = NULL;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = MEMBER(size_t, m, f->quantifier_offset);
            if (n == 0)
                continue;
            const uint8_t *arr = MEMBER(const uint8_t *, m, f->offset);
            bool map = is_map_field(f);
            v = map ? json_object() : json_array();
            if (!v)
                goto oom_obj;
            for (size_t k = 0; k < n; k++) {
                const void *ep = arr + k * elem_size(f->type);
                if (map) {
                    const ProtobufCMessage *e = *(ProtobufCMessage *const *)ep;
                    const ProtobufCMessageDescriptor *ed = e->descriptor;
                    json_t *val =
                        value_to_json(&ed->fields[1], MEMBER_PTR(e, ed->fields[1].offset), err);
                    json_t *key =
                        value_to_json(&ed->fields[0], MEMBER_PTR(e, ed->fields[0].offset), err);
                    const char *ks = key && json_is_string(key) ? json_string_value(key) : NULL;
                    char kbuf[32];
                    if (key && !ks && json_is_integer(key)) {
                        snprintf(kbuf, sizeof kbuf, "%" JSON_INTEGER_FORMAT,
                                 json_integer_value(key));
                        ks = kbuf;
                    }
                    int rc = (val && ks) ? json_object_set_new(v, ks, val) : -1;
                    if (rc < 0 && !ks)
                        json_decref(val);
                    json_decref(key);
                    if (rc < 0) {
                        json_decref(v);
                        goto oom_obj;
                    }
                } else {
                    json_t *ev = value_to_json(f, ep, err);
                    if (!ev || json_array_append_new(v, ev) < 0) {
                        json_decref(v);
                        goto oom_obj;
                    }
                }
            }
        } else {
            if (!field_present(m, f))
                continue;
            v = value_to_json(f, MEMBER_PTR(m, f->offset), err);
            if (!v)
                goto oom_obj;
        }
        if (json_object_set_new(obj, name, v) < 0)
            goto oom_obj;
    }
    return obj;
oom_obj:
    json_decref(obj);
oom:
    if (err->code == HP_OK)
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory building JSON");
    return NULL;
}

static json_t *value_to_json(const ProtobufCFieldDescriptor *f, const void *p, hp_err *err)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return json_integer((json_int_t) * (const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT:
        return json_real(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        return ev ? json_string(ev->name) : json_integer(v);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        json_t *j = json_string(s ? s : "");
        /* Not UTF-8: keep the bytes visible rather than failing. */
        return j ? j : json_stringn_nocheck(s, strlen(s));
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        return b64_encode(b->data, b->len);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m ? message_to_json(m, err) : json_null();
    }
    }
    return json_null();
}

json_t *pbjson_from_message(const ProtobufCMessage *msg, hp_err *err)
{
    return message_to_json(msg, err);
}

/* ---- JSON -> message ---------------------------------------------------- */

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d,
                                                  const char *key)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
    if (f)
        return f;
    for (unsigned i = 0; i < d->n_fields; i++) {
        char camel[128];
        pbjson_camel(d->fields[i].name, camel, sizeof camel);
        if (strcmp(camel, key) == 0)
            return &d->fields[i];
    }
    return NULL;
}

static int json_to_int(const json_t *j, bool is_signed, int64_t *out)
{
    if (json_is_integer(j)) {
        *out = json_integer_value(j);
        return 0;
    }
    if (json_is_real(j)) {
        double v = json_real_value(j);
        if (v != (double)(int64_t)v)
            return -1;
        *out = (int64_t)v;
        return 0;
    }
    if (json_is_string(j)) {
        const char *s = json_string_value(j);
        char *end;
        errno = 0;
        if (is_signed)
            *out = strtoll(s, &end, 10);
        else
            *out = (int64_t)strtoull(s, &end, 10);
        return (errno || end == s || *end) ? -1 : 0;
    }
    if (json_is_boolean(j)) {
        *out = json_is_true(j);
        return 0;
    }
    return -1;
}

static ProtobufCMessage *build_message(const ProtobufCMessageDescriptor *d, const json_t *j,
                                       const char *path, hp_err *err);

/* snprintf for field paths in error messages; truncation is fine. */
static void path_fmt(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void path_fmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* Store JSON value `j` into the element at `p` of field f. */
static int set_value(const ProtobufCFieldDescriptor *f, void *p, const json_t *j, const char *path,
                     hp_err *err)
{
    int64_t iv;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (json_to_int(j, true, &iv) < 0 || iv < INT32_MIN || iv > INT32_MAX)
            goto bad_int;
        *(int32_t *)p = (int32_t)iv;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (json_to_int(j, false, &iv) < 0 || iv < 0 || iv > UINT32_MAX)
            goto bad_int;
        *(uint32_t *)p = (uint32_t)iv;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (json_to_int(j, true, &iv) < 0)
            goto bad_int;
        *(int64_t *)p = iv;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (json_to_int(j, false, &iv) < 0)
            goto bad_int;
        *(uint64_t *)p = (uint64_t)iv;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        if (!json_is_number(j))
            return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: expected a number", path);
        if (f->type == PROTOBUF_C_TYPE_FLOAT)
            *(float *)p = (float)json_number_value(j);
        else
            *(double *)p = json_number_value(j);
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(j))
            return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: expected true or false", path);
        *(protobuf_c_boolean *)p = json_is_true(j);
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        if (json_is_string(j)) {
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_string_value(j));
            if (!ev)
                return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: unknown %s value \"%s\"", path,
                                  ((const ProtobufCEnumDescriptor *)f->descriptor)->short_name,
                                  json_string_value(j));
            *(int *)p = ev->value;
            return 0;
        }
        if (json_to_int(j, true, &iv) < 0 || iv < INT32_MIN || iv > INT32_MAX)
            return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: expected an enum name or number",
                              path);
        *(int *)p = (int)iv;
        return 0;
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(j))
            return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: expected a string", path);
        char *s = strdup(json_string_value(j));
        if (!s)
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        *(char **)p = s;
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES:
        if (!json_is_string(j) || b64_decode(json_string_value(j), p) < 0)
            return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: expected a base64 string", path);
        return 0;
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *m = build_message(f->descriptor, j, path, err);
        if (!m)
            return -1;
        *(ProtobufCMessage **)p = m;
        return 0;
    }
    }
    return hp_err_set(err, HP_INTERNAL, "%s: unsupported field type", path);
bad_int:
    return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: expected an integer in range", path);
}

static int set_field(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *j,
                     const char *path, hp_err *err)
{
    char sub[512];
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t esz = elem_size(f->type);
        bool map = is_map_field(f);
        size_t n;
        if (map) {
            if (!json_is_object(j))
                return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: expected an object", path);
            n = json_object_size(j);
        } else {
            if (!json_is_array(j))
                return hp_err_set(err, HP_INVALID_ARGUMENT, "%s: expected an array", path);
            n = json_array_size(j);
        }
        if (n == 0)
            return 0;
        uint8_t *arr = calloc(n, esz);
        if (!arr)
            return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        /* Attach first so that pbjson_free_message frees partial work. */
        MEMBER(uint8_t *, m, f->offset) = arr;
        MEMBER(size_t, m, f->quantifier_offset) = 0;
        if (map) {
            const ProtobufCMessageDescriptor *ed = f->descriptor;
            const char *key;
            json_t *val;
            json_object_foreach((json_t *)j, key, val)
            {
                path_fmt(sub, sizeof sub, "%s.%s", path, key);
                ProtobufCMessage *e = malloc(ed->sizeof_message);
                if (!e)
                    return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
                ed->message_init(e);
                ((ProtobufCMessage **)arr)[MEMBER(size_t, m, f->quantifier_offset)++] = e;
                json_t *kj = json_string(key);
                int rc = kj ? set_value(&ed->fields[0], MEMBER_PTR(e, ed->fields[0].offset), kj,
                                        sub, err)
                            : hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
                json_decref(kj);
                if (rc < 0 || set_value(&ed->fields[1], MEMBER_PTR(e, ed->fields[1].offset), val,
                                        sub, err) < 0)
                    return -1;
            }
        } else {
            for (size_t k = 0; k < n; k++) {
                path_fmt(sub, sizeof sub, "%s[%zu]", path, k);
                if (set_value(f, arr + k * esz, json_array_get(j, k), sub, err) < 0)
                    return -1;
                MEMBER(size_t, m, f->quantifier_offset)++;
            }
        }
        return 0;
    }
    if (set_value(f, MEMBER_PTR(m, f->offset), j, path, err) < 0)
        return -1;
    if (is_oneof(f))
        MEMBER(uint32_t, m, f->quantifier_offset) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0 &&
             f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
        MEMBER(protobuf_c_boolean, m, f->quantifier_offset) = 1;
    return 0;
}

static ProtobufCMessage *build_message(const ProtobufCMessageDescriptor *d, const json_t *j,
                                       const char *path, hp_err *err)
{
    if (!json_is_object(j)) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "%s: expected an object", *path ? path : "config");
        return NULL;
    }
    ProtobufCMessage *m = malloc(d->sizeof_message);
    if (!m) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    d->message_init(m);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)j, key, val)
    {
        char sub[512];
        path_fmt(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", key);
        if (json_is_null(val))
            continue;
        const ProtobufCFieldDescriptor *f = find_field(d, key);
        if (!f) {
            hp_err_set(err, HP_INVALID_ARGUMENT, "%s: unknown field (message %s)", sub, d->name);
            pbjson_free_message(m);
            return NULL;
        }
        /* A second member of the same oneof would leak the first. */
        if (is_oneof(f) && MEMBER(uint32_t, m, f->quantifier_offset) != 0) {
            hp_err_set(err, HP_INVALID_ARGUMENT, "%s: only one field of a oneof may be set", sub);
            pbjson_free_message(m);
            return NULL;
        }
        if (set_field(m, f, val, sub, err) < 0) {
            pbjson_free_message(m);
            return NULL;
        }
    }
    return m;
}

ProtobufCMessage *pbjson_to_message(const ProtobufCMessageDescriptor *desc, const json_t *json,
                                    hp_err *err)
{
    return build_message(desc, json, "", err);
}

static void free_value(const ProtobufCFieldDescriptor *f, void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char *s = *(char **)p;
        if (s && s != protobuf_c_empty_string && s != (const char *)f->default_value)
            free(s);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = p;
        const ProtobufCBinaryData *def = f->default_value;
        if (b->data && (!def || b->data != def->data))
            free(b->data);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        pbjson_free_message(*(ProtobufCMessage **)p);
        break;
    default:
        break;
    }
}

void pbjson_free_message(ProtobufCMessage *m)
{
    if (!m)
        return;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = MEMBER(size_t, m, f->quantifier_offset);
            uint8_t *arr = MEMBER(uint8_t *, m, f->offset);
            for (size_t k = 0; arr && k < n; k++)
                free_value(f, arr + k * elem_size(f->type));
            free(arr);
        } else if (!is_oneof(f) || MEMBER(uint32_t, m, f->quantifier_offset) == f->id) {
            free_value(f, MEMBER_PTR(m, f->offset));
        }
    }
    free(m);
}
