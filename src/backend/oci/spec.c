/* OCI runtime-spec generation: see spec.h and docs/oci-backend.md. */
#include "backend/oci/spec.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "util/cleanup.h"
#include "util/log.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ---------- small JSON helpers ---------- */

static json_t *jstrarr(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i] ? v[i] : ""));
    return a;
}

static json_t *jmount(const char *dest, const char *type, const char *src, const char *const *opts)
{
    json_t *m = json_pack("{s:s, s:s, s:s}", "destination", dest, "type", type, "source", src);
    json_t *o = json_array();
    for (size_t i = 0; opts && opts[i]; i++)
        json_array_append_new(o, json_string(opts[i]));
    json_object_set_new(m, "options", o);
    return m;
}

/* ---------- image config ---------- */

static int json_strv(json_t *j, const char *what, char ***out, size_t *n, hp_err *err)
{
    *out = NULL;
    *n = 0;
    if (!j || json_is_null(j))
        return 0;
    if (!json_is_array(j))
        return hp_err_set(err, HP_INVALID_ARGUMENT, "image config: %s is not an array", what);
    size_t cnt = json_array_size(j);
    char **v = calloc(cnt + 1, sizeof(char *));
    if (!v)
        return hp_err_set(err, HP_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        json_t *e = json_array_get(j, i);
        if (!json_is_string(e)) {
            for (size_t k = 0; k < i; k++)
                free(v[k]);
            free(v);
            return hp_err_set(err, HP_INVALID_ARGUMENT, "image config: %s[%zu] is not a string",
                              what, i);
        }
        v[i] = strdup(json_string_value(e));
    }
    *out = v;
    *n = cnt;
    return 0;
}

static char *json_strdup_member(json_t *o, const char *key)
{
    json_t *j = json_object_get(o, key);
    return json_is_string(j) ? strdup(json_string_value(j)) : NULL;
}

int hp_oci_image_config_parse(const char *json_text, hp_oci_image_config *out, hp_err *err)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *root = json_loads(json_text, 0, &je);
    if (!root)
        return hp_err_set(err, HP_INVALID_ARGUMENT, "image config: invalid JSON at line %d: %s",
                          je.line, je.text);
    json_t *c = json_object_get(root, "config");
    if (!c)
        c = root;
    if (!json_is_object(c)) {
        json_decref(root);
        return hp_err_set(err, HP_INVALID_ARGUMENT, "image config: \"config\" is not an object");
    }
    if (json_strv(json_object_get(c, "Entrypoint"), "Entrypoint", &out->entrypoint,
                  &out->n_entrypoint, err) < 0 ||
        json_strv(json_object_get(c, "Cmd"), "Cmd", &out->cmd, &out->n_cmd, err) < 0 ||
        json_strv(json_object_get(c, "Env"), "Env", &out->env, &out->n_env, err) < 0) {
        json_decref(root);
        hp_oci_image_config_clear(out);
        return -1;
    }
    out->working_dir = json_strdup_member(c, "WorkingDir");
    out->user = json_strdup_member(c, "User");
    out->stop_signal = json_strdup_member(c, "StopSignal");
    json_decref(root);
    return 0;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void hp_oci_image_config_clear(hp_oci_image_config *ic)
{
    free_strv(ic->entrypoint, ic->n_entrypoint);
    free_strv(ic->cmd, ic->n_cmd);
    free_strv(ic->env, ic->n_env);
    free(ic->working_dir);
    free(ic->user);
    free(ic->stop_signal);
    memset(ic, 0, sizeof(*ic));
}

/* ---------- signals ---------- */

int hp_oci_cri_signal(int s)
{
    static const int map[] = {
        0,       SIGABRT, SIGALRM,   SIGBUS,  SIGCHLD,   SIGCHLD,  SIGCONT, SIGFPE,  SIGHUP,
        SIGILL,  SIGINT,  SIGIO,     SIGIOT,  SIGKILL,   SIGPIPE,  SIGPOLL, SIGPROF, SIGPWR,
        SIGQUIT, SIGSEGV, SIGSTKFLT, SIGSTOP, SIGSYS,    SIGTERM,  SIGTRAP, SIGTSTP, SIGTTIN,
        SIGTTOU, SIGURG,  SIGUSR1,   SIGUSR2, SIGVTALRM, SIGWINCH, SIGXCPU, SIGXFSZ,
    };
    if (s <= 0)
        return 0;
    if ((size_t)s < sizeof(map) / sizeof(map[0]))
        return map[s];
    if (s >= 35 && s <= 65) /* SIGRTMIN .. SIGRTMAX */
        return SIGRTMIN + (s - 35) <= SIGRTMAX ? SIGRTMIN + (s - 35) : 0;
    return 0;
}

int hp_oci_signal_by_name(const char *s)
{
    static const struct {
        const char *name;
        int sig;
    } tab[] = {{"ABRT", SIGABRT}, {"ALRM", SIGALRM}, {"BUS", SIGBUS},    {"CHLD", SIGCHLD},
               {"CONT", SIGCONT}, {"FPE", SIGFPE},   {"HUP", SIGHUP},    {"ILL", SIGILL},
               {"INT", SIGINT},   {"IO", SIGIO},     {"KILL", SIGKILL},  {"PIPE", SIGPIPE},
               {"PROF", SIGPROF}, {"PWR", SIGPWR},   {"QUIT", SIGQUIT},  {"SEGV", SIGSEGV},
               {"STOP", SIGSTOP}, {"SYS", SIGSYS},   {"TERM", SIGTERM},  {"TRAP", SIGTRAP},
               {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},  {"URG", SIGURG},
               {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"WINCH", SIGWINCH}};
    if (!s || !*s)
        return 0;
    if (isdigit((unsigned char)*s)) {
        char *end;
        long v = strtol(s, &end, 10);
        return (*end == 0 && v > 0 && v < 65) ? (int)v : 0;
    }
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strcasecmp(s, tab[i].name) == 0)
            return tab[i].sig;
    return 0;
}

/* ---------- users and groups (from the rootfs) ---------- */

/* Find a line of <rootfs>/etc/<file> whose field `key_field` equals key.
 * Fills fields (pointers into line, which the caller frees). */
static int find_entry(const char *rootfs, const char *file, int key_field, const char *key,
                      char **line_out, char *fields[8], int *nf)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/etc/%s", rootfs ? rootfs : "", file);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == '#' || line[0] == 0)
            continue;
        int n = 0;
        char *p = line;
        while (n < 8) {
            fields[n++] = p;
            char *c = strchr(p, ':');
            if (!c)
                break;
            *c = 0;
            p = c + 1;
        }
        if (n > key_field && strcmp(fields[key_field], key) == 0) {
            *line_out = line;
            *nf = n;
            return 0;
        }
    }
    free(line);
    return -1;
}

int hp_oci_lookup_user(const char *rootfs, const char *name, uid_t *uid, gid_t *gid, hp_err *err)
{
    _cleanup_free_ char *line = NULL;
    char *f[8];
    int n;
    if (find_entry(rootfs, "passwd", 0, name, &line, f, &n) < 0 || n < 4)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "user \"%s\" not found in the image's /etc/passwd", name);
    *uid = (uid_t)strtoul(f[2], NULL, 10);
    *gid = (gid_t)strtoul(f[3], NULL, 10);
    return 0;
}

int hp_oci_lookup_group(const char *rootfs, const char *name, gid_t *gid, hp_err *err)
{
    _cleanup_free_ char *line = NULL;
    char *f[8];
    int n;
    if (find_entry(rootfs, "group", 0, name, &line, f, &n) < 0 || n < 3)
        return hp_err_set(err, HP_INVALID_ARGUMENT,
                          "group \"%s\" not found in the image's /etc/group", name);
    *gid = (gid_t)strtoul(f[2], NULL, 10);
    return 0;
}

/* Name of uid in <rootfs>/etc/passwd (malloc'd, caller frees) and its primary
 * gid; NULL when absent. */
static char *user_name_of(const char *rootfs, uid_t uid, gid_t *gid)
{
    char key[32];
    snprintf(key, sizeof(key), "%u", (unsigned)uid);
    _cleanup_free_ char *line = NULL;
    char *f[8];
    int n;
    if (find_entry(rootfs, "passwd", 2, key, &line, f, &n) < 0 || n < 4)
        return NULL;
    *gid = (gid_t)strtoul(f[3], NULL, 10);
    return strdup(f[0]);
}

/* Append to `gids` the groups of <rootfs>/etc/group listing `user` as member. */
static void member_groups(const char *rootfs, const char *user, json_t *gids)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/etc/group", rootfs ? rootfs : "");
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return;
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        char *fields[4] = {0};
        char *p = line;
        int n = 0;
        while (n < 4 && p) {
            fields[n++] = p;
            p = strchr(p, ':');
            if (p)
                *p++ = 0;
        }
        if (n < 4)
            continue;
        char *save = NULL;
        for (char *m = strtok_r(fields[3], ",", &save); m; m = strtok_r(NULL, ",", &save))
            if (strcmp(m, user) == 0)
                json_array_append_new(gids, json_integer(strtoll(fields[2], NULL, 10)));
    }
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* process.user from the security context, else the image's USER. */
static json_t *build_user(const Runtime__V1__LinuxContainerSecurityContext *sc,
                          const hp_oci_image_config *img, const char *rootfs, hp_err *err)
{
    uid_t uid = 0;
    gid_t gid = 0;
    bool have_gid = false;
    _cleanup_free_ char *uname = NULL;

    if (sc && sc->run_as_user) {
        if (sc->run_as_user->value < 0 || sc->run_as_user->value > UINT32_MAX - 1) {
            hp_err_set(err, HP_INVALID_ARGUMENT, "run_as_user %lld is out of range",
                       (long long)sc->run_as_user->value);
            return NULL;
        }
        uid = (uid_t)sc->run_as_user->value;
    } else if (sc && sc->run_as_username && *sc->run_as_username) {
        if (hp_oci_lookup_user(rootfs, sc->run_as_username, &uid, &gid, err) < 0)
            return NULL;
        have_gid = true;
    } else if (img && img->user && *img->user) {
        _cleanup_free_ char *u = strdup(img->user);
        char *g = strchr(u, ':');
        if (g)
            *g++ = 0;
        if (all_digits(u)) {
            uid = (uid_t)strtoul(u, NULL, 10);
        } else if (hp_oci_lookup_user(rootfs, u, &uid, &gid, err) < 0) {
            hp_err_wrap(err, "image USER \"%s\"", img->user);
            return NULL;
        } else {
            have_gid = true;
        }
        if (g && *g) {
            if (all_digits(g)) {
                gid = (gid_t)strtoul(g, NULL, 10);
            } else if (hp_oci_lookup_group(rootfs, g, &gid, err) < 0) {
                hp_err_wrap(err, "image USER \"%s\"", img->user);
                return NULL;
            }
            have_gid = true;
        }
    }
    gid_t pw_gid = 0;
    uname = user_name_of(rootfs, uid, &pw_gid);
    if (!have_gid && uname)
        gid = pw_gid;
    if (sc && sc->run_as_group) {
        if (sc->run_as_group->value < 0 || sc->run_as_group->value > UINT32_MAX - 1) {
            hp_err_set(err, HP_INVALID_ARGUMENT, "run_as_group %lld is out of range",
                       (long long)sc->run_as_group->value);
            return NULL;
        }
        gid = (gid_t)sc->run_as_group->value;
    }
    json_t *gids = json_array();
    if (uname)
        member_groups(rootfs, uname, gids);
    for (size_t i = 0; sc && i < sc->n_supplemental_groups; i++)
        json_array_append_new(gids, json_integer(sc->supplemental_groups[i]));
    json_t *u = json_pack("{s:I, s:I}", "uid", (json_int_t)uid, "gid", (json_int_t)gid);
    if (json_array_size(gids))
        json_object_set_new(u, "additionalGids", gids);
    else
        json_decref(gids);
    return u;
}

/* ---------- capabilities ---------- */

static const char *const all_caps[] = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};
#define N_CAPS (sizeof(all_caps) / sizeof(all_caps[0]))

/* containerd's default set. */
static const char *const default_caps[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE",
};

/* Index of a capability name ("net_admin", "CAP_NET_ADMIN"), -1 if unknown. */
static int cap_index(const char *name)
{
    char buf[64] = "CAP_";
    if (strncasecmp(name, "CAP_", 4) == 0)
        name += 4;
    size_t n = strlen(name);
    if (n == 0 || n > sizeof(buf) - 5)
        return -1;
    for (size_t i = 0; i <= n; i++)
        buf[4 + i] = (char)toupper((unsigned char)name[i]);
    for (size_t i = 0; i < N_CAPS; i++)
        if (strcmp(buf, all_caps[i]) == 0)
            return (int)i;
    return -1;
}

json_t *hp_oci_capabilities(const Runtime__V1__Capability *caps, bool privileged, hp_err *err)
{
    bool set[N_CAPS] = {0};
    if (privileged) {
        for (size_t i = 0; i < N_CAPS; i++)
            set[i] = true;
    } else {
        for (size_t i = 0; i < sizeof(default_caps) / sizeof(default_caps[0]); i++)
            set[cap_index(default_caps[i])] = true;
    }
    if (caps && !privileged) {
        for (int pass = 0; pass < 2; pass++) {
            /* pass 0: ALL add / ALL drop; pass 1: individual names */
            for (size_t i = 0; i < caps->n_add_capabilities; i++) {
                const char *c = caps->add_capabilities[i];
                bool all = strcasecmp(c, "ALL") == 0;
                if (pass == 0 && all)
                    for (size_t k = 0; k < N_CAPS; k++)
                        set[k] = true;
                if (pass == 1 && !all) {
                    int k = cap_index(c);
                    if (k < 0) {
                        hp_err_set(err, HP_INVALID_ARGUMENT,
                                   "linux.security_context.capabilities.add_capabilities: "
                                   "unknown capability \"%s\"",
                                   c);
                        return NULL;
                    }
                    set[k] = true;
                }
            }
            for (size_t i = 0; i < caps->n_drop_capabilities; i++) {
                const char *c = caps->drop_capabilities[i];
                bool all = strcasecmp(c, "ALL") == 0;
                if (pass == 0 && all) {
                    bool added_all = false;
                    for (size_t a = 0; a < caps->n_add_capabilities; a++)
                        added_all |= strcasecmp(caps->add_capabilities[a], "ALL") == 0;
                    if (!added_all)
                        for (size_t k = 0; k < N_CAPS; k++)
                            set[k] = false;
                }
                if (pass == 1 && !all) {
                    int k = cap_index(c);
                    if (k < 0) {
                        hp_err_set(err, HP_INVALID_ARGUMENT,
                                   "linux.security_context.capabilities.drop_capabilities: "
                                   "unknown capability \"%s\"",
                                   c);
                        return NULL;
                    }
                    bool added = false;
                    for (size_t a = 0; a < caps->n_add_capabilities; a++)
                        added |= cap_index(caps->add_capabilities[a]) == k;
                    if (!added)
                        set[k] = false;
                }
            }
        }
    }
    json_t *a = json_array();
    for (size_t i = 0; i < N_CAPS; i++)
        if (set[i])
            json_array_append_new(a, json_string(all_caps[i]));
    return a;
}

static bool caps_has(const json_t *caps, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(caps, i, v) if (strcmp(json_string_value(v), name) == 0) return true;
    return false;
}

/* ---------- seccomp ---------- */

json_t *hp_oci_default_seccomp(const json_t *caps)
{
    /* Blocked with EPERM unless the capability in the group is granted. */
    static const struct {
        const char *cap; /* NULL = always blocked */
        const char *names[20];
    } groups[] = {
        {NULL, {"acct",           "add_key",         "request_key", "keyctl",     "bpf",
                "lookup_dcookie", "perf_event_open", "userfaultfd", "kcmp",       "uselib",
                "ustat",          "sysfs",           "_sysctl",     "nfsservctl", "get_kernel_syms",
                "query_module",   "create_module",   "vm86",        "vm86old",    NULL}},
        {"CAP_SYS_ADMIN",
         {"mount", "umount", "umount2", "pivot_root", "unshare", "setns", "swapon", "swapoff",
          "quotactl", "name_to_handle_at", "open_by_handle_at", "fsopen", "fsconfig", "fsmount",
          "fspick", "move_mount", "open_tree", "mount_setattr", NULL}},
        {"CAP_SYS_MODULE", {"init_module", "finit_module", "delete_module", NULL}},
        {"CAP_SYS_BOOT", {"reboot", "kexec_load", "kexec_file_load", NULL}},
        {"CAP_SYS_TIME",
         {"settimeofday", "stime", "clock_settime", "clock_adjtime", "adjtimex", NULL}},
        {"CAP_SYS_PTRACE", {"ptrace", "process_vm_readv", "process_vm_writev", NULL}},
        {"CAP_SYS_RAWIO", {"iopl", "ioperm", NULL}},
        {"CAP_SYS_NICE", {"move_pages", "mbind", "set_mempolicy", NULL}},
    };
    json_t *names = json_array();
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        if (groups[g].cap && caps && caps_has(caps, groups[g].cap))
            continue;
        for (size_t i = 0; groups[g].names[i]; i++)
            json_array_append_new(names, json_string(groups[g].names[i]));
    }
#if defined(__x86_64__)
    json_t *arch = json_pack("[s,s,s]", "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32");
#elif defined(__aarch64__)
    json_t *arch = json_pack("[s,s]", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM");
#else
    json_t *arch = json_array();
#endif
    return json_pack("{s:s, s:o, s:[{s:o, s:s, s:i}]}", "defaultAction", "SCMP_ACT_ALLOW",
                     "architectures", arch, "syscalls", "names", names, "action", "SCMP_ACT_ERRNO",
                     "errnoRet", EPERM);
}

static json_t *load_seccomp_file(const char *path, hp_err *err)
{
    if (!path || path[0] != '/') {
        hp_err_set(err, HP_INVALID_ARGUMENT,
                   "seccomp localhost profile \"%s\" must be an absolute path", path ? path : "");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        hp_err_set(err, HP_INVALID_ARGUMENT, "seccomp profile %s: %s (line %d)", path, je.text,
                   je.line);
        return NULL;
    }
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "defaultAction"))) {
        json_decref(j);
        hp_err_set(err, HP_INVALID_ARGUMENT,
                   "seccomp profile %s: not an OCI seccomp object with \"defaultAction\"", path);
        return NULL;
    }
    return j;
}

/* linux.seccomp for the security context: JSON object, json_null() for
 * unconfined, or NULL on error. */
static json_t *build_seccomp(const Runtime__V1__SecurityProfile *sp, const char *deprecated_path,
                             bool privileged, const json_t *caps, const hp_oci_spec_opts *o,
                             hp_err *err)
{
    if (privileged)
        return json_null();
    if (sp) {
        switch (sp->profile_type) {
        case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Unconfined:
            return json_null();
        case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost: {
            const char *p = sp->localhost_ref;
            if (p && strncmp(p, "localhost/", 10) == 0)
                p += 10;
            return load_seccomp_file(p, err);
        }
        default:
            return hp_oci_default_seccomp(caps);
        }
    }
    if (deprecated_path && *deprecated_path) {
        if (strcmp(deprecated_path, "unconfined") == 0)
            return json_null();
        if (strcmp(deprecated_path, "runtime/default") == 0 ||
            strcmp(deprecated_path, "docker/default") == 0)
            return hp_oci_default_seccomp(caps);
        if (strncmp(deprecated_path, "localhost/", 10) == 0)
            return load_seccomp_file(deprecated_path + 10, err);
        hp_err_set(err, HP_INVALID_ARGUMENT, "unknown seccomp_profile_path \"%s\"",
                   deprecated_path);
        return NULL;
    }
    /* Not set by the kubelet: the handler's default_seccomp. */
    if (o->default_seccomp && strcmp(o->default_seccomp, "unconfined") == 0)
        return json_null();
    return hp_oci_default_seccomp(caps);
}

/* ---------- mounts ---------- */

static void remove_mount_dest(json_t *mounts, const char *dest)
{
    for (size_t i = 0; i < json_array_size(mounts);) {
        json_t *m = json_array_get(mounts, i);
        if (strcmp(json_string_value(json_object_get(m, "destination")), dest) == 0)
            json_array_remove(mounts, i);
        else
            i++;
    }
}

static bool path_clean_abs(const char *p)
{
    if (!p || p[0] != '/')
        return false;
    /* no ".." component */
    for (const char *s = p; (s = strstr(s, "..")) != NULL; s += 2)
        if ((s == p || s[-1] == '/') && (s[2] == 0 || s[2] == '/'))
            return false;
    return true;
}

static json_t *default_mounts(const hp_oci_spec_opts *o, bool privileged, bool readonly)
{
    json_t *m = json_array();
    if (o->root_overlay) {
        /* first: everything else is mounted on top of it, mount points are
         * created in the upper dir (never in the shared image) */
        char data[8192];
        snprintf(data, sizeof(data), "%s", o->root_overlay);
        json_array_append_new(m, jmount("/", "overlay", "overlay", (const char *[]){data, NULL}));
    }
    json_array_append_new(
        m, jmount("/proc", "proc", "proc", (const char *[]){"nosuid", "noexec", "nodev", NULL}));
    json_array_append_new(
        m, jmount("/dev", "tmpfs", "tmpfs",
                  (const char *[]){"nosuid", "strictatime", "mode=755", "size=65536k", NULL}));
    if (o->rootless)
        json_array_append_new(m, jmount("/dev/pts", "devpts", "devpts",
                                        (const char *[]){"nosuid", "noexec", "newinstance",
                                                         "ptmxmode=0666", "mode=0620", NULL}));
    else
        json_array_append_new(
            m, jmount("/dev/pts", "devpts", "devpts",
                      (const char *[]){"nosuid", "noexec", "newinstance", "ptmxmode=0666",
                                       "mode=0620", "gid=5", NULL}));
    if (o->pod_dir) {
        char shm[4096];
        snprintf(shm, sizeof(shm), "%s/shm", o->pod_dir);
        json_array_append_new(m,
                              jmount("/dev/shm", "bind", shm,
                                     (const char *[]){"rbind", "nosuid", "noexec", "nodev", NULL}));
    } else {
        json_array_append_new(m, jmount("/dev/shm", "tmpfs", "shm",
                                        (const char *[]){"nosuid", "noexec", "nodev", "mode=1777",
                                                         "size=65536k", NULL}));
    }
    json_array_append_new(m, jmount("/dev/mqueue", "mqueue", "mqueue",
                                    (const char *[]){"nosuid", "noexec", "nodev", NULL}));
    const char *sysro = privileged ? "rw" : "ro";
    if (o->rootless || o->host_network)
        /* sysfs cannot be mounted from a user namespace not owning the netns */
        json_array_append_new(
            m, jmount("/sys", "bind", "/sys",
                      (const char *[]){"rbind", "nosuid", "noexec", "nodev", "ro", NULL}));
    else
        json_array_append_new(m,
                              jmount("/sys", "sysfs", "sysfs",
                                     (const char *[]){"nosuid", "noexec", "nodev", sysro, NULL}));
    if (!o->rootless && !o->host_network)
        json_array_append_new(
            m, jmount("/sys/fs/cgroup", "cgroup", "cgroup",
                      (const char *[]){"nosuid", "noexec", "nodev", "relatime", sysro, NULL}));
    if (o->pod_dir) {
        static const char *const files[] = {"hostname", "hosts", "resolv.conf"};
        for (size_t i = 0; i < 3; i++) {
            char src[4096], dst[64];
            snprintf(src, sizeof(src), "%s/%s", o->pod_dir, files[i]);
            snprintf(dst, sizeof(dst), "/etc/%s", files[i]);
            json_array_append_new(
                m, jmount(dst, "bind", src,
                          (const char *[]){"rbind", "rprivate", readonly ? "ro" : "rw", NULL}));
        }
    }
    if (o->rootfs_tmpfs) {
        static const char *const dirs[] = {"/tmp", "/run", "/var/tmp"};
        for (size_t i = 0; i < 3; i++)
            json_array_append_new(m,
                                  jmount(dirs[i], "tmpfs", "tmpfs",
                                         (const char *[]){"nosuid", "nodev", "mode=1777", NULL}));
    }
    return m;
}

static int add_config_mounts(json_t *mounts, const Runtime__V1__ContainerConfig *cfg, hp_err *err)
{
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        const Runtime__V1__Mount *mt = cfg->mounts[i];
        if (!path_clean_abs(mt->container_path))
            return hp_err_set(err, HP_INVALID_ARGUMENT,
                              "mounts[%zu].container_path \"%s\" must be an absolute path "
                              "without \"..\"",
                              i, mt->container_path ? mt->container_path : "");
        if (mt->image && mt->image->image && *mt->image->image)
            return hp_err_set(err, HP_UNIMPLEMENTED,
                              "mounts[%zu]: image volumes are not supported by the oci backend", i);
        if (!path_clean_abs(mt->host_path))
            return hp_err_set(err, HP_INVALID_ARGUMENT,
                              "mounts[%zu].host_path \"%s\" must be an absolute path without "
                              "\"..\"",
                              i, mt->host_path ? mt->host_path : "");
        if (mt->n_uidmappings || mt->n_gidmappings)
            return hp_err_set(err, HP_UNIMPLEMENTED,
                              "mounts[%zu]: idmapped mounts are not supported", i);
        const char *prop;
        switch (mt->propagation) {
        case RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER:
            prop = "rslave";
            break;
        case RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL:
            prop = "rshared";
            break;
        case RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE:
            prop = "rprivate";
            break;
        default:
            return hp_err_set(err, HP_INVALID_ARGUMENT, "mounts[%zu].propagation %d is unknown", i,
                              (int)mt->propagation);
        }
        remove_mount_dest(mounts, mt->container_path);
        json_array_append_new(
            mounts, jmount(mt->container_path, "bind", mt->host_path,
                           (const char *[]){"rbind", prop, mt->readonly ? "ro" : "rw", NULL}));
    }
    return 0;
}

static const char *const default_masked[] = {"/proc/acpi",
                                             "/proc/asound",
                                             "/proc/kcore",
                                             "/proc/keys",
                                             "/proc/latency_stats",
                                             "/proc/timer_list",
                                             "/proc/timer_stats",
                                             "/proc/sched_debug",
                                             "/proc/scsi",
                                             "/sys/firmware",
                                             "/sys/devices/virtual/powercap",
                                             NULL};
static const char *const default_readonly[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL};

static json_t *cstrarr(const char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* ---------- devices ---------- */

static int add_devices(json_t *linux, json_t *mounts, json_t *devrules,
                       const Runtime__V1__ContainerConfig *cfg, const hp_oci_spec_opts *o,
                       hp_err *err)
{
    json_t *devs = json_array();
    json_object_set_new(linux, "devices", devs);
    for (size_t i = 0; i < cfg->n_devices; i++) {
        const Runtime__V1__Device *d = cfg->devices[i];
        const char *cpath =
            d->container_path && *d->container_path ? d->container_path : d->host_path;
        if (!path_clean_abs(cpath) || !path_clean_abs(d->host_path))
            return hp_err_set(err, HP_INVALID_ARGUMENT,
                              "devices[%zu]: host_path and container_path must be absolute", i);
        const char *perm = d->permissions && *d->permissions ? d->permissions : "rwm";
        if (strspn(perm, "rwm") != strlen(perm))
            return hp_err_set(err, HP_INVALID_ARGUMENT,
                              "devices[%zu].permissions \"%s\": only r, w and m are allowed", i,
                              perm);
        struct stat st;
        if (stat(d->host_path, &st) < 0)
            return hp_err_sys(err, HP_INVALID_ARGUMENT, "devices[%zu]: %s", i, d->host_path);
        if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
            return hp_err_set(err, HP_INVALID_ARGUMENT, "devices[%zu]: %s is not a device node", i,
                              d->host_path);
        if (o->rootless) {
            /* no mknod in a user namespace: bind-mount the node instead */
            json_array_append_new(mounts,
                                  jmount(cpath, "bind", d->host_path,
                                         (const char *[]){"bind", "rprivate",
                                                          strchr(perm, 'w') ? "rw" : "ro", NULL}));
            continue;
        }
        const char *type = S_ISCHR(st.st_mode) ? "c" : "b";
        json_array_append_new(devs, json_pack("{s:s, s:s, s:I, s:I, s:i, s:I, s:I}", "path", cpath,
                                              "type", type, "major", (json_int_t)major(st.st_rdev),
                                              "minor", (json_int_t)minor(st.st_rdev), "fileMode",
                                              (int)(st.st_mode & 07777), "uid",
                                              (json_int_t)st.st_uid, "gid", (json_int_t)st.st_gid));
        if (devrules)
            json_array_append_new(devrules,
                                  json_pack("{s:b, s:s, s:I, s:I, s:s}", "allow", 1, "type", type,
                                            "major", (json_int_t)major(st.st_rdev), "minor",
                                            (json_int_t)minor(st.st_rdev), "access", perm));
    }
    return 0;
}

/* ---------- resources ---------- */

static json_t *build_resources(const Runtime__V1__LinuxContainerResources *r, bool privileged)
{
    json_t *res = json_object();
    json_t *devrules = json_array();
    json_array_append_new(devrules, json_pack("{s:b, s:s}", "allow", privileged, "access", "rwm"));
    json_object_set_new(res, "devices", devrules);
    if (!r)
        return res;
    json_t *cpu = json_object();
    if (r->cpu_shares > 0)
        json_object_set_new(cpu, "shares", json_integer(r->cpu_shares));
    if (r->cpu_quota > 0)
        json_object_set_new(cpu, "quota", json_integer(r->cpu_quota));
    if (r->cpu_period > 0)
        json_object_set_new(cpu, "period", json_integer(r->cpu_period));
    if (r->cpuset_cpus && *r->cpuset_cpus)
        json_object_set_new(cpu, "cpus", json_string(r->cpuset_cpus));
    if (r->cpuset_mems && *r->cpuset_mems)
        json_object_set_new(cpu, "mems", json_string(r->cpuset_mems));
    if (json_object_size(cpu))
        json_object_set_new(res, "cpu", cpu);
    else
        json_decref(cpu);
    json_t *mem = json_object();
    if (r->memory_limit_in_bytes > 0)
        json_object_set_new(mem, "limit", json_integer(r->memory_limit_in_bytes));
    if (r->memory_swap_limit_in_bytes > 0)
        json_object_set_new(mem, "swap", json_integer(r->memory_swap_limit_in_bytes));
    if (json_object_size(mem))
        json_object_set_new(res, "memory", mem);
    else
        json_decref(mem);
    if (r->n_hugepage_limits) {
        json_t *hp = json_array();
        for (size_t i = 0; i < r->n_hugepage_limits; i++)
            json_array_append_new(hp, json_pack("{s:s, s:I}", "pageSize",
                                                r->hugepage_limits[i]->page_size, "limit",
                                                (json_int_t)r->hugepage_limits[i]->limit));
        json_object_set_new(res, "hugepageLimits", hp);
    }
    if (r->n_unified) {
        json_t *u = json_object();
        for (size_t i = 0; i < r->n_unified; i++)
            json_object_set_new(u, r->unified[i]->key, json_string(r->unified[i]->value));
        json_object_set_new(res, "unified", u);
    }
    return res;
}

/* ---------- namespaces ---------- */

static json_t *ns(const char *type, pid_t pid, const char *nsname)
{
    json_t *n = json_pack("{s:s}", "type", type);
    if (pid > 0) {
        char p[64];
        snprintf(p, sizeof(p), "/proc/%d/ns/%s", (int)pid, nsname);
        json_object_set_new(n, "path", json_string(p));
    }
    return n;
}

static void add_userns(json_t *linux, json_t *nss, const hp_oci_spec_opts *o, pid_t join)
{
    json_array_append_new(nss, ns("user", join, "user"));
    json_t *um = json_array(), *gm = json_array();
    json_array_append_new(um, json_pack("{s:i, s:I, s:i}", "containerID", 0, "hostID",
                                        (json_int_t)o->uid, "size", 1));
    json_array_append_new(gm, json_pack("{s:i, s:I, s:i}", "containerID", 0, "hostID",
                                        (json_int_t)o->gid, "size", 1));
    if (o->subuid_len)
        json_array_append_new(um, json_pack("{s:i, s:I, s:I}", "containerID", 1, "hostID",
                                            (json_int_t)o->subuid_start, "size",
                                            (json_int_t)o->subuid_len));
    if (o->subgid_len)
        json_array_append_new(gm, json_pack("{s:i, s:I, s:I}", "containerID", 1, "hostID",
                                            (json_int_t)o->subgid_start, "size",
                                            (json_int_t)o->subgid_len));
    json_object_set_new(linux, "uidMappings", um);
    json_object_set_new(linux, "gidMappings", gm);
}

static const Runtime__V1__NamespaceOption *pod_ns_options(const Runtime__V1__PodSandboxConfig *pod)
{
    if (pod && pod->linux && pod->linux->security_context)
        return pod->linux->security_context->namespace_options;
    return NULL;
}

static bool pod_host_network(const Runtime__V1__PodSandboxConfig *pod, const hp_oci_spec_opts *o)
{
    const Runtime__V1__NamespaceOption *nso = pod_ns_options(pod);
    return o->host_network || (nso && nso->network == RUNTIME__V1__NAMESPACE_MODE__NODE);
}

static int add_sysctls(json_t *linux, const Runtime__V1__PodSandboxConfig *pod, bool host_net,
                       bool host_ipc, hp_err *err)
{
    if (!pod || !pod->linux || !pod->linux->n_sysctls)
        return 0;
    json_t *s = json_object();
    json_object_set_new(linux, "sysctl", s);
    for (size_t i = 0; i < pod->linux->n_sysctls; i++) {
        const char *k = pod->linux->sysctls[i]->key;
        if (host_net && strncmp(k, "net.", 4) == 0)
            return hp_err_set(err, HP_INVALID_ARGUMENT,
                              "sysctl \"%s\" cannot be set: the pod uses the host network", k);
        if (host_ipc && (strncmp(k, "kernel.shm", 10) == 0 || strncmp(k, "kernel.msg", 10) == 0 ||
                         strcmp(k, "kernel.sem") == 0 || strncmp(k, "fs.mqueue.", 10) == 0))
            return hp_err_set(err, HP_INVALID_ARGUMENT,
                              "sysctl \"%s\" cannot be set: the pod uses the host IPC namespace",
                              k);
        json_object_set_new(s, k, json_string(pod->linux->sysctls[i]->value));
    }
    return 0;
}

static json_t *annotations(const Runtime__V1__ContainerConfig *cfg,
                           const Runtime__V1__PodSandboxConfig *pod)
{
    json_t *a = json_object();
    for (size_t i = 0; pod && i < pod->n_annotations; i++)
        json_object_set_new(a, pod->annotations[i]->key, json_string(pod->annotations[i]->value));
    for (size_t i = 0; cfg && i < cfg->n_annotations; i++)
        json_object_set_new(a, cfg->annotations[i]->key, json_string(cfg->annotations[i]->value));
    if (pod && pod->metadata) {
        json_object_set_new(a, "io.kubernetes.pod.name", json_string(pod->metadata->name));
        json_object_set_new(a, "io.kubernetes.pod.namespace",
                            json_string(pod->metadata->namespace_));
        json_object_set_new(a, "io.kubernetes.pod.uid", json_string(pod->metadata->uid));
    }
    if (cfg && cfg->metadata)
        json_object_set_new(a, "io.kubernetes.container.name", json_string(cfg->metadata->name));
    return a;
}

/* ---------- process args / env ---------- */

static json_t *build_args(const Runtime__V1__ContainerConfig *cfg, const hp_oci_image_config *img,
                          hp_err *err)
{
    json_t *a = json_array();
    if (cfg->n_command) {
        for (size_t i = 0; i < cfg->n_command; i++)
            json_array_append_new(a, json_string(cfg->command[i]));
        for (size_t i = 0; i < cfg->n_args; i++)
            json_array_append_new(a, json_string(cfg->args[i]));
    } else {
        for (size_t i = 0; img && i < img->n_entrypoint; i++)
            json_array_append_new(a, json_string(img->entrypoint[i]));
        if (cfg->n_args)
            for (size_t i = 0; i < cfg->n_args; i++)
                json_array_append_new(a, json_string(cfg->args[i]));
        else
            for (size_t i = 0; img && i < img->n_cmd; i++)
                json_array_append_new(a, json_string(img->cmd[i]));
    }
    if (json_array_size(a) == 0) {
        json_decref(a);
        hp_err_set(err, HP_INVALID_ARGUMENT,
                   "no command specified: the container config has neither command nor args and "
                   "the image has no ENTRYPOINT or CMD");
        return NULL;
    }
    return a;
}

/* Replace or append KEY=VALUE in env (JSON array of strings). */
static void env_set(json_t *env, const char *kv)
{
    size_t klen = strcspn(kv, "=");
    size_t i;
    json_t *v;
    json_array_foreach(env, i, v)
    {
        const char *s = json_string_value(v);
        if (strncmp(s, kv, klen) == 0 && (s[klen] == '=' || s[klen] == 0)) {
            json_array_set_new(env, i, json_string(kv));
            return;
        }
    }
    json_array_append_new(env, json_string(kv));
}

static json_t *build_env(const Runtime__V1__ContainerConfig *cfg, const hp_oci_image_config *img,
                         hp_err *err)
{
    json_t *env = json_array();
    for (size_t i = 0; img && i < img->n_env; i++)
        env_set(env, img->env[i]);
    for (size_t i = 0; i < cfg->n_envs; i++) {
        const char *k = cfg->envs[i]->key;
        if (!k || !*k || strchr(k, '=')) {
            json_decref(env);
            hp_err_set(err, HP_INVALID_ARGUMENT, "envs[%zu]: invalid variable name \"%s\"", i,
                       k ? k : "");
            return NULL;
        }
        size_t n = strlen(k) + strlen(cfg->envs[i]->value) + 2;
        _cleanup_free_ char *kv = malloc(n);
        snprintf(kv, n, "%s=%s", k, cfg->envs[i]->value);
        env_set(env, kv);
    }
    bool has_path = false;
    size_t i;
    json_t *v;
    json_array_foreach(env, i, v) has_path |= strncmp(json_string_value(v), "PATH=", 5) == 0;
    if (!has_path)
        json_array_insert_new(env, 0, json_string(DEFAULT_PATH));
    return env;
}

/* ---------- the container spec ---------- */

static bool has_cap(const json_t *caps, const char *name)
{
    size_t i;
    const json_t *v;
    json_array_foreach(caps, i, v)
    {
        const char *s = json_string_value(v);
        if (s && strcmp(s, name) == 0)
            return true;
    }
    return false;
}

json_t *hp_oci_spec_container(const Runtime__V1__PodSandboxConfig *pod,
                              const Runtime__V1__ContainerConfig *cfg,
                              const hp_oci_image_config *img, const hp_oci_spec_opts *o,
                              hp_err *err)
{
    const Runtime__V1__LinuxContainerSecurityContext *sc =
        cfg->linux ? cfg->linux->security_context : NULL;
    const Runtime__V1__LinuxContainerResources *res = cfg->linux ? cfg->linux->resources : NULL;
    bool privileged = sc && sc->privileged;
    bool readonly = sc && sc->readonly_rootfs;
    json_t *spec = json_pack("{s:s}", "ociVersion", "1.0.2");
    json_t *proc = json_object();
    json_object_set_new(spec, "process", proc);

    if (sc && sc->apparmor &&
        sc->apparmor->profile_type != RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Unconfined)
        hp_debug("apparmor profile requested; AppArmor is not supported by the oci backend, "
                 "ignored");

    json_t *args = build_args(cfg, img, err);
    if (!args)
        goto fail;
    json_object_set_new(proc, "args", args);
    json_t *env = build_env(cfg, img, err);
    if (!env)
        goto fail;
    json_object_set_new(proc, "env", env);
    const char *cwd = cfg->working_dir && *cfg->working_dir          ? cfg->working_dir
                      : img && img->working_dir && *img->working_dir ? img->working_dir
                                                                     : "/";
    if (cwd[0] != '/') {
        hp_err_set(err, HP_INVALID_ARGUMENT, "working_dir \"%s\" must be an absolute path", cwd);
        goto fail;
    }
    json_object_set_new(proc, "cwd", json_string(cwd));
    json_object_set_new(proc, "terminal", json_boolean(cfg->tty));
    json_t *user = build_user(sc, img, o->rootfs_dir, err);
    if (!user)
        goto fail;
    json_object_set_new(proc, "user", user);

    json_t *caps = hp_oci_capabilities(sc ? sc->capabilities : NULL, privileged, err);
    if (!caps)
        goto fail;
    if (o->rootless && o->rootfs_tmpfs && (privileged || has_cap(caps, "CAP_SYS_ADMIN"))) {
        /* The root is the shared image directory, owned by the daemon's user
         * and read-only only through a bind mount made in the container's
         * own user namespace: CAP_SYS_ADMIN there could remount it
         * read-write and change the image for every container. */
        json_decref(caps);
        hp_err_set(err, HP_INVALID_ARGUMENT,
                   "%s is not supported rootless: the container's root file system is the shared "
                   "read-only image, which CAP_SYS_ADMIN could remount read-write",
                   privileged ? "privileged" : "capability CAP_SYS_ADMIN");
        goto fail;
    }
    json_t *ambient = json_array();
    for (size_t i = 0; sc && sc->capabilities && i < sc->capabilities->n_add_ambient_capabilities;
         i++) {
        int k = cap_index(sc->capabilities->add_ambient_capabilities[i]);
        if (k < 0) {
            json_decref(caps);
            json_decref(ambient);
            hp_err_set(err, HP_INVALID_ARGUMENT, "unknown ambient capability \"%s\"",
                       sc->capabilities->add_ambient_capabilities[i]);
            goto fail;
        }
        json_array_append_new(ambient, json_string(all_caps[k]));
    }
    json_object_set_new(proc, "capabilities",
                        json_pack("{s:O, s:O, s:O, s:O, s:o}", "bounding", caps, "effective", caps,
                                  "permitted", caps, "inheritable", ambient, "ambient",
                                  json_copy(ambient)));
    json_decref(caps);
    json_decref(ambient);
    json_object_set_new(proc, "noNewPrivileges", json_boolean(sc && sc->no_new_privs));
    int oom = res ? (int)res->oom_score_adj : 0;
    if (oom < o->min_oom_score_adj)
        oom = o->min_oom_score_adj;
    if (oom > 1000)
        oom = 1000;
    json_object_set_new(proc, "oomScoreAdj", json_integer(oom));
    /* no rlimits: the container inherits the daemon's (raising them needs
     * CAP_SYS_RESOURCE, which hpcri may not have) */

    json_object_set_new(spec, "root",
                        json_pack("{s:s, s:b}", "path", o->root_path ? o->root_path : "rootfs",
                                  "readonly", readonly || o->rootfs_tmpfs));
    if (pod && pod->hostname && *pod->hostname && !pod_host_network(pod, o))
        json_object_set_new(spec, "hostname", json_string(pod->hostname));

    json_t *mounts = default_mounts(o, privileged, readonly);
    json_object_set_new(spec, "mounts", mounts);
    if (add_config_mounts(mounts, cfg, err) < 0)
        goto fail;
    json_object_set_new(spec, "annotations", annotations(cfg, pod));

    json_t *linux = json_object();
    json_object_set_new(spec, "linux", linux);
    json_t *resources = o->cgroups_path ? build_resources(res, privileged) : NULL;
    if (resources) {
        json_object_set_new(linux, "resources", resources);
        json_object_set_new(linux, "cgroupsPath", json_string(o->cgroups_path));
    }
    if (add_devices(linux, mounts, resources ? json_object_get(resources, "devices") : NULL, cfg, o,
                    err) < 0)
        goto fail;

    /* namespaces */
    const Runtime__V1__NamespaceOption *nso = sc ? sc->namespace_options : NULL;
    if (!nso)
        nso = pod_ns_options(pod);
    json_t *nss = json_array();
    json_object_set_new(linux, "namespaces", nss);
    json_array_append_new(nss, ns("mount", 0, NULL));
    bool host_net = o->host_network || (nso && nso->network == RUNTIME__V1__NAMESPACE_MODE__NODE);
    bool host_ipc = nso && nso->ipc == RUNTIME__V1__NAMESPACE_MODE__NODE;
    if (!host_net)
        json_array_append_new(nss, ns("network", o->pause_pid, "net"));
    if (!host_ipc)
        json_array_append_new(nss, ns("ipc", o->pause_pid, "ipc"));
    if (!host_net)
        json_array_append_new(nss, ns("uts", o->pause_pid, "uts"));
    int pidmode = nso ? (int)nso->pid : RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
    if (pidmode == RUNTIME__V1__NAMESPACE_MODE__POD)
        json_array_append_new(nss, ns("pid", o->pause_pid, "pid"));
    else if (pidmode == RUNTIME__V1__NAMESPACE_MODE__CONTAINER)
        json_array_append_new(nss, ns("pid", 0, NULL));
    else if (pidmode == RUNTIME__V1__NAMESPACE_MODE__TARGET) {
        if (o->target_pid <= 0) {
            hp_err_set(err, HP_INVALID_ARGUMENT,
                       "namespace_options.pid is TARGET but target container \"%s\" is not "
                       "running",
                       nso->target_id ? nso->target_id : "");
            goto fail;
        }
        json_array_append_new(nss, ns("pid", o->target_pid, "pid"));
    }
    if (o->rootless)
        add_userns(linux, nss, o, o->join_pause_userns ? o->pause_pid : 0);
    if (add_sysctls(linux, pod, host_net, host_ipc, err) < 0)
        goto fail;

    if (!privileged) {
        json_object_set_new(linux, "maskedPaths",
                            sc && sc->n_masked_paths ? jstrarr(sc->masked_paths, sc->n_masked_paths)
                                                     : cstrarr(default_masked));
        json_object_set_new(linux, "readonlyPaths",
                            sc && sc->n_readonly_paths
                                ? jstrarr(sc->readonly_paths, sc->n_readonly_paths)
                                : cstrarr(default_readonly));
    }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    const char *old_seccomp_path = sc ? sc->seccomp_profile_path : NULL;
#pragma GCC diagnostic pop
    json_t *seccomp =
        build_seccomp(sc ? sc->seccomp : NULL, old_seccomp_path, privileged,
                      json_object_get(json_object_get(proc, "capabilities"), "bounding"), o, err);
    if (!seccomp)
        goto fail;
    if (json_is_null(seccomp))
        json_decref(seccomp);
    else
        json_object_set_new(linux, "seccomp", seccomp);
    return spec;
fail:
    json_decref(spec);
    return NULL;
}

json_t *hp_oci_spec_pause(const Runtime__V1__PodSandboxConfig *pod, const char *pause_host_path,
                          const hp_oci_spec_opts *o, hp_err *err)
{
    const Runtime__V1__NamespaceOption *nso = pod_ns_options(pod);
    bool host_net = pod_host_network(pod, o);
    bool host_ipc = nso && nso->ipc == RUNTIME__V1__NAMESPACE_MODE__NODE;
    int oom = -998 < o->min_oom_score_adj ? o->min_oom_score_adj : -998;
    json_t *spec = json_pack(
        "{s:s, s:{s:b, s:{s:i, s:i}, s:[s], s:[s], s:s, s:{s:[], s:[], s:[], s:[], s:[]}, "
        "s:b, s:i}, s:{s:s, s:b}}",
        "ociVersion", "1.0.2", "process", "terminal", 0, "user", "uid", 0, "gid", 0, "args",
        "/pause", "env", DEFAULT_PATH, "cwd", "/", "capabilities", "bounding", "effective",
        "permitted", "inheritable", "ambient", "noNewPrivileges", 1, "oomScoreAdj", oom, "root",
        "path", o->root_path ? o->root_path : "rootfs", "readonly", 1);
    if (pod && pod->hostname && *pod->hostname && !host_net)
        json_object_set_new(spec, "hostname", json_string(pod->hostname));
    json_t *mounts = json_array();
    json_object_set_new(spec, "mounts", mounts);
    json_array_append_new(mounts, jmount("/proc", "proc", "proc",
                                         (const char *[]){"nosuid", "noexec", "nodev", NULL}));
    json_array_append_new(mounts, jmount("/pause", "bind", pause_host_path,
                                         (const char *[]){"bind", "ro", "rprivate", NULL}));
    json_object_set_new(spec, "annotations", annotations(NULL, pod));
    json_t *linux = json_object();
    json_object_set_new(spec, "linux", linux);
    json_t *nss = json_array();
    json_object_set_new(linux, "namespaces", nss);
    json_array_append_new(nss, ns("mount", 0, NULL));
    if (!host_net)
        json_array_append_new(nss, ns("network", 0, NULL));
    if (!host_ipc)
        json_array_append_new(nss, ns("ipc", 0, NULL));
    if (!host_net)
        json_array_append_new(nss, ns("uts", 0, NULL));
    if (!nso || nso->pid == RUNTIME__V1__NAMESPACE_MODE__POD ||
        nso->pid == RUNTIME__V1__NAMESPACE_MODE__CONTAINER)
        json_array_append_new(nss, ns("pid", 0, NULL));
    if (o->rootless)
        add_userns(linux, nss, o, 0);
    if (o->cgroups_path) {
        json_object_set_new(linux, "cgroupsPath", json_string(o->cgroups_path));
        json_object_set_new(linux, "resources",
                            json_pack("{s:[{s:b, s:s}]}", "devices", "allow", 0, "access", "rwm"));
    }
    if (add_sysctls(linux, pod, host_net, host_ipc, err) < 0) {
        json_decref(spec);
        return NULL;
    }
    json_object_set_new(linux, "maskedPaths", cstrarr(default_masked));
    json_object_set_new(linux, "readonlyPaths", cstrarr(default_readonly));
    return spec;
}
