// The Sandbox API on engine local (the reference interpreter); test/kvm/sandbox.test.ts runs the same suite on kvm.
import { sandboxSuite } from './sandbox-suite.js';

describe('Sandbox (engine local)', () => sandboxSuite('local'));
