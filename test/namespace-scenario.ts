/**
 * What the namespace tests do in each namespace: deploy, run a TaskInstance to its result, cancel a
 * running one, undeploy and prune, with a master and a node of that namespace only.
 */
import assert from 'node:assert/strict';

import type { Tydra } from '../lib/client/client.js';
import { TaskCancelledError } from '../lib/core/errors.js';
import { copyFixture, rejection, startCluster, testClient, waitFor } from './helpers.js';

export interface NamespaceRun {
  tydra: Tydra;
  /** The sha1 of the probe package deployed in the namespace. */
  sha1: string;
  /** The TaskInstance that ran to its result. */
  completedId: string;
}

/** A client, a master and one node of `namespace` on `redis`; closed after the test. */
export async function startNamespace(redis: string, namespace: string): Promise<Tydra> {
  await startCluster(1, { redis, namespace }, { redis, namespace, sweepIntervalMs: 500 });
  return testClient({ redis, namespace });
}

/** Deploy, run, cancel; the package stays deployed (see {@link undeployAndPrune}). */
export async function deployRunCancel(tydra: Tydra): Promise<NamespaceRun> {
  const { sha1 } = await tydra.deploy(await copyFixture('probe'));
  const run = await tydra.submit('probe/echo', { namespace: tydra.options.namespace });
  const result = (await run.result()) as { input: unknown };
  assert.deepEqual(result.input, { namespace: tydra.options.namespace });

  // `sleep` never returns: only the cancel ends it.
  const sleeper = await tydra.submit('probe/sleep', null, { timeoutMs: 60_000 });
  await waitFor('the sleeper to run', async () => ((await sleeper.status()).state === 'running' ? true : undefined));
  assert.deepEqual(await sleeper.cancel(), { id: sleeper.id, outcome: 'cancelling' });
  const error = await rejection(sleeper.result());
  assert.ok(error instanceof TaskCancelledError, String(error));
  return { tydra, sha1, completedId: run.id };
}

/** Undeploys the probe package and prunes until its version is gone (its last holder lets go first). */
export async function undeployAndPrune(tydra: Tydra, sha1: string): Promise<void> {
  await tydra.undeploy('probe');
  await waitFor('the undeployed version to be pruned', async () => {
    const report = await tydra.prune({ graceMs: 0 });
    return report.removed.some((decision) => decision.sha1 === sha1) ? true : undefined;
  });
  assert.deepEqual(await tydra.packageNames(), []);
}
