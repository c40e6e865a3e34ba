/* Internals shared by the store C files.  Not for use outside src/store. */
#ifndef HP_STORE_STORE_INT_H
#define HP_STORE_STORE_INT_H

#include <pthread.h>
#include <sqlite3.h>

#include "store/store.h"

/* Cached prepared statements, one slot each.  The SQL lives next to the code
 * that uses it (hp_store_stmt's sql argument); a slot must always be used
 * with the same SQL. */
enum hp_store_stmt_slot {
    ST_BEGIN,
    ST_BEGIN_IMMEDIATE,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_POD_INSERT,
    ST_POD_CONFLICT,
    ST_POD_GET,
    ST_POD_PREFIX,
    ST_POD_LIST,
    ST_POD_SET_STATE,
    ST_POD_SET_BACKEND,
    ST_POD_DELETE,
    ST_POD_COUNT_CTRS,
    ST_POD_DELETE_CTRS,
    ST_CTR_INSERT,
    ST_CTR_CONFLICT,
    ST_CTR_GET,
    ST_CTR_PREFIX,
    ST_CTR_LIST,
    ST_CTR_SET_STATUS,
    ST_CTR_SET_BACKEND,
    ST_CTR_DELETE,
    ST_POD_EXISTS,
    ST_IMG_UPSERT,
    ST_IMG_GET,
    ST_IMG_BY_TAG,
    ST_IMG_BY_DIGEST,
    ST_IMG_PREFIX,
    ST_IMG_LIST,
    ST_IMG_TAGS,
    ST_IMG_DIGESTS,
    ST_IMG_LAYERS,
    ST_IMG_SET_TAG,
    ST_IMG_SET_DIGEST,
    ST_IMG_CLEAR_LAYERS,
    ST_IMG_ADD_LAYER,
    ST_LAYER_REGISTER,
    ST_IMG_UNTAG,
    ST_IMG_UNDIGEST,
    ST_IMG_DELETE,
    ST_IMG_USERS,
    ST_LAYERS_UNREF,
    ST_LAYER_DELETE,
    ST_KV_GET,
    ST_KV_SET,
    ST_KV_DELETE,
    ST__COUNT
};

struct hp_store {
    sqlite3 *db;
    pthread_mutex_t mu; /* recursive; guards everything below and the connection */
    int depth;          /* transaction nesting depth (0 = none) */
    bool broken;        /* SQLite rolled back the outer transaction under a savepoint */
    char *path;         /* owned */
    sqlite3_stmt *stmts[ST__COUNT];
};

/* The cached statement for slot, prepared from sql on first use.  Borrowed:
 * the store owns it; reset it after use (hp_store_stmt_done or the cleanup
 * attribute below).  NULL with err filled on failure.  Caller holds s->mu. */
sqlite3_stmt *hp_store_stmt(hp_store *s, int slot, const char *sql, hp_err *err);

static inline void hp_store_stmt_resetp(sqlite3_stmt **q)
{
    if (*q) {
        sqlite3_reset(*q);
        sqlite3_clear_bindings(*q);
    }
}
/* A cached statement that is reset (and its bindings cleared) on scope exit. */
#define _cleanup_stmt_ __attribute__((cleanup(hp_store_stmt_resetp)))

/* Fill err from the connection's last error, prefixed by the printf-style
 * context.  The code follows the SQLite error (BUSY -> UNAVAILABLE, FULL ->
 * RESOURCE_EXHAUSTED, CORRUPT -> DATA_LOSS, ...).  Returns -1. */
int hp_store_dberr(hp_store *s, hp_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Step a statement that returns no rows; -1 with err (context `what`) unless
 * it reports SQLITE_DONE. */
int hp_store_step_done(hp_store *s, sqlite3_stmt *q, const char *what, hp_err *err);

/* Start a transaction (write: BEGIN IMMEDIATE, else BEGIN) or, when one is
 * already open on this store, a savepoint.  Takes s->mu and keeps it until
 * the matching hp_store_tx_commit / hp_store_tx_rollback. */
int hp_store_tx_begin(hp_store *s, bool write, hp_err *err);
int hp_store_tx_commit(hp_store *s, hp_err *err);
void hp_store_tx_rollback(hp_store *s);

/* Run fn(s, arg, err) inside hp_store_tx_begin(write) .. commit, rolling
 * back when fn returns < 0.  Returns fn's result (>= 0) or -1. */
typedef int (*hp_store_tx_fn)(hp_store *s, void *arg, hp_err *err);
int hp_store_in_tx(hp_store *s, bool write, hp_store_tx_fn fn, void *arg, hp_err *err);

/* Bind a string that must not be NULL in the schema ("" for NULL). */
static inline int hp_store_bind_str(sqlite3_stmt *q, int i, const char *v)
{
    return sqlite3_bind_text(q, i, v ? v : "", -1, SQLITE_STATIC);
}
/* Bind a nullable string (NULL -> SQL NULL). */
static inline int hp_store_bind_nstr(sqlite3_stmt *q, int i, const char *v)
{
    return v ? sqlite3_bind_text(q, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(q, i);
}

/* Copy column i as a malloc'd string into *out: NULL when the column is NULL
 * and nullable, else "" for NULL.  Returns 0, or -1 with RESOURCE_EXHAUSTED. */
int hp_store_col_str(sqlite3_stmt *q, int i, bool nullable, char **out, hp_err *err);
/* Copy a blob column into *data and *len (NULL/0 for NULL or empty). */
int hp_store_col_blob(sqlite3_stmt *q, int i, uint8_t **data, size_t *len, hp_err *err);

/* Encode a map as a JSON object, owned by the caller (free()).  `what` names
 * the map in errors ("label"); invalid UTF-8 -> INVALID_ARGUMENT. */
char *hp_store_map_to_json(const hp_strmap *m, const char *what, hp_err *err);
/* Decode a JSON object of strings (as written by hp_store_map_to_json) into
 * the empty map m.  DATA_LOSS when the text is not such an object. */
int hp_store_map_from_json(const char *text, hp_strmap *m, hp_err *err);
/* True when every pair of sel is in m with the same value. */
bool hp_store_map_matches(const hp_strmap *m, const hp_strmap *sel);

/* True when s is exactly 64 lowercase hex characters. */
bool hp_store_valid_id(const char *s);
/* True when s is 1..64 lowercase hex characters. */
bool hp_store_valid_prefix(const char *s);

/* One schema migration: takes user_version from version-1 to version. */
typedef struct hp_store_migration {
    int version;
    const char *sql; /* one or more statements, run in one transaction */
} hp_store_migration;

/* hp_store_open() with an explicit migration list m[0..n) (m[i].version ==
 * i + 1); the tests use it to add a migration 2.  Ownership as hp_store_open. */
hp_store *hp_store_open_migrations(const char *path, const hp_store_migration *m, size_t n,
                                   hp_err *err);

/* Growable array helper: ensure *arr (of element size `elem`) has room for
 * `want` elements, doubling *cap.  Returns 0 or -1 with RESOURCE_EXHAUSTED. */
int hp_store_grow(void **arr, size_t *cap, size_t want, size_t elem, hp_err *err);

#endif
