/*
 * PVM2 decoder and pre-decoder. The decoding rules are those of lib/machine/decoder.ts
 * (compressed forms expand to their 32-bit mnemonic; anything not PVM2 is illegal);
 * each mnemonic's operand form, gas class and handler come from the generated
 * pvm_tables.h, so both engines charge the same gas and end blocks at the same
 * instructions.
 */
#include "internal.h"

/*
 * Every guest instruction is slow (docs/sandbox.md), so the per-instruction decode path is
 * forced inline into pvm_prepare: the decoded record then lives in registers, not in a
 * 48-byte struct returned through memory.
 */
#define DECODE_INLINE static inline __attribute__((always_inline))

#define PVM_CAT_(a, b) a##b
#define PVM_CAT(a, b) PVM_CAT_(a, b)

enum pvm_form {
#define PVM_X(form, rd, rs1, rs2, term) PVM_FORM_##form,
    PVM_FORMS(PVM_X)
#undef PVM_X
};

static const struct { uint8_t rd, rs1, rs2, terminator; } form_info[] = {
#define PVM_X(form, rd, rs1, rs2, term) [PVM_FORM_##form] = {rd, rs1, rs2, term},
    PVM_FORMS(PVM_X)
#undef PVM_X
};

enum pvm_mnemonic {
#define PVM_X(name, form, gas, handler) M_##name,
    PVM_MNEMONICS(PVM_X)
#undef PVM_X
    M_ILLEGAL
};

/* A handler the table names but internal.h lacks does not compile; a mnemonic without one cannot be written down. */
static const struct { uint8_t form; uint8_t gas; uint8_t handler; } mnemonic_info[] = {
#define PVM_X(name, form, gas, handler) [M_##name] = {PVM_FORM_##form, PVM_GAS_##gas, PVM_H_##handler},
    PVM_MNEMONICS(PVM_X)
#undef PVM_X
    [M_ILLEGAL] = {PVM_CAT(PVM_FORM_, PVM_ILLEGAL_FORM), PVM_CAT(PVM_GAS_, PVM_ILLEGAL_GAS_CLASS), PVM_H_ILLEGAL},
};

struct decoded {
    enum pvm_mnemonic mnemonic; /* M_ILLEGAL for an illegal encoding */
    uint32_t length;
    uint32_t rd, rs1, rs2;      /* x0..x31 as encoded; 0 where the form has no such operand */
    int64_t imm;
    int illegal;                /* illegal encoding or illegal register: PANIC when run */
    int terminator;
    uint32_t gas;
};

/* RV64E has x0..x15, minus x3 (gp) and x4 (tp). */
static inline int legal_register(uint32_t x) {
    return x <= 15 && x != 3 && x != 4;
}

DECODE_INLINE struct decoded make(enum pvm_mnemonic m, uint32_t length, uint32_t rd, uint32_t rs1, uint32_t rs2, int64_t imm) {
    uint8_t form = mnemonic_info[m].form;
    struct decoded d = {
        .mnemonic = m, .length = length,
        .rd = form_info[form].rd ? rd : 0,
        .rs1 = form_info[form].rs1 ? rs1 : 0,
        .rs2 = form_info[form].rs2 ? rs2 : 0,
        .imm = imm, .terminator = form_info[form].terminator, .gas = mnemonic_info[m].gas,
    };
    if (!legal_register(d.rd) || !legal_register(d.rs1) || !legal_register(d.rs2)) {
        /* Not PVM2: it panics when run, so it ends its block; it keeps its mnemonic's gas (as the reference does). */
        d.illegal = 1;
        d.terminator = 1;
    }
    return d;
}

DECODE_INLINE struct decoded illegal(uint32_t length) {
    struct decoded d = {.mnemonic = M_ILLEGAL, .length = length, .illegal = 1, .terminator = 1, .gas = mnemonic_info[M_ILLEGAL].gas};
    return d;
}

/* Bits hi..lo of x, unsigned. */
static inline uint32_t bits(uint32_t x, unsigned hi, unsigned lo) {
    return (x >> lo) & ((1u << (hi - lo + 1)) - 1);
}

/* Sign-extends the low `width` bits of x. */
static inline int64_t sext(uint32_t x, unsigned width) {
    uint64_t m = (uint64_t)1 << (width - 1);
    uint64_t v = x & ((m << 1) - 1);
    return (int64_t)((v ^ m) - m);
}

/* The instruction table's encodings (pvm_tables.h from lib/machine/isa.ts): the first of a word's group whose bits match. */
static const struct { uint32_t mask, match; } encodings[] = {
#define PVM_X(name, mask, match) [M_##name] = {mask, match},
    PVM_ENCODINGS(PVM_X)
#undef PVM_X
};
static const uint16_t group_start[] = PVM_ENCODING_GROUP_STARTS;
static const uint8_t group_members[] = {
#define PVM_X(name) M_##name,
    PVM_ENCODING_GROUP_MEMBERS(PVM_X)
#undef PVM_X
};

DECODE_INLINE enum pvm_mnemonic mnemonic_of(uint32_t w) {
    uint32_t g = ((w & 0x7f) >> 2) * 8 + bits(w, 14, 12);
    for (uint32_t k = group_start[g]; k < group_start[g + 1]; k++) {
        enum pvm_mnemonic m = (enum pvm_mnemonic)group_members[k];
        if ((w & encodings[m].mask) == encodings[m].match) return m;
    }
    return M_ILLEGAL;
}

/* The mnemonic comes from the table; the immediate from its form. */
DECODE_INLINE struct decoded decode32(uint32_t w) {
    enum pvm_mnemonic m = mnemonic_of(w);
    if (m == M_ILLEGAL) return illegal(4);
    uint32_t rd = bits(w, 11, 7), rs2 = bits(w, 24, 20);
    int64_t imm = 0;
    switch (mnemonic_info[m].form) {
    case PVM_FORM_UPPER: imm = (int32_t)(w & 0xfffff000u); break;
    case PVM_FORM_JAL: imm = sext((bits(w, 31, 31) << 20) | (bits(w, 19, 12) << 12) | (bits(w, 20, 20) << 11) | (bits(w, 30, 21) << 1), 21); break;
    case PVM_FORM_BRANCH: imm = sext((bits(w, 31, 31) << 12) | (bits(w, 7, 7) << 11) | (bits(w, 30, 25) << 5) | (bits(w, 11, 8) << 1), 13); break;
    case PVM_FORM_STORE: imm = sext(((w >> 25) << 5) | rd, 12); break;
    case PVM_FORM_LOAD: case PVM_FORM_JALR: case PVM_FORM_ECALLI: imm = sext(w >> 20, 12); break;
    /* a shift fixing funct7 takes a 5-bit amount (the rs2 field), one fixing funct6 a 6-bit one */
    case PVM_FORM_IMM: imm = encodings[m].mask >> 25 == 0x7f ? rs2 : encodings[m].mask >> 26 == 0x3f ? bits(w, 25, 20) : sext(w >> 20, 12); break;
    default: break;
    }
    return make(m, 4, rd, bits(w, 19, 15), rs2, imm);
}

DECODE_INLINE struct decoded decode16(uint32_t h) {
    uint32_t quadrant = h & 3, f3 = h >> 13;
    /* Fields as macros: each format extracts only the ones it uses. */
#define RD_FULL bits(h, 11, 7)
#define RS2_FULL bits(h, 6, 2)
#define RD_PRIME (8 + bits(h, 4, 2))
#define RS1_PRIME (8 + bits(h, 9, 7))
#define SHAMT6 ((bits(h, 12, 12) << 5) | bits(h, 6, 2))
#define IMM6 sext(SHAMT6, 6)
    /* Offsets of c.lw/c.sw and c.ld/c.sd. */
#define WORD_OFF ((bits(h, 12, 10) << 3) | (bits(h, 6, 6) << 2) | (bits(h, 5, 5) << 6))
#define DOUBLE_OFF ((bits(h, 12, 10) << 3) | (bits(h, 6, 5) << 6))
#define C(mn, rd, rs1, rs2, im) make((mn), 2, (rd), (rs1), (rs2), (im))

    if (quadrant == 0) {
        switch (f3) {
        case 0: { /* c.addi4spn; a zero immediate (and the all-zero halfword) is reserved */
            uint32_t imm = (bits(h, 12, 11) << 4) | (bits(h, 10, 7) << 6) | (bits(h, 6, 6) << 2) | (bits(h, 5, 5) << 3);
            return imm == 0 ? illegal(2) : C(M_addi, RD_PRIME, 2, 0, imm);
        }
        case 2: return C(M_lw, RD_PRIME, RS1_PRIME, 0, WORD_OFF);
        case 3: return C(M_ld, RD_PRIME, RS1_PRIME, 0, DOUBLE_OFF);
        case 6: return C(M_sw, 0, RS1_PRIME, RD_PRIME, WORD_OFF);
        case 7: return C(M_sd, 0, RS1_PRIME, RD_PRIME, DOUBLE_OFF);
        default: return illegal(2);
        }
    }
    if (quadrant == 1) {
        switch (f3) {
        case 0: return C(M_addi, RD_FULL, RD_FULL, 0, IMM6); /* c.addi, c.nop and their hints */
        case 1: return RD_FULL == 0 ? illegal(2) : C(M_addiw, RD_FULL, RD_FULL, 0, IMM6);
        case 2: return C(M_addi, RD_FULL, 0, 0, IMM6); /* c.li */
        case 3:
            if (RD_FULL == 2) { /* c.addi16sp */
                int64_t imm = sext((bits(h, 12, 12) << 9) | (bits(h, 6, 6) << 4) | (bits(h, 5, 5) << 6) | (bits(h, 4, 3) << 7) | (bits(h, 2, 2) << 5), 10);
                return imm == 0 ? illegal(2) : C(M_addi, 2, 2, 0, imm);
            }
            return IMM6 == 0 ? illegal(2) : C(M_lui, RD_FULL, 0, 0, IMM6 * 4096); /* c.lui */
        case 4: {
            uint32_t rd = RS1_PRIME;
            switch (bits(h, 11, 10)) {
            case 0: return C(M_srli, rd, rd, 0, SHAMT6);
            case 1: return C(M_srai, rd, rd, 0, SHAMT6);
            case 2: return C(M_andi, rd, rd, 0, IMM6);
            default: {
                static const enum pvm_mnemonic alu[2][4] = {{M_sub, M_xor, M_or, M_and}, {M_subw, M_addw, M_ILLEGAL, M_ILLEGAL}};
                enum pvm_mnemonic m = alu[bits(h, 12, 12)][bits(h, 6, 5)];
                return m == M_ILLEGAL ? illegal(2) : C(m, rd, rd, RD_PRIME, 0);
            }
            }
        }
        case 5: /* c.j */
            return C(M_jal, 0, 0, 0, sext((bits(h, 12, 12) << 11) | (bits(h, 11, 11) << 4) | (bits(h, 10, 9) << 8) | (bits(h, 8, 8) << 10)
                | (bits(h, 7, 7) << 6) | (bits(h, 6, 6) << 7) | (bits(h, 5, 3) << 1) | (bits(h, 2, 2) << 5), 12));
        default: /* c.beqz, c.bnez */
            return C(f3 == 6 ? M_beq : M_bne, 0, RS1_PRIME, 0,
                sext((bits(h, 12, 12) << 8) | (bits(h, 11, 10) << 3) | (bits(h, 6, 5) << 6) | (bits(h, 4, 3) << 1) | (bits(h, 2, 2) << 5), 9));
        }
    }
    /* quadrant 2 (quadrant 3 is a 32-bit instruction) */
    switch (f3) {
    case 0: return C(M_slli, RD_FULL, RD_FULL, 0, SHAMT6);
    case 2: /* c.lwsp */
        return RD_FULL == 0 ? illegal(2) : C(M_lw, RD_FULL, 2, 0, (bits(h, 12, 12) << 5) | (bits(h, 6, 4) << 2) | (bits(h, 3, 2) << 6));
    case 3: /* c.ldsp */
        return RD_FULL == 0 ? illegal(2) : C(M_ld, RD_FULL, 2, 0, (bits(h, 12, 12) << 5) | (bits(h, 6, 5) << 3) | (bits(h, 4, 2) << 6));
    case 4:
        if (bits(h, 12, 12) == 0) {
            if (RS2_FULL != 0) return C(M_add, RD_FULL, 0, RS2_FULL, 0);             /* c.mv */
            return RD_FULL == 0 ? illegal(2) : C(M_jalr, 0, RD_FULL, 0, 0);         /* c.jr */
        }
        if (RS2_FULL != 0) return C(M_add, RD_FULL, RD_FULL, RS2_FULL, 0);          /* c.add */
        return RD_FULL == 0 ? illegal(2) /* c.ebreak */ : C(M_jalr, 1, RD_FULL, 0, 0); /* c.jalr */
    case 6: return C(M_sw, 0, 2, RS2_FULL, (bits(h, 12, 9) << 2) | (bits(h, 8, 7) << 6)); /* c.swsp */
    case 7: return C(M_sd, 0, 2, RS2_FULL, (bits(h, 12, 10) << 3) | (bits(h, 9, 7) << 6)); /* c.sdsp */
    default: return illegal(2); /* floating point */
    }
#undef C
#undef RD_FULL
#undef RS2_FULL
#undef RD_PRIME
#undef RS1_PRIME
#undef SHAMT6
#undef IMM6
#undef WORD_OFF
#undef DOUBLE_OFF
}

/* Length rule: low bits 11 = 4 bytes, else 2; an instruction cut off by the end of the code is illegal. */
DECODE_INLINE struct decoded decode_at(const uint8_t *code, uint32_t len, uint32_t offset) {
    uint32_t length = (code[offset] & 3) == 3 ? 4 : 2;
    if (len - offset < length) return illegal(length);
    if (length == 2) return decode16((uint32_t)code[offset] | (uint32_t)code[offset + 1] << 8);
    return decode32((uint32_t)code[offset] | (uint32_t)code[offset + 1] << 8 | (uint32_t)code[offset + 2] << 16 | (uint32_t)code[offset + 3] << 24);
}

static inline enum pvm_handler handler_of(const struct decoded *d) {
    return d->illegal ? PVM_H_ILLEGAL : (enum pvm_handler)mnemonic_info[d->mnemonic].handler;
}

static void *allocate(const struct pvm_allocator *a, size_t size, size_t align) {
    void *p = a->alloc(a->ctx, size, align);
    if (p) pvm_zero(p, size);
    return p;
}

void pvm_program_free(struct pvm_program *prog) {
    if (!prog) return;
    pvm_jit_free(prog);
    struct pvm_allocator a = prog->alloc;
    if (prog->insns) a.free(a.ctx, prog->insns, (size_t)(prog->insn_count + 1) * sizeof *prog->insns);
    if (prog->index_of_half) a.free(a.ctx, prog->index_of_half, (size_t)prog->half_count * sizeof *prog->index_of_half);
    if (prog->code_pages) a.free(a.ctx, prog->code_pages, (size_t)prog->code_page_count * PVM_PAGE_SIZE);
    a.free(a.ctx, prog, sizeof *prog);
}

uint32_t pvm_program_code_len(const struct pvm_program *prog) {
    return prog->code_len;
}

int pvm_is_block_start(const struct pvm_program *prog, uint32_t pc) {
    uint32_t off = pc - PVM_CODE_BASE;
    return off < prog->code_len && off % 2 == 0 && (prog->index_of_half[off / 2] & PVM_BLOCK_START) != 0;
}

/* A register slot: writes to x0 go to the sink. */
static uint8_t dest_slot(uint32_t x) {
    return x == 0 ? PVM_SINK_SLOT : (uint8_t)x;
}

int pvm_prepare(const struct pvm_allocator *alloc, const uint8_t *code, uint32_t len, struct pvm_program **out) {
    *out = 0;
    if (len > PVM_MAX_CODE_SIZE) return PVM_ERR_CODE_TOO_LARGE;
    struct pvm_program *prog = allocate(alloc, sizeof *prog, _Alignof(struct pvm_program));
    if (!prog) return PVM_ERR_NO_MEMORY;
    prog->alloc = *alloc;
    prog->code_len = len;
    /* One extra halfword: the END sentinel just past the code can be entered (a resume there panics). */
    prog->half_count = (len + 1) / 2 + 1;
    prog->code_page_count = (len + PVM_PAGE_SIZE - 1) / PVM_PAGE_SIZE;

    /* Pass 1: count instructions (lengths only). */
    uint32_t count = 0;
    for (uint32_t off = 0; off < len; off += (code[off] & 3) == 3 ? 4 : 2) count++;
    prog->insn_count = count;
    prog->insns = allocate(alloc, (size_t)(count + 1) * sizeof *prog->insns, _Alignof(struct pvm_insn));
    prog->index_of_half = allocate(alloc, (size_t)prog->half_count * sizeof *prog->index_of_half, _Alignof(uint32_t));
    prog->code_pages = prog->code_page_count ? alloc->alloc(alloc->ctx, (size_t)prog->code_page_count * PVM_PAGE_SIZE, PVM_PAGE_SIZE) : 0;
    if (!prog->insns || !prog->index_of_half || (prog->code_page_count && !prog->code_pages)) {
        pvm_program_free(prog);
        return PVM_ERR_NO_MEMORY;
    }
    if (prog->code_pages) {
        pvm_memcpy(prog->code_pages, code, len);
        pvm_zero(prog->code_pages + len, (size_t)prog->code_page_count * PVM_PAGE_SIZE - len); /* the padding */
    }

    /* Pass 2: decode. A terminator makes the next instruction a block start. */
    uint32_t i = 0;
    int block_start = 1;
    for (uint32_t off = 0; off < len; i++) {
        struct decoded d = decode_at(code, len, off);
        struct pvm_insn *ins = &prog->insns[i];
        ins->offset = off;
        ins->handler = (uint8_t)handler_of(&d);
        ins->rd = dest_slot(d.rd);
        ins->rs1 = (uint8_t)d.rs1;
        ins->rs2 = (uint8_t)d.rs2;
        /* auipc's value is known now: pc + imm. */
        ins->imm = d.mnemonic == M_auipc ? (int64_t)PVM_CODE_BASE + off + d.imm : d.imm;
        ins->gas = d.gas; /* turned into a suffix sum below */
        prog->index_of_half[off / 2] = (i + 1) | (block_start ? PVM_BLOCK_START : 0);
        block_start = d.terminator;
        off += d.length;
    }
    struct pvm_insn *end = &prog->insns[count];
    end->handler = PVM_H_END;
    end->offset = 2 * (prog->half_count - 1); /* just past the code, rounded up to a halfword */
    end->rd = PVM_SINK_SLOT;
    prog->index_of_half[prog->half_count - 1] = count + 1;

    /* Static targets: an instruction of the linear decode inside the code, else PANIC when taken. */
    for (i = 0; i < count; i++) {
        struct pvm_insn *ins = &prog->insns[i];
        if (ins->handler < PVM_H_BEQ || ins->handler > PVM_H_JAL) continue;
        int64_t t = (int64_t)ins->offset + ins->imm;
        uint32_t entry = t >= 0 && t < len && t % 2 == 0 ? prog->index_of_half[t / 2] : 0;
        ins->target = entry ? (entry & PVM_INDEX_MASK) - 1 : PVM_NO_TARGET;
    }

    /* Gas and counts: suffix sums up to the end of the block (its terminator, or the end of the code). */
    uint64_t next_gas = 0;
    uint32_t next_count = 0;
    for (i = count; i-- > 0;) {
        struct pvm_insn *ins = &prog->insns[i];
        if (i + 1 < count && (prog->index_of_half[prog->insns[i + 1].offset / 2] & PVM_BLOCK_START)) {
            next_gas = 0;
            next_count = 0;
        }
        ins->gas += next_gas;
        ins->count = 1 + next_count;
        next_gas = ins->gas;
        next_count = ins->count;
    }
    *out = prog;
    return PVM_OK;
}
