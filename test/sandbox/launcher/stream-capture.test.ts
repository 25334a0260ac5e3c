/**
 * captureStreams on the runner's protocol fd, without a sandbox: progress messages are held to a
 * rate by not reading fd 3, never by the output limit, and a sandbox that exited has the rest read.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';

import type { LimitHit } from '../../../sandbox/launcher/outcome.js';
import type { PhaseRunnerMessage } from '../../../sandbox/launcher/runner-message.js';
import { type CaptureOptions, captureStreams } from '../../../sandbox/launcher/stream-capture.js';
import { waitFor } from '../../helpers.js';

/** The burst of progress messages taken before fd 3 is held (`PROGRESS_BURST`). */
const BURST = 100;

function capture(options: Partial<CaptureOptions> = {}) {
  const streams = { stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough() };
  const protocol = new PassThrough();
  const values: unknown[] = [];
  const hits: Array<LimitHit | undefined> = [];
  const captured = captureStreams(
    { ...streams, protocol },
    {
      outputBytes: 1024,
      maxResultBytes: 1024 * 1024,
      onLog: () => undefined,
      onProgress: (value) => values.push(value),
      onStop: (hit) => hits.push(hit),
      ...options,
    },
  );
  /** Ends every stream, as a sandbox's exit does, and waits for `ended`. */
  const exit = async (): Promise<void> => {
    protocol.end();
    streams.stdout.end();
    streams.stderr.end();
    await captured.ended(5000);
  };
  return { protocol, values, hits, captured, exit };
}

const progressLines = (count: number, from = 0): string =>
  Array.from({ length: count }, (_, i) => `${JSON.stringify({ type: 'progress', value: { i: from + i } })}\n`).join('');
const RESULT = `${JSON.stringify({ type: 'result', value: 'done' })}\n`;

/** A few turns of the event loop: what the stream had to hand on now has been. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i += 1) {
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('captureStreams: the protocol fd', () => {
  it('holds fd 3 once progress messages outrun their rate; at the exit the rest is read, the final message too', async () => {
    const { protocol, values, hits, captured, exit } = capture();
    protocol.write(progressLines(5000) + RESULT);
    await settle();
    // The burst, and the one that found the bucket empty: the other 4,899 and the result wait.
    assert.ok(values.length >= BURST + 1 && values.length < BURST + 20, `${values.length} values handed on`);
    assert.equal(captured.output.final, undefined, 'the result waits behind the held progress messages');
    assert.ok(protocol.isPaused(), 'fd 3 is not read meanwhile');
    await exit();
    assert.deepEqual(captured.output.final, { type: 'result', value: 'done' });
    // Once the sandbox exited, a value the bucket has no token for is dropped, not handed on.
    assert.ok(values.length < BURST + 50, `${values.length} values handed on`);
    assert.deepEqual(hits, [], 'no limit: progress values are not output');
  });

  it('resumes a held fd 3 by itself as tokens come back, and hands every value on, in order', async () => {
    const { protocol, values, captured, exit } = capture();
    protocol.write(progressLines(BURST + 10) + RESULT);
    await waitFor('the result behind the held progress messages', () => captured.output.final);
    assert.deepEqual(
      values,
      Array.from({ length: BURST + 10 }, (_, i) => ({ i })),
    );
    await exit();
  });

  it("does not hold units' results, which share fd 3", async () => {
    const messages: PhaseRunnerMessage[] = [];
    const { protocol, values, exit } = capture({ onMessage: (message) => messages.push(message) });
    const results = Array.from({ length: 5000 }, (_, index) => ({ type: 'unit-result', index, value: index }));
    protocol.write(results.map((message) => `${JSON.stringify(message)}\n`).join(''));
    await settle();
    assert.equal(messages.length, 5000);
    assert.deepEqual(values, []);
    await exit();
  });

  it('counts ctx.log lines toward outputBytes, not progress values; one value over 64 KiB is a limit', async () => {
    const { protocol, values, hits, exit } = capture({ outputBytes: 1024 });
    // 50 values of about 1 KiB each: 50 times the output limit.
    const big = Array.from({ length: 50 }, (_, i) => ({ type: 'progress', value: { i, pad: 'x'.repeat(1000) } }));
    protocol.write(big.map((message) => `${JSON.stringify(message)}\n`).join(''));
    await settle();
    assert.equal(values.length, 50);
    assert.deepEqual(hits, []);
    protocol.write(`${JSON.stringify({ type: 'log', line: 'y'.repeat(2000) })}\n`);
    await settle();
    assert.deepEqual(hits, [{ limit: 'outputBytes', stream: 'ctx.log' }]);
    await exit();

    const huge = capture();
    huge.protocol.write(`${JSON.stringify({ type: 'progress', value: { pad: 'x'.repeat(70_000) } })}\n`);
    await settle();
    assert.deepEqual(huge.hits, [{ limit: 'progressBytes', bytes: 70_010 }]);
    assert.deepEqual(huge.values, []);
    await huge.exit();
  });
});
