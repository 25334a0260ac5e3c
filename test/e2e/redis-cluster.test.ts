import assert from 'node:assert/strict';

import type { NodeInfo } from '../../lib/cluster/node-registry.js';
import { SubmitNotReplicatedError } from '../../lib/core/errors.js';
import { Dashboard } from '../../lib/ops/dashboard.js';
import { createKeys } from '../../lib/redis/keys.js';
import { TASKS_QUEUE } from '../../queues/tasks.js';
import { tydra as tydraCli } from '../bin/run-cli.js';
import { copyFixture, defer, rejection, testClient } from '../helpers.js';
import { deployRunCancel, startNamespace, undeployAndPrune } from '../namespace-scenario.js';
import { type RedisClusterDeployment, startRedisCluster } from '../redis-cluster.js';

/** The first two namespaces `ns-0`, `ns-1`, … whose hash tags are served by different primaries. */
async function namespacesOnTwoPrimaries(cluster: RedisClusterDeployment): Promise<Array<[string, number]>> {
  const found: Array<[string, number]> = [];
  for (let i = 0; found.length < 2; i += 1) {
    const namespace = `ns-${i}`;
    const primary = await cluster.primaryOf(createKeys(namespace).tag);
    if (!found.some(([, port]) => port === primary)) {
      found.push([namespace, primary]);
    }
  }
  return found;
}

/**
 * A three-primary Redis Cluster of the test's own (see ../redis-cluster.ts), reached only through
 * a `redis-cluster://` URL: two namespaces on different primaries each deploy, run, cancel and
 * prune, and every key of each lives on its own primary.
 */
describe('Redis Cluster, sharded by namespace (@integration)', function () {
  this.timeout(120_000);

  it('runs two namespaces on different primaries, each in its own hash slot', async () => {
    const cluster = await startRedisCluster();
    const placed = await namespacesOnTwoPrimaries(cluster);
    const clients = await Promise.all(placed.map(([namespace]) => startNamespace(cluster.url, namespace)));
    for (const tydra of clients) {
      const { sha1 } = await deployRunCancel(tydra);
      await undeployAndPrune(tydra, sha1);
    }
    // The CLI and the dashboard reach a namespace through the same URL.
    const [[first], [second]] = placed as [[string, number], [string, number]];
    const cli = await tydraCli(['nodes', '--json', '--redis', cluster.url, '--namespace', first]);
    assert.equal(cli.exitCode, 0, String(cli.stderr));
    const listed = JSON.parse(String(cli.stdout)) as NodeInfo[];
    assert.deepEqual(
      listed.map((node) => node.id),
      (await clients[0]?.nodes())?.map((node) => node.id),
    );
    const dashboard = new Dashboard({ redis: cluster.url, namespace: second, port: 0, refreshMs: 200 });
    defer(() => dashboard.close());
    const response = await fetch(
      `${await dashboard.start()}api/queues?activeQueue=${TASKS_QUEUE}&page=1&jobsPerPage=10`,
    );
    assert.equal(response.status, 200);
    const tasks = (
      (await response.json()) as { queues: Array<{ name: string; counts: Record<string, number> }> }
    ).queues.find((queue) => queue.name === TASKS_QUEUE);
    // Its TaskInstances: the one that completed and the cancelled one.
    assert.deepEqual([tasks?.counts.completed, tasks?.counts.failed], [1, 1]);

    // --durable-submit asks the namespace's primary (WAIT counts that connection's writes): it has no replica.
    const durable = testClient({
      redis: cluster.url,
      namespace: first,
      durableSubmit: { replicas: 1, timeoutMs: 100 },
    });
    await durable.deploy(await copyFixture('probe'));
    const error = await rejection(durable.submit('probe/nap', { ms: 10 }));
    assert.ok(error instanceof SubmitNotReplicatedError, String(error));
    assert.equal(error.acknowledged, 0);
    for (const [namespace, primary] of placed) {
      const tag = createKeys(namespace).tag;
      const local = await cluster.connect(primary).keys(`${tag}:*`);
      assert.ok(
        local.some((key) => key.startsWith(`${tag}:bull:tasks:`)),
        `${namespace}'s TaskInstances are on port ${primary}`,
      );
      assert.ok(local.includes(`${tag}:nodes`), `${namespace}'s node registry is on port ${primary}`);
      for (const other of cluster.ports.filter((port) => port !== primary)) {
        assert.deepEqual(await cluster.connect(other).keys(`${tag}:*`), [], `${namespace} has keys on port ${other}`);
      }
    }
  });
});
