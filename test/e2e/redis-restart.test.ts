import assert from 'node:assert/strict';

import { Master } from '../../lib/master/master.js';
import { TydraNode } from '../../lib/node/node.js';
import { type RedisServer, startRedisServer } from '../../lib/ops/redis-server.js';
import { copyFixture, defer, tempDir, testClient } from '../helpers.js';

/**
 * These tests restart Redis under a cluster, so they use a redis-server of their own (persistent,
 * with an append-only file), not the suite's shared one.
 */
describe('Redis restarting (@integration)', function () {
  this.timeout(60_000);

  async function privateRedis(): Promise<{ dir: string; server: () => RedisServer; restart: () => Promise<void> }> {
    const dir = await tempDir('tydra-redis-restart-');
    let server = await startRedisServer({ dir, persist: true });
    defer(() => server.stop());
    const port = server.port;
    return {
      dir,
      server: () => server,
      restart: async () => {
        await server.stop();
        server = await startRedisServer({ dir, port, persist: true });
      },
    };
  }

  // Not startCluster(): the master and node must talk to the private Redis at `url`.
  function cluster(url: string, cacheDir: string): { master: Master; node: TydraNode } {
    const master = new Master({ redis: url, sweepIntervalMs: 200 });
    const node = new TydraNode({
      redis: url,
      id: `restart-${process.pid}`,
      concurrency: 2,
      cacheDir,
      heartbeatMs: 300,
    });
    defer(() => node.close());
    defer(() => master.close());
    return { master, node };
  }

  it('keeps submitted TaskInstances and deployed packages across a restart', async () => {
    const redis = await privateRedis();
    const url = redis.server().url;
    const before = testClient({ redis: url });
    await before.deploy(await copyFixture('probe'));
    const runs = await Promise.all([1, 2, 3].map((n) => before.submit('probe/echo', n)));
    await before.close();

    await redis.restart();

    const after = testClient({ redis: url });
    const { master, node } = cluster(url, await tempDir());
    await master.start();
    await node.start();
    const results = await Promise.all(runs.map((run) => after.run(run.id).result({ timeoutMs: 30_000 })));
    assert.deepEqual(
      results.map((r) => (r as { input: unknown }).input),
      [1, 2, 3],
    );
  });

  it('a running master, node and client carry on after Redis comes back', async () => {
    const redis = await privateRedis();
    const url = redis.server().url;
    const tydra = testClient({ redis: url });
    await tydra.deploy(await copyFixture('probe'));
    const { master, node } = cluster(url, await tempDir());
    await master.start();
    await node.start();
    assert.equal(((await (await tydra.submit('probe/echo', 'before')).result()) as { input: unknown }).input, 'before');

    await redis.restart();

    const run = await tydra.submit('probe/echo', 'after');
    assert.equal(((await run.result({ timeoutMs: 30_000 })) as { input: unknown }).input, 'after');
    assert.equal((await run.status()).nodeId, node.id);
  });
});
