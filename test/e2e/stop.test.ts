/**
 * Stopping: every role stops whatever Redis does, and Ctrl-C drains. No duration is asserted:
 * each test waits for the exit (or the close) and mocha's timeout is the bound.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';

import { execa, type ResultPromise } from 'execa';
import { Redis } from 'ioredis';

import { Master } from '../../lib/master/master.js';
import { TydraNode } from '../../lib/node/node.js';
import { Dashboard } from '../../lib/ops/dashboard.js';
import { type RedisServer, startRedisServer } from '../../lib/ops/redis-server.js';
import { CLI, copyFixture, defer, redisUrl, startCluster, tempDir, testClient, waitFor } from '../helpers.js';

/** A redis-server of the test's own, which the test stops under the roles. */
async function privateRedis(): Promise<RedisServer> {
  const server = await startRedisServer({ dir: await tempDir('tydra-stop-redis-'), persist: false });
  defer(() => server.stop());
  return server;
}

/** Runs the CLI; it is killed after the test if it is still running. */
function spawnTydra(args: string[], options: { detached?: boolean } = {}): ResultPromise {
  const child = execa(process.execPath, [CLI, ...args], {
    reject: false,
    extendEnv: false,
    env: { PATH: process.env.PATH ?? '' },
    detached: options.detached ?? false,
  });
  defer(async () => {
    child.kill('SIGKILL');
    await child.catch(() => undefined);
  });
  return child;
}

/** Resolves with the text read so far once `stream` has printed text matching `pattern`. */
function printed(stream: Readable | null, pattern: RegExp): Promise<string> {
  let text = '';
  return new Promise((resolve, reject) => {
    if (stream === null) {
      reject(new Error('no stream to read'));
      return;
    }
    const onData = (chunk: Buffer): void => {
      text += chunk.toString();
      if (pattern.test(text)) {
        stream.off('data', onData);
        resolve(text);
      }
    };
    stream.on('data', onData);
    stream.once('end', () => reject(new Error(`the stream ended before printing ${String(pattern)}:\n${text}`)));
  });
}

/** The live child processes of `parent`: command (`comm`) and process group, from `/proc/<pid>/stat`. */
async function children(parent: number): Promise<Array<{ comm: string; pgrp: number }>> {
  const found: Array<{ comm: string; pgrp: number }> = [];
  for (const entry of await readdir('/proc')) {
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // After "pid (comm)": state, the parent's pid, the process group.
      const [, comm = '', rest = ''] = /^\d+ \((.*)\) (.*)$/s.exec(stat) ?? [];
      const [state, ppid, pgrp] = rest.split(' ');
      if (Number(ppid) === parent && state !== 'Z') {
        found.push({ comm, pgrp: Number(pgrp) });
      }
    } catch {
      // gone, or not a process
    }
  }
  return found;
}

/** Commands of this process's live child processes. */
async function childCommands(): Promise<string[]> {
  return (await children(process.pid)).map((child) => child.comm);
}

/** Whether a Redis answers at `url` (a fresh connection, no retries). */
async function answers(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    return true;
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

describe('stopping while Redis is down (@integration)', function () {
  this.timeout(60_000);

  it('a CLI master and a CLI node exit on SIGTERM while Redis is down', async () => {
    const server = await privateRedis();
    const cacheDir = await tempDir('tydra-stop-cache-');
    const master = spawnTydra(['master', '--redis', server.url, '--drain-timeout', '1000']);
    const node = spawnTydra(['node', '--redis', server.url, '--drain-timeout', '1000', '--cache-dir', cacheDir]);
    await Promise.all([printed(master.stderr, /master started/), printed(node.stderr, /node started/)]);

    await server.stop();
    master.kill('SIGTERM');
    node.kill('SIGTERM');

    const [masterExit, nodeExit] = await Promise.all([master, node]);
    assert.equal(masterExit.exitCode, 0, String(masterExit.stderr));
    assert.equal(nodeExit.exitCode, 0, String(nodeExit.stderr));
  });

  it('Master.close(), TydraNode.close() and Dashboard.close() resolve while Redis is down, killing a running sandbox', async () => {
    const server = await privateRedis();
    const tydra = testClient({ redis: server.url });
    await tydra.deploy(await copyFixture('probe'));
    const master = new Master({ redis: server.url, drainTimeoutMs: 500 });
    const node = new TydraNode({
      redis: server.url,
      id: `stop-${process.pid}`,
      cacheDir: await tempDir('tydra-stop-cache-'),
      drainTimeoutMs: 500,
    });
    const dashboard = new Dashboard({ redis: server.url, port: 0 });
    defer(() => node.close());
    defer(() => master.close());
    defer(() => dashboard.close());
    await master.start();
    await node.start();
    await dashboard.start();
    const run = await tydra.submit('probe/nap', { ms: 600_000 });
    await waitFor('the TaskInstance to run', async () => ((await run.status()).state === 'running' ? true : undefined));
    await tydra.close();
    await waitFor('its sandbox', async () => ((await childCommands()).includes('bwrap') ? true : undefined));

    await server.stop();
    await Promise.all([master.close(), node.close(), dashboard.close()]);

    assert.equal(master.state, 'closed');
    assert.equal(node.state, 'closed');
    assert.deepEqual(
      (await childCommands()).filter((command) => command === 'bwrap'),
      [],
      'no sandbox is left',
    );
  });
});

describe('stopping on Ctrl-C (@integration)', function () {
  this.timeout(60_000);

  it('a CLI node drains on Ctrl-C (SIGINT): the running TaskInstance completes, then the node exits 0', async () => {
    await startCluster(0);
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const node = spawnTydra(['node', '--redis', redisUrl(), '--cache-dir', await tempDir('tydra-stop-cache-')]);
    await printed(node.stderr, /node started/);
    const run = await tydra.submit('probe/nap', { ms: 3000, tag: 'drained' });
    await waitFor('the TaskInstance to run', async () => ((await run.status()).state === 'running' ? true : undefined));

    // Only the node's pid: a process group would include mocha.
    node.kill('SIGINT');

    assert.deepEqual(await run.result({ timeoutMs: 30_000 }), { rested: 'drained' });
    const exit = await node;
    assert.equal(exit.exitCode, 0, String(exit.stderr));
    assert.match(String(exit.stderr), /SIGINT received, stopping/);
  });

  it('`tydra dev` stopped by SIGINT on its process group closes its roles, then its redis-server, and exits 0', async () => {
    const dataDir = await tempDir('tydra-stop-dev-');
    // Its own process group, as a terminal's foreground job: the group's SIGINT must not reach mocha.
    const dev = spawnTydra(['dev', '--port', '0', '--nodes', '1', '--data-dir', dataDir], { detached: true });
    const stdout = await printed(dev.stdout, /press Ctrl-C to stop/);
    const url = /on (redis:\/\/\S+)/.exec(stdout)?.[1];
    assert.ok(url !== undefined, stdout);
    assert.ok(await answers(url));
    // The group's SIGINT cannot reach the redis-server (a child of `tydra dev`, so its pid is its own).
    const [redis] = (await children(dev.pid ?? 0)).filter((child) => child.comm === 'redis-server');
    assert.ok(redis !== undefined, 'tydra dev runs a redis-server');
    assert.notEqual(redis.pgrp, dev.pid);

    process.kill(-(dev.pid ?? 0), 'SIGINT');

    const exit = await dev;
    assert.equal(exit.exitCode, 0, String(exit.stderr));
    // Redis outlived the roles: none of them lost it or had to force-close while closing.
    assert.doesNotMatch(String(exit.stderr), /lost the connection to Redis|force-clos/);
    assert.equal(await answers(url), false, 'its redis-server is stopped');
  });
});
