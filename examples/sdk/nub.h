/*
 * nub SDK: the few things a C program needs to become a PVM2 image.
 *
 *   NUB_ENDPOINT(key, fn, nargs)  makes `fn` callable as endpoint `key` (0..255,
 *                                 the one-byte key [key]) with `nargs` (0..4)
 *                                 arguments; its return value is the reply (φ7).
 *   nub_host_call(n, a..f)        calls host function n (64..2047).
 *   nub_trap()                    stops the invocation with exit TRAP.
 *   NUB_ENDPOINT_CAPS(key, fn, nargs, ncaps)
 *                                 NUB_ENDPOINT with `ncaps` argument caps (the
 *                                 endpoint's arg_cnode_size); they are its results too.
 *   nub_copy/nub_move/nub_drop/nub_data_size/nub_data_read/nub_data_mint/nub_spawn/nub_call
 *                                 the kernel operations on cap slots
 *                                 (docs/machine.md "Caps at run time"): each
 *                                 returns a status, NUB_OK (0) on success. Name
 *                                 root slot [b] as b (1..255), argument cap i as
 *                                 NUB_ARG(i).
 *
 * The same source also builds as a static RISC-V Linux program (define
 * NUB_TARGET_LINUX and link with linux.c) so an independent RISC-V
 * implementation, qemu-riscv64, can run it; see README.md.
 */
#ifndef NUB_SDK_H
#define NUB_SDK_H

#include <stddef.h>
#include <stdint.h>

#include "nub_kernel_ops.h" /* generated from lib/machine/kernel-ops.ts */

#define NUB_STR_(x) #x
#define NUB_STR(x) NUB_STR_(x)

#ifndef NUB_TARGET_LINUX

/*
 * An endpoint is an entry stub in section .text.nub.entry, which the linker
 * script places first in .text. Each stub is `jal ra, fn` then `ecalli 0`
 * (custom-0, funct3 010, imm 0: reply with a0). Both are terminators, so the
 * first stub starts at offset 0 and every later one follows a terminator: each
 * entry is a block start, as the machine requires.
 *
 * The stub is described to `nub pack` by a 16-byte record in the non-loaded
 * section .nub.endpoints (layout: lib/pack/endpoints.ts):
 *   u64 entry address, u8 key, u8 nargs, 6 zero bytes.
 *
 * `fn` must have external linkage (a static function may be inlined away).
 */
#define NUB_ENDPOINT(key, fn, nargs) NUB_ENDPOINT_CAPS(key, fn, nargs, 0)
#define NUB_ENDPOINT_CAPS(key, fn, nargs, ncaps)                               \
  _Static_assert((key) >= 0 && (key) <= 255, "endpoint key is one byte");      \
  _Static_assert((ncaps) >= 0 && (ncaps) <= 255, "at most 255 argument caps"); \
  _Static_assert((nargs) >= 0 && (nargs) <= 4, "at most four arguments");      \
  __asm__(".pushsection .text.nub.entry,\"ax\",@progbits\n"                    \
          "1: jal ra, " #fn "\n"                                               \
          "   .insn i 0x0b, 2, x0, x0, 0\n"                                    \
          ".popsection\n"                                                      \
          ".pushsection .nub.endpoints,\"\",@progbits\n"                       \
          "   .balign 8\n"                                                     \
          "   .quad 1b\n"                                                      \
          "   .byte " NUB_STR(key) ", " NUB_STR(nargs) ", " NUB_STR(ncaps) "\n" \
          "   .zero 5\n"                                                       \
          ".popsection")

/*
 * `ecalli n` with a0..a5 in: a0 out, and a1 in *out1 (when not NULL). The immediate
 * is part of the instruction, so n must be a compile-time constant.
 */
#define nub_ecalli_(n, a, b, c, d, e, f, out1)                                 \
  __extension__({                                                              \
    register uint64_t a0_ __asm__("a0") = (uint64_t)(a);                       \
    register uint64_t a1_ __asm__("a1") = (uint64_t)(b);                       \
    register uint64_t a2_ __asm__("a2") = (uint64_t)(c);                       \
    register uint64_t a3_ __asm__("a3") = (uint64_t)(d);                       \
    register uint64_t a4_ __asm__("a4") = (uint64_t)(e);                       \
    register uint64_t a5_ __asm__("a5") = (uint64_t)(f);                       \
    __asm__ volatile(".insn i 0x0b, 2, x0, x0, %6"                             \
                     : "+r"(a0_), "+r"(a1_)                                    \
                     : "r"(a2_), "r"(a3_), "r"(a4_), "r"(a5_), "i"(n)          \
                     : "memory");                                              \
    if (out1) *(uint64_t *)(out1) = a1_;                                       \
    a0_;                                                                       \
  })

/* Host function n (64..2047) with arguments a..f (0 for unused ones): its result. */
#define nub_host_call(n, a, b, c, d, e, f)                                     \
  __extension__({                                                              \
    _Static_assert((n) >= 64 && (n) <= 2047, "host calls are 64..2047");       \
    nub_ecalli_(n, a, b, c, d, e, f, (uint64_t *)0);                           \
  })

/* Kernel operation n (1..63): the status, and φ8 in *out1 (when not NULL). */
#define nub_kernel_op_(n, a, b, c, d, e, f, out1) nub_ecalli_(n, a, b, c, d, e, f, out1)

/* custom-0 funct3 000: exit TRAP. */
static inline __attribute__((noreturn)) void nub_trap(void) {
  __asm__ volatile(".insn i 0x0b, 0, x0, x0, 0");
  __builtin_unreachable();
}

#else /* NUB_TARGET_LINUX */

/* One table row per endpoint, in section nub_endpoints; linux.c walks it. */
struct nub_linux_endpoint {
  uint64_t key;
  uint64_t nargs;
  uint64_t (*fn)(uint64_t, uint64_t, uint64_t, uint64_t);
};

/* linux.c keeps a table of slots in the process, so the same sources run under qemu. */
uint64_t nub_linux_kernel_op(uint64_t n, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t *out1);
#define nub_kernel_op_(n, a, b, c, d, e, f, out1)                              \
  ((void)(e), (void)(f), nub_linux_kernel_op((n), (uint64_t)(a), (uint64_t)(b), (uint64_t)(c), (uint64_t)(d), (uint64_t *)(out1)))

#define NUB_ENDPOINT_CAPS(key, fn, nargs, ncaps) NUB_ENDPOINT(key, fn, nargs)
#define NUB_ENDPOINT(key, fn, nargs)                                           \
  static const struct nub_linux_endpoint nub_endpoint_##fn                     \
      __attribute__((used, section("nub_endpoints"))) = {                      \
          (key), (nargs),                                                      \
          /* via void(*)(void): the endpoint may take fewer arguments */       \
          (uint64_t(*)(uint64_t, uint64_t, uint64_t, uint64_t))(void (*)(void))(fn)}

#endif /* NUB_TARGET_LINUX */

#define NUB_OK PVM_KSTATUS_OK
#define NUB_ARG(i) (PVM_SLOT_ARG_BASE + (i))

/* Copies the cap in slot `src` into the empty slot `dst`. */
static inline uint64_t nub_copy(uint64_t src, uint64_t dst) { return nub_kernel_op_(PVM_KOP_COPY, src, dst, 0, 0, 0, 0, (uint64_t *)0); }
/* Moves the cap in slot `src` into the empty slot `dst`. */
static inline uint64_t nub_move(uint64_t src, uint64_t dst) { return nub_kernel_op_(PVM_KOP_MOVE, src, dst, 0, 0, 0, 0, (uint64_t *)0); }
/* Empties `slot`. */
static inline uint64_t nub_drop(uint64_t slot) { return nub_kernel_op_(PVM_KOP_DROP, slot, 0, 0, 0, 0, 0, (uint64_t *)0); }
/* The size in bytes (whole pages) of the Data cap in `slot`, in *size. */
static inline uint64_t nub_data_size(uint64_t slot, uint64_t *size) { return nub_kernel_op_(PVM_KOP_DATA_SIZE, slot, 0, 0, 0, 0, 0, size); }
/* Copies bytes [offset, offset + len) of the Data cap in `slot` to `dst`. */
static inline uint64_t nub_data_read(uint64_t slot, uint64_t offset, void *dst, uint64_t len) {
  return nub_kernel_op_(PVM_KOP_READ_DATA, slot, offset, (uintptr_t)dst, len, 0, 0, (uint64_t *)0);
}
/* Puts a new Data cap of `len` bytes from `src` (zero-padded to whole pages) in the empty slot `slot`. */
static inline uint64_t nub_data_mint(uint64_t slot, const void *src, uint64_t len) {
  return nub_kernel_op_(PVM_KOP_MINT_DATA, slot, (uintptr_t)src, len, 0, 0, 0, (uint64_t *)0);
}

/* Puts a new Instance of the Image cap in slot `image` in the empty slot `dst`. */
static inline uint64_t nub_spawn(uint64_t image, uint64_t dst) { return nub_kernel_op_(PVM_KOP_DERIVE_SPAWN, image, dst, 0, 0, 0, 0, (uint64_t *)0); }
/*
 * Calls endpoint [endpoint] of the Instance in `slot` with arguments a, b, c, on this
 * call's gas. `cap` (a slot, or 0 for none) goes in as the child's argument cap 0 and
 * receives its argument slot 0 after it HALTs. NUB_OK: *reply is the child's reply and
 * `slot` holds the Instance as the child left it. PVM_KSTATUS_CHILD_EXIT: *reply is the
 * child's exit (nothing changed). Other statuses: nothing ran.
 */
static inline uint64_t nub_call(uint64_t slot, uint64_t endpoint, uint64_t cap, uint64_t a, uint64_t b, uint64_t c, uint64_t *reply) {
  return nub_kernel_op_(PVM_KOP_CALL, slot, endpoint, cap, a, b, c, reply);
}

/* The compiler may emit calls to these for loops and struct copies; mem.c has them. */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#endif /* NUB_SDK_H */
