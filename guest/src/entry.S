/*
 * The guest's only assembly: the entry point and the exception stubs.
 * The host enters at _start in 64-bit mode at CPL3 with RSP and RDI already set
 * (see lib/abi/guest-abi.ts, "Entry"). The stubs are the only CPL0 code besides
 * trap.c: they live in .text.supervisor, which ring 3 can neither read nor run.
 */
#if !defined(__x86_64__)
#error "the nub guest kernel runs in x86-64 long mode"
#endif

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
    .if !((\vec == 8) || (\vec == 10) || (\vec == 11) || (\vec == 12) || (\vec == 13) || (\vec == 14) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30))
    pushq $0
    .endif
    pushq $\vec
    mov %rsp, %rdi              /* struct trap_frame * */
    and $-16, %rsp              /* the ABI's call alignment */
    call nub_on_exception
    ud2
    .endm

    .irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    exception_stub \vec
    .endr

    .section .rodata
    .globl nub_exception_stubs
    .balign 8
nub_exception_stubs:
    .irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad exception_\vec
    .endr

    .section .note.GNU-stack, "", @progbits
