/** `nub pack prog.elf -o prog.ssz`: an SDK-built RISC-V ELF executable to a canonical image. */
import { writeFileSync } from 'node:fs';
import { readInputFile } from '../../image/read-file.js';
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { DEFAULT_STACK_SIZE, packElf } from '../../pack/index.js';

const usage = `usage: nub pack PROG.elf -o PROG.ssz [--stack-size BYTES] [--quiet]

Turns a RISC-V ELF executable built with examples/sdk/ into a canonical image:
the code, its endpoints (NUB_ENDPOINT), read-only data as a pinned slot, data
and bss as an initial slot, and a stack (default ${DEFAULT_STACK_SIZE} bytes). Refuses
instructions PVM2 cannot run, naming the function and address.

  -o, --output FILE     where to write the image (required)
  --stack-size BYTES    stack size, rounded up to whole pages
  -q, --quiet           print nothing on success`;


export const command: Command = {
  summary: 'pack a RISC-V ELF executable into an image',
  usage,
  async run(argv) {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        allowPositionals: true,
        options: {
          output: { type: 'string', short: 'o' },
          'stack-size': { type: 'string' },
          quiet: { type: 'boolean', short: 'q' },
        },
      });
    } catch (err) {
      console.error(`nub pack: ${(err as Error).message}\n\n${usage}`);
      return 2;
    }
    const { values, positionals } = parsed;
    if (positionals.length !== 1 || values.output === undefined) {
      console.error(usage);
      return 2;
    }
    const input = positionals[0]!;
    // packElf refuses a size that is not a positive whole number (Pack.Layout).
    const options = values['stack-size'] === undefined ? {} : { stackSize: Number(values['stack-size']) };
    const result = packElf(readInputFile(input), options);
    writeFileSync(values.output, result.image);
    for (const w of result.warnings) console.error(`nub pack: warning: ${w}`);
    if (!values.quiet) {
      const eps = result.endpoints.map((e) => `${e.key}${e.name ? `=${e.name}` : ''}`).join(' ');
      console.log(`${values.output}: ${result.image.length} bytes, code ${result.code.length} bytes, endpoints ${eps}`);
    }
    return 0;
  },
};
