/**
 * `ctx.progress` floods (the `progress-flood` attack), each a real TaskInstance through master and
 * node: a value over its cap and a flood past the output limit end with the limit named, and a
 * flood under the limits costs Redis a few writes, not one per value, while the last value
 * reported is still the one a client sees.
 */
import assert from 'node:assert/strict';

import type { TaskProgress } from '../../lib/index.js';
import { nodeQueueName } from '../../queues/node.js';
import { testRedis, waitFor } from '../helpers.js';
import { arena, expectFailure, expectResult, MiB } from './harness.js';

/** The `data` of each BullMQ progress event of job `jobId` in queue `queue`'s events stream, oldest first. */
async function progressEvents(queue: string, jobId: string): Promise<unknown[]> {
  const entries = await testRedis().xrange(`{tydra}:bull:${queue}:events`, '-', '+');
  const field = (fields: string[], name: string): string | undefined => fields[fields.indexOf(name) + 1];
  return entries
    .map(([, fields]) => fields)
    .filter((fields) => field(fields, 'event') === 'progress' && field(fields, 'jobId') === jobId)
    .map((fields) => JSON.parse(field(fields, 'data') ?? 'null') as unknown);
}

describe('escape suite: ctx.progress floods (@integration)', function () {
  this.timeout(30_000);

  it('one progress value over 64 KiB fails the task with the progress limit, naming its size', async () => {
    const a = await arena();
    const run = await a.attack('progress-flood', { size: MiB, count: 1 }, { outputBytes: 64 * MiB });
    const status = await expectFailure(a, run, 'output limit exceeded (64 KiB in one progress value, got 1 MiB)');
    assert.equal(status.progress, undefined, 'the value refused never reached Redis');
  });

  it('a flood of small progress values is stopped at the output limit, which ctx.log shares', async () => {
    const a = await arena();
    // 1,000 values of about 1 KiB each: well under the per-value cap, 16 times the 64 KiB budget.
    await expectFailure(
      a,
      await a.attack('progress-flood', { size: 1000, count: 1000 }),
      'output limit exceeded (64 KiB on ctx.progress)',
    );
  });

  it('a flood under the limits costs Redis a few progress writes, and the last value is the one seen', async () => {
    const a = await arena();
    const count = 5000;
    const run = await a.attack('progress-flood', { size: 0, count }, { outputBytes: MiB });
    const seen: TaskProgress[] = [];
    run.on('progress', (progress) => seen.push(progress));
    assert.deepEqual(await expectResult(a, run), { sent: count });
    const last = { i: count - 1, pad: '' };
    assert.deepEqual((await run.status()).progress, { percent: 0, value: last });
    const isLast = (progress: TaskProgress | undefined): boolean =>
      progress !== undefined && 'value' in progress && (progress.value as { i?: number }).i === last.i;
    await waitFor('the last progress event', () => (isLast(seen.at(-1)) ? true : undefined));
    assert.deepEqual(seen.at(-1), { percent: 0, value: last });
    // Each value written would be an entry in both events streams (and, capped at about 10,000
    // entries there, kept until trimmed): the node writes the latest value only, a few times.
    const onTasks = await progressEvents('tasks', run.id);
    const onNode = await progressEvents(nodeQueueName(a.node.id), run.id);
    for (const [where, events] of [
      ['tasks', onTasks],
      ['node', onNode],
    ] as const) {
      assert.ok(
        events.length >= 1 && events.length <= 50,
        `${events.length} progress events on ${where} for ${count} values`,
      );
    }
    assert.deepEqual(onTasks.at(-1), { percent: 0, value: last });
    assert.deepEqual(onNode.at(-1), last);
  });
});
