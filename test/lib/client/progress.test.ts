import assert from 'node:assert/strict';

import { reportedProgress, toTaskProgress } from '../../../lib/client/progress.js';

describe('toTaskProgress', () => {
  it('passes the shapes of queues/progress.ts through unchanged', () => {
    const parallel = { percent: 5, workunits: { total: 20, done: 1, failed: 0, running: 2 }, splitDone: false };
    const sequence = { percent: 50, step: { index: 1, name: 'count' }, steps: 2 };
    const simple = { percent: 30, value: { percent: 30, stage: 'x' } };
    for (const shape of [parallel, sequence, simple]) {
      assert.equal(toTaskProgress(shape), shape);
    }
  });

  it("reads a bare value (a simple task's, from an older node) as { percent, value }", () => {
    assert.deepEqual(toTaskProgress(42), { percent: 42, value: 42 });
    assert.deepEqual(toTaskProgress(250), { percent: 100, value: 250 });
    assert.deepEqual(toTaskProgress({ stage: 'parse' }), { percent: 0, value: { stage: 'parse' } });
    assert.deepEqual(toTaskProgress({ percent: 7, stage: 'parse' }), {
      percent: 7,
      value: { percent: 7, stage: 'parse' },
    });
  });

  it('gives nothing for what is no progress', () => {
    for (const raw of [undefined, null, 'half', [1, 2], Number.NaN]) {
      assert.equal(toTaskProgress(raw), undefined);
    }
    assert.equal(reportedProgress(0), undefined, "BullMQ's default progress is none");
    assert.deepEqual(reportedProgress(1), { percent: 1, value: 1 });
  });
});
