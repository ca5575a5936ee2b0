/** The `nub` CLI's conventions, in a child process as a user runs it: exit statuses, JSON shapes, help, usage errors. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DataCap } from '../../lib/caps/index.js';
import { ImageBuilder, encodeImage } from '../../lib/image/index.js';
import { Gas } from '../../lib/machine/index.js';
import { packageRoot } from '../../lib/native/binding.js';
import { CLI, nub } from '../support/cli.js';
import { A, X, assemble } from '../support/machine-asm.js';

/** Checks a JSON error object: the fixed fields, and a message. */
function assertJsonError(json: Record<string, any> | undefined, code: string): void {
  assert.ok(json, 'stdout is one JSON object');
  assert.deepEqual(Object.keys(json), ['ok', 'error']);
  assert.equal(json.ok, false);
  assert.deepEqual(Object.keys(json.error), ['code', 'message', 'path']);
  assert.equal(json.error.code, code);
  assert.equal(typeof json.error.message, 'string');
}

/** So that only --timeout ends the endless loop (the default gas runs out in about a second on a fast machine). */
const MAX_GAS = String((1n << 64n) - 1n);

describe('nub CLI', function () {
  this.timeout(60_000);
  let dir: string;
  let image: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nub-cli-'));
    image = join(dir, 'add.ssz');
    // endpoint [1]: a0 = a0 + a1; [2]: trap; [3]: an endless loop.
    const code = assemble(A.add(X.a0, X.a0, X.a1), A.ecalli(0), A.trap(), A.jal(X.zero, 0));
    writeFileSync(image, encodeImage(new ImageBuilder().setCode(code)
      .addEndpoint(1, { entryPc: 0 }).addEndpoint(2, { entryPc: 8 }).addEndpoint(3, { entryPc: 12 }).build()));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('run', () => {
    it('prints the result as one JSON object with stable fields, status 0 on HALT', () => {
      const r = nub(['run', '--engine', 'local', image, '--endpoint', '1', '--arg', '40', '--arg', '0x2', '--gas', '500', '--json']);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(Object.keys(r.json!), ['ok', 'engine', 'exit', 'exitCode', 'exitArg', 'a0', 'pc', 'gasUsed', 'gasLeft', 'instructions', 'timeMs', 'regs', 'caps']);
      assert.equal(r.json!.ok, true);
      assert.equal(r.json!.engine, 'local');
      assert.equal(r.json!.exit, 'HALT');
      assert.equal(r.json!.a0, '42');
      assert.equal(r.json!.gasUsed, String(Gas.ALU + Gas.CALL));
      assert.equal(r.json!.gasLeft, String(500 - Gas.ALU - Gas.CALL));
      assert.equal(typeof r.json!.timeMs, 'number');
      assert.equal(r.json!.regs.length, 13);
    });

    it('passes --input as argument cap 0, writes returned cap 0 to --output and lists returned caps', () => {
      const transform = join(packageRoot(), 'examples', 'transform', 'transform.ssz');
      writeFileSync(join(dir, 'in'), 'hello');
      const r = nub(['run', '--engine', 'local', transform, '--arg', '5', '--input', join(dir, 'in'), '--output', join(dir, 'out')]);
      assert.equal(r.status, 0, r.stderr);
      const bytes = readFileSync(join(dir, 'out'));
      assert.equal(bytes.length, 4096);
      assert.equal(bytes.subarray(0, 5).toString(), 'olleh');
      assert.ok(bytes.subarray(5).every((b) => b === 0));
      const hash = Buffer.from(DataCap.fromBytes(new TextEncoder().encode('olleh')).hash()).toString('hex');
      assert.match(r.stdout, new RegExp(`^cap \\[0\\]\\s+Data 4096 bytes ${hash}$`, 'm'));
      // Without an input the endpoint returns no cap: nothing for --output.
      assertJsonError(nub(['run', '--engine', 'local', transform, '--arg', '5', '--output', join(dir, 'none'), '--json']).json, 'Cli.NoOutputCap');
    });

    it('--load loads the images an image spawns first; the Instance it returns is listed', () => {
      const example = (name: string) => join(packageRoot(), 'examples', name, `${name}.ssz`);
      const r = nub(['run', '--engine', 'local', example('parent'), '--load', example('counter'), '--arg', '3', '--arg', '5', '--json']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.json!.a0, '15');
      assert.deepEqual(r.json!.caps.map((c: { slot: number; kind: string }) => [c.slot, c.kind]), [[0, 'Instance']]);
      // Without it the parent's spawn is NOT_LOADED, which it replies as 2^64 - 1 - 8.
      assert.equal(nub(['run', '--engine', 'local', example('parent'), '--arg', '3', '--arg', '5', '--json']).json!.a0, String((1n << 64n) - 9n));
    });

    it('exits 3 for a guest exit other than HALT, and takes negative arguments mod 2^64', () => {
      const ok = nub(['run', '--engine', 'local', image, '--arg=-1', '--arg', '1']);
      assert.equal(ok.status, 0);
      assert.match(ok.stdout, /^a0 \(φ7\)\s+0 /m);
      const trap = nub(['run', '--engine', 'local', image, '--endpoint', '2', '--json']);
      assert.equal(trap.status, 3);
      assert.equal(trap.json!.ok, false);
      assert.equal(trap.json!.exit, 'TRAP');
    });

    it('stops an endless loop at --timeout with error Timeout, status 1', () => {
      const started = Date.now();
      const r = nub(['run', '--engine', 'local', image, '--endpoint', '3', '--gas', MAX_GAS, '--timeout', '200', '--json']);
      assert.equal(r.status, 1);
      assertJsonError(r.json, 'Timeout');
      assert.ok(Date.now() - started < 5000);
    });

    it('shows a live status line on a terminal after half a second, none with NO_COLOR or when piped', function () {
      if (spawnSync('script', ['--version']).error) this.skip(); // util-linux's script gives the run a terminal
      const command = (env: string) => `${env} ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} run --engine local ${JSON.stringify(image)} --endpoint 3 --gas ${MAX_GAS} --timeout 1200`;
      const onTty = spawnSync('script', ['-qc', command(''), '/dev/null'], { encoding: 'utf8' });
      assert.match(onTty.stdout, new RegExp(`\\rnub run: \\d+\\.\\d s on engine local, [1-9]\\d* instructions, [1-9]\\d* gas used of ${MAX_GAS} `));
      const noColor = spawnSync('script', ['-qc', command('NO_COLOR=1'), '/dev/null'], { encoding: 'utf8' });
      assert.match(noColor.stdout, /error \[Timeout\]/);
      assert.doesNotMatch(noColor.stdout, /nub run: \d/);
      const piped = nub(['run', '--engine', 'local', image, '--endpoint', '3', '--gas', MAX_GAS, '--timeout', '1200']);
      assert.doesNotMatch(piped.stderr, /nub run: \d/);
    });

    it('gives typed errors: the API\'s UnknownEndpoint, and for files that cannot be read or are not regular files', () => {
      const unknown = nub(['run', '--engine', 'local', image, '--endpoint', '9', '--json']);
      assert.equal(unknown.status, 1);
      assertJsonError(unknown.json, 'UnknownEndpoint');
      const missing = nub(['run', join(dir, 'nope.ssz')]);
      assert.equal(missing.status, 1);
      assert.match(missing.stderr, /^nub run: error \[ENOENT\]/);
      assert.doesNotMatch(missing.stderr, /internal error|at .*\.js:\d+/);
      assertJsonError(nub(['run', dir, '--json']).json, 'NotAFile');
      assertJsonError(nub(['run', '/dev/zero', '--json']).json, 'NotAFile');
      assertJsonError(nub(['run', '--engine', 'local', join(packageRoot(), 'package.json'), '--json']).json, 'BadImage');
    });

    it('answers a bad command line with one line, the usage and status 2', () => {
      for (const args of [['--nope'], ['--gas'], ['--engine', 'nope'], ['--arg', 'x'], ['--timeout', '-5'], []]) {
        const r = nub(['run', ...(args.length ? [image] : []), ...args]);
        assert.equal(r.status, 2, `${args}: ${r.stderr}`);
        const [first, blank, usage] = r.stderr.split('\n');
        assert.match(first!, /^nub run: \S/);
        assert.equal(blank, '');
        assert.match(usage!, /^usage: nub run /);
      }
      assertJsonError(nub(['run', image, '--nope', '--json']).json, 'Cli.Usage');
    });
  });

  describe('help, version, internal errors', () => {
    it('prints help for every command (--help and nub help CMD alike) and the version', () => {
      const list = nub(['--help']);
      assert.equal(list.status, 0);
      const names = [...list.stdout.matchAll(/^ {2}([a-z]+) {2,}/gm)].map((m) => m[1]!);
      assert.deepEqual(names, ['cc', 'doctor', 'inspect', 'pack', 'run']);
      for (const name of names) {
        const help = nub([name, '--help']);
        assert.equal(help.status, 0);
        assert.match(help.stdout, new RegExp(`^usage: nub ${name} `));
        assert.equal(nub(['help', name]).stdout, help.stdout);
      }
      assert.equal(nub([]).status, 2);
      assert.equal(nub(['nope']).status, 2);
      assertJsonError(nub(['nope', '--json']).json, 'Cli.Usage');
      assert.equal(nub(['help', 'nope']).status, 2);
      const version = nub(['--version']);
      assert.equal(version.stdout.trim(), (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version);
    });

    it('reports an internal error with status 70, the stack only under --debug', () => {
      // A command whose run throws a plain Error (preloaded with --import) stands in for a bug.
      const inspectModule = pathToFileURL(join(packageRoot(), 'dist/lib/cli/commands/inspect.js')).href;
      const preload = `data:text/javascript,${encodeURIComponent(`const m = await import(${JSON.stringify(inspectModule)}); m.command.run = async () => { throw new Error('boom'); };`)}`;
      const plain = nub(['inspect', image], {}, ['--import', preload]);
      assert.equal(plain.status, 70, plain.stderr);
      assert.match(plain.stderr, /^nub: internal error: /);
      assert.doesNotMatch(plain.stderr, /\n\s+at /);
      const debug = nub(['inspect', image, '--debug'], {}, ['--import', preload]);
      assert.equal(debug.status, 70);
      assert.match(debug.stderr, /\n\s+at /);
    });
  });

  describe('inspect, pack, cc, doctor (errors)', () => {
    it('inspect --json prints { ok, image }', () => {
      const r = nub(['inspect', image, '--json']);
      assert.equal(r.status, 0);
      assert.deepEqual(Object.keys(r.json!), ['ok', 'image']);
      assert.equal(r.json!.image.codeSize, 16);
    });

    it('pack and cc refuse a missing input with a typed error', () => {
      assertJsonError(nub(['pack', join(dir, 'nope.elf'), '-o', join(dir, 'x.ssz'), '--json']).json, 'ENOENT');
      assertJsonError(nub(['cc', join(dir, 'nope.c'), '-o', join(dir, 'x.ssz'), '--json']).json, 'ENOENT');
    });

    it('cc says what to install when the cross compiler is missing', () => {
      const src = join(dir, 'p.c');
      writeFileSync(src, '#include "nub.h"\nint x;\n');
      const r = nub(['cc', src, '-o', join(dir, 'p.ssz'), '--json'], { PATH: '/nonexistent' });
      assert.equal(r.status, 1);
      assertJsonError(r.json, 'Cli.NoCrossCompiler');
      assert.match(r.json!.error.message, /apt-get install gcc-riscv64-unknown-elf/);
    });

    it('cc compiles and packs C with the SDK in one step (needs the cross compiler)', function () {
      if (spawnSync('riscv64-unknown-elf-gcc', ['--version']).error) this.skip();
      const src = join(dir, 'add.c');
      writeFileSync(src, '#include "nub.h"\nuint64_t add(uint64_t a, uint64_t b) { return a + b; }\nNUB_ENDPOINT(1, add, 2);\n');
      const out = join(dir, 'add-c.ssz');
      const cc = nub(['cc', src, '-o', out, '--json']);
      assert.equal(cc.status, 0, cc.stdout + cc.stderr);
      assert.deepEqual(Object.keys(cc.json!), ['ok', 'output', 'imageBytes', 'codeBytes', 'endpoints', 'warnings']);
      const run = nub(['run', '--engine', 'local', out, '--arg', '40', '--arg', '2', '--json']);
      assert.equal(run.json!.a0, '42');
    });

    it('doctor --json reports a failed check with status 1', () => {
      const r = nub(['doctor', '--kvm', join(dir, 'no-kvm'), '--json']);
      assert.equal(r.status, 1);
      assert.equal(r.json!.ok, false);
      assert.equal(r.json!.checks[0].code, 'ENOENT');
    });
  });
});
