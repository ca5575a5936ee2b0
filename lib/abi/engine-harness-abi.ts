/**
 * Byte layout of the engine test harness (guest/engine/harness): one request on
 * stdin, one response on stdout. Declared once here; the C header
 * `guest/engine/harness/harness_abi.h` is generated from it by
 * `scripts/gen-engine-tables.mjs`, and `test/support/engine-harness.ts` encodes and
 * decodes with the same declaration.
 *
 * Request:  EngineRequest, then `code_len` code bytes, then `mapping_count` times
 *           (EngineMapping, then `data_len` bytes: the mapping's first bytes, zeros after).
 * Response: EngineResponse, then the final `size` bytes of every writable mapping,
 *           in request order.
 */
import { NUM_REGS } from '../caps/constants.js';
import { defineConstants, defineStruct } from './struct.js';

export const HarnessMagic = defineConstants('PVM_HARNESS', 'Engine harness framing.', {
  REQUEST_MAGIC: 0x5152_4d50, // "PMRQ" little-endian
  RESPONSE_MAGIC: 0x5352_4d50, // "PMRS" little-endian
});

export const EngineRequest = defineStruct('pvm_harness_request', 'One engine run: the program, where it starts and its gas.', {
  magic: 'u32',
  code_len: 'u32',
  mapping_count: 'u32',
  _pad0: 'u32',
  /** Byte offset of the entry in the code (pvm_enter: not a block start = PANIC there, as for an endpoint). */
  entry: 'u64',
  gas: 'u64',
  /** φ0..φ12, u64 each. */
  regs: ['u64', NUM_REGS],
  /** enum pvm_engine: 0 interpreter, 1 recompiler (translated by pvm_compile before the run). */
  engine: 'u32',
  _pad1: 'u32',
});

export const EngineMapping = defineStruct('pvm_harness_mapping', 'One memory mapping of a request.', {
  start: 'u32',
  size: 'u32',
  writable: 'u32',
  /** Bytes that follow this record; at most `size`. */
  data_len: 'u32',
});

export const EngineResponse = defineStruct('pvm_harness_response', 'How the run ended.', {
  magic: 'u32',
  exit: 'u32',
  pc: 'u32',
  _pad0: 'u32',
  exit_arg: 'u64',
  gas: 'u64',
  regs: ['u64', NUM_REGS],
  /** CPU time (this thread's) spent inside pvm_execute only (no process start-up, no decoding). */
  run_ns: 'u64',
  /** CPU time spent in pvm_prepare. */
  prepare_ns: 'u64',
  /** CPU time spent in pvm_compile (0 for the interpreter). */
  compile_ns: 'u64',
  /** Bytes of x86-64 code pvm_compile reserved (0 for the interpreter). */
  code_bytes: 'u64',
  /** Instructions completed (statistics, as lib/machine counts them). */
  instructions: 'u64',
});

export const ENGINE_HARNESS_ABI = {
  constants: [HarnessMagic],
  structs: [EngineRequest, EngineMapping, EngineResponse],
};
