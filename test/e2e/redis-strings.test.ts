import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { testRedis } from '../helpers.js';
import { everyRedisString } from './redis-strings.js';

// The secrets tests prove a value never reached Redis by not finding it here; that proof is
// only as good as this scan, so it must find a value in every type Redis has.
describe('everyRedisString, the scan the secrets tests search (@integration)', () => {
  it('finds a value under every type, in key names, binary strings and stream fields', async () => {
    const redis = testRedis();
    const value = `needle-${randomUUID()}`;
    const prefix = `scan-${randomUUID()}`;
    await redis.set(`${prefix}:string`, Buffer.concat([Buffer.from([0, 0xff, 0x80]), Buffer.from(value)]));
    await redis.hset(`${prefix}:hash`, 'field', value);
    await redis.hset(`${prefix}:hash-field`, value, 'x');
    await redis.rpush(`${prefix}:list`, value);
    await redis.sadd(`${prefix}:set`, value);
    await redis.zadd(`${prefix}:zset`, 1, value);
    await redis.xadd(`${prefix}:stream`, '*', 'field', value);
    await redis.set(`${prefix}:${value}`, 'x');

    const texts = await everyRedisString(redis);
    for (const kind of ['string', 'hash', 'hash-field', 'list', 'set', 'zset', 'stream']) {
      const at = texts.indexOf(`${prefix}:${kind}`);
      assert.ok(at >= 0, `the key ${kind} is listed`);
      const next = texts.findIndex((text, i) => i > at + 1 && text.startsWith(prefix));
      const held = texts.slice(at + 2, next === -1 ? undefined : next);
      assert.ok(
        held.some((text) => text.includes(value)),
        `the ${kind}'s value is found: ${JSON.stringify(held)}`,
      );
    }
    assert.ok(texts.includes(`${prefix}:${value}`), 'a key name is searched too');
  });
});
