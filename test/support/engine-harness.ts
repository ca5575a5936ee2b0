/**
 * Client of the engine harness (guest/build/engine-harness): encodes a machine input
 * in the layout of lib/abi/engine-harness-abi.ts, runs the native engine on it and
 * decodes the result into the shape of lib/machine's InvokeResult, so the two
 * engines' answers compare field by field.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EngineMapping, EngineRequest, EngineResponse, HarnessMagic } from '../../lib/abi/engine-harness-abi.js';
import type { AdmittedImage } from '../../lib/image/index.js';
import { NUM_REGS, type ExitCode } from '../../lib/machine/abi.js';
import { endpointInput, type InvokeResult, type MachineStop, type MappingSpec } from '../../lib/machine/index.js';

/** Compiled into <dist>/test/unit/, so the checkout is three levels up. */
const root = fileURLToPath(new URL('../../../', import.meta.url));
export const HARNESS_PATH = `${root}guest/build/engine-harness`;

export function harnessBuilt(): boolean {
  return existsSync(HARNESS_PATH);
}

export interface EngineInput {
  code: Uint8Array;
  mappings: readonly MappingSpec[];
  /** Byte offset into the code. */
  entry: number;
  /** φ0..φ12; missing ones are 0. */
  regs: readonly bigint[];
  gas: bigint;
  /** enum pvm_engine; default the interpreter. */
  engine?: EngineKind;
}

/** The C engine's two ways to run (enum pvm_engine in guest/engine/pvm.h). */
export const ENGINE_KINDS = { interpreter: 0, recompiler: 1 } as const;
export type EngineKind = keyof typeof ENGINE_KINDS;

/** lib/machine's MachineStop and memory, and the harness's own measurements. */
export interface EngineResult extends MachineStop, Pick<InvokeResult, 'memory'> {
  /** Time inside pvm_execute, pvm_prepare and pvm_compile, measured by the harness. */
  runNs: bigint;
  prepareNs: bigint;
  compileNs: bigint;
  /** Bytes of the recompiler's translation (0 for the interpreter). */
  codeBytes: number;
}

export function encodeRequest(input: EngineInput): Uint8Array {
  const size = EngineRequest.size + input.code.length
    + input.mappings.reduce((n, m) => n + EngineMapping.size + Math.min(m.content.length, m.size), 0);
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  EngineRequest.set(view, 0, 'magic', HarnessMagic.values.REQUEST_MAGIC);
  EngineRequest.set(view, 0, 'code_len', input.code.length);
  EngineRequest.set(view, 0, 'mapping_count', input.mappings.length);
  EngineRequest.set(view, 0, 'entry', BigInt(input.entry));
  EngineRequest.set(view, 0, 'gas', input.gas);
  EngineRequest.set(view, 0, 'engine', ENGINE_KINDS[input.engine ?? 'interpreter']);
  for (let i = 0; i < NUM_REGS; i++) view.setBigUint64(EngineRequest.offsets.regs + 8 * i, BigInt.asUintN(64, input.regs[i] ?? 0n), true);
  let at = EngineRequest.size;
  bytes.set(input.code, at);
  at += input.code.length;
  for (const m of input.mappings) {
    const data = m.content.subarray(0, Math.min(m.content.length, m.size));
    EngineMapping.set(view, at, 'start', m.start);
    EngineMapping.set(view, at, 'size', m.size);
    EngineMapping.set(view, at, 'writable', m.writable ? 1 : 0);
    EngineMapping.set(view, at, 'data_len', data.length);
    bytes.set(data, at + EngineMapping.size);
    at += EngineMapping.size + data.length;
  }
  return bytes;
}

export function decodeResponse(bytes: Uint8Array, mappings: readonly MappingSpec[]): EngineResult {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < EngineResponse.size || EngineResponse.get(view, 0, 'magic') !== HarnessMagic.values.RESPONSE_MAGIC) {
    throw new Error(`engine harness: malformed response (${bytes.length} bytes)`);
  }
  const regs = Array.from({ length: NUM_REGS }, (_, i) => view.getBigUint64(EngineResponse.offsets.regs + 8 * i, true));
  const memory: { start: number; bytes: Uint8Array }[] = [];
  let at = EngineResponse.size;
  for (const m of mappings) {
    if (!m.writable) continue;
    memory.push({ start: m.start, bytes: bytes.slice(at, at + m.size) });
    at += m.size;
  }
  if (at !== bytes.length) throw new Error(`engine harness: response is ${bytes.length} bytes, expected ${at}`);
  memory.sort((x, y) => x.start - y.start);
  return {
    exit: EngineResponse.get(view, 0, 'exit') as ExitCode, // the tests compare it with the reference's
    exitArg: EngineResponse.get(view, 0, 'exit_arg'),
    regs,
    pc: EngineResponse.get(view, 0, 'pc'),
    gasLeft: EngineResponse.get(view, 0, 'gas'),
    memory,
    instructions: Number(EngineResponse.get(view, 0, 'instructions')),
    runNs: EngineResponse.get(view, 0, 'run_ns'),
    prepareNs: EngineResponse.get(view, 0, 'prepare_ns'),
    compileNs: EngineResponse.get(view, 0, 'compile_ns'),
    codeBytes: Number(EngineResponse.get(view, 0, 'code_bytes')),
  };
}

/** Runs the native engine on `input` in a fresh harness process. */
export function runEngine(input: EngineInput): EngineResult {
  const run = spawnSync(HARNESS_PATH, [], { input: encodeRequest(input), maxBuffer: 1 << 30 });
  if (run.error) throw run.error;
  if (run.status !== 0) throw new Error(`engine harness exited with ${run.status}: ${run.stderr.toString()}`);
  return decodeResponse(new Uint8Array(run.stdout.buffer, run.stdout.byteOffset, run.stdout.byteLength), input.mappings);
}

export interface ExampleCase {
  endpoint: number;
  args: (number | string)[];
  result?: string;
  /** Argument cap 0 (UTF-8 bytes) and the start of returned cap 0; examples/README.md. */
  input?: string;
  output?: string;
}

/**
 * The built examples and their expected.json. `nativeHarness`: only those the native
 * engine harness can run (it has no cap frame, so kernel operations PANIC there).
 */
export function exampleImages({ nativeHarness = false } = {}): { path: string; expected: { cases: ExampleCase[]; bench?: ExampleCase; kernelOps?: boolean; instance?: ExampleCase[] } }[] {
  const examples = `${root}examples/`;
  if (!existsSync(examples)) return [];
  return readdirSync(examples, { withFileTypes: true }).filter((d) => d.isDirectory()).flatMap((d) => {
    const dir = `${examples}${d.name}`;
    if (!existsSync(`${dir}/expected.json`)) return [];
    const expected = JSON.parse(readFileSync(`${dir}/expected.json`, 'utf8'));
    const path = `${dir}/${expected.image}`;
    // An example that pins other images runs only in a sandbox holding them (test/kvm/nested.test.ts).
    return existsSync(path) && expected.pinImages === undefined && !(nativeHarness && expected.kernelOps) ? [{ path, expected }] : [];
  });
}

/** The machine input `invokeLocal` runs for an endpoint call, in the harness's terms (the code, not the pre-decoded program). */
export function exampleInput(admitted: AdmittedImage, endpointKey: number, args: bigint[], gas: bigint): EngineInput {
  const { mappings, entry, regs } = endpointInput(admitted.imageCap, admitted, endpointKey, args);
  return { code: admitted.imageCap.code, mappings, entry: Number(entry), regs, gas };
}
