/*
 * Exceptions: every one of the 32 vectors is reported to the host, never a silent
 * triple fault. The host builds the IDT from nub_exception_stubs (entry.S) before the
 * first instruction runs, with every gate on the exception stack (TSS IST1), so even
 * a fault during boot or a kernel stack overflow reaches the handler.
 *
 * This file is the kernel's only C code that runs at CPL0 (built with
 * -mgeneral-regs-only: the emulated CPL0 of some hosts has no SSE). It calls nothing,
 * so it never runs ring-3 code with supervisor rights.
 */
#include "kernel.h"

/* What entry.S hands to nub_on_exception: its two pushes, then the CPU's frame. */
struct trap_frame {
    uint64_t vector;
    uint64_t error_code;
    uint64_t rip;
    uint64_t cs;
    uint64_t rflags;
    uint64_t rsp;
    uint64_t ss;
};

/*
 * Fills the fault record and tells the host. Only the first fault's details are
 * kept: if this handler itself faults, the nested call just bumps `count` and
 * signals again, touching as little as possible.
 */
__attribute__((section(".text.supervisor"))) _Noreturn void nub_on_exception(const struct trap_frame *frame) {
    volatile struct nub_fault *record = PHYS(NUB_FAULT_GPA);
    uint64_t count = record->count + 1;
    record->count = count;
    if (count == 1) {
        record->vector = frame->vector;
        record->error_code = frame->error_code;
        record->rip = frame->rip;
        record->cs = frame->cs;
        record->rflags = frame->rflags;
        record->rsp = frame->rsp;
        record->cr2 = read_cr2();
    }
    for (;;) outb(NUB_PORT_FAULT, (uint8_t)frame->vector); /* the host does not resume a faulted VM */
}
