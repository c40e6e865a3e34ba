/* hpcri state store: images, layers and the settings table (see store.h). */
#include "store/store.h"
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"

#define IMG_COLS "id, size, uid, username, pinned, config, created_at"

/* ------------------------------------------------------------------------
 * Upsert.
 */

static int bind_run(hp_store *s, int slot, const char *sql, const char *a, const char *b,
                    const char *what, hp_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(s, slot, sql, err);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, a, -1, SQLITE_STATIC);
    if (b)
        sqlite3_bind_text(q, 2, b, -1, SQLITE_STATIC);
    return hp_store_step_done(s, q, what, err);
}

static int image_upsert(hp_store *s, void *arg, hp_err *err)
{
    const hp_image_rec *im = arg;
    if (!im->id || !im->id[0])
        return hp_err_set(err, HP_INVALID_ARGUMENT, "image ID is empty");
    for (size_t i = 0; i < im->repo_tags.n; i++)
        if (!im->repo_tags.items[i][0])
            return hp_err_set(err, HP_INVALID_ARGUMENT, "image %s: empty tag", im->id);
    for (size_t i = 0; i < im->repo_digests.n; i++)
        if (!im->repo_digests.items[i][0])
            return hp_err_set(err, HP_INVALID_ARGUMENT, "image %s: empty repo digest", im->id);
    for (size_t i = 0; i < im->n_layers; i++)
        if (!im->layers[i].digest || !im->layers[i].digest[0] || !im->layers[i].diff_id ||
            !im->layers[i].diff_id[0])
            return hp_err_set(err, HP_INVALID_ARGUMENT,
                              "image %s: layer %zu has no digest or diff_id", im->id, i);
    {
        _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(
            s, ST_IMG_UPSERT,
            "INSERT INTO images (" IMG_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
            "ON CONFLICT (id) DO UPDATE SET size = excluded.size, uid = excluded.uid, "
            "username = excluded.username, pinned = excluded.pinned, config = excluded.config",
            err);
        if (!q)
            return -1;
        sqlite3_bind_text(q, 1, im->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, im->size);
        if (im->has_uid)
            sqlite3_bind_int64(q, 3, im->uid);
        hp_store_bind_str(q, 4, im->username);
        sqlite3_bind_int(q, 5, im->pinned ? 1 : 0);
        hp_store_bind_nstr(q, 6, im->config_json);
        sqlite3_bind_int64(q, 7, im->created_at);
        if (hp_store_step_done(s, q, "cannot store image", err) < 0)
            return hp_err_wrap(err, "image %s", im->id);
    }
    /* A tag or digest names one image: attaching it here detaches it from
     * any other image in the same statement. */
    for (size_t i = 0; i < im->repo_tags.n; i++)
        if (bind_run(s, ST_IMG_SET_TAG,
                     "INSERT INTO image_tags (tag, image_id) VALUES (?1, ?2) "
                     "ON CONFLICT (tag) DO UPDATE SET image_id = excluded.image_id",
                     im->repo_tags.items[i], im->id, "cannot tag image", err) < 0)
            return -1;
    for (size_t i = 0; i < im->repo_digests.n; i++)
        if (bind_run(s, ST_IMG_SET_DIGEST,
                     "INSERT INTO image_digests (digest, image_id) VALUES (?1, ?2) "
                     "ON CONFLICT (digest) DO UPDATE SET image_id = excluded.image_id",
                     im->repo_digests.items[i], im->id, "cannot record image digest", err) < 0)
            return -1;
    if (bind_run(s, ST_IMG_CLEAR_LAYERS, "DELETE FROM image_layers WHERE image_id = ?1", im->id,
                 NULL, "cannot replace image layers", err) < 0)
        return -1;
    for (size_t i = 0; i < im->n_layers; i++) {
        const hp_layer_rec *l = &im->layers[i];
        _cleanup_stmt_ sqlite3_stmt *r =
            hp_store_stmt(s, ST_LAYER_REGISTER,
                          "INSERT INTO layers (digest, diff_id, size) VALUES (?1, ?2, ?3) "
                          "ON CONFLICT (digest) DO NOTHING",
                          err);
        if (!r)
            return -1;
        sqlite3_bind_text(r, 1, l->digest, -1, SQLITE_STATIC);
        sqlite3_bind_text(r, 2, l->diff_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(r, 3, l->size);
        if (hp_store_step_done(s, r, "cannot register layer", err) < 0)
            return -1;
        _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(
            s, ST_IMG_ADD_LAYER,
            "INSERT INTO image_layers (image_id, idx, digest) VALUES (?1, ?2, ?3)", err);
        if (!q)
            return -1;
        sqlite3_bind_text(q, 1, im->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (int64_t)i);
        sqlite3_bind_text(q, 3, l->digest, -1, SQLITE_STATIC);
        if (hp_store_step_done(s, q, "cannot record image layer", err) < 0)
            return -1;
    }
    return 0;
}

int hp_store_image_upsert(hp_store *s, const hp_image_rec *im, hp_err *err)
{
    return hp_store_in_tx(s, true, image_upsert, (void *)im, err);
}

/* ------------------------------------------------------------------------
 * Reading.
 */

static int load_list(hp_store *s, int slot, const char *sql, const char *id, hp_strlist *l,
                     hp_err *err)
{
    int rc;
    _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(s, slot, sql, err);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        if (hp_strlist_add(l, (const char *)sqlite3_column_text(q, 0), err) < 0)
            return -1;
    if (rc != SQLITE_DONE)
        return hp_store_dberr(s, err, "cannot read image %s", id);
    return 0;
}

static int load_layers(hp_store *s, hp_image_rec *im, hp_err *err)
{
    int rc;
    size_t cap = 0;
    _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(
        s, ST_IMG_LAYERS,
        "SELECT l.digest, l.diff_id, l.size FROM image_layers il "
        "JOIN layers l ON l.digest = il.digest WHERE il.image_id = ?1 ORDER BY il.idx",
        err);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, im->id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (hp_store_grow((void **)&im->layers, &cap, im->n_layers + 1, sizeof *im->layers, err) <
            0)
            return -1;
        hp_layer_rec *l = &im->layers[im->n_layers++];
        l->size = sqlite3_column_int64(q, 2);
        if (hp_store_col_str(q, 0, false, &l->digest, err) < 0 ||
            hp_store_col_str(q, 1, false, &l->diff_id, err) < 0)
            return -1;
    }
    if (rc != SQLITE_DONE)
        return hp_store_dberr(s, err, "cannot read the layers of image %s", im->id);
    return 0;
}

/* Fill im from the current row of an IMG_COLS query and its side tables.
 * On failure im is cleared. */
static int image_from_row(hp_store *s, sqlite3_stmt *q, hp_image_rec *im, hp_err *err)
{
    memset(im, 0, sizeof *im);
    im->size = sqlite3_column_int64(q, 1);
    im->has_uid = sqlite3_column_type(q, 2) != SQLITE_NULL;
    im->uid = im->has_uid ? sqlite3_column_int64(q, 2) : 0;
    im->pinned = sqlite3_column_int(q, 4) != 0;
    im->created_at = sqlite3_column_int64(q, 6);
    if (hp_store_col_str(q, 0, false, &im->id, err) < 0 ||
        hp_store_col_str(q, 3, false, &im->username, err) < 0 ||
        hp_store_col_str(q, 5, true, &im->config_json, err) < 0 ||
        load_list(s, ST_IMG_TAGS, "SELECT tag FROM image_tags WHERE image_id = ?1 ORDER BY rowid",
                  im->id, &im->repo_tags, err) < 0 ||
        load_list(s, ST_IMG_DIGESTS,
                  "SELECT digest FROM image_digests WHERE image_id = ?1 ORDER BY rowid", im->id,
                  &im->repo_digests, err) < 0 ||
        load_layers(s, im, err) < 0) {
        hp_image_rec_clear(im);
        return -1;
    }
    return 0;
}

/* Read the image with exactly this id into a new record (*out).  Returns 1
 * when found, 0 when absent, -1 on error. */
static int image_by_id(hp_store *s, const char *id, hp_image_rec **out, hp_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *q =
        hp_store_stmt(s, ST_IMG_GET, "SELECT " IMG_COLS " FROM images WHERE id = ?1", err);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return hp_store_dberr(s, err, "cannot read image %s", id);
    _cleanup_free_ hp_image_rec *im = calloc(1, sizeof *im);
    if (!im)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    if (image_from_row(s, q, im, err) < 0)
        return -1;
    *out = hp_steal_ptr(&im);
    return 1;
}

/* The image id a tag or digest reference points at, copied to *id. 1 found,
 * 0 absent, -1 error. */
static int id_by_ref(hp_store *s, int slot, const char *sql, const char *ref, char **id,
                     hp_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(s, slot, sql, err);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, ref, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return hp_store_dberr(s, err, "cannot look up image %s", ref);
    if (hp_store_col_str(q, 0, false, id, err) < 0)
        return -1;
    return 1;
}

struct img_get_arg {
    const char *ref;
    bool resolve;
    hp_image_rec *out;
};

static int image_get(hp_store *s, void *argp, hp_err *err)
{
    struct img_get_arg *a = argp;
    const char *ref = a->ref;
    int rc;

    if (!ref || !ref[0])
        return hp_err_set(err, HP_INVALID_ARGUMENT, "image reference is empty");
    rc = image_by_id(s, ref, &a->out, err);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (!a->resolve)
        return hp_err_set(err, HP_NOT_FOUND, "image %s not found", ref);

    /* A tag, then a repo digest. */
    _cleanup_free_ char *id = NULL;
    rc = id_by_ref(s, ST_IMG_BY_TAG, "SELECT image_id FROM image_tags WHERE tag = ?1", ref, &id,
                   err);
    if (rc == 0)
        rc = id_by_ref(s, ST_IMG_BY_DIGEST, "SELECT image_id FROM image_digests WHERE digest = ?1",
                       ref, &id, err);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        rc = image_by_id(s, id, &a->out, err);
        if (rc == 0)
            return hp_err_set(err, HP_INTERNAL, "image %s vanished while reading it", id);
        return rc < 0 ? -1 : 0;
    }

    /* A unique id prefix, with or without "sha256:". */
    const char *hex = strncmp(ref, "sha256:", 7) == 0 ? ref + 7 : ref;
    if (!hp_store_valid_prefix(hex))
        return hp_err_set(err, HP_NOT_FOUND, "image \"%s\" not found", ref);
    char lo[80], hi[80], ids[3][256];
    int n = 0;
    snprintf(lo, sizeof lo, "sha256:%s", hex);
    snprintf(hi, sizeof hi, "sha256:%sg", hex);
    _cleanup_stmt_ sqlite3_stmt *q =
        hp_store_stmt(s, ST_IMG_PREFIX,
                      "SELECT id FROM images WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 3", err);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, lo, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, hi, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        snprintf(ids[n++], sizeof ids[0], "%s", (const char *)sqlite3_column_text(q, 0));
    if (rc != SQLITE_DONE)
        return hp_store_dberr(s, err, "cannot look up image %s", ref);
    if (n == 0)
        return hp_err_set(err, HP_NOT_FOUND, "image \"%s\" not found", ref);
    if (n > 1)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "image ID prefix \"%s\" is ambiguous: it matches images %s, %s%s; give "
                          "more characters",
                          ref, ids[0], ids[1], n > 2 ? " and more" : "");
    rc = image_by_id(s, ids[0], &a->out, err);
    if (rc == 0)
        return hp_err_set(err, HP_INTERNAL, "image %s vanished while reading it", ids[0]);
    return rc < 0 ? -1 : 0;
}

hp_image_rec *hp_store_image_get(hp_store *s, const char *id, hp_err *err)
{
    struct img_get_arg a = {id, false, NULL};
    if (hp_store_in_tx(s, false, image_get, &a, err) < 0) {
        hp_image_rec_free(a.out);
        return NULL;
    }
    return a.out;
}

hp_image_rec *hp_store_image_lookup(hp_store *s, const char *ref, hp_err *err)
{
    struct img_get_arg a = {ref, true, NULL};
    if (hp_store_in_tx(s, false, image_get, &a, err) < 0) {
        hp_image_rec_free(a.out);
        return NULL;
    }
    return a.out;
}

struct img_list_arg {
    hp_image_rec *out;
    size_t n, cap;
};

static int image_list(hp_store *s, void *argp, hp_err *err)
{
    struct img_list_arg *a = argp;
    int rc;
    _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(
        s, ST_IMG_LIST, "SELECT " IMG_COLS " FROM images ORDER BY created_at, rowid", err);
    if (!q)
        return -1;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (hp_store_grow((void **)&a->out, &a->cap, a->n + 1, sizeof *a->out, err) < 0)
            return -1;
        if (image_from_row(s, q, &a->out[a->n], err) < 0)
            return -1;
        a->n++;
    }
    if (rc != SQLITE_DONE)
        return hp_store_dberr(s, err, "cannot list images");
    return 0;
}

int hp_store_image_list(hp_store *s, hp_image_rec **out, size_t *n, hp_err *err)
{
    struct img_list_arg a = {NULL, 0, 0};
    *out = NULL;
    *n = 0;
    if (hp_store_in_tx(s, false, image_list, &a, err) < 0) {
        hp_image_recs_free(a.out, a.n);
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

/* ------------------------------------------------------------------------
 * Removal, usage, layers.
 */

static int image_untag(hp_store *s, void *arg, hp_err *err)
{
    const char *ref = arg;
    if (bind_run(s, ST_IMG_UNTAG, "DELETE FROM image_tags WHERE tag = ?1", ref, NULL,
                 "cannot untag image", err) < 0)
        return -1;
    if (sqlite3_changes(s->db) > 0)
        return 0;
    if (bind_run(s, ST_IMG_UNDIGEST, "DELETE FROM image_digests WHERE digest = ?1", ref, NULL,
                 "cannot untag image", err) < 0)
        return -1;
    if (sqlite3_changes(s->db) > 0)
        return 0;
    return hp_err_set(err, HP_NOT_FOUND, "no image is tagged \"%s\"", ref);
}

int hp_store_image_untag(hp_store *s, const char *ref, hp_err *err)
{
    return hp_store_in_tx(s, true, image_untag, (void *)(ref ? ref : ""), err);
}

static int image_delete(hp_store *s, void *arg, hp_err *err)
{
    const char *id = arg;
    if (bind_run(s, ST_IMG_DELETE, "DELETE FROM images WHERE id = ?1", id, NULL,
                 "cannot remove image", err) < 0)
        return -1;
    if (sqlite3_changes(s->db) == 0)
        return hp_err_set(err, HP_NOT_FOUND, "image %s not found", id);
    return 0;
}

int hp_store_image_delete(hp_store *s, const char *id, hp_err *err)
{
    return hp_store_in_tx(s, true, image_delete, (void *)(id ? id : ""), err);
}

struct users_arg {
    const char *id;
    size_t count;
};

static int image_users(hp_store *s, void *argp, hp_err *err)
{
    struct users_arg *a = argp;
    _cleanup_stmt_ sqlite3_stmt *q =
        hp_store_stmt(s, ST_IMG_USERS, "SELECT count(*) FROM containers WHERE image_ref = ?1", err);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, a->id, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_ROW)
        return hp_store_dberr(s, err, "cannot count the users of image %s", a->id);
    a->count = (size_t)sqlite3_column_int64(q, 0);
    return 0;
}

int hp_store_image_users(hp_store *s, const char *image_id, size_t *count, hp_err *err)
{
    struct users_arg a = {image_id ? image_id : "", 0};
    if (hp_store_in_tx(s, false, image_users, &a, err) < 0)
        return -1;
    *count = a.count;
    return 0;
}

struct layers_arg {
    hp_layer_rec *out;
    size_t n, cap;
};

static int layers_unref(hp_store *s, void *argp, hp_err *err)
{
    struct layers_arg *a = argp;
    int rc;
    _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(
        s, ST_LAYERS_UNREF,
        "SELECT l.digest, l.diff_id, l.size, EXISTS (SELECT 1 FROM layers l2 "
        "  JOIN image_layers il2 ON il2.digest = l2.digest WHERE l2.diff_id = l.diff_id) "
        "FROM layers l WHERE NOT EXISTS (SELECT 1 FROM image_layers il WHERE il.digest = "
        "l.digest) ORDER BY l.rowid",
        err);
    if (!q)
        return -1;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (hp_store_grow((void **)&a->out, &a->cap, a->n + 1, sizeof *a->out, err) < 0)
            return -1;
        hp_layer_rec *l = &a->out[a->n++];
        l->size = sqlite3_column_int64(q, 2);
        l->diff_id_in_use = sqlite3_column_int(q, 3) != 0;
        if (hp_store_col_str(q, 0, false, &l->digest, err) < 0 ||
            hp_store_col_str(q, 1, false, &l->diff_id, err) < 0)
            return -1;
    }
    if (rc != SQLITE_DONE)
        return hp_store_dberr(s, err, "cannot list unreferenced layers");
    return 0;
}

int hp_store_layers_unreferenced(hp_store *s, hp_layer_rec **out, size_t *n, hp_err *err)
{
    struct layers_arg a = {NULL, 0, 0};
    *out = NULL;
    *n = 0;
    if (hp_store_in_tx(s, false, layers_unref, &a, err) < 0) {
        hp_layer_recs_free(a.out, a.n);
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

static int layer_delete(hp_store *s, void *arg, hp_err *err)
{
    const char *digest = arg;
    _cleanup_stmt_ sqlite3_stmt *q =
        hp_store_stmt(s, ST_LAYER_DELETE, "DELETE FROM layers WHERE digest = ?1", err);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, digest, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE) {
        if ((sqlite3_extended_errcode(s->db) & 0xff) == SQLITE_CONSTRAINT) /* RESTRICT */
            return hp_err_set(err, HP_FAILED_PRECONDITION,
                              "layer %s is still used by an image; keep it", digest);
        return hp_store_dberr(s, err, "cannot forget layer %s", digest);
    }
    if (sqlite3_changes(s->db) == 0)
        return hp_err_set(err, HP_NOT_FOUND, "layer %s not found", digest);
    return 0;
}

int hp_store_layer_delete(hp_store *s, const char *digest, hp_err *err)
{
    return hp_store_in_tx(s, true, layer_delete, (void *)(digest ? digest : ""), err);
}

/* ------------------------------------------------------------------------
 * Settings.
 */

struct kv_arg {
    const char *key, *value;
    char *out;
};

static int kv_get(hp_store *s, void *argp, hp_err *err)
{
    struct kv_arg *a = argp;
    _cleanup_stmt_ sqlite3_stmt *q =
        hp_store_stmt(s, ST_KV_GET, "SELECT value FROM kv WHERE key = ?1", err);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, a->key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE)
        return hp_err_set(err, HP_NOT_FOUND, "setting \"%s\" not found", a->key);
    if (rc != SQLITE_ROW)
        return hp_store_dberr(s, err, "cannot read setting \"%s\"", a->key);
    return hp_store_col_str(q, 0, false, &a->out, err);
}

char *hp_store_kv_get(hp_store *s, const char *key, hp_err *err)
{
    struct kv_arg a = {key ? key : "", NULL, NULL};
    if (hp_store_in_tx(s, false, kv_get, &a, err) < 0) {
        free(a.out);
        return NULL;
    }
    return a.out;
}

static int kv_set(hp_store *s, void *argp, hp_err *err)
{
    struct kv_arg *a = argp;
    return bind_run(s, ST_KV_SET,
                    "INSERT INTO kv (key, value) VALUES (?1, ?2) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    a->key, a->value, "cannot write setting", err);
}

int hp_store_kv_set(hp_store *s, const char *key, const char *value, hp_err *err)
{
    struct kv_arg a = {key ? key : "", value ? value : "", NULL};
    if (!a.key[0])
        return hp_err_set(err, HP_INVALID_ARGUMENT, "setting name is empty");
    return hp_store_in_tx(s, true, kv_set, &a, err);
}

static int kv_delete(hp_store *s, void *argp, hp_err *err)
{
    struct kv_arg *a = argp;
    if (bind_run(s, ST_KV_DELETE, "DELETE FROM kv WHERE key = ?1", a->key, NULL,
                 "cannot remove setting", err) < 0)
        return -1;
    if (sqlite3_changes(s->db) == 0)
        return hp_err_set(err, HP_NOT_FOUND, "setting \"%s\" not found", a->key);
    return 0;
}

int hp_store_kv_delete(hp_store *s, const char *key, hp_err *err)
{
    struct kv_arg a = {key ? key : "", NULL, NULL};
    return hp_store_in_tx(s, true, kv_delete, &a, err);
}
