import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';

import { HANDOFF_GRACE_MS, Handoffs } from '../../../lib/node/handoffs.js';

/** Whether `promise` has settled, after the pending callbacks of this turn ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await nextTurn();
  return done;
}

describe('node hand-offs: when a node job is recorded finished, its sandbox may exit', () => {
  it("settles a job's wait when that job is recorded finished, and only then", async () => {
    const handoffs = new Handoffs();
    const first = handoffs.after('job-1');
    const second = handoffs.after('job-2');
    handoffs.recorded('job-2');
    handoffs.recorded(undefined);
    assert.equal(await settled(first), false, 'another job recorded');
    assert.equal(await settled(second), true);
    handoffs.recorded('job-1');
    assert.equal(await settled(first), true);
  });

  it('lets a job go once its processor ended and no recorded ending followed within the grace', async () => {
    const handoffs = new Handoffs();
    const wait = handoffs.after('delayed-job');
    handoffs.processed('delayed-job');
    assert.equal(await settled(wait), false, `not at once: within ${HANDOFF_GRACE_MS} ms`);
    await wait;
  });

  it('settles an earlier attempt of the same job when a new one starts to wait', async () => {
    const handoffs = new Handoffs();
    const earlier = handoffs.after('retried');
    const later = handoffs.after('retried');
    assert.equal(await settled(earlier), true);
    assert.equal(await settled(later), false);
    handoffs.recorded('retried');
    assert.equal(await settled(later), true);
  });

  it('lets every waiting job go when the node closes', async () => {
    const handoffs = new Handoffs();
    const waits = ['a', 'b', 'c'].map((id) => handoffs.after(id));
    handoffs.releaseAll();
    await Promise.all(waits);
    // Nothing is left to settle twice.
    handoffs.recorded('a');
  });
});
