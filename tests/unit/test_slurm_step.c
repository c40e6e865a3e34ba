/* Step monitor pieces of the slurm backend: CRI log prefixes, GPU index
 * parsing, state -> reason, and the detached monitor itself (run with
 * plain programs instead of srun; no cluster needed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/slurm/step.h"
#include "t.h"

T_CASE(log_prefix)
{
    char buf[80];
    size_t n = hp_slurm_log_prefix(0, "stdout", 'F', buf, sizeof buf);
    buf[n] = '\0';
    T_EQ_STR(buf, "1970-01-01T00:00:00.000000000Z stdout F ");
    /* 2024-02-29T23:59:59.123456789Z (leap day) */
    n = hp_slurm_log_prefix(1709251199123456789LL, "stderr", 'P', buf, sizeof buf);
    buf[n] = '\0';
    T_EQ_STR(buf, "2024-02-29T23:59:59.123456789Z stderr P ");
    n = hp_slurm_log_prefix(4102444800000000001LL, "stdout", 'F', buf, sizeof buf);
    buf[n] = '\0';
    T_EQ_STR(buf, "2100-01-01T00:00:00.000000001Z stdout F ");
    T_EQ_INT(hp_slurm_log_prefix(0, "stdout", 'F', buf, 10), 0);
}

T_CASE(gpu_idx)
{
    char b[64];
    const char *out = "JobId=5 JobName=x\n   Nodes=n1 CPU_IDs=0-1 Mem=512 GRES=gpu:2(IDX:0-1)\n";
    T_EQ_INT(hp_slurm_gpu_idx(out, b, sizeof b), 0);
    T_EQ_STR(b, "0,1");
    T_EQ_INT(hp_slurm_gpu_idx("Nodes=n GRES=gpu:a100:3(IDX:0,2-3)", b, sizeof b), 0);
    T_EQ_STR(b, "0,2,3");
    T_EQ_INT(hp_slurm_gpu_idx("Nodes=n GRES=", b, sizeof b), -1);
    T_EQ_INT(hp_slurm_gpu_idx("JOB_GRES=gpu:2 Nodes=n", b, sizeof b), -1);
    T_EQ_INT(hp_slurm_gpu_idx("Nodes=n GRES=gpu:1(IDX:x)", b, sizeof b), -1);
    T_EQ_INT(hp_slurm_gpu_idx("Nodes=n GRES=gpu:2(IDX:0-1)", b, 3), -1); /* too small */
}

T_CASE(state_reason)
{
    T_EQ_STR(hp_slurm_state_reason("CANCELLED"), "Cancelled");
    T_EQ_STR(hp_slurm_state_reason("TIMEOUT"), "SlurmTimeLimit");
    T_EQ_STR(hp_slurm_state_reason("OUT_OF_MEMORY"), "OOMKilled");
    T_EQ_STR(hp_slurm_state_reason("NODE_FAIL"), "NodeFail");
    T_ASSERT(hp_slurm_state_reason("COMPLETED") == NULL);
    T_ASSERT(hp_slurm_state_reason("RUNNING") == NULL);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *s = calloc(1, 65536);
    if (s)
        fread(s, 1, 65535, f);
    fclose(f);
    return s;
}

static int wait_exit_file(const char *dir, int32_t *code)
{
    int64_t fin;
    for (int i = 0; i < 500; i++) {
        if (hp_slurm_read_exit(dir, code, &fin) == 0)
            return 0;
        usleep(10000);
    }
    return -1;
}

T_CASE(monitor_logs_and_exit)
{
    char dir[] = "/tmp/hpcri-step-test.XXXXXX";
    T_ASSERT(mkdtemp(dir));
    char log[200];
    snprintf(log, sizeof log, "%s/c.log", dir);
    char *const argv[] = {"printf", "one\\ntwo\\npartial", NULL};
    pid_t mon = 0;
    hp_err err = HP_ERR_INIT;
    T_ASSERT(hp_slurm_monitor_spawn("/usr/bin/printf", argv, log, dir, &mon, &err) == 0);
    T_ASSERT(mon > 0);
    int32_t code = -1;
    T_ASSERT(wait_exit_file(dir, &code) == 0);
    T_EQ_INT(code, 0);
    pid_t m2, s2;
    int64_t started;
    T_ASSERT(hp_slurm_read_monitor(dir, &m2, &s2, &started) == 0);
    T_EQ_INT(m2, mon);
    T_ASSERT(started > 0);
    char *s = slurp(log);
    T_ASSERT(s);
    int ok = strstr(s, " stdout F one\n") && strstr(s, " stdout F two\n") &&
             strstr(s, " stdout F partial\n") && s[4] == '-' && s[10] == 'T';
    free(s);
    T_ASSERT(ok);

    /* non-zero exit; no log path */
    char dir2[] = "/tmp/hpcri-step-test.XXXXXX";
    T_ASSERT(mkdtemp(dir2));
    char *const fargv[] = {"false", NULL};
    T_ASSERT(hp_slurm_monitor_spawn("/bin/false", fargv, NULL, dir2, &mon, &err) == 0);
    T_ASSERT(wait_exit_file(dir2, &code) == 0);
    T_EQ_INT(code, 1);

    /* a program that cannot be run: an error, no exit file */
    char dir3[] = "/tmp/hpcri-step-test.XXXXXX";
    T_ASSERT(mkdtemp(dir3));
    T_ASSERT(hp_slurm_monitor_spawn("/nonexistent/srun", fargv, NULL, dir3, &mon, &err) < 0);
    T_ASSERT(strstr(err.msg, "/nonexistent/srun") != NULL);

    char cmd[300];
    const char *dirs[] = {dir, dir2, dir3};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "%s/monitor", dirs[i]);
        unlink(cmd);
        snprintf(cmd, sizeof cmd, "%s/exit", dirs[i]);
        unlink(cmd);
        snprintf(cmd, sizeof cmd, "%s/c.log", dirs[i]);
        unlink(cmd);
        rmdir(dirs[i]);
    }
}

T_MAIN()
