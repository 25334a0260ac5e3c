/**
 * RedisMirror against the test Redis: what a run's progress and log lines cost Redis, read back
 * from BullMQ's own keys (the jobs' progress, the events streams).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { Queue } from 'bullmq';

import { RedisMirror } from '../../../lib/node/redis-mirror.js';
import { defer, testRedis } from '../../helpers.js';

/** A node queue and a tasks queue of their own, each with a job of id `instanceId`. */
async function mirrored() {
  const redis = testRedis({ maxRetriesPerRequest: null });
  const suffix = randomUUID();
  const tasks = new Queue(`tasks-${suffix}`, { prefix: '{tydra}:bull', connection: redis });
  const node = new Queue(`node.n-${suffix}`, { prefix: '{tydra}:bull', connection: redis });
  defer(() => Promise.all([tasks.close(), node.close()]));
  const instanceId = randomUUID();
  await tasks.add('task-instance', {}, { jobId: instanceId });
  const job = await node.add('run', { instanceId }, { jobId: instanceId });
  const progressEvents = async (queue: Queue): Promise<number> =>
    (await redis.xrange(`{tydra}:bull:${queue.name}:events`, '-', '+')).filter(
      ([, fields]) => fields[fields.indexOf('event') + 1] === 'progress',
    ).length;
  return { tasks, node, instanceId, mirror: new RedisMirror(job, tasks, instanceId), progressEvents };
}

describe('RedisMirror (@integration)', () => {
  it('coalesces a flood of progress values: a few writes, and the last value is on both jobs', async () => {
    const { tasks, node, instanceId, mirror, progressEvents } = await mirrored();
    const count = 10_000;
    for (let i = 1; i <= count; i += 1) {
      mirror.progress({ i, percent: i / 100 });
      if (i % 1000 === 0) {
        // Let the writes in flight answer meanwhile, as the node's event loop does between chunks.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    mirror.log('a line after the flood');
    await mirror.finish();
    const last = { i: count, percent: 100 };
    assert.deepEqual((await node.getJob(instanceId))?.progress, last);
    assert.deepEqual((await tasks.getJob(instanceId))?.progress, { percent: 100, value: last });
    for (const queue of [node, tasks]) {
      const events = await progressEvents(queue);
      assert.ok(events >= 1 && events <= 5, `${events} progress events on ${queue.name} for ${count} values`);
    }
    assert.deepEqual((await tasks.getJobLogs(instanceId)).logs, ['a line after the flood']);
  });

  it('writes a single progress value; finish waits for it', async () => {
    const { tasks, instanceId, mirror } = await mirrored();
    mirror.progress(42);
    await mirror.finish();
    assert.deepEqual((await tasks.getJob(instanceId))?.progress, { percent: 42, value: 42 });
  });
});
