/** startWorker against real bwrap: many units per worker, failures that keep it or kill it. */
import assert from 'node:assert/strict';

import { LimitExceededError, TaskFailedError, TaskTimeoutError } from '../../../lib/core/errors.js';
import { startWorker } from '../../../sandbox/launcher/phases/index.js';
import { cgroupsForFile, closeAfter, MiB, type PhaseBase, phaseBase, phaseOptions, PYTHON } from './phases-harness.js';
import { waitFor } from '../../helpers.js';

interface Squared {
  worker: string;
  index: number;
  attempt: number;
  square: number;
}

describe('startWorker (@integration)', function () {
  this.timeout(60_000);
  const cgroups = cgroupsForFile('phases-worker');
  let base: PhaseBase;
  const WORK = { module: 'phases.mjs', mode: 'work' } as const;

  beforeEach(async () => {
    base = await phaseBase(cgroups());
  });

  it('runs many units in one worker process, in order, each with its index and attempt', async () => {
    const worker = closeAfter(await startWorker(phaseOptions(base, WORK)));
    assert.match(worker.id, /^[0-9a-f-]{36}$/);
    const results: Squared[] = [];
    for (let index = 0; index < 50; index += 1) {
      results.push((await worker.run({ index, attempt: 1 + (index % 3), value: { n: index } })) as Squared);
    }
    assert.equal(new Set(results.map((result) => result.worker)).size, 1, 'one worker process served every unit');
    assert.deepEqual(
      results.map(({ index, attempt, square }) => [index, attempt, square]),
      results.map((_, index) => [index, 1 + (index % 3), index * index]),
    );
    assert.equal(worker.alive, true);
    await worker.close();
    assert.equal(worker.alive, false);
    await worker.close(); // idempotent
  });

  it('keeps serving after a unit throws: the unit rejects with its message and stack', async () => {
    const worker = closeAfter(await startWorker(phaseOptions(base, WORK)));
    const first = (await worker.run({ index: 0, attempt: 1, value: { n: 2 } })) as Squared;
    await assert.rejects(worker.run({ index: 1, attempt: 1, value: { op: 'throw' } }), (error: unknown) => {
      assert.ok(error instanceof TaskFailedError && !(error instanceof LimitExceededError), String(error));
      assert.equal(error.message, 'unit 1 refused');
      assert.match(error.remoteStack ?? '', /^RangeError: unit 1 refused\n\s+at work /);
      return true;
    });
    assert.equal(worker.alive, true);
    const third = (await worker.run({ index: 2, attempt: 1, value: { n: 3 } })) as Squared;
    assert.equal(third.worker, first.worker);
    assert.equal(third.square, 9);
  });

  it('routes stdout, stderr and ctx.log lines to the running unit', async () => {
    const worker = closeAfter(await startWorker(phaseOptions(base, WORK)));
    const lines: string[] = [];
    await worker.run({ index: 7, attempt: 1, value: { op: 'log' } }, (line) => lines.push(line));
    await worker.close(); // everything it printed is read once it exited
    assert.deepEqual(lines.sort(), ['[stdout] stdout of unit 7', 'ctx.log of unit 7']);
  });

  it('a unit that exits the process rejects with the exit code, and the worker is dead', async () => {
    const worker = closeAfter(await startWorker(phaseOptions(base, WORK)));
    await worker.run({ index: 0, attempt: 1, value: { n: 1 } });
    await assert.rejects(worker.run({ index: 1, attempt: 1, value: { op: 'exit', code: 3 } }), (error: unknown) => {
      assert.ok(error instanceof TaskFailedError, String(error));
      assert.equal(error.message, 'worker process exited with code 3 before returning a result');
      return true;
    });
    assert.equal(worker.alive, false);
    await assert.rejects(
      worker.run({ index: 2, attempt: 1, value: { n: 1 } }),
      /has ended \(worker process exited with code 3 before returning a result\); start another one$/,
    );
  });

  it('a unit over the memory limit rejects with LimitExceededError, and the worker is dead', async () => {
    const worker = closeAfter(await startWorker(phaseOptions(base, WORK, { memoryBytes: 128 * MiB })));
    await assert.rejects(worker.run({ index: 0, attempt: 1, value: { op: 'hog' } }), (error: unknown) => {
      assert.ok(error instanceof LimitExceededError, String(error));
      assert.equal(error.message, 'memory limit exceeded (128 MiB)');
      return true;
    });
    assert.equal(worker.alive, false);
  });

  it("counts the output limit over the worker's life: crossing it kills the worker", async () => {
    const worker = closeAfter(await startWorker(phaseOptions(base, WORK, { outputBytes: 64 * 1024 })));
    const shout = (index: number): Promise<unknown> =>
      worker.run({ index, attempt: 1, value: { op: 'shout', bytes: 20 * 1024 } });
    for (let index = 0; index < 3; index += 1) {
      await shout(index);
    }
    // The 4th unit crosses 64 KiB. Its stdout and its result travel on separate pipes: when the result is
    // read first, the unit succeeds and the worker dies right after it, failing the next unit.
    const error = await shout(3).then(
      () => waitFor('the worker to die', () => (worker.alive ? undefined : shout(4).catch((e: unknown) => e))),
      (e: unknown) => e,
    );
    assert.ok(error instanceof TaskFailedError, String(error));
    assert.match(error.message, /output limit exceeded \(64 KiB on stdout\)/);
    assert.equal(worker.alive, false);
  });

  it('fails a unit that sends a progress value over 64 KiB with LimitExceededError, and the worker is dead', async () => {
    const worker = closeAfter(await startWorker(phaseOptions(base, WORK, { outputBytes: 64 * MiB })));
    await worker.run({ index: 0, attempt: 1, value: { op: 'progress', bytes: 1000 } });
    await assert.rejects(worker.run({ index: 1, attempt: 1, value: { op: 'progress', bytes: MiB } }), (error) => {
      assert.ok(error instanceof LimitExceededError, String(error));
      assert.equal(error.message, 'output limit exceeded (64 KiB in one progress value, got 1 MiB)');
      return true;
    });
    assert.equal(worker.alive, false);
  });

  it('does not count ctx.progress values toward the output limit; the last value reported arrives by the end', async () => {
    const values: unknown[] = [];
    const worker = closeAfter(
      await startWorker(
        phaseOptions(base, WORK, { outputBytes: 64 * 1024 }, { onProgress: (value) => values.push(value) }),
      ),
    );
    // 1,000 values of about 1 KiB a unit, in a tight loop: 2 MiB over two units, 32 times the limit.
    const progress = { op: 'progress', count: 1000, bytes: 1000 };
    await worker.run({ index: 0, attempt: 1, value: progress });
    await worker.run({ index: 1, attempt: 1, value: progress });
    assert.equal(worker.alive, true);
    await worker.close();
    // Coalesced by the runner (one per 100 ms, the latest before it exits): a few, not 2,000.
    assert.ok(values.length >= 1 && values.length < 100, `${values.length} progress values handed on`);
    assert.deepEqual(values.at(-1), { i: 999, pad: 'x'.repeat(1000) });
  });

  it('fails a unit whose result is over maxResultBytes with LimitExceededError', async () => {
    const worker = closeAfter(await startWorker({ ...phaseOptions(base, WORK), maxResultBytes: 4096 }));
    assert.equal(await worker.run({ index: 0, attempt: 1, value: { op: 'big', bytes: 1000 } }), 'x'.repeat(1000));
    await assert.rejects(worker.run({ index: 1, attempt: 1, value: { op: 'big', bytes: 8192 } }), (error) => {
      assert.ok(error instanceof LimitExceededError, String(error));
      assert.equal(error.message, 'output limit exceeded (4 KiB in one result message)');
      return true;
    });
  });

  it('times out per unit: the hanging unit rejects with TaskTimeoutError and the worker is killed', async () => {
    const worker = closeAfter(await startWorker(phaseOptions(base, WORK, { timeoutMs: 1500 })));
    // Units that together take longer than the limit are fine: it is per unit.
    for (let index = 0; index < 3; index += 1) {
      await worker.run({ index, attempt: 1, value: { n: index } });
    }
    await assert.rejects(worker.run({ index: 3, attempt: 1, value: { op: 'hang' } }), (error: unknown) => {
      assert.ok(error instanceof TaskTimeoutError, String(error));
      assert.equal(error.message, 'timed out after 1.5 s');
      return true;
    });
    assert.equal(worker.alive, false);
  });

  it('an abort kills the worker and the running unit rejects with the signal reason', async () => {
    const abort = new AbortController();
    const worker = closeAfter(await startWorker(phaseOptions(base, WORK, {}, { signal: abort.signal })));
    const reason = new TaskFailedError('the instance was cancelled', base.instanceId);
    const running = worker.run({ index: 0, attempt: 1, value: { op: 'hang' } });
    abort.abort(reason);
    await assert.rejects(running, (error: unknown) => error === reason);
    assert.equal(worker.alive, false);
  });

  it('rejects with the reason of a signal aborted before the start, leaving nothing behind', async () => {
    const reason = new TaskFailedError('cancelled before the start', base.instanceId);
    await assert.rejects(
      startWorker(phaseOptions(base, WORK, {}, { signal: AbortSignal.abort(reason) })),
      (error: unknown) => error === reason,
    );
  });

  it('works unsandboxed (bwrap undefined), like runTask in development mode', async () => {
    const options = { ...phaseOptions(base, WORK), bwrap: undefined, prlimit: undefined, cgroups: undefined };
    const worker = closeAfter(await startWorker(options));
    const first = (await worker.run({ index: 0, attempt: 1, value: { n: 4 } })) as Squared;
    const second = (await worker.run({ index: 1, attempt: 1, value: { n: 5 } })) as Squared;
    assert.deepEqual([first.square, second.square, second.worker], [16, 25, first.worker]);
    const python = closeAfter(await startWorker({ ...options, entry: { command: [PYTHON, 'work.py'] } }));
    assert.equal(((await python.run({ index: 0, attempt: 1, value: { n: 6 } })) as Squared).square, 36);
  });

  it('a missing `work` export fails the first unit with a TypeError naming the export and the module', async () => {
    const entry = { module: 'split-only.mjs', mode: 'work' } as const;
    const worker = closeAfter(await startWorker(phaseOptions(base, entry)));
    await assert.rejects(worker.run({ index: 0, attempt: 1, value: 1 }), (error: unknown) => {
      assert.ok(error instanceof TaskFailedError, String(error));
      assert.equal(
        error.message,
        'Expected an export named `work` of split-only.mjs to be a function (unit, ctx) => result, got undefined',
      );
      return true;
    });
  });

  describe('a command worker', () => {
    const entry = { command: [PYTHON, 'work.py'] };

    it('answers one JSON line per unit, in one process, with stderr as the unit log', async () => {
      const worker = closeAfter(await startWorker(phaseOptions(base, entry)));
      const lines: string[] = [];
      const results: Array<{ worker: string; square: number }> = [];
      for (let index = 0; index < 20; index += 1) {
        results.push((await worker.run({ index, attempt: 1, value: { n: index } }, (l) => lines.push(l))) as never);
      }
      assert.equal(new Set(results.map((result) => result.worker)).size, 1);
      assert.deepEqual(
        results.map((result) => result.square),
        results.map((_, index) => index * index),
      );
      await worker.close();
      assert.ok(lines.includes('[stderr] working on 19'), lines.join('\n'));
    });

    it('a line that is not JSON fails the unit and the worker; an exit fails the unit with its code', async () => {
      const garbage = closeAfter(await startWorker(phaseOptions(base, entry)));
      await assert.rejects(
        garbage.run({ index: 0, attempt: 1, value: { op: 'garbage' } }),
        /^TaskFailedError: Expected the work command to print one JSON result per line, got "this is not json"$/,
      );
      assert.equal(garbage.alive, false);
      const exiting = closeAfter(await startWorker(phaseOptions(base, entry)));
      await assert.rejects(exiting.run({ index: 0, attempt: 1, value: { op: 'exit', code: 4 } }), (error: unknown) => {
        assert.ok(error instanceof TaskFailedError, String(error));
        assert.equal(error.message, 'command exited with code 4');
        return true;
      });
      assert.equal(exiting.alive, false);
    });
  });
});
