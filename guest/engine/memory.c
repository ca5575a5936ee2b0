/*
 * The PVM address space: a two-level software page table over 4 GiB (1024 leaves of
 * 1024 entries, allocated on first mapping); entries and directory as internal.h says.
 */
#include "internal.h"

/* Every absent leaf of every memory: static, so zero without being cleared, and never written (pvm_map replaces it first). */
static uintptr_t empty_leaf[PVM_LEAF_ENTRIES];

int pvm_memory_create(const struct pvm_allocator *alloc, const struct pvm_program *prog, struct pvm_memory **out) {
    *out = 0;
    struct pvm_memory *mem = alloc->alloc(alloc->ctx, sizeof *mem, _Alignof(struct pvm_memory));
    if (!mem) return PVM_ERR_NO_MEMORY;
    mem->alloc = *alloc;
    mem->region_count = 0;
#pragma GCC unroll 8
    for (uint32_t i = 0; i < PVM_DIR_ENTRIES; i++) mem->dir[i] = pvm_leaf_bias(i, empty_leaf);

    /* Code: readable, never writable. pvm_map does not write through the pointers. */
    if (prog->code_page_count) {
        uint8_t *pages_storage[64];
        for (uint32_t first = 0; first < prog->code_page_count; first += 64) {
            uint32_t n = prog->code_page_count - first < 64 ? prog->code_page_count - first : 64;
            for (uint32_t i = 0; i < n; i++) pages_storage[i] = prog->code_pages + (size_t)(first + i) * PVM_PAGE_SIZE;
            int err = pvm_map(mem, PVM_CODE_BASE + first * PVM_PAGE_SIZE, n * PVM_PAGE_SIZE, pages_storage, 0);
            if (err) {
                pvm_memory_free(mem);
                return err;
            }
        }
    }
    *out = mem;
    return PVM_OK;
}

void pvm_memory_free(struct pvm_memory *mem) {
    if (!mem) return;
    struct pvm_allocator a = mem->alloc;
    for (uint32_t i = 0; i < PVM_DIR_ENTRIES; i++)
        if (mem->dir[i] != pvm_leaf_bias(i, empty_leaf)) a.free(a.ctx, (void *)pvm_entry_of_page(mem, i << PVM_LEAF_BITS), PVM_LEAF_ENTRIES * sizeof(uintptr_t));
    a.free(a.ctx, mem, sizeof *mem);
}

static int check_range(uint32_t start, uint32_t size) {
    return size == 0 || start % PVM_PAGE_SIZE || size % PVM_PAGE_SIZE || (uint64_t)start + size > ((uint64_t)1 << 32);
}

/* Points PVM page `page` at `backing` with `perm`, allocating its leaf on first use. */
static int set_page(struct pvm_memory *mem, uint32_t page, uint8_t *backing, uintptr_t perm) {
    uint32_t k = page >> PVM_LEAF_BITS;
    if (mem->dir[k] == pvm_leaf_bias(k, empty_leaf)) {
        uintptr_t *fresh = mem->alloc.alloc(mem->alloc.ctx, PVM_LEAF_ENTRIES * sizeof(uintptr_t), PVM_PAGE_SIZE);
        if (!fresh) return PVM_ERR_NO_MEMORY;
        pvm_zero(fresh, PVM_LEAF_ENTRIES * sizeof(uintptr_t));
        mem->dir[k] = pvm_leaf_bias(k, fresh);
    }
    *pvm_entry_of_page(mem, page) = ((uintptr_t)backing - (uintptr_t)page * PVM_PAGE_SIZE) | perm;
    return PVM_OK;
}

/* Drops every region overlapping [start, start + size): those pages are being remapped. */
static void forget_regions(struct pvm_memory *mem, uint32_t start, uint32_t size) {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < mem->region_count; i++) {
        const struct pvm_region *r = &mem->regions[i];
        if ((uint64_t)r->start + r->size <= start || (uint64_t)start + size <= r->start) mem->regions[kept++] = *r;
    }
    mem->region_count = kept;
}

/* Records freshly mapped linear pages, joined to a region they continue; past PVM_MAX_REGIONS they just stay slow. */
static void add_region(struct pvm_memory *mem, uint32_t start, uint32_t size, uint8_t *host, int writable) {
    if (size == 0) return;
    for (uint32_t i = 0; i < mem->region_count; i++) {
        struct pvm_region *r = &mem->regions[i];
        if (r->writable == writable && (uint64_t)r->start + r->size == start && r->host + r->size == host) {
            r->size += size;
            return;
        }
    }
    if (mem->region_count < PVM_MAX_REGIONS) mem->regions[mem->region_count++] = (struct pvm_region){start, size, host, writable};
}

int pvm_map(struct pvm_memory *mem, uint32_t start, uint32_t size, uint8_t *const *pages, int writable) {
    if (check_range(start, size)) return PVM_ERR_BAD_MAPPING;
    uint32_t count = size / PVM_PAGE_SIZE, linear = 1;
    for (uint32_t i = 0; i < count; i++) {
        if ((uintptr_t)pages[i] & PVM_PERM_MASK) return PVM_ERR_MISALIGNED_PAGE;
        linear = linear && pages[i] == pages[0] + (size_t)i * PVM_PAGE_SIZE;
    }
    forget_regions(mem, start, size);
    uintptr_t perm = PVM_PERM_READ | (writable ? PVM_PERM_WRITE : 0);
    for (uint32_t i = 0; i < count; i++) {
        int err = set_page(mem, start / PVM_PAGE_SIZE + i, pages[i], perm);
        if (err) return err;
    }
    if (linear) add_region(mem, start, size, pages[0], writable);
    return PVM_OK;
}

int pvm_map_linear(struct pvm_memory *mem, uint32_t start, uint32_t size, uint8_t *base, uint64_t backed, uint8_t *zero_page, int writable) {
    if (check_range(start, size)) return PVM_ERR_BAD_MAPPING;
    if (((uintptr_t)base | (uintptr_t)zero_page) & PVM_PERM_MASK) return PVM_ERR_MISALIGNED_PAGE;
    forget_regions(mem, start, size);
    uintptr_t perm = PVM_PERM_READ | (writable ? PVM_PERM_WRITE : 0);
    uint32_t linear = 0; /* bytes backed by base: the pages before the zero tail */
    for (uint32_t i = 0; i < size / PVM_PAGE_SIZE; i++) {
        uint64_t at = (uint64_t)i * PVM_PAGE_SIZE;
        int err = set_page(mem, start / PVM_PAGE_SIZE + i, at < backed ? base + at : zero_page, perm);
        if (err) return err;
        if (at < backed) linear += PVM_PAGE_SIZE;
    }
    add_region(mem, start, linear, base, writable);
    return PVM_OK;
}

/* The host address of the byte at `addr`, or NULL without `perm`. */
static uint8_t *byte_at(const struct pvm_memory *mem, uint32_t addr, uintptr_t perm) {
    uintptr_t e = pvm_page_entry(mem, addr);
    if ((e & perm) != perm) return 0;
    return pvm_host_byte(e, addr);
}

/* Checks every byte of an access; on failure *fault = the lowest inaccessible address (mod 2^32). */
static int check_bytes(const struct pvm_memory *mem, uint32_t addr, unsigned size, uintptr_t perm, uint8_t **bytes, uint32_t *fault) {
    int ok = 1;
    uint32_t lowest = UINT32_MAX;
    for (unsigned i = 0; i < size; i++) {
        uint32_t a = addr + i;
        bytes[i] = byte_at(mem, a, perm);
        if (!bytes[i] && a <= lowest) {
            lowest = a;
            ok = 0;
        }
    }
    if (!ok) *fault = lowest;
    return ok;
}

int pvm_load_slow(const struct pvm_memory *mem, uint32_t addr, unsigned size, uint64_t *value, uint32_t *fault) {
    uint8_t *bytes[8];
    if (!check_bytes(mem, addr, size, PVM_PERM_READ, bytes, fault)) return 0;
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++) v |= (uint64_t)*bytes[i] << (8 * i);
    *value = v;
    return 1;
}

int pvm_store_slow(struct pvm_memory *mem, uint32_t addr, unsigned size, uint64_t value, uint32_t *fault) {
    uint8_t *bytes[8];
    if (!check_bytes(mem, addr, size, PVM_PERM_WRITE, bytes, fault)) return 0;
    for (unsigned i = 0; i < size; i++) *bytes[i] = (uint8_t)(value >> (8 * i));
    return 1;
}
