/**
 * Random PVM2 programs (test/support/random-program.ts: every instruction class,
 * illegal registers and encodings, accesses around permission boundaries and the top of
 * the address space, host calls, bad entries, little gas, kernel operations, spawning
 * and calling a child image) on both engines: equal results.
 */
import { childImage, mixer, randomImage } from '../support/random-program.js';
import { EnginePair, FuzzRun, summary, type FuzzOptions, type FuzzReport } from './common.js';

export async function fuzzPrograms(opts: FuzzOptions): Promise<FuzzReport> {
  const run = new FuzzRun(opts);
  const pair = new EnginePair(opts.kvm);
  for (const s of [pair.local, pair.kvm]) s?.registerHostFunction(100, mixer);
  const child = childImage();
  const childHash = pair.local.loadImage(child).contentHash;
  pair.kvm?.loadImage(child);
  try {
    while (run.more()) {
      const { image, gas, args, caps } = randomImage(run.caseSeed(run.current), childHash);
      const bytes = image.encode();
      const local = run.typed('local load', () => pair.local.loadImage(bytes), bytes);
      const a = local.value ? run.typed('local invoke', () => pair.local.invokeSync(local.value!, 1, { gas, args, caps }), bytes) : { outcome: local.outcome };
      run.count(a.value ? `exit ${a.value.exit}` : `error ${a.outcome}`);
      if (pair.kvm) {
        const kvm = run.typed('kvm load', () => pair.kvm!.loadImage(bytes), bytes);
        const b = kvm.value ? run.typed('kvm invoke', () => pair.kvm!.invokeSync(kvm.value!, 1, { gas, args, caps, timeoutMs: 10_000 }), bytes) : { outcome: kvm.outcome };
        if (summary(a) !== summary(b)) run.find(`engines disagree: local ${summary(a)} kvm ${summary(b)}`, bytes);
        if (kvm.value) pair.kvm.unloadImage(kvm.value);
        if (pair.kvm.poisonedBy) {
          run.find(`a program poisoned the kvm sandbox: ${pair.kvm.poisonedBy.code}`, bytes);
          pair.kvm.reset();
        }
      }
      if (local.value) pair.local.unloadImage(local.value);
      run.next();
    }
  } finally {
    pair.close();
  }
  return run.finish();
}
