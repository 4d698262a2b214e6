/* A tiny test harness: assertions that print both values, a table of named cases, and a
 * closing "N passed, N failed" line. Exit status 0 (all passed), 1 (a failure) or 77
 * (skipped: the environment lacks a capability; the reason is printed). */
#ifndef RILL_TEST_HARNESS_H
#define RILL_TEST_HARNESS_H

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define T_EXIT_SKIP 77

/* A failed assertion returns from the current case (a case is `static int name(void)`). */
#define T_FAIL_AT_(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__);                                     \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        return 1;                                                                                  \
    } while (0)

#define ASSERT_TRUE(c)                                                                             \
    do {                                                                                           \
        if (!(c))                                                                                  \
            T_FAIL_AT_("expected true: %s", #c);                                                   \
    } while (0)

#define ASSERT_INT_OP_(a, op, b)                                                                   \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (!(a_ op b_))                                                                           \
            T_FAIL_AT_("%s %s %s  (%lld vs %lld)", #a, #op, #b, a_, b_);                           \
    } while (0)
#define ASSERT_UINT_OP_(a, op, b)                                                                  \
    do {                                                                                           \
        unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);             \
        if (!(a_ op b_))                                                                           \
            T_FAIL_AT_("%s %s %s  (%llu vs %llu)", #a, #op, #b, a_, b_);                           \
    } while (0)

#define ASSERT_EQ(a, b) ASSERT_INT_OP_(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_INT_OP_(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_INT_OP_(a, <, b)
#define ASSERT_LE(a, b) ASSERT_INT_OP_(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_INT_OP_(a, >, b)
#define ASSERT_GE(a, b) ASSERT_INT_OP_(a, >=, b)
#define ASSERT_U64_EQ(a, b) ASSERT_UINT_OP_(a, ==, b)
#define ASSERT_U64_LE(a, b) ASSERT_UINT_OP_(a, <=, b)
#define ASSERT_U64_GE(a, b) ASSERT_UINT_OP_(a, >=, b)
#define ASSERT_PTR_NE(a, b)                                                                        \
    do {                                                                                           \
        if ((const void *)(a) == (const void *)(b))                                                \
            T_FAIL_AT_("%s != %s  (both %p)", #a, #b, (const void *)(a));                          \
    } while (0)
#define ASSERT_MEM_EQ(a, b, n)                                                                     \
    do {                                                                                           \
        if (memcmp((a), (b), (n)) != 0)                                                            \
            T_FAIL_AT_("memory %s == %s over %zu bytes", #a, #b, (size_t)(n));                     \
    } while (0)
#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (strcmp(a_, b_) != 0)                                                                   \
            T_FAIL_AT_("%s == %s  (\"%s\" vs \"%s\")", #a, #b, a_, b_);                            \
    } while (0)

/* Marks the current case as skipped (environment lacks something) with a reason. */
#define T_SKIP(...)                                                                                \
    do {                                                                                           \
        fprintf(stderr, "  SKIP: ");                                                               \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        return T_EXIT_SKIP;                                                                        \
    } while (0)

typedef struct t_case {
    const char *name;
    int (*fn)(void);
} t_case_t;

/* Runs every case (or only the one named by argv[1]); prints one line per case and the
 * closing tally. */
static inline int t_run(const char *suite, const t_case_t *cases, int argc, char **argv)
{
    int passed = 0, failed = 0, skipped = 0;
    for (const t_case_t *c = cases; c->name; c++) {
        if (argc > 1 && strcmp(argv[1], c->name) != 0)
            continue;
        fprintf(stderr, "[%s] %s ...\n", suite, c->name);
        int rc = c->fn();
        if (rc == 0) {
            passed++;
            fprintf(stderr, "[%s] %s ok\n", suite, c->name);
        } else if (rc == T_EXIT_SKIP) {
            skipped++;
            fprintf(stderr, "[%s] %s skipped\n", suite, c->name);
        } else {
            failed++;
            fprintf(stderr, "[%s] %s FAILED\n", suite, c->name);
        }
    }
    printf("%s: %d passed, %d failed, %d skipped\n", suite, passed, failed, skipped);
    if (failed)
        return 1;
    if (passed == 0 && skipped > 0)
        return T_EXIT_SKIP;
    return 0;
}

/* ------------------------------------------------------------ io_uring probe */

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425 /* one number on every architecture but alpha */
#endif

/* Returns 1 when this process cannot use io_uring at all: io_uring_setup fails with
 * ENOSYS (a kernel without it, or a seccomp filter answering so) or EPERM (the sysctl
 * kernel.io_uring_disabled, a seccomp filter, a container's policy); the reason goes to
 * why. Returns 0 otherwise, also for other errors (e.g. ENOMEM), which the test then meets
 * and reports itself. The raw syscall, not liburing: tests/api sees rill.h only. */
static inline int t_io_uring_unavailable(char *why, size_t cap)
{
    /* struct io_uring_params (120 bytes), all zero: no flags, nothing special asked. Not
     * <linux/io_uring.h>: it would shadow liburing's copy in tests that see core/. */
    uint64_t params[15];
    memset(params, 0, sizeof params);
    long fd = syscall(__NR_io_uring_setup, 1u, params);
    if (fd >= 0) {
        close((int)fd);
        return 0;
    }
    int err = errno;
    if (err != ENOSYS && err != EPERM)
        return 0;
    const char *hint = err == ENOSYS ? "no io_uring in this kernel, or a seccomp filter"
                                     : "a seccomp filter or a container's policy";
    char sysctl[48];
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    if (f) {
        int v = 0;
        if (fscanf(f, "%d", &v) == 1 && v != 0) {
            snprintf(sysctl, sizeof sysctl, "kernel.io_uring_disabled = %d", v);
            hint = sysctl;
        }
        fclose(f);
    }
    snprintf(why, cap, "io_uring_setup: %s (%s; %s)", strerror(err),
             err == ENOSYS ? "ENOSYS" : "EPERM", hint);
    return 1;
}

/* Exits 77 (skipped), saying why, when io_uring is unavailable (t_io_uring_unavailable).
 * Call it first in main() of every test that starts a worker. */
static inline void t_require_io_uring(const char *suite)
{
    char why[256];
    if (t_io_uring_unavailable(why, sizeof why)) {
        printf("%s: skipped: io_uring unavailable: %s\n", suite, why);
        fflush(stdout);
        exit(T_EXIT_SKIP);
    }
}

#endif /* RILL_TEST_HARNESS_H */
