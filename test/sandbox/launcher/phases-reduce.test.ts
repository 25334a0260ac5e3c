/** runReduce against real bwrap: results streamed in order at reduce's pace, ctx.failures, commands. */
import assert from 'node:assert/strict';

import { TaskFailedError } from '../../../lib/core/errors.js';
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

  it('streams 5,000 results in order through an async iterable, pulling them only as reduce reads', async () => {
    const source = results(5000, 1024);
    let maxAhead = 0;
    const value = await runReduce({
      ...phaseOptions(base, REDUCE),
      input: { logEvery: 100 },
      results: source.items,
      failures: [],
      onLog: (line) => {
        const took = /^took (\d+)$/.exec(line);
        if (took) {
          maxAhead = Math.max(maxAhead, source.produced() - Number(took[1]));
        }
      },
    });
    assert.deepEqual(value, { count: 5000, ordered: true, sum: (5000 * 4999) / 2, failures: [] });
    // The pipes and the runner's buffer of 256 results hold a few hundred 1 KiB results: never all 5,000.
    assert.ok(maxAhead > 0 && maxAhead < 1500, `the node was ${maxAhead} results ahead of reduce`);
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
