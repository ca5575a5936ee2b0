// A child process of reliability-sandbox.test.ts (not a test file): 10,000
// fromSnapshot/invoke/close cycles through a VmCache, in a process of its own so its RSS is
// only its own (run with --expose-gc). Prints one JSON line: open fds and RSS sampled every 1,000 cycles.
import { readdirSync } from 'node:fs';
import { ImageBuilder } from '../../lib/image/builder.js';
import { Sandbox } from '../../lib/sandbox/index.js';
import { VmCache } from '../../lib/snapshot/vm-cache.js';
import { A, assemble, X } from '../support/machine-asm.js';

const five = new ImageBuilder().setCode(assemble(A.addi(X.a0, X.zero, 5), A.ecalli(0))).addEndpoint(1, { entryPc: 0 }).addStack(9, 0x8000_0000, 0x1000);
const { snapshot, hash } = (() => {
  using template = Sandbox.create({ engine: 'kvm', memorySize: 16 << 20 });
  const loaded = template.loadImage(five);
  return { snapshot: template.snapshot(), hash: loaded.contentHash };
})();
using cache = new VmCache(2);
const openFds = (): number => readdirSync('/proc/self/fd').length;
const cycle = (): void => {
  using sandbox = Sandbox.fromSnapshot(snapshot, { vmCache: cache });
  if (sandbox.invokeSync(hash, 1).regs[7] !== 5n) throw new Error('the invoke gave the wrong answer');
};
for (let i = 0; i < 1_000; i++) cycle(); // warm up: JIT, caches, the V8 heap
await new Promise(setImmediate);
const fds: number[] = [openFds()];
const rss: number[] = [];
for (let i = 1; i <= 10_000; i++) {
  cycle();
  if (i % 1_000 === 0) {
    await new Promise(setImmediate); // let finalizers run, as an application would
    gc!(); // sample after a full collection, so the V8 heap's breathing does not count as growth
    rss.push(process.memoryUsage.rss());
    fds.push(openFds());
  }
}
snapshot.close();
console.log(JSON.stringify({ fds, rss }));
