/* Engine internals shared by decode.c, memory.c and run.c; not part of the API. */
#ifndef PVM_INTERNAL_H
#define PVM_INTERNAL_H

#include "pvm.h"

/*
 * Register slots of the running machine: slot x is RISC-V register x (slot 0 always
 * reads zero; 3 and 4 are never named by a legal instruction), and writes to x0 land
 * in PVM_SINK_SLOT, which is never read. So no handler tests for x0.
 */
#define PVM_SINK_SLOT 16
#define PVM_REG_SLOTS 17

/* The x register each φ register lives in. */
static const uint8_t pvm_phi_slot[PVM_NUM_REGS] = PVM_PHI_X_REGISTERS;

/*
 * Internal exit of both engines at an `ecalli` (pc = the ecalli, exit_arg = its number):
 * pvm_execute's dispatcher turns it into HALT, PANIC or HOST_CALL, in one place for both.
 */
#define PVM_EXIT_ECALLI 0x100u

/* What the interpreter executes; an immediate form has its own handler (ADDI vs ADD). */
#define PVM_HANDLERS(X) \
    X(ILLEGAL) X(END) X(NOP) X(LI) \
    X(ADD) X(SUB) X(SLL) X(SLT) X(SLTU) X(XOR) X(SRL) X(SRA) X(OR) X(AND) \
    X(ADDW) X(SUBW) X(SLLW) X(SRLW) X(SRAW) \
    X(ADDI) X(SLTI) X(SLTIU) X(XORI) X(ORI) X(ANDI) X(SLLI) X(SRLI) X(SRAI) \
    X(ADDIW) X(SLLIW) X(SRLIW) X(SRAIW) \
    X(MUL) X(MULH) X(MULHSU) X(MULHU) X(DIV) X(DIVU) X(REM) X(REMU) \
    X(MULW) X(DIVW) X(DIVUW) X(REMW) X(REMUW) \
    X(ADDUW) X(SH1ADD) X(SH2ADD) X(SH3ADD) X(SH1ADDUW) X(SH2ADDUW) X(SH3ADDUW) X(SLLIUW) \
    X(ANDN) X(ORN) X(XNOR) X(CLZ) X(CTZ) X(CPOP) X(CLZW) X(CTZW) X(CPOPW) \
    X(MIN) X(MINU) X(MAX) X(MAXU) X(SEXTB) X(SEXTH) X(ZEXTH) \
    X(ROL) X(ROR) X(RORI) X(ROLW) X(RORW) X(RORIW) X(ORCB) X(REV8) \
    X(BCLR) X(BSET) X(BINV) X(BEXT) X(BCLRI) X(BSETI) X(BINVI) X(BEXTI) \
    X(CZEROEQZ) X(CZERONEZ) \
    X(LB) X(LH) X(LW) X(LD) X(LBU) X(LHU) X(LWU) X(SB) X(SH) X(SW) X(SD) \
    X(BEQ) X(BNE) X(BLT) X(BGE) X(BLTU) X(BGEU) X(JAL) X(JALR) \
    X(TRAP) X(ECALLJAR) X(ECALLI) X(FALLTHROUGH)

enum pvm_handler {
#define PVM_X(name) PVM_H_##name,
    PVM_HANDLERS(PVM_X)
#undef PVM_X
    PVM_HANDLER_COUNT
};

/* A static branch/jal whose target is not an instruction of the linear decode. */
#define PVM_NO_TARGET UINT32_MAX

#define PVM_BLOCK_START 0x80000000u
#define PVM_INDEX_MASK 0x7fffffffu

/* One pre-decoded instruction. */
struct pvm_insn {
    uint64_t gas;     /* gas of this instruction and the rest of its block: what entering here charges */
    int64_t imm;      /* immediate; the full value for LI; the ecalli number */
    uint32_t offset;  /* byte offset into the code */
    uint32_t target;  /* branch/jal: index of the target instruction, or PVM_NO_TARGET */
    uint32_t count;   /* instructions from here to the end of the block (statistics) */
    uint8_t handler;  /* enum pvm_handler */
    uint8_t rd, rs1, rs2; /* register slots */
};

struct pvm_program {
    struct pvm_allocator alloc;
    uint32_t code_len;
    uint32_t insn_count;     /* not counting the END sentinel at insns[insn_count] */
    struct pvm_insn *insns;  /* insn_count + 1 entries */
    /*
     * Per halfword of the code, plus one just past it for END: 1 + the index of the
     * instruction starting there (0 if none), ORed with PVM_BLOCK_START at a block start.
     */
    uint32_t *index_of_half;
    uint32_t half_count;
    uint8_t *code_pages;     /* the code, zero-padded to whole pages */
    uint32_t code_page_count;
    struct pvm_jit_code *jit; /* the x86-64 translation (jit.c), or NULL */
};

/*
 * The instruction index a run starting at `pc` enters: any instruction of the linear
 * decode (a resume after OUT_OF_GAS need not be at a block start) or END just past the
 * code; PVM_NO_TARGET for anything else (a PANIC with nothing charged).
 */
static inline uint32_t pvm_entry_index(const struct pvm_program *prog, uint32_t pc) {
    uint32_t start = pc - PVM_CODE_BASE;
    uint32_t entry = start % 2 == 0 && start / 2 < prog->half_count ? prog->index_of_half[start / 2] : 0;
    return entry ? (entry & PVM_INDEX_MASK) - 1 : PVM_NO_TARGET;
}

/* jit.c: runs the translation (like the interpreter, it may return PVM_EXIT_ECALLI); frees it. */
uint32_t pvm_jit_run(const struct pvm_program *prog, struct pvm_memory *mem, struct pvm_state *st);
void pvm_jit_free(struct pvm_program *prog);

/*
 * A page-table entry: the backing page's address minus the PVM page's, with the
 * permission bits in its low bits (pages are 4-byte aligned), so a byte's host address
 * is (entry & ~PVM_PERM_MASK) + addr without masking the address; 0 means no access
 * (a mapped page is always readable, so its entry is never 0).
 */
#define PVM_PERM_READ ((uintptr_t)1)
#define PVM_PERM_WRITE ((uintptr_t)2)
#define PVM_PERM_MASK ((uintptr_t)3)
#define PVM_LEAF_BITS 10
#define PVM_LEAF_ENTRIES (1u << PVM_LEAF_BITS)
#define PVM_DIR_ENTRIES (1u << (32 - 12 - PVM_LEAF_BITS))

/*
 * A run of pages backed by one contiguous host block with one permission: the
 * recompiler's fast windows (jit.c) check an access against one such run with a
 * single compare. Kept by pvm_map/pvm_map_linear; remapping any page drops the runs
 * over it, so a run always agrees with the page table, which stays authoritative.
 */
struct pvm_region {
    uint32_t start, size; /* PVM pages; size > 0 */
    uint8_t *host;        /* the host byte of `start` */
    int writable;
};
#define PVM_MAX_REGIONS 8

struct pvm_memory {
    struct pvm_allocator alloc;
    uint32_t region_count;
    struct pvm_region regions[PVM_MAX_REGIONS];
    /*
     * Leaf k's address minus k * PVM_LEAF_ENTRIES entries, so page p's entry is at
     * dir[p >> PVM_LEAF_BITS] + p entries: no masking of the page number (generated code
     * indexes it so too). Absent leaves are memory.c's shared all-zero (no access) leaf,
     * so lookups never test for NULL.
     */
    uintptr_t dir[PVM_DIR_ENTRIES];
};

static inline uintptr_t pvm_leaf_bias(uint32_t k, const uintptr_t *leaf) {
    return (uintptr_t)leaf - (uintptr_t)k * PVM_LEAF_ENTRIES * sizeof(uintptr_t);
}
static inline uintptr_t *pvm_entry_of_page(const struct pvm_memory *mem, uint32_t page) {
    return (uintptr_t *)(mem->dir[page >> PVM_LEAF_BITS] + (uintptr_t)page * sizeof(uintptr_t));
}
static inline uintptr_t pvm_page_entry(const struct pvm_memory *mem, uint32_t addr) {
    return *pvm_entry_of_page(mem, addr >> 12);
}
/* The host address of PVM byte `addr` under its page's entry `e` (which grants access). */
static inline uint8_t *pvm_host_byte(uintptr_t e, uint32_t addr) {
    return (uint8_t *)((e & ~PVM_PERM_MASK) + addr);
}

/*
 * Accesses that straddle pages or fault take these byte-wise paths. Like the inline
 * accesses they return 1 on success, else 0 with *fault = the lowest address (mod 2^32, so a wrapping access's
 * low end counts as lowest) lacking the permission; a faulting store writes nothing.
 */
#define PVM_HIDDEN __attribute__((visibility("hidden"))) /* generated code takes their addresses: no GOT */
PVM_HIDDEN int pvm_load_slow(const struct pvm_memory *mem, uint32_t addr, unsigned size, uint64_t *value, uint32_t *fault);
PVM_HIDDEN int pvm_store_slow(struct pvm_memory *mem, uint32_t addr, unsigned size, uint64_t value, uint32_t *fault);

/*
 * Zeroing and copying a word at a time: under nested virtualisation every guest
 * instruction is expensive, and a byte loop costs four of them per byte.
 */
typedef uint64_t __attribute__((may_alias, aligned(1))) pvm_word;

static inline void pvm_zero(void *dst, size_t n) {
    uint8_t *d = dst;
#pragma GCC unroll 8
    for (; n >= sizeof(pvm_word); n -= sizeof(pvm_word), d += sizeof(pvm_word)) *(pvm_word *)d = 0;
    while (n--) *d++ = 0;
}

static inline void pvm_memcpy(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
#pragma GCC unroll 4
    for (; n >= sizeof(pvm_word); n -= sizeof(pvm_word), d += sizeof(pvm_word), s += sizeof(pvm_word)) *(pvm_word *)d = *(const pvm_word *)s;
    while (n--) *d++ = *s++;
}

#endif /* PVM_INTERNAL_H */
