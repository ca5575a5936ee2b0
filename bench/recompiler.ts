/**
 * The recompiler (guest/engine/jit.c, run natively by the engine harness) against the
 * same C compiled for this host with gcc -O2, against qemu-riscv64 running the RISC-V
 * Linux build, and against the C engine's interpreter, on every example's bench case,
 * all measured in this run:
 *
 *   node dist/bench/recompiler.js [--repeat N]
 *
 * Times are CPU time, so other load on the machine does not count: the harness's
 * around pvm_execute (no translation), the native driver's around the endpoint call,
 * qemu's task-clock (perf stat) minus its start-up (its lightest case); each the best
 * of N (default 3), the N rounds interleaving the runs so that a burst of load on the
 * machine falls on all of them alike. Translation: pvm_compile's time per
 * PVM instruction of the program; `load` is pvm_prepare + pvm_compile, what the
 * engine adds to loadImage.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { admitImage } from '../lib/image/index.js';
import { Exit } from '../lib/machine/abi.js';
import { prepareProgram } from '../lib/machine/index.js';
import { exampleInput, harnessBuilt, runEngine, type EngineKind } from '../test/support/engine-harness.js';
import { buildLinuxExamples, buildNativeExamples, loadExamples, missingTools, runNative, runUnderQemuCpu, type Example } from '../test/support/qemu-harness.js';

function engineRun(example: Example, engine: EngineKind) {
  const admitted = admitImage(new Uint8Array(readFileSync(example.imagePath)));
  const input = exampleInput(admitted, example.bench.endpoint, example.bench.args.map(BigInt), 1n << 62n);
  const staticInstructions = prepareProgram(input.code).instructions.length;
  return () => {
    const r = runEngine({ ...input, engine });
    if (r.exit !== Exit.HALT || r.exitArg !== example.bench.result) throw new Error(`${example.name} (${engine}): exit ${r.exit}, result ${r.exitArg}`);
    return { ...r, seconds: Number(r.runNs) / 1e9, staticInstructions };
  };
}

/** The fastest of `repeat` runs of each, taken in rounds (one run of each per round). */
function interleavedBest<T extends Record<string, () => { seconds: number }>>(repeat: number, runs: T): { [K in keyof T]: ReturnType<T[K]> } {
  const fastest: Partial<Record<keyof T, { seconds: number }>> = {};
  for (let i = 0; i < repeat; i++) {
    for (const key of Object.keys(runs) as (keyof T)[]) {
      const r = runs[key]!();
      if (fastest[key] === undefined || r.seconds < fastest[key]!.seconds) fastest[key] = r;
    }
  }
  return fastest as { [K in keyof T]: ReturnType<T[K]> };
}

/** Bench cases shorter than this natively are shown but left out of the mean: too short to time. */
const MIN_TIMED_SECONDS = 1e-3;
const geomean = (xs: number[]) => Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);

function main(): void {
  const { values } = parseArgs({ options: { repeat: { type: 'string', default: '3' } } });
  const repeat = Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat wants a positive integer, got ${values.repeat}`);
  if (!harnessBuilt()) throw new Error('guest/build/engine-harness is not built (run `zx scripts/build-engine-harness.mjs`)');

  const work = mkdtempSync(join(tmpdir(), 'nub-bench-recompiler-'));
  const missing = missingTools();
  if (missing) console.log(`qemu columns skipped: ${missing}`);
  try {
    const native = new Set(buildNativeExamples(work));
    const linux = join(work, 'linux');
    if (!missing) {
      rmSync(linux, { recursive: true, force: true });
      buildLinuxExamples(linux);
    }
    const header = ['example', 'native ms', 'jit ms', 'jit/native', 'qemu ms', 'qemu/jit', 'interp ms', 'interp/jit', 'insns', 'translate µs', 'µs/insn', 'load µs', 'code KiB'];
    const rows: string[][] = [];
    const ratios: number[] = [];
    for (const example of loadExamples()) {
      if (!native.has(example.name)) {
        console.log(`${example.name}: left out (it uses kernel operations, so it is not pure C)`);
        continue;
      }
      const qemuBinary = join(linux, example.name);
      const skipped = () => ({ result: example.bench.result, seconds: 0 });
      const { native: nativeRun, jit, interp, qemuStartup, qemuFull } = interleavedBest(repeat, {
        native: () => runNative(join(work, example.name), example.bench),
        jit: engineRun(example, 'recompiler'),
        interp: engineRun(example, 'interpreter'),
        qemuStartup: missing ? skipped : () => runUnderQemuCpu(qemuBinary, example.cases[0]!),
        qemuFull: missing ? skipped : () => runUnderQemuCpu(qemuBinary, example.bench),
      });
      for (const [what, r] of [['native', nativeRun], ['qemu', qemuFull]] as const) {
        if (r.result !== example.bench.result) throw new Error(`${example.name} (${what}): gave ${r.result}`);
      }
      const qemu = missing ? undefined : Math.max(qemuFull.seconds - qemuStartup.seconds, 1e-6);
      const compileUs = Number(jit.compileNs) / 1e3;
      if (nativeRun.seconds >= MIN_TIMED_SECONDS) ratios.push(jit.seconds / nativeRun.seconds);
      rows.push([
        example.name,
        (nativeRun.seconds * 1e3).toFixed(1),
        (jit.seconds * 1e3).toFixed(1),
        `${(jit.seconds / nativeRun.seconds).toFixed(2)}x`,
        qemu === undefined ? '-' : (qemu * 1e3).toFixed(1),
        qemu === undefined ? '-' : `${(qemu / jit.seconds).toFixed(2)}x`,
        (interp.seconds * 1e3).toFixed(1),
        `${(interp.seconds / jit.seconds).toFixed(2)}x`,
        String(jit.staticInstructions),
        compileUs.toFixed(0),
        (compileUs / jit.staticInstructions).toFixed(3),
        ((Number(jit.prepareNs) + Number(jit.compileNs)) / 1e3).toFixed(0),
        (jit.codeBytes / 1024).toFixed(1),
      ]);
    }
    console.log(`recompiled PVM2 vs gcc -O2 x86-64 vs qemu-riscv64 vs the C interpreter, best of ${repeat}`);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const line of [header, ...rows]) console.log(line.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '));
    console.log(`geometric mean jit/native over the ${ratios.length} cases taking at least ${MIN_TIMED_SECONDS * 1e3} ms natively: ${geomean(ratios).toFixed(2)}x (target <= 1.5x)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
