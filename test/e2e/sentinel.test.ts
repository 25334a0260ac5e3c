import assert from 'node:assert/strict';

import type { TaskStatus } from '../../lib/client/types.js';
import { SubmitNotReplicatedError } from '../../lib/core/errors.js';
import { parseSentinelUrl } from '../../lib/core/redis-url.js';
import { Dashboard } from '../../lib/ops/dashboard.js';
import { TASKS_QUEUE } from '../../queues/tasks.js';
import { tydra as tydraCli } from '../bin/run-cli.js';
import { copyFixture, defer, recordingLogger, startCluster, testClient, waitFor } from '../helpers.js';
import { startSentinelDeployment } from '../sentinel.js';

const INSTANCES = 50;

/** How many times a TaskInstance started: the node logs one `running …` line per start. */
function starts(status: TaskStatus): number {
  return status.logs.filter((line) => line.startsWith('running ')).length;
}

/**
 * A primary, a replica and three sentinels of this test's own (see ../sentinel.ts); master, nodes
 * and client reach them only through a `redis-sentinel://` URL.
 */
describe('Redis Sentinel failover (@integration)', function () {
  this.timeout(90_000);

  it('finishes every TaskInstance submitted before the primary is SIGKILLed, each once', async () => {
    const deployment = await startSentinelDeployment();
    // The client takes the object form; master, nodes and CLI the URL.
    const tydra = testClient({ redis: parseSentinelUrl(deployment.url) });
    await tydra.deploy(await copyFixture('probe'));
    const { logger, entries } = recordingLogger('info');
    await startCluster(2, { redis: deployment.url, logger }, { redis: deployment.url, sweepIntervalMs: 200 });
    const dashboard = new Dashboard({ redis: deployment.url, port: 0, refreshMs: 200 });
    defer(() => dashboard.close());
    const dashboardUrl = await dashboard.start();

    const runs: Array<Awaited<ReturnType<typeof tydra.submit>>> = [];
    for (let i = 0; i < INSTANCES; i += 1) {
      runs.push(await tydra.submit('probe/nap', { ms: 400, tag: i }));
    }
    const submittedAt = Date.now();
    // More than a second after the last submit (so each was replicated), with work under way.
    await waitFor('TaskInstances to run, a second after the last submit', async () => {
      const running = (await Promise.all(runs.map((run) => run.status()))).filter((s) => s.state !== 'queued');
      return Date.now() - submittedAt > 1000 && running.length > 0 ? true : undefined;
    });
    const unfinished = (await Promise.all(runs.map((run) => run.status()))).filter((s) => s.state !== 'completed');
    const oldPrimary = await deployment.primaryPort();
    await deployment.kill(oldPrimary);
    const newPrimary = await deployment.failedOver(oldPrimary);
    assert.notEqual(newPrimary, oldPrimary);

    const results = await Promise.all(runs.map((run) => run.result({ timeoutMs: 60_000 })));
    assert.deepEqual(
      results.map((result) => (result as { rested: unknown }).rested),
      runs.map((_, i) => i),
    );
    const statuses = await Promise.all(runs.map((run) => run.status()));
    assert.deepEqual(
      statuses.filter((status) => starts(status) !== 1).map((status) => `${status.id}: ${starts(status)} starts`),
      [],
    );
    // The kill fell while work was left: the test proved something about a failover.
    assert.ok(unfinished.length > 0, 'every TaskInstance had finished before the kill');

    // The nodes saw the primary go and found the new one through the sentinels.
    const messages = (entries as Array<{ msg: string; target?: string }>)
      .filter((entry) => entry.target?.startsWith('Sentinel master mymaster via 127.0.0.1:') === true)
      .map((entry) => entry.msg);
    assert.ok(
      messages.some((msg) => msg.endsWith('lost the connection to Redis; retrying')),
      messages.join('\n'),
    );
    assert.ok(
      messages.some((msg) => msg.endsWith('connected to Redis again')),
      messages.join('\n'),
    );
    // So did the dashboard: it answers from the new primary.
    const response = await fetch(`${dashboardUrl}api/queues?activeQueue=&page=1&jobsPerPage=10`);
    assert.equal(response.status, 200);
    const queues = ((await response.json()) as { queues: Array<{ name: string }> }).queues.map((queue) => queue.name);
    assert.ok(queues.includes(TASKS_QUEUE), queues.join(', '));

    // And the deployment keeps working on the new primary, for the CLI too.
    const after = await tydra.submit('probe/nap', { ms: 10, tag: 'after' });
    assert.deepEqual(await after.result({ timeoutMs: 30_000 }), { rested: 'after' });
    const cli = await tydraCli(['status', '--json', '--redis', deployment.url, after.id]);
    assert.equal(cli.exitCode, 0, String(cli.stderr));
    assert.equal((JSON.parse(String(cli.stdout)) as TaskStatus).state, 'completed');
  });
});

describe('Redis Sentinel with a password (@integration)', function () {
  this.timeout(60_000);

  it('reaches the primary with TYDRA_REDIS_PASSWORD and never prints a password', async () => {
    const secret = 'sentinel-secret-4d1f';
    const deployment = await startSentinelDeployment({ password: secret });
    const good = await tydraCli(['nodes', '--json', '--redis', deployment.url], {
      env: { TYDRA_REDIS_PASSWORD: secret },
    });
    assert.equal(good.exitCode, 0, String(good.stderr));
    assert.deepEqual(JSON.parse(String(good.stdout)), []);

    const wrong = 'wrong-password-93be';
    const bad = await tydraCli(['nodes', '--connect-timeout', '1000', '--redis', deployment.url], {
      env: { TYDRA_REDIS_PASSWORD: wrong },
    });
    assert.equal(bad.exitCode, 1);
    const output = `${String(bad.stdout)}${String(bad.stderr)}`;
    assert.match(output, /WRONGPASS/);
    assert.ok(!output.includes(wrong) && !output.includes(secret), output);
    const help = await tydraCli(['nodes', '--help'], {
      env: { TYDRA_REDIS_URL: deployment.url, TYDRA_REDIS_PASSWORD: secret },
    });
    assert.ok(!String(help.stdout).includes(secret) && String(help.stdout).includes(':***@'), String(help.stdout));
  });
});

describe('durable submit (@integration)', function () {
  this.timeout(30_000);

  it('resolves once a replica has the TaskInstance, and fails when none acknowledges it', async () => {
    const deployment = await startSentinelDeployment({ sentinels: 0 });
    // A busy machine may take a while to replicate: the acknowledged case gets a long wait, the
    // refused one (replica stopped) a short one, as its outcome does not depend on the machine.
    const patient = testClient({ redis: deployment.url, durableSubmit: { timeoutMs: 10_000 } });
    const tydra = testClient({ redis: deployment.url, durableSubmit: { timeoutMs: 300 } });
    await patient.deploy(await copyFixture('probe'));
    const replica = deployment.connect(deployment.replica);
    const kept = await patient.submit('probe/echo', 'kept');
    // Acknowledged means the replica has it, before any node ran it.
    assert.equal(await replica.exists(`{tydra}:bull:${TASKS_QUEUE}:${kept.id}`), 1);

    deployment.signal(deployment.replica, 'SIGSTOP');
    defer(() => Promise.resolve(deployment.signal(deployment.replica, 'SIGCONT')));
    await assert.rejects(
      tydra.submit('probe/echo', 'unconfirmed'),
      (error: Error) =>
        error instanceof SubmitNotReplicatedError &&
        error.acknowledged === 0 &&
        /Expected 1 Redis replica\(s\) to acknowledge TaskInstance \S+ within 300 ms, got 0/.test(error.message),
    );
  });
});
