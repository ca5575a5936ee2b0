/* Test-only scenarios that fault on purpose (all at CPL3), to prove faults reach the host and ring 3 cannot touch what it must not. */
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
    case NUB_SELFTEST_WRITE_PAGE_TABLES:
        *(volatile uint64_t *)PHYS(NUB_PAGE_TABLES_GPA) = 0; /* supervisor-only */
        break;
    case NUB_SELFTEST_WRITE_TEXT:
        *(volatile uint8_t *)(void *)selftest_fault = 0xcc; /* read-only */
        break;
    case NUB_SELFTEST_PRIVILEGED_INSTRUCTION:
        __asm__ volatile("hlt");
        break;
    }
    return NUB_STATUS_BAD_ARGS; /* unknown scenario */
}
