/* Tests for the SQLite state store (src/store): real database files in a
 * temporary directory, real child processes for the crash test. */
#include "t.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_int.h"

/* ------------------------------------------------------------------------
 * Fixtures.
 */

struct tmp {
    char dir[64];
    char db[128];
};

static void tmp_init(struct tmp *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/hpcri-store-XXXXXX");
    if (!mkdtemp(t->dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(t->db, sizeof t->db, "%s/state.db", t->dir);
}

static void tmp_done(struct tmp *t)
{
    char p[160];
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        snprintf(p, sizeof p, "%s%s", t->db, sfx[i]);
        unlink(p);
    }
    rmdir(t->dir);
}

/* An id made of a readable prefix padded with '0' to 64 hex characters. */
static void mkid(char out[65], const char *prefix)
{
    size_t n = strlen(prefix);
    memset(out, '0', 64);
    memcpy(out, prefix, n);
    out[64] = '\0';
}

static void set_id(char dst[65], const char *id)
{
    size_t n = strnlen(id, 64);
    memcpy(dst, id, n);
    dst[n] = '\0';
}

static void pod_fill(hp_pod_rec *p, const char *id, const char *name, uint32_t attempt)
{
    memset(p, 0, sizeof *p);
    set_id(p->id, id);
    p->name = (char *)name;
    p->ns = (char *)"default";
    p->uid = (char *)"uid-1";
    p->attempt = attempt;
    p->state = HP_POD_READY;
    p->created_at = 1000;
}

static void ctr_fill(hp_ctr_rec *c, const char *id, const char *pod_id, const char *name)
{
    memset(c, 0, sizeof *c);
    set_id(c->id, id);
    set_id(c->pod_id, pod_id);
    c->name = (char *)name;
    c->state = HP_CTR_CREATED;
    c->created_at = 2000;
}

/* Run one SQL statement on a separate raw connection and return the first
 * column of the first row as a malloc'd string ("" when no row). */
static char *raw_query(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *q = NULL;
    char *res = NULL;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        goto out;
    sqlite3_busy_timeout(h, 5000);
    sqlite3_exec(h, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) != SQLITE_OK) {
        res = strdup(sqlite3_errmsg(h));
        goto out;
    }
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        res = strdup(sqlite3_column_text(q, 0) ? (const char *)sqlite3_column_text(q, 0) : "");
    else if (rc == SQLITE_DONE)
        res = strdup("");
    else
        res = strdup(sqlite3_errmsg(h));
out:
    sqlite3_finalize(q);
    sqlite3_close(h);
    return res;
}

/* ------------------------------------------------------------------------
 * Opening and migrations.
 */

T_CASE(migrate_empty_file)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    struct stat st;
    tmp_init(&t);
    hp_store *s = hp_store_open(t.db, &err);
    if (!s)
        T_FAIL("open: %s", err.msg);
    T_ASSERT(s != NULL);
    T_EQ_INT(hp_store_schema_version(s, &err), HP_STORE_SCHEMA_VERSION);
    T_ASSERT(stat(t.db, &st) == 0);
    T_EQ_INT(st.st_mode & 0777, 0600);

    /* The connection is configured as documented. */
    int64_t v = -1;
    sqlite3_stmt *q = NULL;
    T_ASSERT(sqlite3_prepare_v2(s->db, "PRAGMA synchronous", -1, &q, NULL) == SQLITE_OK);
    T_ASSERT(sqlite3_step(q) == SQLITE_ROW);
    v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    T_EQ_INT(v, 1); /* NORMAL */
    hp_store_close(s);

    char *mode = raw_query(t.db, "PRAGMA journal_mode");
    char *tables = raw_query(t.db, "SELECT group_concat(name, ',') FROM (SELECT name FROM "
                                   "sqlite_schema WHERE type = 'table' ORDER BY name)");
    int ok = mode && strcmp(mode, "wal") == 0 && tables &&
             strcmp(tables, "containers,image_digests,image_layers,image_tags,images,kv,layers,"
                            "pods") == 0;
    if (!ok)
        T_FAIL("mode=%s tables=%s", mode, tables);
    free(mode);
    free(tables);
    T_ASSERT(ok);

    /* An existing empty (0-byte) file is an empty database too. */
    unlink(t.db);
    FILE *f = fopen(t.db, "w");
    T_ASSERT(f != NULL);
    fclose(f);
    s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);
    T_EQ_INT(hp_store_schema_version(s, &err), HP_STORE_SCHEMA_VERSION);
    hp_store_close(s);
    tmp_done(&t);
}

T_CASE(migration_two_then_newer_refused)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    char id[65];
    hp_pod_rec p;
    tmp_init(&t);
    hp_store *s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);
    mkid(id, "aa");
    pod_fill(&p, id, "web", 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), 0);
    hp_store_close(s);

    /* A future binary with a migration 2 upgrades the file, keeping data.
     * Migration 1's SQL is irrelevant here: the file is already at 1. */
    static const hp_store_migration two[] = {
        {1, "SELECT 1"},
        {2, "ALTER TABLE pods ADD COLUMN sandbox_note TEXT NOT NULL DEFAULT 'n';"
            "CREATE TABLE notes (k TEXT PRIMARY KEY)"},
    };
    s = hp_store_open_migrations(t.db, two, 2, &err);
    if (!s)
        T_FAIL("open with migration 2: %s", err.msg);
    T_ASSERT(s != NULL);
    T_EQ_INT(hp_store_schema_version(s, &err), 2);
    hp_pod_rec *got = hp_store_pod_get(s, id, &err);
    T_ASSERT(got != NULL);
    T_EQ_STR(got->name, "web");
    hp_pod_rec_free(got);
    hp_store_close(s);
    char *note = raw_query(t.db, "SELECT sandbox_note FROM pods");
    int ok = note && strcmp(note, "n") == 0;
    free(note);
    T_ASSERT(ok);

    /* This binary only knows version 1: refused, file untouched. */
    hp_err_clear(&err);
    s = hp_store_open(t.db, &err);
    T_ASSERT(s == NULL);
    T_EQ_INT(err.code, HP_FAILED_PRECONDITION);
    T_ASSERT(strstr(err.msg, "schema version 2") != NULL);
    T_ASSERT(strstr(err.msg, "newer hpcri") != NULL);
    T_ASSERT(strstr(err.msg, t.db) != NULL);
    char *ver = raw_query(t.db, "PRAGMA user_version");
    ok = ver && strcmp(ver, "2") == 0;
    free(ver);
    T_ASSERT(ok);

    /* A much newer number, set by hand, is refused the same way. */
    free(raw_query(t.db, "PRAGMA user_version = 42"));
    s = hp_store_open(t.db, &err);
    T_ASSERT(s == NULL);
    T_EQ_INT(err.code, HP_FAILED_PRECONDITION);
    T_ASSERT(strstr(err.msg, "schema version 42") != NULL);
    tmp_done(&t);
}

T_CASE(foreign_files_refused)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    tmp_init(&t);

    /* Some other application's SQLite database. */
    sqlite3 *h = NULL;
    T_ASSERT(sqlite3_open(t.db, &h) == SQLITE_OK);
    T_ASSERT(sqlite3_exec(h, "CREATE TABLE x (a)", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(h);
    hp_store *s = hp_store_open(t.db, &err);
    T_ASSERT(s == NULL);
    T_EQ_INT(err.code, HP_FAILED_PRECONDITION);
    T_ASSERT(strstr(err.msg, "not an hpcri state database") != NULL);
    tmp_done(&t);

    /* Not a database at all. */
    tmp_init(&t);
    FILE *f = fopen(t.db, "w");
    T_ASSERT(f != NULL);
    for (int i = 0; i < 200; i++)
        fputs("this is not a database file. ", f);
    fclose(f);
    s = hp_store_open(t.db, &err);
    T_ASSERT(s == NULL);
    T_EQ_INT(err.code, HP_DATA_LOSS);
    T_ASSERT(strstr(err.msg, "not an SQLite database") != NULL);
    tmp_done(&t);

    /* Missing directory. */
    s = hp_store_open("/nonexistent-hpcri-dir/state.db", &err);
    T_ASSERT(s == NULL);
    T_ASSERT(strstr(err.msg, "/nonexistent-hpcri-dir/state.db") != NULL);
}

T_CASE(new_id_format)
{
    char a[65], b[65];
    hp_err err = HP_ERR_INIT;
    T_EQ_INT(hp_store_new_id(a, &err), 0);
    T_EQ_INT(hp_store_new_id(b, &err), 0);
    T_EQ_INT(strlen(a), 64);
    T_ASSERT(hp_store_valid_id(a));
    T_ASSERT(hp_store_valid_id(b));
    T_ASSERT(strcmp(a, b) != 0);
}

/* ------------------------------------------------------------------------
 * Pods and containers.
 */

T_CASE(pod_roundtrip_labels_unicode)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    char id[65];
    hp_pod_rec p;
    static const uint8_t blob[] = {0x0a, 0x00, 0xff, 0x10, 0x00, 0x7f};
    tmp_init(&t);
    hp_store *s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);
    T_EQ_INT(hp_store_new_id(id, &err), 0);
    pod_fill(&p, id, "Grüße-🚀", 3);
    p.ns = (char *)"kube-system";
    p.uid = (char *)"8d4c-uid";
    p.created_at = INT64_C(1732433281123456789);
    p.runtime_handler = (char *)"crun";
    p.config = (uint8_t *)blob;
    p.config_len = sizeof blob;
    p.backend_state = (char *)"{\"pid\":42}";
    hp_strmap labels = {0}, ann = {0};
    T_EQ_INT(hp_strmap_set(&labels, "app", "web", &err), 0);
    T_EQ_INT(hp_strmap_set(&labels, "empty", "", &err), 0);
    T_EQ_INT(hp_strmap_set(&labels, "日本語.key/with\"quote", "値 ✓ \\ \n tab\t", &err), 0);
    T_EQ_INT(hp_strmap_set(&ann, "io.kubernetes/x", "{\"json\": [1,2]}", &err), 0);
    T_EQ_INT(hp_strmap_set(&ann, "", "empty key", &err), 0);
    p.labels = labels;
    p.annotations = ann;
    int rc = hp_store_pod_insert(s, &p, &err);
    if (rc)
        T_FAIL("insert: %s", err.msg);
    T_EQ_INT(rc, 0);
    hp_store_close(s);

    /* Reopen: everything comes back from the file. */
    s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);
    hp_pod_rec *g = hp_store_pod_get(s, id, &err);
    T_ASSERT(g != NULL);
    T_EQ_STR(g->id, id);
    T_EQ_STR(g->name, "Grüße-🚀");
    T_EQ_STR(g->ns, "kube-system");
    T_EQ_STR(g->uid, "8d4c-uid");
    T_EQ_INT(g->attempt, 3);
    T_EQ_INT(g->state, HP_POD_READY);
    T_EQ_INT(g->created_at, INT64_C(1732433281123456789));
    T_EQ_STR(g->runtime_handler, "crun");
    T_EQ_STR(g->backend_state, "{\"pid\":42}");
    T_EQ_INT(g->config_len, sizeof blob);
    T_ASSERT(memcmp(g->config, blob, sizeof blob) == 0);
    T_EQ_INT(g->labels.n, 3);
    T_EQ_STR(g->labels.items[0].key, "app"); /* insertion order kept */
    T_EQ_STR(hp_strmap_get(&g->labels, "empty"), "");
    T_EQ_STR(hp_strmap_get(&g->labels, "日本語.key/with\"quote"), "値 ✓ \\ \n tab\t");
    T_EQ_INT(g->annotations.n, 2);
    T_EQ_STR(hp_strmap_get(&g->annotations, "io.kubernetes/x"), "{\"json\": [1,2]}");
    T_EQ_STR(hp_strmap_get(&g->annotations, ""), "empty key");
    hp_pod_rec_free(g);

    /* Nullable members come back NULL; state and backend_state update. */
    T_EQ_INT(hp_store_pod_set_state(s, id, HP_POD_NOTREADY, &err), 0);
    T_EQ_INT(hp_store_pod_set_backend_state(s, id, NULL, &err), 0);
    g = hp_store_pod_get(s, id, &err);
    T_ASSERT(g != NULL);
    T_EQ_INT(g->state, HP_POD_NOTREADY);
    T_ASSERT(g->backend_state == NULL);
    hp_pod_rec_free(g);
    T_EQ_INT(hp_store_pod_set_state(s, id, 7, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);

    /* Invalid UTF-8 in a label is refused with a clear message. */
    char id2[65];
    T_EQ_INT(hp_store_new_id(id2, &err), 0);
    pod_fill(&p, id2, "other", 0);
    hp_strmap bad = {0};
    T_EQ_INT(hp_strmap_set(&bad, "k", "\xff\xfe", &err), 0);
    p.labels = bad;
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_ASSERT(strstr(err.msg, "UTF-8") != NULL);
    hp_strmap_clear(&bad);

    /* Missing ids. */
    T_ASSERT(hp_store_pod_get(s, id2, &err) == NULL);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_EQ_INT(hp_store_pod_set_state(s, id2, HP_POD_READY, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    hp_strmap_clear(&labels);
    hp_strmap_clear(&ann);
    hp_store_close(s);
    tmp_done(&t);
}

T_CASE(uniqueness_errors_name_existing_id)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    char a[65], b[65], c1[65], c2[65], missing[65];
    hp_pod_rec p;
    hp_ctr_rec c;
    tmp_init(&t);
    hp_store *s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);
    mkid(a, "a1");
    mkid(b, "b2");
    pod_fill(&p, a, "web", 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), 0);

    /* Same metadata, other id. */
    pod_fill(&p, b, "web", 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), -1);
    T_EQ_INT(err.code, HP_ALREADY_EXISTS);
    T_ASSERT(strstr(err.msg, a) != NULL);
    T_ASSERT(strstr(err.msg, "default/web") != NULL);
    /* Same id. */
    pod_fill(&p, a, "other", 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), -1);
    T_EQ_INT(err.code, HP_ALREADY_EXISTS);
    T_ASSERT(strstr(err.msg, a) != NULL);
    /* Next attempt is fine. */
    pod_fill(&p, b, "web", 1);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), 0);
    /* Bad id. */
    pod_fill(&p, "ABC", "x", 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);

    mkid(c1, "c1");
    mkid(c2, "c2");
    ctr_fill(&c, c1, a, "nginx");
    T_EQ_INT(hp_store_ctr_insert(s, &c, &err), 0);
    ctr_fill(&c, c2, a, "nginx");
    T_EQ_INT(hp_store_ctr_insert(s, &c, &err), -1);
    T_EQ_INT(err.code, HP_ALREADY_EXISTS);
    T_ASSERT(strstr(err.msg, c1) != NULL);
    T_ASSERT(strstr(err.msg, "\"nginx\"") != NULL);
    ctr_fill(&c, c1, b, "other");
    T_EQ_INT(hp_store_ctr_insert(s, &c, &err), -1);
    T_EQ_INT(err.code, HP_ALREADY_EXISTS);
    /* Same name in another pod, or next attempt: fine. */
    ctr_fill(&c, c2, b, "nginx");
    T_EQ_INT(hp_store_ctr_insert(s, &c, &err), 0);
    /* Unknown pod. */
    mkid(missing, "dead");
    ctr_fill(&c, "e0000000000000000000000000000000000000000000000000000000000000e0", missing, "x");
    T_EQ_INT(hp_store_ctr_insert(s, &c, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(strstr(err.msg, missing) != NULL);

    hp_ctr_rec *l = NULL;
    size_t n = 0;
    T_EQ_INT(hp_store_ctr_list(s, NULL, &l, &n, &err), 0);
    T_EQ_INT(n, 2);
    hp_ctr_recs_free(l, n);
    hp_store_close(s);
    tmp_done(&t);
}

T_CASE(prefix_lookup)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    char a[65], b[65], d[65], ca[65], cb[65];
    hp_pod_rec p;
    hp_ctr_rec c;
    tmp_init(&t);
    hp_store *s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);
    mkid(a, "abc1");
    mkid(b, "abc2");
    mkid(d, "def");
    pod_fill(&p, a, "a", 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), 0);
    pod_fill(&p, b, "b", 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), 0);
    pod_fill(&p, d, "d", 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), 0);

    hp_pod_rec *g = hp_store_pod_lookup(s, "abc1", &err);
    T_ASSERT(g != NULL);
    T_EQ_STR(g->id, a);
    hp_pod_rec_free(g);
    g = hp_store_pod_lookup(s, d, &err); /* full id */
    T_ASSERT(g != NULL);
    T_EQ_STR(g->name, "d");
    hp_pod_rec_free(g);
    g = hp_store_pod_lookup(s, "d", &err);
    T_ASSERT(g != NULL);
    T_EQ_STR(g->id, d);
    hp_pod_rec_free(g);

    T_ASSERT(hp_store_pod_lookup(s, "abc", &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_ASSERT(strstr(err.msg, "ambiguous") != NULL);
    T_ASSERT(strstr(err.msg, a) != NULL && strstr(err.msg, b) != NULL);
    T_ASSERT(hp_store_pod_lookup(s, "abc3", &err) == NULL);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(hp_store_pod_lookup(s, "0", &err) == NULL);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(hp_store_pod_lookup(s, "ABC1", &err) == NULL); /* ids are lowercase */
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(hp_store_pod_lookup(s, "web%", &err) == NULL);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(hp_store_pod_lookup(s, "", &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    char longer[70];
    snprintf(longer, sizeof longer, "%s0", a);
    T_ASSERT(hp_store_pod_lookup(s, longer, &err) == NULL);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    /* Exact get does not accept prefixes. */
    T_ASSERT(hp_store_pod_get(s, "abc1", &err) == NULL);
    T_EQ_INT(err.code, HP_NOT_FOUND);

    mkid(ca, "fa");
    mkid(cb, "fb");
    ctr_fill(&c, ca, a, "x");
    T_EQ_INT(hp_store_ctr_insert(s, &c, &err), 0);
    ctr_fill(&c, cb, a, "y");
    T_EQ_INT(hp_store_ctr_insert(s, &c, &err), 0);
    hp_ctr_rec *cg = hp_store_ctr_lookup(s, "fb", &err);
    T_ASSERT(cg != NULL);
    T_EQ_STR(cg->id, cb);
    T_EQ_STR(cg->pod_id, a);
    T_EQ_STR(cg->name, "y");
    hp_ctr_rec_free(cg);
    T_ASSERT(hp_store_ctr_lookup(s, "f", &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_ASSERT(strstr(err.msg, ca) != NULL && strstr(err.msg, cb) != NULL);
    T_ASSERT(hp_store_ctr_lookup(s, "abc", &err) == NULL); /* a pod id, not a container */
    T_EQ_INT(err.code, HP_NOT_FOUND);
    hp_store_close(s);
    tmp_done(&t);
}

T_CASE(list_filters_and_label_selectors)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    char ids[4][65], cids[4][65];
    static const char *const names[] = {"p0", "p1", "p2", "p3"};
    static const char *const apps[] = {"web", "web", "db", ""};
    static const char *const tiers[] = {"front", "back", "back", "front"};
    tmp_init(&t);
    hp_store *s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);
    for (int i = 0; i < 4; i++) {
        hp_pod_rec p;
        char pre[32];
        snprintf(pre, sizeof pre, "%d%d", i, i);
        mkid(ids[i], pre);
        pod_fill(&p, ids[i], names[i], 0);
        p.created_at = 100 - i; /* newest inserted first in time order */
        p.state = i % 2 ? HP_POD_NOTREADY : HP_POD_READY;
        hp_strmap lab = {0};
        T_EQ_INT(hp_strmap_set(&lab, "app", apps[i], &err), 0);
        T_EQ_INT(hp_strmap_set(&lab, "tier", tiers[i], &err), 0);
        p.labels = lab;
        int rc = hp_store_pod_insert(s, &p, &err);
        hp_strmap_clear(&lab);
        T_EQ_INT(rc, 0);

        hp_ctr_rec c;
        snprintf(pre, sizeof pre, "c%d", i);
        mkid(cids[i], pre);
        ctr_fill(&c, cids[i], ids[i < 2 ? 0 : 2], names[i]);
        c.state = i;
        hp_strmap cl = {0};
        T_EQ_INT(hp_strmap_set(&cl, "tier", tiers[i], &err), 0);
        c.labels = cl;
        rc = hp_store_ctr_insert(s, &c, &err);
        hp_strmap_clear(&cl);
        T_EQ_INT(rc, 0);
    }

    hp_pod_rec *l = NULL;
    size_t n = 0;
    T_EQ_INT(hp_store_pod_list(s, NULL, &l, &n, &err), 0);
    T_EQ_INT(n, 4);
    T_EQ_STR(l[0].name, "p3"); /* ordered by created_at */
    T_EQ_STR(l[3].name, "p0");
    hp_pod_recs_free(l, n);

    hp_pod_filter f = {.has_state = true, .state = HP_POD_READY};
    T_EQ_INT(hp_store_pod_list(s, &f, &l, &n, &err), 0);
    T_EQ_INT(n, 2);
    T_EQ_STR(l[0].name, "p2");
    T_EQ_STR(l[1].name, "p0");
    hp_pod_recs_free(l, n);

    hp_strmap sel = {0};
    T_EQ_INT(hp_strmap_set(&sel, "app", "web", &err), 0);
    f = (hp_pod_filter){.labels = &sel};
    T_EQ_INT(hp_store_pod_list(s, &f, &l, &n, &err), 0);
    T_EQ_INT(n, 2);
    hp_pod_recs_free(l, n);
    T_EQ_INT(hp_strmap_set(&sel, "tier", "back", &err), 0); /* both must match */
    T_EQ_INT(hp_store_pod_list(s, &f, &l, &n, &err), 0);
    T_EQ_INT(n, 1);
    T_EQ_STR(l[0].name, "p1");
    hp_pod_recs_free(l, n);
    f.has_state = true;
    f.state = HP_POD_READY; /* p1 is NOTREADY */
    T_EQ_INT(hp_store_pod_list(s, &f, &l, &n, &err), 0);
    T_EQ_INT(n, 0);
    T_ASSERT(l == NULL);
    hp_strmap_clear(&sel);
    /* Empty value selects an empty label, not "any". */
    T_EQ_INT(hp_strmap_set(&sel, "app", "", &err), 0);
    f = (hp_pod_filter){.labels = &sel};
    T_EQ_INT(hp_store_pod_list(s, &f, &l, &n, &err), 0);
    T_EQ_INT(n, 1);
    T_EQ_STR(l[0].name, "p3");
    hp_pod_recs_free(l, n);
    hp_strmap_clear(&sel);
    /* Label that no pod has. */
    T_EQ_INT(hp_strmap_set(&sel, "nope", "web", &err), 0);
    T_EQ_INT(hp_store_pod_list(s, &f, &l, &n, &err), 0);
    T_EQ_INT(n, 0);
    hp_strmap_clear(&sel);

    f = (hp_pod_filter){.id_prefix = "22"};
    T_EQ_INT(hp_store_pod_list(s, &f, &l, &n, &err), 0);
    T_EQ_INT(n, 1);
    T_EQ_STR(l[0].id, ids[2]);
    hp_pod_recs_free(l, n);
    f = (hp_pod_filter){.id_prefix = "not-hex"};
    T_EQ_INT(hp_store_pod_list(s, &f, &l, &n, &err), 0);
    T_EQ_INT(n, 0);

    /* Containers: by pod, state, labels, id prefix. */
    hp_ctr_rec *cl = NULL;
    hp_ctr_filter cf = {.pod_id_prefix = ids[0]};
    T_EQ_INT(hp_store_ctr_list(s, &cf, &cl, &n, &err), 0);
    T_EQ_INT(n, 2);
    T_EQ_STR(cl[0].pod_id, ids[0]);
    T_EQ_STR(cl[1].pod_id, ids[0]);
    hp_ctr_recs_free(cl, n);
    cf = (hp_ctr_filter){.pod_id_prefix = "2"};
    T_EQ_INT(hp_store_ctr_list(s, &cf, &cl, &n, &err), 0);
    T_EQ_INT(n, 2);
    hp_ctr_recs_free(cl, n);
    cf = (hp_ctr_filter){.has_state = true, .state = HP_CTR_EXITED};
    T_EQ_INT(hp_store_ctr_list(s, &cf, &cl, &n, &err), 0);
    T_EQ_INT(n, 1);
    T_EQ_STR(cl[0].id, cids[2]);
    hp_ctr_recs_free(cl, n);
    T_EQ_INT(hp_strmap_set(&sel, "tier", "front", &err), 0);
    cf = (hp_ctr_filter){.labels = &sel, .pod_id_prefix = ids[2]};
    T_EQ_INT(hp_store_ctr_list(s, &cf, &cl, &n, &err), 0);
    T_EQ_INT(n, 1);
    T_EQ_STR(cl[0].id, cids[3]);
    hp_ctr_recs_free(cl, n);
    cf = (hp_ctr_filter){.labels = &sel, .id_prefix = "c0"};
    T_EQ_INT(hp_store_ctr_list(s, &cf, &cl, &n, &err), 0);
    T_EQ_INT(n, 1);
    T_EQ_STR(cl[0].name, "p0");
    hp_ctr_recs_free(cl, n);
    cf = (hp_ctr_filter){.labels = &sel, .id_prefix = "c1"};
    T_EQ_INT(hp_store_ctr_list(s, &cf, &cl, &n, &err), 0);
    T_EQ_INT(n, 0);
    hp_strmap_clear(&sel);
    hp_store_close(s);
    tmp_done(&t);
}

T_CASE(container_status_update)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    char pid[65], cid[65];
    hp_pod_rec p;
    hp_ctr_rec c;
    tmp_init(&t);
    hp_store *s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);
    T_EQ_INT(hp_store_new_id(pid, &err), 0);
    T_EQ_INT(hp_store_new_id(cid, &err), 0);
    pod_fill(&p, pid, "p", 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), 0);
    ctr_fill(&c, cid, pid, "app");
    c.image = (char *)"docker.io/library/busybox:latest";
    c.image_ref = (char *)"sha256:1111";
    c.log_path = (char *)"/var/log/pods/x/app/0.log";
    c.attempt = 2;
    T_EQ_INT(hp_store_ctr_insert(s, &c, &err), 0);

    hp_ctr_status st = {HP_CTR_EXITED, 111, 222, -9, "OOMKilled", "killed: out of memory ✗"};
    T_EQ_INT(hp_store_ctr_set_status(s, cid, &st, &err), 0);
    T_EQ_INT(hp_store_ctr_set_backend_state(s, cid, "{\"conmon\":7}", &err), 0);
    hp_ctr_rec *g = hp_store_ctr_get(s, cid, &err);
    T_ASSERT(g != NULL);
    T_EQ_INT(g->state, HP_CTR_EXITED);
    T_EQ_INT(g->started_at, 111);
    T_EQ_INT(g->finished_at, 222);
    T_EQ_INT(g->exit_code, -9);
    T_EQ_STR(g->reason, "OOMKilled");
    T_EQ_STR(g->message, "killed: out of memory ✗");
    T_EQ_STR(g->image, "docker.io/library/busybox:latest");
    T_EQ_STR(g->image_ref, "sha256:1111");
    T_EQ_STR(g->log_path, "/var/log/pods/x/app/0.log");
    T_EQ_STR(g->backend_state, "{\"conmon\":7}");
    T_EQ_INT(g->attempt, 2);
    T_EQ_INT(g->created_at, 2000);
    T_ASSERT(g->config == NULL);
    hp_ctr_rec_free(g);

    st = (hp_ctr_status){HP_CTR_RUNNING, 5, 0, 0, NULL, NULL};
    T_EQ_INT(hp_store_ctr_set_status(s, cid, &st, &err), 0);
    g = hp_store_ctr_get(s, cid, &err);
    T_ASSERT(g != NULL);
    T_EQ_INT(g->state, HP_CTR_RUNNING);
    T_EQ_STR(g->reason, "");
    T_EQ_INT(g->exit_code, 0);
    hp_ctr_rec_free(g);

    st.state = 9;
    T_EQ_INT(hp_store_ctr_set_status(s, cid, &st, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    st.state = HP_CTR_EXITED;
    T_EQ_INT(hp_store_ctr_set_status(s, pid, &st, &err), -1); /* a pod id */
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_EQ_INT(hp_store_ctr_delete(s, cid, &err), 0);
    T_EQ_INT(hp_store_ctr_delete(s, cid, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    hp_store_close(s);
    tmp_done(&t);
}

T_CASE(fk_restrict_and_pod_removal)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    char pid[65], other[65], c1[65], c2[65], c3[65];
    hp_pod_rec p;
    hp_ctr_rec c;
    tmp_init(&t);
    hp_store *s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);
    mkid(pid, "01");
    mkid(other, "02");
    mkid(c1, "c1");
    mkid(c2, "c2");
    mkid(c3, "c3");
    pod_fill(&p, pid, "p", 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), 0);
    pod_fill(&p, other, "q", 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), 0);
    ctr_fill(&c, c1, pid, "a");
    T_EQ_INT(hp_store_ctr_insert(s, &c, &err), 0);
    ctr_fill(&c, c2, pid, "b");
    T_EQ_INT(hp_store_ctr_insert(s, &c, &err), 0);
    ctr_fill(&c, c3, other, "a");
    T_EQ_INT(hp_store_ctr_insert(s, &c, &err), 0);

    T_EQ_INT(hp_store_pod_delete(s, pid, &err), -1);
    T_EQ_INT(err.code, HP_FAILED_PRECONDITION);
    if (!strstr(err.msg, "2 container"))
        T_FAIL("msg: %s", err.msg);
    T_ASSERT(strstr(err.msg, "2 container") != NULL);
    hp_pod_rec *g = hp_store_pod_get(s, pid, &err);
    T_ASSERT(g != NULL);
    hp_pod_rec_free(g);

    /* The restriction is in the schema, not only in the C code. */
    char *r = raw_query(t.db, "DELETE FROM pods WHERE id LIKE '01%'");
    int ok = r && strstr(r, "FOREIGN KEY") != NULL;
    if (!ok)
        T_FAIL("raw delete: %s", r);
    free(r);
    T_ASSERT(ok);

    size_t n = 99;
    T_EQ_INT(hp_store_pod_delete_with_containers(s, pid, &n, &err), 0);
    T_EQ_INT(n, 2);
    T_ASSERT(hp_store_pod_get(s, pid, &err) == NULL);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(hp_store_ctr_get(s, c1, &err) == NULL);
    T_ASSERT(hp_store_ctr_get(s, c2, &err) == NULL);
    hp_ctr_rec *cg = hp_store_ctr_get(s, c3, &err); /* the other pod's container stays */
    T_ASSERT(cg != NULL);
    hp_ctr_rec_free(cg);
    T_EQ_INT(hp_store_pod_delete_with_containers(s, pid, &n, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);

    T_EQ_INT(hp_store_ctr_delete(s, c3, &err), 0);
    T_EQ_INT(hp_store_pod_delete(s, other, &err), 0);
    T_EQ_INT(hp_store_pod_delete(s, other, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    hp_store_close(s);
    tmp_done(&t);
}

T_CASE(explicit_transactions)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    char pid[65], cid[65], pid2[65];
    hp_pod_rec p;
    hp_ctr_rec c;
    tmp_init(&t);
    hp_store *s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);
    mkid(pid, "01");
    mkid(cid, "c1");
    mkid(pid2, "02");

    /* Rolled back: nothing stays. */
    T_EQ_INT(hp_store_begin(s, &err), 0);
    pod_fill(&p, pid, "p", 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), 0);
    ctr_fill(&c, cid, pid, "a");
    T_EQ_INT(hp_store_ctr_insert(s, &c, &err), 0);
    hp_ctr_rec *cg = hp_store_ctr_get(s, cid, &err); /* visible inside */
    T_ASSERT(cg != NULL);
    hp_ctr_rec_free(cg);
    hp_store_rollback(s);
    T_ASSERT(hp_store_pod_get(s, pid, &err) == NULL);
    T_ASSERT(hp_store_ctr_get(s, cid, &err) == NULL);

    /* A failing call inside undoes only itself. */
    T_EQ_INT(hp_store_begin(s, &err), 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), -1);
    T_EQ_INT(err.code, HP_ALREADY_EXISTS);
    pod_fill(&p, pid2, "p2", 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), 0);
    T_EQ_INT(hp_store_commit(s, &err), 0);
    hp_pod_rec *l = NULL;
    size_t n = 0;
    T_EQ_INT(hp_store_pod_list(s, NULL, &l, &n, &err), 0);
    T_EQ_INT(n, 2);
    hp_pod_recs_free(l, n);

    /* Close with an open transaction rolls it back. */
    T_EQ_INT(hp_store_begin(s, &err), 0);
    T_EQ_INT(hp_store_pod_delete(s, pid2, &err), 0);
    hp_store_close(s);
    s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);
    hp_pod_rec *g = hp_store_pod_get(s, pid2, &err);
    T_ASSERT(g != NULL);
    hp_pod_rec_free(g);
    hp_store_close(s);
    tmp_done(&t);
}

/* ------------------------------------------------------------------------
 * Images.
 */

static void img_fill(hp_image_rec *im, const char *id)
{
    memset(im, 0, sizeof *im);
    im->id = (char *)id;
    im->size = 1234;
    im->created_at = 10;
}

#define IMG_A "sha256:aaaa000000000000000000000000000000000000000000000000000000000001"
#define IMG_B "sha256:aaab000000000000000000000000000000000000000000000000000000000002"
#define IMG_C "sha256:cccc000000000000000000000000000000000000000000000000000000000003"

T_CASE(image_tag_moves)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    hp_image_rec a, b;
    tmp_init(&t);
    hp_store *s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);

    img_fill(&a, IMG_A);
    hp_strlist tags = {0}, digs = {0};
    T_EQ_INT(hp_strlist_add(&tags, "docker.io/library/busybox:latest", &err), 0);
    T_EQ_INT(hp_strlist_add(&tags, "docker.io/library/busybox:1.36", &err), 0);
    T_EQ_INT(hp_strlist_add(&digs, "docker.io/library/busybox@sha256:d1", &err), 0);
    a.repo_tags = tags;
    a.repo_digests = digs;
    a.has_uid = true;
    a.uid = 0;
    a.pinned = true;
    a.config_json = (char *)"{\"architecture\":\"amd64\"}";
    T_EQ_INT(hp_store_image_upsert(s, &a, &err), 0);
    hp_strlist_clear(&tags);
    hp_strlist_clear(&digs);

    /* New image takes "latest"; A keeps 1.36 and its digest. */
    img_fill(&b, IMG_B);
    b.created_at = 20;
    b.username = (char *)"nobody";
    T_EQ_INT(hp_strlist_add(&tags, "docker.io/library/busybox:latest", &err), 0);
    T_EQ_INT(hp_strlist_add(&digs, "docker.io/library/busybox@sha256:d2", &err), 0);
    b.repo_tags = tags;
    b.repo_digests = digs;
    T_EQ_INT(hp_store_image_upsert(s, &b, &err), 0);
    hp_strlist_clear(&tags);
    hp_strlist_clear(&digs);

    hp_image_rec *g = hp_store_image_get(s, IMG_A, &err);
    T_ASSERT(g != NULL);
    T_EQ_INT(g->repo_tags.n, 1);
    T_EQ_STR(g->repo_tags.items[0], "docker.io/library/busybox:1.36");
    T_EQ_INT(g->repo_digests.n, 1);
    T_EQ_STR(g->repo_digests.items[0], "docker.io/library/busybox@sha256:d1");
    T_ASSERT(g->has_uid && g->uid == 0);
    T_ASSERT(g->pinned);
    T_EQ_STR(g->config_json, "{\"architecture\":\"amd64\"}");
    T_EQ_INT(g->size, 1234);
    hp_image_rec_free(g);

    g = hp_store_image_lookup(s, "docker.io/library/busybox:latest", &err);
    T_ASSERT(g != NULL);
    T_EQ_STR(g->id, IMG_B);
    T_ASSERT(!g->has_uid);
    T_EQ_STR(g->username, "nobody");
    T_ASSERT(!g->pinned);
    T_ASSERT(g->config_json == NULL);
    hp_image_rec_free(g);
    g = hp_store_image_lookup(s, "docker.io/library/busybox@sha256:d1", &err);
    T_ASSERT(g != NULL);
    T_EQ_STR(g->id, IMG_A);
    hp_image_rec_free(g);
    g = hp_store_image_lookup(s, "aaaa", &err);
    T_ASSERT(g != NULL);
    T_EQ_STR(g->id, IMG_A);
    hp_image_rec_free(g);
    g = hp_store_image_lookup(s, "sha256:aaab", &err);
    T_ASSERT(g != NULL);
    T_EQ_STR(g->id, IMG_B);
    hp_image_rec_free(g);
    g = hp_store_image_lookup(s, IMG_B, &err);
    T_ASSERT(g != NULL);
    hp_image_rec_free(g);
    T_ASSERT(hp_store_image_lookup(s, "aaa", &err) == NULL);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    T_ASSERT(strstr(err.msg, IMG_A) != NULL && strstr(err.msg, IMG_B) != NULL);
    T_ASSERT(hp_store_image_lookup(s, "docker.io/library/alpine:latest", &err) == NULL);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(hp_store_image_lookup(s, "sha256:ffff", &err) == NULL);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(hp_store_image_get(s, "aaaa", &err) == NULL); /* get is exact */
    T_EQ_INT(err.code, HP_NOT_FOUND);

    /* Re-pulling A under a new tag adds it and moves 1.36 nowhere. */
    img_fill(&a, IMG_A);
    T_EQ_INT(hp_strlist_add(&tags, "registry.local/bb:v1", &err), 0);
    a.repo_tags = tags;
    T_EQ_INT(hp_store_image_upsert(s, &a, &err), 0);
    hp_strlist_clear(&tags);
    g = hp_store_image_get(s, IMG_A, &err);
    T_ASSERT(g != NULL);
    T_EQ_INT(g->repo_tags.n, 2);
    T_ASSERT(hp_strlist_contains(&g->repo_tags, "docker.io/library/busybox:1.36"));
    T_ASSERT(hp_strlist_contains(&g->repo_tags, "registry.local/bb:v1"));
    T_ASSERT(!g->pinned); /* scalar fields replaced */
    hp_image_rec_free(g);

    /* Untag: image stays without the tag. */
    T_EQ_INT(hp_store_image_untag(s, "docker.io/library/busybox:1.36", &err), 0);
    T_EQ_INT(hp_store_image_untag(s, "registry.local/bb:v1", &err), 0);
    T_EQ_INT(hp_store_image_untag(s, "docker.io/library/busybox@sha256:d1", &err), 0);
    T_EQ_INT(hp_store_image_untag(s, "registry.local/bb:v1", &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    g = hp_store_image_get(s, IMG_A, &err);
    T_ASSERT(g != NULL);
    T_EQ_INT(g->repo_tags.n, 0);
    T_EQ_INT(g->repo_digests.n, 0);
    hp_image_rec_free(g);

    hp_image_rec *l = NULL;
    size_t n = 0;
    T_EQ_INT(hp_store_image_list(s, &l, &n, &err), 0);
    T_EQ_INT(n, 2);
    T_EQ_STR(l[0].id, IMG_A);
    T_EQ_STR(l[1].id, IMG_B);
    T_EQ_INT(l[1].repo_tags.n, 1);
    hp_image_recs_free(l, n);

    T_EQ_INT(hp_store_image_delete(s, IMG_A, &err), 0);
    T_EQ_INT(hp_store_image_delete(s, IMG_A, &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_EQ_INT(hp_store_image_list(s, &l, &n, &err), 0);
    T_EQ_INT(n, 1);
    hp_image_recs_free(l, n);

    /* Empty tag refused. */
    img_fill(&a, IMG_C);
    T_EQ_INT(hp_strlist_add(&tags, "", &err), 0);
    a.repo_tags = tags;
    T_EQ_INT(hp_store_image_upsert(s, &a, &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    hp_strlist_clear(&tags);
    T_ASSERT(hp_store_image_get(s, IMG_C, &err) == NULL);
    hp_store_close(s);
    tmp_done(&t);
}

static void layers_fill(hp_layer_rec *l, const char *digest, const char *diff, int64_t size)
{
    memset(l, 0, sizeof *l);
    l->digest = (char *)digest;
    l->diff_id = (char *)diff;
    l->size = size;
}

/* Is digest in the unreferenced list?  Returns 1 + diff_id_in_use, or 0. */
static int unref_has(const hp_layer_rec *l, size_t n, const char *digest)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].digest, digest) == 0)
            return 1 + l[i].diff_id_in_use;
    return 0;
}

T_CASE(unreferenced_layers_and_users)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    hp_image_rec im;
    hp_layer_rec la[2], lb[2], lc[1];
    tmp_init(&t);
    hp_store *s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);

    layers_fill(&la[0], "sha256:L1", "sha256:D1", 10);
    layers_fill(&la[1], "sha256:L2", "sha256:D2", 20);
    layers_fill(&lb[0], "sha256:L2", "sha256:D2", 20);
    layers_fill(&lb[1], "sha256:L3", "sha256:D3", 30);
    /* Same content (diff_id D1) recompressed as another blob. */
    layers_fill(&lc[0], "sha256:L1b", "sha256:D1", 11);

    img_fill(&im, IMG_A);
    im.layers = la;
    im.n_layers = 2;
    T_EQ_INT(hp_store_image_upsert(s, &im, &err), 0);
    img_fill(&im, IMG_B);
    im.layers = lb;
    im.n_layers = 2;
    T_EQ_INT(hp_store_image_upsert(s, &im, &err), 0);
    img_fill(&im, IMG_C);
    im.layers = lc;
    im.n_layers = 1;
    T_EQ_INT(hp_store_image_upsert(s, &im, &err), 0);

    hp_image_rec *g = hp_store_image_get(s, IMG_B, &err);
    T_ASSERT(g != NULL);
    T_EQ_INT(g->n_layers, 2);
    T_EQ_STR(g->layers[0].digest, "sha256:L2"); /* order kept */
    T_EQ_STR(g->layers[1].diff_id, "sha256:D3");
    T_EQ_INT(g->layers[1].size, 30);
    hp_image_rec_free(g);

    hp_layer_rec *u = NULL;
    size_t n = 9;
    T_EQ_INT(hp_store_layers_unreferenced(s, &u, &n, &err), 0);
    T_EQ_INT(n, 0);

    T_EQ_INT(hp_store_image_delete(s, IMG_A, &err), 0);
    T_EQ_INT(hp_store_layers_unreferenced(s, &u, &n, &err), 0);
    T_EQ_INT(n, 1);
    T_EQ_INT(unref_has(u, n, "sha256:L1"), 2); /* D1 still unpacked for image C */
    hp_layer_recs_free(u, n);

    T_EQ_INT(hp_store_image_delete(s, IMG_C, &err), 0);
    T_EQ_INT(hp_store_layers_unreferenced(s, &u, &n, &err), 0);
    T_EQ_INT(n, 2);
    T_EQ_INT(unref_has(u, n, "sha256:L1"), 1);
    T_EQ_INT(unref_has(u, n, "sha256:L1b"), 1);
    T_EQ_INT(unref_has(u, n, "sha256:L2"), 0);
    hp_layer_recs_free(u, n);

    /* Deleting a referenced layer is refused; unreferenced ones go. */
    T_EQ_INT(hp_store_layer_delete(s, "sha256:L2", &err), -1);
    T_EQ_INT(err.code, HP_FAILED_PRECONDITION);
    T_ASSERT(strstr(err.msg, "still used by an image") != NULL);
    T_EQ_INT(hp_store_layer_delete(s, "sha256:L1", &err), 0);
    T_EQ_INT(hp_store_layer_delete(s, "sha256:L1", &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);

    /* Re-pulling an image re-references a known layer. */
    img_fill(&im, IMG_C);
    im.layers = lc;
    im.n_layers = 1;
    T_EQ_INT(hp_store_image_upsert(s, &im, &err), 0);
    T_EQ_INT(hp_store_layers_unreferenced(s, &u, &n, &err), 0);
    T_EQ_INT(n, 0);

    /* Image users: containers whose image_ref is the image id. */
    char pid[65], cid[65];
    hp_pod_rec p;
    hp_ctr_rec c;
    size_t users = 9;
    T_EQ_INT(hp_store_image_users(s, IMG_B, &users, &err), 0);
    T_EQ_INT(users, 0);
    mkid(pid, "01");
    mkid(cid, "c1");
    pod_fill(&p, pid, "p", 0);
    T_EQ_INT(hp_store_pod_insert(s, &p, &err), 0);
    ctr_fill(&c, cid, pid, "a");
    c.image_ref = (char *)IMG_B;
    T_EQ_INT(hp_store_ctr_insert(s, &c, &err), 0);
    T_EQ_INT(hp_store_image_users(s, IMG_B, &users, &err), 0);
    T_EQ_INT(users, 1);
    T_EQ_INT(hp_store_image_users(s, IMG_C, &users, &err), 0);
    T_EQ_INT(users, 0);
    hp_store_close(s);
    tmp_done(&t);
}

T_CASE(kv_settings)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    tmp_init(&t);
    hp_store *s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);
    T_ASSERT(hp_store_kv_get(s, "pod_cidr", &err) == NULL);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_EQ_INT(hp_store_kv_set(s, "pod_cidr", "10.88.0.0/16", &err), 0);
    T_EQ_INT(hp_store_kv_set(s, "empty", "", &err), 0);
    T_EQ_INT(hp_store_kv_set(s, "", "x", &err), -1);
    T_EQ_INT(err.code, HP_INVALID_ARGUMENT);
    hp_store_close(s);
    s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);
    char *v = hp_store_kv_get(s, "pod_cidr", &err);
    T_ASSERT(v != NULL);
    int ok = strcmp(v, "10.88.0.0/16") == 0;
    free(v);
    T_ASSERT(ok);
    T_EQ_INT(hp_store_kv_set(s, "pod_cidr", "10.99.0.0/16", &err), 0);
    v = hp_store_kv_get(s, "pod_cidr", &err);
    ok = v && strcmp(v, "10.99.0.0/16") == 0;
    free(v);
    T_ASSERT(ok);
    v = hp_store_kv_get(s, "empty", &err);
    ok = v && v[0] == '\0';
    free(v);
    T_ASSERT(ok);
    T_EQ_INT(hp_store_kv_delete(s, "pod_cidr", &err), 0);
    T_EQ_INT(hp_store_kv_delete(s, "pod_cidr", &err), -1);
    T_EQ_INT(err.code, HP_NOT_FOUND);
    T_ASSERT(hp_store_kv_get(s, "pod_cidr", &err) == NULL);
    hp_store_close(s);
    tmp_done(&t);
}

/* ------------------------------------------------------------------------
 * Concurrency and crash safety.
 */

#define CTRS_PER_POD 5

/* Insert one pod with CTRS_PER_POD containers, all set RUNNING, in one
 * transaction.  The pod carries label n=<CTRS_PER_POD> so a reader can
 * check completeness. */
static int insert_pod_group(hp_store *s, const char *name, hp_err *err)
{
    hp_pod_rec p;
    hp_ctr_rec c;
    char pid[65], cid[65], cname[32];
    hp_strmap lab = {0};
    int rc = -1;
    if (hp_store_new_id(pid, err) < 0)
        return -1;
    pod_fill(&p, pid, name, 0);
    p.state = HP_POD_NOTREADY;
    if (hp_strmap_set(&lab, "n", "5", err) < 0)
        return -1;
    p.labels = lab;
    if (hp_store_begin(s, err) < 0)
        goto out;
    if (hp_store_pod_insert(s, &p, err) < 0)
        goto fail;
    for (int i = 0; i < CTRS_PER_POD; i++) {
        if (hp_store_new_id(cid, err) < 0)
            goto fail;
        snprintf(cname, sizeof cname, "c%d", i);
        ctr_fill(&c, cid, pid, cname);
        if (hp_store_ctr_insert(s, &c, err) < 0)
            goto fail;
        hp_ctr_status st = {HP_CTR_RUNNING, 1, 0, 0, "Started", ""};
        if (hp_store_ctr_set_status(s, cid, &st, err) < 0)
            goto fail;
    }
    if (hp_store_pod_set_state(s, pid, HP_POD_READY, err) < 0)
        goto fail;
    rc = hp_store_commit(s, err);
    goto out;
fail:
    hp_store_rollback(s);
out:
    hp_strmap_clear(&lab);
    return rc;
}

struct thr_arg {
    hp_store *s;
    int idx;
    int failures;
};

static void *thr_main(void *argp)
{
    struct thr_arg *a = argp;
    hp_err err = HP_ERR_INIT;
    char name[32];
    for (int i = 0; i < 25; i++) {
        snprintf(name, sizeof name, "t%d-%d", a->idx, i);
        if (insert_pod_group(a->s, name, &err) < 0) {
            fprintf(stderr, "thread %d: %s\n", a->idx, err.msg);
            a->failures++;
        }
        hp_pod_rec *l = NULL;
        size_t n = 0;
        if (hp_store_pod_list(a->s, NULL, &l, &n, &err) < 0)
            a->failures++;
        hp_pod_recs_free(l, n);
    }
    return NULL;
}

/* Check the crash invariants: every container's pod exists, every pod is
 * READY with exactly CTRS_PER_POD RUNNING containers.  Returns the number
 * of pods, or -1 with a message on stderr. */
static long check_invariants(hp_store *s)
{
    hp_err err = HP_ERR_INIT;
    hp_pod_rec *pods = NULL;
    hp_ctr_rec *ctrs = NULL;
    size_t np = 0, nc = 0;
    long rc = -1;
    if (hp_store_pod_list(s, NULL, &pods, &np, &err) < 0 ||
        hp_store_ctr_list(s, NULL, &ctrs, &nc, &err) < 0) {
        fprintf(stderr, "list: %s\n", err.msg);
        goto out;
    }
    if (nc != np * CTRS_PER_POD) {
        fprintf(stderr, "%zu pods but %zu containers\n", np, nc);
        goto out;
    }
    for (size_t i = 0; i < np; i++) {
        hp_ctr_filter f = {.pod_id_prefix = pods[i].id};
        hp_ctr_rec *mine = NULL;
        size_t nm = 0;
        if (pods[i].state != HP_POD_READY || !hp_strmap_get(&pods[i].labels, "n")) {
            fprintf(stderr, "pod %s half-written\n", pods[i].id);
            goto out;
        }
        if (hp_store_ctr_list(s, &f, &mine, &nm, &err) < 0)
            goto out;
        bool bad = nm != CTRS_PER_POD;
        for (size_t j = 0; j < nm; j++)
            bad |= mine[j].state != HP_CTR_RUNNING;
        hp_ctr_recs_free(mine, nm);
        if (bad) {
            fprintf(stderr, "pod %s has %zu containers (or one not RUNNING)\n", pods[i].id, nm);
            goto out;
        }
    }
    for (size_t i = 0; i < nc; i++) {
        hp_pod_rec *p = hp_store_pod_get(s, ctrs[i].pod_id, &err);
        if (!p) {
            fprintf(stderr, "container %s: %s\n", ctrs[i].id, err.msg);
            goto out;
        }
        hp_pod_rec_free(p);
    }
    rc = (long)np;
out:
    hp_pod_recs_free(pods, np);
    hp_ctr_recs_free(ctrs, nc);
    return rc;
}

T_CASE(threads_share_one_store)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    pthread_t th[4];
    struct thr_arg args[4];
    tmp_init(&t);
    hp_store *s = hp_store_open(t.db, &err);
    T_ASSERT(s != NULL);
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thr_arg){s, i, 0};
        T_ASSERT(pthread_create(&th[i], NULL, thr_main, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        T_EQ_INT(args[i].failures, 0);
    }
    T_EQ_INT(check_invariants(s), 100);
    hp_store_close(s);
    tmp_done(&t);
}

/* Child: insert pod groups forever (plus some deletions), one transaction
 * each; tell the parent through fd once the store is open. */
static void crash_child(const char *db, int fd)
{
    hp_err err = HP_ERR_INIT;
    hp_store *s = hp_store_open(db, &err);
    if (!s) {
        fprintf(stderr, "child open: %s\n", err.msg);
        _exit(3);
    }
    if (write(fd, "x", 1) != 1)
        _exit(4);
    for (unsigned i = 0;; i++) {
        char name[32];
        snprintf(name, sizeof name, "pod-%d-%u", (int)getpid(), i);
        if (insert_pod_group(s, name, &err) < 0) {
            fprintf(stderr, "child insert: %s\n", err.msg);
            _exit(5);
        }
        if (i % 7 == 3) { /* remove the oldest pod with its containers */
            hp_pod_rec *l = NULL;
            size_t n = 0;
            if (hp_store_pod_list(s, NULL, &l, &n, &err) < 0 || n == 0 ||
                hp_store_pod_delete_with_containers(s, l[0].id, NULL, &err) < 0) {
                fprintf(stderr, "child delete: %s\n", err.msg);
                _exit(6);
            }
            hp_pod_recs_free(l, n);
        }
    }
}

T_CASE(crash_safety_sigkill)
{
    struct tmp t;
    hp_err err = HP_ERR_INIT;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    long pods = 0, before = 0;
    tmp_init(&t);
    printf("# crash test seed %u\n", seed);
    srand(seed);
    for (int round = 0; round < 10; round++) {
        int pfd[2];
        char c;
        T_ASSERT(pipe(pfd) == 0);
        fflush(NULL);
        pid_t pid = fork();
        T_ASSERT(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            crash_child(t.db, pfd[1]);
        }
        close(pfd[1]);
        ssize_t r = read(pfd[0], &c, 1);
        close(pfd[0]);
        if (r != 1) {
            int st;
            waitpid(pid, &st, 0);
            T_FAIL("child did not open the store (status %d)", st);
            return;
        }
        struct timespec ts = {0, (20 + rand() % 181) * 1000000L};
        nanosleep(&ts, NULL);
        T_ASSERT(kill(pid, SIGKILL) == 0);
        int st = 0;
        T_ASSERT(waitpid(pid, &st, 0) == pid);
        if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
            T_FAIL("child ended on its own (status %#x) in round %d", st, round);
        T_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

        char *ic = raw_query(t.db, "PRAGMA integrity_check");
        char *fk = raw_query(t.db, "PRAGMA foreign_key_check");
        int ok = ic && strcmp(ic, "ok") == 0 && fk && fk[0] == '\0';
        if (!ok)
            T_FAIL("round %d: integrity_check=%s foreign_key_check=%s", round, ic, fk);
        free(ic);
        free(fk);
        T_ASSERT(ok);

        hp_store *s = hp_store_open(t.db, &err);
        if (!s)
            T_FAIL("reopen: %s", err.msg);
        T_ASSERT(s != NULL);
        pods = check_invariants(s);
        hp_store_close(s);
        if (pods < 0)
            T_FAIL("invariants broken after round %d", round);
        T_ASSERT(pods >= 0);
        before = pods;
    }
    printf("# crash test: %ld complete pods after 10 SIGKILLs\n", before);
    T_ASSERT(pods > 0); /* the children did commit work */
    tmp_done(&t);
}

T_MAIN()
