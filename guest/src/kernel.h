/* Declarations shared by the guest kernel's source files. */
#ifndef NUB_KERNEL_H
#define NUB_KERNEL_H

#if !defined(__x86_64__)
#error "the nub guest kernel runs in x86-64 long mode; build it with an x86-64 gcc"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "nub_abi.h"
#include "params.h"

/* Guest-physical address -> pointer through the kernel's linear map. */
#define PHYS(gpa) ((void *)(uintptr_t)(NUB_GUEST_VA_BASE + (uint64_t)(gpa)))
#define VA(ptr) ((uint64_t)(uintptr_t)(ptr))

/* Symbols placed by guest/kernel.ld. */
extern char _start[];
extern char __load_end[];
extern char __supervisor_start[];
extern char __supervisor_end[];
extern char __readonly_end[];
extern char __stack_guard[];
extern char __stack_top[];
extern const uint64_t nub_exception_stubs[NUB_EXCEPTION_VECTORS]; /* entry.S */

/* arch: the only inline assembly outside entry.S. read_cr2 is CPL0-only (trap.c). */
static inline void outb(uint16_t port, uint8_t value) {
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port) : "memory");
}
/* A VM exit on `port` whose data byte the host ignores (saves setting AL). */
static inline void signal_host(uint16_t port) {
    __asm__ volatile("outb %%al, %0" : : "Nd"(port) : "memory");
}
static inline uint64_t read_cr2(void) {
    uint64_t v;
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}
/* Keeps the compiler from moving stores across a point the host may observe. */
static inline void compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }

/* string.c */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* heap.c */
void heap_init(uint64_t start_va, uint64_t end_va);
void *heap_alloc(uint64_t size, uint64_t align);
void *heap_alloc_offset(uint64_t size, uint64_t align, uint64_t offset);
void *heap_alloc_uninit(uint64_t size, uint64_t align, uint64_t offset);
uint64_t heap_start_va(void);
uint64_t heap_end_va(void);
uint64_t heap_mark(void);
void heap_release(uint64_t mark);

/* directory.c */
bool directory_init(uint64_t memory_size);
struct nub_directory *directory_header(void);
uint32_t directory_put(const uint8_t hash[NUB_HASH_BYTES], uint32_t kind, const uint8_t *bytes, uint64_t len, bool *inserted);
uint32_t directory_reserve(const uint8_t hash[NUB_HASH_BYTES], uint32_t kind, uint64_t len, uint32_t page_offset, void **bytes);
const struct nub_directory_entry *directory_find(const uint8_t hash[NUB_HASH_BYTES]);

/* invoke.c */
uint32_t handle_prepare(volatile struct nub_mailbox *mb, uint8_t *payload);
uint32_t handle_invoke(volatile struct nub_mailbox *mb, uint8_t *payload);

/* selftest.c */
uint32_t selftest_fault(uint64_t scenario);

/* mailbox.c */
_Noreturn void call_loop(void);
extern char nub_resume[]; /* entry.S: where the host restarts a stopped invoke */

#endif /* NUB_KERNEL_H */
