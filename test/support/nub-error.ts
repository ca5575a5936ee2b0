import assert from 'node:assert/strict';
import { NubError } from '../../lib/errors.js';

/** Runs `fn`, asserts it throws a NubError with `code`, and returns that error for further checks. */
export function expectNubError(fn: () => unknown, code: string): NubError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof NubError, `expected NubError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}
