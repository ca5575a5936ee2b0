/*
 * INVOKE: run an image's code with the PVM2 engine (guest/engine). The program is
 * decoded once per image hash and cached for the guest's life; each invocation gets
 * a fresh address space in the scratch area: pinned (read-only) mappings point
 * straight at the stored Data cap pages, writable ones at private copies. The
 * address space stays in place after the reply, so the host reads the final memory
 * from the backing addresses the guest reports, without another exit.
 */
#include "kernel.h"
#include "pvm.h"

/* What the Image cap encoding's `kind` is, and what a Data cap's starts with: selector 2, offset 4. */
#define CAP_KIND_IMAGE 1u
#define CAP_KIND_DATA 2u
#define DATA_CAP_FIRST_OFFSET 4u
#define ADDRESS_SPACE ((uint64_t)1 << 32)

struct cached_program {
    uint8_t hash[32];
    struct pvm_program *program;
    struct cached_program *next;
};

static struct cached_program *program_cache;
static uint8_t *zero_page; /* shared by every read-only page past a Data cap's end; never written */

static void *alloc_heap(void *ctx, size_t size, size_t align) {
    (void)ctx;
    return heap_alloc(size, align);
}
static void *alloc_scratch(void *ctx, size_t size, size_t align) {
    (void)ctx;
    return scratch_alloc(size, align);
}
/* Neither area frees piecemeal: programs live forever, scratch is reset per invoke. */
static void free_nothing(void *ctx, void *ptr, size_t size) {
    (void)ctx, (void)ptr, (void)size;
}
static const struct pvm_allocator heap_allocator = {alloc_heap, free_nothing, NULL};
static const struct pvm_allocator scratch_allocator = {alloc_scratch, free_nothing, NULL};

/* The image's decoded program: from the cache, else decoded from the stored Image cap (and cached). */
static uint32_t program_for(const volatile struct nub_invoke *inv, struct pvm_program **out, uint64_t *code_va) {
    uint8_t hash[32];
    for (int i = 0; i < 32; i++) hash[i] = inv->image_hash[i];
    const struct nub_directory_entry *e = directory_find(hash);
    if (e == NULL) return NUB_STATUS_CAP_MISSING;
    uint64_t offset = inv->code_offset, len = inv->code_len;
    if (e->kind != CAP_KIND_IMAGE || offset > e->len || len > e->len - offset) return NUB_STATUS_BAD_CAP;
    *code_va = e->data_va + offset;
    for (struct cached_program *c = program_cache; c != NULL; c = c->next) {
        if (memcmp(c->hash, hash, 32) == 0) {
            *out = c->program;
            return NUB_STATUS_OK;
        }
    }
    struct cached_program *c = heap_alloc(sizeof *c, 8);
    if (c == NULL) return NUB_STATUS_NO_MEMORY;
    int err = pvm_prepare(&heap_allocator, (const uint8_t *)(uintptr_t)*code_va, (uint32_t)len, &c->program);
    if (err == PVM_ERR_CODE_TOO_LARGE) return NUB_STATUS_BAD_CAP;
    if (err != PVM_OK) return NUB_STATUS_NO_MEMORY;
    memcpy(c->hash, hash, 32);
    c->next = program_cache;
    compiler_barrier();
    program_cache = c; /* last, so a run stopped part-way never leaves a half-made entry */
    *out = c->program;
    return NUB_STATUS_OK;
}

/* Lays one mapping into the address space and reports its backing memory to the host. */
static uint32_t map_one(struct pvm_memory *mem, volatile struct nub_invoke_mapping *m) {
    uint64_t start = m->start, size = m->size;
    if (size == 0 || start % NUB_PAGE_SIZE || size % NUB_PAGE_SIZE || start + size > ADDRESS_SPACE) return NUB_STATUS_BAD_ARGS;
    uint8_t hash[32];
    for (int i = 0; i < 32; i++) hash[i] = m->data_hash[i];
    const struct nub_directory_entry *e = directory_find(hash);
    if (e == NULL) return NUB_STATUS_CAP_MISSING;
    const uint8_t *cap = (const uint8_t *)(uintptr_t)e->data_va;
    uint32_t first_offset;
    if (e->kind != CAP_KIND_DATA || e->len < NUB_CAP_PUT_DATA_PAGES_OFFSET || cap[0] != CAP_KIND_DATA) return NUB_STATUS_BAD_CAP;
    memcpy(&first_offset, cap + 1, sizeof first_offset);
    uint64_t cap_bytes = e->len - NUB_CAP_PUT_DATA_PAGES_OFFSET;
    if (first_offset != DATA_CAP_FIRST_OFFSET || cap_bytes % NUB_PAGE_SIZE) return NUB_STATUS_BAD_CAP;
    uint8_t *cap_pages = (uint8_t *)cap + NUB_CAP_PUT_DATA_PAGES_OFFSET;
    uint64_t shown = cap_bytes < size ? cap_bytes : size; /* the cap's part of the mapping; zeros beyond */

    uint64_t count = size / NUB_PAGE_SIZE;
    uint8_t **pages = scratch_alloc(count * sizeof *pages, 8);
    if (pages == NULL) return NUB_STATUS_NO_MEMORY;
    uint8_t *backing;
    if (m->writable) {
        backing = scratch_alloc(size, NUB_PAGE_SIZE);
        if (backing == NULL) return NUB_STATUS_NO_MEMORY;
        memcpy(backing, cap_pages, shown);
        memset(backing + shown, 0, size - shown); /* scratch pages are reused */
        for (uint64_t i = 0; i < count; i++) pages[i] = backing + i * NUB_PAGE_SIZE;
        m->backed_len = size;
    } else {
        if (shown < size && zero_page == NULL && (zero_page = heap_alloc(NUB_PAGE_SIZE, NUB_PAGE_SIZE)) == NULL) return NUB_STATUS_NO_MEMORY;
        backing = cap_pages;
        for (uint64_t i = 0; i < count; i++) pages[i] = i * NUB_PAGE_SIZE < shown ? cap_pages + i * NUB_PAGE_SIZE : zero_page;
        m->backed_len = shown;
    }
    m->backing_va = VA(backing);
    int err = pvm_map(mem, (uint32_t)start, (uint32_t)size, pages, m->writable != 0);
    if (err == PVM_ERR_NO_MEMORY) return NUB_STATUS_NO_MEMORY;
    return err == PVM_OK ? NUB_STATUS_OK : NUB_STATUS_BAD_CAP;
}

static bool host_handles(uint64_t number) {
    const volatile uint8_t *bitmap = PHYS(NUB_HOST_FUNCTIONS_GPA);
    return number < NUB_HOST_FUNCTION_BITMAP_BYTES * 8 && (bitmap[number / 8] >> (number % 8)) & 1;
}

static void publish_state(volatile struct nub_invoke *inv, const struct pvm_state *st, uint64_t instructions) {
    for (unsigned i = 0; i < PVM_NUM_REGS; i++) inv->regs[i] = st->regs[i];
    inv->pc = st->pc;
    inv->exit = st->exit;
    inv->exit_arg = st->exit_arg;
    inv->gas = st->gas;
    inv->instructions = instructions;
}

/* Runs until an exit the host does not handle; a handled host call is one exit on NUB_PORT_HOST_CALL. */
static void run(const struct pvm_program *prog, struct pvm_memory *mem, volatile struct nub_invoke *inv, struct pvm_state *st) {
    uint64_t instructions = 0;
    for (;;) {
        pvm_run(prog, mem, st);
        instructions += st->instructions;
        if (st->exit != PVM_EXIT_HOST_CALL || !host_handles(st->exit_arg)) break;
        publish_state(inv, st, instructions);
        inv->host_reply = 0;
        compiler_barrier();
        signal_host(NUB_PORT_HOST_CALL);
        compiler_barrier();
        if (inv->host_reply != NUB_HOST_REPLY_RESUME) break; /* ABORT: the invoke ends at the call */
        st->regs[7] = inv->regs[7];
    }
    publish_state(inv, st, instructions);
}

uint32_t handle_invoke(volatile struct nub_mailbox *mb, uint8_t *payload) {
    volatile struct nub_invoke *inv = (volatile struct nub_invoke *)payload;
    volatile struct nub_invoke_mapping *maps = (volatile struct nub_invoke_mapping *)(payload + sizeof(struct nub_invoke));
    if (mb->payload_len < sizeof(struct nub_invoke)) return NUB_STATUS_BAD_ARGS;
    uint64_t count = inv->mapping_count;
    if (mb->payload_len != sizeof(struct nub_invoke) + count * sizeof(struct nub_invoke_mapping)) return NUB_STATUS_BAD_ARGS;

    scratch_reset(); /* the previous invocation's memory goes now, not at its reply */
    struct pvm_program *prog;
    uint64_t code_va;
    uint32_t status = program_for(inv, &prog, &code_va);
    if (status != NUB_STATUS_OK) return status;
    inv->code_va = code_va;
    struct pvm_memory *mem;
    int err = pvm_memory_create(&scratch_allocator, prog, &mem);
    if (err != PVM_OK) return NUB_STATUS_NO_MEMORY;
    for (uint64_t i = 0; i < count; i++) {
        status = map_one(mem, &maps[i]);
        if (status != NUB_STATUS_OK) return status;
    }

    struct pvm_state st;
    for (unsigned i = 0; i < PVM_NUM_REGS; i++) st.regs[i] = inv->regs[i];
    st.gas = inv->gas;
    st.pc = PVM_CODE_BASE + inv->entry;
    st.exit_arg = 0;
    st.instructions = 0;
    if (inv->entry >= pvm_program_code_len(prog) || !pvm_is_block_start(prog, st.pc)) {
        st.exit = PVM_EXIT_PANIC; /* a bad entry runs nothing and charges nothing */
        publish_state(inv, &st, 0);
        return NUB_STATUS_OK;
    }
    run(prog, mem, inv, &st);
    return NUB_STATUS_OK;
}
