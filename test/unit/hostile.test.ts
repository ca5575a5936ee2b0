import { hostileSuite } from './hostile-suite.js';

describe('hostile input (issue 14), engine local', () => hostileSuite('local'));
