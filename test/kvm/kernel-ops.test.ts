// Kernel operations on engine kvm: the same expectations as engine local (test/unit/kernel-ops-suite.ts).
import { kernelOpsSuite } from '../unit/kernel-ops-suite.js';
import { describeKvm } from './kvm-available.js';

describeKvm('kernel operations (engine kvm)', function () {
  this.timeout(120_000);
  kernelOpsSuite('kvm');
});
