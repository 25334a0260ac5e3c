/** Reads back everything Redis holds, for tests that prove a value never reached it in clear. */
import assert from 'node:assert/strict';

import type { Redis } from 'ioredis';

/** Every string Redis holds, under every key, whatever its type (KEYS * is fine in a test). */
export async function everyRedisString(redis: Redis): Promise<string[]> {
  const texts: string[] = [];
  for (const key of await redis.keys('*')) {
    texts.push(key);
    const type = await redis.type(key);
    if (type === 'string') {
      texts.push((await redis.getBuffer(key))?.toString('latin1') ?? '');
    } else if (type === 'hash') {
      texts.push(...Object.entries(await redis.hgetall(key)).flat());
    } else if (type === 'list') {
      texts.push(...(await redis.lrange(key, 0, -1)));
    } else if (type === 'set') {
      texts.push(...(await redis.smembers(key)));
    } else if (type === 'zset') {
      texts.push(...(await redis.zrange(key, 0, -1)));
    } else if (type === 'stream') {
      const entries = await redis.xrange(key, '-', '+');
      texts.push(...entries.flatMap(([id, fields]) => [id, ...fields]));
    } else {
      assert.fail(`a key of a type this scan does not read: ${key} (${type})`);
    }
  }
  return texts;
}
