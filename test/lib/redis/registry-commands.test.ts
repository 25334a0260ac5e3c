import assert from 'node:assert/strict';

import { createKeys } from '../../../lib/redis/keys.js';
import { listNodes } from '../../../lib/redis/registry-commands.js';
import { testRedis } from '../../helpers.js';

const keys = createKeys();

describe('the listNodes script wrapper (@integration)', () => {
  it('returns every registered node in heartbeat order with its description, empty when that is gone', async () => {
    const redis = testRedis();
    assert.deepEqual(await listNodes(redis, keys), []);
    await redis.zadd(keys.nodes, 2000, 'b', 1000, 'a', 3000, 'gone');
    await redis.hset(keys.nodeInfo('a'), 'concurrency', '2', 'draining', '1');
    await redis.hset(keys.nodeInfo('b'), 'concurrency', '4');
    assert.deepEqual(await listNodes(redis, keys), [
      { id: 'a', lastSeen: 1000, info: { concurrency: '2', draining: '1' } },
      { id: 'b', lastSeen: 2000, info: { concurrency: '4' } },
      { id: 'gone', lastSeen: 3000, info: {} },
    ]);
  });
});
