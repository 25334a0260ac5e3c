import assert from 'node:assert/strict';

import { Job, Queue } from 'bullmq';

import { TASKS_QUEUE, type TaskInstanceData } from '../../queues/tasks.js';
import { copyFixture, defer, makePackage, redisUrl, startCluster, testClient, testRedis } from '../helpers.js';
import { tydra } from './run-cli.js';

describe('the tydra CLI: progress and parallel flags (@integration)', function () {
  this.timeout(60_000);

  it('status shows the progress in words, and --json the object', async () => {
    await startCluster(1);
    const client = testClient();
    await client.deploy(await copyFixture('probe'));
    const run = await client.submit('probe/echo', 'p');
    await run.result();
    const text = await tydra(['status', run.id, '--redis', redisUrl()]);
    assert.equal(text.exitCode, 0, text.stderr);
    assert.ok(text.stdout.split('\n').includes('progress: 42%'), text.stdout);
    const json = await tydra(['status', run.id, '--json', '--redis', redisUrl()]);
    assert.deepEqual(JSON.parse(json.stdout).progress, { percent: 42, value: 42 });
  });

  it('run draws no progress bar when stderr is not a terminal', async () => {
    await startCluster(1);
    await testClient().deploy(await copyFixture('probe'));
    const ran = await tydra(['run', 'probe/echo', '--input', '"x"', '--redis', redisUrl()]);
    assert.equal(ran.exitCode, 0, ran.stderr);
    assert.equal(ran.stderr, '');
    assert.equal(JSON.parse(ran.stdout).input, 'x');
  });

  it('run --max-failed-workunits reaches a parallel TaskInstance, and is refused for a simple task', async () => {
    const manifest = { name: 'par', tasks: { p: { kind: 'parallel', module: 'p.js' }, s: { module: 'p.js' } } };
    const client = testClient();
    await client.deploy(await makePackage({ 'tydra.json': JSON.stringify(manifest), 'p.js': 'x' }));
    const detached = await tydra(['run', 'par/p', '--max-failed-workunits', '4', '--detach', '--redis', redisUrl()]);
    assert.equal(detached.exitCode, 0, detached.stderr);
    const queue = new Queue<TaskInstanceData>(TASKS_QUEUE, {
      prefix: '{tydra}:bull',
      connection: testRedis({ maxRetriesPerRequest: null }),
    });
    defer(() => queue.close());
    const job = await Job.fromId<TaskInstanceData>(queue, detached.stdout.trim());
    assert.deepEqual([job?.data.kind, job?.data.maxFailedWorkunits], ['parallel', 4]);
    const refused = await tydra(['run', 'par/s', '--max-failed-workunits', '1', '--redis', redisUrl()]);
    assert.equal(refused.exitCode, 1);
    assert.equal(
      refused.stderr,
      'tydra: Expected the `maxFailedWorkunits` submit option only for a parallel task, got it for task s, a simple task',
    );
  });
});
