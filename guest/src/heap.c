/*
 * The kernel heap: a bump allocator over [stack top, end of memory). Nothing is
 * freed (the directory never removes entries, prepared images live as long as the
 * guest) except an INVOKE's scratch (heap_release). Allocations are zero-filled.
 */
#include "kernel.h"

static uint64_t heap_start, heap_next, heap_end;
/* [heap_next, heap_dirty) may hold bytes of released allocations; past it the heap is still zero. */
static uint64_t heap_dirty;

void heap_init(uint64_t start_va, uint64_t end_va) {
    heap_start = heap_next = heap_dirty = start_va;
    heap_end = end_va;
}

static uint64_t place(uint64_t size, uint64_t align, uint64_t offset) {
    uint64_t at = ((heap_next + offset + align - 1) & ~(align - 1)) - offset;
    if (at < heap_next || at > heap_end || size > heap_end - at) return 0;
    heap_next = at + size;
    return at;
}

/*
 * `size` zeroed bytes at an address `at` with `at + offset` a multiple of `align` (a
 * power of two; PUT_CAPS uses the offset to put a cap's pages on page boundaries).
 * Returns NULL when the heap is exhausted.
 */
void *heap_alloc_offset(uint64_t size, uint64_t align, uint64_t offset) {
    uint64_t at = place(size, align, offset);
    if (at != 0 && at < heap_dirty) memset((void *)(uintptr_t)at, 0, (heap_dirty - at < size ? heap_dirty - at : size));
    return (void *)(uintptr_t)at;
}

/* heap_alloc_offset for a caller that writes every byte itself: no zeroing. */
void *heap_alloc_uninit(uint64_t size, uint64_t align, uint64_t offset) {
    return (void *)(uintptr_t)place(size, align, offset);
}

void *heap_alloc(uint64_t size, uint64_t align) { return heap_alloc_offset(size, align, 0); }

uint64_t heap_start_va(void) { return heap_start; }
uint64_t heap_end_va(void) { return heap_end; }

/* Where the next allocation would start: with heap_release, the INVOKE frame's scratch. */
uint64_t heap_mark(void) { return heap_next; }

/* Frees everything allocated since `mark` (the caller knows nothing there is still used). */
void heap_release(uint64_t mark) {
    if (mark < heap_start || mark > heap_next) return;
    if (heap_next > heap_dirty) heap_dirty = heap_next;
    heap_next = mark;
}
