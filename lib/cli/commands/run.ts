/** `nub run image.ssz [--endpoint K] [--arg N]... [--gas N] [--engine kvm|local] [--input FILE] [--output FILE] [--json]`: invoke one endpoint. */
import { writeFile } from 'node:fs/promises';
import { readInputFile } from '../../image/read-file.js';
import { parseArgs } from 'node:util';
import { NubError } from '../../errors.js';
import { admitImage } from '../../image/index.js';
import { toHex } from '../../caps/index.js';
import { dataCapOf, Exit, exitName, localEngine, type Engine } from '../../machine/index.js';
import { defaultEngine, kvmEngine } from '../../sandbox/index.js';
import type { Command } from '../command.js';

/** Engines by name; each is an object with `invoke`, so another engine is one more entry. */
const ENGINES: Record<string, Engine> = { [kvmEngine.name]: kvmEngine, [localEngine.name]: localEngine };
const DEFAULT_ENDPOINT = '1';

const DEFAULT_GAS = 1_000_000_000n;

const usage = `usage: nub run <image.ssz> [--endpoint K] [--arg N]... [--gas N] [--engine kvm|local]
               [--input FILE] [--output FILE] [--json]

Admits the image and invokes endpoint K (a byte 0..255, the one-byte key [K], or
bytes written 1,0 for the key [1,0]) with up to four arguments in φ7..φ10. Prints
the exit, φ7 (a0), the gas used and the time taken. Exit status: 0 when the
endpoint replied (HALT), 1 for any other exit or an error. The caps the endpoint
returns (its argument slots after HALT) are listed with their hashes.

  --engine NAME   ${Object.values(ENGINES).map((e) => `${e.name}: ${e.summary}`).join('; ')}
                  (default kvm when /dev/kvm can be opened, else local with a notice)
  --endpoint K    the endpoint to invoke (default ${DEFAULT_ENDPOINT})
  --arg N         an argument: decimal or 0x hex; negative as --arg=-N (taken mod 2^64); repeat for more
  --gas N         gas for the invocation (default ${DEFAULT_GAS})
  --input FILE    pass the file's bytes as argument cap 0 (a Data cap, zero-padded to whole pages)
  --output FILE   write the bytes of returned cap 0 (whole pages) to FILE; an error if there is none
  --json          print one JSON object`;

function parseU64(text: string, what: string): bigint {
  let v: bigint;
  try {
    v = text.startsWith('-') ? -BigInt(text.slice(1)) : BigInt(text);
  } catch {
    throw new NubError('Cli.BadNumber', `${what} '${text}' is not a number`);
  }
  if (v < -(1n << 63n) || v >= 1n << 64n) throw new NubError('Cli.BadNumber', `${what} ${text} does not fit in 64 bits`);
  return BigInt.asUintN(64, v);
}

function parseKey(text: string): number[] {
  const bytes = text.split(',').map((part) => Number(part));
  if (text === '' || bytes.some((b) => !Number.isInteger(b) || b < 0 || b > 255)) {
    throw new NubError('Cli.BadEndpoint', `endpoint '${text}' is not a byte or a comma-separated list of bytes`);
  }
  return bytes;
}

export const command: Command = {
  summary: 'invoke an endpoint of an image and print how it ended',
  usage,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        engine: { type: 'string' },
        endpoint: { type: 'string' },
        arg: { type: 'string', multiple: true, default: [] },
        gas: { type: 'string' },
        input: { type: 'string' },
        output: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    if (positionals.length !== 1) {
      console.error(usage);
      return 2;
    }
    let engineName = values.engine;
    if (engineName === undefined) {
      engineName = defaultEngine();
      if (engineName === 'local') console.error('nub run: /dev/kvm is not usable here; running on the local reference interpreter (--engine local)');
    }
    const engine = ENGINES[engineName];
    if (engine === undefined) {
      throw new NubError('Cli.UnknownEngine', `no engine '${engineName}'; there is ${Object.keys(ENGINES).join(', ')}`);
    }
    const key = parseKey(values.endpoint ?? DEFAULT_ENDPOINT);
    const args = values.arg!.map((a, i) => parseU64(a, `argument ${i}`));
    const gas = values.gas === undefined ? DEFAULT_GAS : parseU64(values.gas, 'gas');

    const admitted = admitImage(readInputFile(positionals[0]!));
    const input = values.input === undefined ? undefined : dataCapOf(readInputFile(values.input));
    const started = process.hrtime.bigint();
    const result = await engine.invoke(admitted, key, { args, gas, ...(input ? { caps: [{ kind: 'Data' as const, data: input, hash: input.hash() }] } : {}) });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const caps = result.caps.map((c) => ({ slot: c.slot, kind: c.kind, hash: toHex(c.hash), ...(c.kind === 'Data' ? { bytes: c.bytes().length } : {}) }));
    if (values.output !== undefined) {
      const out = result.caps.find((c) => c.slot === 0);
      if (out === undefined || out.kind !== 'Data') {
        throw new NubError('Cli.NoOutputCap', `the endpoint returned no Data cap in argument slot 0 (exit ${exitName(result.exit)}), so there is nothing for --output`);
      }
      await writeFile(values.output, out.bytes());
    }

    if (values.json) {
      console.log(JSON.stringify({
        engine: engine.name,
        exit: exitName(result.exit),
        exitCode: result.exit,
        exitArg: result.exitArg.toString(),
        a0: result.regs[7]!.toString(),
        pc: result.pc,
        gasUsed: result.gasUsed.toString(),
        gasLeft: result.gasLeft.toString(),
        instructions: result.instructions,
        seconds,
        regs: result.regs.map(String),
        caps,
      }));
    } else {
      const detail = result.exit === Exit.PAGE_FAULT ? ` at 0x${result.exitArg.toString(16)}`
        : result.exit === Exit.HOST_CALL ? ` ${result.exitArg}` : '';
      console.log(`exit      ${exitName(result.exit)}${detail} (pc 0x${result.pc.toString(16)})`);
      console.log(`a0 (φ7)   ${result.regs[7]} (0x${result.regs[7]!.toString(16)})`);
      console.log(`gas used  ${result.gasUsed} (${result.gasLeft} left)`);
      // The kvm engine runs recompiled code, which counts no instructions.
      console.log(`time      ${(seconds * 1000).toFixed(3)} ms${engine.name === 'kvm' ? '' : ` (${result.instructions} instructions)`}`);
      for (const c of caps) console.log(`cap [${c.slot}]   ${c.kind}${c.bytes === undefined ? '' : ` ${c.bytes} bytes`} ${c.hash}`);
    }
    return result.exit === Exit.HALT ? 0 : 1;
  },
};
