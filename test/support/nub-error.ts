import assert from 'node:assert/strict';
import { NubError, type NubErrorCode } from '../../lib/errors.js';

function check(caught: unknown, threw: boolean, code: NubErrorCode, path: string | undefined): NubError {
  assert.ok(threw, `expected NubError ${code}, nothing was thrown`);
  assert.ok(caught instanceof NubError, `expected NubError ${code}, got ${caught instanceof Error ? caught.stack : String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (path !== undefined) assert.equal(caught.path, path);
  return caught;
}

/**
 * The one way tests assert a failure: `fn` throws (or the promise, or `fn`'s promise,
 * rejects with) a NubError with `code` (and `path`, when given). Returns the error.
 */
export function expectNubError(p: Promise<unknown> | (() => Promise<unknown>), code: NubErrorCode, path?: string): Promise<NubError>;
export function expectNubError(fn: () => unknown, code: NubErrorCode, path?: string): NubError;
export function expectNubError(fn: Promise<unknown> | (() => unknown), code: NubErrorCode, path?: string): NubError | Promise<NubError> {
  let result: unknown;
  try {
    result = typeof fn === 'function' ? fn() : fn;
  } catch (err) {
    return check(err, true, code, path);
  }
  if (result instanceof Promise) return result.then(() => check(undefined, false, code, path), (err: unknown) => check(err, true, code, path));
  return check(undefined, false, code, path);
}
