/*
 * Exceptions: every one of the 32 vectors is reported to the host, never a silent
 * triple fault. All of them run on the exception stack (TSS IST1, set up by the
 * host), so even a kernel stack overflow reaches the handler.
 */
#include "kernel.h"

#define EXCEPTION_VECTORS 32
#define IST_EXCEPTIONS 1
#define GATE_INTERRUPT_PRESENT 0x8e /* P=1, DPL=0, 64-bit interrupt gate */

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

struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
};
_Static_assert(sizeof(struct idt_gate) == 16, "an IDT gate is 16 bytes in long mode");

struct __attribute__((packed)) descriptor_pointer {
    uint16_t limit;
    uint64_t base;
};

extern const uint64_t nub_exception_stubs[EXCEPTION_VECTORS];
static struct idt_gate idt[EXCEPTION_VECTORS] __attribute__((aligned(16)));

void traps_init(void) {
    uint16_t code_selector;
    __asm__ volatile("mov %%cs, %0" : "=r"(code_selector));
    for (int v = 0; v < EXCEPTION_VECTORS; v++) {
        uint64_t target = nub_exception_stubs[v];
        idt[v] = (struct idt_gate){
            .offset_low = (uint16_t)target,
            .selector = code_selector,
            .ist = IST_EXCEPTIONS,
            .type_attr = GATE_INTERRUPT_PRESENT,
            .offset_mid = (uint16_t)(target >> 16),
            .offset_high = (uint32_t)(target >> 32),
        };
    }
    struct descriptor_pointer idtr = { .limit = sizeof(idt) - 1, .base = VA(idt) };
    __asm__ volatile("lidt %0" : : "m"(idtr));
}

/*
 * Fills the fault record and tells the host. Only the first fault's details are
 * kept: if this handler itself faults, the nested call just bumps `count` and
 * signals again, touching as little as possible.
 */
_Noreturn void nub_on_exception(const struct trap_frame *frame) {
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
