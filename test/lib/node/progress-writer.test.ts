import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';

import { ProgressWriter } from '../../../lib/node/progress-writer.js';

/** A writer whose writes wait until the test answers them, recording each value written. */
function held(periodMs: number) {
  const written: number[] = [];
  const answers: Array<() => void> = [];
  const writer = new ProgressWriter<number>((value) => {
    written.push(value);
    return new Promise<void>((resolve) => answers.push(resolve));
  }, periodMs);
  const answer = async (): Promise<void> => {
    answers.shift()?.();
    await nextTurn();
  };
  return { writer, written, answer, pending: () => answers.length };
}

describe('ProgressWriter: coalesced progress writes', () => {
  it('writes the first value at once and, while it is in flight, keeps only the latest', async () => {
    const { writer, written, answer } = held(0);
    for (let value = 1; value <= 1000; value += 1) {
      writer.push(value);
    }
    assert.deepEqual(written, [1]);
    await answer();
    assert.deepEqual(written, [1, 1000], 'the values in between are dropped');
    await answer();
    assert.deepEqual(written, [1, 1000]);
  });

  it('writes at most once per period; flush writes the latest value at once', async () => {
    const { writer, written, answer, pending } = held(60_000);
    writer.push(1);
    await answer();
    writer.push(2);
    writer.push(3);
    await nextTurn();
    assert.deepEqual(written, [1], 'held back for the period');
    const flushed = writer.flush();
    assert.deepEqual(written, [1, 3]);
    await answer();
    await flushed;
    assert.equal(pending(), 0);
    await writer.flush(); // nothing left: resolves at once
    assert.deepEqual(written, [1, 3]);
  });

  it('flush waits for the write in flight, then writes what came meanwhile', async () => {
    const { writer, written, answer } = held(0);
    writer.push(1);
    writer.push(2);
    let done = false;
    const flushed = writer.flush().then(() => (done = true));
    await answer();
    assert.deepEqual(written, [1, 2]);
    assert.equal(done, false, 'the latest value is still in flight');
    await answer();
    await flushed;
    assert.equal(done, true);
  });

  it('goes on after a write fails: progress is best effort', async () => {
    const written: number[] = [];
    const writer = new ProgressWriter<number>((value) => {
      written.push(value);
      return value === 1 ? Promise.reject(new Error('Redis gone')) : Promise.resolve();
    }, 0);
    writer.push(1);
    writer.push(2);
    await writer.flush();
    assert.deepEqual(written, [1, 2]);
  });
});
