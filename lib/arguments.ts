/**
 * Checking what callers pass nub (a Sandbox, lib/machine's runMachine and invokeLocal):
 * one rule per kind of argument, one code ('BadArgument', with `path` naming the
 * argument). Strict on purpose: a string where a number belongs is a mistake to
 * report, not a value to coerce.
 */
import { NubError } from './errors.js';
import { MAX_TIMEOUT_MS } from './limits.js';

export function badArgument(path: string, message: string): NubError {
  return new NubError('BadArgument', `${path}: ${message}`, { path });
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? (v.constructor?.name ?? 'an object') : typeof v;
}

/** A bigint, or a number that is a safe integer; taken mod 2^64 (so −1 is 2^64 − 1). */
export function u64(v: unknown, path: string): bigint {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else if (typeof v === 'number' && Number.isInteger(v)) throw badArgument(path, `${v} is beyond 2^53; pass it as a bigint`);
  else throw badArgument(path, `${describe(v)} is not an integer (a bigint or a safe-integer number)`);
  if (b < -(1n << 63n) || b >= 1n << 64n) throw badArgument(path, `${b} does not fit in 64 bits`);
  return BigInt.asUintN(64, b);
}

/** An options bag: undefined or a plain object. */
export function options<T extends object>(v: T | undefined, path: string): Partial<T> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badArgument(path, `options are an object, not ${describe(v)}`);
  return v;
}

/** Gas: a u64, not negative; `fallback` when it is left out (required without one). */
export function gas(v: unknown, fallback?: bigint): bigint {
  if (v === undefined && fallback !== undefined) return fallback;
  if ((typeof v === 'bigint' && v < 0n) || (typeof v === 'number' && v < 0)) throw badArgument('gas', `${describe(v)} is negative`);
  return u64(v, 'gas');
}

export function args(v: unknown, max: number): bigint[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw badArgument('args', `arguments are an array, not ${describe(v)}`);
  if (v.length > max) throw badArgument('args', `${v.length} arguments given; at most ${max} go to φ7..φ${6 + max}`);
  return v.map((a, i) => u64(a, `args[${i}]`));
}

/** Milliseconds: a positive number up to MAX_TIMEOUT_MS, or undefined for none. */
export function timeoutMs(v: unknown, path = 'timeoutMs'): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !(v > 0) || v > MAX_TIMEOUT_MS) {
    throw badArgument(path, `${describe(v)} is not a number of milliseconds in (0, ${MAX_TIMEOUT_MS}]`);
  }
  return v;
}

export function signal(v: unknown): AbortSignal | undefined {
  if (v === undefined) return undefined;
  if (!(v instanceof AbortSignal)) throw badArgument('signal', `${describe(v)} is not an AbortSignal`);
  return v;
}

/** A host function's result: undefined (end the invoke) or a u64 like an argument; anything else is the function's mistake. */
export function hostResult(v: unknown, n: number): bigint | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'object' && v !== null && typeof (v as PromiseLike<unknown>).then === 'function') {
    // Not awaited (host functions are synchronous here): keep its rejection from killing the process.
    Promise.resolve(v).catch(() => {});
    throw badArgument(`host function ${n}`, 'returned a Promise; host functions must return a value synchronously');
  }
  return u64(v, `host function ${n}'s result`);
}
