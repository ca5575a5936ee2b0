/*
 * The guest's only assembly: the entry point and the exception stubs.
 * The host enters at _start in 64-bit mode at CPL3 with RSP and RDI already set
 * (see lib/abi/guest-abi.ts, "Entry"). The stubs are the only CPL0 code besides
 * trap.c: they live in .text.supervisor, which ring 3 can neither read nor run.
 */
#if !defined(__x86_64__)
#error "the nub guest kernel runs in x86-64 long mode"
#endif
#include "nub_abi.h"

    .section .text.entry, "ax"
    .globl _start
_start:
    xor %ebp, %ebp              /* end of the frame-pointer chain */
    call nub_kernel_main        /* RDI = memory size; never returns */
    ud2                         /* (hlt is privileged at CPL3) */

/*
 * The host restarts the vCPU here after stopping an invoke part-way (BootInfo.resume_va):
 * a fresh stack, then serve the request it has written.
 */
    .globl nub_resume
nub_resume:
    lea __stack_top(%rip), %rsp
    call call_loop_resume
    ud2

/*
 * One stub per exception vector. The CPU pushes an error code for some vectors
 * only; the stubs push a 0 for the others so every frame looks the same, then the
 * vector, and hand the frame to C. Exceptions never return (the host abandons a
 * faulted VM), so no registers are preserved.
 */
    .section .text.supervisor, "ax"
    .macro exception_stub vec
exception_\vec:
    .if !((NUB_EXCEPTION_ERROR_CODE_MASK >> \vec) & 1)
    pushq $0
    .endif
    pushq $\vec
    mov %rsp, %rdi              /* struct trap_frame * */
    and $-16, %rsp              /* the ABI's call alignment */
    call nub_on_exception
    ud2
    .endm

    .macro stub_address vec
    .quad exception_\vec
    .endm

    /* for (vec = 0; vec < NUB_EXCEPTION_VECTORS; vec++) `what` vec; (%vec: its value, with .altmacro) */
    .macro for_each_vector what
    .altmacro
    .set vec, 0
    .rept NUB_EXCEPTION_VECTORS
    \what %vec
    .set vec, vec + 1
    .endr
    .noaltmacro
    .endm

    for_each_vector exception_stub

    .section .rodata
    .globl nub_exception_stubs
    .balign 8
nub_exception_stubs:
    for_each_vector stub_address

    .section .note.GNU-stack, "", @progbits
