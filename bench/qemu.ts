/**
 * Speed of the reference interpreter (engine `local`) against qemu-riscv64 on the
 * examples' bench cases (examples/<name>/expected.json, `bench`), measured side by
 * side in one run:
 *
 *   node dist/bench/qemu.js [--repeat N]
 *
 * Both run the same C source (the image vs. the Linux build of it) on the same
 * input. Instructions are the interpreter's count; qemu's time is its wall time for
 * the case minus its wall time for the example's lightest case (start-up), so its
 * rate is an estimate assuming the same instruction count. Each figure is the best
 * of N runs (default 3).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { admitImage } from '../lib/image/index.js';
import { Exit, exitName, invokeLocal } from '../lib/machine/index.js';
import { best, buildLinuxExamples, loadExamples, measureQemu, missingTools, type Example, type ExampleCase } from '../test/support/qemu-harness.js';

const GAS = 1n << 62n;

interface Row {
  example: string;
  instructions: number;
  localSeconds: number;
  qemuSeconds?: number;
}

function check(what: string, got: bigint, c: ExampleCase): void {
  if (got !== c.result) throw new Error(`${what}: endpoint ${c.endpoint}(${c.args.join(', ')}) gave ${got}, expected ${c.result}`);
}

function measureLocal(example: Example, repeat: number): { instructions: number; seconds: number } {
  const admitted = admitImage(new Uint8Array(readFileSync(example.imagePath)));
  const c = example.bench;
  return best(repeat, () => {
    const started = process.hrtime.bigint();
    const run = invokeLocal(admitted.imageCap, admitted, [c.endpoint], { args: c.args.map(BigInt), gas: GAS });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (run.exit !== Exit.HALT) throw new Error(`${example.name}: local run ended with ${exitName(run.exit)}`);
    check(`${example.name} (local)`, run.exitArg, c);
    return { instructions: run.instructions, seconds };
  });
}

function printTable(rows: Row[]): void {
  const mips = (instructions: number, seconds: number) => (instructions / seconds / 1e6).toFixed(1);
  const header = ['example', 'instructions', 'local s', 'local MIPS', 'qemu s', 'qemu MIPS', 'qemu/local'];
  const lines = rows.map((r) => [
    r.example,
    r.instructions.toLocaleString('en-US'),
    r.localSeconds.toFixed(3),
    mips(r.instructions, r.localSeconds),
    r.qemuSeconds === undefined ? '-' : r.qemuSeconds.toFixed(3),
    r.qemuSeconds === undefined ? '-' : mips(r.instructions, r.qemuSeconds),
    r.qemuSeconds === undefined ? '-' : `${(r.localSeconds / r.qemuSeconds).toFixed(1)}x`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  for (const line of [header, ...lines]) console.log(line.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '));
}

function main(): void {
  const { values } = parseArgs({ options: { repeat: { type: 'string', default: '3' } } });
  const repeat = Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat wants a positive integer, got ${values.repeat}`);

  const examples = loadExamples();
  const missing = missingTools();
  if (missing) console.log(`qemu columns skipped: ${missing}`);
  const binaries = missing ? undefined : mkdtempSync(join(tmpdir(), 'nub-bench-qemu-'));
  try {
    if (binaries) buildLinuxExamples(binaries);
    const rows = examples.map((example) => {
      const local = measureLocal(example, repeat);
      const qemuSeconds = binaries ? measureQemu(example, join(binaries, example.name), repeat) : undefined;
      return { example: example.name, instructions: local.instructions, localSeconds: local.seconds, ...(qemuSeconds !== undefined && { qemuSeconds }) };
    });
    console.log(`PVM2 interpreter (engine local) vs qemu-riscv64, best of ${repeat}; qemu/local = how many times faster qemu is`);
    printTable(rows);
  } finally {
    if (binaries) rmSync(binaries, { recursive: true, force: true });
  }
}

main();
