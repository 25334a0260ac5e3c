import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { TaskFailedError } from '../../../lib/core/errors.js';
import { DEFAULT_TASK_LIMITS } from '../../../lib/core/limits.js';
import { detectCgroups, removeCgroupParent } from '../../../sandbox/launcher/cgroup/support.js';
import { checkBwrap } from '../../../sandbox/launcher/bwrap.js';
import { findPrlimit } from '../../../sandbox/launcher/rlimits.js';
import { runTask } from '../../../sandbox/launcher/run-task.js';
import { installRuntime } from '../../../sandbox/launcher/runtime-dir.js';
import { defer, tempDir, waitFor } from '../../helpers.js';
import { pidsWithArg, pidsWithEnv } from '../../processes.js';

describe('cancelling a sandbox while it starts (@integration)', function () {
  this.timeout(60_000);

  // bwrap arms --die-with-parent in the sandbox only after it is let go (--block-fd): a sandbox
  // whose bwrap is killed while it waits must be killed by the node, or it runs on unsupervised.
  it('ends as cancelled, with no process left, whenever the abort comes', async () => {
    const root = await tempDir();
    await chmod(root, 0o755);
    await writeFile(join(root, 'hang.mjs'), 'export default () => new Promise(() => setInterval(() => {}, 1000));\n', {
      mode: 0o644,
    });
    const runtimeDir = await installRuntime(root);
    const cgroups = await detectCgroups({ parentName: `tydra-test-cancel-${process.pid}` });
    defer(() => removeCgroupParent(cgroups));
    const bwrap = await checkBwrap();
    const sandboxUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined;
    for (const delayMs of [0, 1, 3, 6, 10, 15, 25, 50, 150]) {
      const instanceId = `cancel-start-${process.pid}-${delayMs}`;
      const controller = new AbortController();
      setTimeout(() => controller.abort('cancelled by request'), delayMs);
      const outcome = await runTask({
        packageDir: root,
        task: { module: 'hang.mjs' },
        input: null,
        instanceId,
        attempt: 1,
        // Far beyond the test's own timeout: only the cancel can end it.
        limits: { ...DEFAULT_TASK_LIMITS, timeoutMs: 600_000 },
        bwrap,
        prlimit: findPrlimit(),
        cgroups,
        sandboxUser,
        runtimeDir,
        signal: controller.signal,
      }).then(
        () => 'returned',
        (error: unknown) => error,
      );
      assert.ok(outcome instanceof TaskFailedError, `abort after ${delayMs} ms: ${String(outcome)}`);
      assert.equal(outcome.message, 'cancelled');
      await waitFor(
        `no process of ${instanceId}`,
        async () =>
          (await pidsWithEnv('TYDRA_INSTANCE_ID', instanceId)).length === 0 &&
          (await pidsWithArg(instanceId)).length === 0
            ? true
            : undefined,
        10_000,
      );
    }
  });
});
