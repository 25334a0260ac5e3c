/**
 * Root hooks of the unit run (`npm run test:unit`, `.mocharc.unit.json`): no redis-server and no
 * bubblewrap are needed or started, so a unit test that reaches for Redis fails at `redisUrl()`.
 * After each test its deferred cleanups run, and the test fails if it left a child process or a
 * cgroup behind (see `leaks.ts`).
 */
import { cleanUp } from './helpers.js';
import { failOnLeaks, LeakCheck, type Snapshot } from './leaks.js';

const check = new LeakCheck();
let before: Snapshot | undefined;

export const mochaHooks = {
  async beforeEach(): Promise<void> {
    before = await check.snapshot();
  },
  async afterEach(this: Mocha.Context): Promise<void> {
    this.timeout(30_000);
    await cleanUp();
    await failOnLeaks(this, check, before);
  },
};
