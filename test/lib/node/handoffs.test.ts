import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';

import { HANDOFF_GRACE_MS, type HandoffBy, Handoffs } from '../../../lib/node/handoffs.js';

/** Whether `promise` has settled, after the pending callbacks of this turn ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await nextTurn();
  return done;
}

/** Hand-offs that record what ended each wait. */
function counted(): { handoffs: Handoffs; by: HandoffBy[] } {
  const by: HandoffBy[] = [];
  return { handoffs: new Handoffs((cause) => by.push(cause)), by };
}

describe('node hand-offs: when a node job is recorded finished, its sandbox may exit', () => {
  it("settles a job's wait when that job is recorded finished, and only then", async () => {
    const { handoffs, by } = counted();
    const first = handoffs.after('job-1');
    const second = handoffs.after('job-2');
    handoffs.recorded('job-2');
    handoffs.recorded(undefined);
    assert.equal(await settled(first), false, 'another job recorded');
    assert.equal(await settled(second), true);
    handoffs.recorded('job-1');
    assert.equal(await settled(first), true);
    handoffs.recorded('job-1');
    assert.deepEqual(by, ['event', 'event'], 'each wait counted once');
  });

  it('lets a job go once its processor ended and no recorded ending followed within the grace', async () => {
    const { handoffs, by } = counted();
    const wait = handoffs.after('delayed-job');
    handoffs.processed('delayed-job');
    assert.equal(await settled(wait), false, `not at once: within ${HANDOFF_GRACE_MS} ms`);
    await wait;
    assert.deepEqual(by, ['grace']);
  });

  it('does not count the grace of a job whose ending was recorded meanwhile', async () => {
    const { handoffs, by } = counted();
    const wait = handoffs.after('completed-job');
    handoffs.processed('completed-job');
    handoffs.recorded('completed-job');
    await wait;
    // The grace timer of this job fires later and finds nothing to release.
    const next = handoffs.after('next-job');
    handoffs.processed('next-job');
    await next;
    assert.deepEqual(by, ['event', 'grace']);
  });

  it('lets a job moved to delayed go at once: BullMQ records that without an event', async () => {
    const { handoffs, by } = counted();
    const wait = handoffs.after('retried-later');
    handoffs.processed('retried-later', false);
    assert.equal(await settled(wait), true);
    assert.deepEqual(by, [], 'neither an event nor the grace');
  });

  it('settles an earlier attempt of the same job when a new one starts to wait', async () => {
    const { handoffs } = counted();
    const earlier = handoffs.after('retried');
    const later = handoffs.after('retried');
    assert.equal(await settled(earlier), true);
    assert.equal(await settled(later), false);
    handoffs.recorded('retried');
    assert.equal(await settled(later), true);
  });

  it('lets every waiting job go when the node closes', async () => {
    const { handoffs, by } = counted();
    const waits = ['a', 'b', 'c'].map((id) => handoffs.after(id));
    handoffs.releaseAll();
    await Promise.all(waits);
    // Nothing is left to settle twice.
    handoffs.recorded('a');
    assert.deepEqual(by, ['close', 'close', 'close']);
  });
});
