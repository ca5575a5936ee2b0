/*
 * The interpreter: direct-threaded dispatch (computed goto) over the pre-decoded
 * instructions. Gas is checked only where control enters an instruction from
 * elsewhere (a jump, a taken or not-taken branch, the run's start): the entered
 * instruction's suffix cost pays for everything up to its block's terminator, and
 * only terminators can leave a block, so straight-line handlers never look at gas.
 */
#include "internal.h"

typedef uint16_t u16_unaligned __attribute__((aligned(1), may_alias));
typedef uint32_t u32_unaligned __attribute__((aligned(1), may_alias));
typedef uint64_t u64_unaligned __attribute__((aligned(1), may_alias));

static inline uint64_t sext32(uint64_t x) { return (uint64_t)(int64_t)(int32_t)(uint32_t)x; }

/* Loads `size` bytes at addr: the fast path when they lie in one readable page. Returns 0 on a fault. */
static inline int load(const struct pvm_memory *mem, uint32_t addr, unsigned size, uint64_t *value, uint32_t *fault) {
    if ((addr & (PVM_PAGE_SIZE - 1)) <= PVM_PAGE_SIZE - size) {
        uintptr_t e = pvm_page_entry(mem, addr); /* every mapped page is readable */
        if (e) {
            const uint8_t *p = pvm_host_byte(e, addr);
            switch (size) {
            case 1: *value = *p; break;
            case 2: *value = *(const u16_unaligned *)p; break;
            case 4: *value = *(const u32_unaligned *)p; break;
            default: *value = *(const u64_unaligned *)p; break;
            }
            return 1;
        }
    }
    return pvm_load_slow(mem, addr, size, value, fault);
}

static inline int store(struct pvm_memory *mem, uint32_t addr, unsigned size, uint64_t value, uint32_t *fault) {
    if ((addr & (PVM_PAGE_SIZE - 1)) <= PVM_PAGE_SIZE - size) {
        uintptr_t e = pvm_page_entry(mem, addr);
        if (e & PVM_PERM_WRITE) {
            uint8_t *p = pvm_host_byte(e, addr);
            switch (size) {
            case 1: *p = (uint8_t)value; break;
            case 2: *(u16_unaligned *)p = (uint16_t)value; break;
            case 4: *(u32_unaligned *)p = (uint32_t)value; break;
            default: *(u64_unaligned *)p = value; break;
            }
            return 1;
        }
    }
    return pvm_store_slow(mem, addr, size, value, fault);
}

/* Semantics of the register-register and register-immediate operations (b is rs2 or the immediate). */
static inline uint64_t alu_sll(uint64_t a, uint64_t b) { return a << (b & 63); }
static inline uint64_t alu_srl(uint64_t a, uint64_t b) { return a >> (b & 63); }
static inline uint64_t alu_sra(uint64_t a, uint64_t b) { return (uint64_t)((int64_t)a >> (b & 63)); }
static inline uint64_t alu_slt(uint64_t a, uint64_t b) { return (int64_t)a < (int64_t)b; }
static inline uint64_t alu_sltu(uint64_t a, uint64_t b) { return a < b; }
static inline uint64_t alu_addw(uint64_t a, uint64_t b) { return sext32(a + b); }
static inline uint64_t alu_sllw(uint64_t a, uint64_t b) { return sext32((uint32_t)a << (b & 31)); }
static inline uint64_t alu_srlw(uint64_t a, uint64_t b) { return sext32((uint32_t)a >> (b & 31)); }
static inline uint64_t alu_sraw(uint64_t a, uint64_t b) { return (uint64_t)(int64_t)((int32_t)(uint32_t)a >> (b & 31)); }
static inline uint64_t alu_ror(uint64_t a, uint64_t b) { return (a >> (b & 63)) | (a << ((64 - b) & 63)); }
static inline uint64_t alu_rol(uint64_t a, uint64_t b) { return (a << (b & 63)) | (a >> ((64 - b) & 63)); }
static inline uint64_t alu_rorw(uint64_t a, uint64_t b) {
    uint32_t x = (uint32_t)a;
    return sext32((x >> (b & 31)) | (x << ((32 - b) & 31)));
}
static inline uint64_t alu_rolw(uint64_t a, uint64_t b) {
    uint32_t x = (uint32_t)a;
    return sext32((x << (b & 31)) | (x >> ((32 - b) & 31)));
}
static inline uint64_t alu_bclr(uint64_t a, uint64_t b) { return a & ~((uint64_t)1 << (b & 63)); }
static inline uint64_t alu_bset(uint64_t a, uint64_t b) { return a | ((uint64_t)1 << (b & 63)); }
static inline uint64_t alu_binv(uint64_t a, uint64_t b) { return a ^ ((uint64_t)1 << (b & 63)); }
static inline uint64_t alu_bext(uint64_t a, uint64_t b) { return (a >> (b & 63)) & 1; }

static inline uint64_t mulhu(uint64_t a, uint64_t b) { return (uint64_t)(((unsigned __int128)a * b) >> 64); }
/* Signed high halves from the unsigned one (no 128-bit signed multiply, so no libgcc call). */
static inline uint64_t mulhsu(uint64_t a, uint64_t b) { return mulhu(a, b) - ((int64_t)a < 0 ? b : 0); }
static inline uint64_t mulh(uint64_t a, uint64_t b) { return mulhsu(a, b) - ((int64_t)b < 0 ? a : 0); }

/* RISC-V division: by zero gives all ones (quotient) or the dividend (remainder); overflow gives MIN and 0. */
static inline uint64_t div64(uint64_t a, uint64_t b) {
    if (b == 0) return UINT64_MAX;
    if ((int64_t)a == INT64_MIN && (int64_t)b == -1) return a;
    return (uint64_t)((int64_t)a / (int64_t)b);
}
static inline uint64_t rem64(uint64_t a, uint64_t b) {
    if (b == 0) return a;
    if ((int64_t)a == INT64_MIN && (int64_t)b == -1) return 0;
    return (uint64_t)((int64_t)a % (int64_t)b);
}
static inline uint64_t div32(uint64_t a, uint64_t b) {
    int32_t x = (int32_t)(uint32_t)a, y = (int32_t)(uint32_t)b;
    if (y == 0) return UINT64_MAX;
    if (x == INT32_MIN && y == -1) return sext32((uint32_t)x);
    return (uint64_t)(int64_t)(x / y);
}
static inline uint64_t rem32(uint64_t a, uint64_t b) {
    int32_t x = (int32_t)(uint32_t)a, y = (int32_t)(uint32_t)b;
    if (y == 0) return sext32((uint32_t)x);
    if (x == INT32_MIN && y == -1) return 0;
    return (uint64_t)(int64_t)(x % y);
}
static inline uint64_t divu32(uint64_t a, uint64_t b) { return (uint32_t)b == 0 ? UINT64_MAX : sext32((uint32_t)a / (uint32_t)b); }
static inline uint64_t remu32(uint64_t a, uint64_t b) { return (uint32_t)b == 0 ? sext32(a) : sext32((uint32_t)a % (uint32_t)b); }

/* Population count without __builtin_popcount (which may call libgcc on a baseline x86-64). */
static inline uint64_t popcount(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (x * 0x0101010101010101ull) >> 56;
}
static inline uint64_t clz64(uint64_t x) { return x ? (uint64_t)__builtin_clzll(x) : 64; }
static inline uint64_t ctz64(uint64_t x) { return x ? (uint64_t)__builtin_ctzll(x) : 64; }
static inline uint64_t clz32(uint64_t x) { return (uint32_t)x ? (uint64_t)__builtin_clz((uint32_t)x) : 32; }
static inline uint64_t ctz32(uint64_t x) { return (uint32_t)x ? (uint64_t)__builtin_ctz((uint32_t)x) : 32; }
static inline uint64_t orc_b(uint64_t x) {
    uint64_t r = 0;
    for (unsigned i = 0; i < 64; i += 8)
        if ((x >> i) & 0xff) r |= (uint64_t)0xff << i;
    return r;
}

static uint32_t interpret(const struct pvm_program *prog, struct pvm_memory *mem, struct pvm_state *st) {
    static const void *const labels[PVM_HANDLER_COUNT] = {
#define PVM_X(name) [PVM_H_##name] = &&op_##name,
        PVM_HANDLERS(PVM_X)
#undef PVM_X
    };
    /*
     * Slot by slot, unrolled: without hardware nested virtualisation every guest
     * instruction costs about half a microsecond (docs/sandbox.md), and a copy loop
     * or a zeroing of the whole file is several times the instructions of these stores.
     */
    uint64_t r[PVM_REG_SLOTS];
    r[0] = r[3] = r[4] = r[PVM_SINK_SLOT] = 0; /* the slots no φ register lives in */
#pragma GCC unroll 16
    for (unsigned i = 0; i < PVM_NUM_REGS; i++) r[pvm_phi_slot[i]] = st->regs[i];
    /*
     * Make GCC forget that the slots hold st->regs: otherwise it keeps copies of them in
     * registers, spills gas and the instruction count to the stack instead, and gives
     * every exit its own reload of the file (measured: 256 stack accesses in pvm_run, now 140).
     */
    __asm__("" : : "r"(r) : "memory");
    const struct pvm_insn *const base = prog->insns;
    const struct pvm_insn *ins;
    uint64_t gas = st->gas, instructions = 0, exit_arg = 0;
    uint32_t exit, fault = 0;

    /* pvm_enter applies the entry rule; this only keeps a pc that starts no instruction from indexing past the program. */
    uint32_t entry = pvm_entry_index(prog, st->pc);
    if (entry == PVM_NO_TARGET) {
        st->exit = PVM_EXIT_PANIC;
        st->exit_arg = 0;
        st->instructions = 0;
        return PVM_EXIT_PANIC;
    }
    ins = base + entry;

#define RD r[ins->rd]
#define RS1 r[ins->rs1]
#define RS2 r[ins->rs2]
#define IMM ((uint64_t)ins->imm)
#define DISPATCH() goto *labels[ins->handler]
/* Straight-line successor: already paid for by the block's entry. */
#define NEXT() do { ins++; DISPATCH(); } while (0)
/* Control enters `target` from elsewhere: charge its suffix, or stop before it. */
#define ENTER(target) do { \
        ins = (target); \
        if (__builtin_expect(gas < ins->gas, 0)) goto out_of_gas; \
        gas -= ins->gas; \
        instructions += ins->count; \
        DISPATCH(); \
    } while (0)
#define BINARY(H, expr) op_##H: { uint64_t a = RS1, b = RS2; RD = (expr); NEXT(); }
#define BINARY_IMM(H, expr) op_##H: { uint64_t a = RS1, b = IMM; RD = (expr); NEXT(); }
#define UNARY(H, expr) op_##H: { uint64_t a = RS1; RD = (expr); NEXT(); }
#define LOAD(H, size, convert) op_##H: { \
        uint64_t v; \
        if (!load(mem, (uint32_t)(RS1 + IMM), size, &v, &fault)) goto page_fault; \
        RD = (convert); \
        NEXT(); \
    }
#define STORE(H, size) op_##H: { \
        if (!store(mem, (uint32_t)(RS1 + IMM), size, RS2, &fault)) goto page_fault; \
        NEXT(); \
    }
/* Not taken: the next instruction starts a block. Taken to a bad target: PANIC at the branch. */
#define BRANCH(H, cond) op_##H: { \
        uint64_t a = RS1, b = RS2; \
        if (!(cond)) ENTER(ins + 1); \
        if (ins->target == PVM_NO_TARGET) goto panic_undone; \
        ENTER(base + ins->target); \
    }

    ENTER(ins);

    op_LI: RD = IMM; NEXT();
    op_NOP: NEXT();

    BINARY(ADD, a + b) BINARY_IMM(ADDI, a + b)
    BINARY(SUB, a - b)
    BINARY(SLL, alu_sll(a, b)) BINARY_IMM(SLLI, alu_sll(a, b))
    BINARY(SRL, alu_srl(a, b)) BINARY_IMM(SRLI, alu_srl(a, b))
    BINARY(SRA, alu_sra(a, b)) BINARY_IMM(SRAI, alu_sra(a, b))
    BINARY(SLT, alu_slt(a, b)) BINARY_IMM(SLTI, alu_slt(a, b))
    BINARY(SLTU, alu_sltu(a, b)) BINARY_IMM(SLTIU, alu_sltu(a, b))
    BINARY(XOR, a ^ b) BINARY_IMM(XORI, a ^ b)
    BINARY(OR, a | b) BINARY_IMM(ORI, a | b)
    BINARY(AND, a & b) BINARY_IMM(ANDI, a & b)
    BINARY(ADDW, alu_addw(a, b)) BINARY_IMM(ADDIW, alu_addw(a, b))
    BINARY(SUBW, sext32(a - b))
    BINARY(SLLW, alu_sllw(a, b)) BINARY_IMM(SLLIW, alu_sllw(a, b))
    BINARY(SRLW, alu_srlw(a, b)) BINARY_IMM(SRLIW, alu_srlw(a, b))
    BINARY(SRAW, alu_sraw(a, b)) BINARY_IMM(SRAIW, alu_sraw(a, b))

    BINARY(MUL, a * b)
    BINARY(MULH, mulh(a, b))
    BINARY(MULHSU, mulhsu(a, b))
    BINARY(MULHU, mulhu(a, b))
    BINARY(MULW, sext32(a * b))
    BINARY(DIV, div64(a, b))
    BINARY(DIVU, b == 0 ? UINT64_MAX : a / b)
    BINARY(REM, rem64(a, b))
    BINARY(REMU, b == 0 ? a : a % b)
    BINARY(DIVW, div32(a, b))
    BINARY(DIVUW, divu32(a, b))
    BINARY(REMW, rem32(a, b))
    BINARY(REMUW, remu32(a, b))

    BINARY(ADDUW, b + (uint32_t)a)
    BINARY(SH1ADD, (a << 1) + b)
    BINARY(SH2ADD, (a << 2) + b)
    BINARY(SH3ADD, (a << 3) + b)
    BINARY(SH1ADDUW, ((uint64_t)(uint32_t)a << 1) + b)
    BINARY(SH2ADDUW, ((uint64_t)(uint32_t)a << 2) + b)
    BINARY(SH3ADDUW, ((uint64_t)(uint32_t)a << 3) + b)
    BINARY_IMM(SLLIUW, alu_sll((uint32_t)a, b))

    BINARY(ANDN, a & ~b)
    BINARY(ORN, a | ~b)
    BINARY(XNOR, ~(a ^ b))
    UNARY(CLZ, clz64(a))
    UNARY(CTZ, ctz64(a))
    UNARY(CPOP, popcount(a))
    UNARY(CLZW, clz32(a))
    UNARY(CTZW, ctz32(a))
    UNARY(CPOPW, popcount((uint32_t)a))
    BINARY(MIN, (int64_t)a < (int64_t)b ? a : b)
    BINARY(MINU, a < b ? a : b)
    BINARY(MAX, (int64_t)a < (int64_t)b ? b : a)
    BINARY(MAXU, a < b ? b : a)
    UNARY(SEXTB, (uint64_t)(int64_t)(int8_t)(uint8_t)a)
    UNARY(SEXTH, (uint64_t)(int64_t)(int16_t)(uint16_t)a)
    UNARY(ZEXTH, a & 0xffff)
    BINARY(ROL, alu_rol(a, b))
    BINARY(ROR, alu_ror(a, b)) BINARY_IMM(RORI, alu_ror(a, b))
    BINARY(ROLW, alu_rolw(a, b))
    BINARY(RORW, alu_rorw(a, b)) BINARY_IMM(RORIW, alu_rorw(a, b))
    UNARY(ORCB, orc_b(a))
    UNARY(REV8, __builtin_bswap64(a))
    BINARY(BCLR, alu_bclr(a, b)) BINARY_IMM(BCLRI, alu_bclr(a, b))
    BINARY(BSET, alu_bset(a, b)) BINARY_IMM(BSETI, alu_bset(a, b))
    BINARY(BINV, alu_binv(a, b)) BINARY_IMM(BINVI, alu_binv(a, b))
    BINARY(BEXT, alu_bext(a, b)) BINARY_IMM(BEXTI, alu_bext(a, b))
    BINARY(CZEROEQZ, b == 0 ? 0 : a)
    BINARY(CZERONEZ, b != 0 ? 0 : a)

    LOAD(LB, 1, (uint64_t)(int64_t)(int8_t)(uint8_t)v)
    LOAD(LH, 2, (uint64_t)(int64_t)(int16_t)(uint16_t)v)
    LOAD(LW, 4, sext32(v))
    LOAD(LD, 8, v)
    LOAD(LBU, 1, v)
    LOAD(LHU, 2, v)
    LOAD(LWU, 4, v)
    STORE(SB, 1)
    STORE(SH, 2)
    STORE(SW, 4)
    STORE(SD, 8)

    BRANCH(BEQ, a == b)
    BRANCH(BNE, a != b)
    BRANCH(BLT, (int64_t)a < (int64_t)b)
    BRANCH(BGE, (int64_t)a >= (int64_t)b)
    BRANCH(BLTU, a < b)
    BRANCH(BGEU, a >= b)

    op_JAL: {
        if (ins->target == PVM_NO_TARGET) goto panic_undone;
        RD = PVM_CODE_BASE + ins[1].offset;
        ENTER(base + ins->target);
    }
    op_JALR: {
        /* The target must be a block start; it is read before rd is written (rd may be rs1). */
        uint32_t t = ((uint32_t)(RS1 + IMM) & ~1u) - PVM_CODE_BASE;
        uint32_t target = t < prog->code_len ? prog->index_of_half[t / 2] : 0;
        if (!(target & PVM_BLOCK_START)) goto panic_undone;
        RD = PVM_CODE_BASE + ins[1].offset;
        ENTER(base + (target & PVM_INDEX_MASK) - 1);
    }

    op_FALLTHROUGH: ENTER(ins + 1);
    op_ECALLI: exit = PVM_EXIT_ECALLI; exit_arg = IMM; goto stop;
    op_ECALLJAR: exit = PVM_EXIT_ECALL; ins++; goto stop;
    op_TRAP: exit = PVM_EXIT_TRAP; goto stop;
    op_END: exit = PVM_EXIT_PANIC; goto stop;
    out_of_gas: exit = PVM_EXIT_OUT_OF_GAS; goto stop;
    /* The instruction at `ins` did not complete: it and the rest of its block are not counted. */
    page_fault: exit = PVM_EXIT_PAGE_FAULT; exit_arg = fault; instructions -= ins->count; goto stop;
    op_ILLEGAL:
    panic_undone: exit = PVM_EXIT_PANIC; instructions -= ins->count; goto stop;

#undef RD
#undef RS1
#undef RS2
#undef IMM
#undef DISPATCH
#undef NEXT
#undef ENTER
#undef BINARY
#undef BINARY_IMM
#undef UNARY
#undef LOAD
#undef STORE
#undef BRANCH

stop:
#pragma GCC unroll 16
    for (unsigned i = 0; i < PVM_NUM_REGS; i++) st->regs[i] = r[pvm_phi_slot[i]];
    st->pc = PVM_CODE_BASE + ins->offset;
    st->gas = gas;
    st->instructions = instructions;
    st->exit = exit;
    st->exit_arg = exit_arg;
    return exit;
}

/*
 * What an `ecalli` does, for both engines: st->pc is the ecalli, st->exit_arg its
 * number, its block already charged. Returns 1 if the run goes on at st->pc (a kernel
 * operation done on `frame`), else 0 with the exit filled in.
 */
static int ecalli(struct pvm_state *st, struct pvm_memory *mem, struct pvm_frame *frame) {
    int64_t n = (int64_t)st->exit_arg;
    if (n == 0) {
        st->exit = PVM_EXIT_HALT;
        st->exit_arg = st->regs[7];
        return 0;
    }
    if (n >= PVM_HOST_CALL_MIN) {
        st->exit = PVM_EXIT_HOST_CALL;
        st->pc += 4; /* an ecalli is never compressed */
        return 0;
    }
    uint32_t outcome = n > 0 && frame ? pvm_kernel_op(frame, mem, st->regs, n, &st->gas) : PVM_KOUTCOME_PANIC;
    if (outcome == PVM_KOUTCOME_CONTINUE) {
        st->pc += 4;
        return 1;
    }
    if (outcome == PVM_KOUTCOME_NO_MEMORY) frame->failed = 1;
    /* Not completed: PANIC (no such operation, a negative number, no memory) or OUT_OF_GAS at the ecalli. */
    st->exit = outcome == PVM_KOUTCOME_OUT_OF_GAS ? PVM_EXIT_OUT_OF_GAS : PVM_EXIT_PANIC;
    st->exit_arg = 0;
    st->instructions--;
    return 0;
}

uint32_t pvm_execute(const struct pvm_program *prog, struct pvm_memory *mem, struct pvm_state *st, enum pvm_engine engine, struct pvm_frame *frame) {
    uint64_t instructions = 0;
    for (;;) {
        uint32_t exit = engine == PVM_ENGINE_RECOMPILER ? pvm_jit_run(prog, mem, st) : interpret(prog, mem, st);
        int more = exit == PVM_EXIT_ECALLI && ecalli(st, mem, frame);
        instructions += st->instructions;
        if (!more) break;
    }
    st->instructions = engine == PVM_ENGINE_RECOMPILER ? 0 : instructions; /* generated code does not count */
    return st->exit;
}

uint32_t pvm_enter(const struct pvm_program *prog, struct pvm_memory *mem, struct pvm_state *st, uint64_t entry, enum pvm_engine engine, struct pvm_frame *frame) {
    st->pc = (uint32_t)(PVM_CODE_BASE + entry);
    if (entry >= prog->code_len || !pvm_is_block_start(prog, st->pc)) {
        st->exit = PVM_EXIT_PANIC;
        st->exit_arg = 0;
        st->instructions = 0;
        return PVM_EXIT_PANIC;
    }
    return pvm_execute(prog, mem, st, engine, frame);
}

uint32_t pvm_run(const struct pvm_program *prog, struct pvm_memory *mem, struct pvm_state *st) {
    return pvm_execute(prog, mem, st, PVM_ENGINE_INTERPRETER, 0);
}
