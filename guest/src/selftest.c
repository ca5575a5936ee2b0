/* Test-only scenarios that fault on purpose, to prove faults reach the host. */
#include "kernel.h"

uint32_t selftest_fault(uint64_t scenario) {
    switch (scenario) {
    case NUB_SELFTEST_DIVIDE_ERROR: {
        uint32_t zero = 0;
        __asm__ volatile("divl %1" : : "a"(1), "r"(zero), "d"(0));
        break;
    }
    case NUB_SELFTEST_PAGE_FAULT:
        (void)*(volatile uint64_t *)PHYS(0); /* the null page is never mapped */
        break;
    case NUB_SELFTEST_INVALID_OPCODE:
        __asm__ volatile("ud2");
        break;
    case NUB_SELFTEST_STACK_OVERFLOW:
        __asm__ volatile("1: push %%rax\n\tjmp 1b" : : : "memory"); /* runs into the guard page */
        break;
    }
    return NUB_STATUS_BAD_ARGS; /* unknown scenario */
}
