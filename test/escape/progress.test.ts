/**
 * `ctx.progress` floods (the `progress-flood` attack), each a real TaskInstance through master and
 * node: a value over its cap ends the run with the limit named; a task reporting per item of a
 * long loop, far past the output limit in total, completes, and the last value it reported is the
 * one a client sees; a task writing progress messages on fd 3 itself, bypassing the runner, is held
 * back by the node (it blocks on its own writes) and costs Redis a few writes.
 */
import assert from 'node:assert/strict';

import type { TaskProgress } from '../../lib/index.js';
import { nodeQueueName } from '../../queues/node.js';
import { testRedis, waitFor } from '../helpers.js';
import { arena, type Arena, expectFailure, expectResult, MiB } from './harness.js';

/** The `data` of each BullMQ progress event of job `jobId` in queue `queue`'s events stream, oldest first. */
async function progressEvents(queue: string, jobId: string): Promise<unknown[]> {
  const entries = await testRedis().xrange(`{tydra}:bull:${queue}:events`, '-', '+');
  const field = (fields: string[], name: string): string | undefined => fields[fields.indexOf(name) + 1];
  return entries
    .map(([, fields]) => fields)
    .filter((fields) => field(fields, 'event') === 'progress' && field(fields, 'jobId') === jobId)
    .map((fields) => JSON.parse(field(fields, 'data') ?? 'null') as unknown);
}

/**
 * The progress events of run `id` in the tasks queue's and the node queue's events streams, each
 * asserted to be at least one and at most `most` (a value written is an entry in both, kept until
 * the stream is trimmed at about 10,000 entries).
 */
async function boundedProgressEvents(
  a: Arena,
  id: string,
  sent: number,
  most: number,
): Promise<{ onTasks: unknown[]; onNode: unknown[] }> {
  const onTasks = await progressEvents('tasks', id);
  const onNode = await progressEvents(nodeQueueName(a.node.id), id);
  for (const [where, events] of [
    ['tasks', onTasks],
    ['node', onNode],
  ] as const) {
    assert.ok(events.length >= 1 && events.length <= most, `${events.length} progress events on ${where} for ${sent}`);
  }
  return { onTasks, onNode };
}

describe('escape suite: ctx.progress floods (@integration)', function () {
  this.timeout(30_000);

  it('one progress value over 64 KiB fails the task with the progress limit, naming its size', async () => {
    const a = await arena();
    const run = await a.attack('progress-flood', { size: MiB, count: 1 }, { outputBytes: 64 * MiB });
    const status = await expectFailure(a, run, 'output limit exceeded (64 KiB in one progress value, got 1 MiB)');
    assert.equal(status.progress, undefined, 'the value refused never reached Redis');
  });

  it('a task reporting in a tight loop, far past the output limit in total, completes with its last value seen', async () => {
    const a = await arena();
    // 20,000 values of about 110 bytes as JSON: 2.1 MiB, twice the default 1 MiB output limit,
    // which counts ctx.log lines but not progress values.
    const count = 20_000;
    const run = await a.attack('progress-flood', { size: 100, count }, { outputBytes: MiB });
    const seen: TaskProgress[] = [];
    run.on('progress', (progress) => seen.push(progress));
    assert.deepEqual(await expectResult(a, run), { sent: count });
    const last = { i: count - 1, pad: 'x'.repeat(100) };
    assert.deepEqual((await run.status()).progress, { percent: 0, value: last });
    const isLast = (progress: TaskProgress | undefined): boolean =>
      progress !== undefined && 'value' in progress && (progress.value as { i?: number }).i === last.i;
    await waitFor('the last progress event', () => (isLast(seen.at(-1)) ? true : undefined));
    assert.deepEqual(seen.at(-1), { percent: 0, value: last });
    // The runner sends a few values (one per 100 ms, then the last), and the node writes fewer.
    const { onTasks, onNode } = await boundedProgressEvents(a, run.id, count, 50);
    assert.deepEqual(onTasks.at(-1), { percent: 0, value: last });
    assert.deepEqual(onNode.at(-1), last);
  });

  it('a progress value nested too deep to encode costs the node nothing: the task completes, the next one runs', async () => {
    const a = await arena();
    // 20,000 levels: 40 KB, under the cap; JSON.stringify overflows the stack at about 5,000.
    assert.deepEqual(await expectResult(a, await a.attack('progress-flood', { depth: 20_000 })), { deep: 20_000 });
    assert.deepEqual(await expectResult(a, await a.attack('progress-flood', { count: 3 })), { sent: 3 });
  });

  it('progress messages written on fd 3 itself, bypassing the runner, are held back until the timeout', async () => {
    const a = await arena();
    // 200,000 messages, 9 MiB: read at the node's 20 a second they would take hours; the task
    // blocks on its writes once the pipe is full, and its timeout ends it.
    const count = 200_000;
    const run = await a.attack('progress-flood', { count, direct: true }, { timeoutMs: 2000, outputBytes: MiB });
    await expectFailure(a, run, 'timed out after 2 s');
    await boundedProgressEvents(a, run.id, count, 50);
  });
});
