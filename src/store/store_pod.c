/* hpcri state store: pod sandboxes and containers (see store.h). */
#include "store/store.h"
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"

#define POD_COLS                                                                                   \
    "id, name, namespace, uid, attempt, state, created_at, runtime_handler, labels, "              \
    "annotations, config, backend_state"
#define CTR_COLS                                                                                   \
    "id, pod_id, name, attempt, state, created_at, started_at, finished_at, exit_code, reason, "   \
    "message, image, image_ref, log_path, labels, annotations, config, backend_state"

/* Ids are lowercase hex, so every id starting with p lies in [p, p + "g"). */
static void prefix_end(const char *p, char out[HP_STORE_ID_LEN + 2])
{
    snprintf(out, HP_STORE_ID_LEN + 2, "%sg", p);
}

static int bind_blob(sqlite3_stmt *q, int i, const uint8_t *data, size_t len)
{
    if (!data || len == 0)
        return sqlite3_bind_null(q, i);
    return sqlite3_bind_blob64(q, i, data, len, SQLITE_STATIC);
}

static void copy_id(char dst[HP_STORE_ID_LEN + 1], sqlite3_stmt *q, int col)
{
    const char *t = (const char *)sqlite3_column_text(q, col);
    snprintf(dst, HP_STORE_ID_LEN + 1, "%s", t ? t : "");
}

/* ------------------------------------------------------------------------
 * Row decoding.
 */

static int pod_from_row(sqlite3_stmt *q, hp_pod_rec *p, hp_err *err)
{
    memset(p, 0, sizeof *p);
    copy_id(p->id, q, 0);
    p->attempt = (uint32_t)sqlite3_column_int64(q, 4);
    p->state = sqlite3_column_int(q, 5);
    p->created_at = sqlite3_column_int64(q, 6);
    if (hp_store_col_str(q, 1, false, &p->name, err) < 0 ||
        hp_store_col_str(q, 2, false, &p->ns, err) < 0 ||
        hp_store_col_str(q, 3, false, &p->uid, err) < 0 ||
        hp_store_col_str(q, 7, false, &p->runtime_handler, err) < 0 ||
        hp_store_map_from_json((const char *)sqlite3_column_text(q, 8), &p->labels, err) < 0 ||
        hp_store_map_from_json((const char *)sqlite3_column_text(q, 9), &p->annotations, err) < 0 ||
        hp_store_col_blob(q, 10, &p->config, &p->config_len, err) < 0 ||
        hp_store_col_str(q, 11, true, &p->backend_state, err) < 0) {
        hp_pod_rec_clear(p);
        return -1;
    }
    return 0;
}

static int ctr_from_row(sqlite3_stmt *q, hp_ctr_rec *c, hp_err *err)
{
    memset(c, 0, sizeof *c);
    copy_id(c->id, q, 0);
    copy_id(c->pod_id, q, 1);
    c->attempt = (uint32_t)sqlite3_column_int64(q, 3);
    c->state = sqlite3_column_int(q, 4);
    c->created_at = sqlite3_column_int64(q, 5);
    c->started_at = sqlite3_column_int64(q, 6);
    c->finished_at = sqlite3_column_int64(q, 7);
    c->exit_code = (int32_t)sqlite3_column_int64(q, 8);
    if (hp_store_col_str(q, 2, false, &c->name, err) < 0 ||
        hp_store_col_str(q, 9, false, &c->reason, err) < 0 ||
        hp_store_col_str(q, 10, false, &c->message, err) < 0 ||
        hp_store_col_str(q, 11, false, &c->image, err) < 0 ||
        hp_store_col_str(q, 12, false, &c->image_ref, err) < 0 ||
        hp_store_col_str(q, 13, false, &c->log_path, err) < 0 ||
        hp_store_map_from_json((const char *)sqlite3_column_text(q, 14), &c->labels, err) < 0 ||
        hp_store_map_from_json((const char *)sqlite3_column_text(q, 15), &c->annotations, err) <
            0 ||
        hp_store_col_blob(q, 16, &c->config, &c->config_len, err) < 0 ||
        hp_store_col_str(q, 17, true, &c->backend_state, err) < 0) {
        hp_ctr_rec_clear(c);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Generic "one row by id / by prefix" for both tables.
 */

typedef int (*row_fn)(sqlite3_stmt *q, void *rec, hp_err *err);

struct kind {
    const char *what;   /* "pod sandbox" */
    const char *plural; /* "pod sandboxes" */
    int get_slot, prefix_slot;
    const char *get_sql, *prefix_sql;
    size_t rec_size;
    row_fn from_row;
    void (*free_rec)(void *);
};

static int pod_row(sqlite3_stmt *q, void *rec, hp_err *err)
{
    return pod_from_row(q, rec, err);
}
static int ctr_row(sqlite3_stmt *q, void *rec, hp_err *err)
{
    return ctr_from_row(q, rec, err);
}
static void pod_free(void *p)
{
    hp_pod_rec_free(p);
}
static void ctr_free(void *c)
{
    hp_ctr_rec_free(c);
}

static const struct kind POD_KIND = {
    "pod sandbox",
    "pod sandboxes",
    ST_POD_GET,
    ST_POD_PREFIX,
    "SELECT " POD_COLS " FROM pods WHERE id = ?1",
    "SELECT " POD_COLS " FROM pods WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 3",
    sizeof(hp_pod_rec),
    pod_row,
    pod_free,
};

static const struct kind CTR_KIND = {
    "container",
    "containers",
    ST_CTR_GET,
    ST_CTR_PREFIX,
    "SELECT " CTR_COLS " FROM containers WHERE id = ?1",
    "SELECT " CTR_COLS " FROM containers WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 3",
    sizeof(hp_ctr_rec),
    ctr_row,
    ctr_free,
};

struct get_arg {
    const struct kind *k;
    const char *key;
    void *rec; /* out: owned */
};

static int get_one(hp_store *s, void *argp, hp_err *err)
{
    struct get_arg *a = argp;
    _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(s, a->k->get_slot, a->k->get_sql, err);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, a->key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE)
        return hp_err_set(err, HP_NOT_FOUND, "%s %s not found", a->k->what, a->key);
    if (rc != SQLITE_ROW)
        return hp_store_dberr(s, err, "cannot read %s %s", a->k->what, a->key);
    _cleanup_free_ void *rec = calloc(1, a->k->rec_size);
    if (!rec)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    if (a->k->from_row(q, rec, err) < 0)
        return -1;
    a->rec = hp_steal_ptr(&rec);
    return 0;
}

static int lookup_one(hp_store *s, void *argp, hp_err *err)
{
    struct get_arg *a = argp;
    const struct kind *k = a->k;
    char end[HP_STORE_ID_LEN + 2];
    char ids[3][HP_STORE_ID_LEN + 1];
    int n = 0, rc;

    if (!a->key || !a->key[0])
        return hp_err_set(err, HP_INVALID_ARGUMENT, "%s ID is empty", k->what);
    if (!hp_store_valid_prefix(a->key))
        return hp_err_set(err, HP_NOT_FOUND, "%s %s not found (IDs are 64 lowercase hex digits)",
                          k->what, a->key);
    prefix_end(a->key, end);
    _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(s, k->prefix_slot, k->prefix_sql, err);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, a->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, end, -1, SQLITE_STATIC);
    _cleanup_free_ void *rec = NULL;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (n == 0) {
            rec = calloc(1, k->rec_size);
            if (!rec)
                return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
            if (k->from_row(q, rec, err) < 0)
                return -1;
        }
        copy_id(ids[n++], q, 0);
    }
    if (rc != SQLITE_DONE) {
        if (n > 0)
            k->free_rec(hp_steal_ptr(&rec));
        return hp_store_dberr(s, err, "cannot look up %s %s", k->what, a->key);
    }
    if (n == 0)
        return hp_err_set(err, HP_NOT_FOUND, "no %s ID starts with \"%s\"", k->what, a->key);
    if (n > 1) {
        k->free_rec(hp_steal_ptr(&rec));
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "%s ID prefix \"%s\" is ambiguous: it matches %s %s, %s%s; give more "
                          "characters",
                          k->what, a->key, k->plural, ids[0], ids[1], n > 2 ? " and more" : "");
    }
    a->rec = hp_steal_ptr(&rec);
    return 0;
}

static void *get_rec(hp_store *s, const struct kind *k, const char *key, bool prefix, hp_err *err)
{
    struct get_arg a = {k, key, NULL};
    if (!key)
        key = a.key = "";
    if (hp_store_in_tx(s, false, prefix ? lookup_one : get_one, &a, err) < 0) {
        k->free_rec(a.rec);
        return NULL;
    }
    return a.rec;
}

hp_pod_rec *hp_store_pod_get(hp_store *s, const char *id, hp_err *err)
{
    return get_rec(s, &POD_KIND, id, false, err);
}

hp_pod_rec *hp_store_pod_lookup(hp_store *s, const char *prefix, hp_err *err)
{
    return get_rec(s, &POD_KIND, prefix, true, err);
}

hp_ctr_rec *hp_store_ctr_get(hp_store *s, const char *id, hp_err *err)
{
    return get_rec(s, &CTR_KIND, id, false, err);
}

hp_ctr_rec *hp_store_ctr_lookup(hp_store *s, const char *prefix, hp_err *err)
{
    return get_rec(s, &CTR_KIND, prefix, true, err);
}

/* ------------------------------------------------------------------------
 * Pods.
 */

static int pod_insert(hp_store *s, void *arg, hp_err *err)
{
    const hp_pod_rec *p = arg;
    if (!hp_store_valid_id(p->id))
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "pod sandbox ID \"%s\" is not 64 lowercase hex digits", p->id);
    if (p->state != HP_POD_READY && p->state != HP_POD_NOTREADY)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid pod sandbox state %d", p->state);
    _cleanup_free_ char *labels = hp_store_map_to_json(&p->labels, "label", err);
    if (!labels)
        return -1;
    _cleanup_free_ char *annotations = hp_store_map_to_json(&p->annotations, "annotation", err);
    if (!annotations)
        return -1;
    _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(
        s, ST_POD_INSERT, "INSERT INTO pods (" POD_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", err);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, p->id, -1, SQLITE_STATIC);
    hp_store_bind_str(q, 2, p->name);
    hp_store_bind_str(q, 3, p->ns);
    hp_store_bind_str(q, 4, p->uid);
    sqlite3_bind_int64(q, 5, p->attempt);
    sqlite3_bind_int(q, 6, p->state);
    sqlite3_bind_int64(q, 7, p->created_at);
    hp_store_bind_str(q, 8, p->runtime_handler);
    sqlite3_bind_text(q, 9, labels, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 10, annotations, -1, SQLITE_STATIC);
    bind_blob(q, 11, p->config, p->config_len);
    hp_store_bind_nstr(q, 12, p->backend_state);
    if (sqlite3_step(q) == SQLITE_DONE)
        return 0;
    int ext = sqlite3_extended_errcode(s->db);
    if (ext == SQLITE_CONSTRAINT_PRIMARYKEY)
        return hp_err_set(err, HP_ALREADY_EXISTS, "pod sandbox ID %s already exists", p->id);
    if (ext != SQLITE_CONSTRAINT_UNIQUE)
        return hp_store_dberr(s, err, "cannot store pod sandbox %s", p->id);

    /* Name the pod that holds (name, namespace, uid, attempt). */
    char other[HP_STORE_ID_LEN + 1] = "?";
    _cleanup_stmt_ sqlite3_stmt *c = hp_store_stmt(
        s, ST_POD_CONFLICT,
        "SELECT id FROM pods WHERE name = ?1 AND namespace = ?2 AND uid = ?3 AND attempt = ?4",
        err);
    if (c) {
        hp_store_bind_str(c, 1, p->name);
        hp_store_bind_str(c, 2, p->ns);
        hp_store_bind_str(c, 3, p->uid);
        sqlite3_bind_int64(c, 4, p->attempt);
        if (sqlite3_step(c) == SQLITE_ROW)
            copy_id(other, c, 0);
    }
    return hp_err_set(
        err, HP_ALREADY_EXISTS, "pod sandbox %s/%s (uid %s, attempt %u) already exists with ID %s",
        p->ns ? p->ns : "", p->name ? p->name : "", p->uid ? p->uid : "", p->attempt, other);
}

int hp_store_pod_insert(hp_store *s, const hp_pod_rec *p, hp_err *err)
{
    return hp_store_in_tx(s, true, pod_insert, (void *)p, err);
}

struct list_arg {
    const void *filter;
    void *out; /* array */
    size_t n, cap;
};

static int pod_list(hp_store *s, void *argp, hp_err *err)
{
    struct list_arg *a = argp;
    const hp_pod_filter *f = a->filter;
    char end[HP_STORE_ID_LEN + 2];
    const char *prefix = f && f->id_prefix && f->id_prefix[0] ? f->id_prefix : NULL;
    hp_pod_rec *arr = NULL;
    int rc;

    if (prefix && !hp_store_valid_prefix(prefix))
        return 0; /* no id can match */
    _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(s, ST_POD_LIST,
                                                   "SELECT " POD_COLS " FROM pods WHERE "
                                                   "(?1 IS NULL OR (id >= ?1 AND id < ?2)) AND "
                                                   "(?3 IS NULL OR state = ?3) "
                                                   "ORDER BY created_at, rowid",
                                                   err);
    if (!q)
        return -1;
    if (prefix) {
        prefix_end(prefix, end);
        sqlite3_bind_text(q, 1, prefix, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, end, -1, SQLITE_STATIC);
    }
    if (f && f->has_state)
        sqlite3_bind_int(q, 3, f->state);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (hp_store_grow(&a->out, &a->cap, a->n + 1, sizeof *arr, err) < 0)
            return -1;
        arr = a->out;
        if (pod_from_row(q, &arr[a->n], err) < 0)
            return -1;
        if (f && !hp_store_map_matches(&arr[a->n].labels, f->labels)) {
            hp_pod_rec_clear(&arr[a->n]);
            continue;
        }
        a->n++;
    }
    if (rc != SQLITE_DONE)
        return hp_store_dberr(s, err, "cannot list pod sandboxes");
    return 0;
}

int hp_store_pod_list(hp_store *s, const hp_pod_filter *filter, hp_pod_rec **out, size_t *n,
                      hp_err *err)
{
    struct list_arg a = {filter, NULL, 0, 0};
    *out = NULL;
    *n = 0;
    if (hp_store_in_tx(s, false, pod_list, &a, err) < 0) {
        hp_pod_recs_free(a.out, a.n);
        return -1;
    }
    if (a.n == 0) {
        free(a.out);
        return 0;
    }
    *out = a.out;
    *n = a.n;
    return 0;
}

/* UPDATE/DELETE of one row by id: NOT_FOUND when no row changed. */
struct by_id_arg {
    int slot;
    const char *sql;
    const char *what;
    const char *id;
    int state;        /* pod state */
    const char *text; /* backend_state */
    const hp_ctr_status *st;
};

static int exec_by_id(hp_store *s, void *argp, hp_err *err)
{
    struct by_id_arg *a = argp;
    _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(s, a->slot, a->sql, err);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, a->id ? a->id : "", -1, SQLITE_STATIC);
    if (a->slot == ST_POD_SET_STATE) {
        sqlite3_bind_int(q, 2, a->state);
    } else if (a->slot == ST_POD_SET_BACKEND || a->slot == ST_CTR_SET_BACKEND) {
        hp_store_bind_nstr(q, 2, a->text);
    } else if (a->slot == ST_CTR_SET_STATUS) {
        sqlite3_bind_int(q, 2, a->st->state);
        sqlite3_bind_int64(q, 3, a->st->started_at);
        sqlite3_bind_int64(q, 4, a->st->finished_at);
        sqlite3_bind_int(q, 5, a->st->exit_code);
        hp_store_bind_str(q, 6, a->st->reason);
        hp_store_bind_str(q, 7, a->st->message);
    }
    if (sqlite3_step(q) != SQLITE_DONE) {
        int ext = sqlite3_extended_errcode(s->db);
        /* ON DELETE RESTRICT is reported as CONSTRAINT_FOREIGNKEY or, for
         * the RESTRICT action, CONSTRAINT_TRIGGER. */
        if (a->slot == ST_POD_DELETE && (ext & 0xff) == SQLITE_CONSTRAINT) {
            int64_t n = -1;
            sqlite3_reset(q);
            _cleanup_stmt_ sqlite3_stmt *c = hp_store_stmt(
                s, ST_POD_COUNT_CTRS, "SELECT count(*) FROM containers WHERE pod_id = ?1", err);
            if (c) {
                sqlite3_bind_text(c, 1, a->id, -1, SQLITE_STATIC);
                if (sqlite3_step(c) == SQLITE_ROW)
                    n = sqlite3_column_int64(c, 0);
            }
            return hp_err_set(err, HP_FAILED_PRECONDITION,
                              "pod sandbox %s still has %lld container(s); remove them first",
                              a->id, (long long)n);
        }
        return hp_store_dberr(s, err, "cannot %s %s", a->what, a->id);
    }
    if (sqlite3_changes(s->db) == 0)
        return hp_err_set(err, HP_NOT_FOUND, "cannot %s %s: not found", a->what, a->id);
    return 0;
}

int hp_store_pod_set_state(hp_store *s, const char *id, int state, hp_err *err)
{
    if (state != HP_POD_READY && state != HP_POD_NOTREADY)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid pod sandbox state %d", state);
    struct by_id_arg a = {ST_POD_SET_STATE,
                          "UPDATE pods SET state = ?2 WHERE id = ?1",
                          "update the state of pod sandbox",
                          id,
                          state,
                          NULL,
                          NULL};
    return hp_store_in_tx(s, true, exec_by_id, &a, err);
}

int hp_store_pod_set_backend_state(hp_store *s, const char *id, const char *json, hp_err *err)
{
    struct by_id_arg a = {ST_POD_SET_BACKEND,
                          "UPDATE pods SET backend_state = ?2 WHERE id = ?1",
                          "update the backend state of pod sandbox",
                          id,
                          0,
                          json,
                          NULL};
    return hp_store_in_tx(s, true, exec_by_id, &a, err);
}

int hp_store_pod_delete(hp_store *s, const char *id, hp_err *err)
{
    struct by_id_arg a = {
        ST_POD_DELETE, "DELETE FROM pods WHERE id = ?1", "remove pod sandbox", id, 0, NULL, NULL};
    return hp_store_in_tx(s, true, exec_by_id, &a, err);
}

struct del_all_arg {
    const char *id;
    size_t n_ctrs;
};

static int pod_delete_all(hp_store *s, void *argp, hp_err *err)
{
    struct del_all_arg *a = argp;
    {
        _cleanup_stmt_ sqlite3_stmt *q =
            hp_store_stmt(s, ST_POD_DELETE_CTRS, "DELETE FROM containers WHERE pod_id = ?1", err);
        if (!q)
            return -1;
        sqlite3_bind_text(q, 1, a->id, -1, SQLITE_STATIC);
        if (hp_store_step_done(s, q, "cannot remove the containers of a pod sandbox", err) < 0)
            return -1;
        a->n_ctrs = (size_t)sqlite3_changes(s->db);
    }
    struct by_id_arg d = {
        ST_POD_DELETE, "DELETE FROM pods WHERE id = ?1", "remove pod sandbox", a->id, 0, NULL,
        NULL};
    return exec_by_id(s, &d, err);
}

int hp_store_pod_delete_with_containers(hp_store *s, const char *id, size_t *n_ctrs, hp_err *err)
{
    struct del_all_arg a = {id ? id : "", 0};
    if (hp_store_in_tx(s, true, pod_delete_all, &a, err) < 0)
        return -1;
    if (n_ctrs)
        *n_ctrs = a.n_ctrs;
    return 0;
}

/* ------------------------------------------------------------------------
 * Containers.
 */

static int ctr_insert(hp_store *s, void *arg, hp_err *err)
{
    const hp_ctr_rec *c = arg;
    if (!hp_store_valid_id(c->id))
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "container ID \"%s\" is not 64 lowercase hex digits", c->id);
    if (!hp_store_valid_id(c->pod_id))
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "pod sandbox ID \"%s\" is not 64 lowercase hex digits", c->pod_id);
    if (c->state < HP_CTR_CREATED || c->state > HP_CTR_UNKNOWN)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid container state %d", c->state);
    _cleanup_free_ char *labels = hp_store_map_to_json(&c->labels, "label", err);
    if (!labels)
        return -1;
    _cleanup_free_ char *annotations = hp_store_map_to_json(&c->annotations, "annotation", err);
    if (!annotations)
        return -1;
    _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(
        s, ST_CTR_INSERT,
        "INSERT INTO containers (" CTR_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", err);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, c->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, c->pod_id, -1, SQLITE_STATIC);
    hp_store_bind_str(q, 3, c->name);
    sqlite3_bind_int64(q, 4, c->attempt);
    sqlite3_bind_int(q, 5, c->state);
    sqlite3_bind_int64(q, 6, c->created_at);
    sqlite3_bind_int64(q, 7, c->started_at);
    sqlite3_bind_int64(q, 8, c->finished_at);
    sqlite3_bind_int(q, 9, c->exit_code);
    hp_store_bind_str(q, 10, c->reason);
    hp_store_bind_str(q, 11, c->message);
    hp_store_bind_str(q, 12, c->image);
    hp_store_bind_str(q, 13, c->image_ref);
    hp_store_bind_str(q, 14, c->log_path);
    sqlite3_bind_text(q, 15, labels, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 16, annotations, -1, SQLITE_STATIC);
    bind_blob(q, 17, c->config, c->config_len);
    hp_store_bind_nstr(q, 18, c->backend_state);
    if (sqlite3_step(q) == SQLITE_DONE)
        return 0;
    int ext = sqlite3_extended_errcode(s->db);
    if (ext == SQLITE_CONSTRAINT_PRIMARYKEY)
        return hp_err_set(err, HP_ALREADY_EXISTS, "container ID %s already exists", c->id);
    if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
        return hp_err_set(err, HP_NOT_FOUND, "cannot create container %s: pod sandbox %s not found",
                          c->name ? c->name : "", c->pod_id);
    if (ext != SQLITE_CONSTRAINT_UNIQUE)
        return hp_store_dberr(s, err, "cannot store container %s", c->id);

    char other[HP_STORE_ID_LEN + 1] = "?";
    _cleanup_stmt_ sqlite3_stmt *k = hp_store_stmt(
        s, ST_CTR_CONFLICT,
        "SELECT id FROM containers WHERE pod_id = ?1 AND name = ?2 AND attempt = ?3", err);
    if (k) {
        sqlite3_bind_text(k, 1, c->pod_id, -1, SQLITE_STATIC);
        hp_store_bind_str(k, 2, c->name);
        sqlite3_bind_int64(k, 3, c->attempt);
        if (sqlite3_step(k) == SQLITE_ROW)
            copy_id(other, k, 0);
    }
    return hp_err_set(err, HP_ALREADY_EXISTS,
                      "container \"%s\" (attempt %u) already exists in pod sandbox %s with ID %s",
                      c->name ? c->name : "", c->attempt, c->pod_id, other);
}

int hp_store_ctr_insert(hp_store *s, const hp_ctr_rec *c, hp_err *err)
{
    return hp_store_in_tx(s, true, ctr_insert, (void *)c, err);
}

static int ctr_list(hp_store *s, void *argp, hp_err *err)
{
    struct list_arg *a = argp;
    const hp_ctr_filter *f = a->filter;
    char end[HP_STORE_ID_LEN + 2], pend[HP_STORE_ID_LEN + 2];
    const char *prefix = f && f->id_prefix && f->id_prefix[0] ? f->id_prefix : NULL;
    const char *pprefix = f && f->pod_id_prefix && f->pod_id_prefix[0] ? f->pod_id_prefix : NULL;
    hp_ctr_rec *arr = NULL;
    int rc;

    if ((prefix && !hp_store_valid_prefix(prefix)) || (pprefix && !hp_store_valid_prefix(pprefix)))
        return 0;
    _cleanup_stmt_ sqlite3_stmt *q =
        hp_store_stmt(s, ST_CTR_LIST,
                      "SELECT " CTR_COLS " FROM containers WHERE "
                      "(?1 IS NULL OR (id >= ?1 AND id < ?2)) AND "
                      "(?3 IS NULL OR (pod_id >= ?3 AND pod_id < ?4)) AND "
                      "(?5 IS NULL OR state = ?5) "
                      "ORDER BY created_at, rowid",
                      err);
    if (!q)
        return -1;
    if (prefix) {
        prefix_end(prefix, end);
        sqlite3_bind_text(q, 1, prefix, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, end, -1, SQLITE_STATIC);
    }
    if (pprefix) {
        prefix_end(pprefix, pend);
        sqlite3_bind_text(q, 3, pprefix, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, pend, -1, SQLITE_STATIC);
    }
    if (f && f->has_state)
        sqlite3_bind_int(q, 5, f->state);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (hp_store_grow(&a->out, &a->cap, a->n + 1, sizeof *arr, err) < 0)
            return -1;
        arr = a->out;
        if (ctr_from_row(q, &arr[a->n], err) < 0)
            return -1;
        if (f && !hp_store_map_matches(&arr[a->n].labels, f->labels)) {
            hp_ctr_rec_clear(&arr[a->n]);
            continue;
        }
        a->n++;
    }
    if (rc != SQLITE_DONE)
        return hp_store_dberr(s, err, "cannot list containers");
    return 0;
}

int hp_store_ctr_list(hp_store *s, const hp_ctr_filter *filter, hp_ctr_rec **out, size_t *n,
                      hp_err *err)
{
    struct list_arg a = {filter, NULL, 0, 0};
    *out = NULL;
    *n = 0;
    if (hp_store_in_tx(s, false, ctr_list, &a, err) < 0) {
        hp_ctr_recs_free(a.out, a.n);
        return -1;
    }
    if (a.n == 0) {
        free(a.out);
        return 0;
    }
    *out = a.out;
    *n = a.n;
    return 0;
}

int hp_store_ctr_set_status(hp_store *s, const char *id, const hp_ctr_status *st, hp_err *err)
{
    if (st->state < HP_CTR_CREATED || st->state > HP_CTR_UNKNOWN)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "invalid container state %d", st->state);
    struct by_id_arg a = {ST_CTR_SET_STATUS,
                          "UPDATE containers SET state = ?2, started_at = ?3, finished_at = ?4, "
                          "exit_code = ?5, reason = ?6, message = ?7 WHERE id = ?1",
                          "update the status of container",
                          id,
                          0,
                          NULL,
                          st};
    return hp_store_in_tx(s, true, exec_by_id, &a, err);
}

int hp_store_ctr_set_backend_state(hp_store *s, const char *id, const char *json, hp_err *err)
{
    struct by_id_arg a = {ST_CTR_SET_BACKEND,
                          "UPDATE containers SET backend_state = ?2 WHERE id = ?1",
                          "update the backend state of container",
                          id,
                          0,
                          json,
                          NULL};
    return hp_store_in_tx(s, true, exec_by_id, &a, err);
}

int hp_store_ctr_delete(hp_store *s, const char *id, hp_err *err)
{
    struct by_id_arg a = {
        ST_CTR_DELETE, "DELETE FROM containers WHERE id = ?1", "remove container", id, 0, NULL,
        NULL};
    return hp_store_in_tx(s, true, exec_by_id, &a, err);
}
