import assert from 'node:assert/strict';

import { jobTitle, readableData, readableProgress, storedData } from '../../../lib/ops/job-display.js';

const SHA1 = '8531753ab0c1d2e3f4a5b6c7d8e9f00112233445';

describe('how jobs read on the board', () => {
  it('titles a TaskInstance by package, short sha1, task and node once dispatched', () => {
    const data = { package: { name: 'hello', sha1: SHA1 }, task: 'greet', input: {} };
    assert.equal(jobTitle('tasks', { name: 'task-instance', data }), 'hello@8531753/greet');
    assert.equal(
      jobTitle('tasks', { name: 'task-instance', data: { ...data, dispatch: { nodeId: 'dev-2', at: 1 } } }),
      'hello@8531753/greet · dev-2',
    );
  });

  it('titles a node job with the node of its queue', () => {
    const data = { package: { name: 'hello', sha1: SHA1 }, task: 'greet', instanceId: 'x' };
    assert.equal(jobTitle('node.dev-1', { name: 'run', data }), 'hello@8531753/greet · dev-1');
  });

  it('keeps the plain name of a job whose data does not fit (anyone with Redis access can add one)', () => {
    assert.equal(jobTitle('tasks', { name: 'task-instance', data: { package: 'x' } }), 'task-instance');
    assert.equal(jobTitle('maintenance', { name: 'prune', data: { graceMs: 5 } }), 'prune');
  });

  it('shows epoch-millisecond times as ISO, leaving the task input and small numbers alone', () => {
    const at = Date.UTC(2026, 10, 30, 14, 0, 0);
    assert.deepEqual(
      readableData({
        submittedAt: at,
        dispatch: { nodeId: 'dev-1', at },
        attempts: 3,
        timeoutMs: 60_000,
        input: { startAt: at },
      }),
      {
        submittedAt: '2026-11-30T14:00:00.000Z',
        dispatch: { nodeId: 'dev-1', at: '2026-11-30T14:00:00.000Z' },
        attempts: 3,
        timeoutMs: 60_000,
        input: { startAt: at },
      },
    );
    assert.equal(readableData(null), null);
  });

  it('gives object progress with a percent the numeric progress the ring reads, keeping its fields', () => {
    const parallel = { percent: 40, workunits: { total: 10, done: 4, failed: 0, running: 2 }, splitDone: true };
    assert.deepEqual(readableProgress(parallel), { progress: 40, ...parallel });
    assert.deepEqual(readableProgress({ percent: 140, value: 3 }), { progress: 100, percent: 140, value: 3 });
    for (const untouched of [42, null, undefined, { stage: 'x' }, { progress: 7, percent: 9 }, [1], { percent: 'x' }]) {
      assert.deepEqual(readableProgress(untouched), untouched);
    }
  });

  it("stores what the board's edit sends back: ISO times under time keys become epoch ms again, input untouched", () => {
    const data = {
      submittedAt: 1_800_000_000_123,
      dispatch: { nodeId: 'dev-1', at: 1_800_000_000_456 },
      input: { at: '2027-01-15T08:00:00.000Z' },
      attempts: 1,
    };
    assert.deepEqual(storedData(readableData(data)), data);
    assert.deepEqual(storedData({ at: 'soon', note: '2027-01-15T08:00:00.000Z' }), {
      at: 'soon',
      note: '2027-01-15T08:00:00.000Z',
    });
  });
});
