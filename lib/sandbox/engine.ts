/**
 * Engine `kvm` for `nub run` and anything else that takes a lib/machine `Engine`: each
 * invoke boots a sandbox, loads the image, runs the endpoint in the guest and closes it.
 * Keep a Sandbox instead to invoke many times.
 */
import { isNubError, NubError } from '../errors.js';
import { HOST_CALL_MAX, HOST_CALL_MIN } from '../machine/abi.js';
import type { Engine } from '../machine/engine.js';
import { Sandbox } from './sandbox.js';

export const kvmEngine: Engine = {
  name: 'kvm',
  summary: 'the PVM2 engine inside nub\'s guest kernel, in a KVM micro-VM (needs /dev/kvm)',
  invoke: async (admitted, endpointKey, opts) => {
    using sandbox = Sandbox.create({ engine: 'kvm' });
    const image = sandbox.loadImage(admitted);
    const hostCall = opts.hostCall;
    if (hostCall) {
      // A lib/machine HostCall decides per call (undefined = not handled), so every number goes to it.
      for (let n = HOST_CALL_MIN; n <= HOST_CALL_MAX; n++) sandbox.registerHostFunction(n, (regs, memory) => hostCall(n, regs, memory));
    }
    let result;
    try {
      const caps = (opts.caps ?? []).map((c) => (c.kind === 'Data' ? c.data : { hash: c.hash }));
      result = sandbox.invokeSync(image, endpointKey, { args: opts.args ?? [], gas: opts.gas, caps });
    } catch (err) {
      // The Engine contract reports a missing endpoint as engine local does.
      if (isNubError(err, 'UnknownEndpoint')) throw new NubError('Machine.NoSuchEndpoint', err.message, { cause: err });
      throw err;
    }
    // Read the guest's memory and result caps before the sandbox goes.
    const caps = result.caps.map((c) => {
      const bytes = c.kind === 'Data' ? c.bytes() : undefined;
      return { slot: c.slot, kind: c.kind, hash: c.hash, bytes: () => (bytes ?? c.bytes()).slice() };
    });
    return { ...result, memory: result.memory, caps };
  },
};
