/**
 * The examples (examples/<name>/): each expected result is computed again here in
 * JavaScript, the committed image must produce it under the local engine, and —
 * when the cross-compiler and qemu are installed — the same C sources built as
 * RISC-V Linux programs must print it under qemu-riscv64.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blake2b } from '@noble/hashes/blake2.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { admitImage } from '../../lib/image/index.js';
import { dataCapOf, Exit, exitName, invokeLocal } from '../../lib/machine/index.js';
import { Sandbox } from '../../lib/sandbox/index.js';
import { buildLinuxExamples, loadExamples, missingTools, runUnderQemu, type ExampleCase } from '../support/qemu-harness.js';

const MASK64 = (1n << 64n) - 1n;
/** Enough for every unit-test case (the heaviest uses well under a tenth of it). */
const GAS = 1_000_000_000n;

// ---- the examples' functions, written again from their descriptions ----

function fib(n: number): bigint {
  let [a, b] = [0n, 1n];
  for (let i = 0; i < n; i++) [a, b] = [b, (a + b) & MASK64];
  return a;
}

const SIEVE_LIMIT = 1 << 23;
function primesBelow(n: number): number[] {
  const composite = new Uint8Array(n);
  const primes = [];
  for (let i = 2; i < n; i++) {
    if (composite[i]) continue;
    primes.push(i);
    for (let j = i * i; j < n; j += i) composite[j] = 1;
  }
  return primes;
}

const SORT_MAX = 1 << 20;
function sortChecksum(n: number, seed: number, descending: number): bigint {
  if (n > SORT_MAX) return 0n;
  let x = BigInt(seed || 1);
  const values: bigint[] = [];
  for (let i = 0; i < n; i++) {
    x ^= (x << 13n) & MASK64;
    x ^= x >> 7n;
    x ^= (x << 17n) & MASK64;
    values.push(x);
  }
  values.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (descending) values.reverse();
  return values.reduce((sum, v, i) => (sum + v * BigInt(i + 1)) & MASK64, 0n);
}

function leadingU64(digest: Uint8Array): bigint {
  return digest.subarray(0, 8).reduce((v, b) => (v << 8n) | BigInt(b), 0n);
}

/** The hash examples' two endpoints: a patterned message of n bytes, and k rehashes of hash(""). */
function hashEndpoints(hash: (m: Uint8Array) => Uint8Array): Record<number, (n: number) => bigint> {
  return {
    1: (n) => leadingU64(hash(Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) & 0xff))),
    2: (k) => {
      let digest = hash(new Uint8Array(0));
      for (let i = 0; i < k; i++) digest = hash(digest);
      return leadingU64(digest);
    },
  };
}

const MASK = MASK64;
function fnv1a(bytes: Uint8Array): bigint {
  return bytes.reduce((h, b) => ((h ^ BigInt(b)) * 0x100000001b3n) & MASK, 0xcbf29ce484222325n);
}
const utf8 = (s: string) => new TextEncoder().encode(s);
const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) & 0xff);
/** transform's reply: the checksum, or UINT64_MAX - status when argument cap 0 is absent (EMPTY = 2). */
const transform = (input: string | undefined) => (n: number) => (input === undefined ? MASK - 2n : fnv1a(utf8(input).subarray(0, n)));

/** The counter example's state, for a sequence of calls on one Instance (a fresh one per case otherwise). */
function counterModel() {
  let total = 0n, calls = 0n;
  const kv = new Map<number, bigint>();
  return {
    1: (k: number) => { calls++; return (total = (total + BigInt(k)) & MASK); },
    2: () => calls,
    3: (k: number, v: number) => { kv.set(k, BigInt(v)); return 1n; },
    4: (k: number) => kv.get(k) ?? 0n,
  } as Record<number, (...args: number[]) => bigint>;
}

/** By example name, then endpoint key. */
const reference: Record<string, Record<number, (...args: number[]) => bigint>> = {
  fib: { 1: fib, 2: fib },
  sieve: {
    1: (n) => (n > SIEVE_LIMIT ? 0n : BigInt(primesBelow(n).length)),
    2: (n) => (n > SIEVE_LIMIT ? 0n : primesBelow(n).reduce((s, p) => s + BigInt(p), 0n)),
  },
  sort: { 1: sortChecksum },
  sha256: hashEndpoints(sha256),
  blake2b: hashEndpoints((m) => blake2b(m, { dkLen: 32 })),
  transform: { 2: (n) => fnv1a(pattern(n)) },
  counter: counterModel(),
};

/** A case's reference result: its own input decides transform's endpoint 1; each counter case starts fresh. */
function referenceOf(example: string, c: ExampleCase, functions: Record<number, (...args: number[]) => bigint>) {
  if (example === 'transform' && c.endpoint === 1) return transform(c.input);
  if (example === 'counter') return counterModel()[c.endpoint];
  return functions[c.endpoint];
}

const inputCaps = (c: ExampleCase) => {
  if (c.input === undefined) return [];
  const data = dataCapOf(utf8(c.input));
  return [{ kind: 'Data' as const, data, hash: data.hash() }];
};

const label = (c: Pick<ExampleCase, 'endpoint' | 'args'>) => `endpoint ${c.endpoint}(${c.args.join(', ')})`;

describe('examples', () => {
  const examples = loadExamples();

  it('has at least fib, a hash, a prime sieve and a sort', () => {
    assert.deepEqual(['fib', 'sha256', 'sieve', 'sort'].filter((n) => !examples.some((e) => e.name === n)), []);
  });

  for (const example of examples) {
    describe(example.name, () => {
      it('expected results agree with an independent JavaScript computation', function () {
        const functions = reference[example.name];
        if (!functions) this.skip();
        for (const c of [...example.cases, example.bench]) {
          const fn = referenceOf(example.name, c, functions!);
          assert.ok(fn, `no reference for ${label(c)}`);
          assert.equal(fn(...c.args), c.result, label(c));
          if (c.output !== undefined) assert.equal(c.output, [...c.input!.slice(0, c.args[0])].reverse().join(''), label(c));
        }
        const model = counterModel();
        for (const c of example.instance) assert.equal(model[c.endpoint]!(...c.args), c.result, `instance ${label(c)}`);
      });

      it('the committed image replies with the expected results (engine local)', () => {
        const admitted = admitImage(new Uint8Array(readFileSync(example.imagePath)));
        for (const c of example.cases) {
          const run = invokeLocal(admitted.imageCap, admitted, [c.endpoint], { args: c.args.map(BigInt), gas: GAS, caps: inputCaps(c) });
          assert.equal(exitName(run.exit), exitName(Exit.HALT), `${label(c)} ended at pc ${run.pc.toString(16)}`);
          assert.equal(run.exitArg, c.result, label(c));
          if (c.output !== undefined) {
            const out = run.caps.find((r) => r.slot === 0)!.bytes();
            const want = utf8(c.output);
            assert.equal(out.length, Math.ceil(want.length / 4096) * 4096, label(c));
            assert.deepEqual(out.subarray(0, want.length), want, label(c));
            assert.ok(out.subarray(want.length).every((b) => b === 0), label(c));
          }
        }
      });

      if (example.instance.length > 0) it('Instance calls see the state the calls before them left (engine local)', () => {
        using sandbox = Sandbox.create({ engine: 'local' });
        let instance = sandbox.spawn(sandbox.loadImage(new Uint8Array(readFileSync(example.imagePath))));
        for (const c of example.instance) {
          const r = sandbox.invokeSync(instance, c.endpoint, { args: c.args.map(BigInt), gas: GAS });
          assert.equal(r.regs[7], c.result, `instance ${label(c)}`);
          instance = r.instance!;
        }
      });
    });
  }

  describe('cross-check: the same C sources under qemu-riscv64', function () {
    this.timeout(120_000);
    let binaries = '';
    before(function () {
      const missing = missingTools();
      if (missing) {
        console.log(`      SKIPPED the qemu cross-check: ${missing}`);
        this.skip();
      }
      binaries = mkdtempSync(join(tmpdir(), 'nub-examples-linux-'));
      buildLinuxExamples(binaries);
    });
    after(() => {
      if (binaries) rmSync(binaries, { recursive: true, force: true });
    });

    for (const example of examples) {
      it(`${example.name}: qemu prints what the local engine replies`, () => {
        const admitted = admitImage(new Uint8Array(readFileSync(example.imagePath)));
        // A case with an input cap is left out: the Linux build has no way to be given a cap.
        for (const c of example.cases.filter((x) => x.input === undefined)) {
          const local = invokeLocal(admitted.imageCap, admitted, [c.endpoint], { args: c.args.map(BigInt), gas: GAS });
          const qemu = runUnderQemu(join(binaries, example.name), c);
          assert.equal(local.exit, Exit.HALT, label(c));
          assert.equal(local.exitArg, qemu.result, label(c));
          assert.equal(qemu.result, c.result, label(c));
        }
      });
    }
  });
});
