/*
 * The kernel heap: a bump allocator over [stack top, end of memory). Nothing is
 * freed yet (the directory never removes entries). Memory starts zero-filled.
 */
#include "kernel.h"

static uint64_t heap_start, heap_next, heap_end;

void heap_init(uint64_t start_va, uint64_t end_va) {
    heap_start = heap_next = start_va;
    heap_end = end_va;
}

/* `align` must be a power of two. Returns NULL when the heap is exhausted. */
void *heap_alloc(uint64_t size, uint64_t align) {
    uint64_t at = (heap_next + align - 1) & ~(align - 1);
    if (at < heap_next || at > heap_end || size > heap_end - at) return NULL;
    heap_next = at + size;
    return (void *)(uintptr_t)at;
}

uint64_t heap_start_va(void) { return heap_start; }
uint64_t heap_end_va(void) { return heap_end; }
