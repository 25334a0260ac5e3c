/**
 * `startAfter`: a module's sandbox boots while the node checks for a cancel asked before the
 * TaskInstance reached it (a pooled one is claimed meanwhile), and its task starts only once that
 * check settled, if not aborted.
 */
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { TaskFailedError, TaskTimeoutError } from '../../../lib/core/errors.js';
import { DEFAULT_TASK_LIMITS } from '../../../lib/core/limits.js';
import { checkBwrap } from '../../../sandbox/launcher/bwrap.js';
import { detectCgroups, removeCgroupParent } from '../../../sandbox/launcher/cgroup/support.js';
import { findPrlimit } from '../../../sandbox/launcher/rlimits.js';
import { runTask, type RunTaskOptions } from '../../../sandbox/launcher/run-task.js';
import { installRuntime } from '../../../sandbox/launcher/runtime-dir.js';
import { WarmSandbox } from '../../../sandbox/launcher/warm-sandbox.js';
import { defer, tempDir, waitFor } from '../../helpers.js';
import { pidsWithArg, pidsWithEnv } from '../../processes.js';

describe('a sandbox whose start waits for a check (@integration)', function () {
  this.timeout(60_000);

  let base: Omit<RunTaskOptions, 'instanceId' | 'onLog' | 'startAfter' | 'signal'>;

  beforeEach(async () => {
    const root = await tempDir();
    await chmod(root, 0o755);
    await writeFile(join(root, 'ran.mjs'), "export default (input, ctx) => { ctx.log('task ran'); return 7; };\n", {
      mode: 0o644,
    });
    await writeFile(join(root, 'hang.mjs'), 'export default () => new Promise(() => setInterval(() => {}, 1000));\n', {
      mode: 0o644,
    });
    const cgroups = await detectCgroups({ parentName: `tydra-test-start-after-${process.pid}` });
    defer(() => removeCgroupParent(cgroups));
    base = {
      packageDir: root,
      task: { module: 'ran.mjs' },
      input: null,
      attempt: 1,
      limits: DEFAULT_TASK_LIMITS,
      bwrap: await checkBwrap(),
      prlimit: findPrlimit(),
      cgroups,
      sandboxUser: process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined,
      runtimeDir: await installRuntime(root),
    };
  });

  /** Starts a run held by `startAfter` and waits until its sandbox's Node process is up. */
  async function heldRun(instanceId: string, signal?: AbortSignal) {
    let release = (): void => undefined;
    const startAfter = new Promise<void>((resolve) => (release = resolve));
    const lines: string[] = [];
    const result = runTask({ ...base, instanceId, startAfter, signal, onLog: (line) => lines.push(line) }).then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    await waitFor(`the sandbox of ${instanceId} to boot`, async () =>
      (await pidsWithEnv('TYDRA_INSTANCE_ID', instanceId)).length > 0 ? true : undefined,
    );
    return { release, lines, result };
  }

  it('boots the sandbox but runs the task only once the check settled', async () => {
    const instanceId = `start-after-${process.pid}-runs`;
    const held = await heldRun(instanceId);
    // Booted, held: a runner that does not wait for `start` would have run the task long ago, but
    // nothing says when, so the check is also that the task ran exactly once, after the release.
    assert.deepEqual(held.lines, []);
    held.release();
    assert.deepEqual(await held.result, { value: 7 });
    assert.deepEqual(held.lines, ['task ran']);
  });

  it('never runs the task when the check aborted the run, and leaves no process', async () => {
    const instanceId = `start-after-${process.pid}-cancelled`;
    const controller = new AbortController();
    const held = await heldRun(instanceId, controller.signal);
    controller.abort('cancelled by request');
    held.release();
    const { error } = (await held.result) as { error?: unknown };
    assert.ok(error instanceof TaskFailedError, `expected the run to end cancelled, got ${String(error)}`);
    assert.equal(error.message, 'cancelled');
    assert.deepEqual(held.lines, []);
    await waitFor(`no process of ${instanceId}`, async () =>
      (await pidsWithEnv('TYDRA_INSTANCE_ID', instanceId)).length === 0 && (await pidsWithArg(instanceId)).length === 0
        ? true
        : undefined,
    );
  });

  it('does not spawn a command before the check settled', async () => {
    const instanceId = `start-after-${process.pid}-command`;
    let release = (): void => undefined;
    const startAfter = new Promise<void>((resolve) => (release = resolve));
    const lines: string[] = [];
    const result = runTask({
      ...base,
      task: { command: ['/bin/sh', '-c', 'echo started >&2; echo 5'] },
      instanceId,
      startAfter,
      onLog: (line) => lines.push(line),
    });
    // A negative check, so it waits a while rather than for an event: a command spawned early
    // would have printed by now. It cannot fail on a slow machine, only miss the fault there.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(lines, []);
    assert.deepEqual(await pidsWithArg(instanceId), []);
    release();
    assert.equal(await result, 5);
    assert.deepEqual(lines, ['[stderr] started']);
  });

  it('claims a pooled sandbox at once but sends it `start` only once the check settled', async () => {
    for (const cancelled of [false, true]) {
      const warm = await WarmSandbox.start({ ...base, module: 'ran.mjs' });
      assert.equal(await warm.ready, true);
      let release = (): void => undefined;
      const startAfter = new Promise<void>((resolve) => (release = resolve));
      const controller = new AbortController();
      const lines: string[] = [];
      const claimed = warm
        .claim({
          instanceId: `start-after-${process.pid}-pooled`,
          attempt: 1,
          input: null,
          signal: controller.signal,
          startAfter,
          onLog: (line) => lines.push(line),
        })
        .then(
          (value) => ({ value }),
          (error: unknown) => ({ error }),
        );
      assert.equal(warm.state, 'claimed');
      if (cancelled) {
        controller.abort('cancelled by request');
      } else {
        // A negative check, as for the command above: a `start` sent early would have run it by now.
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.deepEqual(lines, []);
      }
      release();
      const ended = await claimed;
      if (cancelled) {
        assert.ok('error' in ended && ended.error instanceof TaskFailedError, JSON.stringify(ended));
        assert.equal(ended.error.message, 'cancelled');
        assert.deepEqual(lines, []);
      } else {
        assert.deepEqual(ended, { value: 7 });
        assert.deepEqual(lines, ['task ran']);
      }
    }
  });

  // The check is a Redis round trip: while Redis restarts it may take longer than the task may run.
  it("times the task from its start: a check slower than the timeout uses none of the task's time", async () => {
    // The check takes well over the timeout; once it answered, the task needs a few milliseconds.
    const limits = { ...DEFAULT_TASK_LIMITS, timeoutMs: 1000 };
    const slowCheck = () => new Promise<void>((resolve) => setTimeout(resolve, 2500));
    const instanceId = `start-after-${process.pid}-slow`;
    assert.equal(await runTask({ ...base, limits, instanceId, startAfter: slowCheck() }), 7);
    const warm = await WarmSandbox.start({ ...base, limits, module: 'ran.mjs' });
    assert.equal(await warm.ready, true);
    assert.equal(await warm.claim({ instanceId, attempt: 1, input: null, startAfter: slowCheck() }), 7);
    // And the timeout still holds once the task started.
    const hung = await runTask({
      ...base,
      task: { module: 'hang.mjs' },
      limits,
      instanceId,
      startAfter: slowCheck(),
    }).then(
      () => 'returned',
      (error: unknown) => error,
    );
    assert.ok(hung instanceof TaskTimeoutError, String(hung));
    const hungWarm = await WarmSandbox.start({ ...base, limits, module: 'hang.mjs' });
    assert.equal(await hungWarm.ready, true);
    const claimed = await hungWarm.claim({ instanceId, attempt: 1, input: null, startAfter: Promise.resolve() }).then(
      () => 'returned',
      (error: unknown) => error,
    );
    assert.ok(claimed instanceof TaskTimeoutError, String(claimed));
  });
});
