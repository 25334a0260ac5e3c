import assert from 'node:assert/strict';

import type { QueueEvents } from 'bullmq';

import type { Tydra } from '../../../lib/client/client.js';
import type { TaskProgress } from '../../../lib/index.js';
import { makePackage, startCluster, testClient, waitFor } from '../../helpers.js';

/** A simple task that reports its progress ten times, rising to 100, then returns. */
const STEPS_TASK = `export default async (input, ctx) => {
  for (let i = 1; i <= 10; i += 1) {
    ctx.progress(i * 10);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return 'done';
};
`;

async function deployedSteps(): Promise<Tydra> {
  const tydra = testClient();
  const manifest = { name: 'steps', tasks: { count: { module: 'count.mjs' } } };
  await tydra.deploy(
    await makePackage({
      'tydra.json': JSON.stringify(manifest),
      'count.mjs': STEPS_TASK,
      'package.json': '{ "type": "module" }',
    }),
  );
  return tydra;
}

/**
 * Listeners on the client's shared QueueEvents (a private field: what this test checks is that
 * a run leaves none behind there).
 */
function sharedListeners(tydra: Tydra): number {
  const events = (tydra as unknown as { queueEvents: QueueEvents | undefined }).queueEvents;
  return events === undefined
    ? 0
    : ['progress', 'completed', 'failed', 'removed'].reduce((sum, name) => sum + events.listenerCount(name), 0);
}

describe('TaskRun progress events (@integration)', function () {
  this.timeout(30_000);

  it('delivers a simple task’s progress live, rising to 100, and lets go of the shared events when it ends', async () => {
    const tydra = await deployedSteps();
    const baseline = sharedListeners(tydra);
    // Submitted before any node exists, so the run listens before the task can report anything.
    const run = await tydra.submit('steps/count');
    const seen: TaskProgress[] = [];
    run.on('progress', (progress) => seen.push(progress));
    await startCluster(1);
    assert.equal(await run.result(), 'done');
    await waitFor('the last progress event', () => (seen.at(-1)?.percent === 100 ? true : undefined));
    const percents = seen.map((p) => p.percent);
    assert.ok(percents.length >= 2, `several events must arrive, got ${percents.join(', ')}`);
    assert.deepEqual(
      percents,
      [...percents].sort((a, b) => a - b),
      `progress must rise: ${percents.join(', ')}`,
    );
    assert.deepEqual(seen.at(-1), { percent: 100, value: 100 });
    await waitFor('the run to stop listening', () => (sharedListeners(tydra) === baseline ? true : undefined));
    assert.deepEqual((await run.status()).progress, { percent: 100, value: 100 });
  });

  it('gives a listener added after the end the last progress once, and keeps no listener', async () => {
    await startCluster(1);
    const tydra = await deployedSteps();
    const run = await tydra.submit('steps/count');
    await run.result();
    const baseline = sharedListeners(tydra);
    const late = tydra.run(run.id);
    const first = new Promise<TaskProgress>((resolve) => late.once('progress', resolve));
    assert.deepEqual(await first, { percent: 100, value: 100 });
    await waitFor('the late run to stop listening', () => (sharedListeners(tydra) === baseline ? true : undefined));
  });

  it('sends the error of a throwing progress listener to the run’s error listeners; results still arrive', async () => {
    const tydra = await deployedSteps();
    const run = await tydra.submit('steps/count');
    const errors: Error[] = [];
    run.on('progress', () => {
      throw new Error('a bug in a progress listener');
    });
    run.on('error', (error) => errors.push(error));
    await startCluster(1);
    assert.equal(await run.result(), 'done');
    await waitFor('the listener errors', () => (errors.length > 0 ? true : undefined));
    assert.ok(errors.every((error) => error.message === 'a bug in a progress listener'));
    const other = await tydra.submit('steps/count');
    assert.equal(await other.result(), 'done', 'the shared QueueEvents must keep working');
  });

  it('close() removes the run’s listeners and its listeners on the shared events', async () => {
    const tydra = await deployedSteps();
    const run = await tydra.submit('steps/count');
    const baseline = sharedListeners(tydra);
    run.on('progress', () => undefined);
    await waitFor('the run to listen', () => (sharedListeners(tydra) > baseline ? true : undefined));
    run.close();
    assert.equal(run.listenerCount('progress'), 0);
    assert.equal(sharedListeners(tydra), baseline);
    await run.cancel();
  });
});
