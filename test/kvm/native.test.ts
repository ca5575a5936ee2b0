// The native addon against the real /dev/kvm, with tiny real-mode guests as byte arrays.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { binding } from '../../lib/native/binding.js';
import { decodeExit, KVM_EXIT, KVM_RUN, kvmInfo, maxMemorySize, Vm } from '../../lib/native/index.js';
import { describeKvm } from './kvm-available.js';

const MEMORY_SIZE = 1 << 20;
const CODE_AT = 0x1000;

/** Guests, each a real-mode program loaded at CODE_AT. */
const GUEST = {
  outThenHlt: [
    0xb0, 0x42, //       mov al, 0x42
    0xe6, 0x10, //       out 0x10, al
    0xb8, 0x34, 0x12, // mov ax, 0x1234
    0xe7, 0x11, //       out 0x11, ax
    0xf4, //             hlt
  ],
  inThenStore: [
    0xe4, 0x20, //       in al, 0x20
    0xa2, 0x00, 0x05, // mov [0x500], al
    0xf4, //             hlt
  ],
  writePage5: [
    0xa2, 0x00, 0x50, // mov [0x5000], al
    0xf4, //             hlt
  ],
  spin: [
    0xeb, 0xfe, //       jmp $
  ],
};

/** Loads `code` at CODE_AT and points the vCPU at it in real mode (CS base 0). */
function load(vm: Vm, code: number[]): void {
  new Uint8Array(vm.memory).set(code, CODE_AT);
  const sregs = vm.getSregs();
  sregs.cs = { ...sregs.cs, base: 0n, selector: 0 };
  vm.setSregs(sregs);
  vm.setRegs({ ...vm.getRegs(), rip: BigInt(CODE_AT), rflags: 2n });
}

function withVm<T>(fn: (vm: Vm) => T, opts: { dirtyLog?: boolean } = {}): T {
  const vm = Vm.create({ memorySize: MEMORY_SIZE, ...opts });
  try {
    return fn(vm);
  } finally {
    vm.close();
  }
}

const openFds = () => readdirSync('/proc/self/fd').length;
const guestMappings = () => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('nub-guest-memory')).length;
const elapsedMs = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

describeKvm('native addon', function () {
  this.timeout(30_000);

  it('reports KVM API 12 and the capabilities nub relies on', () => {
    const info = kvmInfo();
    assert.equal(info.apiVersion, 12);
    for (const cap of ['userMemory', 'immediateExit', 'extCpuid', 'vcpuEvents']) assert.ok(info.capabilities[cap]! > 0, cap);
    assert.ok(info.vcpuMmapSize >= binding().kvmRunLayout.size!);
  });

  it('declares kvm_run exactly as the compiler lays it out', () => {
    const native = binding().kvmRunLayout;
    for (const [field, offset] of Object.entries(KVM_RUN)) assert.equal(offset, native[field], field);
    for (const [name, value] of Object.entries(KVM_EXIT)) assert.equal(value, native[`KVM_EXIT_${name}`], name);
  });

  it('runs a guest that writes to ports and halts', () =>
    withVm((vm) => {
      load(vm, GUEST.outThenHlt);
      const first = decodeExit(vm, vm.run());
      assert.ok(first.kind === 'io');
      assert.deepEqual([first.direction, first.port, first.size, first.count, first.value], ['out', 0x10, 1, 1, 0x42]);
      const second = decodeExit(vm, vm.run());
      assert.ok(second.kind === 'io');
      assert.deepEqual([second.port, second.size, second.value], [0x11, 2, 0x1234]);
      assert.deepEqual(decodeExit(vm, vm.run()), { kind: 'hlt' });
      assert.equal(vm.getRegs().rip, BigInt(CODE_AT + GUEST.outThenHlt.length));
    }));

  it('answers an in through runState and sees the guest store in memory', () =>
    withVm((vm) => {
      load(vm, GUEST.inThenStore);
      const exit = decodeExit(vm, vm.run());
      assert.ok(exit.kind === 'io' && exit.direction === 'in' && exit.port === 0x20);
      exit.data[0] = 0x99;
      assert.deepEqual(decodeExit(vm, vm.run()), { kind: 'hlt' });
      assert.equal(new Uint8Array(vm.memory)[0x500], 0x99);
    }));

  it('round-trips regs, sregs and FPU state', () =>
    withVm((vm) => {
      const regs = vm.getRegs();
      const names = Object.keys(regs) as (keyof typeof regs)[];
      names.forEach((name, i) => (regs[name] = 0x1111_0000_0000_0000n + BigInt(i) * 0x1001n));
      regs.rflags = 0x202n; // bit 1 is reserved-one; IF set
      vm.setRegs(regs);
      assert.deepEqual(vm.getRegs(), regs);

      const sregs = vm.getSregs();
      sregs.gdt = { base: 0x7000n, limit: 0x27 };
      sregs.idt = { base: 0x8000n, limit: 0xfff };
      sregs.ds = { ...sregs.ds, base: 0x12340n, selector: 0x1234 };
      vm.setSregs(sregs);
      assert.deepEqual(vm.getSregs(), sregs);

      const fpu = vm.getFpu();
      fpu.xmm = Uint8Array.from({ length: 256 }, (_, i) => (i * 7) & 0xff);
      fpu.fcw = fpu.fcw === 0x27f ? 0x37f : 0x27f; // x87 precision control: double <-> extended
      vm.setFpu(fpu);
      const back = vm.getFpu();
      assert.deepEqual([...back.xmm], [...fpu.xmm]);
      assert.equal(back.fcw, fpu.fcw);
      // (KVM_GET_FPU never reports mxcsr: it is always 0 there, so it cannot be compared.)
    }));

  it('rejects malformed register objects, naming the field', () =>
    withVm((vm) => {
      const regs = vm.getRegs();
      assert.throws(() => vm.setRegs({ ...regs, rip: -1n }), { code: 'BadArgument', path: 'regs.rip' });
      assert.throws(() => vm.setRegs({ ...regs, rax: 2n ** 64n }), { code: 'BadArgument', path: 'regs.rax' });
      assert.throws(() => vm.setRegs({ ...regs, r9: 'x' as unknown as bigint }), { code: 'BadArgument', path: 'regs.r9' });
      assert.throws(() => vm.setRegs(null as never), { code: 'BadArgument', path: 'regs' });
      const sregs = vm.getSregs();
      assert.throws(() => vm.setSregs({ ...sregs, cs: { ...sregs.cs, selector: 0x10000 } }), {
        code: 'BadArgument',
        path: 'sregs.cs.selector',
      });
      assert.throws(() => vm.setFpu({ ...vm.getFpu(), xmm: new Uint8Array(3) }), { code: 'BadArgument', path: 'fpu.xmm' });
    }));

  it('rejects bad memory sizes and options', () => {
    for (const memorySize of [0, -4096, 4097, 1.5, Number.NaN, maxMemorySize() + 4096, '4096' as unknown as number]) {
      assert.throws(() => Vm.create({ memorySize }), { code: 'BadArgument', path: 'opts.memorySize' }, String(memorySize));
    }
    assert.throws(() => Vm.create({ memorySize: 4096, dirtyLog: 1 as unknown as boolean }), { code: 'BadArgument' });
  });

  it('says what to do when the device is missing, and types a non-KVM file', () => {
    assert.throws(() => kvmInfo('/nonexistent/kvm'), (err: NodeJS.ErrnoException & { ioctl?: string }) => {
      assert.equal(err.name, 'NubError');
      assert.deepEqual([err.code, err.errno, err.syscall], ['ENOENT', 2, 'open']);
      assert.match(err.message, /modprobe kvm_intel/);
      return true;
    });
    assert.throws(() => Vm.create({ memorySize: 4096, kvmPath: '/nonexistent/kvm' }), { code: 'ENOENT' });
    assert.throws(() => kvmInfo('/dev/null'), { code: 'ENOTTY', syscall: 'ioctl', ioctl: 'KVM_GET_API_VERSION' });
  });

  it('closes idempotently and then refuses every call with Closed', async () => {
    const vm = Vm.create({ memorySize: MEMORY_SIZE });
    const memory = vm.memory;
    vm.close();
    vm.close();
    assert.equal(vm.closed, true);
    assert.equal(memory.byteLength, 0, 'memory is detached');
    assert.equal(vm.runState.byteLength, 0, 'runState is detached');
    for (const call of [() => vm.run(), () => vm.getRegs(), () => vm.setRegs({} as never), () => vm.getSregs(), () => vm.getFpu(), () => vm.kick(), () => vm.getDirtyLog(), () => decodeExit(vm, KVM_EXIT.HLT)]) {
      assert.throws(call, { code: 'Closed' });
    }
    await assert.rejects(async () => vm.runAsync(), { code: 'Closed' });
  });

  it('stops a spinning guest at run(timeoutMs), and the guest can carry on', () =>
    withVm((vm) => {
      load(vm, GUEST.spin);
      const start = process.hrtime.bigint();
      const reason = vm.run(10);
      const took = elapsedMs(start);
      assert.deepEqual(decodeExit(vm, reason), { kind: 'interrupted' });
      assert.ok(took >= 9 && took < 60, `took ${took} ms`);
      assert.equal(vm.getRegs().rip, BigInt(CODE_AT), 'still at jmp $');
      // The kick was consumed by that run: the next one runs the guest again.
      new Uint8Array(vm.memory)[CODE_AT] = 0xf4; // hlt
      assert.deepEqual(decodeExit(vm, vm.run(1000)), { kind: 'hlt' });
    }));

  it('makes the next run return at once after a kick between runs', () =>
    withVm((vm) => {
      load(vm, GUEST.spin);
      vm.kick();
      const start = process.hrtime.bigint();
      assert.deepEqual(decodeExit(vm, vm.run(5000)), { kind: 'interrupted' });
      assert.ok(elapsedMs(start) < 100);
    }));

  it('runs off the JS thread: timeout, kick, Busy while in flight, Closed on close', async () => {
    const vm = Vm.create({ memorySize: MEMORY_SIZE });
    try {
      load(vm, GUEST.spin);
      let start = process.hrtime.bigint();
      assert.equal(await vm.runAsync(10), KVM_EXIT.INTR);
      assert.ok(elapsedMs(start) < 60);

      const inFlight = vm.runAsync();
      assert.throws(() => vm.getRegs(), { code: 'Busy' });
      assert.throws(() => vm.run(), { code: 'Busy' });
      await assert.rejects(vm.runAsync(), { code: 'Busy' });
      start = process.hrtime.bigint();
      setTimeout(() => vm.kick(), 5);
      assert.equal(await inFlight, KVM_EXIT.INTR);
      assert.ok(elapsedMs(start) < 100);

      const beforeClose = vm.runAsync();
      setTimeout(() => vm.close(), 5);
      await assert.rejects(beforeClose, { code: 'Closed' });
    } finally {
      vm.close();
    }
  });

  it('runs to HLT asynchronously', async () => {
    const vm = Vm.create({ memorySize: MEMORY_SIZE });
    try {
      load(vm, GUEST.outThenHlt);
      const reasons = [await vm.runAsync(), await vm.runAsync(), await vm.runAsync()];
      assert.deepEqual(reasons, [KVM_EXIT.IO, KVM_EXIT.IO, KVM_EXIT.HLT]);
    } finally {
      vm.close();
    }
  });

  it('logs the pages a guest dirties', () => {
    withVm(
      (vm) => {
        load(vm, GUEST.writePage5);
        vm.getDirtyLog(); // start from a clean log
        assert.deepEqual(decodeExit(vm, vm.run()), { kind: 'hlt' });
        const log = vm.getDirtyLog();
        assert.equal(log.length, MEMORY_SIZE / 4096 / 8);
        assert.equal(log[0]! & (1 << 5), 1 << 5, 'page 5 is dirty');
        assert.equal(vm.getDirtyLog().every((byte) => byte === 0), true, 'reading the log clears it');
      },
      { dirtyLog: true },
    );
    withVm((vm) => assert.throws(() => vm.getDirtyLog(), { code: 'DirtyLogDisabled' }));
  });

  it('keeps guest memory readable after the VM is garbage-collected unclosed', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    await nextTurn(); // settle VMs closed by earlier tests
    const fdsBefore = openFds();
    const mappingsBefore = guestMappings();
    let memory: ArrayBuffer | undefined = (() => {
      const vm = Vm.create({ memorySize: MEMORY_SIZE });
      new Uint8Array(vm.memory)[7] = 0x5a;
      return vm.memory;
    })();
    for (let i = 0; i < 10 && openFds() > fdsBefore; i++) {
      gc();
      await nextTurn();
    }
    assert.equal(openFds(), fdsBefore, 'the finalizer closed the VM');
    assert.equal(new Uint8Array(memory)[7], 0x5a, 'the ArrayBuffer still owns its mapping');
    memory = undefined;
    for (let i = 0; i < 10 && guestMappings() > mappingsBefore; i++) {
      gc();
      await nextTurn();
    }
    assert.equal(guestMappings(), mappingsBefore, 'the last reference unmapped it');
  });

  it('creates, runs and closes 200 VMs without leaking fds, mappings or RSS', async () => {
    const cycle = async (i: number) => {
      const vm = Vm.create({ memorySize: MEMORY_SIZE });
      load(vm, GUEST.outThenHlt);
      // Alternate the two run paths so both set up and tear down their resources.
      if (i % 2 === 0) while (vm.run() !== KVM_EXIT.HLT);
      else while ((await vm.runAsync()) !== KVM_EXIT.HLT);
      vm.close();
      await nextTurn(); // let ArrayBuffer finalizers run
    };
    for (let i = 0; i < 20; i++) await cycle(i); // warm up allocator and JIT
    const fds = openFds();
    const mappings = guestMappings();
    const rss = process.memoryUsage().rss;
    for (let i = 0; i < 200; i++) await cycle(i);
    await nextTurn();
    assert.equal(openFds(), fds);
    assert.equal(guestMappings(), mappings);
    const growth = process.memoryUsage().rss - rss;
    assert.ok(growth < 8 * 1024 * 1024, `RSS grew by ${(growth / 1048576).toFixed(1)} MiB`);
  });
});
