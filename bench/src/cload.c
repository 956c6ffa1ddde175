/* Module load in a C program: dlopen(RTLD_NOW) + dlclose of each shared object named on the
 * command line, interleaved, N times; prints "p50 p90 path" (microseconds) per object.
 *
 * The bench's own workers are Rust programs, which have libgcc_s.so.1 loaded before any module
 * is: a module that needs it finds it there. sshd, sudo, su and vsftpd are C programs without
 * it, as is this one, so here a module pays for every library it pulls in. Built by the bench
 * with the system's cc (twofa-bench, "C program" load rows). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s N OBJECT...\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]), k = argc - 2;
    if (n < 1) {
        fprintf(stderr, "N must be > 0\n");
        return 2;
    }
    double *t = calloc((size_t)n * (size_t)k, sizeof(double));
    if (!t) return 1;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < k; j++) {
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            void *h = dlopen(argv[2 + j], RTLD_NOW | RTLD_LOCAL);
            if (!h) {
                fprintf(stderr, "%s\n", dlerror());
                return 1;
            }
            dlclose(h);
            clock_gettime(CLOCK_MONOTONIC, &b);
            t[(size_t)j * n + i] = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3;
        }
    }
    for (int j = 0; j < k; j++) {
        double *v = t + (size_t)j * n;
        qsort(v, n, sizeof(double), by_value);
        printf("%.1f %.1f %s\n", v[n / 2], v[(n * 9) / 10], argv[2 + j]);
    }
    return 0;
}
