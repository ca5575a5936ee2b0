/**
 * The examples and their independent implementation: loads examples/<name>/
 * (image + expected.json), builds the same C sources as RISC-V Linux programs and
 * runs them under qemu-riscv64. Shared by test/unit/examples.test.ts (the
 * cross-check), test/unit/pack.test.ts and bench/qemu.ts (the speed comparison).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One invocation of an example endpoint and the φ7 it must reply with. */
export interface ExampleCase {
  endpoint: number;
  args: number[];
  result: bigint;
  /** Argument cap 0: these bytes (UTF-8). */
  input?: string;
  /** Returned cap 0 must start with these bytes (UTF-8), zeros after. */
  output?: string;
}

export interface Example {
  name: string;
  /** The committed image, examples/<name>/<name>.ssz. */
  imagePath: string;
  cases: ExampleCase[];
  /** A heavier case, for bench/qemu.ts. */
  bench: ExampleCase;
  /** Calls in order on one Instance (sandbox.spawn), each seeing the state the last one left. */
  instance: ExampleCase[];
}

type CaseFile = { endpoint: number; args: number[]; result: string; input?: string; output?: string };

interface ExpectedFile {
  image: string;
  cases: CaseFile[];
  bench: CaseFile;
  instance?: CaseFile[];
  /** Pinned Image slots: slot → the example whose image it names. */
  pinImages?: Record<string, string>;
}

export const QEMU = 'qemu-riscv64';

/** The checkout: the nearest directory above this file that holds examples/sdk/nub.h. */
export function findRepoRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'examples', 'sdk', 'nub.h'))) return dir;
    if (dirname(dir) === dir) throw new Error(`cannot find the checkout (examples/sdk/nub.h) above ${from}`);
  }
}

function toCase(c: CaseFile): ExampleCase {
  return { ...c, result: BigInt(c.result) };
}

/** Every examples/<name>/ with an expected.json, by name. */
export function loadExamples(root = findRepoRoot()): Example[] {
  const dir = join(root, 'examples');
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, 'expected.json')))
    .flatMap((e) => {
      const expected = JSON.parse(readFileSync(join(dir, e.name, 'expected.json'), 'utf8')) as ExpectedFile;
      // An example that pins other images runs only in a sandbox holding them (test/kvm/nested.test.ts, bench/caps.ts).
      if (expected.pinImages !== undefined) return [];
      return [{ name: e.name, imagePath: join(dir, e.name, expected.image), cases: expected.cases.map(toCase), bench: toCase(expected.bench), instance: (expected.instance ?? []).map(toCase) }];
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Why `tools` cannot run here (not installed), or undefined when they all can. */
export function missingTools(tools: Array<'compiler' | 'qemu'> = ['compiler', 'qemu'], root = findRepoRoot()): string | undefined {
  const toolchain = JSON.parse(readFileSync(join(root, 'examples', 'sdk', 'toolchain.json'), 'utf8')) as { cc: string };
  const commands = tools.map((t) => (t === 'compiler' ? toolchain.cc : QEMU));
  const missing = commands.filter((command) => spawnSync(command, ['--version']).status !== 0);
  return missing.length === 0 ? undefined : `${missing.join(' and ')} not installed (scripts/install-riscv-toolchain.sh installs them)`;
}

/** Runs scripts/build-examples.mjs (which owns the compiler flags) with `args`. */
function buildScript(args: string[], root: string): void {
  const zx = join(root, 'node_modules', '.bin', 'zx');
  const run = spawnSync(zx, [join(root, 'scripts', 'build-examples.mjs'), ...args], { cwd: root, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`build-examples.mjs ${args.join(' ')} failed:\n${run.stdout}${run.stderr}`);
}

/** Builds every example as a static RISC-V Linux program, `outDir/<name>`. */
export function buildLinuxExamples(outDir: string, root = findRepoRoot()): void {
  buildScript(['--linux', outDir], root);
}

/** Compiles one C file with the SDK into a PVM2 ELF executable (for `nub pack`). */
export function compileForPvm(source: string, output: string, root = findRepoRoot()): void {
  buildScript(['--compile', source, '--out', output], root);
}

/** Runs `binary KEY ARGS...` under qemu-riscv64: the φ7 it prints and the wall time of the whole run. */
export function runUnderQemu(binary: string, c: Pick<ExampleCase, 'endpoint' | 'args'>): { result: bigint; seconds: number } {
  const started = process.hrtime.bigint();
  const run = spawnSync(QEMU, [binary, String(c.endpoint), ...c.args.map(String)], { encoding: 'utf8' });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (run.status !== 0 || !/^\d+\n$/.test(run.stdout)) {
    throw new Error(`${QEMU} ${binary} ${c.endpoint} ${c.args.join(' ')} failed (status ${run.status}): ${run.stdout}${run.stderr}`);
  }
  return { result: BigInt(run.stdout.trim()), seconds };
}

/**
 * Runs `binary KEY ARGS...` under qemu-riscv64 inside `perf stat`: the φ7 it prints
 * and qemu's CPU time (task-clock), which on a shared machine, unlike wall time, does
 * not count preemption.
 */
export function runUnderQemuCpu(binary: string, c: Pick<ExampleCase, 'endpoint' | 'args'>): { result: bigint; seconds: number } {
  const run = spawnSync('perf', ['stat', '-x,', '-e', 'task-clock', QEMU, binary, String(c.endpoint), ...c.args.map(String)], { encoding: 'utf8' });
  const clock = /^([\d.]+),msec,task-clock/m.exec(run.stderr);
  if (run.status !== 0 || !/^\d+\n$/.test(run.stdout) || !clock) {
    throw new Error(`perf stat ${QEMU} ${binary} failed (status ${run.status}): ${run.stdout}${run.stderr}`);
  }
  return { result: BigInt(run.stdout.trim()), seconds: Number(clock[1]) / 1e3 };
}

/** The fastest of `repeat` runs. */
export function best<T extends { seconds: number }>(repeat: number, run: () => T): T {
  let fastest: T | undefined;
  for (let i = 0; i < repeat; i++) {
    const r = run();
    if (fastest === undefined || r.seconds < fastest.seconds) fastest = r;
  }
  return fastest!;
}

/**
 * qemu-riscv64's time for an example's bench case, in seconds: its time (wall time,
 * or what `run` measures) minus that of the example's lightest case (qemu's start-up
 * and first translations), each the best of `repeat`.
 */
export function measureQemu(example: Example, binary: string, repeat: number, run = runUnderQemu): number {
  const lightest = example.cases[0]!;
  const startup = best(repeat, () => run(binary, lightest)).seconds;
  const full = best(repeat, () => run(binary, example.bench));
  if (full.result !== example.bench.result) throw new Error(`${example.name} (qemu): gave ${full.result}, expected ${example.bench.result}`);
  return Math.max(full.seconds - startup, 1e-6);
}

/**
 * Builds every example for this host with gcc -O2 (`outDir/<name>`, driven by
 * bench/baseline/native_main.c): the same source as the image, through the Linux
 * build's endpoint table. The SDK's memory functions and -ffreestanding and
 * -fno-tree-loop-distribute-patterns match the RISC-V build; -malign-data=abi keeps
 * the endpoint table's rows at their ABI stride. Examples that use kernel operations
 * are not pure C (their Linux build links linux.c's RISC-V runtime): they are left out.
 * Returns the names built.
 */
export function buildNativeExamples(outDir: string, root = findRepoRoot()): string[] {
  const sdk = join(root, 'examples', 'sdk');
  const built: string[] = [];
  for (const example of loadExamples(root)) {
    const source = join(root, 'examples', example.name, `${example.name}.c`);
    if (/\bnub_(kernel_op_|data_|drop\b|copy\b|move\b)/.test(readFileSync(source, 'utf8'))) continue;
    const run = spawnSync('gcc', ['-O2', '-malign-data=abi', '-std=c11', '-ffreestanding', '-fno-tree-loop-distribute-patterns', '-DNUB_TARGET_LINUX',
      `-I${sdk}`, source, join(sdk, 'mem.c'), join(root, 'bench', 'baseline', 'native_main.c'), '-o', join(outDir, example.name)], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`gcc ${example.name} failed:\n${run.stderr}`);
    built.push(example.name);
  }
  return built;
}

/** Runs a native build's endpoint once: its result and the CPU time of the call in seconds. */
export function runNative(binary: string, c: Pick<ExampleCase, 'endpoint' | 'args'>): { result: bigint; seconds: number } {
  const run = spawnSync(binary, [String(c.endpoint), ...c.args.map(String)], { encoding: 'utf8' });
  const m = /^(\d+) (\d+)\n$/.exec(run.stdout);
  if (run.status !== 0 || !m) throw new Error(`${binary} ${c.endpoint} ${c.args.join(' ')} failed (status ${run.status}): ${run.stdout}${run.stderr}`);
  return { result: BigInt(m[1]!), seconds: Number(m[2]) / 1e9 };
}
