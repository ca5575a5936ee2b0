/**
 * The error catalogue (issue 10 item 4): one table, the code type derived from it, the
 * native addon's codes and docs/errors.md generated from it, no synonyms left.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, isNubErrorCode, NubError } from '../../lib/errors.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));

describe('error catalogue', () => {
  it('generates native/nub_errors.h and docs/errors.md from ERROR_CODES (both up to date)', () => {
    execFileSync(process.execPath, [join(root, 'node_modules/zx/build/cli.js'), join(root, 'scripts/gen-errors.mjs'), '--check'], { cwd: root });
    const doc = readFileSync(join(root, 'docs/errors.md'), 'utf8');
    for (const name of Object.keys(ERROR_CODES)) assert.ok(doc.includes(`| \`${name}\` |`), name);
  });

  it('the addon throws only codes named through the generated header', () => {
    for (const file of readdirSync(join(root, 'native')).filter((f) => /\.(cc|h)$/.test(f) && f !== 'nub_errors.h')) {
      const text = readFileSync(join(root, 'native', file), 'utf8');
      assert.deepEqual(text.match(/(MakeError\([^,]+, |NubFailure\{)"/g) ?? [], [], `${file} throws a code spelled as a literal`);
    }
  });

  it('keeps one name per failure: the synonyms are gone', () => {
    for (const synonym of ['InvalidArgument', 'MemoryClosed', 'GuestTimeout', 'GuestOutOfMemory']) assert.equal(isNubErrorCode(synonym), false, synonym);
    assert.equal(new NubError('InvalidArgument' as never, 'x').code, 'Internal', 'an uncatalogued code from the addon shows as Internal');
  });
});
