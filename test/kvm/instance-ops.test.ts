// DERIVE_SPAWN and CALL on engine kvm: the same expectations as engine local (test/unit/instance-ops-suite.ts).
import { instanceOpsSuite } from '../unit/instance-ops-suite.js';
import { describeKvm } from './kvm-available.js';

describeKvm('Instances at run time: DERIVE_SPAWN and CALL (engine kvm)', function () {
  this.timeout(120_000);
  instanceOpsSuite('kvm');
});
