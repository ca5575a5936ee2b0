/**
 * SandboxPool throughput (invokes per second), in one run:
 *   sandbox      one sandbox, invokeSync, never restored (the floor: no pool, no reset)
 *   pool sync    a pool of one, invokeSync: borrow, invoke, restore to the snapshot
 *   pool async   pools of one and of two (both cores: each VM runs on its own thread),
 *                invokes issued two per sandbox at a time
 * for a trivial endpoint and for examples/fib (fib(20)). Prints a table; `--json` the figures.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { ImageBuilder } from '../lib/image/builder.js';
import { packageRoot } from '../lib/native/binding.js';
import { Sandbox, SandboxPool, type LoadedImage } from '../lib/sandbox/index.js';
import { median, nowNs } from './support/baseline.js';

const MEMORY = 16 << 20;
const ROUNDS = 3;
const CALLS = 400;
// addi a0, zero, 5 ; ecalli 0 (halt)
const TRIVIAL = new ImageBuilder().setCode(Uint8Array.of(0x13, 0x05, 0x50, 0x00, 0x0b, 0x20, 0x00, 0x00)).addEndpoint([1], { entryPc: 0 });
const FIB = new Uint8Array(readFileSync(path.join(packageRoot(), 'examples', 'fib', 'fib.ssz')));
const CASES = [
  { name: 'trivial', image: TRIVIAL as ImageBuilder | Uint8Array, args: [] as number[] },
  { name: 'fib(20)', image: FIB, args: [20] },
];

const perSecond = (calls: number, t0: bigint): number => calls / (Number(nowNs() - t0) / 1e9);

async function measure(image: ImageBuilder | Uint8Array, args: number[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  {
    using sandbox = Sandbox.create({ engine: 'kvm', memorySize: MEMORY });
    const loaded = sandbox.loadImage(image);
    sandbox.invokeSync(loaded, 1, { args });
    const t0 = nowNs();
    for (let i = 0; i < CALLS; i++) sandbox.invokeSync(loaded, 1, { args });
    out.sandboxSync = perSecond(CALLS, t0);
  }
  for (const size of [1, 2]) {
    let loaded!: LoadedImage;
    using pool = SandboxPool.create({ size, memorySize: MEMORY, setup: (s) => void (loaded = s.loadImage(image)) });
    if (size === 1) {
      pool.invokeSync(loaded, 1, { args });
      const t0 = nowNs();
      for (let i = 0; i < CALLS; i++) pool.invokeSync(loaded, 1, { args });
      out.poolSync = perSecond(CALLS, t0);
    }
    await pool.invoke(loaded, 1, { args });
    const t0 = nowNs();
    let issued = 0;
    const worker = async (): Promise<void> => {
      while (issued++ < CALLS) await pool.invoke(loaded, 1, { args });
    };
    await Promise.all(Array.from({ length: 2 * size }, worker));
    out[`poolAsync${size}`] = perSecond(CALLS, t0);
  }
  return out;
}

const figures: Record<string, Record<string, number>> = {};
for (const c of CASES) {
  const rounds: Record<string, number>[] = [];
  for (let r = 0; r < ROUNDS; r++) rounds.push(await measure(c.image, c.args));
  figures[c.name] = Object.fromEntries(Object.keys(rounds[0]!).map((k) => [k, median(rounds.map((r) => r[k]!))]));
  figures[c.name]!.twoCoreSpeedup = median(rounds.map((r) => r.poolAsync2! / r.poolAsync1!));
}

if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ cpus: availableParallelism(), calls: CALLS, rounds: ROUNDS, figures }, null, 2));
} else {
  console.log(`SandboxPool throughput, invokes/s (medians of ${ROUNDS} rounds of ${CALLS} calls; ${availableParallelism()} CPUs)`);
  const cols = ['sandboxSync', 'poolSync', 'poolAsync1', 'poolAsync2', 'twoCoreSpeedup'];
  console.log(`${'endpoint'.padEnd(10)}${cols.map((c) => c.padStart(16)).join('')}`);
  for (const [name, f] of Object.entries(figures)) {
    console.log(`${name.padEnd(10)}${cols.map((c) => (c === 'twoCoreSpeedup' ? `${f[c]!.toFixed(2)}×` : f[c]!.toFixed(0)).padStart(16)).join('')}`);
  }
}
