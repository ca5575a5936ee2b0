// The guest kernel's compiler flags, for scripts/build-guest.mjs (the kernel) and
// scripts/build-engine-harness.mjs (the engine compiled as the guest compiles it).
export const GUEST_CFLAGS = [
  '-std=c11', '-O2', '-g', '-Wall', '-Wextra', '-Werror',
  '-ffreestanding', '-fno-builtin', '-nostdlib', '-fno-stack-protector', '-fno-asynchronous-unwind-tables',
  // Linked far above 2 GiB: position-independent code reaches its data RIP-relative,
  // and the final link is static, so no relocation survives into the image.
  '-fpie', '-fvisibility=hidden',
  '-march=x86-64',
  // Keep GCC from turning the engine's byte loops into memset/memcpy calls (docs/engine.md).
  '-fno-tree-loop-distribute-patterns',
];

// The exception path runs at CPL0, which some hosts emulate without SSE, on the shared
// exception stack: general registers only, no red zone. Everything else runs at CPL3
// (docs/guest.md, "Ring map"), where SSE and the red zone are safe.
export const SUPERVISOR_CFLAGS = ['-mno-red-zone', '-mgeneral-regs-only'];
