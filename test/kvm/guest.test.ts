// The real guest kernel (guest/build/kernel.bin) under /dev/kvm: boot, mailbox calls,
// the cap directory filled through the guest, faults, and boot/close cycles.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  BOOT_INFO_LAYOUT_VERSION, BOOT_INFO_MAGIC, DIRECTORY_LAYOUT_ID, Layout, MailboxOp, SelftestFault,
} from '../../lib/abi/guest-abi.js';
import { NubError } from '../../lib/errors.js';
import { loadKernelImage } from '../../lib/guest/boot.js';
import { GuestVm, MAX_PUT_BYTES } from '../../lib/guest/guest-vm.js';
import { prepareInGuest } from '../../lib/guest/invoke.js';
import { CapSelector } from '../../lib/caps/index.js';
import { DATA_BASE } from '../../lib/machine/abi.js';
import { SeededRandom } from '../unit/seeded-random.js';
import { describeKvm } from './kvm-available.js';
import { expectNubError } from '../support/nub-error.js';

const L = Layout.values;
const VA_BASE = Number(L.GUEST_VA_BASE);
const MEMORY_SIZE = 16 * 1024 * 1024;

const openFds = () => readdirSync('/proc/self/fd').length;

function randomBytes(rng: SeededRandom, length: number): Uint8Array {
  return Uint8Array.from({ length }, () => rng.below(256));
}


describeKvm('guest kernel', function () {
  this.timeout(60_000);

  it('boots and publishes its boot info', () => {
    using guest = GuestVm.boot({ memorySize: MEMORY_SIZE });
    const info = guest.bootInfo;
    assert.equal(info.magic, BOOT_INFO_MAGIC);
    assert.equal(info.layout_version, BOOT_INFO_LAYOUT_VERSION);
    assert.equal(info.directory_layout, DIRECTORY_LAYOUT_ID);
    assert.equal(info.guest_va_base, L.GUEST_VA_BASE);
    assert.equal(info.memory_size, BigInt(MEMORY_SIZE));
    assert.equal(info.page_table_root, BigInt(L.PAGE_TABLES_GPA), 'the guest reports the CR3 the host set');
    assert.equal(info.heap_start, BigInt(loadKernelImage().stackTopVa), 'the heap starts above the stack');
    assert.equal(info.heap_end, BigInt(VA_BASE + MEMORY_SIZE - L.CODE_ARENA_SIZE), 'the code arena is not heap');
    assert.ok(info.directory_va >= BigInt(VA_BASE + L.KERNEL_GPA) && info.directory_va < info.heap_start);
    assert.ok(guest.bootTimeMs > 0);
    assert.equal(guest.reader.len(), 0);
    assert.ok(guest.reader.isEmpty());
  });

  it('answers pings, one guest entry each', () => {
    using guest = GuestVm.boot({ memorySize: MEMORY_SIZE });
    for (let i = 0; i < 1000; i++) guest.ping();
    assert.equal(guest.reader.len(), 0, 'pings change nothing');
  });

  it('stores caps through the guest, and the reader sees exactly what was put', () => {
    using guest = GuestVm.boot({ memorySize: MEMORY_SIZE });
    const rng = new SeededRandom(0x5eed);
    const stored = new Map<string, { hash: Uint8Array; kind: number; bytes: Uint8Array }>();
    for (let i = 0; i < 300; i++) {
      const hash = randomBytes(rng, 32);
      // Mostly small caps, some whole pages (kept page-aligned by the guest), a few empty.
      const length = rng.pick([0, 1, 31, 4096, 8192, rng.below(5000), rng.below(200)]);
      const cap = { hash, kind: rng.below(5), bytes: randomBytes(rng, length) };
      assert.equal(guest.put(cap.hash, cap.kind, cap.bytes), true);
      stored.set(Buffer.from(hash).toString('hex'), cap);
    }
    assert.equal(guest.reader.len(), stored.size);
    for (const { hash, kind, bytes } of stored.values()) {
      assert.ok(guest.reader.contains(hash));
      assert.deepEqual(guest.reader.get(hash), { kind, bytes });
    }
    for (let i = 0; i < 100; i++) {
      const absent = randomBytes(rng, 32);
      assert.equal(guest.reader.contains(absent), false);
      assert.equal(guest.reader.get(absent), undefined);
    }
  });

  it('keeps the first copy when a hash is put twice', () => {
    using guest = GuestVm.boot({ memorySize: MEMORY_SIZE });
    const hash = new Uint8Array(32).fill(7);
    assert.equal(guest.put(hash, 2, Uint8Array.of(1, 2, 3)), true);
    const got = guest.reader.get(hash);
    assert.equal(guest.put(hash, 2, Uint8Array.of(9, 9, 9)), false);
    assert.equal(guest.reader.len(), 1);
    assert.deepEqual(guest.reader.get(hash), { kind: 2, bytes: Uint8Array.of(1, 2, 3) });
    assert.deepEqual(got!.bytes, Uint8Array.of(1, 2, 3), 'a copy from before the second put is unchanged');
  });

  it('rejects bad puts on the host, and stays usable', () => {
    using guest = GuestVm.boot({ memorySize: MEMORY_SIZE });
    expectNubError(() => guest.put(new Uint8Array(31), 0, new Uint8Array(1)), 'BadHash');
    expectNubError(() => guest.put(new Uint8Array(32), -1, new Uint8Array(1)), 'BadArgument');
    expectNubError(() => guest.put(new Uint8Array(32), 0, new Uint8Array(MAX_PUT_BYTES + 1)), 'PayloadTooLarge');
    assert.equal(guest.put(new Uint8Array(32), 0, new Uint8Array(MAX_PUT_BYTES)), true, 'the largest put fits');
    guest.ping();
  });

  it('reports requests the guest refuses without poisoning the VM', () => {
    using guest = GuestVm.boot({ memorySize: MEMORY_SIZE });
    expectNubError(() => guest.request(0x1234, []), 'GuestBadOp');
    // A PUT whose declared length disagrees with its payload.
    expectNubError(() => guest.request(MailboxOp.values.PUT, [0, 5], [new Uint8Array(32), new Uint8Array(4)]), 'GuestBadArgs');
    expectNubError(() => guest.request(MailboxOp.values.SELFTEST_FAULT, [999]), 'GuestBadArgs');
    assert.equal(guest.reader.len(), 0);
    guest.ping();
  });

  it('refuses a bad PREPARE before it allocates: repeated ones do not exhaust the heap', () => {
    using guest = GuestVm.boot({ memorySize: MEMORY_SIZE });
    const rng = new SeededRandom(7);
    const imageHash = randomBytes(rng, 32);
    const dataHash = randomBytes(rng, 32);
    guest.put(imageHash, CapSelector.Image, Uint8Array.of(0x0b, 0x20, 0x00, 0x00)); // code: ecalli 0
    guest.put(dataHash, CapSelector.Data, Uint8Array.of(CapSelector.Data, 4, 0, 0, 0)); // a Data cap of no pages
    const writable = { start: DATA_BASE, size: 1 << 20, writable: true, dataHash };
    const spec = (mappings: { start: number; size: number; writable: boolean; dataHash: Uint8Array }[]) => ({ imageHash, codeOffset: 0, codeLen: 4, mappings, endpoints: [], reservedSlots: false });
    // Each would lay out a 1 MiB writable mapping before finding the second mapping's cap missing: 30 MiB in all, twice the guest.
    for (let i = 0; i < 30; i++) {
      expectNubError(() => prepareInGuest(guest, spec([writable, { ...writable, start: DATA_BASE + (1 << 20), dataHash: randomBytes(rng, 32) }]), []), 'GuestCapMissing');
    }
    assert.equal(prepareInGuest(guest, spec([writable]), []).id, 0);
  });

  it('fills the directory to its load limit, then reports DirectoryFull', () => {
    // The smallest memory gives the smallest directory; its 3/4 load limit is reached quickly.
    using guest = GuestVm.boot({ memorySize: L.MIN_MEMORY_SIZE });
    const rng = new SeededRandom(42);
    let stored = 0;
    let err: unknown;
    while (err === undefined) {
      try {
        guest.put(randomBytes(rng, 32), 2, new Uint8Array(8));
        stored++;
      } catch (e) {
        err = e;
      }
    }
    assert.ok(err instanceof NubError && err.code === 'DirectoryFull', String(err));
    assert.equal(guest.reader.len(), stored);
    assert.ok(stored >= 64, `only ${stored} caps fit`);
    guest.ping();
  });

  // #PF error code bits: present (a protection violation, not a missing page), write, user mode.
  const PF_PRESENT = 1n, PF_WRITE = 2n, PF_USER = 4n;
  const faults: [keyof typeof SelftestFault.values, number, (cr2: bigint, stackTopVa: number) => boolean, bigint?][] = [
    ['DIVIDE_ERROR', 0, () => true],
    ['PAGE_FAULT', 14, (cr2) => cr2 === BigInt(VA_BASE), PF_USER], // the null page
    ['INVALID_OPCODE', 6, () => true],
    ['STACK_OVERFLOW', 14, (cr2, top) => cr2 >= BigInt(top - L.KERNEL_STACK_SIZE - L.PAGE_SIZE) && cr2 < BigInt(top - L.KERNEL_STACK_SIZE), PF_WRITE | PF_USER],
    // Ring 3 cannot change what the ring map keeps from it.
    ['WRITE_PAGE_TABLES', 14, (cr2) => cr2 === BigInt(VA_BASE + L.PAGE_TABLES_GPA), PF_PRESENT | PF_WRITE | PF_USER],
    ['WRITE_TEXT', 14, (cr2) => cr2 >= BigInt(VA_BASE + L.KERNEL_GPA), PF_PRESENT | PF_WRITE | PF_USER],
    ['PRIVILEGED_INSTRUCTION', 13, () => true, 0n],
  ];
  for (const [scenario, vector, cr2Ok, errorCode] of faults) {
    it(`reports a guest ${scenario} raised in ring 3 with its details, and the host carries on`, () => {
      const kernel = loadKernelImage();
      using guest = GuestVm.boot({ memorySize: MEMORY_SIZE });
      const err = expectNubError(() => guest.request(MailboxOp.values.SELFTEST_FAULT, [SelftestFault.values[scenario]]), 'GuestFault');
      const d = err.details as { vector: number; ring: number; rip: bigint; cr2: bigint; errorCode: bigint; count: bigint };
      assert.equal(d.vector, vector);
      assert.equal(d.ring, 3, 'the kernel does its work in ring 3');
      if (errorCode !== undefined) assert.equal(d.errorCode, errorCode);
      assert.ok(d.rip >= BigInt(VA_BASE + L.KERNEL_GPA) && d.rip < BigInt(VA_BASE + kernel.loadEndGpa), `rip ${d.rip} is in the kernel`);
      assert.ok(cr2Ok(d.cr2, kernel.stackTopVa), `cr2 0x${d.cr2.toString(16)}`);
      assert.equal(d.count, 1n);
      const poisoned = expectNubError(() => guest.ping(), 'Poisoned');
      assert.equal((poisoned.cause as NubError).code, 'GuestFault');
      using next = GuestVm.boot({ memorySize: MEMORY_SIZE });
      next.ping();
    });
  }

  it('page tables are written once, before the first run: the guest\'s work leaves them as the host built them', () => {
    using guest = GuestVm.boot({ memorySize: MEMORY_SIZE });
    const tables = guest.memory.bytes(L.PAGE_TABLES_GPA, L.PAGE_TABLES_END_GPA - L.PAGE_TABLES_GPA);
    const rng = new SeededRandom(9);
    for (let i = 0; i < 50; i++) guest.put(rng.bytes(32), 2, rng.bytes(1 + rng.below(8000)));
    guest.ping();
    assert.deepEqual(guest.memory.bytes(L.PAGE_TABLES_GPA, L.PAGE_TABLES_END_GPA - L.PAGE_TABLES_GPA), tables);
  });

  it('refuses calls after close, and close is idempotent', () => {
    const guest = GuestVm.boot({ memorySize: MEMORY_SIZE });
    guest.close();
    guest.close();
    assert.ok(guest.closed);
    expectNubError(() => guest.ping(), 'Closed');
  });

  it('refuses memory too small for the kernel', () => {
    expectNubError(() => GuestVm.boot({ memorySize: L.MIN_MEMORY_SIZE / 2 }), 'BadMemorySize');
  });

  it('boots and closes 200 guests without leaking fds or RSS', async () => {
    const cycle = async () => {
      const guest = GuestVm.boot({ memorySize: MEMORY_SIZE });
      guest.put(new Uint8Array(32).fill(1), 2, new Uint8Array(4096));
      guest.close();
      await nextTurn(); // let ArrayBuffer finalizers run
    };
    for (let i = 0; i < 20; i++) await cycle(); // warm up allocator and JIT
    const fds = openFds();
    const rss = process.memoryUsage().rss;
    for (let i = 0; i < 200; i++) await cycle();
    await nextTurn();
    assert.equal(openFds(), fds);
    const growth = process.memoryUsage().rss - rss;
    assert.ok(growth < 16 * 1024 * 1024, `RSS grew by ${(growth / 1048576).toFixed(1)} MiB`);
  });
});
