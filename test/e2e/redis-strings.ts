/** Reads back everything Redis holds, for tests that prove a value never reached it in clear. */
import type { Redis } from 'ioredis';

/**
 * One script, so the read is one snapshot: read key by key from the test, a key the cluster
 * deletes between KEYS and TYPE reads as type `none` (a CI run failed on exactly that, a
 * package's holders set released by a schedule's firing), and one deleted and made again
 * between TYPE and the read would fail with WRONGTYPE. Each key gives its name, its type and
 * what it holds, flattened.
 */
const SNAPSHOT = `
local out = {}
local function add(values) for _, v in ipairs(values) do out[#out + 1] = v end end
for _, key in ipairs(redis.call('KEYS', '*')) do
  local kind = redis.call('TYPE', key)['ok']
  out[#out + 1] = key
  out[#out + 1] = kind
  if kind == 'string' then out[#out + 1] = redis.call('GET', key)
  elseif kind == 'hash' then add(redis.call('HGETALL', key))
  elseif kind == 'list' then add(redis.call('LRANGE', key, 0, -1))
  elseif kind == 'set' then add(redis.call('SMEMBERS', key))
  elseif kind == 'zset' then add(redis.call('ZRANGE', key, 0, -1))
  elseif kind == 'stream' then
    for _, entry in ipairs(redis.call('XRANGE', key, '-', '+')) do
      out[#out + 1] = entry[1]
      add(entry[2])
    end
  else return redis.error_reply('a key of a type this scan does not read: ' .. key .. ' (' .. kind .. ')') end
end
return out
`;

/**
 * Every string Redis holds, under every key, whatever its type (KEYS * is fine in a test).
 * Values are read as latin1, so a secret's bytes are found inside binary values (a tarball)
 * as well as in text.
 */
export async function everyRedisString(redis: Redis): Promise<string[]> {
  const reply = (await redis.callBuffer('EVAL', SNAPSHOT, 0)) as Buffer[];
  return reply.map((value) => value.toString('latin1'));
}
