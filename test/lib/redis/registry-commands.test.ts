import assert from 'node:assert/strict';

import { listNodes } from '../../../lib/redis/registry-commands.js';
import { testRedis } from '../../helpers.js';

describe('the listNodes script wrapper (@integration)', () => {
  it('returns every registered node in heartbeat order with its description, empty when that is gone', async () => {
    const redis = testRedis();
    assert.deepEqual(await listNodes(redis), []);
    await redis.zadd('tydra:nodes', 2000, 'b', 1000, 'a', 3000, 'gone');
    await redis.hset('tydra:node:a', 'concurrency', '2', 'draining', '1');
    await redis.hset('tydra:node:b', 'concurrency', '4');
    assert.deepEqual(await listNodes(redis), [
      { id: 'a', lastSeen: 1000, info: { concurrency: '2', draining: '1' } },
      { id: 'b', lastSeen: 2000, info: { concurrency: '4' } },
      { id: 'gone', lastSeen: 3000, info: {} },
    ]);
  });
});
