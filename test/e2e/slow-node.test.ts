import assert from 'node:assert/strict';

import { copyFixture, startNode, testClient, waitFor } from '../helpers.js';
import { pidsWithEnv } from '../processes.js';
import { startMasterProcess } from './master-process.js';

const HEARTBEAT_MS = 200;

/** Blocks this process's event loop (the node's heartbeats and lock renewals with it). */
function blockEventLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy: a node whose event loop is stuck, or whose machine is saturated
  }
}

describe('a node that is slow but alive (@integration)', function () {
  this.timeout(60_000);

  it('is not declared dead: nothing is taken back or run twice while its event loop is blocked', async () => {
    // In its own process, so it keeps sweeping while this process's event loop is blocked.
    await startMasterProcess(['--sweep-interval', '100']);
    const node = await startNode({ concurrency: 2, heartbeatMs: HEARTBEAT_MS, lockDurationMs: 5000 });
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const runs = await Promise.all(['a', 'b', 'c', 'd'].map((tag) => tydra.submit('probe/nap', { ms: 2500, tag })));
    // Two run in sandboxes, two wait in the node's queue.
    await waitFor(
      'two TaskInstances to run',
      async () => {
        const running = await Promise.all(
          runs.map(async (run) => (await pidsWithEnv('TYDRA_INSTANCE_ID', run.id)).length),
        );
        return running.filter((pids) => pids > 0).length === 2 ? true : undefined;
      },
      20_000,
    );

    // Ten heartbeat periods without a beat, well under the lock duration.
    blockEventLoop(10 * HEARTBEAT_MS);

    assert.deepEqual(await Promise.all(runs.map((run) => run.result({ timeoutMs: 30_000 }))), [
      { rested: 'a' },
      { rested: 'b' },
      { rested: 'c' },
      { rested: 'd' },
    ]);
    for (const run of runs) {
      const status = await run.status();
      assert.equal(status.nodeId, node.id);
      assert.deepEqual(
        status.logs.filter((line) => line.startsWith('dispatched to node') || line.includes('taken back')),
        [`dispatched to node ${node.id}`],
        status.logs.join(' | '),
      );
      assert.equal(status.logs.filter((line) => line.startsWith('running probe')).length, 1, status.logs.join(' | '));
    }
  });
});
