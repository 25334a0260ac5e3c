/** runReduce against real bwrap: results streamed in order at reduce's pace, ctx.failures, commands. */
import assert from 'node:assert/strict';

import { TaskFailedError, TaskTimeoutError } from '../../../lib/core/errors.js';
import { runReduce } from '../../../sandbox/launcher/phases/index.js';
import { cgroupsForFile, type PhaseBase, phaseBase, phaseOptions, PYTHON } from './phases-harness.js';

/** Results { n, pad } for n = 0 … count-1, made as they are pulled; `produced()` says how many so far. */
function results(count: number, padBytes = 0): { items: AsyncIterable<unknown>; produced(): number } {
  let produced = 0;
  const pad = 'x'.repeat(padBytes);
  return {
    items: (async function* () {
      for (let n = 0; n < count; n += 1) {
        await Promise.resolve(); // a page read from Redis, in the node
        produced += 1;
        yield { n, pad };
      }
    })(),
    produced: () => produced,
  };
}

describe('runReduce (@integration)', function () {
  this.timeout(60_000);
  const cgroups = cgroupsForFile('phases-reduce');
  let base: PhaseBase;
  const REDUCE = { module: 'phases.mjs', mode: 'reduce' } as const;

  beforeEach(async () => {
    base = await phaseBase(cgroups());
  });

  it('streams 5,000 results in order through an async iterable', async () => {
    const value = await runReduce({
      ...phaseOptions(base, REDUCE),
      input: { logEvery: 1000 },
      results: results(5000, 1024).items,
      failures: [],
      onLog: (line) => assert.match(line, /^took \d+000$/),
    });
    assert.deepEqual(value, { count: 5000, ordered: true, sum: (5000 * 4999) / 2, failures: [] });
  });

  it('pulls the results only as reduce reads them: a reduce that stops reading holds the node back', async () => {
    const source = results(5000, 8192);
    await assert.rejects(
      runReduce({
        ...phaseOptions(base, REDUCE, { timeoutMs: 2000 }),
        input: { stallAfter: 100 },
        results: source.items,
        failures: [],
      }),
      (error: unknown) => error instanceof TaskTimeoutError,
    );
    // In 2 s the node would have written all 5,000 had it not waited: the pipes and the runner's buffer of
    // 256 hold a few hundred 8 KiB results.
    assert.ok(source.produced() < 100 + 1000, `the node made ${source.produced()} results for 100 taken`);
  });

  it('gives reduce the failures in ctx.failures and null in their slots', async () => {
    const failures = [{ index: 1, message: 'unit 1 failed: boom' }];
    const value = await runReduce({
      ...phaseOptions(base, REDUCE),
      input: null,
      results: (async function* () {
        await Promise.resolve();
        yield* [{ n: 0 }, null, { n: 2 }];
      })(),
      failures,
    });
    assert.deepEqual(value, { count: 3, ordered: true, sum: 2, failures });
  });

  it('fails with the error of the results it was fed, when reading them fails', async () => {
    const broken = new Error('could not read the results page');
    await assert.rejects(
      runReduce({
        ...phaseOptions(base, REDUCE),
        input: null,
        results: (async function* () {
          yield { n: 0 };
          await Promise.resolve();
          throw broken;
        })(),
        failures: [],
      }),
      (error: unknown) => error === broken,
    );
  });

  it('works unsandboxed (bwrap undefined), module and command alike', async () => {
    const unsandboxed = { bwrap: undefined, prlimit: undefined, cgroups: undefined };
    const js = await runReduce({
      ...phaseOptions(base, REDUCE, {}, unsandboxed),
      input: null,
      results: results(10).items,
      failures: [],
    });
    assert.deepEqual(js, { count: 10, ordered: true, sum: 45, failures: [] });
    const py = await runReduce({
      ...phaseOptions(base, { command: [PYTHON, 'reduce.py'] }, {}, unsandboxed),
      input: 1,
      results: results(10).items,
      failures: [],
    });
    assert.deepEqual(py, { count: 10, ordered: true, sum: 45, input: 1 });
  });

  it('names the missing export and the module', async () => {
    await assert.rejects(
      runReduce({
        ...phaseOptions(base, { module: 'split-only.mjs', mode: 'reduce' }),
        input: null,
        results: results(3).items,
        failures: [],
      }),
      (error: unknown) => {
        assert.ok(error instanceof TaskFailedError, String(error));
        assert.equal(
          error.message,
          'Expected an export named `reduce` of split-only.mjs to be a function (results, input, ctx) => result, got undefined',
        );
        return true;
      },
    );
  });

  it('runs a command reduce: the input line, then one result per line; its stdout is the value', async () => {
    const value = await runReduce({
      ...phaseOptions(base, { command: [PYTHON, 'reduce.py'] }),
      input: { label: 'py' },
      results: results(5000).items,
      failures: [],
    });
    assert.deepEqual(value, { count: 5000, ordered: true, sum: (5000 * 4999) / 2, input: { label: 'py' } });
  });
});
