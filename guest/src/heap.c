/*
 * Guest memory above the kernel stack, shared by two bump allocators that grow
 * towards each other:
 *   - the heap, from the bottom: what lives as long as the guest (the directory, stored
 *     caps, prepared programs). Nothing is freed.
 *   - the scratch area, from the top: one invocation's memory (its page table, private
 *     pages). INVOKE resets it, so its pages stay readable by the host until the next one.
 * Memory starts zero-filled, but scratch pages are reused, so scratch users clear them.
 */
#include "kernel.h"

static uint64_t heap_start, heap_next, scratch_next, heap_end;

void heap_init(uint64_t start_va, uint64_t end_va) {
    heap_start = heap_next = start_va;
    scratch_next = heap_end = end_va;
}

/*
 * `size` bytes at an address `at` with `at + offset` a multiple of `align` (a power of
 * two; PUT_CAPS uses the offset to put a cap's pages on page boundaries). Returns NULL
 * when the heap would run into the scratch area.
 */
void *heap_alloc_offset(uint64_t size, uint64_t align, uint64_t offset) {
    uint64_t at = ((heap_next + offset + align - 1) & ~(align - 1)) - offset;
    if (at < heap_next || at > scratch_next || size > scratch_next - at) return NULL;
    heap_next = at + size;
    return (void *)(uintptr_t)at;
}

void *heap_alloc(uint64_t size, uint64_t align) { return heap_alloc_offset(size, align, 0); }

/* Scratch memory: from the top down, never below the heap. */
void *scratch_alloc(uint64_t size, uint64_t align) {
    if (size > scratch_next - heap_next) return NULL;
    uint64_t at = (scratch_next - size) & ~(align - 1);
    if (at < heap_next) return NULL;
    scratch_next = at;
    return (void *)(uintptr_t)at;
}

void scratch_reset(void) { scratch_next = heap_end; }

uint64_t heap_start_va(void) { return heap_start; }
uint64_t heap_end_va(void) { return heap_end; }
