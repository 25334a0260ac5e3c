import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { FlowProducer, Queue, Worker } from 'bullmq';

import { createKeys } from '../../../lib/redis/keys.js';
import {
  readTakenBack,
  RetireNodeStatus,
  retireNode,
  TakeBackStatus,
  takeBackNodeJob,
} from '../../../lib/redis/sweep-commands.js';
import { defer, testRedis, waitFor } from '../../helpers.js';

const keys = createKeys();

/** A TaskInstance parked in `waiting-children` on its node job, as the master leaves it. */
async function parkedInstance() {
  const redis = testRedis({ maxRetriesPerRequest: null });
  const suffix = randomUUID();
  const tasks = new Queue(`tasks-${suffix}`, { prefix: '{tydra}:bull', connection: redis });
  const node = new Queue(`node.n-${suffix}`, { prefix: '{tydra}:bull', connection: redis });
  const flow = new FlowProducer({ prefix: '{tydra}:bull', connection: redis });
  defer(() => Promise.all([tasks.close(), node.close(), flow.close()]));
  const instanceId = randomUUID();
  await flow.add({
    name: 'task-instance',
    queueName: tasks.name,
    data: { dispatch: { nodeId: `n-${suffix}`, at: 1234 } },
    opts: { jobId: instanceId },
    children: [
      {
        name: 'run',
        queueName: node.name,
        data: { instanceId },
        opts: { jobId: instanceId, ignoreDependencyOnFailure: true },
      },
    ],
  });
  const takeBack = () =>
    takeBackNodeJob(redis, keys, {
      queue: node.name,
      nodeId: `n-${suffix}`,
      instanceId,
      tasksQueue: tasks.name,
      dispatchAt: 1234,
      now: 5678,
      recordTtlMs: 60_000,
    });
  return { redis, tasks, node, instanceId, takeBack };
}

describe('taking a node job back from a lost node, in one step (@integration)', () => {
  it('removes a waiting node job, moves its TaskInstance back to wait and records that it had not started', async () => {
    const { redis, tasks, node, instanceId, takeBack } = await parkedInstance();
    assert.equal(await (await tasks.getJob(instanceId))?.getState(), 'waiting-children');

    assert.equal(await takeBack(), TakeBackStatus.TakenBackWaiting);

    assert.equal(await node.getJob(instanceId), undefined);
    assert.equal(await (await tasks.getJob(instanceId))?.getState(), 'waiting');
    assert.deepEqual(await readTakenBack(redis, keys, instanceId), {
      nodeId: node.name.slice(5),
      dispatchAt: 1234,
      ran: false,
    });
    assert.ok((await redis.pttl(keys.takenBack(instanceId))) > 0);
    // A second sweep (another master) finds nothing left to take.
    assert.equal(await takeBack(), TakeBackStatus.Missing);
  });

  it('refuses a job its node holds the lock of, and records a loss while running once the lock is gone', async () => {
    const { redis, tasks, node, instanceId, takeBack } = await parkedInstance();
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const worker = new Worker(node.name, () => held, {
      prefix: '{tydra}:bull',
      connection: testRedis({ maxRetriesPerRequest: null }),
    });
    // Its job is taken from under it: finishing it then fails, as for a node whose lock expired.
    worker.on('error', () => undefined);
    defer(() => worker.close(true));
    await waitFor('the node job to be active', async () =>
      (await node.getJobState(instanceId)) === 'active' ? true : undefined,
    );

    assert.equal(await takeBack(), TakeBackStatus.Locked);
    assert.equal(await node.getJobState(instanceId), 'active');
    assert.equal(await (await tasks.getJob(instanceId))?.getState(), 'waiting-children');
    assert.equal(await readTakenBack(redis, keys, instanceId), undefined);

    // The node dies: its lock expires (deleted here rather than waited for).
    await redis.del(`{tydra}:bull:${node.name}:${instanceId}:lock`);
    assert.equal(await takeBack(), TakeBackStatus.TakenBackRunning);
    assert.equal((await readTakenBack(redis, keys, instanceId))?.ran, true);
    assert.equal(await (await tasks.getJob(instanceId))?.getState(), 'waiting');
    release();
  });

  it('leaves a node job that finished alone, so its result and ending are kept', async () => {
    const { redis, tasks, node, instanceId, takeBack } = await parkedInstance();
    const worker = new Worker(node.name, () => Promise.resolve('done'), {
      prefix: '{tydra}:bull',
      connection: testRedis({ maxRetriesPerRequest: null }),
    });
    defer(() => worker.close());
    await waitFor('the node job to complete', async () =>
      (await node.getJobState(instanceId)) === 'completed' ? true : undefined,
    );

    assert.equal(await takeBack(), TakeBackStatus.Finished);
    assert.equal(await node.getJobState(instanceId), 'completed');
    assert.deepEqual(Object.values(await (await tasks.getJob(instanceId))!.getChildrenValues()), ['done']);
    assert.equal(await readTakenBack(redis, keys, instanceId), undefined);
  });
});

describe('forgetting a lost node after its retention period (@integration)', () => {
  it('keeps a node heard from since the cutoff or with pending jobs, and forgets it otherwise', async () => {
    const redis = testRedis({ maxRetriesPerRequest: null });
    const nodeId = `n-${randomUUID()}`;
    const queue = new Queue(`node.${nodeId}`, { prefix: '{tydra}:bull', connection: redis });
    defer(() => queue.close());
    await redis.zadd(keys.nodes, 1000, nodeId);
    await redis.hset(`{tydra}:node:${nodeId}`, { state: 'stopped' });
    const retire = (cutoff: number) => retireNode(redis, keys, { nodeId, queue: queue.name, cutoff });

    assert.equal(await retire(1000), RetireNodeStatus.RecentlySeen);
    await queue.add('run', {}, { jobId: 'pending' });
    assert.equal(await retire(2000), RetireNodeStatus.HasPendingJobs);
    await queue.remove('pending');
    assert.equal(await retire(2000), RetireNodeStatus.Retired);
    assert.equal(await redis.zscore(keys.nodes, nodeId), null);
    assert.equal(await redis.exists(`{tydra}:node:${nodeId}`), 0);
    assert.equal(await retire(2000), RetireNodeStatus.NotRegistered);
  });
});
