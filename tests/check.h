/* check.h — a tiny test harness: each test file is one executable registered with ctest.
 * CHECK(cond) records a failure with file/line and goes on; main() returns check_report(). */
#ifndef LOOM_CHECK_H
#define LOOM_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        check_count++;                                                                     \
        if (!(cond)) {                                                                     \
            check_failures++;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
        }                                                                                  \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, atol, rtol)                                                      \
    do {                                                                                   \
        double check_a_ = (double)(a), check_b_ = (double)(b);                             \
        check_count++;                                                                     \
        if (!(fabs(check_a_ - check_b_) <= (atol) + (rtol) * fabs(check_b_))) {            \
            check_failures++;                                                              \
            fprintf(stderr, "%s:%d: CHECK_CLOSE failed: %s = %.9g, %s = %.9g\n", __FILE__,  \
                    __LINE__, #a, check_a_, #b, check_b_);                                 \
        }                                                                                  \
    } while (0)

#define CHECK_STATUS(expr, expected)                                                       \
    do {                                                                                   \
        int check_s_ = (int)(expr);                                                        \
        check_count++;                                                                     \
        if (check_s_ != (int)(expected)) {                                                 \
            check_failures++;                                                              \
            fprintf(stderr, "%s:%d: %s returned %d, expected %s (%d)\n", __FILE__, __LINE__, \
                    #expr, check_s_, #expected, (int)(expected));                          \
        }                                                                                  \
    } while (0)

static int check_report(const char *suite) {
    printf("%s: %d checks, %d failed\n", suite, check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
