import { fuzzApi } from '../fuzz/api.js';
import { fuzzGuest } from '../fuzz/guest.js';
import { fuzzImages } from '../fuzz/images.js';
import { fuzzPrograms } from '../fuzz/programs.js';
import { fuzzSmoke } from '../fuzz/smoke.js';
import { describeKvm } from './kvm-available.js';

describeKvm('fuzzers, both engines (short seeded runs)', function () {
  this.timeout(300_000);
  fuzzSmoke(true, { images: fuzzImages, programs: fuzzPrograms, api: fuzzApi, guest: fuzzGuest }, 25);
});
