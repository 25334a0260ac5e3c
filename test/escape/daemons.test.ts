/**
 * Processes that try to outlive their TaskInstance: setsid and double-fork daemons, nohup, tasks
 * that ignore SIGTERM, and runners kept from exiting once their TaskInstance is settled. Whatever
 * they do, nothing of the task is left once it has ended.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { waitFor } from '../helpers.js';
import { pidsWithArg } from '../processes.js';
import { type Arena, arena, expectFailure, expectResult } from './harness.js';

/**
 * Runs `task` (it starts a `sleep` named by a marker, settles, and keeps its sandbox alive), and
 * waits until nothing of its sandbox is left. Its timeout is long: the sandbox must end because it
 * is settled, not because it timed out.
 */
async function settledAndGone(a: Arena, task: string, expected: unknown): Promise<void> {
  const marker = `tydra-marker-${randomUUID()}`;
  const run = await a.attack(task, { marker }, { timeoutMs: 600_000 });
  // Not the node's cgroups: the pool has one for its next sandbox.
  assert.equal(await expectResult(a, run, { cgroups: false }), expected);
  await waitFor(`the sandbox of ${run.id} (its sleep ${marker}) to be gone`, async () =>
    (await pidsWithArg(marker)).length === 0 ? true : undefined,
  );
}

describe('escape suite: daemons (@integration)', function () {
  this.timeout(30_000);

  it('a setsid double-fork daemon does not outlive its task, which completes normally', async () => {
    const a = await arena();
    // The task checks that its daemon is alive, in its own session, when it returns.
    assert.deepEqual(await expectResult(a, await a.attack('daemon-double-fork')), {
      daemonAlive: true,
      newSession: true,
    });
  });

  it('nohup and setsid sleepers in the background do not outlive their shell task', async () => {
    const a = await arena();
    assert.deepEqual(await expectResult(a, await a.attack('daemon-nohup')), { daemonsAlive: 2 });
  });

  it('a shell task that ignores SIGTERM still ends at its timeout, with its children', async () => {
    const a = await arena();
    await expectFailure(a, await a.attack('ignore-sigterm-sh', null, { timeoutMs: 1000 }), 'timed out after 1 s');
  });

  it('a JavaScript task that ignores SIGTERM still ends at its timeout', async () => {
    const a = await arena();
    await expectFailure(a, await a.attack('ignore-sigterm-js', null, { timeoutMs: 1000 }), 'timed out after 1 s');
  });

  for (const [task, expected, what] of [
    ['no-exit', 'returned', 'returns but keeps its runner from exiting'],
    ['forge-final', 'forged', 'writes a final message of its own and runs on'],
  ] as const) {
    it(`a JavaScript task that ${what} is stopped once settled, cold and pooled`, async () => {
      const a = await arena({ warmMax: 1 });
      await settledAndGone(a, task, expected);
      await waitFor('a pooled sandbox for the task', () => (a.node.warmPoolStats.ready >= 1 ? true : undefined));
      const hits = a.node.warmPoolStats.hits;
      await settledAndGone(a, task, expected);
      assert.equal(a.node.warmPoolStats.hits, hits + 1, 'the second run must have claimed the pooled sandbox');
    });
  }
});
