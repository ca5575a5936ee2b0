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

/* The kernel enters with sp at argc; pass it on, keeping sp 16-byte aligned. */
__asm__(".globl _start\n"
        "_start:\n"
        "  mv a0, sp\n"
        "  andi sp, sp, -16\n"
        "  call start_c\n");
