/* hpcri state store: connection set-up, schema migrations, transactions,
 * statement cache and the small owned containers (see store.h). */
#include "store/store.h"
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/log.h"

#define BUSY_TIMEOUT_MS   5000
#define JOURNAL_LIMIT     (8 * 1024 * 1024) /* truncate the WAL to this after checkpoints */
#define HP_APPLICATION_ID 0x68706372        /* "hpcr" in PRAGMA application_id */

/* ------------------------------------------------------------------------
 * Migrations.  Migration N takes the schema from version N-1 to N and runs
 * in one transaction together with `PRAGMA user_version = N`.  To change the
 * schema, append a migration and bump HP_STORE_SCHEMA_VERSION; never edit a
 * released one.  Migrations run with foreign_keys=ON: a table rebuild must
 * keep referenced rows intact (create new, copy, drop old, rename).
 */
static const char SCHEMA_V1[] =
    "PRAGMA application_id = 1752195954;\n" /* HP_APPLICATION_ID */
    "CREATE TABLE pods (\n"
    "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 64),\n"
    "  name TEXT NOT NULL,\n"
    "  namespace TEXT NOT NULL,\n"
    "  uid TEXT NOT NULL,\n"
    "  attempt INTEGER NOT NULL,\n"
    "  state INTEGER NOT NULL CHECK (state IN (0, 1)),\n"
    "  created_at INTEGER NOT NULL,\n"
    "  runtime_handler TEXT NOT NULL DEFAULT '',\n"
    "  labels TEXT NOT NULL DEFAULT '{}',\n"
    "  annotations TEXT NOT NULL DEFAULT '{}',\n"
    "  config BLOB,\n"
    "  backend_state TEXT,\n"
    "  UNIQUE (name, namespace, uid, attempt)\n"
    ");\n"
    "CREATE TABLE containers (\n"
    "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 64),\n"
    "  pod_id TEXT NOT NULL REFERENCES pods(id) ON DELETE RESTRICT,\n"
    "  name TEXT NOT NULL,\n"
    "  attempt INTEGER NOT NULL,\n"
    "  state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 3),\n"
    "  created_at INTEGER NOT NULL,\n"
    "  started_at INTEGER NOT NULL DEFAULT 0,\n"
    "  finished_at INTEGER NOT NULL DEFAULT 0,\n"
    "  exit_code INTEGER NOT NULL DEFAULT 0,\n"
    "  reason TEXT NOT NULL DEFAULT '',\n"
    "  message TEXT NOT NULL DEFAULT '',\n"
    "  image TEXT NOT NULL DEFAULT '',\n"
    "  image_ref TEXT NOT NULL DEFAULT '',\n"
    "  log_path TEXT NOT NULL DEFAULT '',\n"
    "  labels TEXT NOT NULL DEFAULT '{}',\n"
    "  annotations TEXT NOT NULL DEFAULT '{}',\n"
    "  config BLOB,\n"
    "  backend_state TEXT,\n"
    "  UNIQUE (pod_id, name, attempt)\n"
    ");\n"
    "CREATE INDEX containers_image_ref ON containers(image_ref);\n"
    "CREATE TABLE images (\n"
    "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),\n"
    "  size INTEGER NOT NULL DEFAULT 0,\n"
    "  uid INTEGER,\n"
    "  username TEXT NOT NULL DEFAULT '',\n"
    "  pinned INTEGER NOT NULL DEFAULT 0,\n"
    "  config TEXT,\n"
    "  created_at INTEGER NOT NULL\n"
    ");\n"
    "CREATE TABLE image_tags (\n"
    "  tag TEXT PRIMARY KEY NOT NULL,\n"
    "  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE\n"
    ");\n"
    "CREATE INDEX image_tags_image ON image_tags(image_id);\n"
    "CREATE TABLE image_digests (\n"
    "  digest TEXT PRIMARY KEY NOT NULL,\n"
    "  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE\n"
    ");\n"
    "CREATE INDEX image_digests_image ON image_digests(image_id);\n"
    "CREATE TABLE layers (\n"
    "  digest TEXT PRIMARY KEY NOT NULL,\n"
    "  diff_id TEXT NOT NULL,\n"
    "  size INTEGER NOT NULL\n"
    ");\n"
    "CREATE INDEX layers_diff_id ON layers(diff_id);\n"
    "CREATE TABLE image_layers (\n"
    "  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,\n"
    "  idx INTEGER NOT NULL,\n"
    "  digest TEXT NOT NULL REFERENCES layers(digest) ON DELETE RESTRICT,\n"
    "  PRIMARY KEY (image_id, idx)\n"
    ");\n"
    "CREATE INDEX image_layers_digest ON image_layers(digest);\n"
    "CREATE TABLE kv (\n"
    "  key TEXT PRIMARY KEY NOT NULL,\n"
    "  value TEXT NOT NULL\n"
    ");\n";

static const hp_store_migration MIGRATIONS[] = {
    {1, SCHEMA_V1},
};
_Static_assert(sizeof MIGRATIONS / sizeof MIGRATIONS[0] == HP_STORE_SCHEMA_VERSION,
               "HP_STORE_SCHEMA_VERSION must equal the number of migrations");

/* ------------------------------------------------------------------------
 * Errors and statements.
 */

static int status_of_sqlite(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return HP_UNAVAILABLE;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
        return HP_RESOURCE_EXHAUSTED;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return HP_DATA_LOSS;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return HP_PERMISSION_DENIED;
    case SQLITE_CANTOPEN:
        return HP_UNAVAILABLE;
    case SQLITE_CONSTRAINT:
        return HP_FAILED_PRECONDITION;
    default:
        return HP_INTERNAL;
    }
}

int hp_store_dberr(hp_store *s, hp_err *err, const char *fmt, ...)
{
    char ctx[512];
    va_list ap;
    int rc = sqlite3_extended_errcode(s->db);
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    return hp_err_set(err, status_of_sqlite(rc), "%s: %s (state database %s, SQLite code %d)", ctx,
                      sqlite3_errmsg(s->db), s->path, rc);
}

sqlite3_stmt *hp_store_stmt(hp_store *s, int slot, const char *sql, hp_err *err)
{
    if (s->stmts[slot] == NULL) {
        if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[slot], NULL) !=
            SQLITE_OK) {
            s->stmts[slot] = NULL;
            hp_store_dberr(s, err, "cannot prepare statement");
            return NULL;
        }
    }
    return s->stmts[slot];
}

int hp_store_step_done(hp_store *s, sqlite3_stmt *q, const char *what, hp_err *err)
{
    int rc = sqlite3_step(q);
    if (rc != SQLITE_DONE)
        return hp_store_dberr(s, err, "%s", what);
    return 0;
}

/* Run one cached no-row statement to completion and reset it. */
static int run_slot(hp_store *s, int slot, const char *sql, hp_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *q = hp_store_stmt(s, slot, sql, err);
    if (!q)
        return -1;
    return hp_store_step_done(s, q, sql, err);
}

/* ------------------------------------------------------------------------
 * Transactions.
 */

int hp_store_tx_begin(hp_store *s, bool write, hp_err *err)
{
    pthread_mutex_lock(&s->mu);
    if (s->depth == 0) {
        s->broken = false;
        if (write ? run_slot(s, ST_BEGIN_IMMEDIATE, "BEGIN IMMEDIATE", err)
                  : run_slot(s, ST_BEGIN, "BEGIN", err)) {
            pthread_mutex_unlock(&s->mu);
            return -1;
        }
    } else {
        if (s->broken || sqlite3_get_autocommit(s->db)) {
            s->broken = true;
            pthread_mutex_unlock(&s->mu);
            return hp_err_set(err, HP_ABORTED,
                              "the enclosing state-store transaction was already rolled back by "
                              "an earlier error");
        }
        if (run_slot(s, ST_SAVEPOINT, "SAVEPOINT hp", err)) {
            pthread_mutex_unlock(&s->mu);
            return -1;
        }
    }
    s->depth++;
    return 0;
}

int hp_store_tx_commit(hp_store *s, hp_err *err)
{
    int rc = 0;
    if (s->depth == 1) {
        if (s->broken) {
            rc = hp_err_set(err, HP_ABORTED,
                            "state-store transaction was rolled back by an earlier error");
            if (!sqlite3_get_autocommit(s->db))
                run_slot(s, ST_ROLLBACK, "ROLLBACK", NULL);
        } else if (run_slot(s, ST_COMMIT, "COMMIT", err) < 0) {
            rc = -1;
            if (!sqlite3_get_autocommit(s->db))
                run_slot(s, ST_ROLLBACK, "ROLLBACK", NULL);
        }
        s->broken = false;
    } else if (s->broken || sqlite3_get_autocommit(s->db)) {
        s->broken = true;
        rc = hp_err_set(err, HP_ABORTED,
                        "state-store transaction was rolled back by an earlier error");
    } else if (run_slot(s, ST_RELEASE, "RELEASE hp", err) < 0) {
        rc = -1;
    }
    s->depth--;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void hp_store_tx_rollback(hp_store *s)
{
    if (s->depth == 1) {
        if (!sqlite3_get_autocommit(s->db))
            run_slot(s, ST_ROLLBACK, "ROLLBACK", NULL);
        s->broken = false;
    } else if (sqlite3_get_autocommit(s->db)) {
        /* SQLite already rolled the whole transaction back (I/O error, full
         * disk...): the outer levels must fail too. */
        s->broken = true;
    } else if (!s->broken) {
        if (run_slot(s, ST_ROLLBACK_TO, "ROLLBACK TO hp", NULL) < 0 ||
            run_slot(s, ST_RELEASE, "RELEASE hp", NULL) < 0)
            s->broken = true;
    }
    s->depth--;
    pthread_mutex_unlock(&s->mu);
}

int hp_store_in_tx(hp_store *s, bool write, hp_store_tx_fn fn, void *arg, hp_err *err)
{
    int rc;
    if (hp_store_tx_begin(s, write, err) < 0)
        return -1;
    rc = fn(s, arg, err);
    if (rc < 0) {
        hp_store_tx_rollback(s);
        return -1;
    }
    if (hp_store_tx_commit(s, err) < 0)
        return -1;
    return rc;
}

int hp_store_begin(hp_store *s, hp_err *err)
{
    return hp_store_tx_begin(s, true, err);
}

int hp_store_commit(hp_store *s, hp_err *err)
{
    return hp_store_tx_commit(s, err);
}

void hp_store_rollback(hp_store *s)
{
    hp_store_tx_rollback(s);
}

/* ------------------------------------------------------------------------
 * Opening and migrating.
 */

/* Run a one-row pragma/query and return its integer column 0 in *out. */
static int query_int(hp_store *s, const char *sql, int64_t *out, hp_err *err)
{
    sqlite3_stmt *q = NULL;
    int rc;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return hp_store_dberr(s, err, "cannot read the state database (%s)", sql);
    rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        hp_store_dberr(s, err, "cannot read the state database (%s)", sql);
        sqlite3_finalize(q);
        return -1;
    }
    *out = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return 0;
}

static int exec_sql(hp_store *s, const char *sql, const char *what, hp_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = sqlite3_extended_errcode(s->db);
        hp_err_set(err, status_of_sqlite(rc), "%s: %s (state database %s)", what,
                   msg ? msg : sqlite3_errstr(rc), s->path);
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Apply the next missing migration, if any.  Returns 1 when one was
 * applied, 0 when the schema is current, -1 on error. */
static int migrate_step(hp_store *s, const hp_store_migration *m, size_t n, hp_err *err)
{
    int64_t version, app_id, objects;
    if (exec_sql(s, "BEGIN IMMEDIATE", "cannot lock the state database", err) < 0)
        return -1;
    if (query_int(s, "PRAGMA user_version", &version, err) < 0 ||
        query_int(s, "PRAGMA application_id", &app_id, err) < 0)
        goto fail;
    if (version > (int64_t)n) {
        hp_err_set(err, HP_FAILED_PRECONDITION,
                   "state database %s has schema version %lld, but this hpcri only knows "
                   "versions up to %zu: it was written by a newer hpcri; run that version or "
                   "move the file aside",
                   s->path, (long long)version, n);
        goto fail;
    }
    if (version == 0) {
        if (query_int(s, "SELECT count(*) FROM sqlite_schema", &objects, err) < 0)
            goto fail;
        if (objects > 0) {
            hp_err_set(err, HP_FAILED_PRECONDITION,
                       "%s is an SQLite database but not an hpcri state database (it has "
                       "tables and no schema version); refusing to touch it",
                       s->path);
            goto fail;
        }
    } else if (app_id != HP_APPLICATION_ID) {
        hp_err_set(err, HP_FAILED_PRECONDITION,
                   "%s is not an hpcri state database (application_id %lld); refusing to touch "
                   "it",
                   s->path, (long long)app_id);
        goto fail;
    }
    if (version == (int64_t)n) {
        exec_sql(s, "COMMIT", "cannot read the state database", NULL);
        return 0;
    }
    const hp_store_migration *next = &m[version];
    if (next->version != version + 1) {
        hp_err_set(err, HP_INTERNAL, "state-store migration list is out of order at %lld",
                   (long long)version + 1);
        goto fail;
    }
    char what[128], pragma[64];
    snprintf(what, sizeof what, "cannot apply state-database migration %d", next->version);
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", next->version);
    if (exec_sql(s, next->sql, what, err) < 0 || exec_sql(s, pragma, what, err) < 0 ||
        exec_sql(s, "COMMIT", what, err) < 0)
        goto fail;
    hp_info("state database %s: migrated schema to version %d", s->path, next->version);
    return 1;
fail:
    if (!sqlite3_get_autocommit(s->db))
        exec_sql(s, "ROLLBACK", "rollback", NULL);
    return -1;
}

hp_store *hp_store_open_migrations(const char *path, const hp_store_migration *m, size_t n,
                                   hp_err *err)
{
    hp_store *s;
    int64_t fk;
    int rc;

    if (path == NULL || path[0] == '\0') {
        hp_err_set(err, HP_INVALID_ARGUMENT, "state database path is empty");
        return NULL;
    }
    /* Create the file ourselves so that it (and the -wal/-shm files SQLite
     * derives from it) is private: container configs may hold secrets. */
    if (strcmp(path, ":memory:") != 0) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            hp_err_sys(err, errno == EACCES ? HP_PERMISSION_DENIED : HP_UNAVAILABLE,
                       "cannot open state database %s", path);
            return NULL;
        }
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory opening the state database");
        return NULL;
    }
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    s->path = strdup(path);
    if (!s->path) {
        hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory opening the state database");
        goto fail;
    }
    /* NOMUTEX: our own mutex serializes every use of the connection. */
    rc = sqlite3_open_v2(path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        hp_err_set(err, status_of_sqlite(rc), "cannot open state database %s: %s", path,
                   s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

    /* journal_mode answers with the mode in effect (it stays "delete" on
     * file systems without shared memory, e.g. some NFS mounts). */
    {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &q, NULL) != SQLITE_OK ||
            sqlite3_step(q) != SQLITE_ROW) {
            hp_store_dberr(s, err, "cannot switch the state database to WAL mode");
            sqlite3_finalize(q);
            if (err && sqlite3_extended_errcode(s->db) == SQLITE_NOTADB)
                hp_err_set(err, HP_DATA_LOSS, "%s exists but is not an SQLite database", path);
            goto fail;
        }
        const char *mode = (const char *)sqlite3_column_text(q, 0);
        if (strcmp(path, ":memory:") != 0 && (!mode || strcmp(mode, "wal") != 0))
            hp_warn("state database %s: WAL journal unavailable (mode %s); a crash is still "
                    "safe but readers will block writers",
                    path, mode ? mode : "?");
        sqlite3_finalize(q);
    }
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; "
             "PRAGMA trusted_schema = OFF; PRAGMA journal_size_limit = %d; "
             "PRAGMA cache_size = -16384;",
             JOURNAL_LIMIT);
    if (exec_sql(s, pragmas, "cannot configure the state database", err) < 0)
        goto fail;
    if (query_int(s, "PRAGMA foreign_keys", &fk, err) < 0)
        goto fail;
    if (fk != 1) {
        hp_err_set(err, HP_FAILED_PRECONDITION,
                   "the SQLite library does not enforce foreign keys; hpcri needs it");
        goto fail;
    }
    for (;;) {
        rc = migrate_step(s, m, n, err);
        if (rc < 0)
            goto fail;
        if (rc == 0)
            break;
    }
    return s;
fail:
    hp_store_close(s);
    return NULL;
}

hp_store *hp_store_open(const char *path, hp_err *err)
{
    return hp_store_open_migrations(path, MIGRATIONS, HP_STORE_SCHEMA_VERSION, err);
}

void hp_store_close(hp_store *s)
{
    if (!s)
        return;
    if (s->db) {
        pthread_mutex_lock(&s->mu);
        while (s->depth > 0) {
            pthread_mutex_lock(&s->mu); /* balanced by the rollback's unlock */
            hp_store_tx_rollback(s);
            pthread_mutex_unlock(&s->mu);
        }
        for (int i = 0; i < ST__COUNT; i++)
            sqlite3_finalize(s->stmts[i]);
        if (sqlite3_close(s->db) != SQLITE_OK)
            hp_warn("state database %s: close failed: %s", s->path, sqlite3_errmsg(s->db));
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

int hp_store_schema_version(hp_store *s, hp_err *err)
{
    int64_t v;
    pthread_mutex_lock(&s->mu);
    int rc = query_int(s, "PRAGMA user_version", &v, err);
    pthread_mutex_unlock(&s->mu);
    return rc < 0 ? -1 : (int)v;
}

int hp_store_new_id(char out[HP_STORE_ID_LEN + 1], hp_err *err)
{
    unsigned char buf[HP_STORE_ID_LEN / 2];
    size_t got = 0;
    static const char hex[] = "0123456789abcdef";
    while (got < sizeof buf) {
        ssize_t r = getrandom(buf + got, sizeof buf - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return hp_err_sys(err, HP_INTERNAL, "cannot generate a random id: getrandom");
        }
        got += (size_t)r;
    }
    for (size_t i = 0; i < sizeof buf; i++) {
        out[2 * i] = hex[buf[i] >> 4];
        out[2 * i + 1] = hex[buf[i] & 0xf];
    }
    out[HP_STORE_ID_LEN] = '\0';
    return 0;
}

/* ------------------------------------------------------------------------
 * Helpers.
 */

bool hp_store_valid_prefix(const char *s)
{
    size_t n = 0;
    if (!s)
        return false;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')) || n >= HP_STORE_ID_LEN)
            return false;
    return n > 0;
}

bool hp_store_valid_id(const char *s)
{
    return hp_store_valid_prefix(s) && strlen(s) == HP_STORE_ID_LEN;
}

int hp_store_grow(void **arr, size_t *cap, size_t want, size_t elem, hp_err *err)
{
    if (want <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < want)
        ncap *= 2;
    void *p = reallocarray(*arr, ncap, elem);
    if (!p)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    memset((char *)p + *cap * elem, 0, (ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return 0;
}

int hp_store_col_str(sqlite3_stmt *q, int i, bool nullable, char **out, hp_err *err)
{
    const char *t = (const char *)sqlite3_column_text(q, i);
    if (!t && nullable) {
        *out = NULL;
        return 0;
    }
    *out = strdup(t ? t : "");
    if (!*out)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory reading the state database");
    return 0;
}

int hp_store_col_blob(sqlite3_stmt *q, int i, uint8_t **data, size_t *len, hp_err *err)
{
    const void *b = sqlite3_column_blob(q, i);
    int n = sqlite3_column_bytes(q, i);
    *data = NULL;
    *len = 0;
    if (!b || n <= 0)
        return 0;
    *data = malloc((size_t)n);
    if (!*data)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory reading the state database");
    memcpy(*data, b, (size_t)n);
    *len = (size_t)n;
    return 0;
}

char *hp_store_map_to_json(const hp_strmap *m, const char *what, hp_err *err)
{
    json_t *o = json_object();
    char *text;
    if (!o)
        goto oom;
    for (size_t i = 0; m && i < m->n; i++) {
        json_t *v = json_string(m->items[i].value);
        if (!v) {
            json_decref(o);
            hp_err_set(err, HP_INVALID_ARGUMENT, "%s \"%s\" has a value that is not valid UTF-8",
                       what, m->items[i].key);
            return NULL;
        }
        if (json_object_set_new(o, m->items[i].key, v) < 0) {
            json_decref(o);
            hp_err_set(err, HP_INVALID_ARGUMENT, "%s key \"%s\" is not valid UTF-8", what,
                       m->items[i].key);
            return NULL;
        }
    }
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (text)
        return text;
oom:
    hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory encoding %ss", what);
    return NULL;
}

int hp_store_map_from_json(const char *text, hp_strmap *m, hp_err *err)
{
    json_error_t jerr;
    json_t *o = json_loads(text ? text : "{}", 0, &jerr);
    const char *key;
    json_t *v;
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return hp_err_set(err, HP_DATA_LOSS, "corrupt string map in the state database: %s",
                          o ? "not a JSON object" : jerr.text);
    }
    json_object_foreach(o, key, v)
    {
        if (!json_is_string(v)) {
            json_decref(o);
            hp_strmap_clear(m);
            return hp_err_set(err, HP_DATA_LOSS,
                              "corrupt string map in the state database: \"%s\" is not a string",
                              key);
        }
        if (hp_strmap_set(m, key, json_string_value(v), err) < 0) {
            json_decref(o);
            hp_strmap_clear(m);
            return -1;
        }
    }
    json_decref(o);
    return 0;
}

bool hp_store_map_matches(const hp_strmap *m, const hp_strmap *sel)
{
    for (size_t i = 0; sel && i < sel->n; i++) {
        const char *v = hp_strmap_get(m, sel->items[i].key);
        if (!v || strcmp(v, sel->items[i].value) != 0)
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------
 * Containers of strings.
 */

int hp_strmap_set(hp_strmap *m, const char *key, const char *value, hp_err *err)
{
    char *v = strdup(value ? value : "");
    if (!v)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->items[i].key, key) == 0) {
            free(m->items[i].value);
            m->items[i].value = v;
            return 0;
        }
    }
    char *k = strdup(key);
    if (!k || hp_store_grow((void **)&m->items, &m->cap, m->n + 1, sizeof *m->items, err) < 0) {
        free(k);
        free(v);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    m->items[m->n].key = k;
    m->items[m->n].value = v;
    m->n++;
    return 0;
}

const char *hp_strmap_get(const hp_strmap *m, const char *key)
{
    for (size_t i = 0; m && i < m->n; i++)
        if (strcmp(m->items[i].key, key) == 0)
            return m->items[i].value;
    return NULL;
}

void hp_strmap_clear(hp_strmap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->items[i].key);
        free(m->items[i].value);
    }
    free(m->items);
    m->items = NULL;
    m->n = m->cap = 0;
}

int hp_strlist_add(hp_strlist *l, const char *s, hp_err *err)
{
    char *c = strdup(s);
    if (!c || hp_store_grow((void **)&l->items, &l->cap, l->n + 1, sizeof *l->items, err) < 0) {
        free(c);
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    }
    l->items[l->n++] = c;
    return 0;
}

bool hp_strlist_contains(const hp_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i], s) == 0)
            return true;
    return false;
}

void hp_strlist_clear(hp_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

/* ------------------------------------------------------------------------
 * Record destructors.
 */

void hp_pod_rec_clear(hp_pod_rec *p)
{
    free(p->name);
    free(p->ns);
    free(p->uid);
    free(p->runtime_handler);
    hp_strmap_clear(&p->labels);
    hp_strmap_clear(&p->annotations);
    free(p->config);
    free(p->backend_state);
    memset(p, 0, sizeof *p);
}

void hp_ctr_rec_clear(hp_ctr_rec *c)
{
    free(c->name);
    free(c->reason);
    free(c->message);
    free(c->image);
    free(c->image_ref);
    free(c->log_path);
    hp_strmap_clear(&c->labels);
    hp_strmap_clear(&c->annotations);
    free(c->config);
    free(c->backend_state);
    memset(c, 0, sizeof *c);
}

void hp_layer_rec_clear(hp_layer_rec *l)
{
    free(l->digest);
    free(l->diff_id);
    memset(l, 0, sizeof *l);
}

void hp_image_rec_clear(hp_image_rec *im)
{
    free(im->id);
    hp_strlist_clear(&im->repo_tags);
    hp_strlist_clear(&im->repo_digests);
    free(im->username);
    free(im->config_json);
    for (size_t i = 0; i < im->n_layers; i++)
        hp_layer_rec_clear(&im->layers[i]);
    free(im->layers);
    memset(im, 0, sizeof *im);
}

void hp_pod_rec_free(hp_pod_rec *p)
{
    if (p) {
        hp_pod_rec_clear(p);
        free(p);
    }
}

void hp_ctr_rec_free(hp_ctr_rec *c)
{
    if (c) {
        hp_ctr_rec_clear(c);
        free(c);
    }
}

void hp_image_rec_free(hp_image_rec *im)
{
    if (im) {
        hp_image_rec_clear(im);
        free(im);
    }
}

void hp_pod_recs_free(hp_pod_rec *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hp_pod_rec_clear(&a[i]);
    free(a);
}

void hp_ctr_recs_free(hp_ctr_rec *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hp_ctr_rec_clear(&a[i]);
    free(a);
}

void hp_image_recs_free(hp_image_rec *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hp_image_rec_clear(&a[i]);
    free(a);
}

void hp_layer_recs_free(hp_layer_rec *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hp_layer_rec_clear(&a[i]);
    free(a);
}
