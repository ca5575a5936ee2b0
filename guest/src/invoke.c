/*
 * PREPARE and INVOKE: run an image's code with the PVM2 engine (guest/engine).
 *
 * PREPARE does everything that depends only on the image, once: decode the code and
 * build the address space (pinned mappings point straight at the stored Data cap
 * pages, writable ones at pages of the image's own). INVOKE then only sets the
 * registers and runs. Guest memory accesses are slow under nested virtualisation
 * (hundreds of ns each on the development machine), so an invoke touches as little
 * as it can: the host rewrites the writable pages' initial bytes itself, at host
 * speed, before each INVOKE, and reads the final ones from there after the reply.
 */
#include "kernel.h"
#include "pvm.h"

/* The Cap union selectors of the two kinds used here; a Data cap's encoding starts with its selector, then offset 4. */
#define CAP_KIND_IMAGE 1u
#define CAP_KIND_DATA 2u
#define DATA_CAP_FIRST_OFFSET 4u
#define ADDRESS_SPACE ((uint64_t)1 << 32)
#define MAX_IMAGES 1024u

/* A mapping that shows an argument cap: mapped at every INVOKE onto that invoke's cap. */
struct arg_mapping {
    uint32_t start, size, arg_slot;
    /* The stored cap it shows now: stored caps never move or change, so the same one needs no remapping. */
    const uint8_t *mapped;
};

struct prepared_image {
    struct pvm_program *program;
    struct pvm_memory *memory;
    uint32_t code_len;
    bool translation_tried; /* pvm_compile ran (on the first recompiler invoke); pvm_compiled_size says if it worked */
    uint32_t arg_mapping_count;
    struct arg_mapping *arg_mappings; /* written by INVOKE (what each shows now) */
};

static struct prepared_image *images[MAX_IMAGES];
static uint32_t image_count;
static uint8_t *zero_page; /* shared by every read-only page past a Data cap's end; never written */

static void *alloc_heap(void *ctx, size_t size, size_t align) {
    (void)ctx;
    return heap_alloc(size, align);
}
/* The heap never frees: a prepared image lives as long as the guest. */
static void free_nothing(void *ctx, void *ptr, size_t size) {
    (void)ctx, (void)ptr, (void)size;
}
static const struct pvm_allocator heap_allocator = {alloc_heap, free_nothing, NULL};

/*
 * The recompiler's code goes to the code arena, the last NUB_CODE_ARENA_SIZE bytes of
 * guest memory: written through the linear map (never executable there), executed at
 * NUB_CODE_ALIAS_VA (never writable there), so sealing has nothing to change. A bump
 * allocator: translations live as long as the guest, and a sealed one keeps only the
 * bytes it used, rounded to a cache line (the mapping's permissions are the whole
 * arena's, so translations need not start on pages).
 */
static uint64_t arena_used;
static uint64_t line_round(uint64_t n) { return (n + 63) & ~(uint64_t)63; }
static void *arena_alloc(void *ctx, size_t size, void **exec) {
    (void)ctx;
    if (line_round(size) > NUB_CODE_ARENA_SIZE - arena_used) return NULL;
    void *p = (uint8_t *)(uintptr_t)heap_end_va() + arena_used; /* the arena starts where the heap ends */
    *exec = (void *)(uintptr_t)(NUB_CODE_ALIAS_VA + arena_used);
    arena_used += line_round(size);
    return p;
}
/* pvm_compile allocates, then seals or frees, with nothing in between: the block is the arena's last. */
static uint64_t arena_offset(void *p) { return (uint64_t)(uintptr_t)p - heap_end_va(); }
static int arena_seal(void *ctx, void *p, size_t used) {
    (void)ctx;
    arena_used = arena_offset(p) + line_round(used);
    return 0;
}
static void arena_free(void *ctx, void *p, size_t size) {
    (void)ctx, (void)size;
    arena_used = arena_offset(p);
}
_Static_assert(NUB_ENGINE_INTERPRETER == PVM_ENGINE_INTERPRETER && NUB_ENGINE_RECOMPILER == PVM_ENGINE_RECOMPILER, "Invoke.engine is an enum pvm_engine");
static const struct pvm_code_arena code_arena = {arena_alloc, arena_seal, arena_free, NULL, NUB_CODE_ARENA_SIZE};

static const struct nub_directory_entry *find(const volatile uint8_t *volatile_hash) {
    uint8_t hash[32];
    for (int i = 0; i < 32; i++) hash[i] = volatile_hash[i];
    return directory_find(hash);
}

/* A zero page for read-only pages past a Data cap's end; never written. NULL when memory is exhausted. */
static uint8_t *shared_zero_page(void) {
    if (zero_page == NULL) zero_page = heap_alloc(NUB_PAGE_SIZE, NUB_PAGE_SIZE);
    return zero_page;
}

/* Lays one mapping into the address space and reports its backing memory to the host. */
static uint32_t map_one(struct prepared_image *image, volatile struct nub_invoke_mapping *m) {
    uint64_t start = m->start, size = m->size;
    if (size == 0 || start % NUB_PAGE_SIZE || size % NUB_PAGE_SIZE || start + size > ADDRESS_SPACE) return NUB_STATUS_BAD_ARGS;
    if (m->arg_slot != NUB_FRAME_NO_ARG_SLOT) {
        if (m->writable || m->arg_slot >= PVM_SLOT_SLOT_REFS - PVM_SLOT_ARG_BASE) return NUB_STATUS_BAD_ARGS;
        image->arg_mappings[image->arg_mapping_count++] = (struct arg_mapping){(uint32_t)start, (uint32_t)size, m->arg_slot, NULL};
        m->backing_va = 0;
        m->backed_len = 0;
        return NUB_STATUS_OK;
    }
    const struct nub_directory_entry *e = find(m->data_hash);
    if (e == NULL) return NUB_STATUS_CAP_MISSING;
    const uint8_t *cap = (const uint8_t *)(uintptr_t)e->data_va;
    uint32_t first_offset;
    if (e->kind != CAP_KIND_DATA || e->len < NUB_CAP_PUT_DATA_PAGES_OFFSET || cap[0] != CAP_KIND_DATA) return NUB_STATUS_BAD_CAP;
    memcpy(&first_offset, cap + 1, sizeof first_offset);
    uint64_t cap_bytes = e->len - NUB_CAP_PUT_DATA_PAGES_OFFSET;
    if (first_offset != DATA_CAP_FIRST_OFFSET || cap_bytes % NUB_PAGE_SIZE) return NUB_STATUS_BAD_CAP;
    uint8_t *cap_pages = (uint8_t *)cap + NUB_CAP_PUT_DATA_PAGES_OFFSET;
    uint64_t shown = cap_bytes < size ? cap_bytes : size; /* the cap's part of the mapping; zeros beyond */

    uint8_t *backing = cap_pages;
    if (m->writable) {
        backing = heap_alloc(size, NUB_PAGE_SIZE); /* the host fills it before every INVOKE */
        if (backing == NULL) return NUB_STATUS_NO_MEMORY;
        shown = size;
    } else if (shown < size && shared_zero_page() == NULL) {
        return NUB_STATUS_NO_MEMORY;
    }
    m->backing_va = VA(backing);
    m->backed_len = shown;
    int err = pvm_map_linear(image->memory, (uint32_t)start, (uint32_t)size, backing, shown, zero_page, m->writable != 0);
    if (err == PVM_ERR_NO_MEMORY) return NUB_STATUS_NO_MEMORY;
    return err == PVM_OK ? NUB_STATUS_OK : NUB_STATUS_BAD_ARGS;
}

uint32_t handle_prepare(volatile struct nub_mailbox *mb, uint8_t *payload) {
    volatile struct nub_prepare *req = (volatile struct nub_prepare *)payload;
    volatile struct nub_invoke_mapping *maps = (volatile struct nub_invoke_mapping *)(payload + sizeof(struct nub_prepare));
    if (mb->payload_len < sizeof(struct nub_prepare)) return NUB_STATUS_BAD_ARGS;
    uint64_t count = req->mapping_count;
    if (mb->payload_len != sizeof(struct nub_prepare) + count * sizeof(struct nub_invoke_mapping)) return NUB_STATUS_BAD_ARGS;
    if (image_count == MAX_IMAGES) return NUB_STATUS_NO_MEMORY;

    const struct nub_directory_entry *e = find(req->image_hash);
    if (e == NULL) return NUB_STATUS_CAP_MISSING;
    uint64_t offset = req->code_offset, len = req->code_len;
    if (e->kind != CAP_KIND_IMAGE || offset > e->len || len > e->len - offset) return NUB_STATUS_BAD_CAP;
    struct prepared_image *image = heap_alloc(sizeof *image, 8);
    if (image == NULL) return NUB_STATUS_NO_MEMORY;
    int err = pvm_prepare(&heap_allocator, (const uint8_t *)(uintptr_t)(e->data_va + offset), (uint32_t)len, &image->program);
    if (err != PVM_OK) return err == PVM_ERR_CODE_TOO_LARGE ? NUB_STATUS_BAD_CAP : NUB_STATUS_NO_MEMORY;
    if (pvm_memory_create(&heap_allocator, image->program, &image->memory) != PVM_OK) return NUB_STATUS_NO_MEMORY;
    image->arg_mapping_count = 0;
    if ((image->arg_mappings = heap_alloc(count * sizeof *image->arg_mappings, 8)) == NULL) return NUB_STATUS_NO_MEMORY;
    for (uint64_t i = 0; i < count; i++) {
        uint32_t status = map_one(image, &maps[i]);
        if (status != NUB_STATUS_OK) return status;
    }
    image->code_len = (uint32_t)len;
    req->code_va = e->data_va + offset;
    req->image_id = image_count;
    images[image_count++] = image;
    return NUB_STATUS_OK;
}

static bool host_handles(uint64_t number) {
    const volatile uint8_t *bitmap = PHYS(NUB_HOST_FUNCTIONS_GPA);
    return number < NUB_HOST_FUNCTION_BITMAP_BYTES * 8 && (bitmap[number / 8] >> (number % 8)) & 1;
}

/*
 * The engine's state is the Invoke record from its gas field on (pvm.h orders its
 * fields so), so an invoke runs the engine on the record in place: no copies of the
 * registers in or out, each of which costs dozens of slow guest instructions.
 */
#define SAME_OFFSET(field) (offsetof(struct nub_invoke, field) - offsetof(struct nub_invoke, gas) == offsetof(struct pvm_state, field))
_Static_assert(SAME_OFFSET(gas) && SAME_OFFSET(regs) && SAME_OFFSET(pc) && SAME_OFFSET(exit) && SAME_OFFSET(exit_arg) &&
                   SAME_OFFSET(instructions) && offsetof(struct nub_invoke, gas) + sizeof(struct pvm_state) <= sizeof(struct nub_invoke),
               "pvm_state must overlay the Invoke record from its gas field");
#undef SAME_OFFSET

/*
 * The frame of the current INVOKE. Minted caps go on the heap and are reclaimed by the
 * next INVOKE when nothing else was allocated in between (their results are only read
 * until then, like the invocation's memory).
 */
static struct pvm_frame frame;
static uint64_t frame_heap_start, frame_heap_end;

static uint8_t *mint_room(void *ctx, uint64_t pages) {
    (void)ctx;
    return heap_alloc_uninit(NUB_CAP_PUT_DATA_PAGES_OFFSET + pages * NUB_PAGE_SIZE, NUB_PAGE_SIZE, NUB_CAP_PUT_DATA_PAGES_OFFSET); /* the engine writes every byte */
}

/* Fills the frame from the host's records and maps the argument mappings onto their caps. */
static uint32_t load_frame(struct prepared_image *image, volatile struct nub_frame_slot *slots, uint32_t count, uint32_t arg_slots) {
    if (++frame.gen == 0) { /* after 2^32 invokes: clear for real once */
        memset(frame.slots, 0, sizeof frame.slots);
        frame.gen = 1;
    }
    frame.arg_slots = arg_slots;
    frame.mint = mint_room;
    frame.failed = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t ref = slots[i].ref;
        if (ref == 0 || ref >= PVM_SLOT_SLOT_REFS) return NUB_STATUS_BAD_ARGS;
        frame.slots[ref] = (struct pvm_cap){
            .enc = (const uint8_t *)(uintptr_t)slots[i].data_va, .len = slots[i].len, .kind = slots[i].kind,
            .origin = i, .gen = frame.gen, .pinned = slots[i].pinned != 0,
        };
    }
    for (uint32_t i = 0; i < image->arg_mapping_count; i++) {
        struct arg_mapping *m = &image->arg_mappings[i];
        const struct pvm_cap *c = &frame.slots[PVM_SLOT_ARG_BASE + m->arg_slot];
        /* The host refuses a missing or non-Data argument before it sends the INVOKE. */
        if (c->gen != frame.gen || c->kind != CAP_KIND_DATA || c->len < NUB_CAP_PUT_DATA_PAGES_OFFSET) return NUB_STATUS_BAD_ARGS;
        if (c->enc == m->mapped) continue;
        m->mapped = NULL; /* until the new mapping is complete */
        uint64_t bytes = c->len - NUB_CAP_PUT_DATA_PAGES_OFFSET;
        if (bytes < m->size && shared_zero_page() == NULL) return NUB_STATUS_NO_MEMORY;
        int err = pvm_map_linear(image->memory, m->start, m->size, (uint8_t *)c->enc + NUB_CAP_PUT_DATA_PAGES_OFFSET, bytes, zero_page, 0);
        if (err != PVM_OK) return err == PVM_ERR_NO_MEMORY ? NUB_STATUS_NO_MEMORY : NUB_STATUS_BAD_ARGS;
        m->mapped = c->enc;
    }
    return NUB_STATUS_OK;
}

static void write_results(volatile struct nub_result_cap *out, uint32_t count) {
    for (uint32_t i = 0; i < count; i++) {
        const struct pvm_cap *c = &frame.slots[PVM_SLOT_ARG_BASE + i];
        bool full = c->gen == frame.gen;
        out[i].kind = full ? c->kind : NUB_FRAME_EMPTY_KIND;
        out[i].origin = c->origin;
        out[i].data_va = VA(c->enc);
        out[i].len = c->len;
    }
}

/* Runs until an exit the host does not handle; a handled host call is one exit on NUB_PORT_HOST_CALL. */
static void run(const struct prepared_image *image, volatile struct nub_invoke *inv, struct pvm_state *st, enum pvm_engine engine) {
    uint64_t instructions = 0;
    for (;;) {
        pvm_execute(image->program, image->memory, st, engine, &frame);
        instructions += st->instructions;
        st->instructions = instructions; /* the whole invoke's, across host calls */
        if (st->exit != PVM_EXIT_HOST_CALL || !host_handles(st->exit_arg)) return;
        compiler_barrier();
        signal_host(NUB_PORT_HOST_CALL);
        compiler_barrier();
        /* RESUME: the host has written φ7 into the record, that is into the state. ABORT: the invoke ends at the call. */
        if (inv->host_reply != NUB_HOST_REPLY_RESUME) return;
    }
}

uint32_t handle_invoke(volatile struct nub_mailbox *mb, uint8_t *payload) {
    volatile struct nub_invoke *inv = (volatile struct nub_invoke *)payload;
    if (mb->payload_len < sizeof(struct nub_invoke)) return NUB_STATUS_BAD_ARGS;
    uint32_t id = inv->image_id, entry = inv->entry, wanted = inv->engine, slot_count = inv->slot_count, result_count = inv->result_count;
    if (slot_count > PVM_SLOT_SLOT_REFS || result_count > PVM_SLOT_SLOT_REFS - PVM_SLOT_ARG_BASE ||
        mb->payload_len != sizeof(struct nub_invoke) + slot_count * sizeof(struct nub_frame_slot) + result_count * sizeof(struct nub_result_cap))
        return NUB_STATUS_BAD_ARGS;
    if (id >= image_count) return NUB_STATUS_CAP_MISSING;
    if (wanted > PVM_ENGINE_RECOMPILER) return NUB_STATUS_BAD_ARGS;
    struct prepared_image *image = images[id];
    if (wanted == PVM_ENGINE_RECOMPILER && !image->translation_tried) {
        image->translation_tried = true;
        pvm_compile(image->program, &code_arena); /* on failure (the arena is full) the image stays interpreted */
    }
    /* An image the arena had no room for runs in the interpreter (its instruction count then shows it). */
    enum pvm_engine engine = wanted == PVM_ENGINE_RECOMPILER && pvm_compiled_size(image->program) ? PVM_ENGINE_RECOMPILER : PVM_ENGINE_INTERPRETER;
    volatile struct nub_frame_slot *slots = (volatile struct nub_frame_slot *)(payload + sizeof(struct nub_invoke));
    volatile struct nub_result_cap *results = (volatile struct nub_result_cap *)(slots + slot_count);

    if (heap_mark() == frame_heap_end) heap_release(frame_heap_start); /* the last invoke's minted caps */
    uint32_t status = load_frame(image, slots, slot_count, result_count); /* what it allocates (page-table leaves) stays */
    frame_heap_start = frame_heap_end = heap_mark();
    if (status != NUB_STATUS_OK) return status;

    compiler_barrier(); /* the record is the state from here on */
    struct pvm_state *st = (struct pvm_state *)(payload + offsetof(struct nub_invoke, gas));
    st->pc = PVM_CODE_BASE + entry;
    if (entry >= image->code_len || !pvm_is_block_start(image->program, st->pc)) {
        /* A bad entry runs nothing and charges nothing: the registers and gas stay as the host wrote them. */
        st->exit = PVM_EXIT_PANIC;
        st->exit_arg = 0;
        st->instructions = 0;
    } else {
        run(image, inv, st, engine);
    }
    frame_heap_end = heap_mark();
    if (frame.failed) return NUB_STATUS_NO_MEMORY;
    write_results(results, result_count);
    return NUB_STATUS_OK;
}
