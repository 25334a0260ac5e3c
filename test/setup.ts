/**
 * Root hooks of the full run (`npm test`, `npx mocha`): the suite starts its own redis-server on
 * a free port and stops it at the end; it never touches a Redis it did not start. It also demands
 * bubblewrap and redis-server: a test that cannot run fails loudly instead of skipping. After
 * each test its deferred cleanups run, the test Redis is emptied, and the test fails if it left a
 * Redis connection, a child process or a cgroup behind (see `leaks.ts`). The unit run
 * (`setup-unit.ts`) needs neither Redis nor bubblewrap.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Redis } from 'ioredis';

import type { RedisServer } from '../lib/ops/redis-server.js';
import { startRedisServer } from '../lib/ops/redis-server.js';
import { findBwrap } from '../sandbox/launcher/bwrap.js';
import { cleanUp } from './helpers.js';
import { failOnLeaks, LeakCheck, type Snapshot } from './leaks.js';

let server: RedisServer | undefined;
let dir: string | undefined;
/** The hooks' own connection: empties the test Redis and lists its clients for the leak check. */
let redis: Redis | undefined;
let check: LeakCheck | undefined;
let before: Snapshot | undefined;

export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    this.timeout(30_000);
    if (findBwrap() === undefined) {
      throw new Error('bubblewrap (bwrap) is not installed; the tests need it: apt-get install -y bubblewrap');
    }
    dir = await mkdtemp(join(tmpdir(), 'tydra-test-redis-'));
    server = await startRedisServer({ dir, persist: false });
    process.env.TYDRA_TEST_REDIS_URL = server.url;
    redis = new Redis(server.url);
    check = new LeakCheck(redis);
  },
  async beforeEach(): Promise<void> {
    before = await check?.snapshot();
  },
  /** Every test's clusters, clients and temp folders are closed, the test Redis emptied, then leaks looked for. */
  async afterEach(this: Mocha.Context): Promise<void> {
    this.timeout(30_000);
    await cleanUp();
    await redis?.flushall();
    if (check !== undefined) {
      await failOnLeaks(this, check, before);
    }
  },
  async afterAll(): Promise<void> {
    await redis?.quit();
    await server?.stop();
    if (dir !== undefined) {
      await rm(dir, { recursive: true, force: true });
    }
  },
};
