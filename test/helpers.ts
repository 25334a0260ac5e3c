/** Shared test helpers: the suite's Redis, temp folders, fixture packages and clusters. */
import assert from 'node:assert/strict';
import { chmod, cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

import { Redis, type RedisOptions } from 'ioredis';
import { pino } from 'pino';

import { Tydra } from '../lib/client/client.js';
import type { Logger } from '../lib/core/logger.js';
import { TaskFailedError } from '../lib/core/errors.js';
import { Master } from '../lib/master/master.js';
import { TydraNode } from '../lib/node/node.js';
import type { MasterOptions } from '../lib/master/options.js';
import type { NodeOptions } from '../lib/node/options.js';
import { detectCgroups, removeCgroupParent } from '../sandbox/launcher/cgroup/support.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(REPO_ROOT, 'dist/bin/tydra.js');

/** URL of the redis-server the suite started (see setup.ts). */
export function redisUrl(): string {
  const url = process.env.TYDRA_TEST_REDIS_URL;
  if (!url) {
    throw new Error(
      'the test Redis is not running: a test that needs Redis must be tagged (@integration), which the unit run (setup-unit.ts) leaves out',
    );
  }
  return url;
}

export function fixture(name: string): string {
  return join(REPO_ROOT, 'test/fixtures', name);
}

const cleanups: Array<() => Promise<unknown>> = [];

/** Runs `fn` after the current test, whatever happens. */
export function defer(fn: () => Promise<unknown>): void {
  cleanups.push(fn);
}

/** Runs every deferred cleanup, newest first (the root hooks call it after each test). */
export async function cleanUp(): Promise<void> {
  while (cleanups.length > 0) {
    await cleanups
      .pop()?.()
      .catch(() => undefined);
  }
}

/** A client on the test Redis, closed after the test. */
export function testClient(options: ConstructorParameters<typeof Tydra>[0] = {}): Tydra {
  const tydra = new Tydra({ redis: redisUrl(), ...options });
  defer(() => tydra.close());
  return tydra;
}

/**
 * A plain connection to the test Redis, closed after the test. BullMQ queues on it need
 * `{ maxRetriesPerRequest: null }`.
 */
export function testRedis(options: RedisOptions = {}): Redis {
  const connection = new Redis(redisUrl(), options);
  defer(() => Promise.resolve(connection.disconnect()));
  return connection;
}

/**
 * A fresh folder, removed after the test. Searchable by others (0711, not listable) like a
 * real cache folder must be: a node running as root starts sandboxes as the unprivileged
 * sandbox user, which must reach the folders bwrap mounts.
 */
export async function tempDir(prefix = 'tydra-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o711);
  defer(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `files` (path → content) into a new temp folder and returns it. */
export async function makePackage(files: Record<string, string>): Promise<string> {
  const dir = await tempDir('tydra-pkg-');
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return dir;
}

/** A copy of a fixture package in a temp folder (so a test may change it). */
export async function copyFixture(name: string): Promise<string> {
  const dir = await tempDir(`tydra-${name}-`);
  await cp(fixture(name), dir, { recursive: true });
  return dir;
}

let nodeCounter = 0;

/** Starts a master and `count` nodes on the test Redis; all are closed after the test. */
export async function startCluster(
  count = 1,
  nodeOptions: NodeOptions = {},
  masterOptions: MasterOptions = {},
): Promise<{ master: Master; nodes: TydraNode[] }> {
  const master = new Master({ redis: redisUrl(), ...masterOptions });
  defer(() => master.close());
  await master.start();
  const nodes: TydraNode[] = [];
  for (let i = 0; i < count; i += 1) {
    nodes.push(await startNode(nodeOptions));
  }
  return { master, nodes };
}

/**
 * Starts one node (concurrency 2, fast heartbeat, own cache) on the test Redis; closed after the
 * test. Its warm pool is off unless `warmMax` is given: tests that count a TaskInstance's
 * processes and cgroups would otherwise see the pooled sandboxes started after it (the pool's own
 * tests are in `e2e/warm-pool.test.ts` and `escape/pooled-limits.test.ts`).
 */
export async function startNode(options: NodeOptions = {}): Promise<TydraNode> {
  nodeCounter += 1;
  const node = new TydraNode({
    redis: redisUrl(),
    id: `test-node-${process.pid}-${nodeCounter}`,
    concurrency: 2,
    cacheDir: await tempDir('tydra-cache-'),
    heartbeatMs: 1000,
    warmMax: 0,
    ...options,
  });
  defer(() => node.close());
  await node.start();
  return node;
}

/** A pino logger at `level` that records every entry (`{ level, msg, ...fields }`) instead of printing it. */
export function recordingLogger(level = 'debug'): { logger: Logger; entries: Array<{ level: number; msg: string }> } {
  const entries: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      entries.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
      callback();
    },
  });
  return { logger: pino({ level }, sink), entries };
}

/**
 * Removes the parent cgroup (`tydra.<id>.<pid>`, task cgroups included) of a node process that
 * ended without cleaning up (SIGKILL, a forced exit). The next node started on the host would
 * remove it, but none may come.
 */
export async function removeNodeCgroups(nodeId: string, pid: number | undefined): Promise<void> {
  if (pid !== undefined) {
    await removeCgroupParent(await detectCgroups({ parentName: `tydra.${nodeId}.${pid}` }));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(50);
  }
}

/** The error `promise` rejects with; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  assert.fail('expected a rejection');
}

/** The `TaskFailedError` `promise` rejects with; fails the test if it resolves or rejects otherwise. */
export async function failure(promise: Promise<unknown>): Promise<TaskFailedError> {
  const error = await rejection(promise);
  assert.ok(error instanceof TaskFailedError, `expected a TaskFailedError, got ${String(error)}`);
  return error;
}

/** The names of every task's environment, sorted, as the README's Security section lists them. */
export const SANDBOX_ENV_NAMES: readonly string[] = [
  ...['HOME', 'LANG', 'PATH', 'PWD', 'TMPDIR'],
  ...['TYDRA_ATTEMPT', 'TYDRA_INSTANCE_ID', 'TYDRA_PACKAGE_DIR'],
];
