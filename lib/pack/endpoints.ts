/**
 * The endpoint table that the SDK's `NUB_ENDPOINT` macro (examples/sdk/nub.h)
 * writes into the non-loaded ELF section `.nub.endpoints`: one 16-byte record
 * per endpoint,
 *
 *   offset 0  u64  entry address (a PVM pc: the code is linked at CODE_BASE)
 *   offset 8  u8   key (the one-byte endpoint key [key])
 *   offset 9  u8   number of arguments, 0..4 (φ7..φ10)
 *   offset 10 u8   number of argument caps: the endpoint's arg_cnode_size
 *   offset 11 5 zero bytes
 */
import { NubError } from '../errors.js';

export const ENDPOINT_SECTION = '.nub.endpoints';
export const ENDPOINT_RECORD_SIZE = 16;
/** Arguments arrive in φ7..φ10. */
export const MAX_ENDPOINT_ARGS = 4;

export interface EndpointRecord {
  key: number;
  entry: bigint;
  nargs: number;
  ncaps: number;
}

/** Decodes the records, refusing malformed ones and duplicate keys (`Pack.BadEndpoint`). */
export function readEndpointRecords(section: Uint8Array): EndpointRecord[] {
  if (section.length % ENDPOINT_RECORD_SIZE !== 0) {
    throw new NubError('Pack.BadEndpoint', `${ENDPOINT_SECTION} is ${section.length} bytes, not a whole number of ${ENDPOINT_RECORD_SIZE}-byte records`);
  }
  const view = new DataView(section.buffer, section.byteOffset, section.byteLength);
  const records: EndpointRecord[] = [];
  const seen = new Set<number>();
  for (let at = 0; at < section.length; at += ENDPOINT_RECORD_SIZE) {
    const record = { entry: view.getBigUint64(at, true), key: section[at + 8]!, nargs: section[at + 9]!, ncaps: section[at + 10]! };
    const path = `${ENDPOINT_SECTION}[${at / ENDPOINT_RECORD_SIZE}]`;
    if (section.subarray(at + 11, at + ENDPOINT_RECORD_SIZE).some((b) => b !== 0)) {
      throw new NubError('Pack.BadEndpoint', 'endpoint record has non-zero padding (built with a different SDK?)', { path });
    }
    if (record.nargs > MAX_ENDPOINT_ARGS) {
      throw new NubError('Pack.BadEndpoint', `endpoint ${record.key} takes ${record.nargs} arguments; at most ${MAX_ENDPOINT_ARGS} fit in φ7..φ10`, { path });
    }
    if (seen.has(record.key)) throw new NubError('Pack.BadEndpoint', `endpoint key ${record.key} is defined twice`, { path });
    seen.add(record.key);
    records.push(record);
  }
  return records;
}
