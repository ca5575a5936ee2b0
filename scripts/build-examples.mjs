#!/usr/bin/env zx
/**
 * Builds the C examples in examples/<name>/<name>.c with Debian's
 * gcc-riscv64-unknown-elf (scripts/install-riscv-toolchain.sh installs it).
 *
 *   zx scripts/build-examples.mjs              write examples/<name>/<name>.ssz
 *   zx scripts/build-examples.mjs --check      rebuild into a temp dir; exit 1 if a
 *                                              committed .ssz differs or is missing
 *   zx scripts/build-examples.mjs --linux DIR  build DIR/<name>: the same sources as
 *                                              static RISC-V Linux programs (for qemu)
 *   zx scripts/build-examples.mjs --compile FILE.c --out FILE [--target pvm|linux]
 *                                              compile any one C file with the SDK
 *
 * Images are packed with the compiled nub in dist/ (or --dist DIR / $NUB_DIST), so
 * run `npm run build` first. Outputs depend only on the sources and the compiler
 * version: nothing but section contents and addresses reaches an image.
 */
import { $, argv, fs, path, os } from 'zx';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const examplesDir = path.join(root, 'examples');

/** A module of the compiled nub (dist/, or --dist DIR / $NUB_DIST): run `npm run build` first. */
async function distModule(relative) {
  const dist = path.resolve(root, argv.dist ?? process.env.NUB_DIST ?? 'dist');
  const module = path.join(dist, 'lib', relative);
  if (!(await fs.pathExists(module))) throw new Error(`${module} not found: run 'npm run build' first (or pass --dist DIR)`);
  return import(pathToFileURL(module).href);
}

/** Every examples/<name>/ holding <name>.c. */
async function exampleNames() {
  const names = [];
  for (const entry of await fs.readdir(examplesDir, { withFileTypes: true })) {
    if (entry.isDirectory() && (await fs.pathExists(path.join(examplesDir, entry.name, `${entry.name}.c`)))) names.push(entry.name);
  }
  return names.sort();
}

/** Compiles one C file with the SDK for `target` ('pvm' or 'linux'): the command of examples/sdk/toolchain.json, as `nub cc` runs it. */
async function compileFile(source, target, output) {
  const { compileCommand } = await distModule('pack/sdk.js');
  const { cc, args } = compileCommand([source], output, target);
  await $`${cc} ${args}`;
}

const compile = (name, target, output) => compileFile(path.join(examplesDir, name, `${name}.c`), target, output);

/** Builds every example's image into outDir/<name>.ssz; returns the paths by name. */
async function buildImages(outDir) {
  const { packElf } = await distModule('pack/index.js');
  const { admitImage } = await distModule('image/index.js');
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'nub-examples-'));
  const built = {};
  // expected.json "pinImages" {slot: example}: pinned Image slots, so those examples are built first.
  const pins = async (name) => Object.entries((await fs.readJson(path.join(examplesDir, name, 'expected.json'))).pinImages ?? {});
  const names = await exampleNames();
  const order = [];
  for (const name of names) if ((await pins(name)).length === 0) order.push(name);
  for (const name of names) if (!order.includes(name)) order.push(name);
  try {
    for (const name of order) {
      const elf = path.join(work, `${name}.elf`);
      await compile(name, 'pvm', elf);
      const images = [];
      for (const [slot, dep] of await pins(name)) {
        if (!built[dep]) throw new Error(`${name} pins ${dep}, which pins images too (one level only) or does not exist`);
        images.push({ slot: Number(slot), contentHash: admitImage(await fs.readFile(built[dep])).contentHash });
      }
      const result = packElf(await fs.readFile(elf), { images });
      for (const warning of result.warnings) console.error(`${name}: warning: ${warning}`);
      built[name] = path.join(outDir(name), `${name}.ssz`);
      await fs.writeFile(built[name], result.image);
    }
  } finally {
    await fs.remove(work);
  }
  return built;
}

if (argv.compile) {
  const target = argv.target ?? 'pvm';
  if (!['pvm', 'linux'].includes(target) || !argv.out) throw new Error('usage: --compile FILE.c --out FILE [--target pvm|linux]');
  await compileFile(path.resolve(String(argv.compile)), target, path.resolve(String(argv.out)));
} else if (argv.linux) {
  const outDir = path.resolve(String(argv.linux));
  await fs.mkdirp(outDir);
  for (const name of await exampleNames()) await compile(name, 'linux', path.join(outDir, name));
  console.log(`built ${(await exampleNames()).join(', ')} for Linux in ${outDir}`);
} else if (argv.check) {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'nub-examples-check-'));
  try {
    const built = await buildImages(() => tmp);
    const stale = [];
    for (const [name, fresh] of Object.entries(built)) {
      const committed = path.join(examplesDir, name, `${name}.ssz`);
      const same = (await fs.pathExists(committed)) && Buffer.compare(await fs.readFile(committed), await fs.readFile(fresh)) === 0;
      if (!same) stale.push(path.relative(root, committed));
    }
    if (stale.length > 0) {
      console.error(`these images differ from what their sources build to (run zx scripts/build-examples.mjs):\n  ${stale.join('\n  ')}`);
      process.exit(1);
    }
    console.log(`examples match their sources: ${Object.keys(built).join(', ')}`);
  } finally {
    await fs.remove(tmp);
  }
} else {
  const built = await buildImages((name) => path.join(examplesDir, name));
  for (const file of Object.values(built)) console.log(`wrote ${path.relative(root, file)}`);
}
