import { instanceOpsSuite } from './instance-ops-suite.js';

describe('Instances at run time: DERIVE_SPAWN and CALL (engine local)', () => instanceOpsSuite('local'));
