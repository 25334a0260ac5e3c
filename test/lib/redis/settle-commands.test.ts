import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { FlowProducer, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';

import { createKeys } from '../../../lib/redis/keys.js';
import { commitDeploy, takeRef, TakeRefStatus } from '../../../lib/redis/package-commands.js';
import { readSettled } from '../../../lib/redis/settle-commands.js';
import { defer, testRedis, waitFor } from '../../helpers.js';

const keys = createKeys();
const SHA = 'c'.repeat(40);

/**
 * A TaskInstance parked on its node job, as the master leaves it, holding a reference on
 * `settle-pkg@SHA`; `finish` runs the node job with `processor` and waits until the TaskInstance
 * is queued again.
 */
async function heldInstance(redis: Redis) {
  const suffix = randomUUID();
  const uploadId = `upload-${suffix}`;
  await redis.set(keys.upload(uploadId), 'bytes');
  const versionJson = JSON.stringify({ name: 'settle-pkg', sha1: SHA, size: 5, deployedAt: 1, manifest: {} });
  await commitDeploy(redis, keys, { name: 'settle-pkg', sha1: SHA, uploadId, versionJson, now: 1, leaseMs: 1 });
  const tasks = new Queue(`tasks-${suffix}`, { prefix: keys.bullPrefix, connection: redis });
  const node = new Queue(`node.n-${suffix}`, { prefix: keys.bullPrefix, connection: redis });
  const flow = new FlowProducer({ prefix: keys.bullPrefix, connection: redis });
  defer(() => Promise.all([tasks.close(), node.close(), flow.close()]));
  const instanceId = randomUUID();
  const ref = { name: 'settle-pkg', sha1: SHA, instanceId, now: 2, alreadyHeld: false };
  assert.equal(await takeRef(redis, keys, ref), TakeRefStatus.Held);
  await flow.add({
    name: 'task-instance',
    queueName: tasks.name,
    opts: { jobId: instanceId },
    children: [{ name: 'run', queueName: node.name, opts: { jobId: instanceId, ignoreDependencyOnFailure: true } }],
  });
  const finish = async (processor: () => Promise<unknown>): Promise<void> => {
    const worker = new Worker(node.name, processor, { prefix: keys.bullPrefix, connection: redis });
    defer(() => worker.close());
    await waitFor('the TaskInstance queued again', async () =>
      (await tasks.getJobState(instanceId)) === 'waiting' ? true : undefined,
    );
  };
  const read = () =>
    readSettled(redis, keys, { tasksQueue: tasks.name, instanceId, name: 'settle-pkg', sha1: SHA, now: 3000 });
  const holders = () => redis.zrange(keys.packageHolders('settle-pkg', SHA), 0, -1);
  return { instanceId, node, finish, read, holders };
}

describe('readSettled: the settle step reads its finished child (@integration)', () => {
  it('a completed child: its value, and the reference released in the same step (idempotently)', async () => {
    const redis = testRedis({ maxRetriesPerRequest: null });
    const instance = await heldInstance(redis);
    await instance.finish(() => Promise.resolve({ answer: 42 }));
    const settled = await instance.read();
    assert.deepEqual(settled.processed, { [instance.node.toKey(instance.instanceId)]: '{"answer":42}' });
    assert.deepEqual(settled.failed, {});
    assert.deepEqual(await instance.holders(), []);
    assert.equal(await redis.hget(keys.refs, instance.instanceId), null);
    assert.equal(
      await redis.hget(keys.packageIdle('settle-pkg'), SHA),
      '3000',
      'the last holder gone starts the idle time',
    );
    // A step that runs again (its completion lost) reads the same value and changes nothing.
    assert.deepEqual(await instance.read(), settled);
  });

  it('a failed child: its failure, and the reference kept (the step decides whether that is final)', async () => {
    const redis = testRedis({ maxRetriesPerRequest: null });
    const instance = await heldInstance(redis);
    await instance.finish(() => Promise.reject(new Error('the task broke')));
    const settled = await instance.read();
    assert.deepEqual(settled.processed, {});
    assert.deepEqual(settled.failed, { [instance.node.toKey(instance.instanceId)]: 'the task broke' });
    assert.deepEqual(await instance.holders(), [instance.instanceId]);
  });

  it('a child still running: nothing read, the reference kept', async () => {
    const redis = testRedis({ maxRetriesPerRequest: null });
    const instance = await heldInstance(redis);
    assert.deepEqual(await instance.read(), { processed: {}, failed: {} });
    assert.deepEqual(await instance.holders(), [instance.instanceId]);
  });
});
