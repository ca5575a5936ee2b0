// lib/sandbox/member-pool.ts with fake members: borrowing, waiting, reset after every use,
// replacement of broken members, closing.
import assert from 'node:assert/strict';
import { NubError } from '../../lib/errors.js';
import { Pool, type PoolAdapter } from '../../lib/sandbox/member-pool.js';

interface Fake {
  id: number;
  dirty: boolean;
  broken: boolean;
  failReset: boolean;
  closed: boolean;
}

function fakes(opts: { failCreateAfter?: number } = {}) {
  const made: Fake[] = [];
  const adapter: PoolAdapter<Fake> = {
    create() {
      if (opts.failCreateAfter !== undefined && made.length >= opts.failCreateAfter) throw new NubError('ENOMEM', 'cannot create');
      const f = { id: made.length, dirty: false, broken: false, failReset: false, closed: false };
      made.push(f);
      return f;
    },
    reset(f) {
      if (f.failReset) throw new NubError('Internal', 'cannot reset');
      f.dirty = false;
    },
    isBroken: (f) => f.broken,
    destroy(f) {
      f.closed = true;
    },
  };
  return { made, adapter };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('snapshot: Pool', () => {
  it('creates its members up front and resets each after use', async () => {
    const { made, adapter } = fakes();
    const pool = new Pool(adapter, 3);
    assert.equal(made.length, 3);
    assert.equal(pool.idle, 3);
    const seen = await pool.use((f) => {
      assert.equal(f.dirty, false, 'a borrowed member is clean');
      f.dirty = true;
      assert.equal(pool.idle, 2);
      return f;
    });
    assert.equal(seen.dirty, false, 'reset after use');
    assert.equal(pool.idle, 3);
    assert.equal(pool.useSync((f) => f.id), seen.id, 'the member just returned is reused first');
    assert.deepEqual(pool.stats, { uses: 2, resets: 2, replaced: 0 });
    assert.throws(() => new Pool(adapter, 0), (e: unknown) => e instanceof NubError && e.code === 'BadArgument');
    pool.close();
    assert.ok(made.every((f) => f.closed));
  });

  it('makes callers wait when every member is busy, and serves them in order', async () => {
    const { adapter } = fakes();
    const pool = new Pool(adapter, 2);
    const order: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const busy = [pool.use(() => gate), pool.use(() => gate)];
    const waiting = [1, 2, 3].map((n) => pool.use(() => void order.push(n)));
    await tick();
    assert.deepEqual(order, [], 'no member was free');
    assert.throws(() => pool.useSync(() => 0), (e: unknown) => e instanceof NubError && e.code === 'PoolBusy');
    release();
    await Promise.all([...busy, ...waiting]);
    assert.deepEqual(order, [1, 2, 3]);
    assert.equal(pool.idle, 2);
    pool.close();
  });

  it('replaces members that are broken or fail to reset, also when fn throws', async () => {
    const { made, adapter } = fakes();
    const pool = new Pool(adapter, 1);
    await assert.rejects(pool.use((f) => {
      f.broken = true;
      throw new Error('the call failed');
    }), /the call failed/);
    assert.ok(made[0]!.closed, 'the broken member was closed');
    assert.equal(pool.useSync((f) => f.id), 1, 'a new member took its place');
    pool.useSync((f) => void (f.failReset = true));
    assert.ok(made[1]!.closed);
    assert.equal(pool.useSync((f) => f.id), 2);
    assert.deepEqual(pool.stats, { uses: 4, resets: 2, replaced: 2 });
    pool.close();
  });

  it('rejects waiters when the pool closes or runs out of members', async () => {
    const { adapter } = fakes();
    const pool = new Pool(adapter, 1);
    let release!: () => void;
    const busy = pool.use(() => new Promise<void>((resolve) => (release = resolve)));
    const waiter = pool.use(() => 0);
    pool.close();
    await assert.rejects(waiter, (e: unknown) => e instanceof NubError && e.code === 'Closed');
    release();
    await busy;
    await assert.rejects(pool.use(() => 0), (e: unknown) => e instanceof NubError && e.code === 'Closed');

    const limited = fakes({ failCreateAfter: 1 });
    const small = new Pool(limited.adapter, 1);
    let letGo!: () => void;
    const first = small.use((f) => new Promise<void>((resolve) => {
      f.broken = true;
      letGo = resolve;
    }));
    const starved = small.use(() => 0);
    letGo();
    await first;
    await assert.rejects(starved, (e: unknown) => e instanceof NubError && e.code === 'ENOMEM');
  });
});
