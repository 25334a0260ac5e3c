import assert from 'node:assert/strict';

import { Tydra } from '../../../lib/client/client.js';
import { compileTydraOptions } from '../../../lib/client/options.js';
import { readEnvConfig } from '../../../lib/core/config.js';
import { InvalidOptionError, RedisUnreachableError } from '../../../lib/core/errors.js';
import { compileMasterOptions } from '../../../lib/master/options.js';
import { compileNodeOptions } from '../../../lib/node/options.js';
import { compileDashboardOptions } from '../../../lib/ops/dashboard-options.js';
import {
  clusterUrl,
  parseClusterUrl,
  parseSentinelUrl,
  sentinelUrl,
  withRedisPassword,
} from '../../../lib/core/redis-url.js';
import { freePort } from '../../../lib/ops/redis-server.js';
import { createRedis, describeRedisTarget, redactRedisUrl } from '../../../lib/redis/connection.js';
import { defer } from '../../helpers.js';

const SECRET = 'p@ss:w/rd#1';
const ENCODED = encodeURIComponent(SECRET);

describe('Redis Sentinel URLs', () => {
  it('parses sentinels, master name, user, password and database', () => {
    assert.deepEqual(parseSentinelUrl(`redis-sentinel://app:${ENCODED}@10.0.0.1:26379,10.0.0.2:26380/2#my%20master`), {
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: '10.0.0.2', port: 26380 },
      ],
      name: 'my master',
      username: 'app',
      password: SECRET,
      db: 2,
    });
    assert.deepEqual(parseSentinelUrl('redis-sentinel://[::1]:5000,sentinel-b/#mymaster'), {
      sentinels: [
        { host: '::1', port: 5000 },
        { host: 'sentinel-b', port: 26379 },
      ],
      name: 'mymaster',
    });
    assert.deepEqual(parseSentinelUrl(`redis-sentinel://:${ENCODED}@h:1#m`).password, SECRET);
  });

  it('says what is wrong with a malformed URL, without the password', () => {
    assert.throws(() => parseSentinelUrl(`redis-sentinel://:${ENCODED}@h:1,h:2`), /#MASTERNAME is missing/);
    assert.throws(() => parseSentinelUrl(`redis-sentinel://:${ENCODED}@h:99999#m`), /"h:99999" is not a HOST:PORT/);
    for (const url of [`redis-sentinel://:${ENCODED}@h:1`, `redis-sentinel://:${ENCODED}@h:x#m`]) {
      assert.throws(
        () => parseSentinelUrl(url),
        (error: Error) => !error.message.includes(ENCODED) && !error.message.includes(SECRET),
      );
    }
  });

  it('round-trips through sentinelUrl and redacts the password', () => {
    const url = `redis-sentinel://app:${ENCODED}@127.0.0.1:1,127.0.0.1:2/3#mymaster`;
    assert.deepEqual(parseSentinelUrl(sentinelUrl(parseSentinelUrl(url))), parseSentinelUrl(url));
    assert.equal(redactRedisUrl(url), 'redis-sentinel://app:***@127.0.0.1:1,127.0.0.1:2/3#mymaster');
    assert.equal(redactRedisUrl('redis-sentinel://h:1#m'), 'redis-sentinel://h:1#m');
    assert.equal(redactRedisUrl('redis-sentinel://h:1'), '[unparseable redis url]');
  });

  it('fills in TYDRA_REDIS_PASSWORD only where the URL has none', () => {
    assert.equal(parseSentinelUrl(withRedisPassword('redis-sentinel://h:1#m', SECRET)).password, SECRET);
    assert.equal(parseSentinelUrl(withRedisPassword('redis-sentinel://:mine@h:1#m', SECRET)).password, 'mine');
    assert.equal(withRedisPassword('redis://127.0.0.1:6379', 'x y'), 'redis://:x%20y@127.0.0.1:6379');
    assert.equal(withRedisPassword('redis://:mine@127.0.0.1:6379', SECRET), 'redis://:mine@127.0.0.1:6379');
    assert.equal(withRedisPassword('nonsense', SECRET), 'nonsense');
    const env = readEnvConfig({ TYDRA_REDIS_URL: 'redis-sentinel://h:1#m', TYDRA_REDIS_PASSWORD: SECRET });
    assert.equal(parseSentinelUrl(env.redisUrl).password, SECRET);
    assert.equal(env.redisPassword, SECRET);
  });

  it('describes a Sentinel connection by its sentinels and master name, never its password', () => {
    const redis = createRedis(`redis-sentinel://:${ENCODED}@127.0.0.1:1,127.0.0.1:2#mymaster`, { lazyConnect: true });
    try {
      assert.equal(describeRedisTarget(redis), 'Sentinel master mymaster via 127.0.0.1:1,127.0.0.1:2 (with password)');
      assert.deepEqual(redis.duplicate({ lazyConnect: true }).options.sentinels, redis.options.sentinels);
    } finally {
      redis.disconnect();
    }
  });
});

describe('Redis Cluster URLs', () => {
  it('parses seed nodes (port 6379 by default), user and password', () => {
    assert.deepEqual(parseClusterUrl(`redis-cluster://app:${ENCODED}@10.0.0.1:7000,[::1]:7001,redis-c`), {
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '::1', port: 7001 },
        { host: 'redis-c', port: 6379 },
      ],
      username: 'app',
      password: SECRET,
    });
    assert.deepEqual(parseClusterUrl('redis-cluster://127.0.0.1:7000/'), {
      nodes: [{ host: '127.0.0.1', port: 7000 }],
    });
  });

  it('says what is wrong with a malformed URL (a /DB among them), without the password', () => {
    for (const url of [
      `redis-cluster://:${ENCODED}@h:7000/1`,
      `redis-cluster://:${ENCODED}@h:70000`,
      `redis-cluster://:${ENCODED}@`,
      `redis-cluster://:${ENCODED}@h:1#m`,
    ]) {
      assert.throws(
        () => parseClusterUrl(url),
        (error: Error) =>
          error.message.startsWith('expected redis-cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…]') &&
          !error.message.includes(ENCODED) &&
          !error.message.includes(SECRET),
        url,
      );
    }
  });

  it('round-trips, redacts the password and fills in TYDRA_REDIS_PASSWORD only where the URL has none', () => {
    const url = `redis-cluster://app:${ENCODED}@127.0.0.1:7000,127.0.0.1:7001`;
    assert.equal(clusterUrl(parseClusterUrl(url)), url);
    assert.equal(redactRedisUrl(url), 'redis-cluster://app:***@127.0.0.1:7000,127.0.0.1:7001');
    assert.equal(redactRedisUrl('redis-cluster://h:1'), 'redis-cluster://h:1');
    assert.equal(redactRedisUrl('redis-cluster://h:1/2'), '[unparseable redis url]');
    assert.equal(parseClusterUrl(withRedisPassword('redis-cluster://h:1', SECRET)).password, SECRET);
    assert.equal(parseClusterUrl(withRedisPassword('redis-cluster://:mine@h:1', SECRET)).password, 'mine');
    const env = readEnvConfig({ TYDRA_REDIS_URL: 'redis-cluster://h:1', TYDRA_REDIS_PASSWORD: SECRET });
    assert.equal(parseClusterUrl(env.redisUrl).password, SECRET);
  });

  it('is accepted by every component and gives an ioredis Cluster, described without the password', () => {
    const url = 'redis-cluster://127.0.0.1:7000,127.0.0.1:7001';
    assert.equal(compileTydraOptions({ redis: url }).redisUrl, url);
    assert.equal(compileMasterOptions({ redis: url }).redisUrl, url);
    assert.equal(compileNodeOptions({ redis: url }).redisUrl, url);
    assert.equal(compileDashboardOptions({ redis: url }).redisUrl, url);
    assert.throws(() => compileTydraOptions({ redis: `redis-cluster://:${ENCODED}@h:1/1` }), InvalidOptionError);
    const redis = createRedis(`redis-cluster://:${ENCODED}@127.0.0.1:1,127.0.0.1:2`, { lazyConnect: true });
    try {
      assert.equal(redis.isCluster, true);
      assert.equal(describeRedisTarget(redis), 'Redis Cluster via 127.0.0.1:1,127.0.0.1:2 (with password)');
    } finally {
      redis.disconnect();
    }
  });
});

describe('a client on unreachable sentinels', () => {
  it('fails after its connect timeout, naming the sentinels but not the password', async () => {
    const port = await freePort();
    const tydra = new Tydra({
      redis: `redis-sentinel://:${ENCODED}@127.0.0.1:${port}#mymaster`,
      connectTimeoutMs: 300,
    });
    defer(() => tydra.close());
    await assert.rejects(
      tydra.nodes(),
      (error: Error) =>
        error instanceof RedisUnreachableError &&
        error.target === `Sentinel master mymaster via 127.0.0.1:${port} (with password)` &&
        !error.message.includes(SECRET) &&
        !error.message.includes(ENCODED),
    );
  });
});

describe('a client on an unreachable Redis Cluster', () => {
  it('fails after its connect timeout, naming the seed nodes but not the password', async () => {
    const port = await freePort();
    const tydra = new Tydra({ redis: `redis-cluster://:${ENCODED}@127.0.0.1:${port}`, connectTimeoutMs: 300 });
    defer(() => tydra.close());
    await assert.rejects(
      tydra.nodes(),
      (error: Error) =>
        error instanceof RedisUnreachableError &&
        error.target === `Redis Cluster via 127.0.0.1:${port} (with password)` &&
        !error.message.includes(SECRET) &&
        !error.message.includes(ENCODED),
    );
  });
});

describe('the redis option of every component', () => {
  it('takes a redis-sentinel:// URL or a { sentinels, name, password } object, compiled to a URL', () => {
    const url = 'redis-sentinel://127.0.0.1:26379,127.0.0.1:26380#mymaster';
    assert.equal(compileTydraOptions({ redis: url }).redisUrl, url);
    assert.equal(compileMasterOptions({ redis: url }).redisUrl, url);
    const compiled = compileTydraOptions({
      redis: { sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'mymaster', password: SECRET },
    });
    assert.deepEqual(parseSentinelUrl(compiled.redisUrl), {
      sentinels: [{ host: '127.0.0.1', port: 26379 }],
      name: 'mymaster',
      password: SECRET,
    });
  });

  it('rejects a bad URL or object by saying what is wrong, never echoing it', () => {
    const bad: unknown[] = [
      `redis-sentinel://:${ENCODED}@127.0.0.1:26379`,
      `http://:${ENCODED}@127.0.0.1`,
      { sentinels: [], name: 'mymaster', password: SECRET },
      { sentinels: [{ host: 'h', port: 1 }], password: SECRET },
    ];
    for (const redis of bad) {
      assert.throws(
        () => compileTydraOptions({ redis } as never),
        (error: Error) =>
          error instanceof InvalidOptionError &&
          /^Expected the `redis(\.[a-z0-9]+)*` option to be valid/.test(error.message) &&
          !error.message.includes(SECRET) &&
          !error.message.includes(ENCODED),
      );
    }
  });
});
