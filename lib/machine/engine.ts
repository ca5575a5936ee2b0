/**
 * An engine runs PVM2 code. Every engine must give the same result for the same
 * invocation; `nub run --engine NAME` picks one. Engine `local` is the reference
 * interpreter in this process; the in-guest engine (`kvm`) plugs in beside it.
 */
import type { KeyLike } from '../caps/index.js';
import type { AdmittedImage } from '../image/index.js';
import { invokeLocal, type InvokeOptions, type InvokeResult } from './invoke.js';

export interface Engine {
  readonly name: string;
  /** One line for `nub run --help`. */
  readonly summary: string;
  /** Invokes endpoint `endpointKey` of an admitted image. */
  invoke(admitted: AdmittedImage, endpointKey: KeyLike, opts: InvokeOptions): Promise<InvokeResult>;
}

export const localEngine: Engine = {
  name: 'local',
  summary: 'the reference interpreter, in this process (no KVM needed)',
  invoke: async (admitted, endpointKey, opts) => invokeLocal(admitted.imageCap, admitted, endpointKey, opts),
};
