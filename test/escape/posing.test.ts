/**
 * A task posing as a failure of the node: it prints what bwrap prints when it cannot set a
 * sandbox up, and exits. A real set-up failure is the node's (tried again without using the
 * task's attempts, the node's log blamed); a task's own line must be judged as the task's.
 */
import assert from 'node:assert/strict';

import { TaskFailedError } from '../../lib/core/errors.js';
import { arena, expectNothingLeft, LIMITS, runsOf } from './harness.js';

describe('escape suite: a task posing as the node (@integration)', function () {
  this.timeout(60_000);

  it('a JavaScript task that prints a bwrap set-up error and exits fails as itself, run once', async () => {
    const a = await arena();
    const run = await a.tydra.submit('attacks/fake-setup-failure', null, { limits: LIMITS, attempts: 1 });
    await assert.rejects(run.result(), (error: unknown) => {
      assert.ok(error instanceof TaskFailedError, `expected a TaskFailedError, got ${String(error)}`);
      assert.equal(
        error.message,
        "task process exited with code 1 before returning a result: bwrap: Can't mount tmpfs on /newroot/tmp: No space left on device",
      );
      return true;
    });
    const status = await run.status();
    assert.equal(status.state, 'failed');
    assert.equal(runsOf(status), 1, `one run, no retry as the node's failure; logs: ${status.logs.join(' | ')}`);
    assert.ok(!status.logs.some((line) => line.startsWith('infrastructure error')), status.logs.join(' | '));
    await expectNothingLeft(a, run);
  });
});
