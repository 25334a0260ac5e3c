/**
 * failsForGood: when the master releases a failing TaskInstance's reference in its step, before
 * BullMQ records the failure. Only when BullMQ cannot retry the job; never for its move errors.
 */
import assert from 'node:assert/strict';

import { DelayedError, RateLimitError, UnrecoverableError, WaitingChildrenError, WaitingError } from 'bullmq';

import { failsForGood, type TaskInstanceJob } from '../../../lib/master/settle.js';

/** What failsForGood reads of a job: its attempts so far and allowed. */
function job(attemptsMade: number, attempts?: number): TaskInstanceJob {
  return { attemptsMade, opts: attempts === undefined ? {} : { attempts } } as TaskInstanceJob;
}

describe('failsForGood', () => {
  it('is true on the last attempt, and on the only one when attempts is unset', () => {
    assert.equal(failsForGood(job(2, 3), new Error('x')), true);
    assert.equal(failsForGood(job(0), new Error('x')), true);
  });

  it('is false on an attempt BullMQ retries', () => {
    assert.equal(failsForGood(job(0, 3), new Error('x')), false);
    assert.equal(failsForGood(job(1, 3), new Error('x')), false);
  });

  it('is true for an UnrecoverableError on any attempt, also one only named so (from another copy of BullMQ)', () => {
    assert.equal(failsForGood(job(0, 3), new UnrecoverableError('x')), true);
    const named = Object.assign(new Error('x'), { name: 'UnrecoverableError' });
    assert.equal(failsForGood(job(0, 3), named), true);
  });

  it('is false for what moves a job elsewhere than failed, even on the last attempt', () => {
    for (const error of [
      new WaitingChildrenError(),
      new DelayedError(),
      new WaitingError(),
      new RateLimitError(),
      Object.assign(new Error('x'), { name: 'WaitingChildrenError' }),
    ]) {
      assert.equal(failsForGood(job(0), error), false, error.name);
    }
  });

  it('is false for something thrown that is not an Error: the `failed` event decides then', () => {
    assert.equal(failsForGood(job(0), 'a string'), false);
  });
});
