/*
 * A minimal x86-64 instruction encoder for the recompiler (jit.c): just the forms it
 * emits, baseline x86-64 only (no BMI/LZCNT/POPCNT: the guest's CPUID is not ours).
 */
#ifndef PVM_X86_H
#define PVM_X86_H

#include <stdint.h>

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };
#define X_RIP (-2) /* base of a RIP-relative operand */

/* Condition codes (the low nibble of Jcc/SETcc/CMOVcc). */
enum { CC_B = 2, CC_AE = 3, CC_E = 4, CC_NE = 5, CC_A = 7, CC_L = 0xc, CC_GE = 0xd, CC_LE = 0xe, CC_G = 0xf };

/* A register (reg >= 0) or memory [base + index * scale + disp] (index < 0: none). */
struct x86_op {
    int8_t reg, base, index, scale;
    int32_t disp;
};
static inline struct x86_op x_reg(int r) { return (struct x86_op){.reg = (int8_t)r, .base = -1, .index = -1}; }
static inline struct x86_op x_mem(int base, int32_t disp) { return (struct x86_op){.reg = -1, .base = (int8_t)base, .index = -1, .disp = disp}; }
static inline struct x86_op x_sib(int base, int index, int scale, int32_t disp) {
    return (struct x86_op){.reg = -1, .base = (int8_t)base, .index = (int8_t)index, .scale = (int8_t)scale, .disp = disp};
}

struct x86_buf {
    uint8_t *p;
    uint32_t pos, cap;
};

static inline void x_b(struct x86_buf *e, uint32_t v) { e->p[e->pos++] = (uint8_t)v; }
static inline void x_d(struct x86_buf *e, uint32_t v) {
    for (int i = 0; i < 4; i++) x_b(e, v >> (8 * i));
}
static inline void x_q(struct x86_buf *e, uint64_t v) {
    x_d(e, (uint32_t)v);
    x_d(e, (uint32_t)(v >> 32));
}
static inline int fits8(int64_t v) { return v >= -128 && v <= 127; }
static inline int fits32(int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; }

/* Flags of x_enc: operand size and whether a REX byte is needed for byte registers spl..dil. */
#define X_W 1      /* 64-bit (REX.W) */
#define X_16 2     /* 16-bit (0x66) */
#define X_BYTE 4   /* byte operands: always a REX, so 4..7 mean spl..dil */

/* Emits prefixes, `op` (1-3 bytes, first byte in the low byte), ModRM for reg/rm, SIB and displacement; `imm_len` bytes follow. */
static inline void x_enc(struct x86_buf *e, int flags, uint32_t op, int oplen, int reg, struct x86_op rm, int imm_len) {
    if (flags & X_16) x_b(e, 0x66);
    int rex = ((flags & X_W) ? 8 : 0) | ((reg & 8) ? 4 : 0);
    if (rm.reg >= 0) rex |= (rm.reg & 8) ? 1 : 0;
    else if (rm.base != X_RIP) rex |= ((rm.index >= 0 && (rm.index & 8)) ? 2 : 0) | ((rm.base & 8) ? 1 : 0);
    if (rex || (flags & X_BYTE)) x_b(e, 0x40 | rex);
    for (int i = 0; i < oplen; i++) x_b(e, op >> (8 * i));
    int r = (reg & 7) << 3;
    if (rm.reg >= 0) {
        x_b(e, 0xc0 | r | (rm.reg & 7));
        return;
    }
    if (rm.base == X_RIP) { /* disp is the target's buffer position */
        x_b(e, 0x05 | r);
        x_d(e, (uint32_t)(rm.disp - (int32_t)(e->pos + 4 + imm_len)));
        return;
    }
    int base = rm.base & 7;
    int mod = rm.disp == 0 && base != RBP ? 0 : fits8(rm.disp) ? 1 : 2;
    if (rm.index >= 0 || base == RSP) {
        x_b(e, (mod << 6) | r | 4);
        int ss = rm.scale == 8 ? 3 : rm.scale == 4 ? 2 : rm.scale == 2 ? 1 : 0;
        x_b(e, (ss << 6) | ((rm.index >= 0 ? rm.index & 7 : 4) << 3) | base);
    } else {
        x_b(e, (mod << 6) | r | base);
    }
    if (mod == 1) x_b(e, (uint32_t)rm.disp);
    else if (mod == 2) x_d(e, (uint32_t)rm.disp);
}

/* ALU group numbers (the /digit of 0x81/0x83, and op = 8 * n + 1 for "op rm, reg", + 3 for "op reg, rm"). */
enum { ALU_ADD = 0, ALU_OR = 1, ALU_AND = 4, ALU_SUB = 5, ALU_XOR = 6, ALU_CMP = 7 };
/* Shift group numbers (/digit of 0xC1/0xD3). */
enum { SH_ROL = 0, SH_ROR = 1, SH_SHL = 4, SH_SHR = 5, SH_SAR = 7 };

static inline void x_alu_r_rm(struct x86_buf *e, int flags, int alu, int reg, struct x86_op rm) { x_enc(e, flags, 8 * alu + 3, 1, reg, rm, 0); }
static inline void x_alu_rm_r(struct x86_buf *e, int flags, int alu, struct x86_op rm, int reg) { x_enc(e, flags, 8 * alu + 1, 1, reg, rm, 0); }
static inline void x_alu_imm(struct x86_buf *e, int flags, int alu, struct x86_op rm, int32_t imm) {
    if (fits8(imm)) {
        x_enc(e, flags, 0x83, 1, alu, rm, 1);
        x_b(e, (uint32_t)imm);
    } else {
        x_enc(e, flags, 0x81, 1, alu, rm, 4);
        x_d(e, (uint32_t)imm);
    }
}
static inline void x_mov_r_rm(struct x86_buf *e, int flags, int reg, struct x86_op rm) { x_enc(e, flags, 0x8b, 1, reg, rm, 0); }
static inline void x_mov_rm_r(struct x86_buf *e, int flags, struct x86_op rm, int reg) { x_enc(e, flags, (flags & X_BYTE) ? 0x88 : 0x89, 1, reg, rm, 0); }
/* mov rm, imm32 (sign-extended when X_W). */
static inline void x_mov_rm_imm(struct x86_buf *e, int flags, struct x86_op rm, int32_t imm) {
    x_enc(e, flags, 0xc7, 1, 0, rm, 4);
    x_d(e, (uint32_t)imm);
}
/* reg = imm, in the shortest form. */
static inline void x_mov_r_imm(struct x86_buf *e, int reg, uint64_t imm) {
    if (imm == 0) {
        x_alu_rm_r(e, 0, ALU_XOR, x_reg(reg), reg);
    } else if (imm <= UINT32_MAX) {
        if (reg & 8) x_b(e, 0x41);
        x_b(e, 0xb8 + (reg & 7));
        x_d(e, (uint32_t)imm);
    } else if (fits32((int64_t)imm)) {
        x_mov_rm_imm(e, X_W, x_reg(reg), (int32_t)imm);
    } else {
        x_b(e, 0x48 | ((reg & 8) ? 1 : 0));
        x_b(e, 0xb8 + (reg & 7));
        x_q(e, imm);
    }
}
static inline void x_lea(struct x86_buf *e, int flags, int reg, struct x86_op m) { x_enc(e, flags, 0x8d, 1, reg, m, 0); }
static inline void x_shift_imm(struct x86_buf *e, int flags, int sh, struct x86_op rm, int n) {
    x_enc(e, flags, 0xc1, 1, sh, rm, 1);
    x_b(e, (uint32_t)n);
}
static inline void x_shift_cl(struct x86_buf *e, int flags, int sh, struct x86_op rm) { x_enc(e, flags, 0xd3, 1, sh, rm, 0); }
/* The 0xF7 group: 2 not, 3 neg, 4 mul, 5 imul, 6 div, 7 idiv. */
static inline void x_f7(struct x86_buf *e, int flags, int n, struct x86_op rm) { x_enc(e, flags, 0xf7, 1, n, rm, 0); }
static inline void x_test_rm_r(struct x86_buf *e, int flags, struct x86_op rm, int reg) { x_enc(e, flags, (flags & X_BYTE) ? 0x84 : 0x85, 1, reg, rm, 0); }
static inline void x_test_imm8(struct x86_buf *e, struct x86_op rm, uint8_t imm) {
    x_enc(e, X_BYTE, 0xf6, 1, 0, rm, 1);
    x_b(e, imm);
}
static inline void x_test_rm_imm(struct x86_buf *e, struct x86_op rm, int32_t imm) {
    x_enc(e, 0, 0xf7, 1, 0, rm, 4);
    x_d(e, (uint32_t)imm);
}
/* Two-byte opcodes 0F xx with reg, rm (imul, cmov, movzx/movsx, bsf/bsr, bt*). */
static inline void x_0f(struct x86_buf *e, int flags, uint8_t op, int reg, struct x86_op rm) { x_enc(e, flags, 0x0f | (uint32_t)op << 8, 2, reg, rm, 0); }
static inline void x_movsxd(struct x86_buf *e, int reg, struct x86_op rm) { x_enc(e, X_W, 0x63, 1, reg, rm, 0); }
static inline void x_setcc(struct x86_buf *e, int cc, int reg) { x_enc(e, X_BYTE, 0x0f | (0x90u + cc) << 8, 2, 0, x_reg(reg), 0); }
static inline void x_cmov(struct x86_buf *e, int cc, int reg, struct x86_op rm) { x_0f(e, X_W, (uint8_t)(0x40 + cc), reg, rm); }
/* bt/bts/btr/btc rm, imm8: /4 /5 /6 /7 of 0F BA. */
static inline void x_bt_imm(struct x86_buf *e, int n, struct x86_op rm, int bit) {
    x_enc(e, X_W, 0x0f | 0xbau << 8, 2, n, rm, 1);
    x_b(e, (uint32_t)bit);
}
static inline void x_push(struct x86_buf *e, int r) {
    if (r & 8) x_b(e, 0x41);
    x_b(e, 0x50 + (r & 7));
}
static inline void x_pop(struct x86_buf *e, int r) {
    if (r & 8) x_b(e, 0x41);
    x_b(e, 0x58 + (r & 7));
}

/* Jumps with 32-bit displacements; each returns the position of its displacement, for x_patch. */
static inline uint32_t x_jcc(struct x86_buf *e, int cc) {
    x_b(e, 0x0f);
    x_b(e, 0x80u + cc);
    x_d(e, 0);
    return e->pos - 4;
}
static inline uint32_t x_jmp(struct x86_buf *e) {
    x_b(e, 0xe9);
    x_d(e, 0);
    return e->pos - 4;
}
static inline void x_patch(struct x86_buf *e, uint32_t at, uint32_t target) {
    uint32_t rel = target - (at + 4);
    for (int i = 0; i < 4; i++) e->p[at + i] = (uint8_t)(rel >> (8 * i));
}
static inline void x_jcc_to(struct x86_buf *e, int cc, uint32_t target) { x_patch(e, x_jcc(e, cc), target); }
static inline void x_call_to(struct x86_buf *e, uint32_t target) {
    x_b(e, 0xe8);
    x_d(e, 0);
    x_patch(e, e->pos - 4, target);
}
static inline void x_jmp_to(struct x86_buf *e, uint32_t target) { x_patch(e, x_jmp(e), target); }

#endif /* PVM_X86_H */
