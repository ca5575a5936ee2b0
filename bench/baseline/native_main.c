/*
 * Host x86-64 driver of an example built natively with gcc -O2 (the same source as
 * its image, with the Linux build's endpoint table), for bench/recompiler.ts:
 *
 *   native-<name> KEY [ARG]...   runs the endpoint once (examples may keep state, and
 *                                the engine harness also runs once per process); prints
 *                                its result and the CPU nanoseconds it took
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
    if (argc < 2 || argc > 6) return 2;
    uint64_t key = strtoull(argv[1], 0, 10), args[4] = {0, 0, 0, 0};
    for (int i = 2; i < argc; i++) args[i - 2] = strtoull(argv[i], 0, 10);
    for (const struct nub_linux_endpoint *ep = __start_nub_endpoints; ep < __stop_nub_endpoints; ep++) {
        if (ep->key != key) continue;
        uint64_t t0 = now_ns();
        uint64_t result = ep->fn(args[0], args[1], args[2], args[3]);
        uint64_t t = now_ns() - t0;
        printf("%llu %llu\n", (unsigned long long)result, (unsigned long long)t);
        return 0;
    }
    return 2;
}
