import assert from 'node:assert/strict';

import { Queue, Worker } from 'bullmq';

import type { Tydra } from '../../lib/client/client.js';
import { InvalidOptionError, TaskNotFoundError, UnknownTaskError } from '../../lib/core/errors.js';
import type { TaskInstanceData } from '../../queues/tasks.js';
import { defer, makePackage, redisUrl, rejection, startCluster, testClient, testRedis, waitFor } from '../helpers.js';
import { tydra as cli } from '../bin/run-cli.js';

/** A package whose `ver` task says which version ran, with what input and env. */
async function deployVersion(client: Tydra, version: number): Promise<string> {
  const dir = await makePackage({
    'package.json': '{ "type": "module", "private": true }',
    'tydra.json': JSON.stringify({
      name: 'hist',
      tasks: {
        ver: { module: 'ver.mjs' },
        boom: { module: 'boom.mjs' },
        pair: { kind: 'sequence', steps: ['ver', 'ver'] },
      },
    }),
    'ver.mjs': `export default (input) => ({ version: ${version}, input, color: process.env.COLOR ?? null });\n`,
    'boom.mjs': "export default () => { throw new Error('boom'); };\n",
  });
  return (await client.deploy(dir)).sha1;
}

async function deployOther(client: Tydra): Promise<void> {
  const dir = await makePackage({
    'package.json': '{ "type": "module", "private": true }',
    'tydra.json': JSON.stringify({ name: 'other', tasks: { ver: { module: 'ver.mjs' } } }),
    'ver.mjs': 'export default () => 0;\n',
  });
  await client.deploy(dir);
}

/** The job data of a TaskInstance, read straight from BullMQ. */
async function jobData(id: string): Promise<TaskInstanceData> {
  const tasks = new Queue<TaskInstanceData>('tasks', {
    prefix: '{tydra}:bull',
    connection: testRedis({ maxRetriesPerRequest: null }),
  });
  defer(() => tasks.close());
  const job = await tasks.getJob(id);
  assert.ok(job !== undefined, `no job ${id}`);
  return job.data;
}

describe('history: runs and rerun (@integration)', function () {
  this.timeout(60_000);

  it('lists TaskInstances newest first, filtered by task, state, since and limit, without sequence steps', async () => {
    await startCluster(1);
    const client = testClient();
    await deployVersion(client, 1);
    await deployOther(client);
    const one = await client.submit('hist/ver', 'one');
    await one.result();
    const other = await client.submit('other/ver');
    await other.result();
    const boom = await client.submit('hist/boom');
    await assert.rejects(boom.result());
    const pair = await client.submit('hist/pair', 'p');
    await pair.result();
    const later = await client.submit('hist/ver', 'later', { delayMs: 3_600_000 });
    const ids = async (options: Parameters<Tydra['runs']>[0]) => (await client.runs(options)).map((row) => row.id);

    assert.deepEqual(await ids({}), [later.id, pair.id, boom.id, other.id, one.id]);
    const rows = await client.runs({ task: 'hist' });
    assert.deepEqual(
      rows.map((row) => [row.id, row.state]),
      [
        [later.id, 'delayed'],
        [pair.id, 'completed'],
        [boom.id, 'failed'],
        [one.id, 'completed'],
      ],
    );
    const done = rows.find((row) => row.id === one.id);
    assert.match(done?.ref ?? '', /^hist@[0-9a-f]{40}\/ver$/);
    assert.ok(done?.nodeId !== undefined && done.finishedAt !== undefined && done.finishedAt >= done.submittedAt);
    assert.deepEqual(await ids({ task: 'hist/ver' }), [later.id, one.id]);
    assert.deepEqual(await ids({ state: 'failed' }), [boom.id]);
    assert.deepEqual(await ids({ state: 'delayed' }), [later.id]);
    assert.deepEqual(await ids({ state: 'completed', task: 'hist' }), [pair.id, one.id]);
    assert.deepEqual(await ids({ limit: 2 }), [later.id, pair.id]);
    const { submittedAt } = await boom.status();
    assert.ok(submittedAt !== undefined);
    assert.deepEqual(await ids({ since: new Date(submittedAt) }), [later.id, pair.id, boom.id]);
    assert.equal((await ids({ since: '1h' })).length, 5);

    // The sequence's two steps only with `all`, each naming its sequence.
    const all = await client.runs({ all: true, task: 'hist/ver', state: 'completed' });
    assert.deepEqual(
      all.map((row) => row.sequenceId),
      [pair.id, pair.id, undefined],
    );

    for (const bad of [{ since: '5 minutes' }, { limit: 0 }, { limit: 1001 }, { state: 'done' }, { task: 'a/b/c' }]) {
      await assert.rejects(client.runs(bad as never), InvalidOptionError);
    }

    const listed = await cli(['runs', '--task', 'hist/ver', '--json', '--redis', redisUrl()]);
    assert.equal(listed.exitCode, 0, listed.stderr);
    const printed = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(
      printed.map((row) => [row.id, row.state, row.node === null]),
      [
        [later.id, 'delayed', true],
        [one.id, 'completed', false],
      ],
    );
    assert.equal(printed[1]?.submitted, new Date((await one.status()).submittedAt ?? Number.NaN).toISOString());
    const text = await cli(['runs', '--state', 'failed', '--since', '1h', '--redis', redisUrl()]);
    assert.equal(text.exitCode, 0, text.stderr);
    assert.match(
      text.stdout,
      new RegExp(`^${boom.id}  failed  hist@[0-9a-f]{40}/boom  submitted \\S+  finished \\S+  node \\S+$`),
    );
    const limited = await cli(['runs', '--limit', '2', '--json', '--redis', redisUrl()]);
    assert.equal(limited.exitCode, 0, limited.stderr);
    assert.deepEqual(
      (JSON.parse(limited.stdout) as Array<{ id: string }>).map((row) => row.id),
      [later.id, pair.id],
    );
    const badState = await cli(['runs', '--state', 'done', '--redis', redisUrl()]);
    assert.equal(badState.exitCode, 1);
    await later.cancel();
  });

  it('re-runs a TaskInstance on its version, or the latest with `latest`, recording rerunOf (client and CLI)', async () => {
    await startCluster(1);
    const client = testClient();
    const v1 = await deployVersion(client, 1);
    const first = await client.submit(
      'hist/ver',
      { n: 1 },
      { env: { COLOR: 'red' }, priority: 5, attempts: 2, key: 'k1' },
    );
    assert.deepEqual(await first.result(), { version: 1, input: { n: 1 }, color: 'red' });
    const v2 = await deployVersion(client, 2);

    const pinned = await client.rerun(first.id);
    assert.notEqual(pinned.id, first.id);
    assert.equal(pinned.ref, `hist@${v1}/ver`);
    assert.deepEqual(await pinned.result(), { version: 1, input: { n: 1 }, color: 'red' });
    const data = await jobData(pinned.id);
    assert.equal(data.rerunOf, first.id);
    assert.equal(data.key, undefined, 'the idempotency key is not copied');
    assert.equal(data.priority, 5);
    assert.equal(data.attempts, 2);

    const latest = await client.rerun(first.id, { latest: true });
    assert.equal(latest.ref, `hist@${v2}/ver`);
    assert.deepEqual(await latest.result(), { version: 2, input: { n: 1 }, color: 'red' });
    const row = (await client.runs({ limit: 1 }))[0];
    assert.deepEqual([row?.id, row?.rerunOf], [latest.id, first.id]);

    // Finished, none of them holds its version.
    await waitFor('no references left', async () => {
      const { versions } = await client.packageVersions('hist');
      return versions.every((version) => version.references === 0) ? true : undefined;
    });

    const json = await cli(['rerun', first.id, '--json', '--redis', redisUrl()]);
    assert.equal(json.exitCode, 0, json.stderr);
    const printed = JSON.parse(json.stdout) as { id: string; ref: string; state: string; result: unknown };
    assert.deepEqual(
      [printed.ref, printed.state, printed.result],
      [`hist@${v1}/ver`, 'completed', { version: 1, input: { n: 1 }, color: 'red' }],
    );
    assert.equal((await jobData(printed.id)).rerunOf, first.id);
    const detached = await cli(['rerun', first.id, '--latest', '--detach', '--redis', redisUrl()]);
    assert.equal(detached.exitCode, 0, detached.stderr);
    assert.deepEqual(await client.run(detached.stdout.trim()).result(), { version: 2, input: { n: 1 }, color: 'red' });

    await client.undeploy('hist', v1);
    const error = await rejection(client.rerun(first.id));
    assert.ok(error instanceof UnknownTaskError, String(error));
    assert.match(
      error.message,
      new RegExp(`^Expected the version TaskInstance ${first.id} ran, hist@${v1.slice(0, 12)}, to be deployed`),
    );
    assert.match(error.message, /Re-run it with --latest/);
    const refused = await cli(['rerun', first.id, '--redis', redisUrl()]);
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stderr, /undeployed.*Re-run it with --latest/);
    assert.ok((await rejection(client.rerun('no-such-id'))) instanceof TaskNotFoundError);
    await assert.rejects(client.rerun(first.id, { latest: 'yes' } as never), InvalidOptionError);
    const unknown = await cli(['rerun', 'no-such-id', '--redis', redisUrl()]);
    assert.equal(unknown.exitCode, 1);
  });

  it('a pinned rerun of a pruned version fails naming --latest; with latest it runs the new version', async () => {
    await startCluster(1);
    const client = testClient({ deployLeaseMs: 1 });
    const v1 = await deployVersion(client, 1);
    const first = await client.submit('hist/ver', 'x');
    await first.result();
    await deployVersion(client, 2);
    await waitFor('v1 pruned', async () => {
      const report = await client.prune({ graceMs: 0 });
      return report.removed.some((removed) => removed.sha1 === v1) ? true : undefined;
    });
    const error = await rejection(client.rerun(first.id));
    assert.ok(error instanceof UnknownTaskError, String(error));
    assert.match(error.message, /found none\. Re-run it with --latest/);
    assert.deepEqual(await (await client.rerun(first.id, { latest: true })).result(), {
      version: 2,
      input: 'x',
      color: null,
    });
  });

  it('reads the finished sets in pages: hundreds of TaskInstances, filtered and limited', async () => {
    // No master: a plain worker completes TaskInstance jobs at once, in whatever order it takes them.
    const connection = testRedis({ maxRetriesPerRequest: null });
    const tasks = new Queue<TaskInstanceData>('tasks', { prefix: '{tydra}:bull', connection });
    defer(() => tasks.close());
    const base = Date.now() - 60_000;
    const sha1 = 'a'.repeat(40);
    const count = 450;
    await tasks.addBulk(
      Array.from({ length: count }, (_, n) => {
        const name = n % 3 === 0 ? 'b' : 'a';
        const data: TaskInstanceData = {
          ref: `${name}@${sha1}/t`,
          package: { name, sha1 },
          task: 't',
          input: n,
          attempts: 1,
          submittedAt: base + n,
        };
        return { name: 'task-instance', data, opts: { jobId: `job-${n}` } };
      }),
    );
    const worker = new Worker('tasks', () => Promise.resolve(null), {
      prefix: '{tydra}:bull',
      connection: testRedis({ maxRetriesPerRequest: null }),
      concurrency: 50,
    });
    defer(() => worker.close());
    await waitFor('every job completed', async () => ((await tasks.getCompletedCount()) === count ? true : undefined));
    const client = testClient();
    const all = await client.runs({ limit: 1000 });
    assert.deepEqual(
      all.map((row) => row.id),
      Array.from({ length: count }, (_, n) => `job-${count - 1 - n}`),
    );
    assert.ok(all.every((row) => row.state === 'completed'));
    assert.deepEqual(
      (await client.runs({ task: 'b', limit: 3 })).map((row) => row.id),
      ['job-447', 'job-444', 'job-441'],
    );
    assert.deepEqual(
      (await client.runs({ task: 'a/t', limit: 2 })).map((row) => row.id),
      ['job-449', 'job-448'],
    );
    const since = await client.runs({ since: new Date(base + 400), limit: 1000 });
    assert.equal(since.length, 50);
    assert.equal(since.at(-1)?.id, 'job-400');
  });

  it('keeps finished TaskInstances by the client’s keepCompleted and keepFailed', async () => {
    await startCluster(1);
    const client = testClient({ keepCompleted: { count: 1 }, keepFailed: { count: 1, ageMs: 3_600_000 } });
    await deployVersion(client, 1);
    const runs = [];
    for (const input of ['a', 'b', 'c']) {
      const run = await client.submit('hist/ver', input);
      await run.result();
      runs.push(run);
    }
    for (let n = 0; n < 2; n += 1) {
      await assert.rejects((await client.submit('hist/boom')).result());
    }
    assert.deepEqual(
      (await client.runs({ state: 'completed' })).map((row) => row.id),
      [runs[2]?.id],
    );
    assert.equal((await client.runs({ state: 'failed' })).length, 1);
    const error = await rejection(Promise.resolve().then(() => testClient({ keepCompleted: {} })));
    assert.ok(error instanceof InvalidOptionError, String(error));
    assert.match(error.message, /keepCompleted/);
  });

  it('keeps what `tydra run` and `tydra rerun` submit by --keep-completed and --keep-failed', async () => {
    await startCluster(1);
    const client = testClient();
    await deployVersion(client, 1);
    const redis = ['--redis', redisUrl()];
    const keep = ['--keep-completed', '1,1h', '--keep-failed', '1'];
    const ids: string[] = [];
    for (const input of ['"a"', '"b"']) {
      const ran = await cli(['run', 'hist/ver', '--input', input, ...keep, '--json', ...redis]);
      assert.equal(ran.exitCode, 0, ran.stderr);
      ids.push((JSON.parse(ran.stdout) as { id: string }).id);
    }
    // BullMQ trims when a later one finishes: only the newest completed one is left.
    assert.deepEqual(
      (await client.runs({ state: 'completed' })).map((row) => row.id),
      [ids[1]],
    );
    const rerun = await cli(['rerun', ids[1] ?? '', ...keep, '--json', ...redis]);
    assert.equal(rerun.exitCode, 0, rerun.stderr);
    assert.deepEqual(
      (await client.runs({ state: 'completed' })).map((row) => row.id),
      [(JSON.parse(rerun.stdout) as { id: string }).id],
    );
    for (let n = 0; n < 2; n += 1) {
      assert.equal((await cli(['run', 'hist/boom', ...keep, ...redis])).exitCode, 1);
    }
    assert.equal((await client.runs({ state: 'failed' })).length, 1);
    for (const bad of ['x', '1,2', '24h,48h', '']) {
      const refused = await cli(['run', 'hist/ver', '--keep-completed', bad, ...redis]);
      assert.equal(refused.exitCode, 1, bad);
      assert.match(refused.stderr, /Expected COUNT, AGE or COUNT,AGE/);
    }
  });
});
