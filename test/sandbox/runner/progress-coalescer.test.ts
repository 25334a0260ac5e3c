/** The runner's `ctx.progress` coalescing, on a clock the test moves. */
import assert from 'node:assert/strict';

import { encodeMessage, MAX_PROGRESS_BYTES, PROGRESS_SEND_MS } from '../../../sandbox/protocol.js';
import { ProgressCoalescer } from '../../../sandbox/runner/progress-coalescer.js';
import { waitFor } from '../../helpers.js';

function coalescer(start = 1000) {
  const sent: string[] = [];
  const clock = { now: start };
  const progress = new ProgressCoalescer(
    (line) => sent.push(line),
    () => clock.now,
  );
  return { sent, clock, progress };
}

describe('ProgressCoalescer', () => {
  it('sends the first value at once, keeps only the latest within the period, and flushes it before the final message', () => {
    const { sent, progress } = coalescer();
    progress.push('a');
    progress.push('b');
    progress.push('c');
    assert.deepEqual(sent, ['a']);
    // What Channel.finish does: the value waiting, then the final message.
    progress.flush();
    sent.push('result');
    assert.deepEqual(sent, ['a', 'c', 'result']);
    progress.flush();
    assert.deepEqual(sent, ['a', 'c', 'result'], 'nothing waits twice');
  });

  it('in a synchronous loop, sends once per period, checking the clock on each call', () => {
    const { sent, clock, progress } = coalescer();
    for (let i = 0; i < 10_000; i += 1) {
      progress.push(String(i));
      clock.now += 1; // 1 ms per call: 10 s in all
    }
    assert.equal(sent.length, 10_000 / PROGRESS_SEND_MS);
    assert.deepEqual(sent.slice(0, 3), ['0', '100', '200']);
    progress.flush();
    assert.equal(sent.at(-1), '9999');
  });

  it('sends the value waiting when the period is over, by its timer', async () => {
    const { sent, progress } = coalescer(Date.now());
    progress.push('first');
    progress.push('second');
    assert.deepEqual(sent, ['first']);
    await waitFor('the value waiting to be sent', () => (sent.length > 1 ? true : undefined));
    assert.deepEqual(sent, ['first', 'second']);
  });

  it('sends a value over the cap at once (the node fails the run with it), dropping the older one waiting', () => {
    const { sent, progress } = coalescer();
    progress.push('a');
    progress.push('b');
    // A message line whose value is one byte over the cap (as the runner encodes it).
    const huge = encodeMessage({ type: 'progress', value: { pad: 'x'.repeat(MAX_PROGRESS_BYTES - 9) } });
    progress.push(huge);
    assert.deepEqual(sent, ['a', huge]);
    progress.flush();
    assert.deepEqual(sent, ['a', huge]);
  });
});
