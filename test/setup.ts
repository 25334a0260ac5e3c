/**
 * Root hooks: the suite starts its own redis-server on a free port and stops it at the end; it
 * never touches a Redis it did not start. It also demands bubblewrap: a test that cannot run
 * fails loudly instead of skipping.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { RedisServer } from '../lib/ops/redis-server.js';
import { startRedisServer } from '../lib/ops/redis-server.js';
import { findBwrap } from '../sandbox/launcher/bwrap.js';
import { cleanUp } from './helpers.js';

let server: RedisServer | undefined;
let dir: string | undefined;

export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    this.timeout(30_000);
    if (findBwrap() === undefined) {
      throw new Error('bubblewrap (bwrap) is not installed; the tests need it: apt-get install -y bubblewrap');
    }
    dir = await mkdtemp(join(tmpdir(), 'tydra-test-redis-'));
    server = await startRedisServer({ dir, persist: false });
    process.env.TYDRA_TEST_REDIS_URL = server.url;
  },
  /** Every test's clusters, clients and temp folders are closed, then the test Redis emptied. */
  async afterEach(this: Mocha.Context): Promise<void> {
    this.timeout(30_000);
    await cleanUp();
  },
  async afterAll(): Promise<void> {
    await server?.stop();
    if (dir !== undefined) {
      await rm(dir, { recursive: true, force: true });
    }
  },
};
