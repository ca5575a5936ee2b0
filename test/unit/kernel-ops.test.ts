// Kernel operations on engine local; test/kvm/kernel-ops.test.ts runs the same suite on kvm.
import { kernelOpsSuite } from './kernel-ops-suite.js';

describe('kernel operations (engine local)', () => kernelOpsSuite('local'));
