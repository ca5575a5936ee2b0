/**
 * Instructions per second of the in-guest C engine (run natively by its harness,
 * timed inside the harness around pvm_run only) against the reference interpreter
 * (timed around runMachine, which includes its memory set-up), on each example's
 * `bench` case. Run after building: `node dist/bench/engine.js`.
 */
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { admitImage } from '../lib/image/index.js';
import { Exit } from '../lib/machine/abi.js';
import { prepareProgram, runMachine } from '../lib/machine/index.js';
import { exampleImages, exampleInput, harnessBuilt, runEngine } from '../test/support/engine-harness.js';

if (!harnessBuilt()) {
  console.error('bench/engine: guest/build/engine-harness is not built (run `zx scripts/build-engine-harness.mjs`)');
  process.exit(1);
}

const GAS = 1n << 50n;
const millions = (n: number) => (n / 1e6).toFixed(1);
console.log('example     instructions   reference (M insn/s)   engine (M insn/s)   speed-up');
for (const { path, expected } of exampleImages({ nativeHarness: true })) {
  if (!expected.bench) continue;
  const name = path.split('/').at(-1)!.replace(/\.ssz$/, '');
  const input = exampleInput(admitImage(readFileSync(path)), expected.bench.endpoint, expected.bench.args.map((a) => BigInt(a)), GAS);

  const program = prepareProgram(input.code);
  const started = performance.now();
  const ref = runMachine({ program, mappings: input.mappings, entry: input.entry, regs: input.regs, gas: input.gas });
  const refSeconds = (performance.now() - started) / 1000;

  // Best of three: the harness's clock sees only pvm_run, not process start-up.
  const runs = [runEngine(input), runEngine(input), runEngine(input)];
  const engine = runs.reduce((best, r) => (r.runNs < best.runNs ? r : best));
  if (engine.exit !== Exit.HALT || ref.exit !== Exit.HALT || engine.exitArg !== ref.exitArg || engine.instructions !== ref.instructions) {
    throw new Error(`${name}: the engines disagree (exit ${engine.exit}/${ref.exit}, result ${engine.exitArg}/${ref.exitArg})`);
  }
  const engineSeconds = Number(engine.runNs) / 1e9;
  const refRate = ref.instructions / refSeconds;
  const engineRate = engine.instructions / engineSeconds;
  console.log(`${name.padEnd(10)} ${String(ref.instructions).padStart(13)}   ${millions(refRate).padStart(20)}   ${millions(engineRate).padStart(17)}   ${(engineRate / refRate).toFixed(1).padStart(7)}x`);
}
