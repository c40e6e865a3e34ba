/* Minimal unit-test harness for hpcri's C tests.
 *
 *   T_CASE(name) { T_ASSERT(x == 1); T_EQ_INT(a, b); T_EQ_STR(s, "x"); }
 *   T_MAIN()
 *
 * A binary runs every case (or `--run NAME` one case, `--list` prints names)
 * and ends with "N passed, N failed"; the exit code is 1 when any case failed.
 * tests/test_unit.py turns every case into its own pytest item.
 */
#ifndef HP_TESTS_T_H
#define HP_TESTS_T_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*t_fn)(int *failed);
struct t_case {
    const char *name;
    t_fn fn;
};

#define T_MAX_CASES 256
static struct t_case t_cases[T_MAX_CASES];
static int t_ncases;

#define T_CASE(name)                                                                               \
    static void t_case_##name(int *t_failed);                                                      \
    __attribute__((constructor)) static void t_reg_##name(void)                                    \
    {                                                                                              \
        if (t_ncases < T_MAX_CASES)                                                                \
            t_cases[t_ncases++] = (struct t_case){#name, t_case_##name};                           \
    }                                                                                              \
    static void t_case_##name(int *t_failed)

#define T_FAIL(...)                                                                                \
    do {                                                                                           \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                          \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        *t_failed = 1;                                                                             \
    } while (0)

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            T_FAIL("assertion failed: %s", #c);                                                    \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define T_EQ_INT(a, b)                                                                             \
    do {                                                                                           \
        long long t_a = (long long)(a), t_b = (long long)(b);                                      \
        if (t_a != t_b) {                                                                          \
            T_FAIL("%s == %s: %lld != %lld", #a, #b, t_a, t_b);                                    \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define T_EQ_STR(a, b)                                                                             \
    do {                                                                                           \
        const char *t_a = (a), *t_b = (b);                                                         \
        if (t_a == NULL || t_b == NULL || strcmp(t_a, t_b) != 0) {                                 \
            T_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, t_a ? t_a : "(null)",                     \
                   t_b ? t_b : "(null)");                                                          \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static inline int t_main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    const char *only = NULL;
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < t_ncases; i++)
            printf("%s\n", t_cases[i].name);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "--run") == 0)
        only = argv[2];
    for (int i = 0; i < t_ncases; i++) {
        int f = 0;
        if (only && strcmp(only, t_cases[i].name) != 0)
            continue;
        t_cases[i].fn(&f);
        printf("%s %s\n", f ? "not ok" : "ok", t_cases[i].name);
        if (f)
            failed++;
        else
            passed++;
    }
    if (only && passed + failed == 0) {
        fprintf(stderr, "no such case: %s\n", only);
        return 2;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#define T_MAIN()                                                                                   \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        return t_main(argc, argv);                                                                 \
    }

#endif
