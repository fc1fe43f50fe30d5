/* sl-rusage -o FILE CMD ARGS...: runs CMD and writes to FILE what GNU time's `-f '%U %S %M %e'` would (user and
 * system CPU in seconds, peak RSS in KiB, wall seconds), with the CPU times to the microsecond: GNU time prints
 * hundredths, a step of 5 % of a 0.2 s run. The figures are wait4's rusage of CMD (its threads, and the children it
 * waited for). Exits with CMD's status (128 + N when a signal N ended it; 127 when CMD cannot be started).
 *
 * It is C, and starts CMD with posix_spawn, so that the figures are CMD's alone. A process started by a fork of a
 * larger one is charged for the copy of that one's page tables and the faults of its copy-on-write pages until it
 * executes (from a Python interpreter, ~15 ms on a 2-core VM: more than a 2,000-object job's whole difference between
 * two clients), and the kernel carries the larger one's peak RSS over into the new program's: a client smaller than
 * the interpreter would be reported at the interpreter's size. */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double s_seconds(struct timeval tv) {
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 4 || strcmp(argv[1], "-o") != 0) {
        fprintf(stderr, "usage: sl-rusage -o FILE CMD ARGS...\n");
        return 2;
    }
    const char *out = argv[2];
    double t0 = s_now();
    pid_t pid;
    int err = posix_spawnp(&pid, argv[3], NULL, NULL, &argv[3], environ);
    if (err) {
        fprintf(stderr, "sl-rusage: %s: %s\n", argv[3], strerror(err));
        return 127;
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "sl-rusage: wait4: %s\n", strerror(errno));
            return 2;
        }
    }
    double wall = s_now() - t0;
    FILE *f = fopen(out, "w");
    if (!f ||
        fprintf(f, "%.6f %.6f %ld %.3f\n", s_seconds(ru.ru_utime), s_seconds(ru.ru_stime), ru.ru_maxrss, wall) < 0 ||
        fclose(f) != 0) {
        fprintf(stderr, "sl-rusage: %s: %s\n", out, strerror(errno));
        return 2;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
