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

/* A mapping that shows an argument cap: mapped at every INVOKE onto that invoke's cap (and at a CALL onto the child's). */
struct arg_mapping {
    uint32_t start, size, arg_slot;
    /* The cap encoding it shows now (mapped_len bytes): the same address and length map the same way, so they need no remapping. */
    const uint8_t *mapped;
    uint64_t mapped_len;
};

/* A writable mapping: at `offset` in the image's writable block (and in each Instance's copy of it). */
struct writable_mapping {
    uint32_t start, size;
    uint64_t offset;
    const uint8_t *initial; /* the Data cap's pages it starts with (initial_len bytes; zeros beyond) */
    uint64_t initial_len;
};

/* A root slot of the image, as a CALL's child frame starts with it. */
struct root_slot {
    uint32_t ref;
    struct pvm_cap cap;
};

struct prepared_image {
    struct pvm_program *program;
    struct pvm_memory *memory;
    bool translation_tried; /* pvm_compile ran (on the first recompiler invoke); pvm_compiled_size says if it worked */
    bool translation_wanted; /* a CALL ran it interpreted: translate it at the next INVOKE, outside the scratch heap */
    bool reserved_slots;    /* every CALL of it is REFUSED */
    uint32_t arg_mapping_count;
    struct arg_mapping *arg_mappings; /* written by INVOKE (what each shows now) */
    uint32_t writable_count, root_count, endpoint_count;
    struct writable_mapping *writables;
    uint8_t *writable_block; /* the image's own writable memory: the host fills it before each INVOKE */
    uint64_t writable_len;
    uint8_t *shown;          /* the writable block its memory maps now: its own, or an Instance's during a CALL */
    struct root_slot *root_slots;
    struct nub_endpoint *endpoints;
};

static struct prepared_image *images[NUB_MAX_IMAGES];
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
    uint8_t hash[NUB_HASH_BYTES];
    for (uint32_t i = 0; i < NUB_HASH_BYTES; i++) hash[i] = volatile_hash[i];
    return directory_find(hash);
}

/* A zero page for read-only pages past a Data cap's end; never written. NULL when memory is exhausted. */
static uint8_t *shared_zero_page(void) {
    if (zero_page == NULL) zero_page = heap_alloc(NUB_PAGE_SIZE, NUB_PAGE_SIZE);
    return zero_page;
}

/*
 * Checks one mapping and the Data cap behind it, allocating nothing. For map_one it
 * leaves the cap's pages and their length in backing_va and backed_len (both 0 for an
 * argument mapping, mapped at INVOKE); the host reads them only after a PREPARE succeeded.
 */
static uint32_t check_mapping(volatile struct nub_invoke_mapping *m) {
    uint64_t start = m->start, size = m->size;
    m->backing_va = 0;
    m->backed_len = 0;
    if (size == 0 || start % NUB_PAGE_SIZE || size % NUB_PAGE_SIZE || start + size > PVM_ADDRESS_SPACE) return NUB_STATUS_BAD_ARGS;
    if (m->arg_slot != NUB_FRAME_NO_ARG_SLOT)
        return m->writable || m->arg_slot >= PVM_SLOT_SLOT_REFS - PVM_SLOT_ARG_BASE ? NUB_STATUS_BAD_ARGS : NUB_STATUS_OK;
    const struct nub_directory_entry *e = find(m->data_hash);
    if (e == NULL) return NUB_STATUS_CAP_MISSING;
    const uint8_t *cap = (const uint8_t *)(uintptr_t)e->data_va;
    uint32_t first_offset;
    if (e->kind != PVM_CAP_DATA || e->len < NUB_CAP_PUT_DATA_PAGES_OFFSET || cap[0] != PVM_CAP_DATA) return NUB_STATUS_BAD_CAP;
    memcpy(&first_offset, cap + NUB_CAP_PUT_SELECTOR_BYTES, sizeof first_offset);
    uint64_t cap_bytes = e->len - NUB_CAP_PUT_DATA_PAGES_OFFSET;
    if (first_offset != NUB_CAP_PUT_DATA_FIRST_OFFSET || cap_bytes % NUB_PAGE_SIZE) return NUB_STATUS_BAD_CAP;
    m->backing_va = VA(cap + NUB_CAP_PUT_DATA_PAGES_OFFSET);
    m->backed_len = cap_bytes;
    return NUB_STATUS_OK;
}

/* Lays one checked mapping into the address space and reports its backing memory to the host. */
static uint32_t map_one(struct prepared_image *image, volatile struct nub_invoke_mapping *m, uint64_t *writable_offset) {
    uint32_t start = m->start, size = m->size;
    if (m->arg_slot != NUB_FRAME_NO_ARG_SLOT) {
        image->arg_mappings[image->arg_mapping_count++] = (struct arg_mapping){start, size, m->arg_slot, NULL, 0};
        /* Onto the zero page for now: its page-table leaves are made here, not in a CALL's scratch (which the next INVOKE reuses). */
        int err = pvm_map_linear(image->memory, start, size, zero_page, 0, zero_page, 0);
        return err == PVM_OK ? NUB_STATUS_OK : err == PVM_ERR_NO_MEMORY ? NUB_STATUS_NO_MEMORY : NUB_STATUS_BAD_ARGS;
    }
    uint8_t *cap_pages = (uint8_t *)(uintptr_t)m->backing_va;
    uint64_t shown = m->backed_len < size ? m->backed_len : size; /* the cap's part of the mapping; zeros beyond */
    uint8_t *backing = cap_pages;
    if (m->writable) {
        if (size > image->writable_len - *writable_offset) return NUB_STATUS_BAD_ARGS; /* the host changed the record */
        image->writables[image->writable_count++] = (struct writable_mapping){start, size, *writable_offset, cap_pages, shown};
        backing = image->writable_block + *writable_offset; /* the host fills it before every INVOKE */
        *writable_offset += size;
        shown = size;
    }
    m->backing_va = VA(backing);
    m->backed_len = shown;
    int err = pvm_map_linear(image->memory, start, size, backing, shown, zero_page, m->writable != 0);
    if (err == PVM_ERR_NO_MEMORY) return NUB_STATUS_NO_MEMORY;
    return err == PVM_OK ? NUB_STATUS_OK : NUB_STATUS_BAD_ARGS;
}

/* Builds a checked image: decodes the code and lays out its address space, all on the heap. */
static uint32_t build_image(const struct nub_directory_entry *e, volatile struct nub_prepare *req, volatile struct nub_invoke_mapping *maps,
                            volatile struct nub_frame_slot *root_records, volatile struct nub_endpoint *endpoint_records,
                            uint64_t writable_len, uint64_t writable_count, struct prepared_image **out) {
    uint64_t count = req->mapping_count, roots = req->root_slot_count, endpoints = req->endpoint_count;
    uint64_t offset = req->code_offset, len = req->code_len;
    struct prepared_image *image = heap_alloc(sizeof *image, 8);
    if (image == NULL) return NUB_STATUS_NO_MEMORY;
    int err = pvm_prepare(&heap_allocator, (const uint8_t *)(uintptr_t)(e->data_va + offset), (uint32_t)len, &image->program);
    if (err != PVM_OK) return err == PVM_ERR_CODE_TOO_LARGE ? NUB_STATUS_BAD_CAP : NUB_STATUS_NO_MEMORY;
    if (pvm_memory_create(&heap_allocator, image->program, &image->memory) != PVM_OK) return NUB_STATUS_NO_MEMORY;
    /* The writable mappings share one block, so an Instance's memory is one copy of it. */
    image->writable_len = writable_len;
    if (writable_len && (image->writable_block = heap_alloc(writable_len, NUB_PAGE_SIZE)) == NULL) return NUB_STATUS_NO_MEMORY;
    image->shown = image->writable_block;
    image->arg_mapping_count = image->writable_count = 0;
    if ((image->arg_mappings = heap_alloc(count * sizeof *image->arg_mappings, 8)) == NULL) return NUB_STATUS_NO_MEMORY;
    if ((image->writables = heap_alloc(writable_count * sizeof *image->writables, 8)) == NULL) return NUB_STATUS_NO_MEMORY;
    uint64_t writable_offset = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint32_t status = map_one(image, &maps[i], &writable_offset);
        if (status != NUB_STATUS_OK) return status;
    }
    image->root_count = (uint32_t)roots;
    image->endpoint_count = (uint32_t)endpoints;
    image->reserved_slots = req->reserved_slots != 0;
    if ((image->root_slots = heap_alloc(roots * sizeof *image->root_slots, 8)) == NULL) return NUB_STATUS_NO_MEMORY;
    if ((image->endpoints = heap_alloc(endpoints * sizeof *image->endpoints, 8)) == NULL) return NUB_STATUS_NO_MEMORY;
    for (uint64_t i = 0; i < roots; i++) {
        /* The host finds such a cap by image and slot when a CALL hands it back (image_count is this image's id to be). */
        uint32_t ref = root_records[i].ref;
        image->root_slots[i] = (struct root_slot){ref, {
            .enc = (const uint8_t *)(uintptr_t)root_records[i].data_va, .len = root_records[i].len, .kind = root_records[i].kind,
            .origin = NUB_FRAME_ROOT_ORIGIN | image_count << 8 | ref, .pinned = root_records[i].pinned != 0, .image = root_records[i].image,
        }};
    }
    for (uint64_t i = 0; i < endpoints; i++) memcpy(&image->endpoints[i], (const void *)&endpoint_records[i], sizeof image->endpoints[i]);
    *out = image;
    return NUB_STATUS_OK;
}

/*
 * Validate, then act: every check runs before the first allocation, and a build that
 * still fails (out of memory) gives back all it took, since the heap frees nothing
 * else. So a refused PREPARE leaves the guest as it was.
 */
uint32_t handle_prepare(volatile struct nub_mailbox *mb, uint8_t *payload) {
    volatile struct nub_prepare *req = (volatile struct nub_prepare *)payload;
    volatile struct nub_invoke_mapping *maps = (volatile struct nub_invoke_mapping *)(payload + sizeof(struct nub_prepare));
    if (mb->payload_len < sizeof(struct nub_prepare)) return NUB_STATUS_BAD_ARGS;
    uint64_t count = req->mapping_count, roots = req->root_slot_count, endpoints = req->endpoint_count;
    volatile struct nub_frame_slot *root_records = (volatile struct nub_frame_slot *)(maps + count);
    volatile struct nub_endpoint *endpoint_records = (volatile struct nub_endpoint *)(root_records + roots);
    if (roots >= PVM_SLOT_ARG_BASE || endpoints > 256 ||
        mb->payload_len != sizeof(struct nub_prepare) + count * sizeof(struct nub_invoke_mapping) + roots * sizeof(struct nub_frame_slot) +
                               endpoints * sizeof(struct nub_endpoint))
        return NUB_STATUS_BAD_ARGS;
    if (image_count == NUB_MAX_IMAGES) return NUB_STATUS_NO_MEMORY;

    const struct nub_directory_entry *e = find(req->image_hash);
    if (e == NULL) return NUB_STATUS_CAP_MISSING;
    uint64_t offset = req->code_offset, len = req->code_len;
    if (e->kind != PVM_CAP_IMAGE || offset > e->len || len > e->len - offset) return NUB_STATUS_BAD_CAP;
    uint64_t writable_len = 0, writable_count = 0;
    bool wants_zero_page = false;
    for (uint64_t i = 0; i < count; i++) {
        uint32_t status = check_mapping(&maps[i]);
        if (status != NUB_STATUS_OK) return status;
        if (maps[i].writable) writable_len += maps[i].size, writable_count++;
        /* an argument mapping shows zeros until an invoke maps its cap */
        else wants_zero_page |= maps[i].arg_slot != NUB_FRAME_NO_ARG_SLOT || (maps[i].backing_va && maps[i].backed_len < maps[i].size);
    }
    for (uint64_t i = 0; i < roots; i++)
        if (root_records[i].ref == 0 || root_records[i].ref >= PVM_SLOT_ARG_BASE) return NUB_STATUS_BAD_ARGS;
    /* The zero page is shared and kept, so it comes before the mark. */
    if (wants_zero_page && shared_zero_page() == NULL) return NUB_STATUS_NO_MEMORY;

    uint64_t mark = heap_mark();
    struct prepared_image *image;
    uint32_t status = build_image(e, req, maps, root_records, endpoint_records, writable_len, writable_count, &image);
    if (status != NUB_STATUS_OK) {
        heap_release(mark);
        return status;
    }
    req->code_va = e->data_va + offset;
    req->image_id = image_count;
    images[image_count++] = image;
    return NUB_STATUS_OK;
}

static bool translations_wanted; /* some image's translation_wanted is set */

/* Translates an image once, before the INVOKE's scratch begins; on failure (the arena is full) it stays interpreted. */
static void translate(struct prepared_image *image) {
    image->translation_wanted = false;
    if (image->translation_tried) return;
    image->translation_tried = true;
    pvm_compile(image->program, &code_arena);
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
 * The frame of the current INVOKE, and one per CALL depth below it. Minted caps and
 * Instances go on the heap and are reclaimed by the next INVOKE when nothing else was
 * allocated in between (their results are only read until then, like the invocation's
 * memory).
 */
static struct pvm_frame frame;
static struct pvm_frame *child_frames; /* [PVM_CALL_MAX_DEPTH]: the frame at depth d + 1 is child_frames[d] */
static uint64_t frame_heap_start, frame_heap_end;
static enum pvm_engine invoke_engine;

static uint8_t *mint_room(void *ctx, uint64_t pages) {
    (void)ctx;
    return heap_alloc_uninit(NUB_CAP_PUT_DATA_PAGES_OFFSET + pages * NUB_PAGE_SIZE, NUB_PAGE_SIZE, NUB_CAP_PUT_DATA_PAGES_OFFSET); /* the engine writes every byte */
}

/* Empties every slot of `f` at once (a new run); after 2^32 runs, clears it for real once. */
static void new_run(struct pvm_frame *f) {
    if (++f->gen == 0) {
        memset(f->slots, 0, sizeof f->slots);
        f->gen = 1;
    }
    f->failed = 0;
    f->held_instances = 0;
}

/* Maps argument mapping `m` onto the Data cap encoding `enc` (`len` bytes); the same cap needs nothing. */
static uint32_t map_arg(struct prepared_image *image, struct arg_mapping *m, const uint8_t *enc, uint64_t len) {
    if (enc == m->mapped && len == m->mapped_len) return NUB_STATUS_OK; /* a minted cap may reuse an earlier one's address */
    m->mapped = NULL; /* until the new mapping is complete */
    uint64_t bytes = len - NUB_CAP_PUT_DATA_PAGES_OFFSET;
    if (bytes < m->size && shared_zero_page() == NULL) return NUB_STATUS_NO_MEMORY;
    int err = pvm_map_linear(image->memory, m->start, m->size, (uint8_t *)enc + NUB_CAP_PUT_DATA_PAGES_OFFSET, bytes, zero_page, 0);
    if (err != PVM_OK) return err == PVM_ERR_NO_MEMORY ? NUB_STATUS_NO_MEMORY : NUB_STATUS_BAD_ARGS;
    m->mapped = enc;
    m->mapped_len = len;
    return NUB_STATUS_OK;
}

static const struct pvm_instance_ops instance_ops;

/* Maps the image's writable mappings onto `block` (its own, or an Instance's copy). They were mapped before, so nothing is allocated. */
static void show_writable(struct prepared_image *image, uint8_t *block) {
    if (image->shown == block) return;
    for (uint32_t i = 0; i < image->writable_count; i++) {
        const struct writable_mapping *w = &image->writables[i];
        pvm_map_linear(image->memory, w->start, w->size, block + w->offset, w->size, zero_page, 1);
    }
    image->shown = block;
}

/* Fills the frame from the host's records and maps the argument mappings onto their caps. */
static uint32_t load_frame(struct prepared_image *image, volatile struct nub_frame_slot *slots, uint32_t count, uint32_t arg_slots) {
    new_run(&frame);
    frame.arg_slots = arg_slots;
    frame.mint = mint_room;
    frame.depth = 0;
    frame.instances = &instance_ops;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t ref = slots[i].ref;
        if (ref == 0 || ref >= PVM_SLOT_SLOT_REFS) return NUB_STATUS_BAD_ARGS;
        frame.slots[ref] = (struct pvm_cap){
            .enc = (const uint8_t *)(uintptr_t)slots[i].data_va, .len = slots[i].len, .kind = slots[i].kind,
            .origin = i, .gen = frame.gen, .pinned = slots[i].pinned != 0, .image = slots[i].image,
        };
    }
    show_writable(image, image->writable_block); /* a CALL a timeout cut short may have left an Instance's */
    for (uint32_t i = 0; i < image->arg_mapping_count; i++) {
        struct arg_mapping *m = &image->arg_mappings[i];
        const struct pvm_cap *c = &frame.slots[PVM_SLOT_ARG_BASE + m->arg_slot];
        /* The host refuses a missing or non-Data argument before it sends the INVOKE. */
        if (c->gen != frame.gen || c->kind != PVM_CAP_DATA || c->len < NUB_CAP_PUT_DATA_PAGES_OFFSET) return NUB_STATUS_BAD_ARGS;
        uint32_t status = map_arg(image, m, c->enc, c->len);
        if (status != NUB_STATUS_OK) return status;
    }
    return NUB_STATUS_OK;
}

/*
 * Instances (DERIVE_SPAWN, CALL). An Instance cap's enc is a struct nub_instance
 * (the host reads it as a result cap) followed by the count of slots holding it; its
 * memory is a copy of its image's writable block. A CALL runs the child on a fresh
 * copy, so the Instance it was called on stays as it was when the child does not HALT;
 * a block no slot holds any more goes on a free list and is reused by the next copy of
 * the same size, so a loop of calls runs in two blocks. Everything here is INVOKE
 * scratch, released with the minted caps.
 */
struct instance {
    struct nub_instance record;
    uint64_t holders;
};
struct free_block {
    struct free_block *next;
    uint64_t len;
};
static struct free_block *free_blocks; /* reset with the scratch it lives in */
static struct instance *free_instances;

static uint8_t *block_alloc(uint64_t len) {
    for (struct free_block **p = &free_blocks; *p; p = &(*p)->next) {
        if ((*p)->len != len) continue;
        struct free_block *b = *p;
        *p = b->next;
        return (uint8_t *)b;
    }
    return heap_alloc_uninit(len < sizeof(struct free_block) ? sizeof(struct free_block) : len, NUB_PAGE_SIZE, 0);
}

static struct instance *instance_alloc(struct prepared_image *image, uint32_t id) {
    struct instance *in = free_instances;
    if (in) free_instances = *(struct instance **)in;
    else if ((in = heap_alloc_uninit(sizeof *in, 8, 0)) == NULL) return NULL;
    uint8_t *block = image->writable_len ? block_alloc(image->writable_len) : NULL;
    if (image->writable_len && block == NULL) return NULL;
    memset(in, 0, sizeof *in);
    in->record.image_id = id;
    in->record.memory_va = VA(block);
    in->record.memory_len = image->writable_len;
    in->holders = 1;
    return in;
}

static struct instance *instance_of(const struct pvm_cap *c) { return (struct instance *)(uintptr_t)c->enc; }
static uint8_t *memory_of(const struct instance *in) { return (uint8_t *)(uintptr_t)in->record.memory_va; }
static uint64_t pages_of(uint64_t len) { return (len + NUB_PAGE_SIZE - 1) / NUB_PAGE_SIZE; }

static void instance_retain(void *ctx, const struct pvm_cap *c) {
    (void)ctx;
    instance_of(c)->holders++;
}
/* One slot fewer holds `in`; the last one gives its record and block to the free lists. */
static void instance_drop(struct instance *in) {
    if (--in->holders) return;
    if (in->record.memory_len) {
        struct free_block *b = (struct free_block *)memory_of(in);
        *b = (struct free_block){free_blocks, in->record.memory_len};
        free_blocks = b;
    }
    *(struct instance **)in = free_instances;
    free_instances = in;
}
static void instance_release(void *ctx, const struct pvm_cap *c) {
    (void)ctx;
    instance_drop(instance_of(c));
}

static uint32_t spawn_check(void *ctx, const struct pvm_cap *image, uint64_t *pages) {
    (void)ctx;
    if (image->image == 0 || image->image > image_count) return PVM_KSTATUS_NOT_LOADED;
    *pages = pages_of(images[image->image - 1]->writable_len);
    return PVM_KSTATUS_OK;
}

static int spawn(void *ctx, const struct pvm_cap *cap, struct pvm_cap *out) {
    (void)ctx;
    struct prepared_image *image = images[cap->image - 1];
    struct instance *in = instance_alloc(image, cap->image - 1);
    if (in == NULL) return 0;
    uint8_t *block = memory_of(in);
    for (uint32_t i = 0; i < image->writable_count; i++) {
        const struct writable_mapping *w = &image->writables[i];
        memcpy(block + w->offset, w->initial, w->initial_len);
        memset(block + w->offset + w->initial_len, 0, w->size - w->initial_len);
    }
    *out = (struct pvm_cap){.enc = (const uint8_t *)in, .len = sizeof in->record, .kind = PVM_CAP_INSTANCE};
    return 1;
}

static const struct nub_endpoint *endpoint_of(const struct prepared_image *image, uint64_t key) {
    for (uint32_t i = 0; i < image->endpoint_count; i++)
        if (image->endpoints[i].key == key) return &image->endpoints[i];
    return NULL;
}

/* The checks of a host invoke's frame (lib/machine/frame.ts), for a child that gets at most argument cap 0. */
static uint32_t call_check(void *ctx, const struct pvm_cap *cap, uint64_t key, const struct pvm_cap *arg, uint64_t *pages) {
    (void)ctx;
    const struct instance *in = instance_of(cap);
    const struct prepared_image *image = images[in->record.image_id];
    const struct nub_endpoint *ep = endpoint_of(image, key);
    if (ep == NULL) return PVM_KSTATUS_NO_ENDPOINT;
    if (image->reserved_slots || (arg && ep->arg_slots == 0)) return PVM_KSTATUS_REFUSED;
    for (uint32_t i = 0; i < image->arg_mapping_count; i++) {
        const struct arg_mapping *m = &image->arg_mappings[i];
        if (m->arg_slot != 0 || !arg || arg->kind != PVM_CAP_DATA) return PVM_KSTATUS_REFUSED;
    }
    *pages = pages_of(in->record.memory_len);
    return PVM_KSTATUS_OK;
}

static uint32_t call(void *ctx, struct pvm_frame *caller, struct pvm_cap *cap, uint64_t key, const struct pvm_cap *arg,
                     const uint64_t *args, uint64_t *gas, uint64_t *value, struct pvm_cap *result, int *has_result) {
    (void)ctx;
    const struct instance *in = instance_of(cap);
    uint32_t id = in->record.image_id;
    struct prepared_image *image = images[id];
    const struct nub_endpoint *ep = endpoint_of(image, key);
    struct instance *next = instance_alloc(image, id);
    if (next == NULL) return UINT32_MAX;
    memcpy(memory_of(next), memory_of(in), image->writable_len);

    struct pvm_frame *f = &child_frames[caller->depth];
    new_run(f);
    f->arg_slots = ep->arg_slots;
    f->mint = mint_room;
    f->depth = caller->depth + 1;
    f->instances = &instance_ops;
    for (uint32_t i = 0; i < image->root_count; i++) {
        f->slots[image->root_slots[i].ref] = image->root_slots[i].cap;
        f->slots[image->root_slots[i].ref].gen = f->gen;
    }
    if (arg) {
        f->slots[PVM_SLOT_ARG_BASE] = *arg;
        f->slots[PVM_SLOT_ARG_BASE].gen = f->gen;
        f->slots[PVM_SLOT_ARG_BASE].pinned = 0;
        if (arg->kind == PVM_CAP_INSTANCE) instance_retain(0, arg), f->held_instances = 1;
    }

    /* The child's memory: the copy, and argument cap 0 under its argument mappings; put back after (a caller may run this image too). */
    uint8_t *was_shown = image->shown;
    const uint8_t *was_arg = image->arg_mapping_count ? image->arg_mappings[0].mapped : NULL;
    uint64_t was_arg_len = image->arg_mapping_count ? image->arg_mappings[0].mapped_len : 0;
    show_writable(image, memory_of(next));
    struct pvm_state st = {.gas = *gas};
    memcpy(st.regs, ep->regs, sizeof st.regs);
    st.regs[7] = args[0], st.regs[8] = args[1], st.regs[9] = args[2];
    uint32_t mapped = NUB_STATUS_OK;
    for (uint32_t i = 0; i < image->arg_mapping_count && mapped == NUB_STATUS_OK; i++) mapped = map_arg(image, &image->arg_mappings[i], arg->enc, arg->len);
    if (mapped != NUB_STATUS_OK) {
        f->failed = 1;
    } else {
        /* Not translated yet: this time interpreted, since what pvm_compile allocates now would be scratch. */
        enum pvm_engine engine = invoke_engine;
        if (engine == PVM_ENGINE_RECOMPILER && !image->translation_tried) image->translation_wanted = translations_wanted = true;
        if (!pvm_compiled_size(image->program)) engine = PVM_ENGINE_INTERPRETER;
        pvm_enter(image->program, image->memory, &st, ep->entry, engine, f); /* a child's host call ends it: nested frames have no host functions */
    }
    show_writable(image, was_shown);
    /* Every argument mapping of a CALLed image shows argument 0 (call_check refuses others), so one cap restores them all. */
    for (uint32_t i = 0; was_arg && i < image->arg_mapping_count; i++) map_arg(image, &image->arg_mappings[i], was_arg, was_arg_len);
    *gas = st.gas;

    /* The child's slots are dropped, but for argument slot 0 after HALT, which moves to the caller. */
    int halted = !f->failed && st.exit == PVM_EXIT_HALT;
    const struct pvm_cap *out = &f->slots[PVM_SLOT_ARG_BASE];
    *has_result = halted && f->arg_slots > 0 && out->gen == f->gen;
    if (*has_result) *result = *out;
    for (uint32_t ref = 1; f->held_instances && ref < PVM_SLOT_SLOT_REFS; ref++) {
        const struct pvm_cap *c = &f->slots[ref];
        if (c->gen == f->gen && c->kind == PVM_CAP_INSTANCE && !(*has_result && ref == PVM_SLOT_ARG_BASE)) instance_release(0, c);
    }
    if (f->failed) return UINT32_MAX;
    if (!halted) {
        instance_drop(next);
        *value = st.exit;
        return PVM_KSTATUS_CHILD_EXIT;
    }
    memcpy(next->record.regs, st.regs, sizeof st.regs);
    next->record.pc = st.pc;
    next->record.gas = st.gas;
    *cap = (struct pvm_cap){.enc = (const uint8_t *)next, .len = sizeof next->record, .kind = PVM_CAP_INSTANCE};
    *value = st.regs[7];
    return PVM_KSTATUS_OK;
}

static const struct pvm_instance_ops instance_ops = {spawn_check, spawn, call_check, call, instance_retain, instance_release};

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

/* Runs from `entry` until an exit the host does not handle; a handled host call is one exit on NUB_PORT_HOST_CALL. */
static void run(const struct prepared_image *image, volatile struct nub_invoke *inv, struct pvm_state *st, uint64_t entry, enum pvm_engine engine) {
    uint64_t instructions = 0;
    pvm_enter(image->program, image->memory, st, entry, engine, &frame);
    for (;;) {
        instructions += st->instructions;
        st->instructions = instructions; /* the whole invoke's, across host calls */
        if (st->exit != PVM_EXIT_HOST_CALL || !host_handles(st->exit_arg)) return;
        compiler_barrier();
        signal_host(NUB_PORT_HOST_CALL);
        compiler_barrier();
        /* RESUME: the host has written φ7 into the record, that is into the state. ABORT: the invoke ends at the call. */
        if (inv->host_reply != NUB_HOST_REPLY_RESUME) return;
        pvm_execute(image->program, image->memory, st, engine, &frame);
    }
}

uint32_t handle_invoke(volatile struct nub_mailbox *mb, uint8_t *payload) {
    volatile struct nub_invoke *inv = (volatile struct nub_invoke *)payload;
    if (mb->payload_len < sizeof(struct nub_invoke)) return NUB_STATUS_BAD_ARGS;
    uint32_t id = inv->image_id, wanted = inv->engine, slot_count = inv->slot_count, result_count = inv->result_count;
    uint64_t entry = inv->entry;
    if (slot_count > PVM_SLOT_SLOT_REFS || result_count > PVM_SLOT_SLOT_REFS - PVM_SLOT_ARG_BASE ||
        mb->payload_len != sizeof(struct nub_invoke) + slot_count * sizeof(struct nub_frame_slot) + result_count * sizeof(struct nub_result_cap))
        return NUB_STATUS_BAD_ARGS;
    if (id >= image_count) return NUB_STATUS_CAP_MISSING;
    if (wanted > PVM_ENGINE_RECOMPILER) return NUB_STATUS_BAD_ARGS;
    struct prepared_image *image = images[id];
    if (wanted == PVM_ENGINE_RECOMPILER) {
        translate(image);
        for (uint32_t i = 0; translations_wanted && i < image_count; i++)
            if (images[i]->translation_wanted) translate(images[i]);
        translations_wanted = false;
    }
    /* An image the arena had no room for runs in the interpreter (its instruction count then shows it). */
    enum pvm_engine engine = wanted == PVM_ENGINE_RECOMPILER && pvm_compiled_size(image->program) ? PVM_ENGINE_RECOMPILER : PVM_ENGINE_INTERPRETER;
    volatile struct nub_frame_slot *slots = (volatile struct nub_frame_slot *)(payload + sizeof(struct nub_invoke));
    volatile struct nub_result_cap *results = (volatile struct nub_result_cap *)(slots + slot_count);

    if (heap_mark() == frame_heap_end) heap_release(frame_heap_start); /* the last invoke's minted caps and Instances */
    free_blocks = NULL, free_instances = NULL;
    if (child_frames == NULL && (child_frames = heap_alloc(PVM_CALL_MAX_DEPTH * sizeof *child_frames, 8)) == NULL) return NUB_STATUS_NO_MEMORY;
    uint32_t status = load_frame(image, slots, slot_count, result_count); /* what it allocates (page-table leaves) stays */
    frame_heap_start = frame_heap_end = heap_mark();
    invoke_engine = engine;
    if (status != NUB_STATUS_OK) return status;

    compiler_barrier(); /* the record is the state from here on */
    struct pvm_state *st = (struct pvm_state *)(payload + offsetof(struct nub_invoke, gas));
    run(image, inv, st, entry, engine);
    frame_heap_end = heap_mark();
    if (frame.failed) return NUB_STATUS_NO_MEMORY;
    write_results(results, result_count);
    return NUB_STATUS_OK;
}
