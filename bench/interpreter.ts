/**
 * Speed of the reference interpreter (engine `local`): instructions per second on
 * each example's bench case (examples/<name>/expected.json, `bench`).
 *
 *   node dist/bench/interpreter.js [--repeat N]
 *
 * `runExampleBench` is the measurement itself, for other benches (the qemu
 * comparison) to share.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { admitImage } from '../lib/image/index.js';
import { Exit, exitName, invokeLocal } from '../lib/machine/index.js';

export interface BenchResult {
  /** φ7 at HALT. */
  result: bigint;
  instructions: number;
  /** Best wall time of the runs, excluding admission and the one-off pre-decode. */
  seconds: number;
  instructionsPerSecond: number;
}

/** Runs endpoint `endpoint` of an image `repeat` times (after one warm-up run) and keeps the fastest. */
export function runExampleBench(imageBytes: Uint8Array, endpoint: number, args: (bigint | number)[], repeat = 3): BenchResult {
  const admitted = admitImage(imageBytes);
  const invoke = () => invokeLocal(admitted.imageCap, admitted, [endpoint], { args, gas: 1n << 62n });
  invoke(); // pre-decodes the program and warms the JIT
  let best: BenchResult | undefined;
  for (let i = 0; i < repeat; i++) {
    const started = process.hrtime.bigint();
    const run = invoke();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (run.exit !== Exit.HALT) throw new Error(`endpoint ${endpoint}(${args.join(', ')}) ended with ${exitName(run.exit)}`);
    if (best === undefined || seconds < best.seconds) {
      best = { result: run.exitArg, instructions: run.instructions, seconds, instructionsPerSecond: run.instructions / seconds };
    }
  }
  return best!;
}

interface BenchCase { endpoint: number; args: (number | string)[]; result: string }

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { repeat: { type: 'string', default: '3' } } });
  const examplesDir = fileURLToPath(new URL('../../examples/', import.meta.url));
  const rows: string[][] = [['example', 'instructions', 'seconds', 'M instr/s']];
  for (const name of readdirSync(examplesDir).sort()) {
    const expectedPath = join(examplesDir, name, 'expected.json');
    if (!existsSync(expectedPath)) continue;
    const expected = JSON.parse(readFileSync(expectedPath, 'utf8')) as { image: string; bench?: BenchCase };
    if (!expected.bench) continue;
    const { endpoint, args, result } = expected.bench;
    const r = runExampleBench(new Uint8Array(readFileSync(join(examplesDir, name, expected.image))), endpoint, args.map(BigInt), Number(values.repeat));
    if (r.result !== BigInt(result)) throw new Error(`${name}: got ${r.result}, expected ${result}`);
    rows.push([name, r.instructions.toLocaleString('en-US'), r.seconds.toFixed(3), (r.instructionsPerSecond / 1e6).toFixed(1)]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const row of rows) console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
