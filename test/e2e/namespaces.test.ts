import assert from 'node:assert/strict';

import { TaskNotFoundError, UnknownTaskError } from '../../lib/core/errors.js';
import { startDevCluster } from '../../lib/ops/dev-cluster.js';
import { copyFixture, defer, redisUrl, tempDir, testClient, testRedis } from '../helpers.js';
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

  it('runs `tydra dev` in a namespace of its own: its roles, dashboard and keys', async () => {
    const cluster = await startDevCluster({
      redis: redisUrl(),
      namespace: 'devspace',
      nodes: 1,
      dashboardPort: 0,
      dataDir: await tempDir(),
    });
    defer(() => cluster.close());
    const client = testClient({ namespace: 'devspace' });
    await client.deploy(await copyFixture('probe'));
    const echoed = (await (await client.submit('probe/echo', { in: 'devspace' })).result()) as { input: unknown };
    assert.deepEqual(echoed.input, { in: 'devspace' });
    assert.deepEqual(
      (await client.nodes()).map((node) => node.id),
      ['dev-1'],
    );
    const queues = await fetch(`${cluster.dashboardUrl}api/queues`);
    assert.ok(
      ((await queues.json()) as { queues: Array<{ name: string }> }).queues.some((q) => q.name === 'node.dev-1'),
    );
    const keys = await testRedis().keys('*');
    assert.ok(keys.length > 0);
    assert.deepEqual(
      keys.filter((key) => !key.startsWith('{devspace}:')),
      [],
    );
    // Read after the keys: a client of the default namespace writes its queue's meta.
    assert.deepEqual(await testClient().nodes(), [], 'nothing of it in the default namespace');
    await assert.rejects(
      startDevCluster({ redis: redisUrl(), namespace: 'Bad:Name', dashboardPort: 0, dataDir: await tempDir() }),
      /namespace/,
    );
  });

  it('refuses a namespace that would break the hash tag or the key layout', () => {
    for (const namespace of ['', 'Upper', 'a}b', 'a:b', 'x'.repeat(33)]) {
      assert.throws(() => testClient({ namespace }), /namespace/, namespace);
    }
  });
});
