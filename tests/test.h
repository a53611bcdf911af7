/* tests/test.h — the table-driven test runner's interface.
 *
 * A test is `SL_TEST(name) { ... }` in any test file under tests/; it registers itself at start-up. The
 * runner (tests/runner.c) runs each test in a forked child (a crash fails that test only), prints
 * PASS/FAIL/SKIP per test and finally `N passed, N failed, N skipped`.
 * Arguments select tests whose name contains any of them; `gpu` tests are named gpu_*.
 *
 * Inside a test: CHECK(cond) records a failure and continues; REQUIRE(cond) records and returns;
 * CHECK_NEAR(a, b, tol); SKIP("why") ends the test as skipped (a test that lacks a GPU, a fixture
 * or a file skips, never passes). */
#ifndef SL_TESTS_TEST_H
#define SL_TESTS_TEST_H

#include <math.h>
#include <stdio.h>

typedef struct sl_test_case {
    const char *name;
    void (*fn)(void);
    const char *file;
    struct sl_test_case *next;
} sl_test_case;

void sl_test_register(sl_test_case *c);
void sl_test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void sl_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int sl_test_failed(void);
/* A writable scratch directory for this test (created on first call, removed after a pass). */
const char *sl_test_tmpdir(void);
/* Repository root (tests run from it; fixtures live under tests/fixtures). */
const char *sl_test_root(void);

#define SL_TEST(name)                                                                              \
    static void name(void);                                                                        \
    __attribute__((constructor)) static void sl_test_reg_##name(void) {                            \
        static sl_test_case c = {#name, name, __FILE__, 0};                                        \
        sl_test_register(&c);                                                                      \
    }                                                                                              \
    static void name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) sl_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                         \
    } while (0)
#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) sl_test_fail(__FILE__, __LINE__, __VA_ARGS__);                                \
    } while (0)
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            sl_test_fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond);                                \
            return;                                                                                \
        }                                                                                          \
    } while (0)
#define REQUIREF(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            sl_test_fail(__FILE__, __LINE__, __VA_ARGS__);                                         \
            return;                                                                                \
        }                                                                                          \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            sl_test_fail(__FILE__, __LINE__, "CHECK_NEAR(%s, %s): %.9g vs %.9g (tol %g)", #a, #b,  \
                         a_, b_, (double)(tol));                                                   \
    } while (0)
#define SKIP(...)                                                                                  \
    do {                                                                                           \
        sl_test_skip(__VA_ARGS__);                                                                 \
        return;                                                                                    \
    } while (0)
/* Status checks: REQUIRE_OK(expr) with err's message on failure. */
#define REQUIRE_OK(expr, err)                                                                      \
    do {                                                                                           \
        sl_status st_ = (expr);                                                                    \
        if (st_ != SL_OK) {                                                                        \
            sl_test_fail(__FILE__, __LINE__, "%s -> %s: %s", #expr, sl_status_str(st_),            \
                         (err)->msg);                                                              \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#endif
