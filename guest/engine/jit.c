/*
 * The recompiler: every pre-decoded instruction (decode.c) becomes x86-64 code, in
 * one pass, so translation is linear in the code size. Design: docs/engine.md.
 *
 * Register map: φ registers live in ten host registers (the three least used by the
 * program in stack slots), gas in RBP, window 0's host address minus its start in R15;
 * RAX, RCX and RDX are scratch. The frame at RSP holds a slot per RISC-V register
 * (slot 0 reads zero, slot PVM_SINK_SLOT takes writes to x0), so a φ register's home
 * is a host register or its slot.
 *
 * Gas: a block start's code begins `sub rbp, cost; jb out_of_gas`, the whole block's
 * cost; the out-of-line stub adds it back (nothing charged) and exits at the block
 * start. A static jump into the middle of a block charges that instruction's suffix
 * (inline when it jumps back, through a stub when forward). `pvm_jit_run` charges the
 * entry in C and jumps past it.
 *
 * Memory: two windows per run, each a linearly backed region of the memory
 * (memory.c) with one permission: window 0 the stack (the region below the entry's
 * sp), window 1 the largest data region. An access checks its offset into one window
 * (the stack's for addresses guessed to be on the stack, else the data's) with one
 * compare and is then one load or store. Out of line it tries the other window, then
 * the page table (walk_thunk), then pvm_load_slow / pvm_store_slow, the interpreter's
 * own slow paths. In a stack region (below) one check covers every access through sp
 * (or one pointer), each then a single load or store at R15 + base + imm.
 */
#include "internal.h"
#include "x86.h"

/*
 * Frame layout (offsets from RSP inside generated code). The windows come first, so
 * the operands every access reads have one-byte displacements.
 */
#define F_WIN_LO(k) (12 * (k))              /* window k: its first PVM address, */
#define F_WIN_LIM(k, store) (12 * (k) + 4 + 4 * (store)) /* ... and the bound an access's offset into it must stay below */
#define F_WIN1_HOST 24                      /* window 1's host address */
#define F_WIN0_LO64 32                      /* window 0's start as 64 bits (R15 = its host address minus its start) */
#define F_SLOT(x) (40 + 8 * (x))            /* RISC-V register x; slot 0 is zero */
#define F_STATE F_SLOT(PVM_REG_SLOTS)       /* struct pvm_state * */
#define F_PC (F_STATE + 8)                  /* pc of a slow-path access, for its fault */
#define F_VALUE (F_PC + 8)                  /* pvm_load_slow's value */
#define F_FAULT (F_VALUE + 8)               /* the slow paths' fault address */
#define F_SAVED (F_FAULT + 8)               /* caller-saved homes across a slow-path call */
#define F_MEM (F_SAVED + 8 * 6)             /* struct pvm_memory * */
#define F_SIZE (F_MEM + 8)                  /* ≡ 8 mod 16: after six pushes and the return address RSP is 16-aligned */
_Static_assert(F_SIZE % 16 == 8, "frame keeps RSP 16-byte aligned");

#define GAS RBP
#define WIN0 R15

/* What pvm_jit_run hands the trampoline, in the frame's layout (then R15's value). */
struct windows {
    struct { uint32_t lo, lim[2]; } bound[2]; /* lim[store]: 0 makes every access miss */
    uint8_t *host1;
    uint64_t lo0;
    uintptr_t base0; /* window 0's host address minus its start: the host byte of address a is base0 + a */
};
_Static_assert(offsetof(struct windows, host1) == F_WIN1_HOST && offsetof(struct windows, lo0) == F_WIN0_LO64 &&
                   offsetof(struct windows, bound[1].lim[1]) == F_WIN_LIM(1, 1),
               "windows match the frame");

/* Host registers φ registers may live in; the first six are caller-saved (saved around slow-path calls). */
static const uint8_t home_regs[] = {RSI, RDI, R8, R9, R10, R11, RBX, R12, R13, R14};
#define HOME_REGS (sizeof home_regs)
#define CALLER_SAVED_HOMES 6
static const uint8_t callee_saved[] = {RBX, RBP, R12, R13, R14, R15};

/* Worst-case bytes per instruction, inline and out of line, a memory access's stub apart (checked as it emits: PVM_ERR_TRANSLATION if ever wrong). */
#define HOT_MAX 120
#define COLD_MAX 96
#define COLD_ACCESS_MAX 192
#define FIXED_MAX 1024

struct stub {
    uint8_t kind;
    uint8_t patches;
    uint32_t insn;      /* the instruction the stub belongs to (or enters, for STUB_ENTER; a region's first) */
    uint32_t patch[2];  /* displacements that jump to the stub */
    uint32_t resume;    /* where a slow path returns to; a region's end */
};
enum { STUB_OUT_OF_GAS, STUB_PANIC, STUB_ENTER, STUB_REGION, STUB_LOAD, STUB_STORE };

struct jit {
    const struct pvm_program *prog;
    struct x86_buf e;
    int8_t home[PVM_REG_SLOTS]; /* host register of RISC-V register x, or -1: its frame slot */
    struct stub *stubs;
    uint32_t stub_count, stub_cap;
    uint32_t *prologue;         /* buffer position of each instruction's code, gas check included */
    uint32_t *body;             /* ... and past the gas check (inside a stack region: its checked copy) */
    uint8_t *flags;             /* per instruction: IS_TARGET, STACK_BASED */
    uint32_t *region_end[2];    /* per instruction: the end of the stack region (sp's, a pointer's) starting there, or 0 */
    uint32_t fast_end[2];       /* accesses based on fast_base[k] before this instruction are inside window 0 (checked at the region's start) */
    uint8_t fast_base[2];
    uint32_t exit_pos, load_thunk, store_thunk, walk_thunk[2], table_pos;
};

#define IS_TARGET 1   /* a static branch/jal goes there */
#define STACK_BASED 2 /* an access whose base register likely points into the stack */
#define IN_SP_REGION 4 /* inside an sp region, after its first instruction */

struct pvm_jit_code {
    struct pvm_code_arena arena;
    void *write, *exec;
    size_t size, used;
    uint32_t entry_pos;  /* the trampoline */
    uint32_t *body;      /* per instruction (and END): where pvm_jit_run enters, gas already charged */
    size_t body_size;
};

static struct x86_op home(const struct jit *j, uint32_t x) {
    return j->home[x] >= 0 ? x_reg(j->home[x]) : x_mem(RSP, F_SLOT(x));
}
static int in_reg(const struct jit *j, uint32_t x) { return j->home[x] >= 0; }

/* host reg = RISC-V register x */
static void get(struct jit *j, int reg, uint32_t x) {
    if (x == 0) x_mov_r_imm(&j->e, reg, 0);
    else if (j->home[x] != reg) x_mov_r_rm(&j->e, X_W, reg, home(j, x));
}
static void put(struct jit *j, uint32_t x, int reg) {
    if (x != PVM_SINK_SLOT && j->home[x] != reg) x_mov_rm_r(&j->e, X_W, home(j, x), reg);
}
static void put_imm(struct jit *j, uint32_t x, uint64_t v) {
    if (x == PVM_SINK_SLOT) return;
    if (in_reg(j, x)) x_mov_r_imm(&j->e, j->home[x], v);
    else if (fits32((int64_t)v)) x_mov_rm_imm(&j->e, X_W, home(j, x), (int32_t)v);
    else {
        x_mov_r_imm(&j->e, RAX, v);
        put(j, x, RAX);
    }
}
/* The register rd's result can be computed in: its home if that is a register rd's inputs do not need afterwards. */
static int work_reg(const struct jit *j, uint32_t rd, uint32_t avoid) {
    return in_reg(j, rd) && rd != avoid ? j->home[rd] : RAX;
}

static uint32_t pc_of(const struct jit *j, uint32_t i) { return PVM_CODE_BASE + j->prog->insns[i].offset; }
static int block_start(const struct pvm_program *p, uint32_t i) {
    return i < p->insn_count && (p->index_of_half[p->insns[i].offset / 2] & PVM_BLOCK_START);
}

static int add_stub(struct jit *j, int kind, uint32_t insn, uint32_t patch, uint32_t resume) {
    if (j->stub_count == j->stub_cap) return 0;
    j->stubs[j->stub_count++] = (struct stub){.kind = (uint8_t)kind, .patches = 1, .insn = insn, .patch = {patch}, .resume = resume};
    return 1;
}

/* Common exit: EAX = exit, ECX = pc, RDX = exit argument. Stores the machine state and returns EAX. */
static void emit_exit(struct jit *j) {
    struct x86_buf *e = &j->e;
    x_mov_rm_r(e, X_W, x_mem(RSP, F_VALUE), RDX);
    x_mov_r_rm(e, X_W, RDX, x_mem(RSP, F_STATE));
    x_mov_rm_r(e, 0, x_mem(RDX, offsetof(struct pvm_state, pc)), RCX);
    x_mov_rm_r(e, 0, x_mem(RDX, offsetof(struct pvm_state, exit)), RAX);
    x_mov_r_rm(e, X_W, RCX, x_mem(RSP, F_VALUE));
    x_mov_rm_r(e, X_W, x_mem(RDX, offsetof(struct pvm_state, exit_arg)), RCX);
    x_mov_rm_r(e, X_W, x_mem(RDX, offsetof(struct pvm_state, gas)), GAS);
    for (uint32_t i = 0; i < PVM_NUM_REGS; i++) {
        uint32_t x = pvm_phi_slot[i];
        int r = in_reg(j, x) ? j->home[x] : RCX;
        if (r == RCX) x_mov_r_rm(e, X_W, RCX, home(j, x));
        x_mov_rm_r(e, X_W, x_mem(RDX, (int32_t)(offsetof(struct pvm_state, regs) + 8 * i)), r);
    }
    x_alu_imm(e, X_W, ALU_ADD, x_reg(RSP), F_SIZE);
    for (int i = (int)sizeof callee_saved - 1; i >= 0; i--) x_pop(e, callee_saved[i]);
    x_b(e, 0xc3);
}

/* Trampoline: entry(state, memory, target, windows). Loads the machine state and jumps to target. */
static void emit_entry(struct jit *j) {
    struct x86_buf *e = &j->e;
    for (uint32_t i = 0; i < sizeof callee_saved; i++) x_push(e, callee_saved[i]);
    x_alu_imm(e, X_W, ALU_SUB, x_reg(RSP), F_SIZE);
    x_mov_rm_r(e, X_W, x_mem(RSP, F_STATE), RDI);
    x_mov_rm_r(e, X_W, x_mem(RSP, F_MEM), RSI);
    x_mov_r_rm(e, X_W, RAX, x_reg(RDX));
    for (int32_t q = 0; q < (int32_t)offsetof(struct windows, base0); q += 8) {
        x_mov_r_rm(e, X_W, RDX, x_mem(RCX, q));
        x_mov_rm_r(e, X_W, x_mem(RSP, q), RDX);
    }
    x_mov_r_rm(e, X_W, WIN0, x_mem(RCX, offsetof(struct windows, base0)));
    x_mov_r_rm(e, X_W, RCX, x_reg(RDI));
    x_mov_rm_imm(e, X_W, x_mem(RSP, F_SLOT(0)), 0);
    x_mov_r_rm(e, X_W, GAS, x_mem(RCX, offsetof(struct pvm_state, gas)));
    for (uint32_t i = 0; i < PVM_NUM_REGS; i++) {
        uint32_t x = pvm_phi_slot[i];
        struct x86_op src = x_mem(RCX, (int32_t)(offsetof(struct pvm_state, regs) + 8 * i));
        if (in_reg(j, x)) {
            x_mov_r_rm(e, X_W, j->home[x], src);
        } else {
            x_mov_r_rm(e, X_W, RDX, src);
            x_mov_rm_r(e, X_W, home(j, x), RDX);
        }
    }
    x_enc(e, 0, 0xff, 1, 4, x_reg(RAX), 0); /* jmp rax */
}

/*
 * Slow-path thunks, called from an access's stub with EAX = address, ECX = size,
 * RDX = the value (stores) and the access's pc in the frame. A load returns the bytes
 * in RAX; a fault leaves through the common exit as PAGE_FAULT.
 */
static void emit_thunk(struct jit *j, int store) {
    struct x86_buf *e = &j->e;
    const int32_t bias = 16; /* the return address and the alignment word */
    x_alu_imm(e, X_W, ALU_SUB, x_reg(RSP), 8);
    for (int i = 0; i < CALLER_SAVED_HOMES; i++) x_mov_rm_r(e, X_W, x_mem(RSP, bias + F_SAVED + 8 * i), home_regs[i]);
    x_mov_r_rm(e, 0, RSI, x_reg(RAX));
    if (store) x_mov_r_rm(e, X_W, RAX, x_reg(RDX));
    x_mov_r_rm(e, 0, RDX, x_reg(RCX));
    if (store) x_mov_r_rm(e, X_W, RCX, x_reg(RAX));
    else x_lea(e, X_W, RCX, x_mem(RSP, bias + F_VALUE));
    x_mov_r_rm(e, X_W, RDI, x_mem(RSP, bias + F_MEM));
    x_lea(e, X_W, R8, x_mem(RSP, bias + F_FAULT));
    x_mov_r_imm(e, RAX, store ? (uint64_t)(uintptr_t)&pvm_store_slow : (uint64_t)(uintptr_t)&pvm_load_slow);
    x_enc(e, 0, 0xff, 1, 2, x_reg(RAX), 0); /* call rax */
    for (int i = 0; i < CALLER_SAVED_HOMES; i++) x_mov_r_rm(e, X_W, home_regs[i], x_mem(RSP, bias + F_SAVED + 8 * i));
    x_test_rm_r(e, 0, x_reg(RAX), RAX);
    uint32_t fault = x_jcc(e, CC_E); /* 0: the access faulted */
    if (!store) x_mov_r_rm(e, X_W, RAX, x_mem(RSP, bias + F_VALUE));
    x_alu_imm(e, X_W, ALU_ADD, x_reg(RSP), 8);
    x_b(e, 0xc3);
    x_patch(e, fault, e->pos);
    x_mov_r_rm(e, 0, RDX, x_mem(RSP, bias + F_FAULT));
    x_mov_r_rm(e, 0, RCX, x_mem(RSP, bias + F_PC));
    x_mov_r_imm(e, RAX, PVM_EXIT_PAGE_FAULT);
    x_alu_imm(e, X_W, ALU_ADD, x_reg(RSP), bias);
    x_jmp_to(e, j->exit_pos);
}

/*
 * The page-table walk, called from an access's stub with EAX = address, ECX = size - 1:
 * RDX = the host address if the access stays in one page that has the permission, else 0.
 */
static void emit_walk_thunk(struct jit *j, int store) {
    struct x86_buf *e = &j->e;
    x_lea(e, 0, RCX, x_sib(RAX, RCX, 1, 0));
    x_alu_r_rm(e, 0, ALU_XOR, RCX, x_reg(RAX));
    x_test_rm_imm(e, x_reg(RCX), -(int32_t)PVM_PAGE_SIZE);
    uint32_t straddles = x_jcc(e, CC_NE);
    x_mov_r_rm(e, 0, RDX, x_reg(RAX));
    x_shift_imm(e, 0, SH_SHR, x_reg(RDX), 12 + PVM_LEAF_BITS);
    x_mov_r_rm(e, X_W, RCX, x_mem(RSP, 8 + F_MEM));
    x_mov_r_rm(e, X_W, RCX, x_sib(RCX, RDX, 8, offsetof(struct pvm_memory, dir))); /* the biased leaf */
    x_mov_r_rm(e, 0, RDX, x_reg(RAX));
    x_shift_imm(e, 0, SH_SHR, x_reg(RDX), 12);
    x_mov_r_rm(e, X_W, RDX, x_sib(RCX, RDX, 8, 0));
    x_test_imm8(e, x_reg(RDX), store ? (uint8_t)PVM_PERM_WRITE : (uint8_t)PVM_PERM_READ);
    uint32_t denied = x_jcc(e, CC_E);
    x_alu_imm(e, X_W, ALU_AND, x_reg(RDX), ~(int32_t)PVM_PERM_MASK);
    x_alu_r_rm(e, X_W, ALU_ADD, RDX, x_reg(RAX));
    x_b(e, 0xc3);
    x_patch(e, straddles, e->pos);
    x_patch(e, denied, e->pos);
    x_mov_r_imm(e, RDX, 0);
    x_b(e, 0xc3);
}

/* An exit from inline code: pc, exit and argument, then the common exit. */
static void emit_leave(struct jit *j, uint32_t exit, uint32_t pc, int64_t arg) {
    x_mov_r_imm(&j->e, RCX, pc);
    x_mov_r_imm(&j->e, RDX, (uint64_t)arg);
    x_mov_r_imm(&j->e, RAX, exit);
    x_jmp_to(&j->e, j->exit_pos);
}

/* rd = rs1 OP rs2 for an x86 "op reg, rm" ALU operation. */
/* rd, a frame slot, OP= the register `src`: one read-modify-write, not a load, the op and a store. */
static int emit_alu_in_slot(struct jit *j, int alu, uint32_t src, const struct pvm_insn *in) {
    if (in->rd == PVM_SINK_SLOT || in_reg(j, in->rd) || !src || !in_reg(j, src)) return 0;
    x_alu_rm_r(&j->e, X_W, alu, home(j, in->rd), j->home[src]);
    return 1;
}
static void emit_alu(struct jit *j, int alu, int flags, const struct pvm_insn *in) {
    int commutes = alu != ALU_SUB;
    if ((flags & X_W) && ((in->rd == in->rs1 && emit_alu_in_slot(j, alu, in->rs2, in)) ||
                          (commutes && in->rd == in->rs2 && emit_alu_in_slot(j, alu, in->rs1, in))))
        return;
    int w = work_reg(j, in->rd, in->rs2);
    get(j, w, in->rs1);
    x_alu_r_rm(&j->e, flags, alu, w, home(j, in->rs2));
    if (!(flags & X_W)) x_movsxd(&j->e, w, x_reg(w));
    put(j, in->rd, w);
}
static void emit_alu_imm(struct jit *j, int alu, const struct pvm_insn *in) {
    if (in->rd == in->rs1 && in->rd != PVM_SINK_SLOT && !in_reg(j, in->rd)) { /* in place in its slot */
        x_alu_imm(&j->e, X_W, alu, home(j, in->rd), (int32_t)in->imm);
        return;
    }
    int w = work_reg(j, in->rd, PVM_REG_SLOTS);
    get(j, w, in->rs1);
    x_alu_imm(&j->e, X_W, alu, x_reg(w), (int32_t)in->imm);
    put(j, in->rd, w);
}
/* Shifts and rotates by rs2 (x86 masks the count as RISC-V does: 63, or 31 for 32-bit). */
static void emit_shift(struct jit *j, int sh, int flags, const struct pvm_insn *in) {
    get(j, RCX, in->rs2);
    int w = work_reg(j, in->rd, PVM_REG_SLOTS);
    get(j, w, in->rs1);
    x_shift_cl(&j->e, flags, sh, x_reg(w));
    if (!(flags & X_W)) x_movsxd(&j->e, w, x_reg(w));
    put(j, in->rd, w);
}
static void emit_shift_imm(struct jit *j, int sh, int flags, const struct pvm_insn *in) {
    int w = work_reg(j, in->rd, PVM_REG_SLOTS);
    get(j, w, in->rs1);
    x_shift_imm(&j->e, flags, sh, x_reg(w), (int)(in->imm & ((flags & X_W) ? 63 : 31)));
    if (!(flags & X_W)) x_movsxd(&j->e, w, x_reg(w));
    put(j, in->rd, w);
}
/* rd = (rs1 CMP rs2 or imm) ? 1 : 0 */
static void emit_set(struct jit *j, int cc, const struct pvm_insn *in, int with_imm) {
    struct x86_buf *e = &j->e;
    int a = in->rs1 && in_reg(j, in->rs1) ? j->home[in->rs1] : RCX;
    if (a == RCX) get(j, RCX, in->rs1);
    x_mov_r_imm(e, RAX, 0);
    if (with_imm) x_alu_imm(e, X_W, ALU_CMP, x_reg(a), (int32_t)in->imm);
    else x_alu_r_rm(e, X_W, ALU_CMP, a, home(j, in->rs2));
    x_setcc(e, cc, RAX);
    put(j, in->rd, RAX);
}
/* rd = cc(rs1, rs2) ? rs2 : rs1 (min/max) */
static void emit_select(struct jit *j, int cc, const struct pvm_insn *in) {
    get(j, RAX, in->rs1);
    get(j, RCX, in->rs2);
    x_alu_r_rm(&j->e, X_W, ALU_CMP, RAX, x_reg(RCX));
    x_cmov(&j->e, cc, RAX, x_reg(RCX));
    put(j, in->rd, RAX);
}
/* rd = (rs2 cc 0) ? 0 : rs1 (czero) */
static void emit_czero(struct jit *j, int cc, const struct pvm_insn *in) {
    get(j, RAX, in->rs1);
    get(j, RCX, in->rs2);
    x_mov_r_imm(&j->e, RDX, 0);
    x_test_rm_r(&j->e, X_W, x_reg(RCX), RCX);
    x_cmov(&j->e, cc, RAX, x_reg(RDX));
    put(j, in->rd, RAX);
}
/* RAX = rs1, then `op` with rs2 via the F7 group; the result is in RAX or RDX. */
static void emit_mul_high(struct jit *j, int signed_, const struct pvm_insn *in) {
    get(j, RAX, in->rs1);
    get(j, RCX, in->rs2);
    x_f7(&j->e, X_W, signed_ ? 5 : 4, x_reg(RCX));
    put(j, in->rd, RDX);
}
/*
 * Division with RISC-V's results: by zero, quotient all ones and remainder the
 * dividend; by -1 (signed), quotient -a (so MIN stays MIN) and remainder 0, which
 * also avoids x86's overflow fault.
 */
static void emit_div(struct jit *j, int flags, int signed_, int rem, const struct pvm_insn *in) {
    struct x86_buf *e = &j->e;
    int w = flags & X_W;
    get(j, RAX, in->rs1);
    get(j, RCX, in->rs2);
    x_test_rm_r(e, flags, x_reg(RCX), RCX);
    uint32_t by_zero = x_jcc(e, CC_E);
    uint32_t by_minus_one = 0;
    if (signed_) {
        x_alu_imm(e, flags, ALU_CMP, x_reg(RCX), -1);
        by_minus_one = x_jcc(e, CC_E);
        if (w) x_b(e, 0x48);
        x_b(e, 0x99); /* cqo / cdq */
    } else {
        x_mov_r_imm(e, RDX, 0);
    }
    x_f7(e, flags, signed_ ? 7 : 6, x_reg(RCX));
    if (rem) x_mov_r_rm(e, flags, RAX, x_reg(RDX));
    uint32_t done = x_jmp(e), done_minus_one = 0;
    if (signed_) {
        x_patch(e, by_minus_one, e->pos);
        if (rem) x_mov_r_imm(e, RAX, 0);
        else x_f7(e, flags, 3, x_reg(RAX)); /* neg */
        done_minus_one = x_jmp(e);
    }
    x_patch(e, by_zero, e->pos);
    if (!rem) x_mov_r_imm(e, RAX, UINT64_MAX); /* (a remainder by zero is the dividend, already in RAX) */
    x_patch(e, done, e->pos);
    if (signed_) x_patch(e, done_minus_one, e->pos);
    if (!w) x_movsxd(e, RAX, x_reg(RAX));
    put(j, in->rd, RAX);
}

static void emit_popcount(struct jit *j) {
    /* RAX = popcount(RAX), the SWAR sum */
    struct x86_buf *e = &j->e;
    static const uint64_t m1 = 0x5555555555555555ull, m2 = 0x3333333333333333ull, m4 = 0x0f0f0f0f0f0f0f0full;
    x_mov_r_rm(e, X_W, RCX, x_reg(RAX));
    x_shift_imm(e, X_W, SH_SHR, x_reg(RCX), 1);
    x_mov_r_imm(e, RDX, m1);
    x_alu_r_rm(e, X_W, ALU_AND, RCX, x_reg(RDX));
    x_alu_r_rm(e, X_W, ALU_SUB, RAX, x_reg(RCX));
    x_mov_r_imm(e, RDX, m2);
    x_mov_r_rm(e, X_W, RCX, x_reg(RAX));
    x_alu_r_rm(e, X_W, ALU_AND, RCX, x_reg(RDX));
    x_shift_imm(e, X_W, SH_SHR, x_reg(RAX), 2);
    x_alu_r_rm(e, X_W, ALU_AND, RAX, x_reg(RDX));
    x_alu_r_rm(e, X_W, ALU_ADD, RAX, x_reg(RCX));
    x_mov_r_rm(e, X_W, RCX, x_reg(RAX));
    x_shift_imm(e, X_W, SH_SHR, x_reg(RCX), 4);
    x_alu_r_rm(e, X_W, ALU_ADD, RAX, x_reg(RCX));
    x_mov_r_imm(e, RDX, m4);
    x_alu_r_rm(e, X_W, ALU_AND, RAX, x_reg(RDX));
    x_mov_r_imm(e, RDX, 0x0101010101010101ull);
    x_0f(e, X_W, 0xaf, RAX, x_reg(RDX)); /* imul rax, rdx */
    x_shift_imm(e, X_W, SH_SHR, x_reg(RAX), 56);
}

/* Leading/trailing zeros of RAX's low `bits` into RAX (bsr/bsf leave ZF set for zero). */
static void emit_count_zeros(struct jit *j, int leading, int bits) {
    struct x86_buf *e = &j->e;
    int flags = bits == 64 ? X_W : 0;
    x_0f(e, flags, leading ? 0xbd : 0xbc, RAX, x_reg(RAX));
    /* clz = bsr ^ (bits - 1); for zero, (2 * bits - 1) ^ (bits - 1) = bits */
    x_mov_r_imm(e, RDX, leading ? (uint64_t)(2 * bits - 1) : (uint64_t)bits);
    x_cmov(e, CC_E, RAX, x_reg(RDX));
    if (leading) x_alu_imm(e, 0, ALU_XOR, x_reg(RAX), bits - 1);
}

/* reg = the access's 32-bit address, rs1 + imm (zero-extended); rs1 is left as it was. */
static void emit_address(struct jit *j, int reg, const struct pvm_insn *in) {
    if (in->rs1 && in_reg(j, in->rs1)) x_lea(&j->e, 0, reg, x_mem(j->home[in->rs1], (int32_t)in->imm));
    else if (in->rs1 == 0) x_mov_r_imm(&j->e, reg, (uint32_t)in->imm);
    else {
        x_mov_r_rm(&j->e, 0, reg, home(j, in->rs1)); /* the low half */
        if (in->imm) x_alu_imm(&j->e, 0, ALU_ADD, x_reg(reg), (int32_t)in->imm);
    }
}

/*
 * Checks that the 8 bytes at the address in `reg` are inside window k; returns the `jae`
 * taken when not. Window 0 keeps the address in `reg` (its host bytes are at R15 + it);
 * window 1 leaves the offset into it in EDX.
 */
static uint32_t emit_window_check(struct jit *j, int k, int reg, int store) {
    int t = k == 0 ? RCX : RDX;
    if (reg != t) x_mov_r_rm(&j->e, 0, t, x_reg(reg));
    x_alu_r_rm(&j->e, 0, ALU_SUB, t, x_mem(RSP, F_WIN_LO(k)));
    x_alu_r_rm(&j->e, 0, ALU_CMP, t, x_mem(RSP, F_WIN_LIM(k, store)));
    return x_jcc(&j->e, CC_AE);
}

/* The access itself, on the host bytes at `m`: a load into rd (through RAX), or a store of rs2 (through `scratch`, which `m` must not use). */
static void emit_access(struct jit *j, const struct pvm_insn *in, struct x86_op m, int scratch);

/* The host bytes of a hit in window k, after emit_window_check on `reg`; window 1's base goes through RCX. */
static struct x86_op window_bytes(struct jit *j, int k, int reg) {
    if (k == 0) return x_sib(WIN0, reg, 1, 0);
    x_mov_r_rm(&j->e, X_W, RCX, x_mem(RSP, F_WIN1_HOST));
    return x_sib(RCX, RDX, 1, 0);
}

/* The window an access tries first: the stack's for (likely) stack addresses. */
static int predicted_window(const struct jit *j, uint32_t i) { return j->flags[i] & STACK_BASED ? 0 : 1; }

static int emit_memory(struct jit *j, uint32_t i, int store) {
    const struct pvm_insn *in = &j->prog->insns[i];
    for (int r = 0; r < 2; r++) {
        if (in->rs1 == j->fast_base[r] && i < j->fast_end[r]) { /* its region checked the base: base0 + base + imm is the host byte */
            emit_access(j, in, x_sib(WIN0, j->home[in->rs1], 1, (int32_t)in->imm), RAX);
            return 1;
        }
    }
    int k = predicted_window(j, i);
    emit_address(j, RDX, in);
    uint32_t miss = emit_window_check(j, k, RDX, store);
    emit_access(j, in, window_bytes(j, k, RDX), RAX);
    return add_stub(j, store ? STUB_STORE : STUB_LOAD, i, miss, j->e.pos);
}

/* Extension of a loaded value: x86 opcode (after 0F, or 0x63 for movsxd) and flags, by handler. */
static void emit_extend(struct jit *j, int handler, int reg, struct x86_op src) {
    struct x86_buf *e = &j->e;
    switch (handler) {
    case PVM_H_LB: x_0f(e, X_W, 0xbe, reg, src); break;
    case PVM_H_LBU: x_0f(e, 0, 0xb6, reg, src); break;
    case PVM_H_LH: x_0f(e, X_W, 0xbf, reg, src); break;
    case PVM_H_LHU: x_0f(e, 0, 0xb7, reg, src); break;
    case PVM_H_LW: x_movsxd(e, reg, src); break;
    case PVM_H_LWU: x_mov_r_rm(e, 0, reg, src); break;
    default: x_mov_r_rm(e, X_W, reg, src); break;
    }
}

static unsigned access_size(int handler) {
    switch (handler) {
    case PVM_H_LB: case PVM_H_LBU: case PVM_H_SB: return 1;
    case PVM_H_LH: case PVM_H_LHU: case PVM_H_SH: return 2;
    case PVM_H_LW: case PVM_H_LWU: case PVM_H_SW: return 4;
    default: return 8;
    }
}
static int is_store(int handler) { return handler >= PVM_H_SB && handler <= PVM_H_SD; }
static int is_access(int handler) { return handler >= PVM_H_LB && handler <= PVM_H_SD; }

static void emit_access(struct jit *j, const struct pvm_insn *in, struct x86_op m, int scratch) {
    if (is_store(in->handler)) {
        unsigned size = access_size(in->handler);
        int v = in->rs2 && in_reg(j, in->rs2) ? j->home[in->rs2] : scratch;
        if (v == scratch) get(j, scratch, in->rs2);
        x_mov_rm_r(&j->e, size == 1 ? X_BYTE : size == 2 ? X_16 : size == 8 ? X_W : 0, m, v);
    } else {
        int w = in->rd != PVM_SINK_SLOT && in_reg(j, in->rd) ? j->home[in->rd] : RAX;
        emit_extend(j, in->handler, w, m);
        put(j, in->rd, w);
    }
}

/* Subtracts `cost` from gas; returns the position of the jb displacement. */
static uint32_t emit_charge(struct jit *j, uint64_t cost) {
    if (fits32((int64_t)cost)) x_alu_imm(&j->e, X_W, ALU_SUB, x_reg(GAS), (int32_t)cost);
    else {
        x_mov_r_imm(&j->e, RAX, cost);
        x_alu_r_rm(&j->e, X_W, ALU_SUB, GAS, x_reg(RAX));
    }
    return x_jcc(&j->e, CC_B);
}
/*
 * A static jump to instruction t (or a panic at i when there is none). Into the middle
 * of a block behind (a loop whose head is not a block start), the suffix charge is
 * inline, so the loop takes one jump; forward ones go through a stub.
 */
static int emit_jump_to(struct jit *j, uint32_t i, uint32_t t, int cc, int conditional) {
    struct x86_buf *e = &j->e;
    if (t != PVM_NO_TARGET && t <= i && !block_start(j->prog, t)) {
        uint32_t skip = conditional ? x_jcc(e, cc ^ 1) : 0; /* the low bit of a condition code negates it */
        if (!add_stub(j, STUB_OUT_OF_GAS, t, emit_charge(j, j->prog->insns[t].gas), 0)) return 0;
        x_jmp_to(e, j->body[t]);
        if (conditional) x_patch(e, skip, e->pos);
        return 1;
    }
    uint32_t at = conditional ? x_jcc(e, cc) : x_jmp(e);
    if (t == PVM_NO_TARGET) return add_stub(j, STUB_PANIC, i, at, 0);
    if (block_start(j->prog, t)) return add_stub(j, STUB_ENTER, t, at, 1); /* resume = 1: straight to its gas check */
    return add_stub(j, STUB_ENTER, t, at, 0);
}

/*
 * Whether jalr i follows, in its block, an auipc (or li) of its base register: then on
 * that path its target is a constant, whose index_of_half entry goes to *entry (0 outside the code).
 */
static int constant_jalr(const struct pvm_program *p, uint32_t i, uint32_t *entry) {
    const struct pvm_insn *in = &p->insns[i], *prev = &p->insns[i - (i > 0)];
    if (i == 0 || block_start(p, i) || prev->handler != PVM_H_LI || prev->rd != in->rs1) return 0;
    uint32_t t = ((uint32_t)(prev->imm + in->imm) & ~1u) - PVM_CODE_BASE;
    *entry = t < p->code_len ? p->index_of_half[t / 2] : 0;
    return 1;
}

static int emit_insn(struct jit *j, uint32_t i) {
    struct x86_buf *e = &j->e;
    const struct pvm_program *p = j->prog;
    const struct pvm_insn *in = &p->insns[i];
    uint32_t pc = pc_of(j, i), next_pc = i < p->insn_count ? PVM_CODE_BASE + p->insns[i + 1].offset : 0;
    switch ((enum pvm_handler)in->handler) {
    case PVM_H_NOP: break;
    case PVM_H_LI: put_imm(j, in->rd, (uint64_t)in->imm); break;
    case PVM_H_ADD:
        if (in->rd == PVM_SINK_SLOT) break;
        if (in->rs1 == 0 || in->rs2 == 0) { /* mv */
            uint32_t src = in->rs1 ? in->rs1 : in->rs2;
            int w = work_reg(j, in->rd, PVM_REG_SLOTS);
            get(j, w, src);
            put(j, in->rd, w);
        } else if (in_reg(j, in->rd) && in_reg(j, in->rs1) && in_reg(j, in->rs2)) {
            x_lea(e, X_W, j->home[in->rd], x_sib(j->home[in->rs1], j->home[in->rs2], 1, 0));
        } else if (in->rd == in->rs2) {
            int w = work_reg(j, in->rd, PVM_REG_SLOTS);
            get(j, w, in->rs2);
            x_alu_r_rm(e, X_W, ALU_ADD, w, home(j, in->rs1));
            put(j, in->rd, w);
        } else emit_alu(j, ALU_ADD, X_W, in);
        break;
    case PVM_H_ADDI:
        if (in->rd == PVM_SINK_SLOT) break;
        if (in->rs1 == 0) put_imm(j, in->rd, (uint64_t)in->imm);
        else if (in_reg(j, in->rd) && in_reg(j, in->rs1) && in->rd != in->rs1) x_lea(e, X_W, j->home[in->rd], x_mem(j->home[in->rs1], (int32_t)in->imm));
        else emit_alu_imm(j, ALU_ADD, in);
        break;
    case PVM_H_SUB: emit_alu(j, ALU_SUB, X_W, in); break;
    case PVM_H_AND: emit_alu(j, ALU_AND, X_W, in); break;
    case PVM_H_OR: emit_alu(j, ALU_OR, X_W, in); break;
    case PVM_H_XOR: emit_alu(j, ALU_XOR, X_W, in); break;
    case PVM_H_ANDI: emit_alu_imm(j, ALU_AND, in); break;
    case PVM_H_ORI: emit_alu_imm(j, ALU_OR, in); break;
    case PVM_H_XORI: emit_alu_imm(j, ALU_XOR, in); break;
    case PVM_H_ADDW: emit_alu(j, ALU_ADD, 0, in); break;
    case PVM_H_SUBW: emit_alu(j, ALU_SUB, 0, in); break;
    case PVM_H_ADDIW: {
        int w = work_reg(j, in->rd, PVM_REG_SLOTS);
        if (in->imm == 0 && in->rs1) { /* sext.w */
            x_movsxd(e, w, home(j, in->rs1));
        } else {
            get(j, w, in->rs1);
            x_alu_imm(e, 0, ALU_ADD, x_reg(w), (int32_t)in->imm);
            x_movsxd(e, w, x_reg(w));
        }
        put(j, in->rd, w);
        break;
    }
    case PVM_H_SLL: emit_shift(j, SH_SHL, X_W, in); break;
    case PVM_H_SRL: emit_shift(j, SH_SHR, X_W, in); break;
    case PVM_H_SRA: emit_shift(j, SH_SAR, X_W, in); break;
    case PVM_H_SLLW: emit_shift(j, SH_SHL, 0, in); break;
    case PVM_H_SRLW: emit_shift(j, SH_SHR, 0, in); break;
    case PVM_H_SRAW: emit_shift(j, SH_SAR, 0, in); break;
    case PVM_H_ROL: emit_shift(j, SH_ROL, X_W, in); break;
    case PVM_H_ROR: emit_shift(j, SH_ROR, X_W, in); break;
    case PVM_H_ROLW: emit_shift(j, SH_ROL, 0, in); break;
    case PVM_H_RORW: emit_shift(j, SH_ROR, 0, in); break;
    case PVM_H_SLLI: emit_shift_imm(j, SH_SHL, X_W, in); break;
    case PVM_H_SRLI: emit_shift_imm(j, SH_SHR, X_W, in); break;
    case PVM_H_SRAI: emit_shift_imm(j, SH_SAR, X_W, in); break;
    case PVM_H_RORI: emit_shift_imm(j, SH_ROR, X_W, in); break;
    case PVM_H_SLLIW: emit_shift_imm(j, SH_SHL, 0, in); break;
    case PVM_H_SRLIW: emit_shift_imm(j, SH_SHR, 0, in); break;
    case PVM_H_SRAIW: emit_shift_imm(j, SH_SAR, 0, in); break;
    case PVM_H_RORIW: emit_shift_imm(j, SH_ROR, 0, in); break;
    case PVM_H_SLT: emit_set(j, CC_L, in, 0); break;
    case PVM_H_SLTU: emit_set(j, CC_B, in, 0); break;
    case PVM_H_SLTI: emit_set(j, CC_L, in, 1); break;
    case PVM_H_SLTIU: emit_set(j, CC_B, in, 1); break;
    case PVM_H_MIN: emit_select(j, CC_G, in); break;
    case PVM_H_MINU: emit_select(j, CC_A, in); break;
    case PVM_H_MAX: emit_select(j, CC_L, in); break;
    case PVM_H_MAXU: emit_select(j, CC_B, in); break;
    case PVM_H_CZEROEQZ: emit_czero(j, CC_E, in); break;
    case PVM_H_CZERONEZ: emit_czero(j, CC_NE, in); break;
    case PVM_H_MUL: case PVM_H_MULW: {
        int flags = in->handler == PVM_H_MUL ? X_W : 0;
        int w = work_reg(j, in->rd, in->rs2);
        get(j, w, in->rs1);
        x_0f(e, flags, 0xaf, w, home(j, in->rs2));
        if (!flags) x_movsxd(e, w, x_reg(w));
        put(j, in->rd, w);
        break;
    }
    case PVM_H_MULHU: emit_mul_high(j, 0, in); break;
    case PVM_H_MULH: emit_mul_high(j, 1, in); break;
    case PVM_H_MULHSU: /* mulhu(a, b) - (a < 0 ? b : 0) */
        get(j, RAX, in->rs1);
        get(j, RCX, in->rs2);
        x_f7(e, X_W, 4, x_reg(RCX));
        get(j, RAX, in->rs1);
        x_shift_imm(e, X_W, SH_SAR, x_reg(RAX), 63);
        x_alu_r_rm(e, X_W, ALU_AND, RAX, x_reg(RCX));
        x_alu_r_rm(e, X_W, ALU_SUB, RDX, x_reg(RAX));
        put(j, in->rd, RDX);
        break;
    case PVM_H_DIV: emit_div(j, X_W, 1, 0, in); break;
    case PVM_H_REM: emit_div(j, X_W, 1, 1, in); break;
    case PVM_H_DIVU: emit_div(j, X_W, 0, 0, in); break;
    case PVM_H_REMU: emit_div(j, X_W, 0, 1, in); break;
    case PVM_H_DIVW: emit_div(j, 0, 1, 0, in); break;
    case PVM_H_REMW: emit_div(j, 0, 1, 1, in); break;
    case PVM_H_DIVUW: emit_div(j, 0, 0, 0, in); break;
    case PVM_H_REMUW: emit_div(j, 0, 0, 1, in); break;
    case PVM_H_ADDUW: /* rs2 + zext32(rs1) */
        get(j, RAX, in->rs1);
        x_mov_r_rm(e, 0, RAX, x_reg(RAX));
        x_alu_r_rm(e, X_W, ALU_ADD, RAX, home(j, in->rs2));
        put(j, in->rd, RAX);
        break;
    case PVM_H_SH1ADD: case PVM_H_SH2ADD: case PVM_H_SH3ADD:
    case PVM_H_SH1ADDUW: case PVM_H_SH2ADDUW: case PVM_H_SH3ADDUW: {
        int uw = in->handler >= PVM_H_SH1ADDUW;
        int n = (in->handler - (uw ? PVM_H_SH1ADDUW : PVM_H_SH1ADD)) + 1;
        if (!uw && in->rs1 && in->rs2 && in_reg(j, in->rd) && in_reg(j, in->rs1) && in_reg(j, in->rs2)) {
            x_lea(e, X_W, j->home[in->rd], x_sib(j->home[in->rs2], j->home[in->rs1], 1 << n, 0));
            break;
        }
        get(j, RAX, in->rs1);
        if (uw) x_mov_r_rm(e, 0, RAX, x_reg(RAX));
        x_shift_imm(e, X_W, SH_SHL, x_reg(RAX), n);
        x_alu_r_rm(e, X_W, ALU_ADD, RAX, home(j, in->rs2));
        put(j, in->rd, RAX);
        break;
    }
    case PVM_H_SLLIUW:
        get(j, RAX, in->rs1);
        x_mov_r_rm(e, 0, RAX, x_reg(RAX));
        x_shift_imm(e, X_W, SH_SHL, x_reg(RAX), (int)(in->imm & 63));
        put(j, in->rd, RAX);
        break;
    case PVM_H_ANDN: case PVM_H_ORN:
        get(j, RAX, in->rs2);
        x_f7(e, X_W, 2, x_reg(RAX));
        x_alu_r_rm(e, X_W, in->handler == PVM_H_ANDN ? ALU_AND : ALU_OR, RAX, home(j, in->rs1));
        put(j, in->rd, RAX);
        break;
    case PVM_H_XNOR:
        get(j, RAX, in->rs1);
        x_alu_r_rm(e, X_W, ALU_XOR, RAX, home(j, in->rs2));
        x_f7(e, X_W, 2, x_reg(RAX));
        put(j, in->rd, RAX);
        break;
    case PVM_H_CLZ: case PVM_H_CTZ: case PVM_H_CLZW: case PVM_H_CTZW: {
        int w32 = in->handler == PVM_H_CLZW || in->handler == PVM_H_CTZW;
        get(j, RAX, in->rs1);
        emit_count_zeros(j, in->handler == PVM_H_CLZ || in->handler == PVM_H_CLZW, w32 ? 32 : 64);
        put(j, in->rd, RAX);
        break;
    }
    case PVM_H_CPOP: case PVM_H_CPOPW:
        get(j, RAX, in->rs1);
        if (in->handler == PVM_H_CPOPW) x_mov_r_rm(e, 0, RAX, x_reg(RAX));
        emit_popcount(j);
        put(j, in->rd, RAX);
        break;
    case PVM_H_SEXTB: case PVM_H_SEXTH: case PVM_H_ZEXTH:
        get(j, RAX, in->rs1);
        x_0f(e, in->handler == PVM_H_ZEXTH ? 0 : X_W, in->handler == PVM_H_SEXTB ? 0xbe : in->handler == PVM_H_SEXTH ? 0xbf : 0xb7, RAX, x_reg(RAX));
        put(j, in->rd, RAX);
        break;
    case PVM_H_ORCB: { /* per byte: ((b & 0x7f) + 0x7f) | b has bit 7 set iff b != 0; then spread it over the byte */
        get(j, RAX, in->rs1);
        x_mov_r_imm(e, RCX, 0x7f7f7f7f7f7f7f7full);
        x_mov_r_rm(e, X_W, RDX, x_reg(RAX));
        x_alu_r_rm(e, X_W, ALU_AND, RDX, x_reg(RCX));
        x_alu_r_rm(e, X_W, ALU_ADD, RDX, x_reg(RCX));
        x_alu_r_rm(e, X_W, ALU_OR, RDX, x_reg(RAX));
        x_mov_r_imm(e, RCX, 0x8080808080808080ull);
        x_alu_r_rm(e, X_W, ALU_AND, RDX, x_reg(RCX));
        x_shift_imm(e, X_W, SH_SHR, x_reg(RDX), 7);
        x_enc(e, X_W, 0x69, 1, RAX, x_reg(RDX), 4); /* imul rax, rdx, 0xff */
        x_d(e, 0xff);
        put(j, in->rd, RAX);
        break;
    }
    case PVM_H_REV8:
        get(j, RAX, in->rs1);
        x_b(e, 0x48);
        x_b(e, 0x0f);
        x_b(e, 0xc8); /* bswap rax */
        put(j, in->rd, RAX);
        break;
    case PVM_H_BCLR: case PVM_H_BSET: case PVM_H_BINV: {
        static const uint8_t op[] = {0xb3, 0xab, 0xbb}; /* btr, bts, btc rm, reg: the bit offset is masked to 63 for a register */
        get(j, RCX, in->rs2);
        get(j, RAX, in->rs1);
        x_0f(e, X_W, op[in->handler - PVM_H_BCLR], RCX, x_reg(RAX));
        put(j, in->rd, RAX);
        break;
    }
    case PVM_H_BCLRI: case PVM_H_BSETI: case PVM_H_BINVI: {
        static const uint8_t n[] = {6, 5, 7};
        get(j, RAX, in->rs1);
        x_bt_imm(e, n[in->handler - PVM_H_BCLRI], x_reg(RAX), (int)(in->imm & 63));
        put(j, in->rd, RAX);
        break;
    }
    case PVM_H_BEXT:
        get(j, RCX, in->rs2);
        get(j, RAX, in->rs1);
        x_shift_cl(e, X_W, SH_SHR, x_reg(RAX));
        x_alu_imm(e, 0, ALU_AND, x_reg(RAX), 1);
        put(j, in->rd, RAX);
        break;
    case PVM_H_BEXTI:
        get(j, RAX, in->rs1);
        x_shift_imm(e, X_W, SH_SHR, x_reg(RAX), (int)(in->imm & 63));
        x_alu_imm(e, 0, ALU_AND, x_reg(RAX), 1);
        put(j, in->rd, RAX);
        break;

    case PVM_H_LB: case PVM_H_LH: case PVM_H_LW: case PVM_H_LD: case PVM_H_LBU: case PVM_H_LHU: case PVM_H_LWU:
        return emit_memory(j, i, 0);
    case PVM_H_SB: case PVM_H_SH: case PVM_H_SW: case PVM_H_SD:
        return emit_memory(j, i, 1);

    case PVM_H_BEQ: case PVM_H_BNE: case PVM_H_BLT: case PVM_H_BGE: case PVM_H_BLTU: case PVM_H_BGEU: {
        static const uint8_t cc[] = {CC_E, CC_NE, CC_L, CC_GE, CC_B, CC_AE};
        if (in->rs2 == 0) {
            struct x86_op a = home(j, in->rs1);
            if (in->rs1 && in_reg(j, in->rs1)) x_test_rm_r(e, X_W, a, a.reg);
            else x_alu_imm(e, X_W, ALU_CMP, a, 0);
        } else if (in->rs1 && in_reg(j, in->rs1)) {
            x_alu_r_rm(e, X_W, ALU_CMP, j->home[in->rs1], home(j, in->rs2));
        } else {
            get(j, RAX, in->rs1);
            x_alu_r_rm(e, X_W, ALU_CMP, RAX, home(j, in->rs2));
        }
        if (!emit_jump_to(j, i, in->target, cc[in->handler - PVM_H_BEQ], 1)) return 0;
        break; /* not taken: falls into the next instruction, a block start, which charges itself */
    }
    case PVM_H_JAL:
        if (in->target != PVM_NO_TARGET) put_imm(j, in->rd, next_pc);
        if (!emit_jump_to(j, i, in->target, 0, 0)) return 0;
        break;
    case PVM_H_JALR: {
        uint32_t entry;
        if (constant_jalr(p, i, &entry)) {
            /*
             * `auipc ra, hi; jalr ra, lo(ra)` (a call): on the straight-line path from the
             * auipc the target is a constant. Entries from elsewhere take the general path below.
             */
            if (entry & PVM_BLOCK_START) {
                put_imm(j, in->rd, next_pc);
                if (!add_stub(j, STUB_ENTER, (entry & PVM_INDEX_MASK) - 1, x_jmp(e), 1)) return 0;
            } else {
                emit_leave(j, PVM_EXIT_PANIC, pc, 0);
            }
            j->body[i] = e->pos;
        }
        /*
         * target = (rs1 + imm) & ~1, a block start of the code (table entry non-zero), else
         * PANIC with rd unwritten; its offset is (rs1 + imm - CODE_BASE) & ~1, CODE_BASE being even.
         */
        if (in->rs1 && in_reg(j, in->rs1)) x_lea(e, 0, RAX, x_mem(j->home[in->rs1], (int32_t)(in->imm - PVM_CODE_BASE)));
        else {
            get(j, RAX, in->rs1);
            x_alu_imm(e, 0, ALU_ADD, x_reg(RAX), (int32_t)(in->imm - PVM_CODE_BASE));
        }
        x_alu_imm(e, 0, ALU_AND, x_reg(RAX), -2);
        x_alu_imm(e, 0, ALU_CMP, x_reg(RAX), (int32_t)p->code_len);
        uint32_t outside = x_jcc(e, CC_AE);
        x_lea(e, X_W, RDX, x_mem(X_RIP, (int32_t)j->table_pos));
        x_mov_r_rm(e, 0, RAX, x_sib(RDX, RAX, 2, 0));
        x_test_rm_r(e, 0, x_reg(RAX), RAX);
        uint32_t not_start = x_jcc(e, CC_E);
        if (!add_stub(j, STUB_PANIC, i, outside, 0)) return 0;
        j->stubs[j->stub_count - 1].patch[j->stubs[j->stub_count - 1].patches++] = not_start;
        put_imm(j, in->rd, next_pc);
        x_alu_r_rm(e, X_W, ALU_ADD, RAX, x_reg(RDX));
        x_enc(e, 0, 0xff, 1, 4, x_reg(RAX), 0); /* jmp rax */
        break;
    }
    case PVM_H_FALLTHROUGH: break; /* the next instruction is a block start */
    case PVM_H_ECALLI: emit_leave(j, PVM_EXIT_ECALLI, pc, in->imm); break;
    case PVM_H_ECALLJAR: emit_leave(j, PVM_EXIT_ECALL, next_pc, 0); break;
    case PVM_H_TRAP: emit_leave(j, PVM_EXIT_TRAP, pc, 0); break;
    case PVM_H_ILLEGAL: case PVM_H_END: emit_leave(j, PVM_EXIT_PANIC, pc, 0); break;
    case PVM_HANDLER_COUNT: return 0;
    }
    return 1;
}

static void emit_refund(struct jit *j, uint64_t cost) {
    if (fits32((int64_t)cost)) x_alu_imm(&j->e, X_W, ALU_ADD, x_reg(GAS), (int32_t)cost);
    else {
        x_mov_r_imm(&j->e, RAX, cost);
        x_alu_r_rm(&j->e, X_W, ALU_ADD, GAS, x_reg(RAX));
    }
}

/* The stack-pointing registers after instruction i, given those before it; marks i if it is an access through one. */
static uint32_t next_stack_bases(struct jit *j, uint32_t i, uint32_t stack) {
    const struct pvm_insn *in = &j->prog->insns[i];
    uint32_t from = 0; /* the sources whose stackness rd inherits */
    switch (in->handler) {
    case PVM_H_ADDI: case PVM_H_SUB: from = 1u << in->rs1; break;
    case PVM_H_ADD: from = 1u << in->rs1 | 1u << in->rs2; break;
    case PVM_H_SH1ADD: case PVM_H_SH2ADD: case PVM_H_SH3ADD: from = 1u << in->rs2; break;
    case PVM_H_ILLEGAL: return stack; /* its fields may name any register */
    default:
        j->flags[i] = (uint8_t)((j->flags[i] & ~STACK_BASED) | (is_access(in->handler) && (stack >> in->rs1 & 1) ? STACK_BASED : 0));
        break;
    }
    if (in->rd == 2 || in->rd == PVM_SINK_SLOT) return stack;
    return (stack & ~(1u << in->rd)) | ((stack & from) ? 1u << in->rd : 0);
}

/*
 * Which accesses likely address the stack: those based on sp or on a register last
 * set, in code order, from sp by adds (`addi a5, sp, 24; add a5, a5, a4`), where a
 * function's code starts with what its callers' arguments were (`addi a0, sp, 8;
 * call f`; three passes follow such pointers three calls deep). Only a guess for which
 * window to try first; `entry` is scratch of insn_count entries.
 */
static void guess_stack_bases(struct jit *j, uint32_t *entry) {
    const struct pvm_program *p = j->prog;
    for (uint32_t i = 0; i < p->insn_count; i++) entry[i] = 0;
    for (int pass = 0; pass < 3; pass++) {
        uint32_t stack = 1u << 2;
        for (uint32_t i = 0; i < p->insn_count; i++) {
            const struct pvm_insn *in = &p->insns[i];
            uint32_t callee;
            if (entry[i]) stack = entry[i];
            if (in->handler == PVM_H_JAL && in->rd == 1 && in->target != PVM_NO_TARGET) entry[in->target] |= stack | 1u << 2;
            if (in->handler == PVM_H_JALR && in->rd == 1 && constant_jalr(p, i, &callee) && (callee & PVM_BLOCK_START))
                entry[(callee & PVM_INDEX_MASK) - 1] |= stack | 1u << 2;
            stack = next_stack_bases(j, i, stack);
        }
    }
}

/*
 * Stack regions. From an sp-based access on, while sp is not written and no jump can
 * enter, every sp-based access's bytes are checked at once: if sp + the lowest to sp +
 * the highest immediate (plus 8 bytes) is inside window 0, each access there is one
 * x86 load or store at R15 + sp + imm. If not, the region runs a checked copy of
 * itself (emitted with the stubs), which rejoins at its end; an entry inside a region
 * (a resume, say) enters the copy. A region stops before a block's terminator. A
 * pointer region does the same for another base register guessed to point into the
 * stack; it lies inside an sp region or between two, so a copy never rejoins inside
 * a region it skipped the check of.
 */
static int ends_block(int handler) { return handler >= PVM_H_BEQ || handler <= PVM_H_END; }

static int based_on(const struct pvm_insn *in, uint32_t base) { return in->rs1 == base && is_access(in->handler); }

/*
 * The end (exclusive) of the region based on `base` that would start at instruction
 * i, or 0 if none does (one access is cheaper checked alone); a pointer region ends
 * by `limit` and before an sp region starts.
 */
static uint32_t find_region(const struct jit *j, uint32_t i, uint32_t base, uint32_t limit) {
    const struct pvm_program *p = j->prog;
    if (!base || !in_reg(j, base) || !based_on(&p->insns[i], base)) return 0;
    uint32_t k = i, accesses = 0;
    while (k < limit && k < p->insn_count && !ends_block(p->insns[k].handler) &&
           (k == i || !(j->flags[k] & IS_TARGET || block_start(p, k) || (base != 2 && j->region_end[0][k])))) {
        accesses += based_on(&p->insns[k], base);
        if (p->insns[k++].rd == base) break; /* it may still use the old value */
    }
    return accesses > 1 ? k : 0;
}

/* At the start of region [i, end) based on `base`: the check, whose failure enters the checked copy. */
static int emit_region_check(struct jit *j, uint32_t i, uint32_t end, uint32_t base) {
    struct x86_buf *e = &j->e;
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    int store = 0;
    for (uint32_t k = i; k < end; k++) {
        const struct pvm_insn *in = &j->prog->insns[k];
        if (!based_on(in, base)) continue;
        lo = (int32_t)in->imm < lo ? (int32_t)in->imm : lo;
        hi = (int32_t)in->imm > hi ? (int32_t)in->imm : hi;
        store |= is_store(in->handler);
    }
    /* inside iff 0 <= base + lo - start < lim - (hi - lo), in 64 bits: so base + imm is also the 32-bit address */
    x_mov_r_rm(e, 0, RCX, x_mem(RSP, F_WIN_LIM(0, store)));
    uint32_t small = 0;
    if (hi > lo) {
        x_alu_imm(e, 0, ALU_SUB, x_reg(RCX), hi - lo);
        small = x_jcc(e, CC_B);
    }
    x_lea(e, X_W, RDX, x_mem(j->home[base], lo));
    x_alu_r_rm(e, X_W, ALU_SUB, RDX, x_mem(RSP, F_WIN0_LO64));
    x_alu_r_rm(e, X_W, ALU_CMP, RDX, x_reg(RCX));
    uint32_t outside = x_jcc(e, CC_AE);
    if (!add_stub(j, STUB_REGION, i, outside, end)) return 0;
    if (small) j->stubs[j->stub_count - 1].patch[j->stubs[j->stub_count - 1].patches++] = small;
    j->fast_end[base != 2] = end;
    j->fast_base[base != 2] = (uint8_t)base;
    return 1;
}

static int emit_stub(struct jit *j, const struct stub *s) {
    struct x86_buf *e = &j->e;
    const struct pvm_insn *in = &j->prog->insns[s->insn];
    if (s->kind == STUB_ENTER && s->resume == 1) { /* a jump to a block start: straight to its gas check */
        for (int k = 0; k < s->patches; k++) x_patch(e, s->patch[k], j->prologue[s->insn]);
        return 1;
    }
    for (int k = 0; k < s->patches; k++) x_patch(e, s->patch[k], e->pos);
    switch (s->kind) {
    case STUB_REGION: /* the region's checked copy; inside an sp region an entry takes the sp region's */
        for (uint32_t k = s->insn; k < s->resume; k++) {
            uint32_t start = e->pos;
            if (k > s->insn && (in->rs1 == 2 || !(j->flags[k] & IN_SP_REGION))) j->body[k] = start;
            if (!emit_insn(j, k) || e->pos - start > HOT_MAX) return 0;
        }
        x_jmp_to(e, j->prologue[s->resume]);
        break;
    case STUB_ENTER: { /* into the middle of a block: charge the rest of it */
        uint32_t short_ = emit_charge(j, in->gas);
        x_jmp_to(e, j->body[s->insn]);
        x_patch(e, short_, e->pos);
    }
        /* fall through */
    case STUB_OUT_OF_GAS:
        emit_refund(j, in->gas);
        emit_leave(j, PVM_EXIT_OUT_OF_GAS, pc_of(j, s->insn), 0);
        break;
    case STUB_PANIC: emit_leave(j, PVM_EXIT_PANIC, pc_of(j, s->insn), 0); break;
    case STUB_LOAD: case STUB_STORE: {
        /* the other window, then the page table, then the byte-wise path */
        int store = s->kind == STUB_STORE, other = !predicted_window(j, s->insn);
        emit_address(j, RAX, in);
        uint32_t miss = emit_window_check(j, other, RAX, store);
        emit_access(j, in, window_bytes(j, other, RAX), other == 0 ? RDX : RAX);
        x_jmp_to(e, s->resume);
        x_patch(e, miss, e->pos);
        x_mov_r_imm(e, RCX, access_size(in->handler) - 1);
        x_call_to(e, j->walk_thunk[store]);
        x_test_rm_r(e, X_W, x_reg(RDX), RDX);
        uint32_t slow = x_jcc(e, CC_E);
        emit_access(j, in, x_mem(RDX, 0), RAX);
        x_jmp_to(e, s->resume);
        x_patch(e, slow, e->pos);
        if (store) get(j, RDX, in->rs2);
        x_mov_rm_imm(e, 0, x_mem(RSP, F_PC), (int32_t)pc_of(j, s->insn));
        x_mov_r_imm(e, RCX, access_size(in->handler));
        x_call_to(e, s->kind == STUB_LOAD ? j->load_thunk : j->store_thunk);
        if (s->kind == STUB_LOAD) {
            int w = in->rd != PVM_SINK_SLOT && in_reg(j, in->rd) ? j->home[in->rd] : RAX;
            emit_extend(j, in->handler, w, x_reg(RAX));
            put(j, in->rd, w);
        }
        x_jmp_to(e, s->resume);
        break;
    }
    }
    return 1;
}

/*
 * The three φ registers used least stay in frame slots; the rest get host registers.
 * A use counts 1 + 16 per loop (backward static branch) around it, so the registers of
 * inner loops win; the loop depth of every instruction comes from a prefix sum over
 * the loops' ranges (`depth` is scratch of n + 1 entries), linear in the code size.
 */
static void assign_homes(struct jit *j, int32_t *depth) {
    const struct pvm_program *p = j->prog;
    uint64_t uses[PVM_REG_SLOTS] = {0};
    for (uint32_t i = 0; i <= p->insn_count; i++) depth[i] = 0;
    for (uint32_t i = 0; i < p->insn_count; i++) {
        uint32_t t = p->insns[i].target;
        int is_jump = p->insns[i].handler >= PVM_H_BEQ && p->insns[i].handler <= PVM_H_JAL;
        if (is_jump && t != PVM_NO_TARGET && t <= i) {
            depth[t]++;
            depth[i + 1]--;
        }
    }
    int64_t d = 0;
    for (uint32_t i = 0; i < p->insn_count; i++) {
        const struct pvm_insn *in = &p->insns[i];
        d += depth[i];
        if (in->handler == PVM_H_ILLEGAL) continue; /* its fields may name any register 0..31 */
        uint64_t weight = 1 + 16 * (uint64_t)(d < 4 ? d : 4);
        uses[in->rd] += weight;
        uses[in->rs1] += weight;
        uses[in->rs2] += weight;
    }
    for (uint32_t x = 0; x < PVM_REG_SLOTS; x++) j->home[x] = -1;
    for (uint32_t k = 0; k < HOME_REGS; k++) {
        int best = -1;
        for (uint32_t i = 0; i < PVM_NUM_REGS; i++) {
            uint32_t x = pvm_phi_slot[i];
            if (j->home[x] < 0 && (best < 0 || uses[x] > uses[best])) best = (int)x;
        }
        j->home[best] = (int8_t)home_regs[k];
    }
}

void pvm_jit_free(struct pvm_program *prog) {
    struct pvm_jit_code *c = prog->jit;
    if (!c) return;
    const struct pvm_allocator *a = &prog->alloc;
    if (c->write) c->arena.free(c->arena.ctx, c->write, c->size);
    if (c->body) a->free(a->ctx, c->body, c->body_size);
    a->free(a->ctx, c, sizeof *c);
    prog->jit = 0;
}

int pvm_compile(struct pvm_program *prog, const struct pvm_code_arena *arena) {
    if (prog->jit) return PVM_OK;
    const struct pvm_allocator *a = &prog->alloc;
    uint32_t n = prog->insn_count + 1; /* with END */
    uint64_t table_size = (uint64_t)prog->half_count * 4;
    /* without the regions' copies, which at most double what an access costs */
    uint64_t bound = table_size + FIXED_MAX + (uint64_t)n * (HOT_MAX + COLD_MAX);
    for (uint32_t i = 0; i < prog->insn_count; i++)
        if (is_access(prog->insns[i].handler)) bound += COLD_ACCESS_MAX - COLD_MAX;
    if (bound > arena->max_size || bound > UINT32_MAX) return PVM_ERR_TRANSLATION_TOO_LARGE;

    struct jit j = {.prog = prog, .stub_cap = 5 * n, .fast_base = {2, 0}};
    struct pvm_jit_code *c = a->alloc(a->ctx, sizeof *c, _Alignof(struct pvm_jit_code));
    size_t work_size = (size_t)j.stub_cap * sizeof *j.stubs + (size_t)n * 13; /* stubs, prologue[n], depth / region_end[0][n], region_end[1][n], flags[n] */
    void *work = a->alloc(a->ctx, work_size, 8);
    uint32_t *body = a->alloc(a->ctx, (size_t)n * 4, 4);
    if (!c || !work || !body) {
        if (c) a->free(a->ctx, c, sizeof *c);
        if (work) a->free(a->ctx, work, work_size);
        if (body) a->free(a->ctx, body, (size_t)n * 4);
        return PVM_ERR_NO_MEMORY;
    }
    *c = (struct pvm_jit_code){.arena = *arena, .body = body, .body_size = (size_t)n * 4};
    prog->jit = c; /* from here pvm_jit_free undoes it all */
    j.stubs = work;
    j.prologue = (uint32_t *)((uint8_t *)work + (size_t)j.stub_cap * sizeof *j.stubs);
    j.region_end[0] = j.prologue + n;
    j.region_end[1] = j.region_end[0] + n;
    j.flags = (uint8_t *)(j.region_end[1] + n);
    j.body = body;
    assign_homes(&j, (int32_t *)j.region_end[0]);

    /* The stack regions, and what their checked copies add to the bound. */
    for (uint32_t i = 0; i < n; i++) j.flags[i] = 0;
    for (uint32_t i = 0; i < prog->insn_count; i++) {
        const struct pvm_insn *in = &prog->insns[i];
        if (in->handler >= PVM_H_BEQ && in->handler <= PVM_H_JAL && in->target != PVM_NO_TARGET) j.flags[in->target] |= IS_TARGET;
    }
    guess_stack_bases(&j, j.region_end[0]);
    for (uint32_t i = 0, end = 0; i < n; i++) {
        j.region_end[0][i] = i >= end ? find_region(&j, i, 2, n) : 0;
        if (j.region_end[0][i]) {
            end = j.region_end[0][i];
            bound += (uint64_t)(end - i) * (HOT_MAX + COLD_ACCESS_MAX);
        } else if (i < end) {
            j.flags[i] |= IN_SP_REGION;
        }
    }
    for (uint32_t i = 0, end = 0, sp_end = 0; i < n; i++) {
        if (j.region_end[0][i]) sp_end = j.region_end[0][i];
        const struct pvm_insn *in = &prog->insns[i];
        j.region_end[1][i] = i >= end && in->rs1 != 2 && (j.flags[i] & STACK_BASED) ? find_region(&j, i, in->rs1, i < sp_end ? sp_end : n) : 0;
        if (j.region_end[1][i]) {
            end = j.region_end[1][i];
            bound += (uint64_t)(end - i) * (HOT_MAX + COLD_ACCESS_MAX);
        }
    }
    if (bound > arena->max_size || bound > UINT32_MAX) {
        a->free(a->ctx, work, work_size);
        pvm_jit_free(prog);
        return PVM_ERR_TRANSLATION_TOO_LARGE;
    }
    void *exec = 0;
    uint8_t *code = arena->alloc(arena->ctx, (size_t)bound, &exec);
    if (!code) {
        a->free(a->ctx, work, work_size);
        pvm_jit_free(prog);
        return PVM_ERR_NO_MEMORY;
    }
    c->write = code;
    c->exec = exec;
    c->size = (size_t)bound;
    j.e = (struct x86_buf){.p = code, .cap = (uint32_t)bound};

    /* Layout: jalr table, then the trampoline, exit and thunks, then the code, then the stubs. */
    int ok = 1;
    j.table_pos = 0;
    j.e.pos = (uint32_t)table_size;
    c->entry_pos = j.e.pos;
    emit_entry(&j);
    j.exit_pos = j.e.pos;
    emit_exit(&j);
    j.load_thunk = j.e.pos;
    emit_thunk(&j, 0);
    j.store_thunk = j.e.pos;
    emit_thunk(&j, 1);
    for (int store = 0; store < 2; store++) {
        j.walk_thunk[store] = j.e.pos;
        emit_walk_thunk(&j, store);
    }
    for (uint32_t i = 0; ok && i < n; i++) {
        uint32_t start = j.e.pos;
        j.prologue[i] = start;
        if (block_start(prog, i) && prog->insns[i].gas) ok = add_stub(&j, STUB_OUT_OF_GAS, i, emit_charge(&j, prog->insns[i].gas), 0);
        j.body[i] = j.e.pos;
        if (ok && j.region_end[0][i]) ok = emit_region_check(&j, i, j.region_end[0][i], 2);
        if (ok && j.region_end[1][i]) ok = emit_region_check(&j, i, j.region_end[1][i], prog->insns[i].rs1);
        ok = ok && emit_insn(&j, i) && j.e.pos - start <= HOT_MAX;
    }
    j.fast_end[0] = j.fast_end[1] = 0; /* the stubs' copies check every access */
    for (uint32_t s = 0; ok && s < j.stub_count; s++) {
        uint32_t start = j.e.pos;
        ok = emit_stub(&j, &j.stubs[s]) &&
             (j.stubs[s].kind == STUB_REGION || j.e.pos - start <= (j.stubs[s].kind >= STUB_LOAD ? COLD_ACCESS_MAX : COLD_MAX));
    }
    /* jalr table: per halfword, the offset from the table of a block start's code, else 0 */
    for (uint32_t h = 0; ok && h < prog->half_count; h++) {
        uint32_t idx = prog->index_of_half[h];
        uint32_t v = (idx & PVM_BLOCK_START) ? j.prologue[(idx & PVM_INDEX_MASK) - 1] : 0;
        for (int k = 0; k < 4; k++) code[4 * h + k] = (uint8_t)(v >> (8 * k));
    }
    a->free(a->ctx, work, work_size);
    c->used = j.e.pos;
    if (!ok || arena->seal(arena->ctx, code, c->used)) {
        pvm_jit_free(prog);
        return PVM_ERR_TRANSLATION;
    }
    return PVM_OK;
}

size_t pvm_compiled_size(const struct pvm_program *prog) {
    return prog->jit ? prog->jit->used : 0;
}

/*
 * Window 0: the region holding the byte below sp (φ1), where the stack grows; window 1:
 * the largest other region at or above DATA_BASE, else the code. A missing window
 * has bounds 0, so every access misses it.
 */
static void choose_windows(const struct pvm_memory *mem, uint32_t sp, struct windows *w) {
    const struct pvm_region *pick[2] = {0, 0};
    for (uint32_t i = 0; i < mem->region_count; i++) {
        const struct pvm_region *r = &mem->regions[i];
        if (sp - 1 - r->start < r->size) pick[0] = r;
    }
    for (uint32_t i = 0; i < mem->region_count; i++) {
        const struct pvm_region *r = &mem->regions[i], *b = pick[1];
        if (r == pick[0]) continue;
        int data = r->start >= PVM_DATA_BASE;
        if (!b || data > (b->start >= PVM_DATA_BASE) || (data == (b->start >= PVM_DATA_BASE) && r->size > b->size)) pick[1] = r;
    }
    uint8_t *host[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        const struct pvm_region *r = pick[k];
        uint32_t lim = r ? r->size - 7 : 0; /* offsets below it have all 8 bytes inside */
        w->bound[k].lo = r ? r->start : 0;
        w->bound[k].lim[0] = lim;
        w->bound[k].lim[1] = r && r->writable ? lim : 0;
        host[k] = r ? r->host : 0;
    }
    w->lo0 = w->bound[0].lo;
    w->base0 = (uintptr_t)host[0] - w->bound[0].lo;
    w->host1 = host[1];
}

uint32_t pvm_jit_run(const struct pvm_program *prog, struct pvm_memory *mem, struct pvm_state *st) {
    const struct pvm_jit_code *c = prog->jit;
    uint32_t idx = pvm_entry_index(prog, st->pc);
    if (!c || idx == PVM_NO_TARGET) {
        st->exit = PVM_EXIT_PANIC;
        st->exit_arg = 0;
        return PVM_EXIT_PANIC;
    }
    uint64_t cost = prog->insns[idx].gas;
    if (st->gas < cost) {
        st->exit = PVM_EXIT_OUT_OF_GAS;
        st->exit_arg = 0;
        return PVM_EXIT_OUT_OF_GAS;
    }
    st->gas -= cost;
    struct windows w;
    choose_windows(mem, (uint32_t)st->regs[1], &w);
    typedef uint32_t entry_fn(struct pvm_state *, struct pvm_memory *, const void *, const struct windows *);
    entry_fn *entry = (entry_fn *)((uint8_t *)c->exec + c->entry_pos);
    return entry(st, mem, (const uint8_t *)c->exec + c->body[idx], &w);
}
