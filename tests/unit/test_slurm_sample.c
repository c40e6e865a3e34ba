/* Container step samples (src/backend/slurm/sample.c, used by hpcri-step)
 * and the GPU device mapping: fake cgroup trees in a temp dir, the real
 * /proc with a child that burns CPU and holds memory. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/slurm/sample.h"
#include "backend/slurm/step.h"
#include "t.h"

static void put(const char *root, const char *rel, const char *text)
{
    char p[1024], cmd[1200];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", p);
    if (system(cmd) != 0)
        return;
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void rm_rf(const char *d)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", d);
}

T_CASE(format_parse_roundtrip)
{
    hp_step_sample s = {.ts_ns = 1700000000123456789LL,
                        .has_cpu = true,
                        .cpu_ns = 42,
                        .has_mem = true,
                        .mem_ws = 3,
                        .mem_rss = 2,
                        .mem_usage = 4,
                        .src = "cgroup"};
    char buf[512];
    size_t n = hp_step_sample_format(&s, buf, sizeof buf);
    T_ASSERT(n > 0 && buf[n - 1] == '\n');
    T_EQ_STR(buf, "ts=1700000000123456789 cpu_ns=42 mem_ws=3 mem_rss=2 mem_usage=4 src=cgroup\n");
    hp_step_sample r;
    T_EQ_INT(hp_step_sample_parse(buf, &r), 0);
    T_ASSERT(r.ts_ns == s.ts_ns && r.has_cpu && r.cpu_ns == 42 && r.has_mem && r.mem_ws == 3 &&
             r.mem_rss == 2 && r.mem_usage == 4 && !r.has_wl);
    T_EQ_STR(r.src, "cgroup");
    /* only a timestamp: nothing measured */
    T_EQ_INT(hp_step_sample_parse("ts=5\n", &r), 0);
    T_ASSERT(!r.has_cpu && !r.has_mem && !r.has_wl);
    T_EQ_INT(hp_step_sample_parse("cpu_ns=5\n", &r), -1);
    T_EQ_INT(hp_step_sample_parse("", &r), -1);
    /* junk values are ignored, not half-read */
    T_EQ_INT(hp_step_sample_parse("ts=9 cpu_ns=12x wl_bytes=7 wl_inodes=2", &r), 0);
    T_ASSERT(!r.has_cpu && r.has_wl && r.wl_bytes == 7 && r.wl_inodes == 2);
    T_EQ_INT(hp_step_sample_format(&s, buf, 20), 0);
}

T_CASE(cgroup_v1_and_v2)
{
    char root[] = "/tmp/hpcri-sample.XXXXXX";
    T_ASSERT(mkdtemp(root));
    /* v1: memory nested like on this host, cpuacct at the root */
    put(root, "cpuacct/hpcri-c1/cpuacct.usage", "1234567\n");
    put(root, "memory/process_api/x/hpcri-c1/memory.usage_in_bytes", "30000000\n");
    put(root, "memory/process_api/x/hpcri-c1/memory.stat",
        "cache 1\nrss 5\ntotal_cache 9\ntotal_rss 21000000\ntotal_inactive_file 4000000\n");
    const char *self = "9:name=systemd:/\n4:memory:/process_api/x\n2:cpu,cpuacct:/\n0::/\n";
    hp_step_sample s;
    memset(&s, 0, sizeof s);
    T_EQ_INT(hp_step_sample_cgroup(self, root, "hpcri-c1", &s), 0);
    T_ASSERT(s.has_cpu && s.cpu_ns == 1234567);
    T_ASSERT(s.has_mem && s.mem_usage == 30000000 && s.mem_ws == 26000000 && s.mem_rss == 21000000);
    T_EQ_STR(s.src, "cgroup");
    memset(&s, 0, sizeof s);
    T_EQ_INT(hp_step_sample_cgroup(self, root, "hpcri-none", &s), -1);
    T_ASSERT(!s.has_cpu && !s.has_mem);
    T_EQ_INT(hp_step_sample_cgroup(self, root, "../hpcri-c1", &s), -1);
    /* v2 (hybrid: unified/), only the 0:: line */
    put(root, "unified/slurm/step/hpcri-c2/cpu.stat", "usage_usec 250\nuser_usec 200\n");
    put(root, "unified/slurm/step/hpcri-c2/memory.current", "8192\n");
    put(root, "unified/slurm/step/hpcri-c2/memory.stat",
        "anon 4096\nfile 4096\ninactive_file 1024\n");
    memset(&s, 0, sizeof s);
    T_EQ_INT(hp_step_sample_cgroup("0::/slurm/step\n", root, "hpcri-c2", &s), 0);
    T_ASSERT(s.cpu_ns == 250000 && s.mem_usage == 8192 && s.mem_ws == 7168 && s.mem_rss == 4096);
    rm_rf(root);
}

T_CASE(proc_tree_of_a_child)
{
    /* a child that burns ~0.3 s of CPU, then holds 16 MB and waits */
    int p[2];
    T_ASSERT(pipe(p) == 0);
    pid_t c = fork();
    if (c == 0) {
        struct timespec t0, t;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
        do
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
        while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 300000000L);
        size_t sz = 16u << 20;
        volatile char *m = malloc(sz);
        for (size_t i = 0; m && i < sz; i += 4096)
            m[i] = 1; /* touch every page (volatile: not optimised away) */
        if (write(p[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(m ? 0 : 1);
    }
    char x;
    T_ASSERT(read(p[0], &x, 1) == 1);
    hp_step_sample s;
    memset(&s, 0, sizeof s);
    int rc = hp_step_sample_proc("/proc", getpid(), false, &s);
    hp_step_sample only;
    memset(&only, 0, sizeof only);
    int rc_child = hp_step_sample_proc("/proc", c, true, &only); /* the child alone */
    pid_t none = hp_step_container_pid("/proc", getpid());       /* same mount ns */
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    close(p[0]);
    close(p[1]);
    T_EQ_INT(rc, 0);
    T_EQ_STR(s.src, "proc");
    T_ASSERT(s.has_cpu && s.cpu_ns >= 200000000ull && s.cpu_ns < 5000000000ull);
    T_ASSERT(s.has_mem && s.mem_rss >= (15u << 20) && s.mem_rss < (200u << 20));
    T_ASSERT(s.mem_ws == s.mem_rss);
    T_EQ_INT(none, 0);
    T_EQ_INT(rc_child, 0);
    T_ASSERT(only.cpu_ns >= 200000000ull && only.mem_rss >= (15u << 20));
    /* no descendants: nothing measured */
    memset(&s, 0, sizeof s);
    T_EQ_INT(hp_step_sample_proc("/proc", getpid(), false, &s), -1);
    T_EQ_INT(hp_step_sample_proc("/nonexistent", 1, true, &s), -1);
}

T_CASE(gpu_device_paths)
{
    char h[64], c[64];
    T_EQ_INT(hp_slurm_gpu_device("/dev/nvidia%d", 3, h, sizeof h, c, sizeof c), 0);
    T_EQ_STR(h, "/dev/nvidia3");
    T_EQ_STR(c, "/dev/nvidia3");
    T_EQ_INT(hp_slurm_gpu_device("/tmp/x/dev/fakegpu%d", 1, h, sizeof h, c, sizeof c), 0);
    T_EQ_STR(h, "/tmp/x/dev/fakegpu1");
    T_EQ_STR(c, "/dev/fakegpu1");
    /* a list is indexed in gres.conf order */
    T_EQ_INT(hp_slurm_gpu_device("/dev/dri/card1,/dev/dri/card0", 1, h, sizeof h, c, sizeof c), 0);
    T_EQ_STR(h, "/dev/dri/card0");
    T_EQ_INT(hp_slurm_gpu_device("/dev/dri/card1,/dev/dri/card0", 2, h, sizeof h, c, sizeof c), -1);
    T_EQ_INT(hp_slurm_gpu_device("/dev/only", 0, h, sizeof h, c, sizeof c), 0);
    T_EQ_STR(h, "/dev/only");
    T_EQ_INT(hp_slurm_gpu_device("/dev/only", 1, h, sizeof h, c, sizeof c), -1);
    T_EQ_INT(hp_slurm_gpu_device("/dev/nvidia%d", 10, h, 12, c, sizeof c), -1); /* too small */
    T_EQ_INT(hp_slurm_gpu_device(NULL, 0, h, sizeof h, c, sizeof c), -1);
}

T_MAIN()
