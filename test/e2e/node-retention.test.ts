import assert from 'node:assert/strict';

import { nodeQueueName } from '../../queues/node.js';
import { copyFixture, startCluster, startNode, testClient, testRedis, waitFor } from '../helpers.js';
import { startMasterProcess } from './master-process.js';

describe('nodes gone for longer than the retention period (@integration)', function () {
  this.timeout(30_000);

  it('are forgotten with their queue once it is empty, while live nodes stay', async () => {
    await startCluster(0, {}, { sweepIntervalMs: 100, nodeRetentionMs: 300 });
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const leaving = await startNode({ heartbeatMs: 200 });
    // A finished job stays in the node's queue: the retention must clear it with the node.
    await (await tydra.submit('probe/echo', { hi: 1 })).result({ timeoutMs: 20_000 });
    await leaving.close();
    const staying = await startNode({ heartbeatMs: 200 });
    const redis = testRedis();
    assert.ok((await redis.keys(`{tydra}:bull:${nodeQueueName(leaving.id)}:*`)).length > 0);

    await waitFor('the stopped node to be forgotten', async () =>
      (await tydra.nodes()).some((node) => node.id === leaving.id) ? undefined : true,
    );
    assert.deepEqual(await redis.keys(`{tydra}:node:${leaving.id}`), []);
    // The registry entry goes first, then the sweep obliterates the queue (`retireIfExpired`).
    await waitFor("the stopped node's queue to be obliterated", async () =>
      (await redis.keys(`{tydra}:bull:${nodeQueueName(leaving.id)}:*`)).length === 0 ? true : undefined,
    );
    assert.deepEqual(
      (await tydra.nodes()).map((node) => [node.id, node.alive]),
      [[staying.id, true]],
    );
  });

  it('tydra master --node-retention sets the period', async () => {
    await startMasterProcess(['--sweep-interval', '100', '--node-retention', '200']);
    const tydra = testClient();
    const leaving = await startNode({ heartbeatMs: 200 });
    await leaving.close();
    await waitFor('the stopped node to be forgotten', async () =>
      (await tydra.nodes()).some((node) => node.id === leaving.id) ? undefined : true,
    );
  });
});
