/** `nub pack prog.elf -o prog.ssz`: an SDK-built RISC-V ELF executable to a canonical image. */
import { writeFileSync } from 'node:fs';
import { ExitStatus, UsageError, type CliContext, type Command } from '../command.js';
import { DEFAULT_STACK_SIZE, packElf } from '../../pack/index.js';
import { readInputFile } from '../../image/read-file.js';

/** What pack (and cc) report: the image written, its size, code size and endpoints. */
export interface PackReport {
  output: string;
  imageBytes: number;
  codeBytes: number;
  endpoints: { key: string; name: string | null }[];
  warnings: string[];
}

/** Packs an ELF and writes the image; warnings go to stderr as notices. */
export function packFile(elf: Uint8Array, output: string, stackSize: string | undefined, ctx: CliContext): PackReport {
  // packElf refuses a size that is not a positive whole number (Pack.Layout).
  const result = packElf(elf, stackSize === undefined ? {} : { stackSize: Number(stackSize) });
  writeFileSync(output, result.image);
  for (const w of result.warnings) ctx.notice(`warning: ${w}`);
  return {
    output,
    imageBytes: result.image.length,
    codeBytes: result.code.length,
    endpoints: result.endpoints.map((e) => ({ key: String(e.key), name: e.name ?? null })),
    warnings: result.warnings,
  };
}

export function packSummary(r: PackReport): string {
  const eps = r.endpoints.map((e) => `${e.key}${e.name ? `=${e.name}` : ''}`).join(' ');
  return `${r.output}: ${r.imageBytes} bytes, code ${r.codeBytes} bytes, endpoints ${eps}`;
}

export const command: Command = {
  summary: 'pack a RISC-V ELF executable into an image',
  synopsis: '<prog.elf> -o <prog.ssz> [--stack-size BYTES]',
  description: `Turns a RISC-V ELF executable built with the SDK (examples/sdk/, or 'nub cc') into a
canonical image: the code, its endpoints (NUB_ENDPOINT), read-only data as a pinned slot,
data and bss as an initial slot, and a stack (default ${DEFAULT_STACK_SIZE} bytes). Refuses
instructions PVM2 cannot run, naming the function and address.`,
  options: {
    output: { type: 'string', short: 'o', value: 'FILE', help: 'where to write the image (required)' },
    'stack-size': { type: 'string', value: 'BYTES', help: 'stack size, rounded up to whole pages' },
  },
  positionals: { min: 1, max: 1 },
  async run(values, [input], ctx) {
    if (values.output === undefined) throw new UsageError('-o FILE is required');
    const result = packFile(readInputFile(input!), values.output as string, values['stack-size'] as string | undefined, ctx);
    if (ctx.json) return { status: ExitStatus.OK, json: result };
    if (!ctx.quiet) console.log(packSummary(result));
    return { status: ExitStatus.OK };
  },
};
