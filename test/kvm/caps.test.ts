/**
 * Caps on engine kvm beyond the shared suites: a 16 MiB argument cap is mapped into
 * the guest's PVM memory, not copied, and `nub run --input/--output` on kvm.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataCap } from '../../lib/caps/index.js';
import { ImageBuilder } from '../../lib/image/index.js';
import { DATA_BASE, Exit } from '../../lib/machine/abi.js';
import { Sandbox } from '../../lib/sandbox/index.js';
import { A, assemble, X } from '../support/machine-asm.js';
import { nub } from '../support/cli.js';
import { describeKvm } from './kvm-available.js';

const BIG = 16 << 20;
const TRANSFORM = fileURLToPath(new URL('../../../examples/transform/transform.ssz', import.meta.url));

describeKvm('caps on engine kvm', function () {
  this.timeout(120_000);

  it('a guest full of earlier invokes\' argument caps is rebooted without them (the budget alone would allow them all)', () => {
    using sandbox = Sandbox.create({ engine: 'kvm', memorySize: 16 << 20, memoryBudget: 1 << 30 });
    const image = sandbox.loadImage(new ImageBuilder().setCode(assemble(A.ecalli(0))).addEndpoint(1, { entryPc: 0, argCnodeSize: 1 }));
    for (let i = 0; i < 40; i++) { // 80 MiB of caps into a 16 MiB guest
      const r = sandbox.invokeSync(image, 1, { caps: [new Uint8Array(2 << 20).fill(i + 1)] });
      assert.equal(r.exit, Exit.HALT, `call ${i}`);
    }
  });

  it('maps a 16 MiB argument cap without copying it: it fits a guest with no room for a copy, and repeat calls cost what a one-page cap does', () => {
    // 24 MiB of guest memory holds the kernel, its directory (1/16 of memory) and the cap once; not twice.
    // (The host's budget counts the mapping's 16 MiB of address space as well as the cap: set it apart from guest memory.)
    using sandbox = Sandbox.create({ engine: 'kvm', memorySize: 24 << 20, memoryBudget: 64 << 20 });
    const image = sandbox.loadImage(new ImageBuilder().setCode(assemble(A.ld(X.a0, X.a0, 0), A.ecalli(0)))
      .addEndpoint(1, { entryPc: 0, argCnodeSize: 1 }).addMapping(DATA_BASE, BIG, [0, 0]));
    const bytes = new Uint8Array(BIG);
    new DataView(bytes.buffer).setBigUint64(BIG - 8, 0x1234_5678_9abc_def0n, true);
    const big = DataCap.fromBytes(bytes);
    const small = DataCap.fromBytes(Uint8Array.of(7));
    sandbox.putCaps([{ kind: 'Data', value: big }, { kind: 'Data', value: small }]);
    const call = (cap: DataCap, at: number) => {
      const t0 = performance.now();
      const r = sandbox.invokeSync(image, 1, { args: [BigInt(at)], caps: [{ hash: cap.hash() }] });
      return { r, ms: performance.now() - t0 };
    };
    const first = call(big, DATA_BASE + BIG - 8);
    assert.equal(first.r.exit, Exit.HALT);
    assert.equal(first.r.regs[7], 0x1234_5678_9abc_def0n, 'the last word of the cap, read through the mapping');
    const repeat = Math.min(...[0, 1, 2].map(() => call(big, DATA_BASE + BIG - 8).ms));
    const smallMapping = sandbox.loadImage(new ImageBuilder().setCode(assemble(A.ld(X.a0, X.a0, 0), A.ecalli(0)))
      .addEndpoint(1, { entryPc: 0, argCnodeSize: 1 }).addMapping(DATA_BASE, 0x1000, [0, 0]));
    const tiny = Math.min(...[0, 1, 2].map(() => {
      const t0 = performance.now();
      assert.equal(sandbox.invokeSync(smallMapping, 1, { args: [BigInt(DATA_BASE)], caps: [{ hash: small.hash() }] }).regs[7], 7n);
      return performance.now() - t0;
    }));
    // A copy of 16 MiB in the guest is seconds on this machine; the repeat is a trivial invoke.
    assert.ok(repeat < 5 * tiny + 5, `16 MiB cap, repeat call: ${repeat.toFixed(2)} ms; one-page cap: ${tiny.toFixed(2)} ms`);
  });

  it('nub run --input/--output on kvm passes a file as argument cap 0 and writes returned cap 0', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nub-run-caps-'));
    try {
      writeFileSync(join(dir, 'in'), 'stressed');
      const run = nub(['run', TRANSFORM, '--engine', 'kvm', '--arg', '8', '--input', join(dir, 'in'), '--output', join(dir, 'out'), '--json']);
      assert.equal(run.status, 0, run.stderr);
      const out = readFileSync(join(dir, 'out'));
      assert.equal(out.length, 4096);
      assert.equal(out.subarray(0, 8).toString(), 'desserts');
      const report = run.json as { caps: { slot: number; kind: string; hash: string; bytes: number }[] };
      const expected = DataCap.fromBytes(new TextEncoder().encode('desserts'));
      assert.deepEqual(report.caps, [{ slot: 0, kind: 'Data', hash: Buffer.from(expected.hash()).toString('hex'), bytes: 4096 }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
