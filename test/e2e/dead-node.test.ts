import assert from 'node:assert/strict';

import { execa } from 'execa';

import type { Tydra } from '../../lib/client/client.js';
import { TaskFailedError } from '../../lib/core/errors.js';
import {
  CLI,
  copyFixture,
  defer,
  redisUrl,
  removeNodeCgroups,
  startCluster,
  startNode,
  tempDir,
  testClient,
  waitFor,
} from '../helpers.js';
import { pidsWithEnv } from '../processes.js';

const FAST_MASTER = { sweepIntervalMs: 200 };

async function probeClient(): Promise<Tydra> {
  const tydra = testClient();
  await tydra.deploy(await copyFixture('probe'));
  return tydra;
}

/** A node in its own process (so it can be SIGKILLed), with a fast heartbeat and a short lock. */
async function startDoomedNode(tydra: Tydra, id: string) {
  const node = execa(
    process.execPath,
    [
      CLI,
      'node',
      '--id',
      id,
      '--concurrency',
      '1',
      '--heartbeat',
      '200',
      '--lock-duration',
      '1000',
      '--redis',
      redisUrl(),
      '--cache-dir',
      await tempDir(),
    ],
    {
      reject: false,
      extendEnv: false,
      env: { PATH: process.env.PATH ?? '' },
    },
  );
  defer(async () => {
    node.kill('SIGKILL');
    await node;
    await removeNodeCgroups(id, node.pid);
  });
  await waitFor(
    `node ${id} to register`,
    async () => ((await tydra.nodes()).some((n) => n.id === id && n.alive) ? true : undefined),
    20_000,
  );
  // Wrapped: an execa subprocess is a promise, and returning it bare would await its exit.
  return { node };
}

describe('TaskInstances on a node that dies (@integration)', function () {
  this.timeout(60_000);

  it('moves running and waiting TaskInstances of a SIGKILLed node to a live node, where they finish', async () => {
    await startCluster(0, {}, FAST_MASTER);
    const tydra = await probeClient();
    const doomed = `doomed-${process.pid}`;
    const { node } = await startDoomedNode(tydra, doomed);
    // Long enough that the first is still running when its node is killed, even on a loaded machine.
    const runs = await Promise.all(['a', 'b', 'c'].map((tag) => tydra.submit('probe/nap', { ms: 4000, tag })));
    const first = runs[0];
    assert.ok(first);
    await waitFor(
      'the first TaskInstance to run on the doomed node',
      async () => ((await pidsWithEnv('TYDRA_INSTANCE_ID', first.id)).length > 0 ? true : undefined),
      20_000,
    );
    assert.deepEqual(
      new Set((await Promise.all(runs.map((run) => run.status()))).map((s) => s.nodeId)),
      new Set([doomed]),
    );

    node.kill('SIGKILL');
    await node;
    await waitFor(
      'the sandbox of the killed node to die',
      async () => ((await pidsWithEnv('TYDRA_INSTANCE_ID', first.id)).length === 0 ? true : undefined),
      5000,
    );
    const rescuer = await startNode();

    const results = await Promise.all(runs.map((run) => run.result({ timeoutMs: 30_000 })));
    assert.deepEqual(results, [{ rested: 'a' }, { rested: 'b' }, { rested: 'c' }]);
    const statuses = await Promise.all(runs.map((run) => run.status()));
    assert.deepEqual(
      statuses.map((s) => s.nodeId),
      [rescuer.id, rescuer.id, rescuer.id],
    );
    assert.ok(
      statuses[0]?.logs.includes(`node ${doomed} is gone; TaskInstance taken back for a new dispatch`),
      statuses[0]?.logs.join(' | '),
    );
  });

  it('fails a TaskInstance for good once more nodes died holding it than maxReroutes allows', async () => {
    await startCluster(0, {}, { ...FAST_MASTER, maxReroutes: 0 });
    const tydra = await probeClient();
    const doomed = `doomed-${process.pid}-b`;
    const { node } = await startDoomedNode(tydra, doomed);
    const run = await tydra.submit('probe/nap', { ms: 60_000 });
    await waitFor(
      'the TaskInstance to run',
      async () => ((await pidsWithEnv('TYDRA_INSTANCE_ID', run.id)).length > 0 ? true : undefined),
      20_000,
    );
    node.kill('SIGKILL');
    await node;
    const error = await run.result({ timeoutMs: 30_000 }).then(
      () => assert.fail('expected the TaskInstance to fail'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof TaskFailedError);
    assert.equal(
      error.message,
      `Expected the TaskInstance to finish on a live node, but 1 node(s) were lost while holding it (${doomed}); giving up`,
    );
  });

  it('hands back what a SIGKILLed node had not started without counting it toward maxReroutes', async () => {
    await startCluster(0, {}, { ...FAST_MASTER, maxReroutes: 0 });
    const tydra = await probeClient();
    const doomed = `doomed-${process.pid}-c`;
    const { node } = await startDoomedNode(tydra, doomed);
    const running = await tydra.submit('probe/nap', { ms: 60_000 });
    await waitFor(
      'the first TaskInstance to run',
      async () => ((await pidsWithEnv('TYDRA_INSTANCE_ID', running.id)).length > 0 ? true : undefined),
      20_000,
    );
    // Concurrency 1: these wait in the doomed node's queue and never start there.
    const waiting = await Promise.all(['p', 'q'].map((tag) => tydra.submit('probe/nap', { ms: 100, tag })));
    await waitFor('the waiting ones to be dispatched to the doomed node', async () =>
      (await Promise.all(waiting.map((r) => r.status()))).every((s) => s.nodeId === doomed) ? true : undefined,
    );
    node.kill('SIGKILL');
    await node;
    const rescuer = await startNode();

    assert.deepEqual(await Promise.all(waiting.map((run) => run.result({ timeoutMs: 30_000 }))), [
      { rested: 'p' },
      { rested: 'q' },
    ]);
    for (const run of waiting) {
      const status = await run.status();
      assert.equal(status.nodeId, rescuer.id);
      assert.ok(
        status.logs.includes(
          `node ${doomed} is gone; TaskInstance taken back for a new dispatch (it had not started there)`,
        ),
        status.logs.join(' | '),
      );
    }
    const error = await running.result({ timeoutMs: 30_000 }).then(
      () => assert.fail('expected the TaskInstance that was running to fail'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof TaskFailedError);
    assert.equal(
      error.message,
      `Expected the TaskInstance to finish on a live node, but 1 node(s) were lost while holding it (${doomed}); giving up`,
    );
  });

  it('hands back the waiting TaskInstances of gracefully closed nodes without counting them', async () => {
    await startCluster(0, {}, { ...FAST_MASTER, maxReroutes: 0 });
    const tydra = await probeClient();
    const runs = await Promise.all(['x', 'y', 'z', 'w'].map((tag) => tydra.submit('probe/nap', { ms: 300, tag })));
    // Two graceful restarts of the only node (concurrency 1): each hands back what it had not started.
    for (let restart = 0; restart < 2; restart += 1) {
      const leaving = await startNode({ concurrency: 1 });
      await waitFor('a TaskInstance to be dispatched to the leaving node', async () =>
        (await Promise.all(runs.map((r) => r.status()))).some((s) => s.nodeId === leaving.id) ? true : undefined,
      );
      await leaving.close();
    }
    await startNode();
    assert.deepEqual(await Promise.all(runs.map((run) => run.result({ timeoutMs: 30_000 }))), [
      { rested: 'x' },
      { rested: 'y' },
      { rested: 'z' },
      { rested: 'w' },
    ]);
  });

  it('moves the waiting TaskInstances of a cleanly stopped node to a live node', async () => {
    await startCluster(0, {}, FAST_MASTER);
    const tydra = await probeClient();
    const leaving = await startNode({ concurrency: 1 });
    const runs = await Promise.all(['x', 'y', 'z'].map((tag) => tydra.submit('probe/nap', { ms: 300, tag })));
    await waitFor('all three to be dispatched to the leaving node', async () =>
      (await Promise.all(runs.map((r) => r.status()))).every((s) => s.nodeId === leaving.id) ? true : undefined,
    );
    await leaving.close();
    const stayer = await startNode();
    assert.deepEqual(await Promise.all(runs.map((run) => run.result({ timeoutMs: 30_000 }))), [
      { rested: 'x' },
      { rested: 'y' },
      { rested: 'z' },
    ]);
    const nodesUsed = (await Promise.all(runs.map((run) => run.status()))).map((s) => s.nodeId);
    assert.ok(
      nodesUsed.includes(stayer.id),
      `expected some TaskInstances to move to ${stayer.id}, got ${nodesUsed.join(', ')}`,
    );
  });
});
