import assert from 'node:assert/strict';

import { Queue } from 'bullmq';

import type { Tydra } from '../../lib/client/client.js';
import { NodeRegistry } from '../../lib/cluster/node-registry.js';
import { Dashboard } from '../../lib/ops/dashboard.js';
import { nodeQueueName } from '../../queues/node.js';
import { tydra as cli } from '../bin/run-cli.js';
import { copyFixture, defer, redisUrl, startCluster, startNode, testClient, testRedis, waitFor } from '../helpers.js';
import { createKeys } from '../../lib/redis/keys.js';

const keys = createKeys();

const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});
const ADMIN = basic('ops', 'a');
const VIEWER = basic('viewer', 'b');

async function dashboard(): Promise<(path: string, headers: Record<string, string>) => Promise<Response>> {
  const board = new Dashboard({
    redis: redisUrl(),
    port: 0,
    auth: [
      { user: 'ops', password: 'a' },
      { user: 'viewer', password: 'b', role: 'read-only' },
    ],
  });
  defer(() => board.close());
  const url = await board.start();
  return (path, headers) =>
    fetch(`${url}${path}`, { method: 'PUT', headers: { origin: new URL(url).origin, ...headers } });
}

/** A node (concurrency 1) busy with a long nap, and a second TaskInstance waiting in its queue. */
async function busyNode(tydra: Tydra, sweepIntervalMs?: number) {
  const { nodes } = await startCluster(
    1,
    { concurrency: 1, drainTimeoutMs: 1000 },
    sweepIntervalMs === undefined ? {} : { sweepIntervalMs },
  );
  const busy = nodes[0]?.id ?? '';
  const long = await tydra.submit('probe/nap', { ms: 60_000, tag: 'long' });
  // Whatever the test asserts, the long nap must not hold its node's close up.
  defer(() => tydra.cancel(long.id));
  const waiting = await tydra.submit('probe/nap', { ms: 10, tag: 'waiting' });
  await waitFor('the long nap to run and the other to wait on the same node', async () => {
    const [a, b] = await Promise.all([long.status(), waiting.status()]);
    return a.state === 'running' && b.state === 'dispatched' && b.nodeId === busy ? true : undefined;
  });
  const other = (await startNode()).id;
  return { busy, other, long, waiting };
}

async function draining(nodeId: string): Promise<boolean | undefined> {
  const nodes = await new NodeRegistry(testRedis(), keys).list();
  return nodes.find((node) => node.id === nodeId)?.draining;
}

describe('draining a node: pause of its queue in the board, tydra node drain (@integration)', function () {
  this.timeout(60_000);

  it('board pause moves what waits on the node elsewhere, sends it nothing new, keeps what it runs; resume undoes it', async () => {
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const { busy, other, long, waiting } = await busyNode(tydra);
    const put = await dashboard();
    const queue = nodeQueueName(busy);

    assert.equal((await put(`api/queues/${queue}/pause`, VIEWER)).status, 405, 'read-only users cannot drain');
    assert.equal((await put(`api/queues/${queue}/pause`, ADMIN)).status, 200);
    assert.equal(await draining(busy), true);
    assert.deepEqual(await waiting.result({ timeoutMs: 20_000 }), { rested: 'waiting' });
    assert.equal((await waiting.status()).nodeId, other, 'the waiting one moved to the other node');
    const fresh = await tydra.submit('probe/nap', { ms: 10, tag: 'fresh' });
    await fresh.result({ timeoutMs: 20_000 });
    assert.equal((await fresh.status()).nodeId, other, 'a draining node gets no new work');
    const status = await long.status();
    assert.equal(status.state, 'running', 'the node keeps running what it runs');
    assert.equal(status.nodeId, busy);
    assert.match(
      (await tydra.nodes()).map((node) => `${node.id}:${node.draining}`).join(' '),
      new RegExp(`${busy}:true`),
    );

    assert.equal((await put(`api/queues/${queue}/resume`, ADMIN)).status, 200);
    assert.equal(await draining(busy), false);
    const nodeQueue = new Queue(queue, {
      prefix: '{tydra}:bull',
      connection: testRedis({ maxRetriesPerRequest: null }),
    });
    defer(() => nodeQueue.close());
    assert.equal(await nodeQueue.isPaused(), false);
    assert.equal((await put('api/queues/node.nope/pause', ADMIN)).status, 404);
    await tydra.cancel(long.id);
  });

  it('tydra node drain ID / resume ID do the same, and tydra nodes shows the state', async () => {
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const { busy, other, long, waiting } = await busyNode(tydra);

    const drained = await cli(['node', 'drain', busy, '--redis', redisUrl()]);
    assert.equal(drained.exitCode, 0, drained.stderr);
    // 1 moved (a master's sweep may have moved it first, if it ran between the mark and the move: 0).
    assert.match(drained.stdout, new RegExp(`node ${busy} draining; [01] waiting TaskInstance\\(s\\) moved`));
    await waiting.result({ timeoutMs: 20_000 });
    assert.equal((await waiting.status()).nodeId, other);
    const listed = await cli(['nodes', '--redis', redisUrl()]);
    assert.match(listed.stdout, new RegExp(`${busy}  alive, draining `));

    const resumed = await cli(['node', 'resume', busy, '--redis', redisUrl(), '--json']);
    assert.equal(resumed.exitCode, 0, resumed.stderr);
    assert.deepEqual(JSON.parse(resumed.stdout), { nodeId: busy, draining: false });
    assert.doesNotMatch((await cli(['nodes', '--redis', redisUrl()])).stdout, /draining/);
    const unknown = await cli(['node', 'drain', 'nope', '--redis', redisUrl()]);
    assert.equal(unknown.exitCode, 1);
    assert.match(unknown.stderr, /Expected a registered node id .*got `nope`/);
    await tydra.cancel(long.id);
  });

  it("moves what lands on a draining node later (a dispatch that chose it before the mark) at the masters' next sweep", async () => {
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const { busy, other, long, waiting } = await busyNode(tydra, 200);
    // The mark alone, as a master that read the registry just before it sees things: the
    // waiting TaskInstance is on the node's queue after the drain step ran.
    assert.equal(await new NodeRegistry(testRedis(), keys).setDraining(busy, true), true);
    await waiting.result({ timeoutMs: 20_000 });
    assert.equal((await waiting.status()).nodeId, other);
    assert.equal((await long.status()).nodeId, busy);
    await tydra.cancel(long.id);
  });
});
