// The raw-KVM baseline nub's speed is measured against: the same work as the addon's
// benchmarks (bench/native.ts) done straight on the ioctls, with nothing in between.
//
//   boot: create VM + memory (memfd, MAP_SHARED) + vCPU (+ CPUID) and run a real-mode
//         guest to HLT; median microseconds, then tear everything down (timed apart).
//   io:   a guest looping on `out 0x10, al`; median nanoseconds per exit round trip.
//
// Usage: raw_kvm [--boot-iterations N] [--io-batches N] [--io-exits-per-batch N] [--mem BYTES]
// Prints one JSON object. Built by scripts/build-baseline.mjs.
#define _GNU_SOURCE
#include <errno.h>
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
  if (boot_iterations < 1 || io_batches < 1 || io_exits < 1 || mem_size % 4096) {
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
         "\"io\": {\"batches\": %d, \"exitsPerBatch\": %d, \"nsPerExit\": %llu}}\n",
         mem_size, boot_iterations, median(to_hlt, boot_iterations) / 1000.0,
         median(teardown, boot_iterations) / 1000.0, io_batches, io_exits,
         (unsigned long long)median(per_exit, io_batches));
  return 0;
}
