/** `nub run image.ssz [--endpoint K] [--arg N]... [--gas N] [--engine kvm|local|auto] [--timeout MS] [--input FILE] [--output FILE] [--load FILE]...`: invoke one endpoint. */
import { writeFile } from 'node:fs/promises';
import { toHex } from '../../caps/index.js';
import { NubError } from '../../errors.js';
import { Exit, exitName } from '../../machine/index.js';
import { DEFAULT_GAS, Sandbox, type SandboxOptions } from '../../sandbox/index.js';
import { ExitStatus, UsageError, type Command } from '../command.js';
import { readInputFile } from '../../image/read-file.js';
import { liveStatus } from '../status.js';

const ENGINES = ['auto', 'kvm', 'local'] as const;
const DEFAULT_ENDPOINT = '1';

function parseU64(text: string, what: string): bigint {
  let v: bigint;
  try {
    v = text.startsWith('-') ? -BigInt(text.slice(1)) : BigInt(text);
  } catch {
    throw new UsageError(`${what} '${text}' is not a number`);
  }
  if (v < -(1n << 63n) || v >= 1n << 64n) throw new UsageError(`${what} ${text} does not fit in 64 bits`);
  return BigInt.asUintN(64, v);
}

function parseKey(text: string): number[] {
  const bytes = text.split(',').map((part) => Number(part));
  if (text === '' || bytes.some((b) => !Number.isInteger(b) || b < 0 || b > 255)) {
    throw new UsageError(`endpoint '${text}' is not a byte or a comma-separated list of bytes`);
  }
  return bytes;
}

export const command: Command = {
  summary: 'invoke an endpoint of an image and print how it ended',
  synopsis: '<image.ssz> [--endpoint K] [--arg N]... [--gas N] [--engine auto|kvm|local] [--timeout MS] [--input FILE] [--output FILE] [--load FILE]...',
  description: `Admits the image and invokes endpoint K (a byte 0..255, or bytes written 1,0 for
the key [1,0]) with up to four arguments in φ7..φ10. Prints the exit, φ7 (a0), the gas
used and the time taken (the sandbox's boot included). Exit status: 0 when the endpoint
replied (HALT), 3 for any other guest exit, 1 for an error (e.g. Timeout), 2 for usage.
The caps the endpoint returns (its argument cnode's slots after HALT) are listed.
An image whose pinned Image slots name other images (it spawns and calls them) needs
those loaded first: --load each one, in order.
Ctrl-C cancels the invoke (error Cancelled).`,
  options: {
    engine: { type: 'string', value: 'NAME', help: 'auto (default: kvm, else local with a notice), kvm (fail without /dev/kvm), local (reference interpreter, no isolation)' },
    endpoint: { type: 'string', value: 'K', help: `the endpoint to invoke (default ${DEFAULT_ENDPOINT})` },
    arg: { type: 'string', multiple: true, value: 'N', help: 'an argument: decimal or 0x hex, negative as --arg=-N (mod 2^64); repeat for more' },
    gas: { type: 'string', value: 'N', help: `gas for the invocation (default ${DEFAULT_GAS})` },
    timeout: { type: 'string', value: 'MS', help: 'fail with Timeout after MS milliseconds (default: none)' },
    input: { type: 'string', value: 'FILE', help: "pass the file's bytes as argument cap 0 (a Data cap, zero-padded to whole pages)" },
    output: { type: 'string', value: 'FILE', help: 'write the bytes of returned cap 0 (whole pages) to FILE; an error if there is none' },
    load: { type: 'string', multiple: true, value: 'FILE', help: 'load this image first (one the image spawns through a pinned Image slot); repeat for more' },
  },
  positionals: { min: 1, max: 1 },
  async run(values, [file], ctx) {
    const engine = (values.engine ?? 'auto') as string;
    if (!(ENGINES as readonly string[]).includes(engine)) throw new UsageError(`no engine '${engine}'; there is ${ENGINES.join(', ')}`);
    const key = parseKey((values.endpoint as string | undefined) ?? DEFAULT_ENDPOINT);
    const args = ((values.arg as string[] | undefined) ?? []).map((a, i) => parseU64(a, `argument ${i}`));
    const gas = values.gas === undefined ? DEFAULT_GAS : parseU64(values.gas as string, 'gas');
    const timeoutMs = values.timeout === undefined ? undefined : Number(values.timeout);
    if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new UsageError(`--timeout '${values.timeout}' is not a positive number of milliseconds`);
    const bytes = readInputFile(file!);
    const others = ((values.load as string[] | undefined) ?? []).map((f) => readInputFile(f));
    const input = values.input === undefined ? [] : [readInputFile(values.input as string)];

    const started = performance.now();
    using sandbox = Sandbox.create({ engine: engine as SandboxOptions['engine'] });
    if (sandbox.kvmUnavailable) ctx.notice(`running on engine local (no isolation): ${sandbox.kvmUnavailable.message}`);
    for (const other of others) sandbox.loadImage(other);
    const image = sandbox.loadImage(bytes);
    const abort = new AbortController();
    const onSigint = (): void => abort.abort(new NubError('Cancelled', 'interrupted (SIGINT)'));
    process.once('SIGINT', onSigint);
    const stopStatus = liveStatus(ctx, (ms) => {
      const p = sandbox.progress();
      const done = p ? `${p.instructions} instructions, ${gas - BigInt(p.gasLeft)} gas used of ${gas}` : `gas budget ${gas}`;
      return `nub run: ${(ms / 1000).toFixed(1)} s on engine ${sandbox.engine}, ${done} (Ctrl-C cancels)`;
    });
    let result;
    try {
      result = await sandbox.invoke(image, key, { args, gas, caps: input, signal: abort.signal, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
    } finally {
      stopStatus();
      process.off('SIGINT', onSigint);
    }
    const timeMs = Number((performance.now() - started).toFixed(3));
    const caps = result.caps.map((c) => ({ slot: c.slot, kind: c.kind, hash: toHex(c.hash), ...(c.kind === 'Data' ? { bytes: c.bytes().length } : {}) }));
    if (values.output !== undefined) {
      const out = result.caps.find((c) => c.slot === 0);
      if (out === undefined || out.kind !== 'Data') {
        throw new NubError('Cli.NoOutputCap', `the endpoint returned no Data cap in argument slot 0 (exit ${exitName(result.exit)}), so there is nothing for --output`);
      }
      await writeFile(values.output as string, out.bytes());
    }
    const status = result.exit === Exit.HALT ? ExitStatus.OK : ExitStatus.GUEST_EXIT;
    if (ctx.json) {
      return {
        status,
        json: {
          engine: sandbox.engine,
          exit: exitName(result.exit),
          exitCode: result.exit,
          exitArg: result.exitArg.toString(),
          a0: result.regs[7]!.toString(),
          pc: result.pc,
          gasUsed: result.gasUsed.toString(),
          gasLeft: result.gasLeft.toString(),
          instructions: result.instructions,
          timeMs,
          regs: result.regs.map(String),
          caps,
        },
      };
    }
    const detail = result.exit === Exit.PAGE_FAULT ? ` at 0x${result.exitArg.toString(16)}`
      : result.exit === Exit.HOST_CALL ? ` ${result.exitArg}` : '';
    console.log(`exit      ${exitName(result.exit)}${detail} (pc 0x${result.pc.toString(16)})`);
    console.log(`a0 (φ7)   ${result.regs[7]} (0x${result.regs[7]!.toString(16)})`);
    console.log(`gas used  ${result.gasUsed} (${result.gasLeft} left)`);
    // The kvm engine runs recompiled code by default, which counts no instructions.
    console.log(`time      ${timeMs.toFixed(3)} ms on engine ${sandbox.engine}${result.instructions > 0 ? ` (${result.instructions} instructions)` : ''}`);
    for (const c of caps) console.log(`cap [${c.slot}]   ${c.kind}${c.bytes === undefined ? '' : ` ${c.bytes} bytes`} ${c.hash}`);
    return { status };
  },
};
