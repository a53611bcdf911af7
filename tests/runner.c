/* The test runner: see tests/test.h. Usage: sluice-tests [-l] [--no-fork] [pattern ...] */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define EXIT_SKIP 77

/* Present under LeakSanitizer (make asan): forked children end with _exit, which skips the
 * at-exit leak check, so run it explicitly; a leak then fails the test. */
extern void __lsan_do_leak_check(void) __attribute__((weak));

static sl_test_case *g_head;
static int g_failed, g_skipped;
static char g_tmp[512];

void sl_test_register(sl_test_case *c) {
    /* keep registration order stable: append */
    sl_test_case **p = &g_head;
    while (*p) p = &(*p)->next;
    *p = c;
}

void sl_test_fail(const char *file, int line, const char *fmt, ...) {
    g_failed++;
    if (g_failed > 20) return; /* enough to see the pattern */
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "    %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

void sl_test_skip(const char *fmt, ...) {
    g_skipped = 1;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "    skip: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

int sl_test_failed(void) { return g_failed; }

const char *sl_test_tmpdir(void) { return g_tmp; }

const char *sl_test_root(void) {
    static char root[1024];
    if (!root[0] && !getcwd(root, sizeof root)) strcpy(root, ".");
    return root;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int matches(const char *name, int argc, char **argv) {
    int any = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;
        any = 1;
        if (strstr(name, argv[i])) return 1;
    }
    if (any) return 0;
    return 1;
}

static void rm_rf(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

static int run_one(sl_test_case *t) {
    g_failed = 0;
    g_skipped = 0;
    snprintf(g_tmp, sizeof g_tmp, "%s/sluice-test-%d-%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid(), t->name);
    mkdir(g_tmp, 0700);
    t->fn();
    int rc = g_failed ? 1 : g_skipped ? EXIT_SKIP : 0;
    if (rc != 1) rm_rf(g_tmp);
    else fprintf(stderr, "    (scratch kept in %s)\n", g_tmp);
    return rc;
}

int main(int argc, char **argv) {
    int no_fork = 0, list = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-fork")) no_fork = 1;
        if (!strcmp(argv[i], "-l")) list = 1;
    }
    int pass = 0, fail = 0, skip = 0;
    unsigned timeout = getenv("SLUICE_TEST_TIMEOUT") ? (unsigned)atoi(getenv("SLUICE_TEST_TIMEOUT")) : 900;
    char failed_names[4096] = "";
    for (sl_test_case *t = g_head; t; t = t->next) {
        if (!matches(t->name, argc, argv)) continue;
        /* gpu_* tests run only when asked for by name or SLUICE_TEST_GPU=1 */
        if (!strncmp(t->name, "gpu_", 4) && !getenv("SLUICE_TEST_GPU")) {
            int asked = 0;
            for (int i = 1; i < argc; i++)
                if (argv[i][0] != '-' && strstr(t->name, argv[i])) asked = 1;
            if (!asked) continue;
        }
        if (list) {
            printf("%s\n", t->name);
            continue;
        }
        fflush(stdout);
        double t0 = now_ms();
        int rc;
        if (no_fork) {
            rc = run_one(t);
        } else {
            pid_t pid = fork();
            if (pid == 0) {
                alarm(timeout);
                rc = run_one(t);
                fflush(stdout);
                fflush(stderr);
                if (__lsan_do_leak_check) __lsan_do_leak_check();
                _exit(rc);
            }
            int status = 0;
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            if (WIFEXITED(status)) rc = WEXITSTATUS(status);
            else {
                fprintf(stderr, "    crashed: signal %d (%s)\n", WTERMSIG(status), strsignal(WTERMSIG(status)));
                rc = 1;
            }
        }
        double ms = now_ms() - t0;
        if (rc == 0) {
            pass++;
            printf("PASS %-48s %8.1f ms\n", t->name, ms);
        } else if (rc == EXIT_SKIP) {
            skip++;
            printf("SKIP %s\n", t->name);
        } else {
            fail++;
            printf("FAIL %-48s %8.1f ms  (%s)\n", t->name, ms, t->file);
            if (strlen(failed_names) + strlen(t->name) + 2 < sizeof failed_names) {
                strcat(failed_names, " ");
                strcat(failed_names, t->name);
            }
        }
        fflush(stdout);
    }
    if (list) return 0;
    if (fail) printf("failed:%s\n", failed_names);
    printf("%d passed, %d failed, %d skipped\n", pass, fail, skip);
    return fail ? 1 : 0;
}
