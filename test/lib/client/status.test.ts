import assert from 'node:assert/strict';

import type { Redis } from 'ioredis';

import { copyFixture, startCluster, testClient, testRedis, waitFor } from '../../helpers.js';

/** INFO calls Redis has served: BullMQ sends one each time a Queue is created (its version check). */
async function infoCalls(redis: Redis): Promise<number> {
  const stats = await redis.info('commandstats');
  return Number(/cmdstat_info:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

describe('TaskRun.status (@integration)', function () {
  this.timeout(30_000);

  it('reuses one node queue handle per node: polling status opens no Queue per call', async () => {
    await startCluster(1, { concurrency: 1 });
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const run = await tydra.submit('probe/sleep');
    await waitFor('the TaskInstance to run', async () => ((await run.status()).state === 'running' ? true : undefined));
    const redis = testRedis();
    const before = await infoCalls(redis);
    for (let i = 0; i < 20; i += 1) {
      assert.equal((await run.status()).state, 'running');
    }
    // The counting itself costs one INFO; a Queue per status() call would add 20 more.
    assert.ok((await infoCalls(redis)) - before <= 2, 'status() must not create a Queue per call');
    await run.cancel();
  });
});
