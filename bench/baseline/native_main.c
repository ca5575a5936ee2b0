/*
 * Host x86-64 driver of an example built natively with gcc -O2 (the same source as
 * its image, with the Linux build's endpoint table), for bench/recompiler.ts:
 *
 *   native-<name> REPEAT KEY [ARG]...   runs the endpoint REPEAT times; prints its
 *                                       result and the fastest run in CPU nanoseconds
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nub.h"

extern const struct nub_linux_endpoint __start_nub_endpoints[], __stop_nub_endpoints[];

/* CPU time of this thread, as the engine harness measures: preemption does not count. */
static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 7) return 2;
    long repeat = strtol(argv[1], 0, 10);
    uint64_t key = strtoull(argv[2], 0, 10), args[4] = {0, 0, 0, 0};
    for (int i = 3; i < argc; i++) args[i - 3] = strtoull(argv[i], 0, 10);
    for (const struct nub_linux_endpoint *ep = __start_nub_endpoints; ep < __stop_nub_endpoints; ep++) {
        if (ep->key != key) continue;
        uint64_t best = UINT64_MAX, result = 0;
        for (long r = 0; r < repeat; r++) {
            uint64_t t0 = now_ns();
            result = ep->fn(args[0], args[1], args[2], args[3]);
            uint64_t t = now_ns() - t0;
            if (t < best) best = t;
        }
        printf("%llu %llu\n", (unsigned long long)result, (unsigned long long)best);
        return 0;
    }
    return 2;
}
