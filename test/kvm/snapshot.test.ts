// Snapshots of the real guest kernel under /dev/kvm: ImmutableMapping of guest memory,
// restore (in place, after faults, into other VMs), clones, and files loaded by another
// process.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Layout, MailboxOp, SelftestFault } from '../../lib/abi/guest-abi.js';
import { Vm } from '../../lib/native/index.js';
import { ImmutableMapping } from '../../lib/snapshot/immutable-mapping.js';
import { countPages } from '../../lib/snapshot/page-bitmap.js';
import { loadSnapshot, saveSnapshot } from '../../lib/guest/snapshot-file.js';
import { Snapshot } from '../../lib/snapshot/snapshot.js';
import { SeededRandom } from '../unit/seeded-random.js';
import { describeKvm } from './kvm-available.js';
import { Guest, MEMORY_SIZE } from './snapshot-helpers.js';
import { expectNubError as assertThrowsCode } from '../support/nub-error.js';

const PAGES = MEMORY_SIZE / 4096;

function caps(seed: number, n: number): { hash: Uint8Array; bytes: Uint8Array }[] {
  const rng = new SeededRandom(seed);
  return Array.from({ length: n }, () => ({ hash: rng.bytes(32), bytes: rng.bytes(1 + rng.below(9000)) }));
}

function assertSameMemory(snapshot: Snapshot, guest: Guest): void {
  assert.ok(snapshot.memory.equals(0, guest.memoryBytes), 'guest memory equals the snapshot');
}

describeKvm('snapshots of the guest kernel', function () {
  this.timeout(60_000);
  const open: { close(): void }[] = [];
  const keep = <T extends { close(): void }>(x: T): T => (open.push(x), x);
  afterEach(() => {
    for (const x of open.splice(0)) x.close();
  });

  it('ImmutableMapping.ofVm keeps guest memory as it was; later guest and host writes do not show', () => {
    const guest = Guest.boot();
    keep(guest.vm);
    const before = guest.memoryBytes.slice();
    const view = keep(ImmutableMapping.ofVm(guest.vm));
    assert.equal(view.length, MEMORY_SIZE);
    assert.ok(view.equals(0, before));

    const [cap] = caps(1, 1);
    guest.put(cap!.hash, cap!.bytes); // guest writes
    guest.memoryBytes[Layout.values.MAILBOX_GPA + 4096] = 0xab; // host write
    const after = guest.memoryBytes.slice();
    assert.notDeepEqual(after, before);
    assert.ok(view.equals(0, before), 'the first view is unchanged');

    const second = keep(ImmutableMapping.ofVm(guest.vm));
    assert.ok(second.equals(0, after), 'a new view sees the writes');
    // Only the pages written since the freeze are private to the VM: the second view copied those.
    const written = countPages(guest.vm.privatePages());
    assert.ok(written > 0 && written < 64, `${written} private pages`);
  });

  it('restore undoes guest and host writes and resumes the vCPU; the cost follows the pages written', () => {
    const guest = Guest.boot();
    keep(guest.vm);
    const snapshot = keep(Snapshot.take(guest.vm));
    const list = caps(2, 20);
    for (const { hash, bytes } of list) guest.put(hash, bytes);
    assert.ok(list.every(({ hash }) => guest.has(hash)));
    const written = countPages(guest.vm.privatePages());

    const stats = snapshot.restore(guest.vm);
    assert.equal(stats.copiedPages, written);
    assert.equal(stats.remapped, false);
    assert.ok(written < PAGES / 16, `${written} pages written of ${PAGES}`);
    assertSameMemory(snapshot, guest);
    assert.deepEqual(guest.vm.getRegs(), snapshot.vcpu.regs);
    assert.ok(!list.some(({ hash }) => guest.has(hash)), 'the caps are gone');

    guest.reset();
    guest.ping();
    for (const { hash, bytes } of list.slice(0, 3)) guest.put(hash, bytes); // re-inserted: they were really gone
    const discard = snapshot.restore(guest.vm, { discard: true });
    assert.ok(discard.discardedPages > 0);
    assert.equal(countPages(guest.vm.privatePages()), 0, 'discard leaves no private page');
    assertSameMemory(snapshot, guest);
    guest.reset().ping();
  });

  it('a restore after each kind of fault gives a working guest', () => {
    const guest = Guest.boot();
    keep(guest.vm);
    const snapshot = keep(Snapshot.take(guest.vm));
    for (const scenario of Object.values(SelftestFault.values)) {
      assertThrowsCode(() => guest.mailbox.call(MailboxOp.values.SELFTEST_FAULT, [scenario]), 'GuestFault');
      assertThrowsCode(() => guest.ping(), 'Poisoned');
      snapshot.restore(guest.vm);
      guest.reset().ping();
      const [cap] = caps(10 + scenario, 1);
      guest.put(cap!.hash, cap!.bytes);
      assert.ok(guest.has(cap!.hash));
    }
  });

  it('a restore after the guest destroyed its own page tables (triple fault) gives a working guest', () => {
    const guest = Guest.boot();
    keep(guest.vm);
    const snapshot = keep(Snapshot.take(guest.vm));
    guest.memoryBytes.fill(0, Layout.values.PAGE_TABLES_GPA, Layout.values.PAGE_TABLES_GPA + 4096); // the PML4
    assertThrowsCode(() => guest.ping(), 'GuestTripleFault'); // even the fault handler cannot be reached
    snapshot.restore(guest.vm);
    assertSameMemory(snapshot, guest);
    guest.reset().ping();
  });

  it('one boot clones into many independent VMs, new or reused', () => {
    const origin = Guest.boot();
    keep(origin.vm);
    const snapshot = keep(Snapshot.take(origin.vm));
    const other = Guest.boot(); // another base: reusing it remaps it
    const clones = [new Guest(keep(snapshot.createVm())), new Guest(keep(snapshot.createVm())), new Guest(keep(snapshot.createVm({ reuse: keep(other.vm) })))];
    const list = caps(3, clones.length);
    clones.forEach((clone, i) => clone.put(list[i]!.hash, list[i]!.bytes));
    clones.forEach((clone, i) => list.forEach((cap, j) => assert.equal(clone.has(cap.hash), i === j, `clone ${i}, cap ${j}`)));
    assert.ok(!list.some((cap) => origin.has(cap.hash)));
    const fresh = keep(snapshot.createVm());
    assert.ok(snapshot.memory.equals(0, new Uint8Array(fresh.memory)), 'the snapshot itself is unchanged');
    assertThrowsCode(() => snapshot.restore(keep(Vm.create({ memorySize: MEMORY_SIZE / 2 }))), 'SizeMismatch');
  });

  it('a saved snapshot loads in another process', () => {
    const guest = Guest.boot();
    keep(guest.vm);
    const list = caps(4, 5);
    for (const { hash, bytes } of list) guest.put(hash, bytes);
    const snapshot = keep(Snapshot.take(guest.vm));
    const dir = mkdtempSync(join(tmpdir(), 'nub-snapshot-'));
    try {
      const path = join(dir, 'guest.nubsnap');
      saveSnapshot(snapshot, path);
      const loaded = keep(loadSnapshot(path));
      assert.ok(loaded.memory.equals(0, snapshot.memory.read(0, MEMORY_SIZE)), 'unmapped and zero pages are all that was left out');

      const lib = (p: string) => new URL(`../../lib/${p}`, import.meta.url).href;
      const child = `
        import { loadSnapshot } from '${lib('guest/snapshot-file.js')}';
        import { GuestCacheReader } from '${lib('guest/cache-reader.js')}';
        import { GuestMemory } from '${lib('guest/guest-memory.js')}';
        import { Mailbox } from '${lib('guest/mailbox.js')}';
        import { MailboxOp } from '${lib('abi/guest-abi.js')}';
        const snapshot = loadSnapshot(process.argv[1]);
        const vm = snapshot.createVm();
        const mem = new GuestMemory(vm.memory);
        new Mailbox(vm, mem).call(MailboxOp.values.PING, []);
        const reader = GuestCacheReader.fromBootInfo(mem);
        const hashes = JSON.parse(process.argv[2]).map((h) => Uint8Array.from(Buffer.from(h, 'hex')));
        console.log(JSON.stringify({ len: reader.len(), found: hashes.map((h) => reader.contains(h)) }));`;
      const hashes = JSON.stringify(list.map(({ hash }) => Buffer.from(hash).toString('hex')));
      const run = spawnSync(process.execPath, ['--input-type=module', '-e', child, path, hashes], { encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      assert.deepEqual(JSON.parse(run.stdout), { len: list.length, found: list.map(() => true) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
