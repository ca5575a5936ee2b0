/**
 * A short seeded run of every fuzzer (the long runs are `npm run fuzz`): engine local
 * here, both engines in test/kvm/fuzz.test.ts. Nothing may be found.
 */
import { fuzzApi } from '../fuzz/api.js';
import { fuzzImages } from '../fuzz/images.js';
import { fuzzPrograms } from '../fuzz/programs.js';
import { fuzzSmoke } from '../fuzz/smoke.js';

describe('fuzzers, engine local (short seeded runs)', function () {
  this.timeout(180_000);
  fuzzSmoke(false, { images: fuzzImages, programs: fuzzPrograms, api: fuzzApi }, 60);
});
