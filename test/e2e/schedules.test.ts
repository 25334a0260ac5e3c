import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { type Job, Queue } from 'bullmq';

import { InvalidOptionError, UnknownTaskError } from '../../lib/core/errors.js';
import { firingInstanceId } from '../../lib/master/schedule-firing.js';
import { TASKS_QUEUE, type TaskInstanceData } from '../../queues/tasks.js';
import { tydra as cli } from '../bin/run-cli.js';
import { copyFixture, defer, redisUrl, startCluster, testClient, testRedis, waitFor } from '../helpers.js';

/** Completed TaskInstances that schedule `name` made, oldest first. */
async function firings(tasks: Queue<TaskInstanceData>, name: string): Promise<Array<Job<TaskInstanceData>>> {
  const jobs = await tasks.getJobs(['completed'], 0, -1, true);
  return jobs.filter((job) => job.data.schedule === name);
}

describe('schedules (@integration)', function () {
  this.timeout(60_000);

  it('fires a TaskInstance every second at the latest version, until removed', async () => {
    await startCluster(1);
    const tydra = testClient();
    const redis = testRedis();
    const tasks = new Queue<TaskInstanceData>(TASKS_QUEUE, { prefix: '{tydra}:bull', connection: redis });
    defer(() => tasks.close());
    const dir = await copyFixture('probe');
    const v1 = await tydra.deploy(dir);
    const added = await tydra.addSchedule('tick', 'probe/echo', { every: '1s', input: { n: 1 } });
    assert.equal(added.name, 'tick');
    assert.equal(added.every, 1000);
    assert.deepEqual(
      (await tydra.listSchedules()).map((s) => [s.name, s.ref, s.every]),
      [['tick', 'probe/echo', 1000]],
    );
    const first = await waitFor('a first firing', async () => (await firings(tasks, 'tick'))[0], 20_000);
    assert.equal(first.data.package.sha1, v1.sha1);
    assert.deepEqual((first.returnvalue as { input: unknown }).input, { n: 1 });
    // A new deploy: the next firings run it, since the schedule names no version.
    await writeFile(join(dir, 'extra.txt'), 'v2');
    const v2 = await tydra.deploy(dir);
    assert.notEqual(v2.sha1, v1.sha1);
    await waitFor(
      'a firing at the new version',
      async () => ((await firings(tasks, 'tick')).some((job) => job.data.package.sha1 === v2.sha1) ? true : undefined),
      20_000,
    );
    assert.equal(await tydra.removeSchedule('tick'), true);
    assert.deepEqual(await tydra.listSchedules(), []);
    assert.equal(await tydra.removeSchedule('tick'), false);
    // Finished firings hold no package reference.
    await waitFor('every reference released', async () =>
      (await redis.hlen('{tydra}:refs')) === 0 ? true : undefined,
    );
  });

  it('refuses a bad name, a bad period, a bad cron pattern or time zone, and an unknown task', async () => {
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const refused = async (promise: Promise<unknown>, pattern: RegExp, type: new (...args: never[]) => Error) => {
      await assert.rejects(promise, (error: Error) => error instanceof type && pattern.test(error.message));
    };
    await refused(tydra.addSchedule('no spaces', 'probe/echo', { every: '1m' }), /schedule name/, InvalidOptionError);
    await refused(tydra.addSchedule('s', 'probe/echo', {}), /exactly one of `cron` or `every`/, InvalidOptionError);
    await refused(
      tydra.addSchedule('s', 'probe/echo', { every: '1m', cron: '* * * * *' }),
      /exactly one of/,
      InvalidOptionError,
    );
    await refused(tydra.addSchedule('s', 'probe/echo', { every: 10 }), /every/, InvalidOptionError);
    await refused(tydra.addSchedule('s', 'probe/echo', { every: '100ms' }), /at least 1000 ms/, InvalidOptionError);
    await refused(tydra.addSchedule('s', 'probe/echo', { cron: 'not a cron' }), /cron pattern/, InvalidOptionError);
    await refused(
      tydra.addSchedule('s', 'probe/echo', { cron: '* * * * *', tz: 'Mars/Olympus' }),
      /time zone/,
      InvalidOptionError,
    );
    await refused(tydra.addSchedule('s', 'probe/nope', { every: '1m' }), /define task nope/, UnknownTaskError);
    assert.deepEqual(await tydra.listSchedules(), []);
  });

  it('adds, lists and removes schedules from the CLI', async () => {
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const redis = ['--redis', redisUrl()];
    const add = await cli([
      'schedule',
      'add',
      'nightly',
      'probe/echo',
      '--cron',
      '0 3 * * *',
      '--tz',
      'Europe/Berlin',
      ...redis,
    ]);
    assert.equal(add.exitCode, 0, add.stderr);
    assert.match(add.stdout, /^nightly {2}probe\/echo {2}cron "0 3 \* \* \*" \(Europe\/Berlin\), next \d{4}-/);
    const ls = await cli(['schedule', 'ls', '--json', ...redis]);
    const listed = JSON.parse(ls.stdout) as Array<{ name: string; cron: string; tz: string; next: number }>;
    assert.deepEqual(
      listed.map(({ name, cron, tz }) => ({ name, cron, tz })),
      [{ name: 'nightly', cron: '0 3 * * *', tz: 'Europe/Berlin' }],
    );
    assert.ok(listed[0]!.next > Date.now());
    assert.equal((await cli(['schedule', 'rm', 'nightly', ...redis])).exitCode, 0);
    const again = await cli(['schedule', 'rm', 'nightly', ...redis]);
    assert.equal(again.exitCode, 1);
    assert.match(again.stderr, /no schedule named nightly/);
  });
});

describe('schedule firings', () => {
  it('derive the TaskInstance id from the firing, so a firing run twice makes one TaskInstance', () => {
    const a = firingInstanceId({ queueName: 'schedules', id: 'repeat:tick:1000' });
    assert.equal(a, firingInstanceId({ queueName: 'schedules', id: 'repeat:tick:1000' }));
    assert.notEqual(a, firingInstanceId({ queueName: 'schedules', id: 'repeat:tick:2000' }));
    assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
