/*
 * Start-up code for the Linux build of an example (NUB_TARGET_LINUX), used to
 * cross-check nub's interpreter against qemu-riscv64:
 *
 *   qemu-riscv64 ./prog KEY [ARG]...    prints the endpoint's result (φ7) as an
 *                                       unsigned decimal line, exit status 0
 *
 * No libc: arguments come from the initial stack, output goes through raw
 * `ecall` system calls. Exit status 2 means bad usage or an unknown endpoint.
 */
#include "nub.h"

extern const struct nub_linux_endpoint __start_nub_endpoints[], __stop_nub_endpoints[];

enum { SYS_write = 64, SYS_exit = 93 };

static long sys3(long nr, long a, long b, long c) {
  register long a0 __asm__("a0") = a;
  register long a1 __asm__("a1") = b;
  register long a2 __asm__("a2") = c;
  register long a7 __asm__("a7") = nr;
  __asm__ volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a7) : "memory");
  return a0;
}

static __attribute__((noreturn)) void exit_with(int status) {
  sys3(SYS_exit, status, 0, 0);
  __builtin_unreachable();
}

/* Parses an unsigned decimal; returns 0 on anything else. */
static int parse_u64(const char *s, uint64_t *out) {
  uint64_t v = 0;
  if (*s == 0) return 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return 0;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = v;
  return 1;
}

static void print_u64(uint64_t v) {
  char buf[21];
  int i = sizeof buf;
  buf[--i] = '\n';
  do {
    buf[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  sys3(SYS_write, 1, (long)&buf[i], (long)(sizeof buf - (size_t)i));
}

__attribute__((noreturn, used)) static void start_c(long *sp) {
  long argc = sp[0];
  char **argv = (char **)&sp[1];
  uint64_t key, args[4] = {0, 0, 0, 0};
  if (argc < 2 || argc > 6 || !parse_u64(argv[1], &key)) exit_with(2);
  for (long i = 2; i < argc; i++) {
    if (!parse_u64(argv[i], &args[i - 2])) exit_with(2);
  }
  for (const struct nub_linux_endpoint *ep = __start_nub_endpoints; ep < __stop_nub_endpoints; ep++) {
    if (ep->key == key) {
      print_u64(ep->fn(args[0], args[1], args[2], args[3]));
      exit_with(0);
    }
  }
  exit_with(2);
}

/*
 * The kernel operations over a table of slots in this process: enough for the
 * examples' own use (no pinned slots, no argument caps under qemu; a Data cap is
 * bytes in `arena`). The statuses are the machine's.
 */
enum { SLOT_REFS = PVM_SLOT_SLOT_REFS, PAGE = 4096, ARENA = 4 << 20 };
static struct { const uint8_t *bytes; uint64_t size; int full; } slots[SLOT_REFS];
static uint8_t arena[ARENA];
static uint64_t arena_used;

uint64_t nub_linux_kernel_op(uint64_t n, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t *out1) {
  if (a == 0 || a >= SLOT_REFS) return PVM_KSTATUS_BAD_SLOT;
  switch (n) {
  case PVM_KOP_COPY:
  case PVM_KOP_MOVE:
    if (b == 0 || b >= SLOT_REFS) return PVM_KSTATUS_BAD_SLOT;
    if (!slots[a].full) return PVM_KSTATUS_EMPTY;
    if (slots[b].full) return PVM_KSTATUS_OCCUPIED;
    slots[b] = slots[a];
    if (n == PVM_KOP_MOVE) slots[a].full = 0;
    return PVM_KSTATUS_OK;
  case PVM_KOP_DROP:
    if (!slots[a].full) return PVM_KSTATUS_EMPTY;
    slots[a].full = 0;
    return PVM_KSTATUS_OK;
  case PVM_KOP_DATA_SIZE:
    if (!slots[a].full) return PVM_KSTATUS_EMPTY;
    *out1 = slots[a].size;
    return PVM_KSTATUS_OK;
  case PVM_KOP_READ_DATA:
    if (!slots[a].full) return PVM_KSTATUS_EMPTY;
    if (b > slots[a].size || d > slots[a].size - b) return PVM_KSTATUS_OUT_OF_RANGE;
    memcpy((void *)(uintptr_t)c, slots[a].bytes + b, d);
    return PVM_KSTATUS_OK;
  case PVM_KOP_MINT_DATA: {
    if (slots[a].full) return PVM_KSTATUS_OCCUPIED;
    uint64_t size = (c + PAGE - 1) / PAGE * PAGE;
    if (size > ARENA - arena_used) return PVM_KSTATUS_BAD_MEMORY;
    uint8_t *room = arena + arena_used;
    arena_used += size;
    memcpy(room, (const void *)(uintptr_t)b, c);
    memset(room + c, 0, size - c);
    slots[a].bytes = room, slots[a].size = size, slots[a].full = 1;
    return PVM_KSTATUS_OK;
  }
  case PVM_KOP_DERIVE_SPAWN:
    return PVM_KSTATUS_NOT_LOADED; /* a Linux process has no other images */
  case PVM_KOP_CALL:
    return PVM_KSTATUS_WRONG_KIND; /* so no Instance is ever in a slot */
  default:
    exit_with(3); /* no such operation: the machine's PANIC */
  }
}

/* The kernel enters with sp at argc; pass it on, keeping sp 16-byte aligned. */
__asm__(".globl _start\n"
        "_start:\n"
        "  mv a0, sp\n"
        "  andi sp, sp, -16\n"
        "  call start_c\n");
