/**
 * failsForGood: when the master releases a failing TaskInstance's reference in its step, before
 * BullMQ records the failure. Only for an ending the step recorded (failWith), and only when
 * BullMQ cannot retry the job; never for BullMQ's move errors, a lost lock or a Redis error.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { DelayedError, Queue, UnrecoverableError } from 'bullmq';

import { createKeys } from '../../../lib/redis/keys.js';
import { failsForGood, failWith, type TaskInstanceJob } from '../../../lib/master/settle.js';
import { defer, testRedis } from '../../helpers.js';

describe('failsForGood (@integration)', () => {
  /** A real job on a throwaway queue of the test Redis, allowed `attempts`. */
  async function job(attempts?: number): Promise<TaskInstanceJob> {
    const queue = new Queue(`fails-for-good-${randomUUID()}`, {
      connection: testRedis(),
      prefix: createKeys().bullPrefix,
    });
    defer(async () => {
      await queue.obliterate({ force: true });
      await queue.close();
    });
    return await queue.add('t', {}, attempts === undefined ? {} : { attempts });
  }

  it('is true for a recorded ending on the last attempt, and on the only one when attempts is unset', async () => {
    const last = await job(1);
    assert.equal(failsForGood(last, await failWith(last, { kind: 'failed' }, new Error('x'))), true);
    const only = await job();
    assert.equal(failsForGood(only, await failWith(only, { kind: 'failed' }, new Error('x'))), true);
  });

  it('is false for a recorded ending on an attempt BullMQ retries, true when it is unrecoverable', async () => {
    const first = await job(3);
    assert.equal(failsForGood(first, await failWith(first, { kind: 'failed' }, new Error('x'))), false);
    const cancelled = await failWith(first, { kind: 'cancelled' }, new UnrecoverableError('cancelled'));
    assert.equal(failsForGood(first, cancelled), true);
  });

  it('is false for anything the step did not record, even on the last attempt: a lost lock, a Redis error, a move', async () => {
    const last = await job(1);
    for (const error of [
      new Error('Missing lock for job 1. moveToDelayed'),
      new Error('Connection is closed.'),
      new UnrecoverableError('not recorded'),
      new DelayedError(),
    ]) {
      assert.equal(failsForGood(last, error), false, error.message);
    }
    assert.equal(failsForGood(last, 'a string'), false);
  });
});
