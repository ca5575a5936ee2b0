// `nub run` under abuse, as a user would meet it: fuzzed image files and images of
// random code, each run in its own process on the kvm engine. Every run must end with
// exit status 0, 1 or 3 and one JSON object, a result or a typed error:
// never a crash, a signal, a hang or an untyped error.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageBuilder } from '../../lib/image/builder.js';
import { fuzzInput } from '../support/image-fuzz.js';
import { Exit } from '../../lib/machine/abi.js';
import { SeededRandom } from '../unit/seeded-random.js';
import { describeKvm } from './kvm-available.js';

const CLI = fileURLToPath(new URL('../../lib/cli/main.js', import.meta.url));
const CASES = 6;
const GAS = 200_000;

interface Outcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function nubRun(file: string): Outcome {
  const run = spawnSync(process.execPath, [CLI, 'run', file, '--engine', 'kvm', '--json', '--gas', String(GAS)], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: run.status, signal: run.signal, stdout: run.stdout, stderr: run.stderr };
}

/**
 * The run ended as a user may see it: one JSON object on stdout, either a result
 * (status 0 for HALT, 3 for any other exit) or a typed error (status 1). Returns the exit or error code.
 */
function assertWellBehaved(o: Outcome, what: string): string {
  assert.equal(o.signal, null, `${what}: killed by ${o.signal}\n${o.stderr}`);
  assert.ok(o.status === 0 || o.status === 1 || o.status === 3, `${what}: exit status ${o.status}\n${o.stderr}`);
  const out = JSON.parse(o.stdout) as { ok: boolean; exit?: string; error?: { code: string } };
  assert.equal(out.ok, o.status === 0);
  if (out.error) {
    assert.equal(o.status, 1, `${what}: status ${o.status} for error ${out.error.code}`);
    assert.match(out.error.code, /^[A-Za-z.]+$/);
    return out.error.code;
  }
  assert.equal(o.status, out.exit === 'HALT' ? 0 : 3, `${what}: status ${o.status} for exit ${out.exit}`);
  return out.exit!;
}

describeKvm('reliability: nub run on fuzzed images and random code', function () {
  this.timeout(180_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nub-reliability-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it(`${CASES} fuzzed image files end in a result or a typed error`, () => {
    const outcomes = new Set<string>();
    for (let i = 0; i < CASES; i++) {
      const file = join(dir, `fuzz-${i}.ssz`);
      writeFileSync(file, fuzzInput(606, i));
      outcomes.add(assertWellBehaved(nubRun(file), `fuzz case ${i}`));
    }
    assert.ok(outcomes.size >= 1);
  });

  it(`${CASES} images of random code run to an exit within their gas`, () => {
    const rng = new SeededRandom(607);
    const exits = new Map<string, number>();
    for (let i = 0; i < CASES; i++) {
      const code = rng.bytes(64 + rng.below(4000));
      const image = new ImageBuilder().setCode(code).addEndpoint([1], { entryPc: rng.below(code.length) }).encode();
      const file = join(dir, `random-${i}.ssz`);
      writeFileSync(file, image);
      const exit = assertWellBehaved(nubRun(file), `random code ${i}`);
      exits.set(exit, (exits.get(exit) ?? 0) + 1);
    }
    // The images are valid, so each one runs: every outcome is an exit, not an error.
    assert.ok([...exits.keys()].every((e) => e in Exit), JSON.stringify([...exits]));
  });
});
