import assert from 'node:assert/strict';

import { TaskNotFoundError, UnknownTaskError } from '../../lib/core/errors.js';
import { copyFixture, redisUrl, testClient, testRedis } from '../helpers.js';
import { deployRunCancel, startNamespace, undeployAndPrune } from '../namespace-scenario.js';

/**
 * Two namespaces on the one test Redis: what happens in `alpha` (deploy, run, cancel, prune, its
 * nodes) is invisible to `beta`, whose TaskInstance waits untouched without a master of its own.
 */
describe('namespaces (@integration)', function () {
  this.timeout(60_000);

  it('keeps two installations on one Redis apart: packages, TaskInstances, nodes, cancels and prunes', async () => {
    const alpha = await startNamespace(redisUrl(), 'alpha');
    const beta = testClient({ namespace: 'beta' });

    const { sha1, completedId } = await deployRunCancel(alpha);
    assert.deepEqual(await beta.packageNames(), []);
    await assert.rejects(beta.submit('probe/echo'), UnknownTaskError);
    assert.deepEqual(await beta.nodes(), []);
    assert.equal((await alpha.nodes()).length, 1);
    await assert.rejects(beta.run(completedId).status(), TaskNotFoundError);
    await assert.rejects(beta.cancel(completedId), TaskNotFoundError);

    // The same package in beta, and a TaskInstance that no master of beta takes.
    const betaSha1 = (await beta.deploy(await copyFixture('probe'))).sha1;
    assert.equal(betaSha1, sha1, 'the same content has the same sha1 in every namespace');
    const waiting = await beta.submit('probe/nap', { ms: 10 });
    await undeployAndPrune(alpha, sha1);
    assert.deepEqual(await beta.packageNames(), ['probe'], "alpha's prune left beta's package");
    assert.equal((await beta.run(waiting.id).status()).state, 'queued', "alpha's master took beta's TaskInstance");

    // Every key of either is under its hash tag; none is outside both.
    const keys = await testRedis().keys('*');
    assert.ok(keys.some((key) => key.startsWith('{alpha}:bull:tasks:')));
    assert.ok(keys.some((key) => key.startsWith('{beta}:pkg:probe:')));
    assert.deepEqual(
      keys.filter((key) => !key.startsWith('{alpha}:') && !key.startsWith('{beta}:')),
      [],
    );
  });

  it('refuses a namespace that would break the hash tag or the key layout', () => {
    for (const namespace of ['', 'Upper', 'a}b', 'a:b', 'x'.repeat(33)]) {
      assert.throws(() => testClient({ namespace }), /namespace/, namespace);
    }
  });
});
