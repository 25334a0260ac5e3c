/** runSplit against real bwrap: units in order at the node's pace, and the ways a split fails. */
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';

import { TaskFailedError, TaskTimeoutError } from '../../../lib/core/errors.js';
import { runSplit, SPLIT_WINDOW } from '../../../sandbox/launcher/phases/index.js';
import { cgroupsForFile, type PhaseBase, phaseBase, phaseOptions, PYTHON } from './phases-harness.js';

describe('runSplit (@integration)', function () {
  this.timeout(60_000);
  const cgroups = cgroupsForFile('phases-split');
  let base: PhaseBase;
  const SPLIT = { module: 'phases.mjs', mode: 'split' } as const;

  beforeEach(async () => {
    base = await phaseBase(cgroups());
  });

  for (const shape of ['array', 'iterable', 'async'] as const) {
    it(`hands every unit of ${shape === 'async' ? 'an async generator' : `an ${shape}`} to onUnit, in order`, async () => {
      const units: unknown[] = [];
      const count = await runSplit({
        ...phaseOptions(base, SPLIT),
        input: { count: 300, shape },
        onUnit: (unit) => void units.push(unit),
      });
      assert.equal(count, 300);
      assert.deepEqual(
        units,
        units.map((_, n) => ({ n })),
      );
    });
  }

  it('does not run ahead of a slow onUnit: the split pulls at most SPLIT_WINDOW units beyond those taken', async () => {
    let acked = 0;
    let maxAhead = 0;
    const count = await runSplit({
      ...phaseOptions(base, SPLIT),
      input: { count: 150, shape: 'async', log: true },
      onUnit: async () => {
        await delay(2); // a slow node: enqueueing takes a while
        acked += 1;
      },
      onLog: (line) => {
        const pulled = /^pulled (\d+)$/.exec(line);
        if (pulled) {
          maxAhead = Math.max(maxAhead, Number(pulled[1]) + 1 - acked);
        }
      },
    });
    assert.equal(count, 150);
    assert.equal(acked, 150);
    assert.ok(maxAhead > 0 && maxAhead <= SPLIT_WINDOW, `pulled ${maxAhead} units ahead of the node`);
  });

  it('times out only while the split itself runs, not while onUnit holds it back', async () => {
    const count = await runSplit({
      ...phaseOptions(base, SPLIT, { timeoutMs: 1000 }),
      input: { count: 4, shape: 'async' },
      // Together longer than the limit; each unit comes quickly once the node is ready.
      onUnit: () => delay(400),
    });
    assert.equal(count, 4);
    await assert.rejects(
      runSplit({
        ...phaseOptions(base, SPLIT, { timeoutMs: 1000 }),
        input: { count: 10, shape: 'async', hangAfter: 3 },
        onUnit: () => undefined,
      }),
      (error: unknown) => error instanceof TaskTimeoutError && error.message === 'timed out after 1 s',
    );
  });

  it('fails with the reason of a rejected onUnit, and stops the split', async () => {
    const refused = new Error('Redis went away');
    let calls = 0;
    await assert.rejects(
      runSplit({
        ...phaseOptions(base, SPLIT),
        input: { count: 1_000_000, shape: 'async' },
        onUnit: () => {
          calls += 1;
          return calls === 5 ? Promise.reject(refused) : undefined;
        },
      }),
      (error: unknown) => error === refused,
    );
    assert.equal(calls, 5);
  });

  it('an abort rejects with its reason, and no onUnit call comes after', async () => {
    const abort = new AbortController();
    const reason = new TaskFailedError('cancelled mid-split', base.instanceId);
    let calls = 0;
    let settled = false;
    let late = 0;
    await assert.rejects(
      runSplit({
        ...phaseOptions(base, SPLIT, {}, { signal: abort.signal }),
        input: { count: 1_000_000, shape: 'async' },
        onUnit: async () => {
          calls += 1;
          late += settled ? 1 : 0;
          if (calls === 20) {
            abort.abort(reason);
            await delay(50); // the node still busy with this unit when the sandbox dies
          }
        },
      }),
      (error: unknown) => error === reason,
    );
    settled = true;
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(calls, 20);
    assert.equal(late, 0);
  });

  it('works unsandboxed (bwrap undefined), module and command alike', async () => {
    const unsandboxed = { bwrap: undefined, prlimit: undefined, cgroups: undefined };
    let units = 0;
    const counted = (unit: unknown): void => void (units += (unit as { n: number }).n >= 0 ? 1 : 0);
    const input = { count: 50, shape: 'async' };
    assert.equal(await runSplit({ ...phaseOptions(base, SPLIT, {}, unsandboxed), input, onUnit: counted }), 50);
    const command = { command: [PYTHON, 'split.py'] };
    assert.equal(await runSplit({ ...phaseOptions(base, command, {}, unsandboxed), input, onUnit: counted }), 50);
    assert.equal(units, 100);
  });

  it('fails a split that sends units beyond its credits, and holds no more of them than the window', async () => {
    let taken = 0;
    await assert.rejects(
      runSplit({
        // A long limit: the split must fail because it ignored its credits, not time out.
        ...phaseOptions(base, { module: 'credit-flood.mjs', mode: 'split' }, { timeoutMs: 600_000 }),
        input: { count: 5000, pad: 4000 },
        // A node that takes units slowly, as when Redis is busy: every unit the split sends
        // beyond its credits would wait in the node's memory.
        onUnit: async () => {
          await delay(5);
          taken += 1;
        },
      }),
      (error: unknown) => {
        assert.ok(error instanceof TaskFailedError, String(error));
        assert.match(
          error.message,
          /^Expected the split runner to wait for the node's credits, got work unit (\d+) with \d+ granted$/,
        );
        return true;
      },
    );
    assert.ok(taken <= SPLIT_WINDOW, `the node took ${taken} units`);
  });

  it('refuses a unit that is not JSON, naming it', async () => {
    await assert.rejects(
      runSplit({
        ...phaseOptions(base, { module: 'bad-unit.mjs', mode: 'split' }),
        input: null,
        onUnit: () => undefined,
      }),
      (error: unknown) => {
        assert.ok(error instanceof TaskFailedError, String(error));
        assert.equal(
          error.message,
          'Expected work unit 2 of split (bad-unit.mjs) to be JSON-serialisable, got an error: Do not know how to serialize a BigInt',
        );
        return true;
      },
    );
  });

  describe('a command split', () => {
    it('turns each stdout line into a unit, in order', async () => {
      const units: Array<{ n: number }> = [];
      const logs: string[] = [];
      const count = await runSplit({
        ...phaseOptions(base, { command: [PYTHON, 'split.py'] }),
        input: { count: 20_000 },
        onUnit: (unit) => void units.push(unit as { n: number }),
        onLog: (line) => logs.push(line),
      });
      assert.equal(count, 20_000);
      assert.ok(
        units.every((unit, n) => unit.n === n),
        'units in order',
      );
      assert.deepEqual(logs, ['[stderr] split done']);
    });

    it('is read only as fast as onUnit takes the units: the command blocks on its full pipe', async () => {
      let acked = 0;
      let maxAhead = 0;
      const count = await runSplit({
        ...phaseOptions(base, { command: [PYTHON, 'split.py'] }),
        input: { count: 3000, pad: 4096, report: 100 },
        onUnit: async () => {
          await delay(1); // a slow node
          acked += 1;
        },
        onLog: (line) => {
          const wrote = /^\[stderr\] wrote (\d+)$/.exec(line);
          if (wrote) {
            maxAhead = Math.max(maxAhead, Number(wrote[1]) - acked);
          }
        },
      });
      assert.equal(count, 3000);
      // The pipe and the node's read buffer hold about a hundred 4 KiB units (and the stderr line saying how
      // many it wrote may arrive late): never half of the 3,000 ahead.
      assert.ok(maxAhead > 0 && maxAhead < 1500, `the command wrote ${maxAhead} units ahead of the node`);
    });
  });
});
