/** `nub inspect image.ssz [--json]`: what an image holds, or why it is not admitted. */
import { formatKey, toHex } from '../../caps/index.js';
import { admitImage, mappingIsPinned, type AdmittedImage } from '../../image/index.js';
import { ExitStatus, type Command } from '../command.js';
import { readInputFile } from '../../image/read-file.js';

function hex0x(n: bigint): string {
  return `0x${n.toString(16)}`;
}

/** Everything `inspect` reports, as plain JSON-able data. */
export function describeImage(admitted: AdmittedImage) {
  const { imageCap: cap } = admitted;
  return {
    contentHash: toHex(admitted.contentHash),
    codeSize: cap.code.length,
    endpoints: cap.endpoints.map((e) => ({
      key: formatKey(e.key),
      entryPc: hex0x(e.entryPc),
      argRegisters: e.argRegisters,
      argCnodeSize: e.argCnodeSize,
      /** The non-zero initial registers: φ index and value. */
      registers: e.initialRegs.flatMap((v, index) => (v === 0n ? [] : [{ index, value: hex0x(v) }])),
    })),
    mappings: cap.mappings.map((m) => ({
      start: hex0x(m.start),
      size: hex0x(m.size),
      access: mappingIsPinned(cap, m) ? 'read-only' : 'writable',
      source: m.source.map(formatKey).join('/'),
    })),
    slots: [...cap.pinned.map((s) => ({ s, pinned: true })), ...cap.initial.map((s) => ({ s, pinned: false }))].map(({ s, pinned }) => {
      const data = admitted.dataCaps.get(toHex(s.slot));
      return {
        slot: formatKey(s.slot),
        kind: pinned ? (data ? 'pinned data' : 'pinned image') : 'initial data',
        size: data ? data.cap.size : null,
        hash: toHex(s.capHash),
      };
    }),
    yieldReceiverSlot: cap.yieldReceiverSlot ? formatKey(cap.yieldReceiverSlot) : null,
    gasSlots: cap.gasSlots.map(formatKey),
    quotaSlots: cap.quotaSlots.map(formatKey),
  };
}

function table(headers: string[], rows: (string | number)[][]): string {
  if (rows.length === 0) return '  (none)';
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, c) => Math.max(...cells.map((r) => r[c]!.length)));
  return cells.map((r) => `  ${r.map((v, c) => v.padEnd(widths[c]!)).join('  ')}`.trimEnd()).join('\n');
}

function render(d: ReturnType<typeof describeImage>): string {
  return [
    `content hash  ${d.contentHash}`,
    `code size     ${d.codeSize} bytes`,
    '',
    'endpoints',
    table(['key', 'entry pc', 'args', 'cnode', 'registers set'], d.endpoints.map((e) => [
      e.key, e.entryPc, e.argRegisters, e.argCnodeSize,
      e.registers.map((r) => `φ${r.index}=${r.value}`).join(' ') || '-',
    ])),
    '',
    'memory mappings',
    table(['start', 'size', 'access', 'source'], d.mappings.map((m) => [m.start, m.size, m.access, m.source])),
    '',
    'slots',
    table(['slot', 'kind', 'size', 'cap hash'], d.slots.map((s) => [s.slot, s.kind, s.size ?? '-', s.hash])),
    '',
    `yield receiver slot  ${d.yieldReceiverSlot ?? '-'}`,
    `gas slots            ${d.gasSlots.join(' ') || '-'}`,
    `quota slots          ${d.quotaSlots.join(' ') || '-'}`,
  ].join('\n');
}

export const command: Command = {
  summary: 'show what an image.ssz holds, or why it is invalid',
  synopsis: '<image.ssz> [--json]',
  description: `Decodes and admits an image and prints its content hash, code size, endpoints,
memory mappings, slots (size and cap hash) and the yield/gas/quota slots. An invalid
image gives the admission error (code and field path) and exit status 1.`,
  options: {},
  positionals: { min: 1, max: 1 },
  async run(_values, [file], ctx) {
    // An admission failure is a NubError: main reports it (JSON with --json) with status 1.
    const d = describeImage(admitImage(readInputFile(file!)));
    if (ctx.json) return { status: ExitStatus.OK, json: { image: d } };
    console.log(render(d));
    return { status: ExitStatus.OK };
  },
};
