/** `nub cc prog.c [more.c]... -o prog.ssz`: compile C with the SDK's flags and pack the result, in one step. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NubError } from '../../errors.js';
import { compileCommand } from '../../pack/sdk.js';
import { ExitStatus, UsageError, type Command } from '../command.js';
import { readInputFile } from '../../image/read-file.js';
import { packFile, packSummary } from './pack.js';

const INSTALL_HINT = 'install the bare-metal RISC-V GCC: sudo apt-get install gcc-riscv64-unknown-elf binutils-riscv64-unknown-elf (Debian/Ubuntu)';

export const command: Command = {
  summary: 'compile C files with the SDK and pack them into an image',
  synopsis: '<prog.c> [more.c]... -o <prog.ssz> [--stack-size BYTES]',
  description: `Compiles the C files with the SDK in examples/sdk/ (nub.h, its linker script and
mem.c, with the flags of toolchain.json) into a RISC-V ELF and packs it like 'nub pack'.
Endpoints are declared with NUB_ENDPOINT (examples/sdk/README.md). Needs
riscv64-unknown-elf-gcc on PATH.`,
  options: {
    output: { type: 'string', short: 'o', value: 'FILE', help: 'where to write the image (required)' },
    'stack-size': { type: 'string', value: 'BYTES', help: 'stack size, rounded up to whole pages' },
  },
  positionals: { min: 1, max: Infinity },
  async run(values, sources, ctx) {
    if (values.output === undefined) throw new UsageError('-o FILE is required');
    for (const s of sources) readInputFile(s); // a missing or odd input fails as it does for every command
    const work = mkdtempSync(path.join(tmpdir(), 'nub-cc-'));
    try {
      const elf = path.join(work, 'prog.elf');
      const { cc, args } = compileCommand(sources.map((s) => path.resolve(s)), elf);
      const compiled = spawnSync(cc, args, { encoding: 'utf8' });
      if (compiled.error) {
        const missing = (compiled.error as NodeJS.ErrnoException).code === 'ENOENT';
        throw new NubError(missing ? 'Cli.NoCrossCompiler' : 'Cli.CompileFailed', missing ? `${cc} is not on PATH; ${INSTALL_HINT}` : compiled.error.message);
      }
      if (compiled.status !== 0) {
        throw new NubError('Cli.CompileFailed', `${cc} failed:\n${(compiled.stderr + compiled.stdout).trim()}`);
      }
      const report = packFile(readInputFile(elf), values.output as string, values['stack-size'] as string | undefined, ctx);
      if (ctx.json) return { status: ExitStatus.OK, json: report };
      if (!ctx.quiet) console.log(packSummary(report));
      return { status: ExitStatus.OK };
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
};
