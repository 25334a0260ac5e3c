import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Writable } from 'node:stream';

import { execa } from 'execa';
import { pino } from 'pino';

import { Tydra } from '../../../lib/client/client.js';
import { RedisUnreachableError } from '../../../lib/core/errors.js';
import { freePort, startRedisServer } from '../../../lib/ops/redis-server.js';
import { createRedis, watchConnection } from '../../../lib/redis/connection.js';
import { copyFixture, defer, tempDir, waitFor } from '../../helpers.js';

/** A client with a short connect timeout, closed after the test. */
function boundedClient(redis: string): Tydra {
  const tydra = new Tydra({ redis, connectTimeoutMs: 500 });
  defer(() => tydra.close());
  return tydra;
}

/** A private redis-server this test may stop and start again on the same port. */
async function privateRedis(port?: number) {
  const server = await startRedisServer({ dir: await tempDir(), persist: false, ...(port ? { port } : {}) });
  defer(() => server.stop());
  return server;
}

/** A logger that keeps the messages it is given. */
function recordingLogger() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push((JSON.parse(chunk.toString()) as { msg: string }).msg);
      callback();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

describe('Redis connections (@integration)', function () {
  this.timeout(30_000);

  it('a client call against a closed port rejects with could not reach Redis, saying that a password is set but not which', async () => {
    const port = await freePort();
    const tydra = boundedClient(`redis://:s3cret@127.0.0.1:${port}`);
    for (const call of [() => tydra.nodes(), () => tydra.run('x').status(), () => tydra.run('x').result()]) {
      await assert.rejects(call(), (error: Error) => {
        assert.ok(error instanceof RedisUnreachableError, error.message);
        assert.equal(
          error.message,
          `could not reach Redis at 127.0.0.1:${port} (with password): connect ECONNREFUSED 127.0.0.1:${port}`,
        );
        return true;
      });
    }
  });

  it('submit() rejects once its Redis is stopped, and the same client works again when Redis is back', async () => {
    const server = await privateRedis();
    const tydra = boundedClient(server.url);
    await tydra.deploy(await copyFixture('probe'));
    await tydra.submit('probe/echo', 'before');
    await server.stop();
    await assert.rejects(tydra.submit('probe/echo', 'during'), (error: Error) => {
      assert.ok(error instanceof RedisUnreachableError, error.message);
      assert.match(
        error.message,
        new RegExp(`^could not reach Redis at 127\\.0\\.0\\.1:${server.port} \\(no password\\): `),
      );
      return true;
    });
    await privateRedis(server.port);
    await waitFor('the client to reconnect', async () =>
      (await tydra.nodes().catch(() => undefined)) ? true : undefined,
    );
    assert.deepEqual(await tydra.packageNames(), [], 'the new server is empty, and answers');
  });

  it('close() finishes with Redis gone, even while a result() wait holds the event stream open', async () => {
    const server = await privateRedis();
    const tydra = boundedClient(server.url);
    await tydra.deploy(await copyFixture('probe'));
    const run = await tydra.submit('probe/echo', 'never runs: no node');
    // Nothing will answer this wait once Redis is gone; only close() is under test.
    void run.result({ timeoutMs: 5000 }).catch(() => undefined);
    const observer = createRedis(server.url);
    await waitFor('the result wait to block on the event stream', async () =>
      String(await observer.client('LIST')).includes('cmd=xread') ? true : undefined,
    );
    observer.disconnect();
    await server.stop();
    await tydra.close();
  });

  it('close() after could not reach Redis leaves no timer behind, so a CLI command exits with its error', async () => {
    // In a process of its own: the question is what keeps a process alive once the client closed.
    const script = `
      const { Tydra } = await import(${JSON.stringify(new URL('../../../lib/client/client.js', import.meta.url).href)});
      const tydra = new Tydra({ redis: 'redis://127.0.0.1:${await freePort()}', connectTimeoutMs: 200 });
      const error = await tydra.nodes().then(() => 'none', (error) => error.name);
      await tydra.close();
      const timers = process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout');
      process.stdout.write(JSON.stringify({ error, timers }));
    `;
    const child = await execa(process.execPath, ['--input-type=module', '-e', script], { reject: false });
    assert.equal(child.exitCode, 0, child.stderr);
    // ioredis armed its 2 s disconnect timer for a socket that had closed long before.
    assert.deepEqual(JSON.parse(child.stdout), { error: 'RedisUnreachableError', timers: [] });
  });

  it('watchConnection logs a lost connection once, not at every retry, then that it is back', async () => {
    const server = await privateRedis();
    const { logger, lines } = recordingLogger();
    const redis = createRedis(server.url, { retryStrategy: () => 50 });
    defer(() => Promise.resolve(redis.disconnect()));
    watchConnection(redis, logger, 'test role');
    let retries = 0;
    redis.on('reconnecting', () => (retries += 1));
    await once(redis, 'ready');
    await server.stop();
    await waitFor('five reconnect attempts', () => (retries >= 5 ? true : undefined));
    assert.deepEqual(lines, ['test role: lost the connection to Redis; retrying']);
    await privateRedis(server.port);
    await waitFor('the connection to be back', () => (lines.length > 1 ? true : undefined));
    assert.deepEqual(lines, [
      'test role: lost the connection to Redis; retrying',
      'test role: connected to Redis again',
    ]);
  });
});
