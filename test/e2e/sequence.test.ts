import assert from 'node:assert/strict';

import { Job, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';

import type { Tydra } from '../../lib/client/client.js';
import { TaskCancelledError, TaskFailedError } from '../../lib/core/errors.js';
import type { TaskProgress } from '../../queues/progress.js';
import { TASK_INSTANCE_JOB, TASKS_JOB_OPTIONS } from '../../queues/tasks.js';
import { defer, makePackage, startCluster, startNode, testClient, testRedis, waitFor, rejection } from '../helpers.js';
import { pidsWithEnv } from '../processes.js';

/** A package of small steps and the sequences built from them; `version` marks which deploy ran. */
function sequencePackage(version: string): Promise<string> {
  return makePackage({
    'package.json': JSON.stringify({ type: 'module', private: true }),
    'tydra.json': JSON.stringify({
      name: 'seq',
      tasks: {
        double: { module: 'double.mjs' },
        inc: { module: 'inc.mjs' },
        square: { module: 'square.mjs' },
        join: { module: 'join.mjs' },
        fail: { module: 'fail.mjs' },
        hang: { module: 'hang.mjs' },
        version: { module: 'version.mjs' },
        calc: { kind: 'sequence', steps: ['double', { all: ['inc', 'square'] }, 'join'] },
        outer: { kind: 'sequence', steps: ['calc', 'inc'] },
        nestedlong: { kind: 'sequence', steps: ['inc', 'long'] },
        fastfail: { kind: 'sequence', steps: ['double', { all: ['hang', 'fail'] }, 'inc'] },
        broken: { kind: 'sequence', steps: ['double', 'fail', 'inc'] },
        long: { kind: 'sequence', steps: ['double', 'hang', 'inc'] },
        versions: { kind: 'sequence', steps: ['version', 'version'] },
      },
    }),
    'double.mjs': 'export default (n) => n * 2;\n',
    'inc.mjs': 'export default (n) => n + 1;\n',
    'square.mjs': 'export default (n) => n * n;\n',
    'join.mjs': "export default (values) => values.join('-');\n",
    'fail.mjs': 'export default (n) => {\n  throw new Error(`no step past ${n}`);\n};\n',
    // Never returns and ignores SIGTERM: only a kill ends it.
    'hang.mjs':
      "process.on('SIGTERM', () => {});\nexport default () => new Promise(() => setInterval(() => {}, 1000));\n",
    'version.mjs': `export default (seen) => [...(seen ?? []), '${version}'];\n`,
  });
}

async function deployed(version = 'v1'): Promise<{ tydra: Tydra; sha1: string; redis: Redis }> {
  const tydra = testClient();
  const { sha1 } = await tydra.deploy(await sequencePackage(version));
  return { tydra, sha1, redis: testRedis({ maxRetriesPerRequest: null }) };
}

const holders = (redis: Redis, sha1: string): Promise<string[]> =>
  redis.zrange(`{tydra}:package:seq:holders:${sha1}`, 0, -1);

function tasksQueue(redis: Redis): Queue {
  const queue = new Queue('tasks', { prefix: '{tydra}:bull', connection: redis });
  defer(() => queue.close());
  return queue;
}

describe('sequences (@integration)', function () {
  this.timeout(60_000);

  it('runs the steps in order, an `all` step on the same input, each output the next input', async () => {
    await startCluster(1);
    const { tydra, sha1, redis } = await deployed();
    const events = new QueueEvents('tasks', {
      prefix: '{tydra}:bull',
      connection: testRedis({ maxRetriesPerRequest: null }),
    });
    defer(() => events.close());
    await events.waitUntilReady();
    const progress: TaskProgress[] = [];
    const run = await tydra.submit('seq/calc', 3);
    events.on('progress', ({ jobId, data }) => {
      if (jobId === run.id) {
        progress.push(data as TaskProgress);
      }
    });
    // 3 → double 6 → [inc 7, square 36] → join '7-36'
    assert.equal(await run.result(), '7-36');
    const status = await run.status();
    assert.equal(status.state, 'completed');
    for (const line of [
      `step 1/3 double started: ${run.id}.s0`,
      `step 2/3 all(inc, square) started: ${run.id}.s1.0, ${run.id}.s1.1`,
      `step 3/3 join started: ${run.id}.s2`,
    ]) {
      assert.ok(status.logs.includes(line), `no "${line}" in: ${status.logs.join(' | ')}`);
    }
    const queue = tasksQueue(redis);
    const branch = await Job.fromId(queue, `${run.id}.s1.1`);
    assert.deepEqual(branch?.data.parentSequence, { id: run.id, step: 1, branch: 1 });
    assert.equal(branch?.data.ref, `seq@${sha1}/square`);
    assert.equal(branch?.returnvalue, 36);
    await waitFor('every reference released', async () =>
      (await holders(redis, sha1)).length === 0 ? true : undefined,
    );
    // Progress rises step by step to the last one, at 100 % once it is done.
    await waitFor('the last progress event', () => (progress.at(-1)?.percent === 100 ? true : undefined));
    assert.deepEqual(
      progress.map((p) => ('step' in p ? [p.step.index, p.percent] : [])),
      [
        [0, 0],
        [1, 33],
        [2, 67],
        [2, 100],
      ],
    );
    assert.deepEqual(progress.at(-1), { percent: 100, step: { index: 2, name: 'join' }, steps: 3 });
  });

  it('fails with the failing step named, its message and stack; later steps never start', async () => {
    await startCluster(1);
    const { tydra, sha1, redis } = await deployed();
    const run = await tydra.submit('seq/broken', 5);
    const error = await rejection(run.result());
    assert.ok(error instanceof TaskFailedError, String(error));
    assert.ok(!(error instanceof TaskCancelledError));
    assert.equal(error.message, 'step 2 (fail) failed: no step past 10');
    assert.match(error.remoteStack ?? '', /fail\.mjs/);
    assert.equal((await run.status()).state, 'failed');
    assert.equal(await Job.fromId(tasksQueue(redis), `${run.id}.s2`), undefined);
    await waitFor('every reference released', async () =>
      (await holders(redis, sha1)).length === 0 ? true : undefined,
    );
  });

  it('runs a sequence as a step of another (nested steps of the same version)', async () => {
    await startCluster(1);
    const { tydra } = await deployed();
    const run = await tydra.submit('seq/outer', 3);
    // calc: 3 → '7-36'; inc: '7-36' + 1 → '7-361' (JavaScript's + on a string)
    assert.equal(await run.result(), '7-361');
    assert.equal((await tydra.run(`${run.id}.s0.s1.1`).status()).result, 36);
  });

  it('a failed branch of an `all` step fails the sequence at once and stops the other branch', async () => {
    await startCluster(1);
    const { tydra, sha1, redis } = await deployed();
    const run = await tydra.submit('seq/fastfail', 1, { timeoutMs: 60_000 });
    const error = await rejection(run.result());
    assert.ok(error instanceof TaskFailedError && !(error instanceof TaskCancelledError), String(error));
    assert.equal(error.message, 'step 2 (fail) failed: no step past 2');
    const hanging = tydra.run(`${run.id}.s1.0`);
    await waitFor('the hanging branch to end cancelled', async () =>
      (await hanging.status()).state === 'cancelled' ? true : undefined,
    );
    await waitFor('no process of the hanging branch', async () =>
      (await pidsWithEnv('TYDRA_INSTANCE_ID', hanging.id)).length === 0 ? true : undefined,
    );
    assert.equal(await Job.fromId(tasksQueue(redis), `${run.id}.s2`), undefined);
    await waitFor('every reference released', async () =>
      (await holders(redis, sha1)).length === 0 ? true : undefined,
    );
  });

  it('picks up after a master crash between recording a step and adding its children', async () => {
    const { tydra, sha1, redis } = await deployed();
    const queue = tasksQueue(redis);
    const id = 'crashed-sequence';
    const base = { package: { name: 'seq', sha1 }, attempts: 1, submittedAt: Date.now() };
    // What a master leaves when it dies after recording step 2 and adding its first branch only.
    await queue.add(
      TASK_INSTANCE_JOB,
      { ...base, ref: `seq@${sha1}/calc`, task: 'calc', input: 3, kind: 'sequence', sequence: { step: 1, input: 6 } },
      { ...TASKS_JOB_OPTIONS, jobId: id },
    );
    await queue.add(
      TASK_INSTANCE_JOB,
      { ...base, ref: `seq@${sha1}/inc`, task: 'inc', input: 6, parentSequence: { id, step: 1, branch: 0 } },
      {
        ...TASKS_JOB_OPTIONS,
        jobId: `${id}.s1.0`,
        parent: { id, queue: '{tydra}:bull:tasks' },
        continueParentOnFailure: true,
      },
    );
    await startCluster(1);
    assert.equal(await tydra.run(id).result(), '7-36');
    const { logs } = await tydra.run(id).status();
    assert.ok(logs.includes(`step 2/3 all(inc, square) started again: ${id}.s1.1`), logs.join(' | '));
    assert.ok(logs.includes(`step 3/3 join started: ${id}.s2`), logs.join(' | '));
    assert.equal((await tydra.run(`${id}.s1.0`).status()).logs.filter((line) => line.startsWith('running')).length, 1);
  });

  it('cancel while step 2 runs kills it, starts no later step, and ends the sequence cancelled', async () => {
    await startCluster(1);
    const { tydra, sha1, redis } = await deployed();
    const run = await tydra.submit('seq/long', 1, { timeoutMs: 60_000 });
    const step2 = `${run.id}.s1`;
    await waitFor('step 2 to run in its sandbox', async () =>
      (await pidsWithEnv('TYDRA_INSTANCE_ID', step2)).length > 0 ? true : undefined,
    );
    assert.equal((await run.status()).state, 'running');
    assert.deepEqual(await run.cancel(), { id: run.id, outcome: 'cancelling' });
    const error = await rejection(run.result());
    assert.ok(error instanceof TaskCancelledError, String(error));
    await waitFor('no process of step 2', async () =>
      (await pidsWithEnv('TYDRA_INSTANCE_ID', step2)).length === 0 ? true : undefined,
    );
    assert.equal((await run.status()).state, 'cancelled');
    assert.equal((await tydra.run(step2).status()).state, 'cancelled');
    assert.equal(await Job.fromId(tasksQueue(redis), `${run.id}.s2`), undefined);
    await waitFor('every reference released', async () =>
      (await holders(redis, sha1)).length === 0 ? true : undefined,
    );
  });

  it('cancel reaches the running step of a nested sequence', async () => {
    await startCluster(1);
    const { tydra, sha1, redis } = await deployed();
    const run = await tydra.submit('seq/nestedlong', 1, { timeoutMs: 60_000 });
    const inner = `${run.id}.s1`;
    const hanging = `${inner}.s1`;
    await waitFor('the inner step to run', async () =>
      (await pidsWithEnv('TYDRA_INSTANCE_ID', hanging)).length > 0 ? true : undefined,
    );
    assert.deepEqual(await run.cancel(), { id: run.id, outcome: 'cancelling' });
    assert.ok((await rejection(run.result())) instanceof TaskCancelledError);
    await waitFor('no process of the inner step', async () =>
      (await pidsWithEnv('TYDRA_INSTANCE_ID', hanging)).length === 0 ? true : undefined,
    );
    for (const id of [inner, hanging]) {
      assert.equal((await tydra.run(id).status()).state, 'cancelled', id);
    }
    await waitFor('every reference released', async () =>
      (await holders(redis, sha1)).length === 0 ? true : undefined,
    );
  });

  it('cancel while the step waits on a busy node removes the step and ends the sequence cancelled', async () => {
    await startCluster(1, { concurrency: 1 });
    const { tydra, sha1, redis } = await deployed();
    const busy = await tydra.submit('seq/hang', null, { timeoutMs: 60_000 });
    await waitFor('the node to be busy', async () =>
      (await pidsWithEnv('TYDRA_INSTANCE_ID', busy.id)).length > 0 ? true : undefined,
    );
    const run = await tydra.submit('seq/calc', 1);
    await waitFor('the first step to wait on the node', async () =>
      (
        await tydra
          .run(`${run.id}.s0`)
          .status()
          .catch(() => undefined)
      )?.state === 'dispatched'
        ? true
        : undefined,
    );
    assert.deepEqual(await run.cancel(), { id: run.id, outcome: 'cancelling' });
    assert.ok((await rejection(run.result())) instanceof TaskCancelledError);
    assert.equal(await Job.fromId(tasksQueue(redis), `${run.id}.s0`), undefined, 'the waiting step is removed');
    // Listed as a step of its sequence, as the client's cancel recorded it: only with `all`.
    const step = `${run.id}.s0`;
    assert.ok(!(await tydra.runs()).some((row) => row.id === step), 'a step is not a top-level run');
    const listed = (await tydra.runs({ all: true })).find((row) => row.id === step);
    assert.equal(listed?.sequenceId, run.id, JSON.stringify(listed));
    await busy.cancel();
    await assert.rejects(busy.result(), TaskCancelledError);
    await waitFor('every reference released', async () =>
      (await holders(redis, sha1)).length === 0 ? true : undefined,
    );
  });

  it('runs every step at the version it was submitted with, even after a newer deploy', async () => {
    // No node yet: the first step waits in `tasks` until v2 is deployed.
    await startCluster(0, {}, { noNodeRetryMs: 100 });
    const { tydra, sha1 } = await deployed('v1');
    const run = await tydra.submit('seq/versions', []);
    await waitFor('the first step to be added', async () =>
      (await run.status()).logs.some((line) => line.startsWith('step 1/2 version started')) ? true : undefined,
    );
    const v2 = await tydra.deploy(await sequencePackage('v2'));
    assert.notEqual(v2.sha1, sha1);
    await startNode();
    assert.deepEqual(await run.result(), ['v1', 'v1']);
    assert.equal((await tydra.run(`${run.id}.s1`).status()).ref, `seq@${sha1}/version`);
    assert.deepEqual(await (await tydra.submit('seq/versions', [])).result(), ['v2', 'v2']);
  });
});
