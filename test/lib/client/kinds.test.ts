import assert from 'node:assert/strict';

import { Job, Queue } from 'bullmq';

import { TASKS_QUEUE, type TaskInstanceData } from '../../../queues/tasks.js';
import { InvalidOptionError, ManifestError } from '../../../lib/core/errors.js';
import { defer, makePackage, testClient, testRedis } from '../../helpers.js';

/** A package with a task of each kind; the parallel ones name their attempts and tolerance. */
const KINDS = {
  name: 'kinds',
  tasks: {
    one: { module: 'one.js' },
    count: { kind: 'parallel', module: 'count.js', attempts: 3, maxFailedWorkunits: 2 },
    plain: { kind: 'parallel', module: 'count.js' },
    report: { kind: 'sequence', steps: ['one', { all: ['count', 'plain'] }] },
  },
};

async function kindsPackage(): Promise<string> {
  return makePackage({ 'tydra.json': JSON.stringify(KINDS), 'one.js': 'x', 'count.js': 'x' });
}

/** The TaskInstance job's data as stored in Redis. */
async function storedData(id: string): Promise<TaskInstanceData> {
  const queue = new Queue<TaskInstanceData>(TASKS_QUEUE, {
    prefix: '{tydra}:bull',
    connection: testRedis({ maxRetriesPerRequest: null }),
  });
  defer(() => queue.close());
  const job = await Job.fromId<TaskInstanceData>(queue, id);
  assert.ok(job !== undefined, `job ${id} must exist`);
  return job.data;
}

async function assertDeployRefused(files: Record<string, string>, field: string, message: RegExp): Promise<void> {
  const tydra = testClient();
  await assert.rejects(tydra.deploy(await makePackage(files)), (error: unknown) => {
    assert.ok(error instanceof ManifestError, `expected a ManifestError, got ${String(error)}`);
    assert.equal(error.field, field);
    assert.match(error.message, message);
    return true;
  });
  const redis = testRedis();
  assert.deepEqual(
    (await redis.keys('{tydra}:*')).filter((key) => !key.startsWith('{tydra}:bull:')),
    [],
    'nothing stored',
  );
}

describe('task kinds at deploy and submit (@integration)', () => {
  it('refuses a sequence naming an unknown step, storing nothing', async () => {
    const manifest = {
      name: 'seq',
      tasks: { a: { module: 'a.js' }, s: { kind: 'sequence', steps: ['a', { all: ['a', 'b'] }] } },
    };
    await assertDeployRefused(
      { 'tydra.json': JSON.stringify(manifest), 'a.js': 'x' },
      'tasks.s.steps[1].all[1]',
      /^Expected `tasks\.s\.steps\[1\]\.all\[1\]` to name a task of the package \(a, s\), got `b`$/,
    );
  });

  it('refuses sequences that reach themselves, storing nothing', async () => {
    const manifest = {
      name: 'seq',
      tasks: {
        a: { module: 'a.js' },
        s: { kind: 'sequence', steps: ['a', 't'] },
        t: { kind: 'sequence', steps: ['s'] },
      },
    };
    await assertDeployRefused(
      { 'tydra.json': JSON.stringify(manifest), 'a.js': 'x' },
      'tasks.t.steps[0]',
      /closing the loop s → t → s$/,
    );
  });

  it('refuses a parallel task whose module or phase command file is missing, storing nothing', async () => {
    await assertDeployRefused(
      { 'tydra.json': JSON.stringify({ name: 'par', tasks: { p: { kind: 'parallel', module: 'gone.js' } } }) },
      'tasks.p.module',
      /^Expected the file gone\.js named by `tasks\.p\.module` to exist in the package, found none$/,
    );
    const commands = {
      kind: 'parallel',
      split: { command: ['python3', 'split.py'] },
      work: { command: ['python3', 'work.py'] },
      reduce: { command: ['python3', 'reduce.py'] },
    };
    await assertDeployRefused(
      { 'tydra.json': JSON.stringify({ name: 'par', tasks: { p: commands } }), 'split.py': '', 'reduce.py': '' },
      'tasks.p.work.command',
      /^Expected the file work\.py named by `tasks\.p\.work\.command` to exist in the package, found none$/,
    );
  });

  it('records the kind of each task at submit', async () => {
    const tydra = testClient();
    await tydra.deploy(await kindsPackage());
    const kinds: Record<string, string | undefined> = {};
    for (const task of ['one', 'count', 'report']) {
      const run = await tydra.submit(`kinds/${task}`);
      kinds[task] = (await storedData(run.id)).kind;
    }
    assert.deepEqual(kinds, { one: 'simple', count: 'parallel', report: 'sequence' });
  });

  it("takes a parallel task's attempts and maxFailedWorkunits from the manifest unless the submission sets them", async () => {
    const tydra = testClient();
    await tydra.deploy(await kindsPackage());
    const fromManifest = await storedData((await tydra.submit('kinds/count')).id);
    assert.deepEqual([fromManifest.attempts, fromManifest.maxFailedWorkunits], [3, 2]);
    const fromSubmit = await storedData(
      (await tydra.submit('kinds/count', null, { attempts: 5, maxFailedWorkunits: 0 })).id,
    );
    assert.deepEqual([fromSubmit.attempts, fromSubmit.maxFailedWorkunits], [5, 0]);
    const defaults = await storedData((await tydra.submit('kinds/plain')).id);
    assert.deepEqual([defaults.attempts, defaults.maxFailedWorkunits], [1, 0]);
    const simple = await storedData((await tydra.submit('kinds/one')).id);
    assert.deepEqual([simple.attempts, simple.maxFailedWorkunits], [1, undefined]);
  });

  it('refuses maxFailedWorkunits for a task that is not parallel, and a negative one, enqueuing nothing', async () => {
    const tydra = testClient();
    await tydra.deploy(await kindsPackage());
    await assert.rejects(
      tydra.submit('kinds/one', null, { maxFailedWorkunits: 1 }),
      (error: Error) =>
        error instanceof InvalidOptionError &&
        error.message ===
          'Expected the `maxFailedWorkunits` submit option only for a parallel task, got it for task one, a simple task',
    );
    await assert.rejects(
      tydra.submit('kinds/count', null, { maxFailedWorkunits: -1 }),
      (error: Error) =>
        error instanceof InvalidOptionError &&
        /`maxFailedWorkunits` submit option .*got `-1` \(number\)/.test(error.message),
    );
    assert.equal(await testRedis().hlen('{tydra}:refs'), 0, 'nothing was referenced or enqueued');
  });
});
