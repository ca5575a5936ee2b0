/*
 * The in-guest PVM2 engine: a pre-decoding, threaded interpreter that must agree
 * bit for bit with the TypeScript reference (lib/machine; semantics in
 * docs/machine.md, design in docs/engine.md).
 *
 * Freestanding C11: no libc, no globals. All memory comes from the caller's
 * allocator; any number of programs, memories and runs may coexist.
 *
 *   struct pvm_program *prog;  pvm_prepare(&alloc, code, len, &prog);   once per image
 *   struct pvm_memory *mem;    pvm_memory_create(&alloc, prog, &mem);   once per invocation
 *                              pvm_map(mem, start, size, pages, writable);  per mapping
 *   struct pvm_state st = { .gas, .regs, .pc };  pvm_run(prog, mem, &st);  until an exit
 *
 * A HOST_CALL or OUT_OF_GAS run is resumed by calling pvm_run again with the same
 * state (after setting φ7 to the host call's result, or adding gas).
 */
#ifndef PVM_H
#define PVM_H

#include <stddef.h>
#include <stdint.h>

#include "pvm_tables.h"

/* The caller's allocator. `alloc` returns `size` bytes aligned to `align` (a power of two, at most PVM_PAGE_SIZE), or NULL. */
struct pvm_allocator {
    void *(*alloc)(void *ctx, size_t size, size_t align);
    void (*free)(void *ctx, void *ptr, size_t size);
    void *ctx;
};

/* Error codes of the setup calls (pvm_run reports through the state's exit). */
enum pvm_error {
    PVM_OK = 0,
    PVM_ERR_NO_MEMORY = 1,
    PVM_ERR_CODE_TOO_LARGE = 2,
    /* pvm_map: start or size not page-aligned, empty, or past 2^32. */
    PVM_ERR_BAD_MAPPING = 3,
    /* pvm_map: a backing page not 4-byte aligned (permission bits live in the low bits). */
    PVM_ERR_MISALIGNED_PAGE = 4,
    /* pvm_compile: the translation would exceed the arena's max_size. */
    PVM_ERR_TRANSLATION_TOO_LARGE = 5,
    /* pvm_compile: the translator failed an internal bound, or the arena could not seal the code. */
    PVM_ERR_TRANSLATION = 6,
};

/* Which engine pvm_execute runs: the threaded interpreter, or the program's x86-64 translation (pvm_compile). */
enum pvm_engine {
    PVM_ENGINE_INTERPRETER = 0,
    PVM_ENGINE_RECOMPILER = 1,
};

/*
 * Where the recompiler's code lives. `alloc` returns `size` bytes the translator may
 * write (at least 64-byte aligned), and in *exec the address the same bytes will execute at (the
 * same pointer, or an alias); `seal` is told that the first `used` bytes are the code
 * (the arena may reuse the rest) and makes them read+execute and no longer writable
 * (W^X), returning 0 on success; `free` releases an allocation that was never sealed,
 * or a sealed one with its `size` from alloc. pvm_compile calls alloc and then seal or
 * free, nothing in between. The code is position-independent apart from absolute calls
 * into this engine (the slow memory paths), so an alias at another address works.
 */
struct pvm_code_arena {
    void *(*alloc)(void *ctx, size_t size, void **exec);
    int (*seal)(void *ctx, void *write, size_t size);
    void (*free)(void *ctx, void *write, size_t size);
    void *ctx;
    size_t max_size; /* the largest translation to accept (PVM_ERR_TRANSLATION_TOO_LARGE beyond) */
};

/* A pre-decoded program; immutable once prepared, so runs may share it. */
struct pvm_program;
/* One invocation's address space: a software page table over the 4 GiB PVM space. */
struct pvm_memory;

/* Field order: the guest kernel's Invoke record holds this layout from its gas on, so it runs in place there. */
struct pvm_state {
    uint64_t gas;                /* gas left */
    uint64_t regs[PVM_NUM_REGS]; /* φ0..φ12 */
    uint32_t pc;                 /* CODE_BASE + byte offset into the code */
    uint32_t exit;               /* PVM_EXIT_*, set by pvm_run */
    uint64_t exit_arg;           /* φ7 (HALT), fault address (PAGE_FAULT), immediate (HOST_CALL), else 0 */
    uint64_t instructions;       /* set by pvm_run: instructions completed in this run (statistics only) */
};

/*
 * A cap in a frame slot, as the cap directory stores it: `enc` is its Cap union
 * encoding (`len` bytes; a Data cap's pages start page-aligned at enc +
 * PVM_SLOT_DATA_PAGES_OFFSET). An Image cap the guest does not hold has enc NULL.
 */
struct pvm_cap {
    const uint8_t *enc;
    uint64_t len;
    uint32_t kind;   /* PVM_CAP_* */
    uint32_t origin; /* the caller's tag for it (the guest: its frame record), PVM_NO_ORIGIN when minted */
    uint32_t gen;    /* the slot is filled exactly when this equals the frame's gen */
    uint32_t pinned;
    uint32_t image;  /* an Image cap: its kernel's image number + 1; 0 when it cannot be spawned (not loaded) */
};
#define PVM_NO_ORIGIN UINT32_MAX

struct pvm_frame;

/*
 * What the kernel does for Instances (DERIVE_SPAWN, CALL): pvm_kernel_op makes the
 * slot checks, these the rest, in the documented order. An Instance cap's `enc` is the
 * kernel's; caps are values, so the kernel counts the slots holding each one.
 */
struct pvm_instance_ops {
    /* DERIVE_SPAWN of `image`: NOT_LOADED, or OK with *pages the Instance's memory pages (its copy's gas). */
    uint32_t (*spawn_check)(void *ctx, const struct pvm_cap *image, uint64_t *pages);
    /* Makes the Instance into *out (kind, enc, len); 0 when memory is exhausted. */
    int (*spawn)(void *ctx, const struct pvm_cap *image, struct pvm_cap *out);
    /* CALL of endpoint [key] with argument cap `arg` (NULL: none): NO_ENDPOINT, REFUSED, or OK with *pages. */
    uint32_t (*call_check)(void *ctx, const struct pvm_cap *instance, uint64_t key, const struct pvm_cap *arg, uint64_t *pages);
    /*
     * Runs that call one frame below `caller` on *gas. HALT: returns OK, *instance is the
     * new Instance, *value the child's φ7, *result (when the function returns 1 in
     * *has_result) its argument slot 0. Otherwise CHILD_EXIT with *value = the exit.
     * UINT32_MAX when memory is exhausted.
     */
    uint32_t (*call)(void *ctx, struct pvm_frame *caller, struct pvm_cap *instance, uint64_t key, const struct pvm_cap *arg,
                     const uint64_t *args, uint64_t *gas, uint64_t *value, struct pvm_cap *result, int *has_result);
    /* A slot now holds (retain) or no longer holds (release) this Instance cap. */
    void (*retain)(void *ctx, const struct pvm_cap *instance);
    void (*release)(void *ctx, const struct pvm_cap *instance);
};

/*
 * The cap table of a run (docs/machine.md "Caps at run time"): indexed by slot
 * reference. Bumping `gen` empties every slot at once, so a new invocation does not
 * clear the table.
 */
struct pvm_frame {
    struct pvm_cap slots[PVM_SLOT_SLOT_REFS];
    uint32_t gen;
    uint32_t arg_slots; /* the endpoint's arg_cnode_size */
    /*
     * Room for a minted Data cap's encoding of `pages` pages (byte
     * PVM_SLOT_DATA_PAGES_OFFSET page-aligned), or NULL when memory is exhausted.
     */
    uint8_t *(*mint)(void *ctx, uint64_t pages);
    void *ctx;
    /* Set when a mint found no memory: the run stopped (as a PANIC) and the caller must fail the invocation. */
    uint32_t failed;
    /* Nesting depth (0: the host's invoke); CALL at PVM_CALL_MAX_DEPTH is DEPTH. */
    uint32_t depth;
    /* NULL: DERIVE_SPAWN is NOT_LOADED and CALL is DEPTH (no Instances). */
    const struct pvm_instance_ops *instances;
    /* Set when an Instance cap is put in a slot (cleared by whoever starts a new run): else no slot needs a release scan. */
    uint32_t held_instances;
};

/*
 * Kernel operation `n` (1..63) at an ecalli: reads φ7..φ10 from `phi` (φ0..φ12), writes
 * the status to φ7 (a value to φ8), charges *gas. Returns a PVM_KOUTCOME_*. Both
 * engines reach it through pvm_execute's one ecalli dispatcher.
 */
uint32_t pvm_kernel_op(struct pvm_frame *frame, struct pvm_memory *mem, uint64_t *phi, int64_t n, uint64_t *gas);

/* Decodes `code` once. The program keeps its own copy of the code. */
int pvm_prepare(const struct pvm_allocator *alloc, const uint8_t *code, uint32_t len, struct pvm_program **out);
void pvm_program_free(struct pvm_program *prog);
/* The code length the program was prepared from. */
uint32_t pvm_program_code_len(const struct pvm_program *prog);
/* Whether `pc` starts a basic block (pvm_enter's entry rule). */
int pvm_is_block_start(const struct pvm_program *prog, uint32_t pc);

/* An empty address space with the program's code readable at CODE_BASE (its length rounded up to a page, the tail zero). */
int pvm_memory_create(const struct pvm_allocator *alloc, const struct pvm_program *prog, struct pvm_memory **out);
void pvm_memory_free(struct pvm_memory *mem);

/*
 * Maps [start, start + size) onto `pages[i]` (PVM_PAGE_SIZE bytes each, owned by the
 * caller and alive as long as the memory), readable, and writable if `writable`.
 * A later mapping replaces an earlier one page by page.
 */
int pvm_map(struct pvm_memory *mem, uint32_t start, uint32_t size, uint8_t *const *pages, int writable);
/* pvm_map onto contiguous memory: the first `backed` bytes (whole pages) from `base`, every page after that onto `zero_page`. */
int pvm_map_linear(struct pvm_memory *mem, uint32_t start, uint32_t size, uint8_t *base, uint64_t backed, uint8_t *zero_page, int writable);

/*
 * Translates the program to x86-64 code in memory from `arena` (once; the translation
 * is kept with the program and freed with it). Time and memory are linear in the code
 * size; the code size bound is checked against arena->max_size before any work.
 */
int pvm_compile(struct pvm_program *prog, const struct pvm_code_arena *arena);
/* Bytes of x86-64 code and jalr table of the translation; 0 before pvm_compile. */
size_t pvm_compiled_size(const struct pvm_program *prog);

/*
 * Runs from st->pc until an exit and fills in st->exit, st->exit_arg, st->pc,
 * st->gas and st->regs. Entering at st->pc charges the gas from that instruction to
 * the end of its block, like any jump. Returns st->exit. Both engines give the same
 * exits, registers, pc, gas and memory; the recompiler (which needs pvm_compile first,
 * else PANIC) does not count st->instructions (0). Kernel operations work on `frame`;
 * with frame NULL every one is a PANIC.
 */
uint32_t pvm_execute(const struct pvm_program *prog, struct pvm_memory *mem, struct pvm_state *st, enum pvm_engine engine, struct pvm_frame *frame);
/*
 * Starts an invocation at byte `entry` of the code: the entry rule, in one place for
 * every caller. st->pc = PVM_CODE_BASE + entry (mod 2^32); an entry that is no block
 * start (past the code, odd, inside a block) is a PANIC there with nothing run or
 * charged, else it is pvm_execute. Returns st->exit.
 */
uint32_t pvm_enter(const struct pvm_program *prog, struct pvm_memory *mem, struct pvm_state *st, uint64_t entry, enum pvm_engine engine, struct pvm_frame *frame);
/* pvm_execute with the interpreter and no frame. */
uint32_t pvm_run(const struct pvm_program *prog, struct pvm_memory *mem, struct pvm_state *st);

#endif /* PVM_H */
