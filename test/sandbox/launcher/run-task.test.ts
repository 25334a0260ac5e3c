/**
 * runTask against real bwrap: what a JavaScript task writes on its way out, and the typed
 * reasons an abort rejects with.
 */
import assert from 'node:assert/strict';
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { LimitExceededError, TaskCancelledError, TaskFailedError, TaskTimeoutError } from '../../../lib/core/errors.js';
import { type CompiledTaskLimits, DEFAULT_TASK_LIMITS } from '../../../lib/core/limits.js';
import { type CgroupSupport, detectCgroups, removeCgroupParent } from '../../../sandbox/launcher/cgroup/support.js';
import { runTask, type RunTaskOptions } from '../../../sandbox/launcher/run-task.js';
import { WarmSandbox } from '../../../sandbox/launcher/warm-sandbox.js';
import { MAX_EXIT_HOLD_MS } from '../../../sandbox/launcher/exit-hold.js';
import { sandboxBase } from './sandbox-base.js';
import { tempDir, waitFor } from '../../helpers.js';

const MiB = 1024 * 1024;

/** 100 lines of 64 KiB on stdout, then a result: 6.4 MiB written just before the runner exits. */
const LOUD_EXIT = `export default () => {
  for (let i = 0; i < 100; i += 1) console.log(String(i).padStart(3, '0') + 'x'.repeat(64 * 1024 - 3));
  return 'done2';
};
`;
/**
 * Returns, then cannot exit: its exit handler reads stdin to its end, which the node closes only
 * once the sandbox has exited (or was killed at its timeout).
 */
const HOLD_EXIT = `import { readSync } from 'node:fs';
export default () => {
  process.on('exit', () => {
    const buffer = Buffer.alloc(64);
    for (;;) {
      try { if (readSync(0, buffer) === 0) return; } catch (error) { if (error.code !== 'EAGAIN') return; }
    }
  });
  process.stdout.write('no newline at the end');
  return 'held';
};
`;
/** Returns at once. */
const NOOP = "export default () => 'done';\n";
/** `ctx.progress` per item of a tight loop, 50,000 times. */
const PROGRESS_LOOP = `export default (input, ctx) => {
  for (let i = 0; i < 50_000; i += 1) ctx.progress({ i });
  return 'reported';
};
`;
/**
 * Writes progress messages on fd 3 itself (bypassing the runner's coalescing), 1,000 lines a
 * write: `count` of them, then, given `exit`, a result message of its own and an exit.
 */
const FD3_FLOOD = `import { writeSync } from 'node:fs';
const write = (text) => {
  const bytes = Buffer.from(text);
  for (let offset = 0; offset < bytes.length; ) offset += writeSync(3, bytes, offset);
};
export default ({ count, exit }) => {
  for (let i = 0; i < count; ) {
    let lines = '';
    for (const end = Math.min(count, i + 1000); i < end; i += 1) {
      lines += JSON.stringify({ type: 'progress', value: { i } }) + '\\n';
    }
    write(lines);
  }
  if (exit) {
    write(JSON.stringify({ type: 'result', value: 'written on fd 3' }) + '\\n');
    process.exit(0);
  }
  return 'not held back';
};
`;
/** `read`'s system call number, as `/proc/<pid>/syscall` shows it. */
const READ_SYSCALL = process.arch === 'arm64' ? 63 : 0;

/** Says it started, then never returns. */
const HANG =
  "export default () => { console.log('started'); return new Promise(() => setInterval(() => {}, 1000)); };\n";

/**
 * Counts the intervals code under `pathPart` starts and clears until `stop()`, which restores the
 * timers and returns how many of them are still running.
 */
function watchIntervals(pathPart: string): { started(): number; stop(): number } {
  const { setInterval: realSet, clearInterval: realClear } = globalThis;
  const running = new Set<unknown>();
  let started = 0;
  globalThis.setInterval = (...args: Parameters<typeof realSet>) => {
    const handle = realSet(...args);
    if (new Error().stack?.includes(pathPart)) {
      started += 1;
      running.add(handle);
    }
    return handle;
  };
  globalThis.clearInterval = (handle?: Parameters<typeof realClear>[0]) => {
    running.delete(handle);
    realClear(handle);
  };
  return {
    started: () => started,
    stop: () => {
      globalThis.setInterval = realSet;
      globalThis.clearInterval = realClear;
      return running.size;
    },
  };
}

describe('runTask (@integration)', function () {
  this.timeout(60_000);
  let root: string;
  let base: Omit<RunTaskOptions, 'task' | 'limits' | 'instanceId'>;
  let cgroups: CgroupSupport;

  before(async () => {
    cgroups = await detectCgroups({ parentName: `tydra-test-run-task-${process.pid}` });
  });

  // Each test's temp folders are removed after it (test/setup.ts), so each gets its own package.
  beforeEach(async () => {
    root = await tempDir();
    await chmod(root, 0o755);
    for (const [name, text] of Object.entries({
      'loud-exit.mjs': LOUD_EXIT,
      'hang.mjs': HANG,
      'hold-exit.mjs': HOLD_EXIT,
      'noop.mjs': NOOP,
      'progress-loop.mjs': PROGRESS_LOOP,
      'fd3-flood.mjs': FD3_FLOOD,
    })) {
      await writeFile(join(root, name), text, { mode: 0o644 });
    }
    base = await sandboxBase(root, cgroups);
  });

  after(() => removeCgroupParent(cgroups));

  function run(module: string, limits: Partial<CompiledTaskLimits>, extra: Partial<RunTaskOptions> = {}) {
    return runTask({
      ...base,
      task: { module },
      instanceId: `run-task-${process.pid}-${Math.random().toString(16).slice(2)}`,
      limits: { ...DEFAULT_TASK_LIMITS, ...limits },
      ...extra,
    });
  }

  describe('output written right before the runner exits', () => {
    it('counts toward the output limit: 100 lines of 64 KiB then a return fail at the default 1 MiB', async () => {
      assert.equal(DEFAULT_TASK_LIMITS.outputBytes, MiB);
      const intervals = watchIntervals('/sandbox/launcher/');
      let left: number;
      try {
        await assert.rejects(run('loud-exit.mjs', {}), (error: unknown) => {
          assert.ok(error instanceof LimitExceededError, String(error));
          assert.equal(error.message, 'output limit exceeded (1 MiB on stdout)');
          return true;
        });
        // The cgroup monitor's timer ends with the run, even when a limit ended it.
        assert.ok(intervals.started() > 0, 'the run watched its cgroup');
      } finally {
        left = intervals.stop();
      }
      assert.equal(left, 0, 'intervals of the launcher left running');
    });

    it('is delivered in full under a limit large enough: every line reaches onLog', async () => {
      const lines: string[] = [];
      const result = await run('loud-exit.mjs', { outputBytes: 64 * MiB }, { onLog: (line) => lines.push(line) });
      assert.equal(result, 'done2');
      // Lines over 16 KiB reach onLog in 16 KiB pieces; each line's first piece carries its number.
      const numbered = lines.filter((line) => /^\[stdout\] \d{3}x/.test(line)).map((line) => line.slice(9, 12));
      assert.deepEqual(
        numbered,
        Array.from({ length: 100 }, (_, i) => String(i).padStart(3, '0')),
      );
      const bytes = lines.reduce((sum, line) => sum + Buffer.byteLength(line) - '[stdout] '.length, 0);
      assert.equal(bytes, 100 * 64 * 1024);
    });
  });

  describe('settled at the final message (onTeardown, as a node runs it)', () => {
    it('resolves while the sandbox still lives, with every line before it, and hands over its end', async () => {
      const lines: string[] = [];
      let ended: Promise<void> | undefined;
      let gone = false;
      const result = await run(
        'hold-exit.mjs',
        { timeoutMs: 3000 },
        {
          onLog: (line) => lines.push(line),
          onTeardown: (teardown) => {
            ended = teardown.then(() => {
              gone = true;
            });
          },
        },
      );
      assert.equal(result, 'held');
      assert.equal(gone, false, 'the result came while the sandbox could not exit yet');
      assert.deepEqual(lines, ['[stdout] no newline at the end'], 'the unterminated last line, at once');
      await ended;
      assert.equal(gone, true);
      const parent = cgroups.mode === 'v2' ? cgroups.parent : cgroups.mode === 'v1' ? cgroups.memory : undefined;
      assert.ok(parent !== undefined, 'this test needs cgroups');
      const leftovers = await readdir(parent);
      assert.deepEqual(
        leftovers.filter((name) => name.startsWith('task-')),
        [],
        'its cgroup went with its end',
      );
    });

    it('still delivers 6.4 MiB printed right before the final message in full', async () => {
      const lines: string[] = [];
      let ended: Promise<void> = Promise.resolve();
      const result = await run(
        'loud-exit.mjs',
        { outputBytes: 64 * MiB },
        { onLog: (line) => lines.push(line), onTeardown: (teardown) => void (ended = teardown) },
      );
      assert.equal(result, 'done2');
      const bytes = lines.reduce((sum, line) => sum + Buffer.byteLength(line) - '[stdout] '.length, 0);
      assert.equal(bytes, 100 * 64 * 1024);
      await ended;
    });
  });

  describe('held after the final message (exitAfter, as a node runs it)', () => {
    /** The pids in this test's task cgroups whose `/proc/<pid>/syscall` is a read of fd 3. */
    async function readingFd3(): Promise<number[]> {
      const parent = cgroups.mode === 'v2' ? cgroups.parent : cgroups.mode === 'v1' ? cgroups.memory : undefined;
      assert.ok(parent !== undefined, 'this test needs cgroups');
      const pids: number[] = [];
      for (const name of (await readdir(parent)).filter((entry) => entry.startsWith('task-'))) {
        const procs = await readFile(join(parent, name, 'cgroup.procs'), 'utf8').catch(() => '');
        for (const pid of procs.split('\n').filter(Boolean).map(Number)) {
          const [call, fd] = (await readFile(`/proc/${pid}/syscall`, 'utf8').catch(() => '')).split(' ');
          if (Number(call) === READ_SYSCALL && Number(fd) === 3) {
            pids.push(pid);
          }
        }
      }
      return pids;
    }

    it('holds the runner in a read of fd 3 after its result until exitAfter settles; then it ends', async () => {
      let letGo = (): void => undefined;
      const exitAfter = new Promise<void>((resolve) => (letGo = resolve));
      let ended: Promise<void> | undefined;
      let gone = false;
      const result = await run(
        'noop.mjs',
        {},
        {
          exitAfter,
          onTeardown: (teardown) => {
            ended = teardown.then(() => {
              gone = true;
            });
          },
        },
      );
      assert.equal(result, 'done');
      const held = await waitFor('the runner blocked in a read of fd 3', async () => {
        const pids = await readingFd3();
        return pids.length > 0 ? pids : undefined;
      });
      assert.equal(held.length, 1, 'one runner, held');
      assert.equal(gone, false, 'the sandbox waits for exitAfter');
      letGo();
      await ended;
      assert.equal(gone, true);
      assert.deepEqual(await readingFd3(), [], 'nothing of it is left');
    });

    it("holds a pooled sandbox's runner the same way, from its claim's exitAfter", async () => {
      const warm = await WarmSandbox.start({ ...base, limits: DEFAULT_TASK_LIMITS, module: 'noop.mjs' });
      assert.equal(await warm.ready, true);
      let letGo = (): void => undefined;
      const exitAfter = new Promise<void>((resolve) => (letGo = resolve));
      let gone = false;
      const ended = warm.ended.then(() => {
        gone = true;
      });
      const instanceId = `run-task-${process.pid}-pooled`;
      assert.equal(await warm.claim({ instanceId, attempt: 1, input: null, exitAfter }), 'done');
      await waitFor('the pooled runner blocked in a read of fd 3', async () =>
        (await readingFd3()).length === 1 ? true : undefined,
      );
      assert.equal(gone, false, 'the sandbox waits for exitAfter');
      letGo();
      await ended;
      assert.deepEqual(await readingFd3(), []);
    });

    it(`lets the runner go ${MAX_EXIT_HOLD_MS} ms after its final message when exitAfter never settles`, async () => {
      let ended: Promise<void> = Promise.reject(new Error('no teardown was handed over'));
      const result = await run(
        'noop.mjs',
        {},
        {
          exitAfter: new Promise(() => undefined),
          onTeardown: (teardown) => void (ended = teardown),
        },
      );
      assert.equal(result, 'done');
      await ended;
      assert.deepEqual(await readingFd3(), []);
    });
  });

  describe('ctx.progress', () => {
    it('in a tight loop: the task is not held back, a few values reach onProgress, the last one last', async () => {
      const values: unknown[] = [];
      const result = await run('progress-loop.mjs', {}, { onProgress: (value) => values.push(value) });
      assert.equal(result, 'reported');
      // The runner sends one per 100 ms and the latest before its result.
      assert.ok(values.length >= 1 && values.length < 1000, `${values.length} progress values handed on`);
      assert.deepEqual(values.at(-1), { i: 49_999 });
    });

    it("written on fd 3 itself: held to the node's rate, the task blocks on its writes and times out", async () => {
      const values: unknown[] = [];
      await assert.rejects(
        run('fd3-flood.mjs', { timeoutMs: 2000 }, { input: { count: 200_000 }, onProgress: (v) => values.push(v) }),
        (error: unknown) => {
          assert.ok(error instanceof TaskTimeoutError, String(error));
          return true;
        },
      );
      // A burst of 100, then 20 a second (and, once the sandbox exited, only what a token is
      // left for): a few hundred at most of the 200,000.
      assert.ok(values.length >= 100 && values.length < 1000, `${values.length} progress values handed on`);
    });

    it('written on fd 3 itself, then a result and an exit: what was held back is read at the exit', async () => {
      const values: unknown[] = [];
      // 2,000 lines fit in the pipe; at 20 a second the node would take 95 s to read them, over the timeout.
      const result = await run(
        'fd3-flood.mjs',
        { timeoutMs: 20_000 },
        { input: { count: 2000, exit: true }, onProgress: (value) => values.push(value) },
      );
      assert.equal(result, 'written on fd 3');
      assert.ok(values.length >= 100 && values.length < 1000, `${values.length} progress values handed on`);
    });
  });

  describe('abort', () => {
    it('rejects with the abort reason itself when it is an Error, so callers can use instanceof', async () => {
      const controller = new AbortController();
      const reason = new TaskCancelledError('typed-reason');
      const running = run(
        'hang.mjs',
        { timeoutMs: 600_000 },
        { signal: controller.signal, onLog: () => controller.abort(reason) },
      );
      await assert.rejects(running, (error: unknown) => error === reason);
    });

    it('rejects with the abort reason when aborted before the spawn', async () => {
      const reason = new Error('node shutting down');
      await assert.rejects(
        run('hang.mjs', {}, { signal: AbortSignal.abort(reason) }),
        (error: unknown) => error === reason,
      );
    });

    it('rejects with TaskFailedError("cancelled") for a reason that is not an Error', async () => {
      await assert.rejects(
        run('hang.mjs', {}, { signal: AbortSignal.abort('cancelled by request') }),
        (error: unknown) => {
          assert.ok(error instanceof TaskFailedError && !(error instanceof TaskCancelledError), String(error));
          assert.equal(error.message, 'cancelled');
          return true;
        },
      );
    });
  });
});
