/* A tiny test harness: assertions that print both values, a table of named cases, and a
 * closing "N passed, N failed" line. Exit status 0 (all passed), 1 (a failure) or 77
 * (skipped: the environment lacks a capability; the reason is printed). */
#ifndef RILL_TEST_HARNESS_H
#define RILL_TEST_HARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif /* RILL_TEST_HARNESS_H */
