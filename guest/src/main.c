/*
 * The guest kernel's boot, at CPL3: the host has already put the CPU in 64-bit long
 * mode (GDT, IDT over our exception stubs, TSS, page tables, control registers, stack),
 * so what is left is short, and none of it needs privilege.
 */
#include "kernel.h"

#define KERNEL_VERSION 1

/* The first bytes of kernel.bin (see guest/kernel.ld): how the host starts us. */
__attribute__((section(".nub_header"), used)) static const struct nub_kernel_header kernel_header = {
    .magic = NUB_BOOT_KERNEL_HEADER_MAGIC,
    .layout_version = NUB_BOOT_INFO_LAYOUT_VERSION,
    .entry_va = (uint64_t)(uintptr_t)_start,
    .load_end_va = (uint64_t)(uintptr_t)__load_end,
    .stack_guard_va = (uint64_t)(uintptr_t)__stack_guard,
    .stack_top_va = (uint64_t)(uintptr_t)__stack_top,
    .exception_stubs_va = (uint64_t)(uintptr_t)nub_exception_stubs,
    .supervisor_start_va = (uint64_t)(uintptr_t)__supervisor_start,
    .supervisor_end_va = (uint64_t)(uintptr_t)__supervisor_end,
    .readonly_end_va = (uint64_t)(uintptr_t)__readonly_end,
};

/* Last step of boot: the host treats a valid magic as "ready", so it is written last. */
static void publish_boot_info(uint64_t memory_size) {
    volatile struct nub_boot_info *info = PHYS(NUB_BOOT_INFO_GPA);
    info->layout_version = NUB_BOOT_INFO_LAYOUT_VERSION;
    info->directory_layout = NUB_BOOT_DIRECTORY_LAYOUT_ID;
    info->directory_va = VA(directory_header());
    info->guest_va_base = NUB_GUEST_VA_BASE;
    info->memory_size = memory_size;
    info->heap_start = heap_start_va();
    info->heap_end = heap_end_va();
    info->page_table_root = NUB_PAGE_TABLES_GPA; /* the host's first table (CR3 is not readable at CPL3) */
    info->kernel_version = KERNEL_VERSION;
    info->resume_va = VA(nub_resume);
    compiler_barrier();
    info->magic = NUB_BOOT_INFO_MAGIC;
}

_Noreturn void nub_kernel_main(uint64_t memory_size) {
    heap_init(VA(__stack_top), NUB_GUEST_VA_BASE + memory_size - NUB_CODE_ARENA_SIZE); /* between the stack and the code arena */
    if (!directory_init(memory_size)) __builtin_trap();               /* no room: reported as #UD */
    publish_boot_info(memory_size);                                   /* the host may read us from now on */
    call_loop();                                                      /* serve mailbox requests forever */
}
