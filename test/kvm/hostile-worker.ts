// A worker for item 8 of issue 14 (run by hostile.test.ts in a child process): an endless
// guest loop inside invokeSync with no timeout, which only terminate() can end.
import { parentPort } from 'node:worker_threads';
import { Sandbox } from '../../lib/sandbox/index.js';
import { testImage } from '../unit/sandbox-suite.js';

const sandbox = Sandbox.create({ engine: 'kvm', memorySize: 4 << 20 });
const image = sandbox.loadImage(testImage());
parentPort!.postMessage('running');
sandbox.invokeSync(image, 6, { gas: (1n << 64n) - 1n });
