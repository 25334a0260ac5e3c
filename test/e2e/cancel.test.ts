import assert from 'node:assert/strict';
import { rmdir } from 'node:fs/promises';

import { Queue } from 'bullmq';
import { execa } from 'execa';
import type { Redis } from 'ioredis';

import type { Tydra } from '../../lib/client/client.js';
import { TaskCancelledError, TaskFailedError, TaskNotFoundError } from '../../lib/core/errors.js';
import { TaskLogs } from '../../lib/ops/task-logs.js';
import { nodeQueueName } from '../../queues/node.js';
import {
  CLI,
  copyFixture,
  defer,
  redisUrl,
  startCluster,
  startNode,
  testClient,
  testRedis,
  waitFor,
  rejection,
} from '../helpers.js';
import { pidsWithEnv } from '../processes.js';

async function probeClient(): Promise<{ tydra: Tydra; sha1: string; redis: Redis }> {
  const tydra = testClient();
  const redis = testRedis();
  const { sha1 } = await tydra.deploy(await copyFixture('probe'));
  return { tydra, sha1, redis };
}

const holders = (redis: Redis, sha1: string): Promise<string[]> =>
  redis.zrange(`{tydra}:package:probe:holders:${sha1}`, 0, -1);

describe('cancellation (@integration)', function () {
  this.timeout(30_000);

  it('removes a TaskInstance that has not started and releases its reference', async () => {
    const { tydra, sha1, redis } = await probeClient();
    // No master, no node: it waits in `tasks`.
    const run = await tydra.submit('probe/nap', { ms: 10 });
    // Its rejection may come while cancel() still runs: caught from the start.
    const waiting = rejection(run.result());
    assert.deepEqual(await holders(redis, sha1), [run.id]);
    assert.deepEqual(await run.cancel(), { id: run.id, outcome: 'removed' });
    const error = await waiting;
    assert.ok(error instanceof TaskCancelledError, String(error));
    assert.equal(error.message, 'cancelled by request');
    assert.deepEqual(await holders(redis, sha1), []);
    assert.equal((await run.status()).state, 'cancelled');
    await assert.rejects(run.result(), TaskCancelledError);
    // A master started later finds nothing to run.
    await startCluster(1);
    assert.deepEqual(
      await new Queue('tasks', { prefix: '{tydra}:bull', connection: redis }).getJobCounts(
        'waiting',
        'active',
        'completed',
        'failed',
      ),
      { waiting: 0, active: 0, completed: 0, failed: 0 },
    );
    await assert.rejects(tydra.cancel('no-such-id'), TaskNotFoundError);
    // result() learns that a job does not exist from its wait's first check, not a fetch before it.
    await assert.rejects(tydra.run('no-such-id').result(), TaskNotFoundError);
  });

  it('keeps a TaskInstance cancelled before it started visible: status, logs, cancel and runs agree', async () => {
    const { tydra, redis } = await probeClient();
    // Delayed, with no master: its job waits in `tasks` until the cancel removes it.
    const run = await tydra.submit('probe/echo', 'later', { delayMs: 60_000 });
    const { submittedAt } = await run.status();
    assert.ok(submittedAt !== undefined);
    assert.deepEqual(await run.cancel(), { id: run.id, outcome: 'removed' });
    const status = await run.status();
    assert.equal(status.state, 'cancelled');
    assert.equal(status.submittedAt, submittedAt);
    // It has ended: a second cancel, from the handle or by id, says so instead of "not found".
    assert.deepEqual(await run.cancel(), { id: run.id, outcome: 'finished' });
    assert.deepEqual(await tydra.cancel(run.id), { id: run.id, outcome: 'finished' });
    const logs = new TaskLogs({ redis: redisUrl() });
    defer(() => logs.close());
    const lines: string[] = [];
    for await (const line of logs.lines(run.id)) {
      lines.push(line);
    }
    assert.deepEqual(lines, ['ended: cancelled']);
    const row = { id: run.id, ref: run.ref, state: 'cancelled', submittedAt, finishedAt: status.finishedAt };
    assert.deepEqual(await tydra.runs({ state: 'cancelled' }), [{ ...row, nodeId: undefined }]);
    assert.deepEqual(
      (await tydra.runs({ task: 'probe/echo' })).map((r) => r.id),
      [run.id],
    );
    assert.deepEqual(await tydra.runs({ task: 'probe/nap' }), []);
    assert.deepEqual(await tydra.runs({ state: 'failed' }), []);
    assert.deepEqual(await tydra.runs({ since: new Date(submittedAt + 1) }), []);
    // Its cancel request expired: it is unknown again, and leaves the list.
    await redis.del(`{tydra}:cancel:${run.id}`);
    assert.deepEqual(await tydra.runs(), []);
    assert.equal(await redis.zcard('{tydra}:cancelled-unstarted'), 0);
    await assert.rejects(run.cancel(), TaskNotFoundError);
    await assert.rejects(logs.lines(run.id).next(), TaskNotFoundError);
  });

  it('tydra status, logs and cancel of a TaskInstance cancelled before it started', async () => {
    const { tydra, redis } = await probeClient();
    const run = await tydra.submit('probe/echo', 'later', { delayMs: 60_000 });
    const { submittedAt } = await run.status();
    const cli = (...args: string[]) =>
      execa(process.execPath, [CLI, ...args, run.id, '--redis', redisUrl()], {
        reject: false,
        extendEnv: false,
        env: { PATH: process.env.PATH ?? '' },
      });
    assert.equal((await cli('cancel')).stdout, `${run.id}: removed before it started`);
    const status = await cli('status');
    assert.equal(status.exitCode, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^submitted: ${new Date(submittedAt ?? 0).toISOString()}$`, 'm'));
    const logs = await cli('logs');
    assert.equal(logs.exitCode, 0, logs.stderr);
    assert.equal(logs.stdout, 'ended: cancelled');
    const again = await cli('cancel');
    assert.equal(again.exitCode, 0, again.stderr);
    assert.equal(again.stdout, `${run.id}: already finished; nothing to cancel`);
    // A cancel request written without the submit time (by an older client): no 1970 date.
    await redis.set(`{tydra}:cancel:${run.id}`, JSON.stringify({ ref: run.ref, at: Date.now() }), 'EX', 600);
    assert.equal((await run.status()).submittedAt, undefined);
    assert.match((await cli('status')).stdout, /^submitted: -$/m);
  });

  it('removes a TaskInstance waiting on a busy node, node job included', async () => {
    const { nodes } = await startCluster(1, { concurrency: 1 });
    const { tydra, sha1, redis } = await probeClient();
    // Busy for long enough that the second is still waiting behind it when cancelled, even on a loaded machine.
    const busy = await tydra.submit('probe/nap', { ms: 5000, tag: 'busy' });
    const queued = await tydra.submit('probe/nap', { ms: 10, tag: 'queued' });
    await waitFor('the second to wait on the node', async () =>
      (await queued.status()).state === 'dispatched' ? true : undefined,
    );
    assert.deepEqual(await queued.cancel(), { id: queued.id, outcome: 'removed' });
    assert.equal(
      await new Queue(nodeQueueName(nodes[0]?.id ?? ''), { prefix: '{tydra}:bull', connection: redis }).getJob(
        queued.id,
      ),
      undefined,
    );
    assert.deepEqual(await busy.result(), { rested: 'busy' });
    await waitFor('busy to release', async () => ((await holders(redis, sha1)).length === 0 ? true : undefined));
  });

  // The node checks the cancel key while the sandbox boots, or alongside the claim of a pooled
  // one (`startAfter`): either way the task must never start.
  for (const warmMax of [0, 1]) {
    const sandbox = warmMax === 0 ? 'a cold sandbox' : 'a pooled sandbox';
    it(`a node job cancelled before it reached its node ends cancelled, its task never run (${sandbox})`, async () => {
      const { nodes } = await startCluster(1, { warmMax });
      const node = nodes[0];
      assert.ok(node !== undefined);
      const { tydra, redis } = await probeClient();
      const done = await tydra.submit('probe/echo', 'first');
      await done.result();
      if (warmMax > 0) {
        await waitFor('a pooled sandbox', () => (node.warmPoolStats.ready >= 1 ? true : undefined));
      }
      const pinned = JSON.parse((await redis.hget(`{tydra}:bull:tasks:${done.id}`, 'data')) ?? '{}') as object;
      // Added straight to the node's queue, past the master's own check, with the cancel asked.
      const instanceId = `precancelled-${process.pid}-${warmMax}`;
      await redis.set(`{tydra}:cancel:${instanceId}`, JSON.stringify({ ref: 'probe/echo', at: Date.now() }), 'EX', 600);
      const queue = new Queue(nodeQueueName(node.id), {
        prefix: '{tydra}:bull',
        connection: testRedis({ maxRetriesPerRequest: null }),
      });
      const job = await queue.add(
        'run',
        { ...pinned, instanceId, input: 'second' },
        { jobId: instanceId, attempts: 3 },
      );
      const reason = await waitFor('the node job to fail', async () =>
        (await job.getState()) === 'failed' ? (await queue.getJob(instanceId))?.failedReason : undefined,
      );
      assert.equal(reason, new TaskCancelledError(instanceId).message);
      const failed = await queue.getJob(instanceId);
      assert.equal(failed?.attemptsMade, 1, 'a cancelled run is not retried');
      assert.deepEqual((failed?.data as { ending?: unknown }).ending, { kind: 'cancelled' });
      const { logs } = await queue.getJobLogs(instanceId);
      assert.equal(
        logs.filter((line) => line.includes('echo log line')).length,
        0,
        `the task logged: ${logs.join(' | ')}`,
      );
      assert.equal(node.warmPoolStats.hits, warmMax, warmMax === 0 ? 'no pool' : 'it claimed the pooled sandbox');
      await queue.close();
    });
  }

  it('kills a running TaskInstance; it ends cancelled, not retried, reference released', async () => {
    await startCluster(1);
    const { tydra, sha1, redis } = await probeClient();
    // `sleep` ignores SIGTERM and never returns.
    const run = await tydra.submit('probe/sleep', null, { attempts: 3, timeoutMs: 60_000 });
    await waitFor('the sandbox to start', async () =>
      (await pidsWithEnv('TYDRA_INSTANCE_ID', run.id)).length > 0 ? true : undefined,
    );
    assert.deepEqual(await run.cancel(), { id: run.id, outcome: 'cancelling' });
    const error = await rejection(run.result());
    assert.ok(error instanceof TaskCancelledError, String(error));
    assert.ok(error instanceof TaskFailedError);
    await waitFor('no process of the task', async () =>
      (await pidsWithEnv('TYDRA_INSTANCE_ID', run.id)).length === 0 ? true : undefined,
    );
    const status = await run.status();
    assert.equal(status.state, 'cancelled');
    assert.equal(status.error, 'cancelled by request');
    assert.equal(status.logs.filter((line) => line.startsWith('running ')).length, 1, 'a cancelled run is not retried');
    await waitFor('the reference to be released', async () =>
      (await holders(redis, sha1)).length === 0 ? true : undefined,
    );
    assert.deepEqual(await run.cancel(), { id: run.id, outcome: 'finished' });
  });

  it('tydra cancel ID cancels from the command line', async () => {
    await startCluster(1);
    const { tydra } = await probeClient();
    const run = await tydra.submit('probe/sleep');
    await waitFor('the sandbox to start', async () =>
      (await pidsWithEnv('TYDRA_INSTANCE_ID', run.id)).length > 0 ? true : undefined,
    );
    const cli = await execa(process.execPath, [CLI, 'cancel', run.id, '--wait', '--redis', redisUrl()], {
      reject: false,
      extendEnv: false,
      env: { PATH: process.env.PATH ?? '' },
    });
    assert.equal(cli.exitCode, 0, cli.stderr);
    // --wait says how it ended, not only that the node was told.
    assert.equal(cli.stdout, `${run.id}: cancelled`);
    assert.equal((await run.status()).state, 'cancelled');
    const again = await execa(process.execPath, [CLI, 'cancel', run.id, '--json', '--redis', redisUrl()], {
      reject: false,
      extendEnv: false,
      env: { PATH: process.env.PATH ?? '' },
    });
    assert.deepEqual(JSON.parse(again.stdout), { id: run.id, outcome: 'finished' });
  });
});

describe('cancellation is a recorded ending, not a message (@integration)', function () {
  this.timeout(30_000);

  it('a task that throws "cancelled by request" itself ends failed, not cancelled', async () => {
    await startCluster(1);
    const { tydra, sha1, redis } = await probeClient();
    const run = await tydra.submit('probe/throw-message', { message: 'cancelled by request' });
    const error = await rejection(run.result());
    assert.ok(error instanceof TaskFailedError, String(error));
    assert.ok(!(error instanceof TaskCancelledError), 'the message alone must not make it a cancellation');
    assert.equal(error.message, 'cancelled by request');
    assert.match(error.remoteStack ?? '', /^Error: cancelled by request\n\s+at /);
    const status = await run.status();
    assert.equal(status.state, 'failed');
    assert.equal(status.error, 'cancelled by request');
    await waitFor('the reference to be released', async () =>
      (await holders(redis, sha1)).length === 0 ? true : undefined,
    );
  });
});

describe('node shutdown (@integration)', function () {
  this.timeout(60_000);

  it('a stopping node lets running TaskInstances finish, kills them at the drain timeout, and they finish on another node', async () => {
    await startCluster(0, {}, { sweepIntervalMs: 200 });
    const { tydra } = await probeClient();
    // The short one ends well inside the drain timeout, the long one well outside it, even on a loaded machine.
    const leaving = await startNode({ concurrency: 2, drainTimeoutMs: 3000 });
    const short = await tydra.submit('probe/nap', { ms: 300, tag: 'short' });
    const long = await tydra.submit('probe/nap', { ms: 8000, tag: 'long' });
    await waitFor('both to run on the leaving node', async () => {
      const states = await Promise.all([short.status(), long.status()]);
      return states.every((s) => s.state === 'running') ? true : undefined;
    });
    const closed = leaving.close();
    // The short one finishes within the drain timeout, on the leaving node.
    assert.deepEqual(await short.result(), { rested: 'short' });
    assert.equal((await short.status()).nodeId, leaving.id);
    await closed;
    assert.deepEqual(await pidsWithEnv('TYDRA_INSTANCE_ID', long.id), [], 'the drain timeout killed the long one');
    const stayer = await startNode();
    assert.deepEqual(await long.result({ timeoutMs: 30_000 }), { rested: 'long' });
    const status = await long.status();
    assert.equal(status.nodeId, stayer.id);
    assert.ok(status.logs.some((line) => line.startsWith(`running probe@`) && line.includes(`on node ${leaving.id}`)));
    assert.ok(
      status.logs.includes(
        `node ${leaving.id} is gone; TaskInstance taken back for a new dispatch (its run there was stopped)`,
      ),
      status.logs.join(' | '),
    );
  });
});

describe('infrastructure errors (@integration)', function () {
  this.timeout(30_000);

  it('a sandbox set-up failure is reported as an infrastructure error, retried a bounded number of times without using attempts', async () => {
    const { nodes } = await startCluster(1);
    const node = nodes[0];
    assert.ok(node !== undefined);
    const support = node.cgroups;
    assert.ok(
      support !== undefined && support.mode !== 'none',
      `expected cgroups on this host, got ${JSON.stringify(support)}`,
    );
    const { tydra } = await probeClient();
    // Break the node's cgroups behind its back: its per-task cgroups can no longer be created.
    const parents = support.mode === 'v1' ? [support.memory, support.pids, support.cpuacct] : [support.parent];
    for (const parent of parents) {
      if (parent !== undefined) {
        await rmdir(parent);
      }
    }
    const run = await tydra.submit('probe/echo', 'x', { attempts: 5 });
    const error = await rejection(run.result({ timeoutMs: 20_000 }));
    assert.ok(error instanceof TaskFailedError, String(error));
    assert.match(error.message, new RegExp(`^infrastructure error on node ${node.id} \\(3 times\\): `));
    const status = await run.status();
    assert.equal(status.logs.filter((line) => line.startsWith(`infrastructure error on node ${node.id}: `)).length, 3);
  });
});
