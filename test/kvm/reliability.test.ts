// nub under abuse, against the real /dev/kvm: a guest kernel scribbled over on purpose
// (boot info, directory, its own page tables, its code) and random scribbles, each case
// ending with a restore and a working guest. The host process survives everything and
// every failure is a typed NubError. (Sandbox-level cases: reliability-sandbox.test.ts.)
import assert from 'node:assert/strict';
import { BootInfo, DirectoryHeader, Layout } from '../../lib/abi/guest-abi.js';
import { NubError } from '../../lib/errors.js';
import { loadKernelImage } from '../../lib/guest/boot.js';
import { GuestCacheReader } from '../../lib/guest/cache-reader.js';
import { Snapshot } from '../../lib/snapshot/snapshot.js';
import { SeededRandom } from '../unit/seeded-random.js';
import { describeKvm } from './kvm-available.js';
import { Guest } from './snapshot-helpers.js';

const L = Layout.values;
const BOOT = L.BOOT_INFO_GPA;
const VA_BASE = Number(L.GUEST_VA_BASE);

/** Runs `fn`; it must return normally or throw a NubError (any other throw fails the test). */
function typedOrValue(fn: () => unknown): NubError | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof NubError, `expected a NubError, got ${String(err)}`);
    return err;
  }
}

describeKvm('reliability: a scribbled guest kernel', function () {
  this.timeout(120_000);
  let guest: Guest;
  let snapshot: Snapshot;
  const hash = new SeededRandom(7).bytes(32);

  before(() => {
    guest = Guest.boot();
    guest.put(hash, new Uint8Array(100).fill(3));
    snapshot = Snapshot.take(guest.vm);
  });
  after(() => {
    snapshot.close();
    guest.vm.close();
  });
  afterEach(() => {
    // Whatever the case did, a restore gives the working guest back.
    snapshot.restore(guest.vm);
    guest.reset(5_000).ping();
    assert.ok(GuestCacheReader.fromBootInfo(guest.mem).contains(hash));
  });

  const directoryGpa = () => Number(guest.mem.u64(BOOT + BootInfo.offsets.directory_va)) - VA_BASE;
  const reader = () => GuestCacheReader.fromBootInfo(guest.mem);
  const readerCode = (): string => {
    try {
      reader().contains(hash);
    } catch (err) {
      assert.ok(err instanceof NubError, String(err));
      return err.code;
    }
    return 'no error';
  };

  const cases: [string, () => void, string][] = [
    ['boot-info magic', () => guest.mem.writeU64(BOOT + BootInfo.offsets.magic, 0x1234n), 'BadMagic'],
    ['boot-info layout version', () => guest.mem.writeU32(BOOT + BootInfo.offsets.layout_version, 99), 'UnknownLayout'],
    ['no directory', () => guest.mem.writeU64(BOOT + BootInfo.offsets.directory_va, 0n), 'UninitialisedDirectoryVa'],
    ['directory pointer not canonical', () => guest.mem.writeU64(BOOT + BootInfo.offsets.directory_va, 1n << 60n), 'UnmappedAddress'],
    ['page-table root outside memory', () => guest.mem.writeU64(BOOT + BootInfo.offsets.page_table_root, 1n << 40n), 'OutOfBounds'],
    ['directory capacity not a power of two', () => guest.mem.writeU32(directoryGpa() + DirectoryHeader.offsets.capacity, 3), 'BadDirectory'],
    ['directory count above capacity', () => guest.mem.writeU32(directoryGpa() + DirectoryHeader.offsets.count, 0xffff_ffff), 'BadDirectory'],
    ['null entries pointer', () => guest.mem.writeU64(directoryGpa() + DirectoryHeader.offsets.entries_va, 0n), 'NullPointer'],
    ['misaligned entries pointer', () => guest.mem.writeU64(directoryGpa() + DirectoryHeader.offsets.entries_va, BigInt(VA_BASE + 0x10_0003)), 'Misaligned'],
    ['its own PML4 wiped', () => guest.mem.fill(L.PAGE_TABLES_GPA, 4096, 0), 'UnmappedAddress'],
    ['a PML4 entry pointing outside memory', () => {
      for (let i = 0; i < 512; i++) guest.mem.writeU64(L.PAGE_TABLES_GPA + 8 * i, (1n << 40n) | 3n);
    }, 'OutOfBounds'],
  ];

  for (const [name, scribble, code] of cases) {
    it(`${name}: the reader says ${code}, the guest fails typed or carries on`, () => {
      scribble();
      assert.equal(readerCode(), code);
      // The guest itself now runs on what is left: any outcome but a crash of the host.
      guest.reset(1000);
      typedOrValue(() => guest.ping());
    });
  }

  it('page tables that point at themselves do not hang the reader', () => {
    const root = L.PAGE_TABLES_GPA;
    for (let i = 0; i < 512; i++) guest.mem.writeU64(root + 8 * i, BigInt(root) | 3n); // every level is the PML4 again
    typedOrValue(() => reader().contains(hash));
    guest.reset(1000);
    typedOrValue(() => guest.ping());
  });

  it('its code overwritten: the call fails with a typed error (here, the timeout) and the VM is poisoned', () => {
    const kernel = loadKernelImage();
    guest.mem.fill(L.KERNEL_GPA, kernel.loadEndGpa - L.KERNEL_GPA, 0xff); // code and exception stubs alike
    guest.reset(200);
    // 0xff 0xff is an invalid opcode, and so is the handler it jumps to: the guest spins
    // delivering #UD forever, which only the timeout ends.
    assert.equal(typedOrValue(() => guest.ping())?.code, 'Timeout');
    assert.equal(typedOrValue(() => guest.ping())?.code, 'Poisoned');
  });

  it('200 random scribbles over boot info, directory and page tables: only typed errors', () => {
    const rng = new SeededRandom(8);
    const regions: [number, number][] = [[BOOT, BootInfo.size], [directoryGpa(), DirectoryHeader.size], [L.PAGE_TABLES_GPA, 4 * 4096], [L.MAILBOX_GPA, 256]];
    const codes = new Map<string, number>();
    for (let round = 0; round < 200; round++) {
      for (let k = 0; k < 1 + rng.below(8); k++) {
        const [start, len] = regions[rng.below(regions.length)]!;
        guest.mem.writeU8(start + rng.below(len), rng.below(256));
      }
      guest.reset(1000); // a scribbled mailbox or table may leave the guest spinning
      const err = typedOrValue(() => reader().get(hash)) ?? typedOrValue(() => guest.ping());
      codes.set(err?.code ?? 'ok', (codes.get(err?.code ?? 'ok') ?? 0) + 1);
      snapshot.restore(guest.vm);
      guest.reset();
    }
    assert.ok(codes.size > 1, `outcomes: ${JSON.stringify([...codes])}`);
  });
});

