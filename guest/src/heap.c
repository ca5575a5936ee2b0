/*
 * The kernel heap: a bump allocator over [stack top, end of memory). Nothing is
 * freed (the directory never removes entries, prepared images live as long as the
 * guest). Memory starts zero-filled.
 */
#include "kernel.h"

static uint64_t heap_start, heap_next, heap_end;

void heap_init(uint64_t start_va, uint64_t end_va) {
    heap_start = heap_next = start_va;
    heap_end = end_va;
}

/*
 * `size` bytes at an address `at` with `at + offset` a multiple of `align` (a power of
 * two; PUT_CAPS uses the offset to put a cap's pages on page boundaries). Returns NULL
 * when the heap is exhausted.
 */
void *heap_alloc_offset(uint64_t size, uint64_t align, uint64_t offset) {
    uint64_t at = ((heap_next + offset + align - 1) & ~(align - 1)) - offset;
    if (at < heap_next || at > heap_end || size > heap_end - at) return NULL;
    heap_next = at + size;
    return (void *)(uintptr_t)at;
}

void *heap_alloc(uint64_t size, uint64_t align) { return heap_alloc_offset(size, align, 0); }

uint64_t heap_start_va(void) { return heap_start; }
uint64_t heap_end_va(void) { return heap_end; }
