/**
 * Mutated images through admission and both engines: the image fuzzer's cases
 * (test/support/image-fuzz.ts) and bit-flipped example images. Admitted ones are loaded into a
 * local and a kvm sandbox and each endpoint is invoked on both: results must be equal.
 */
import { readFileSync } from 'node:fs';
import { fuzzInput } from '../support/image-fuzz.js';
import type { LoadedImage } from '../../lib/sandbox/index.js';
import { exampleImages } from '../support/engine-harness.js';
import { EnginePair, FuzzRun, summary, type FuzzOptions, type FuzzReport } from './common.js';

export async function fuzzImages(opts: FuzzOptions): Promise<FuzzReport> {
  const run = new FuzzRun(opts);
  const examples = exampleImages().map((e) => new Uint8Array(readFileSync(e.path)));
  const pair = new EnginePair(opts.kvm);
  try {
    while (run.more()) {
      const r = run.rng(run.current);
      let input: Uint8Array;
      if (r.bool() || examples.length === 0) input = fuzzInput(opts.seed, run.current);
      else {
        input = r.pick(examples).slice();
        for (let n = 1 + r.below(4); n > 0; n--) input[r.below(input.length)]! ^= 1 << r.below(8);
      }
      const local = run.typed('local loadImage', () => pair.local.loadImage(input), input);
      const kvm = pair.kvm && run.typed('kvm loadImage', () => pair.kvm!.loadImage(input), input);
      run.count(`load ${local.outcome}`);
      if (kvm && kvm.outcome !== local.outcome) run.count(`load differs: local ${local.outcome}, kvm ${kvm.outcome}`);
      if (local.value && (kvm === undefined || kvm.value)) {
        for (const ep of local.value.admitted.imageCap.endpoints.slice(0, 3)) {
          const args = [r.u64(), r.u64()];
          const call = (s: EnginePair['local'], img: LoadedImage) => () => s.invokeSync(img, ep.key, { gas: 20_000n, args, timeoutMs: 5_000 });
          const a = run.typed('local invoke', call(pair.local, local.value), input);
          run.count(`invoke ${a.outcome}`);
          if (kvm?.value) {
            const b = run.typed('kvm invoke', call(pair.kvm!, kvm.value), input);
            if (summary(a) !== summary(b)) run.find(`engines disagree on endpoint [${ep.key}]: local ${summary(a)} kvm ${summary(b)}`, input);
          }
        }
      }
      if (pair.kvm?.poisonedBy) {
        run.find(`a mutated image poisoned the kvm sandbox: ${pair.kvm.poisonedBy.code}`, input);
        pair.kvm.reset();
      }
      if (local.value) pair.local.unloadImage(local.value);
      if (kvm?.value) pair.kvm!.unloadImage(kvm.value);
      run.next();
    }
  } finally {
    pair.close();
  }
  return run.finish();
}
