// The raw-KVM baseline nub's speed is measured against: the same work as the addon's
// benchmarks (bench/native.ts) done straight on the ioctls, with nothing in between.
//
//   boot: create VM + memory (memfd, MAP_SHARED) + vCPU (+ CPUID) and run a real-mode
//         guest to HLT; median microseconds, then tear everything down (timed apart).
//   io:   a guest looping on `out 0x10, al`; median nanoseconds per exit round trip.
//   modes (with --modes): the same vCPU put straight into 64-bit long mode (page tables,
//         GDT, TSS with an I/O bitmap, sregs) at CPL0 and at CPL3: nanoseconds per guest
//         instruction of a `dec ecx; jnz` loop, and per `out` exit round trip; and the
//         handoff a polling call would cost: two host threads on one cache line, and a
//         host thread with a vCPU spinning at CPL3 (pinned to different cores).
//
// Usage: raw_kvm [--boot-iterations N] [--io-batches N] [--io-exits-per-batch N] [--mem BYTES] [--modes]
// Prints one JSON object. Built by scripts/build-baseline.mjs.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CODE_AT 0x1000

static int kvm;
static size_t run_size;
static struct kvm_cpuid2* cpuid;

static void die(const char* what) {
  fprintf(stderr, "raw_kvm: %s: %s\n", what, strerror(errno));
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t* v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_u64);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct vm {
  int fd, memfd, vcpu;
  uint8_t* mem;
  size_t mem_size;
  struct kvm_run* run;
};

// Everything the addon's Vm.create + register setup does, in the same order.
static void vm_create(struct vm* vm, size_t mem_size, const uint8_t* code, size_t code_len) {
  vm->mem_size = mem_size;
  if ((vm->fd = ioctl(kvm, KVM_CREATE_VM, 0)) < 0) die("KVM_CREATE_VM");
  if (ioctl(vm->fd, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0) die("KVM_SET_TSS_ADDR");
  if ((vm->memfd = memfd_create("raw-kvm-memory", MFD_CLOEXEC)) < 0) die("memfd_create");
  if (ftruncate(vm->memfd, (off_t)mem_size) < 0) die("ftruncate");
  vm->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->memfd, 0);
  if (vm->mem == MAP_FAILED) die("mmap memory");
  struct kvm_userspace_memory_region region = {
      .slot = 0, .guest_phys_addr = 0, .memory_size = mem_size, .userspace_addr = (uint64_t)vm->mem};
  if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");
  if ((vm->vcpu = ioctl(vm->fd, KVM_CREATE_VCPU, 0)) < 0) die("KVM_CREATE_VCPU");
  vm->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu, 0);
  if (vm->run == MAP_FAILED) die("mmap kvm_run");
  if (ioctl(vm->vcpu, KVM_SET_CPUID2, cpuid) < 0) die("KVM_SET_CPUID2");

  memcpy(vm->mem + CODE_AT, code, code_len);
  struct kvm_sregs sregs;
  if (ioctl(vm->vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  if (ioctl(vm->vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
  struct kvm_regs regs;
  if (ioctl(vm->vcpu, KVM_GET_REGS, &regs) < 0) die("KVM_GET_REGS");
  regs.rip = CODE_AT;
  regs.rflags = 2;
  if (ioctl(vm->vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
}

static void vm_destroy(struct vm* vm) {
  munmap(vm->run, run_size);
  close(vm->vcpu);
  close(vm->fd);
  munmap(vm->mem, vm->mem_size);
  close(vm->memfd);
}

static unsigned vm_run(struct vm* vm) {
  if (ioctl(vm->vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
  return vm->run->exit_reason;
}


// ---- 64-bit long mode at CPL0 or CPL3 (the layout is this file's own) ----
#define LM_GDT 0x1000
#define LM_TSS 0x1800
#define LM_PML4 0x3000
#define LM_PDPT 0x4000
#define LM_PD 0x5000
#define LM_CODE 0x10000
#define LM_SHARED 0x20000 /* the polling guest's request (u32) and reply (u32), one cache line */
#define LM_PORT 0x10

// Guest programs, assembled by gcc into this binary and copied to LM_CODE.
//   loop:  1: dec ecx; jnz 1b; out; jmp 1b         (the host sets RCX before each run)
//   spin:  wait for request != reply; request == ~0 ends with an `out`; else reply = request
extern const uint8_t lm_loop[], lm_loop_end[], lm_spin[], lm_spin_end[];
__asm__(".pushsection .rodata\n"
        "lm_loop: 1: dec %ecx\n jnz 1b\n out %al, $0x10\n jmp 1b\n lm_loop_end:\n"
        "lm_spin: 1: mov 0x20000, %eax\n cmp 0x20004, %eax\n je 1b\n cmp $-1, %eax\n je 2f\n"
        " mov %eax, 0x20004\n jmp 1b\n 2: out %al, $0x10\n jmp 1b\n lm_spin_end:\n"
        ".popsection\n");

static struct kvm_segment lm_segment(uint16_t selector, uint8_t type, int dpl, int code) {
  struct kvm_segment s = {.base = 0, .limit = 0xffffffff, .selector = selector, .type = type, .present = 1,
                          .dpl = (uint8_t)dpl, .db = (uint8_t)!code, .s = 1, .l = (uint8_t)code, .g = 1};
  return s;
}

// Identity-maps the first 2 MiB (one large page, user-accessible, accessed/dirty preset),
// writes a GDT with CPL0 and CPL3 segments and a TSS whose I/O bitmap allows LM_PORT only,
// and enters at LM_CODE at the given privilege level.
static void vm_long_mode(struct vm* vm, int cpl, const uint8_t* code, size_t code_len) {
  uint64_t* gdt = (uint64_t*)(vm->mem + LM_GDT);
  gdt[1] = 0x00af9b000000ffffull;  // 0x08 code, DPL0
  gdt[2] = 0x00cf93000000ffffull;  // 0x10 data, DPL0
  gdt[3] = 0x0000890000000000ull | ((uint64_t)LM_TSS << 16) | (104 + 8);  // 0x18 TSS (64-bit, two slots)
  gdt[5] = 0x00cff3000000ffffull;  // 0x28 data, DPL3
  gdt[6] = 0x00affb000000ffffull;  // 0x30 code, DPL3
  uint8_t* tss = vm->mem + LM_TSS;
  *(uint16_t*)(tss + 0x66) = 104;  // I/O bitmap right after the TSS
  memset(tss + 104, 0xff, 9);
  tss[104 + LM_PORT / 8] &= (uint8_t) ~(1u << (LM_PORT % 8));
  uint64_t* pml4 = (uint64_t*)(vm->mem + LM_PML4);
  uint64_t* pdpt = (uint64_t*)(vm->mem + LM_PDPT);
  uint64_t* pd = (uint64_t*)(vm->mem + LM_PD);
  pml4[0] = LM_PDPT | 0x27;  // present, writable, user, accessed
  pdpt[0] = LM_PD | 0x27;
  pd[0] = 0x00 | 0xe7;  // 2 MiB page: present, writable, user, accessed, dirty, large
  memcpy(vm->mem + LM_CODE, code, code_len);

  struct kvm_sregs sregs;
  if (ioctl(vm->vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
  sregs.cs = lm_segment(cpl ? 0x33 : 0x08, 0xb, cpl, 1);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = lm_segment(cpl ? 0x2b : 0x10, 0x3, cpl, 0);
  sregs.tr = (struct kvm_segment){.base = LM_TSS, .limit = 104 + 8, .selector = 0x18, .type = 0xb, .present = 1};
  sregs.gdt.base = LM_GDT;
  sregs.gdt.limit = 7 * 8 - 1;
  sregs.cr0 = 0x80050033;  // PE MP ET NE WP AM PG
  sregs.cr3 = LM_PML4;
  sregs.cr4 = 0x620;       // PAE OSFXSR OSXMMEXCPT
  sregs.efer = 0x500;      // LME LMA
  if (ioctl(vm->vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS (long mode)");
  struct kvm_regs regs = {.rip = LM_CODE, .rflags = 2, .rsp = 0x1ff000};
  if (ioctl(vm->vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS (long mode)");
}

static void expect_port_exit(struct vm* vm, const char* what) {
  if (vm_run(vm) != KVM_EXIT_IO || vm->run->io.port != LM_PORT) {
    fprintf(stderr, "raw_kvm: %s: exit %u instead of `out 0x%x`\n", what, vm->run->exit_reason, LM_PORT);
    exit(1);
  }
}

// One run of `iterations` loop turns (2 instructions each) plus its exit, in nanoseconds.
static uint64_t lm_loop_run(struct vm* vm, uint64_t iterations) {
  struct kvm_regs regs;
  if (ioctl(vm->vcpu, KVM_GET_REGS, &regs) < 0) die("KVM_GET_REGS");
  regs.rcx = iterations;
  if (ioctl(vm->vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
  uint64_t t0 = now_ns();
  expect_port_exit(vm, "loop guest");
  return now_ns() - t0;
}

struct mode_figures {
  double ns_per_insn, ns_per_exit;
};

// Per-instruction cost from the difference of a long and a short run (so the exit cancels out).
static struct mode_figures measure_mode(size_t mem_size, int cpl, uint64_t iterations, int exits) {
  struct vm vm;
  vm_create(&vm, mem_size, lm_loop, 0);
  vm_long_mode(&vm, cpl, lm_loop, (size_t)(lm_loop_end - lm_loop));
  lm_loop_run(&vm, 1);  // warm up: first touches, shadow tables
  uint64_t shorts[5], longs[5];
  for (int i = 0; i < 5; i++) {
    shorts[i] = lm_loop_run(&vm, 1);
    longs[i] = lm_loop_run(&vm, iterations);
  }
  double per_insn = ((double)median(longs, 5) - (double)median(shorts, 5)) / (2.0 * (double)(iterations - 1));
  // Exit round trips: RCX = 1 makes each run one loop turn and one `out`.
  uint64_t* per_exit = calloc((size_t)exits, sizeof *per_exit);
  for (int i = 0; i < exits; i++) per_exit[i] = lm_loop_run(&vm, 1);
  double exit_ns = (double)median(per_exit, exits);
  free(per_exit);
  vm_destroy(&vm);
  return (struct mode_figures){per_insn, exit_ns};
}

// ---- the polling handoff: request and reply on one cache line ----
static void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

struct handoff {
  _Alignas(64) _Atomic uint32_t request, reply;
};

static void* echo_thread(void* arg) {
  struct handoff* h = arg;
  pin_to(1);
  for (uint32_t seen = 0;;) {
    uint32_t r;
    while ((r = atomic_load_explicit(&h->request, memory_order_acquire)) == seen) __builtin_ia32_pause();
    if (r == UINT32_MAX) return NULL;
    atomic_store_explicit(&h->reply, r, memory_order_release);
    seen = r;
  }
}

static double handoff_rounds(_Atomic uint32_t* request, _Atomic uint32_t* reply, int rounds) {
  uint64_t t0 = now_ns();
  for (uint32_t i = 1; i <= (uint32_t)rounds; i++) {
    atomic_store_explicit(request, i, memory_order_release);
    while (atomic_load_explicit(reply, memory_order_acquire) != i) __builtin_ia32_pause();
  }
  return (double)(now_ns() - t0) / rounds;
}

static double measure_thread_handoff(int rounds) {
  static struct handoff h;
  pthread_t t;
  pin_to(0);
  pthread_create(&t, NULL, echo_thread, &h);
  double ns = handoff_rounds(&h.request, &h.reply, rounds);
  atomic_store(&h.request, UINT32_MAX);
  pthread_join(t, NULL);
  return ns;
}

static void* vcpu_thread(void* arg) {
  struct vm* vm = arg;
  pin_to(1);
  expect_port_exit(vm, "spinning guest");  // returns when the host writes ~0
  return NULL;
}

static double measure_vcpu_handoff(size_t mem_size, int rounds) {
  struct vm vm;
  vm_create(&vm, mem_size, lm_spin, 0);
  vm_long_mode(&vm, 3, lm_spin, (size_t)(lm_spin_end - lm_spin));
  _Atomic uint32_t* request = (_Atomic uint32_t*)(vm.mem + LM_SHARED);
  _Atomic uint32_t* reply = (_Atomic uint32_t*)(vm.mem + LM_SHARED + 4);
  pthread_t t;
  pin_to(0);
  pthread_create(&t, NULL, vcpu_thread, &vm);
  handoff_rounds(request, reply, 1000);  // warm up: the guest is running and spinning
  atomic_store(request, 0);
  atomic_store(reply, 0);
  double ns = handoff_rounds(request, reply, rounds);
  atomic_store(request, UINT32_MAX);
  pthread_join(t, NULL);
  vm_destroy(&vm);
  return ns;
}

static void fetch_cpuid(void) {
  for (unsigned n = 64;; n *= 2) {
    cpuid = calloc(1, sizeof *cpuid + n * sizeof(struct kvm_cpuid_entry2));
    cpuid->nent = n;
    if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) == 0) return;
    if (errno != E2BIG || n > 4096) die("KVM_GET_SUPPORTED_CPUID");
    free(cpuid);
  }
}

static long arg(int argc, char** argv, const char* name, long fallback) {
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return strtol(argv[i + 1], NULL, 0);
  return fallback;
}

int main(int argc, char** argv) {
  int boot_iterations = (int)arg(argc, argv, "--boot-iterations", 200);
  int io_batches = (int)arg(argc, argv, "--io-batches", 21);
  int io_exits = (int)arg(argc, argv, "--io-exits-per-batch", 20000);
  size_t mem_size = (size_t)arg(argc, argv, "--mem", 16 << 20);
  int modes = 0;
  for (int i = 1; i < argc; i++) modes |= strcmp(argv[i], "--modes") == 0;
  if (boot_iterations < 1 || io_batches < 1 || io_exits < 1 || mem_size % 4096 || mem_size < (2u << 20)) {
    fprintf(stderr, "raw_kvm: bad arguments\n");
    return 2;
  }

  if ((kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0) die("open /dev/kvm");
  if (ioctl(kvm, KVM_GET_API_VERSION, 0) != 12) die("KVM_GET_API_VERSION");
  run_size = (size_t)ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  fetch_cpuid();

  static const uint8_t hlt[] = {0xf4};                          // hlt
  static const uint8_t out_loop[] = {0xe6, 0x10, 0xeb, 0xfc};   // 1: out 0x10, al; jmp 1b

  uint64_t* to_hlt = calloc((size_t)boot_iterations, sizeof *to_hlt);
  uint64_t* teardown = calloc((size_t)boot_iterations, sizeof *teardown);
  for (int i = 0; i < boot_iterations; i++) {
    struct vm vm;
    uint64_t t0 = now_ns();
    vm_create(&vm, mem_size, hlt, sizeof hlt);
    if (vm_run(&vm) != KVM_EXIT_HLT) die("boot guest did not halt");
    uint64_t t1 = now_ns();
    vm_destroy(&vm);
    teardown[i] = now_ns() - t1;
    to_hlt[i] = t1 - t0;
  }

  struct vm vm;
  vm_create(&vm, mem_size, out_loop, sizeof out_loop);
  for (int i = 0; i < 1000; i++) vm_run(&vm);  // warm up
  uint64_t* per_exit = calloc((size_t)io_batches, sizeof *per_exit);
  for (int b = 0; b < io_batches; b++) {
    uint64_t t0 = now_ns();
    for (int i = 0; i < io_exits; i++)
      if (vm_run(&vm) != KVM_EXIT_IO || vm.run->io.port != 0x10) die("io guest did not exit on port 0x10");
    per_exit[b] = (now_ns() - t0) / (uint64_t)io_exits;
  }
  vm_destroy(&vm);

  printf("{\"memorySize\": %zu, \"boot\": {\"iterations\": %d, \"createToHltUs\": %.1f, \"teardownUs\": %.1f}, "
         "\"io\": {\"batches\": %d, \"exitsPerBatch\": %d, \"nsPerExit\": %llu}",
         mem_size, boot_iterations, median(to_hlt, boot_iterations) / 1000.0,
         median(teardown, boot_iterations) / 1000.0, io_batches, io_exits,
         (unsigned long long)median(per_exit, io_batches));
  if (modes) {
    // CPL0 is emulated on some hosts (~0.7 µs per instruction): fewer turns there.
    struct mode_figures cpl0 = measure_mode(mem_size, 0, 20000, 201);
    struct mode_figures cpl3 = measure_mode(mem_size, 3, 50000000, 201);
    double threads = measure_thread_handoff(200000);
    double vcpu = measure_vcpu_handoff(mem_size, 200000);
    printf(", \"modes\": {\"cpl0\": {\"nsPerInsn\": %.3f, \"nsPerExit\": %.0f}, \"cpl3\": {\"nsPerInsn\": %.3f, \"nsPerExit\": %.0f}, "
           "\"handoff\": {\"threadsNs\": %.0f, \"vcpuNs\": %.0f}}",
           cpl0.ns_per_insn, cpl0.ns_per_exit, cpl3.ns_per_insn, cpl3.ns_per_exit, threads, vcpu);
  }
  printf("}\n");
  return 0;
}
