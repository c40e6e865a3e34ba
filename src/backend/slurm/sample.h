/* Resource samples of a container running as a Slurm job step.
 *
 * The step helper `hpcri-step` (src/slurmstep/main.c) runs inside the step
 * on the compute node, starts the OCI runtime and, every interval, samples
 * the container's usage and writes it to `<container dir>/stats` in the
 * shared dir (tmp + rename).  The daemon's container_stats reads that file:
 * no Slurm query and no access to the compute node per stats call.
 *
 * Sources, in this order:
 *   cgroup  the container's own cgroup (runc: <own cgroup>/hpcri-<id>):
 *           v1 cpuacct.usage, memory.usage_in_bytes, memory.stat
 *           (total_inactive_file, total_rss); v2 cpu.stat usage_usec,
 *           memory.current, memory.stat (inactive_file, anon);
 *   proc    the container's process tree (from its init, the first process
 *           below the helper in another mount namespace; the runtime's
 *           own process is not counted), else everything below the
 *           helper: utime+stime+cutime+cstime (clock ticks) and resident
 *           pages of every live process; working set = usage = RSS (no
 *           page-cache split available).
 * The writable layer is the container's tmpfs scratch mounts (/tmp, /run,
 * /var/tmp) seen through /proc/<pid>/root of a process in the container's
 * mount namespace.
 *
 * This file uses only libc (no hp_err): it is linked into the static
 * helper as well as into libhpcri.
 */
#ifndef HP_BACKEND_SLURM_SAMPLE_H
#define HP_BACKEND_SLURM_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct hp_step_sample {
    int64_t ts_ns; /* unix ns of the sample */
    bool has_cpu;
    uint64_t cpu_ns;
    bool has_mem;
    uint64_t mem_ws, mem_rss, mem_usage; /* bytes */
    bool has_wl;
    uint64_t wl_bytes, wl_inodes;
    char src[16]; /* "cgroup" or "proc" */
} hp_step_sample;

/* Usage of cgroup `child` below the caller's cgroup.  self_cgroup is the
 * text of /proc/self/cgroup, cg_root the cgroup mount root
 * ("/sys/fs/cgroup").  Returns 0 with cpu and memory filled (src "cgroup"),
 * -1 when the cgroup is not there or unreadable. */
int hp_step_sample_cgroup(const char *self_cgroup, const char *cg_root, const char *child,
                          hp_step_sample *s);

/* Usage of every live process below pid `root` (and of root itself when
 * with_root), read from proc_root ("/proc").  Returns 0 (src "proc"), -1
 * when /proc is unreadable or there is no such process. */
int hp_step_sample_proc(const char *proc_root, pid_t root, bool with_root, hp_step_sample *s);

/* First process below `root` whose mount namespace differs from root's
 * (the container's), or 0. */
pid_t hp_step_container_pid(const char *proc_root, pid_t root);

/* Bytes and inodes used on the tmpfs mounts /tmp, /run, /var/tmp as seen
 * from pid's root; sets has_wl when at least one is a tmpfs. */
void hp_step_sample_writable(const char *proc_root, pid_t pid, hp_step_sample *s);

/* One line "ts=N cpu_ns=N mem_ws=N mem_rss=N mem_usage=N wl_bytes=N
 * wl_inodes=N src=S\n" (absent fields left out) into buf; returns the
 * length, 0 when cap is too small. */
size_t hp_step_sample_format(const hp_step_sample *s, char *buf, size_t cap);

/* Parse what hp_step_sample_format wrote; 0, or -1 without a timestamp. */
int hp_step_sample_parse(const char *text, hp_step_sample *s);

#endif
