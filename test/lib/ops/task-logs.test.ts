import assert from 'node:assert/strict';

import { Queue } from 'bullmq';

import { TaskNotFoundError } from '../../../lib/core/errors.js';
import { TaskLogs } from '../../../lib/ops/task-logs.js';
import { TASKS_QUEUE } from '../../../queues/tasks.js';
import { defer, redisUrl, testRedis } from '../../helpers.js';

describe("TaskLogs: a TaskInstance's log lines, followed (@integration)", function () {
  this.timeout(20_000);

  it('yields new lines as they come, also once the log was trimmed, and ends when the job is gone', async () => {
    // A job no master takes: the test writes its log and ends it by hand.
    const queue = new Queue(TASKS_QUEUE, {
      prefix: '{tydra}:bull',
      connection: testRedis({ maxRetriesPerRequest: null }),
    });
    defer(() => queue.close());
    await queue.add('task-instance', {}, { jobId: 'logged' });
    const logs = new TaskLogs({ redis: redisUrl(), pollMs: 20 });
    defer(() => logs.close());
    await queue.addJobLog('logged', 'one');
    await queue.addJobLog('logged', 'two');
    const lines = logs.lines('logged', { follow: true });
    assert.deepEqual([(await lines.next()).value, (await lines.next()).value], ['one', 'two']);
    // Kept to the last 3 lines: 'one' and 'two' go, and the next index points past the kept list.
    for (const line of ['three', 'four', 'five']) {
      await queue.addJobLog('logged', line, 3);
    }
    const seen: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      seen.push(String((await lines.next()).value));
    }
    assert.deepEqual(seen, ['three', 'four', 'five']);
    // Gone (as a TaskInstance cancelled before it started is): the follow ends.
    await queue.remove('logged');
    const rest: string[] = [];
    for await (const line of lines) {
      rest.push(line);
    }
    assert.deepEqual(rest, []);
  });

  it('throws TaskNotFoundError for an unknown id', async () => {
    const logs = new TaskLogs({ redis: redisUrl() });
    defer(() => logs.close());
    await assert.rejects(logs.lines('nope').next(), TaskNotFoundError);
  });
});
