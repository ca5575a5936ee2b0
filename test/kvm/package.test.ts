// The package as a user gets it: `npm pack` (prepack builds the prebuilt addon and the
// guest kernel into it), installed into an empty project with --ignore-scripts (so
// nothing may need compiling), then the CLI and a `tsc --strict` program run from there.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { packageRoot } from '../../lib/native/binding.js';
import { describeKvm } from './kvm-available.js';

const root = packageRoot();
const require = createRequire(import.meta.url);
const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : ['npm'];

function sh(cwd: string, cmd: string[], env: NodeJS.ProcessEnv = {}): string {
  return execFileSync(cmd[0]!, cmd.slice(1), { cwd, encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

// A program a user would write, checked by tsc --strict against the installed types:
// `ExitCode` and `NubErrorCode` are unions: the switch must be exhaustive, and an unknown error code would not compile.
const program = `import { Sandbox, ImageBuilder, Exit, isNubError, type ExitCode, type NubErrorCode } from 'nub';

function describeExit(exit: ExitCode): string {
  switch (exit) {
    case Exit.HALT: case Exit.PANIC: case Exit.OUT_OF_GAS: case Exit.PAGE_FAULT:
    case Exit.HOST_CALL: case Exit.ECALL: case Exit.TRAP: return String(exit);
    default: { const never: never = exit; return never; }
  }
}
const known: NubErrorCode = 'KvmUnavailable';

const image = new ImageBuilder()
  .setCode(Uint8Array.of(0x0b, 0x20, 0x40, 0x06, 0x33, 0x05, 0xb5, 0x00, 0x0b, 0x20, 0x00, 0x00))
  .addEndpoint(1, { entryPc: 0 })
  .addStack(1, 0x8000_0000, 0x4000);
const sandbox = Sandbox.create();
try {
  sandbox.registerHostFunction(100, async (regs) => regs[7]! * 10n);
  const result = await sandbox.invoke(sandbox.loadImage(image), 1, { args: [4n, 2n], gas: 10_000n, timeoutMs: 5000 });
  console.log(sandbox.engine, describeExit(result.exit), result.regs[7], known);
} catch (err) {
  console.log(isNubError(err) ? err.code : err);
} finally {
  sandbox.close();
}
`;

describeKvm('the packed package, installed into an empty project', function () {
  this.timeout(240_000);
  let work: string;
  let app: string;
  let tarball: string;

  before(() => {
    work = mkdtempSync(path.join(tmpdir(), 'nub-package-'));
    app = path.join(work, 'app');
    tarball = path.join(work, sh(root, [...npm, 'pack', '--silent', '--pack-destination', work]).trim().split('\n').pop()!);
    execFileSync('mkdir', [app]);
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    // --prefer-offline: the dependencies are in npm's cache from installing this checkout.
    const typesNode = `@types/node@${(require('@types/node/package.json') as { version: string }).version}`;
    sh(app, [...npm, 'install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', tarball, typesNode]);
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  it('holds the prebuilt addon, the kernel and dist, and no tests, benches or build state', () => {
    const files = sh(work, ['tar', 'tzf', tarball]).trim().split('\n').map((f) => f.replace(/^package\//, ''));
    for (const needed of ['prebuilds/linux-x64/node.napi.glibc.node', 'guest/build/kernel.bin', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'binding.gyp', 'examples/fib/fib.ssz']) {
      assert.ok(files.includes(needed), `${needed} is in the package`);
    }
    const unwanted = files.filter((f) => /^(test|bench|\.ci|dist\/test|dist\/bench|build)\/|tsbuildinfo|\.map$/.test(f));
    assert.deepEqual(unwanted, []);
  });

  it('installs only runtime dependencies (no compiler, TypeScript or build tools)', () => {
    const installed = JSON.parse(readFileSync(path.join(app, 'node_modules', 'nub', 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const tool of ['typescript', 'zx', 'cmake-js', 'mocha']) assert.equal(installed.dependencies[tool], undefined, `${tool} is not a runtime dependency`);
  });

  it('runs nub doctor and a shipped example from the project', () => {
    const nub = path.join(app, 'node_modules', '.bin', 'nub');
    const doctor = spawnSync(nub, ['doctor', '--json'], { cwd: app, encoding: 'utf8' });
    assert.equal(doctor.status, 0, doctor.stdout + doctor.stderr);
    assert.equal(JSON.parse(doctor.stdout).ok, true);
    const run = spawnSync(nub, ['run', 'node_modules/nub/examples/fib/fib.ssz', '--endpoint', '1', '--arg', '90', '--json'], { cwd: app, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout);
    assert.equal(out.engine, 'kvm');
    assert.equal(out.exit, 'HALT');
    assert.equal(out.a0, '2880067194370816120'); // fib(90)
  });

  it('compiles a TypeScript program with tsc --strict against the installed types and runs it', () => {
    writeFileSync(path.join(app, 'main.ts'), program);
    writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', types: ['node'] },
      files: ['main.ts'],
    }));
    const tsc = require.resolve('typescript/bin/tsc');
    const compiled = spawnSync(process.execPath, [tsc, '-p', '.'], { cwd: app, encoding: 'utf8' });
    assert.equal(compiled.status, 0, compiled.stdout);
    assert.equal(sh(app, [process.execPath, 'main.js']).trim(), 'kvm 0 42n KvmUnavailable');
  });

  // Last: the addon it builds (build/Release) takes precedence over the prebuilt one from then on.
  it('compiles the addon from source in the project when asked (npm rebuild, binding.gyp, no download)', () => {
    sh(app, [...npm, 'rebuild', 'nub'], { NUB_BUILD_FROM_SOURCE: '1' });
    const built = path.join(app, 'node_modules', 'nub', 'build', 'Release', 'nub.node');
    assert.ok(readFileSync(built).length > 0);
    const doctor = spawnSync(path.join(app, 'node_modules', '.bin', 'nub'), ['doctor', '--json'], { cwd: app, encoding: 'utf8' });
    assert.equal(doctor.status, 0, doctor.stdout + doctor.stderr);
  });
});
