/**
 * Processes that try to outlive their TaskInstance: setsid and double-fork daemons, nohup, and
 * tasks that ignore SIGTERM. Whatever they do, nothing of the task is left once it has ended.
 */
import assert from 'node:assert/strict';

import { arena, expectFailure, expectResult } from './harness.js';

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
});
