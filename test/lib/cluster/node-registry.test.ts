import assert from 'node:assert/strict';

import { NodeRegistry } from '../../../lib/cluster/node-registry.js';
import { testRedis } from '../../helpers.js';
import { createKeys } from '../../../lib/redis/keys.js';

const keys = createKeys();

const node = {
  id: 'slow-node',
  concurrency: 1,
  hostname: 'h',
  pid: 1,
  startedAt: 0,
  heartbeatMs: 200,
  lockDurationMs: 5000,
};

describe('node registry: alive and lost (@integration)', () => {
  it('stops sending work to a node that misses heartbeats, but calls it lost only once its locks could have expired', async () => {
    const registry = new NodeRegistry(testRedis(), keys);
    await registry.heartbeat(node, 10_000);
    const at = async (now: number) => {
      const [info] = await registry.list(now);
      return { alive: info?.alive, lost: info?.lost };
    };
    assert.deepEqual(await at(10_100), { alive: true, lost: false });
    // Three heartbeat periods missed: a blocked event loop looks like this.
    assert.deepEqual(await at(10_000 + 3 * 200 + 1), { alive: false, lost: false });
    assert.deepEqual(await at(10_000 + 5000 + 1), { alive: false, lost: true });
  });

  it('counts a stopped node as lost at once, and as last seen when it stopped', async () => {
    const registry = new NodeRegistry(testRedis(), keys);
    await registry.heartbeat(node, 10_000);
    await registry.markStopped(node.id, 12_000);
    const [info] = await registry.list(12_001);
    assert.equal(info?.state, 'stopped');
    assert.equal(info?.alive, false);
    assert.equal(info?.lost, true);
    assert.equal(info?.lastSeen, 12_000);
  });

  it("publishes a node's sandbox mode and cache with its heartbeat, and reads none from a node that did not", async () => {
    const redis = testRedis();
    const registry = new NodeRegistry(redis, keys);
    await registry.heartbeat({ ...node, id: 'old-node' }, 10_000);
    await registry.heartbeat(
      { ...node, facts: { sandbox: 'rlimits', cachedVersions: 2, cachedBytes: 4096, secretKey: true } },
      10_000,
    );
    const byId = new Map((await registry.list(10_001)).map((info) => [info.id, info]));
    const published = byId.get(node.id);
    assert.deepEqual(
      [published?.sandbox, published?.cachedVersions, published?.cachedBytes, published?.secretKey],
      ['rlimits', 2, 4096, true],
    );
    const old = byId.get('old-node');
    assert.deepEqual(
      [old?.sandbox, old?.cachedVersions, old?.cachedBytes, old?.secretKey],
      [undefined, undefined, undefined, undefined],
    );
    // Not a field of the hash: the facts are stored flat, one field each.
    assert.equal(await redis.hexists(keys.nodeInfo(node.id), 'facts'), 0);
    // Whatever else is in the hash (anyone with Redis access writes there) reads as unpublished.
    await redis.hset(keys.nodeInfo(node.id), {
      sandbox: 'chroot',
      cachedVersions: '-1',
      cachedBytes: 'many',
      secretKey: 'yes',
    });
    const tampered = (await registry.list(10_001)).find((info) => info.id === node.id);
    assert.deepEqual(
      [tampered?.sandbox, tampered?.cachedVersions, tampered?.cachedBytes, tampered?.secretKey],
      [undefined, undefined, undefined, undefined],
    );
  });

  it('publishes the warm and cached versions and the pool of a node, and reads none from an older node', async () => {
    const registry = new NodeRegistry(testRedis(), keys);
    await registry.heartbeat({ ...node, id: 'old-node' }, 10_000);
    const pool = { size: 1, max: 2, hits: 3, misses: 4 };
    await registry.heartbeat({ ...node, warm: ['p@1'], cached: ['p@1', 'q@2'], pool }, 10_000);
    const infos = await registry.list(10_001);
    const pick = (id: string) => infos.find((info) => info.id === id);
    assert.deepEqual(
      { warm: pick('slow-node')?.warm, cached: pick('slow-node')?.cached, pool: pick('slow-node')?.pool },
      { warm: ['p@1'], cached: ['p@1', 'q@2'], pool },
    );
    assert.deepEqual(
      { warm: pick('old-node')?.warm, cached: pick('old-node')?.cached, pool: pick('old-node')?.pool },
      { warm: [], cached: [], pool: undefined },
    );
  });
});
