import assert from 'node:assert/strict';

import type { Tydra } from '../../lib/client/client.js';
import { TaskTimeoutError } from '../../lib/core/errors.js';
import {
  copyFixture,
  defer,
  recordingLogger,
  startCluster,
  testClient,
  testRedis,
  waitFor,
  failure,
} from '../helpers.js';
import { pidsWithEnv } from '../processes.js';

async function deployedProbe(): Promise<{ tydra: Tydra; sha1: string }> {
  const tydra = testClient();
  const { sha1 } = await tydra.deploy(await copyFixture('probe'));
  return { tydra, sha1 };
}

async function getrangeCalls(): Promise<number> {
  const match = /cmdstat_getrange:calls=(\d+)/.exec(await testRedis().info('commandstats'));
  return match ? Number(match[1]) : 0;
}

describe('running TaskInstances through master and node (@integration)', function () {
  this.timeout(30_000);

  it('runs a JavaScript task in the sandbox and returns its result, logs and progress', async () => {
    const { nodes } = await startCluster(1);
    const { tydra, sha1 } = await deployedProbe();
    const run = await tydra.submit('probe/echo', { hello: 'world' });
    assert.equal(run.ref, `probe@${sha1}/echo`);
    const result = await run.result();
    assert.deepEqual(result, { input: { hello: 'world' }, instanceId: run.id, attempt: 1, uid: 65534, cwd: '/task' });
    const status = await run.status();
    assert.equal(status.state, 'completed');
    assert.equal(status.nodeId, nodes[0]?.id);
    assert.deepEqual(status.progress, { percent: 42, value: 42 });
    assert.deepEqual(status.result, result);
    assert.ok(status.logs.includes('echo log line'), `logs: ${status.logs.join(' | ')}`);
    assert.ok(status.logs.includes('[stdout] echo stdout line'));
  });

  it('runs a command task with the input on stdin and the result from stdout', async () => {
    await startCluster(1);
    const { tydra } = await deployedProbe();
    const run = await tydra.submit('probe/sh-echo', { n: [1, 2] });
    assert.deepEqual(await run.result(), { stdin: { n: [1, 2] }, instance: run.id });
    assert.ok((await run.status()).logs.includes('[stderr] sh task ran in /task'));
  });

  it("fails with the task's own message and stack when it throws", async () => {
    await startCluster(1);
    const { tydra } = await deployedProbe();
    const run = await tydra.submit('probe/throw', { word: 'boom-42' });
    const error = await failure(run.result());
    assert.equal(error.message, 'probe said boom-42');
    assert.equal(error.instanceId, run.id);
    assert.match(error.remoteStack ?? '', /^TypeError: probe said boom-42\n\s+at /);
    const status = await run.status();
    assert.equal(status.state, 'failed');
    assert.equal(status.error, 'probe said boom-42');
  });

  it('fails a command that exits non-zero with the tail of its stderr', async () => {
    await startCluster(1);
    const { tydra } = await deployedProbe();
    const error = await failure((await tydra.submit('probe/sh-fail')).result());
    assert.equal(error.message, 'command exited with code 3: to stderr\nlast words');
  });

  it('fails a command whose stdout is not JSON', async () => {
    await startCluster(1);
    const { tydra } = await deployedProbe();
    const error = await failure((await tydra.submit('probe/sh-garbage')).result());
    assert.equal(error.message, 'Expected the command to print one JSON value on stdout, got "not json"');
  });

  it('fails a task that exits without a result, and one whose result is not JSON', async () => {
    await startCluster(1);
    const { tydra } = await deployedProbe();
    const exited = await failure((await tydra.submit('probe/exit')).result());
    assert.equal(exited.message, 'task process exited with code 7 before returning a result: exiting without a result');
    const bigint = await failure((await tydra.submit('probe/bigint')).result());
    assert.match(
      bigint.message,
      /^Expected the task's result to be JSON-serialisable, got an error: Do not know how to serialize a BigInt/,
    );
  });

  it('kills a task that exceeds its wall-clock timeout, whole process tree included', async () => {
    await startCluster(1);
    const { tydra } = await deployedProbe();
    const run = await tydra.submit('probe/sleep', null, { timeoutMs: 1500, attempts: 3 });
    await waitFor('the sandbox to start', async () =>
      (await pidsWithEnv('TYDRA_INSTANCE_ID', run.id)).length > 0 ? true : undefined,
    );
    const error = await failure(run.result());
    assert.equal(error.message, 'timed out after 1.5 s');
    assert.ok(error instanceof TaskTimeoutError, `a TaskTimeoutError, got ${error.constructor.name}`);
    assert.equal(error.timeoutMs, 1500);
    assert.equal(error.instanceId, run.id);
    assert.deepEqual(await pidsWithEnv('TYDRA_INSTANCE_ID', run.id), [], 'no process of the task may survive');
    const status = await run.status();
    assert.equal(status.state, 'failed');
    assert.equal(status.logs.filter((line) => line.startsWith('running ')).length, 1, 'a timeout is not retried');
  });

  it('runs the second TaskInstance of a version from the node cache, without reading the tarball again', async () => {
    const { nodes } = await startCluster(1);
    const { tydra } = await deployedProbe();
    const before = await getrangeCalls();
    assert.deepEqual(
      await (await tydra.submit('probe/echo', 1)).result().then((r) => (r as { input: unknown }).input),
      1,
    );
    const afterFirst = await getrangeCalls();
    assert.ok(afterFirst > before, 'the first run must download the package');
    assert.deepEqual(
      await (await tydra.submit('probe/echo', 2)).result().then((r) => (r as { input: unknown }).input),
      2,
    );
    assert.deepEqual(
      await (await tydra.submit('probe/sh-echo', 3)).result().then((r) => (r as { stdin: unknown }).stdin),
      3,
    );
    assert.equal(await getrangeCalls(), afterFirst, 'later runs must not read pkg:<name>:<sha1>');
    assert.equal(nodes[0]?.cache.downloads, 1);
  });

  it('downloads an uncached version once for concurrent TaskInstances', async () => {
    const { nodes } = await startCluster(1, { concurrency: 4 });
    const { tydra } = await deployedProbe();
    const runs = await Promise.all([1, 2, 3, 4].map((n) => tydra.submit('probe/echo', n)));
    const results = await Promise.all(runs.map((run) => run.result()));
    assert.deepEqual(
      results.map((r) => (r as { input: unknown }).input),
      [1, 2, 3, 4],
    );
    assert.equal(nodes[0]?.cache.downloads, 1);
  });

  it('spreads work over two nodes', async () => {
    const { nodes } = await startCluster(2);
    const { tydra } = await deployedProbe();
    const runs = await Promise.all(Array.from({ length: 8 }, (_, n) => tydra.submit('probe/echo', n)));
    await Promise.all(runs.map((run) => run.result()));
    const used = new Set((await Promise.all(runs.map((run) => run.status()))).map((status) => status.nodeId));
    assert.deepEqual(used, new Set(nodes.map((node) => node.id)));
  });

  it('holds a TaskInstance until a node is alive, then runs it', async () => {
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const run = await tydra.submit('probe/echo', 'early');
    const { logger, entries } = recordingLogger();
    await startCluster(0, {}, { noNodeRetryMs: 200, logger });
    // Counted, not slept through: the master found no node twice, and still holds the TaskInstance.
    await waitFor('two dispatch attempts', () =>
      entries.filter((entry) => entry.msg === 'no live node; retrying dispatch later').length >= 2 ? true : undefined,
    );
    assert.equal((await run.status()).state, 'queued');
    await startCluster(1);
    assert.equal(((await run.result()) as { input: unknown }).input, 'early');
  });

  it('with two masters running, every TaskInstance completes and runs exactly once', async () => {
    const { master: first } = await startCluster(2);
    await startCluster(0);
    const { tydra } = await deployedProbe();
    const runs = await Promise.all(Array.from({ length: 12 }, (_, n) => tydra.submit('probe/echo', n)));
    const results = await Promise.all(runs.map((run) => run.result()));
    assert.deepEqual(
      results.map((r) => (r as { input: unknown }).input),
      Array.from({ length: 12 }, (_, n) => n),
    );
    for (const run of runs) {
      const { logs } = await run.status();
      assert.equal(
        logs.filter((line) => line.startsWith('running ')).length,
        1,
        `TaskInstance ${run.id} ran more than once: ${logs.join(' | ')}`,
      );
    }
    assert.equal(first.state, 'running');
  });

  it('fails a TaskInstance job whose data was not written by a client, without dispatching it', async () => {
    await startCluster(1);
    const { Queue } = await import('bullmq');
    const queue = new Queue('tasks', { prefix: '{tydra}:bull', connection: testRedis({ maxRetriesPerRequest: null }) });
    defer(() => queue.close());
    await queue.add(
      'task-instance',
      { ref: 'x', package: { name: 'x', sha1: 'not-a-sha' }, task: 't', input: null, attempts: 1, submittedAt: 0 },
      { jobId: 'forged' },
    );
    const tydra = testClient();
    const error = await failure(tydra.run('forged').result());
    assert.match(
      error.message,
      /^Expected TaskInstance data \{ref, package, task, input, attempts\}, got invalid data at `package.sha1`: /,
    );
    assert.equal((await tydra.run('forged').status()).nodeId, undefined);
  });
});

describe('log lines of a chatty task (@integration)', function () {
  this.timeout(60_000);

  it('keeps the first 1,000 lines of a run and ends the log with how many more were not kept', async () => {
    await startCluster(1);
    const { tydra } = await deployedProbe();
    const run = await tydra.submit('probe/chatty', { lines: 3000 });
    assert.deepEqual(await run.result({ timeoutMs: 50_000 }), { logged: 3000 });
    const { logs } = await run.status();
    const taskLines = logs.filter((line) => line.startsWith('line '));
    // The run's 1,000 lines: `running …` and the task's first 999.
    assert.equal(taskLines.length, 999);
    assert.equal(taskLines[0], 'line 1');
    assert.equal(taskLines.at(-1), 'line 999');
    assert.ok(logs[0]?.startsWith('dispatched to node '), logs[0]);
    assert.equal(logs.at(-1), '… 2,001 more lines not kept');
  });
});
