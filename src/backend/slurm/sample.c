/* Resource samples of a container step (see sample.h). */
#include "backend/slurm/sample.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

/* Read a small file into buf (NUL-terminated); 0 or -1. */
static int slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    return n > 0 ? 0 : -1;
}

/* Value of "key N" in a memory.stat / cpu.stat text; false when absent. */
static bool stat_field(const char *text, const char *key, uint64_t *v)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ') {
            *v = strtoull(p + kl + 1, NULL, 10);
            return true;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

/* The cgroup path of controller `ctl` (v1; "" = the v2 line) from a
 * /proc/self/cgroup text into buf; 0 or -1. */
static int own_path(const char *self, const char *ctl, char *buf, size_t cap)
{
    size_t cl = strlen(ctl);
    for (const char *line = self; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        const char *c1 = memchr(line, ':', ll);
        const char *c2 = c1 ? memchr(c1 + 1, ':', ll - (size_t)(c1 + 1 - line)) : NULL;
        if (c2) {
            bool match = false;
            if (cl == 0)
                match = c2 == c1 + 1;
            else
                for (const char *t = c1 + 1; t < c2;) {
                    const char *te = memchr(t, ',', (size_t)(c2 - t));
                    if (!te)
                        te = c2;
                    if ((size_t)(te - t) == cl && memcmp(t, ctl, cl) == 0)
                        match = true;
                    t = te + 1;
                }
            size_t pl = ll - (size_t)(c2 + 1 - line);
            if (match && pl < cap) {
                memcpy(buf, c2 + 1, pl);
                buf[pl] = '\0';
                return 0;
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    return -1;
}

/* <root>/<mnt><own>/<child>/<file> into buf; 0 or -1 when too long. */
static int cg_file(char *buf, size_t cap, const char *root, const char *mnt, const char *own,
                   const char *child, const char *file)
{
    if (strcmp(own, "/") == 0)
        own = "";
    int n = snprintf(buf, cap, "%s%s%s%s/%s/%s", root, *mnt ? "/" : "", mnt, own, child, file);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int hp_step_sample_cgroup(const char *self, const char *root, const char *child, hp_step_sample *s)
{
    char cpu_own[2048], mem_own[2048], p[4096], txt[8192];
    if (!child || !*child || strchr(child, '/'))
        return -1;
    if (own_path(self, "cpuacct", cpu_own, sizeof cpu_own) == 0 &&
        own_path(self, "memory", mem_own, sizeof mem_own) == 0) {
        /* cgroup v1 */
        if (cg_file(p, sizeof p, root, "cpuacct", cpu_own, child, "cpuacct.usage") < 0 ||
            slurp(p, txt, sizeof txt) < 0)
            return -1;
        uint64_t cpu = strtoull(txt, NULL, 10);
        if (cg_file(p, sizeof p, root, "memory", mem_own, child, "memory.usage_in_bytes") < 0 ||
            slurp(p, txt, sizeof txt) < 0)
            return -1;
        uint64_t usage = strtoull(txt, NULL, 10), inactive = 0, rss = 0;
        if (cg_file(p, sizeof p, root, "memory", mem_own, child, "memory.stat") < 0 ||
            slurp(p, txt, sizeof txt) < 0)
            return -1;
        stat_field(txt, "total_inactive_file", &inactive);
        stat_field(txt, "total_rss", &rss);
        s->has_cpu = s->has_mem = true;
        s->cpu_ns = cpu;
        s->mem_usage = usage;
        s->mem_ws = usage > inactive ? usage - inactive : 0;
        s->mem_rss = rss;
        snprintf(s->src, sizeof s->src, "cgroup");
        return 0;
    }
    if (own_path(self, "", cpu_own, sizeof cpu_own) < 0)
        return -1;
    /* cgroup v2: unified at the root, or at <root>/unified on hybrid hosts */
    const char *mnt = "";
    if (snprintf(p, sizeof p, "%s/cgroup.controllers", root) >= (int)sizeof p)
        return -1;
    if (access(p, F_OK) < 0)
        mnt = "unified";
    uint64_t usec = 0, usage = 0, inactive = 0, anon = 0;
    if (cg_file(p, sizeof p, root, mnt, cpu_own, child, "cpu.stat") < 0 ||
        slurp(p, txt, sizeof txt) < 0 || !stat_field(txt, "usage_usec", &usec))
        return -1;
    if (cg_file(p, sizeof p, root, mnt, cpu_own, child, "memory.current") < 0 ||
        slurp(p, txt, sizeof txt) < 0)
        return -1;
    usage = strtoull(txt, NULL, 10);
    if (cg_file(p, sizeof p, root, mnt, cpu_own, child, "memory.stat") < 0 ||
        slurp(p, txt, sizeof txt) < 0)
        return -1;
    stat_field(txt, "inactive_file", &inactive);
    stat_field(txt, "anon", &anon);
    s->has_cpu = s->has_mem = true;
    s->cpu_ns = usec * 1000;
    s->mem_usage = usage;
    s->mem_ws = usage > inactive ? usage - inactive : 0;
    s->mem_rss = anon;
    snprintf(s->src, sizeof s->src, "cgroup");
    return 0;
}

/* ---------- /proc ---------- */

typedef struct pinfo {
    pid_t pid, ppid;
    uint64_t ticks, rss_pages;
    bool in_tree;
} pinfo;

static int read_pinfo(const char *proc_root, pid_t pid, pinfo *pi)
{
    char p[512], buf[1024];
    snprintf(p, sizeof p, "%s/%d/stat", proc_root, (int)pid);
    if (slurp(p, buf, sizeof buf) < 0)
        return -1;
    const char *rp = strrchr(buf, ')');
    if (!rp || rp[1] != ' ')
        return -1;
    /* fields after the name: 3 state, 4 ppid, ... 14 utime, 15 stime,
     * 16 cutime, 17 cstime, ... 24 rss (pages) */
    long long f[25] = {0};
    char state = rp[2];
    const char *q = rp + 2;
    for (int i = 3; i <= 24 && *q; i++) {
        if (i > 3)
            f[i] = strtoll(q, NULL, 10);
        q = strchr(q, ' ');
        if (!q) {
            if (i < 24)
                return -1;
            break;
        }
        q++;
    }
    pi->pid = pid;
    pi->ppid = (pid_t)f[4];
    long long t = f[14] + f[15] + f[16] + f[17];
    pi->ticks = t > 0 ? (uint64_t)t : 0;
    pi->rss_pages = (state == 'Z' || f[24] < 0) ? 0 : (uint64_t)f[24];
    pi->in_tree = false;
    return 0;
}

/* Every process of proc_root; malloc'd array owned by the caller (free),
 * count in *n; NULL on failure. */
static pinfo *all_procs(const char *proc_root, size_t *n)
{
    DIR *d = opendir(proc_root);
    if (!d)
        return NULL;
    pinfo *all = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long v = strtol(de->d_name, &end, 10);
        if (*end || v <= 0)
            continue;
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 256;
            pinfo *na = realloc(all, nc * sizeof *na);
            if (!na)
                break;
            all = na;
            cap = nc;
        }
        if (read_pinfo(proc_root, (pid_t)v, &all[cnt]) == 0)
            cnt++;
    }
    closedir(d);
    if (!all)
        all = malloc(sizeof *all);
    *n = cnt;
    return all;
}

/* Mark the descendants of root in all[]; returns how many. */
static size_t mark_tree(pinfo *all, size_t n, pid_t root)
{
    size_t found = 0;
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < n; i++) {
            if (all[i].in_tree || all[i].pid == root)
                continue;
            bool in = all[i].ppid == root;
            for (size_t j = 0; !in && j < n; j++)
                in = all[j].in_tree && all[j].pid == all[i].ppid;
            if (in) {
                all[i].in_tree = true;
                found++;
                changed = true;
            }
        }
    }
    return found;
}

int hp_step_sample_proc(const char *proc_root, pid_t root, bool with_root, hp_step_sample *s)
{
    size_t n = 0;
    pinfo *all = all_procs(proc_root, &n);
    if (!all)
        return -1;
    size_t found = mark_tree(all, n, root);
    for (size_t i = 0; with_root && i < n; i++)
        if (all[i].pid == root) {
            all[i].in_tree = true;
            found++;
        }
    uint64_t ticks = 0, pages = 0;
    for (size_t i = 0; i < n; i++)
        if (all[i].in_tree) {
            ticks += all[i].ticks;
            pages += all[i].rss_pages;
        }
    free(all);
    if (found == 0)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    long pg = sysconf(_SC_PAGESIZE);
    s->has_cpu = s->has_mem = true;
    s->cpu_ns = ticks * (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
    s->mem_rss = pages * (uint64_t)(pg > 0 ? pg : 4096);
    s->mem_ws = s->mem_usage = s->mem_rss;
    snprintf(s->src, sizeof s->src, "proc");
    return 0;
}

pid_t hp_step_container_pid(const char *proc_root, pid_t root)
{
    char p[512], own[128], other[128];
    snprintf(p, sizeof p, "%s/%d/ns/mnt", proc_root, (int)root);
    ssize_t ol = readlink(p, own, sizeof own - 1);
    if (ol <= 0)
        return 0;
    own[ol] = '\0';
    size_t n = 0;
    pinfo *all = all_procs(proc_root, &n);
    if (!all)
        return 0;
    mark_tree(all, n, root);
    pid_t best = 0;
    for (size_t i = 0; i < n && !best; i++) {
        if (!all[i].in_tree)
            continue;
        snprintf(p, sizeof p, "%s/%d/ns/mnt", proc_root, (int)all[i].pid);
        ssize_t l = readlink(p, other, sizeof other - 1);
        if (l <= 0)
            continue;
        other[l] = '\0';
        if (strcmp(own, other) != 0)
            best = all[i].pid;
    }
    free(all);
    return best;
}

void hp_step_sample_writable(const char *proc_root, pid_t pid, hp_step_sample *s)
{
    static const char *const dirs[] = {"tmp", "run", "var/tmp"};
    if (pid <= 0)
        return;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%d/root/%s", proc_root, (int)pid, dirs[i]);
        struct statfs fs;
        if (statfs(p, &fs) < 0 || (unsigned long)fs.f_type != (unsigned long)TMPFS_MAGIC)
            continue;
        s->has_wl = true;
        s->wl_bytes += (uint64_t)(fs.f_blocks - fs.f_bfree) * (uint64_t)fs.f_bsize;
        s->wl_inodes += (uint64_t)(fs.f_files - fs.f_ffree);
    }
}

/* ---------- the stats file ---------- */

size_t hp_step_sample_format(const hp_step_sample *s, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "ts=%lld", (long long)s->ts_ns);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    size_t len = (size_t)n;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        int w = snprintf(buf + len, cap - len, __VA_ARGS__);                                       \
        if (w < 0 || (size_t)w >= cap - len)                                                       \
            return 0;                                                                              \
        len += (size_t)w;                                                                          \
    } while (0)
    if (s->has_cpu)
        ADD(" cpu_ns=%llu", (unsigned long long)s->cpu_ns);
    if (s->has_mem)
        ADD(" mem_ws=%llu mem_rss=%llu mem_usage=%llu", (unsigned long long)s->mem_ws,
            (unsigned long long)s->mem_rss, (unsigned long long)s->mem_usage);
    if (s->has_wl)
        ADD(" wl_bytes=%llu wl_inodes=%llu", (unsigned long long)s->wl_bytes,
            (unsigned long long)s->wl_inodes);
    if (s->src[0])
        ADD(" src=%s", s->src);
    ADD("\n");
#undef ADD
    return len;
}

int hp_step_sample_parse(const char *text, hp_step_sample *s)
{
    memset(s, 0, sizeof *s);
    bool ts = false;
    for (const char *p = text; *p;) {
        while (*p == ' ' || *p == '\n')
            p++;
        const char *eq = strchr(p, '=');
        if (!*p || !eq)
            break;
        size_t kl = (size_t)(eq - p);
        const char *v = eq + 1;
        size_t vl = strcspn(v, " \n");
        char *end;
        unsigned long long u = strtoull(v, &end, 10);
        bool num = end == v + vl && vl > 0;
#define KEY(k) (kl == sizeof(k) - 1 && memcmp(p, k, kl) == 0)
        if (KEY("ts") && num) {
            s->ts_ns = (int64_t)u;
            ts = true;
        } else if (KEY("cpu_ns") && num) {
            s->has_cpu = true;
            s->cpu_ns = u;
        } else if (KEY("mem_ws") && num) {
            s->has_mem = true;
            s->mem_ws = u;
        } else if (KEY("mem_rss") && num) {
            s->mem_rss = u;
        } else if (KEY("mem_usage") && num) {
            s->mem_usage = u;
        } else if (KEY("wl_bytes") && num) {
            s->has_wl = true;
            s->wl_bytes = u;
        } else if (KEY("wl_inodes") && num) {
            s->wl_inodes = u;
        } else if (KEY("src") && vl < sizeof s->src) {
            memcpy(s->src, v, vl);
            s->src[vl] = '\0';
        }
#undef KEY
        p = v + vl;
    }
    return ts ? 0 : -1;
}
