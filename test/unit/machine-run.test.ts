/** `nub run`: invokes an endpoint of an image file and reports how it ended. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DataCap } from '../../lib/caps/index.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { command } from '../../lib/cli/commands/run.js';
import { isNubError } from '../../lib/errors.js';
import { ImageBuilder, encodeImage } from '../../lib/image/index.js';
import { Gas } from '../../lib/machine/index.js';
import { A, X, assemble } from './machine-asm.js';

/** Runs the command and returns its status and what it printed. */
async function runCommand(argv: string[]): Promise<{ status: number; out: string }> {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => { lines.push(args.join(' ')); };
  try {
    return { status: await command.run(argv), out: lines.join('\n') };
  } finally {
    console.log = original;
  }
}

describe('machine: nub run', () => {
  let dir: string;
  let image: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nub-run-'));
    image = join(dir, 'add.ssz');
    // endpoint [1]: a0 = a0 + a1; endpoint [2]: trap.
    const code = assemble(A.add(X.a0, X.a0, X.a1), A.ecalli(0), A.trap());
    writeFileSync(image, encodeImage(new ImageBuilder().setCode(code).addEndpoint(1, { entryPc: 0 }).addEndpoint(2, { entryPc: 8 }).build()));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the exit, a0 and gas as JSON, and exits 0 on HALT', async () => {
    const { status, out } = await runCommand(['--engine', 'local', image, '--endpoint', '1', '--arg', '40', '--arg', '0x2', '--gas', '500', '--json']);
    const report = JSON.parse(out) as Record<string, unknown>;
    assert.equal(status, 0);
    assert.equal(report.exit, 'HALT');
    assert.equal(report.a0, '42');
    assert.equal(report.gasUsed, String(Gas.ALU + Gas.CALL));
    assert.equal(report.gasLeft, String(500 - Gas.ALU - Gas.CALL));
  });

  it('takes negative arguments mod 2^64 and reports other exits with status 1', async () => {
    const ok = await runCommand([image, '--endpoint', '1', '--arg=-1', '--arg', '1']);
    assert.match(ok.out, /^exit\s+HALT/m);
    assert.match(ok.out, /^a0 \(φ7\)\s+0 /m);
    const trap = await runCommand([image, '--endpoint', '2']);
    assert.equal(trap.status, 1);
    assert.match(trap.out, /^exit\s+TRAP/m);
  });

  it('passes --input as argument cap 0, writes returned cap 0 to --output and lists returned caps', async () => {
    const transform = fileURLToPath(new URL('../../../examples/transform/transform.ssz', import.meta.url));
    writeFileSync(join(dir, 'in'), 'hello');
    const { status, out } = await runCommand(['--engine', 'local', transform, '--arg', '5', '--input', join(dir, 'in'), '--output', join(dir, 'out')]);
    assert.equal(status, 0);
    const bytes = readFileSync(join(dir, 'out'));
    assert.equal(bytes.length, 4096);
    assert.equal(bytes.subarray(0, 5).toString(), 'olleh');
    assert.ok(bytes.subarray(5).every((b) => b === 0));
    const hash = Buffer.from(DataCap.fromBytes(new TextEncoder().encode('olleh')).hash()).toString('hex');
    assert.match(out, new RegExp(`^cap \\[0\\]\\s+Data 4096 bytes ${hash}$`, 'm'));
    // Without an input the endpoint returns no cap: nothing for --output.
    await assert.rejects(runCommand(['--engine', 'local', transform, '--arg', '5', '--output', join(dir, 'none')]), (e) => isNubError(e, 'Cli.NoOutputCap'));
  });

  it('refuses an unknown engine or endpoint', async () => {
    await assert.rejects(runCommand(['--engine', 'nope', image, '--endpoint', '1']), (e) => isNubError(e, 'Cli.UnknownEngine'));
    await assert.rejects(runCommand([image, '--endpoint', '9']), (e) => isNubError(e, 'Machine.NoSuchEndpoint'));
    await assert.rejects(runCommand([image, '--endpoint', '1', '--arg', 'x']), (e) => isNubError(e, 'Cli.BadNumber'));
  });
});
