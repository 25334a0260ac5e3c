/** The runner's backpressure pieces, without a sandbox: reduce's bounded buffer and split's credits. */
import assert from 'node:assert/strict';

import { Credits } from '../../../sandbox/runner/credits.js';
import { ItemBuffer } from '../../../sandbox/runner/item-buffer.js';

describe('ItemBuffer', () => {
  function recorder(): { calls: string[]; pause(): void; resume(): void } {
    const calls: string[] = [];
    return { calls, pause: () => calls.push('pause'), resume: () => calls.push('resume') };
  }

  it('pauses its input over `high` items and resumes it under `low`, handing items over in order', async () => {
    const input = recorder();
    const buffer = new ItemBuffer(input, 4, 2);
    for (let i = 0; i < 5; i += 1) {
      buffer.push(i);
    }
    assert.deepEqual(input.calls, ['pause']);
    buffer.end();
    const taken: unknown[] = [];
    for await (const item of buffer) {
      taken.push(item);
      if (item === 3) {
        assert.deepEqual(input.calls, ['pause', 'resume'], 'resumed once fewer than 2 wait');
      }
    }
    assert.deepEqual(taken, [0, 1, 2, 3, 4]);
  });

  it('waits for items pushed later, and ends when told', async () => {
    const buffer = new ItemBuffer(recorder());
    const taken: unknown[] = [];
    const reading = (async () => {
      for await (const item of buffer) {
        taken.push(item);
      }
    })();
    buffer.push('a');
    await Promise.resolve();
    buffer.push(null);
    buffer.end();
    await reading;
    assert.deepEqual(taken, ['a', null]);
  });

  it('makes the reader throw the error it ended with, after the items before it', async () => {
    const buffer = new ItemBuffer(recorder());
    buffer.push(1);
    buffer.end(new Error('stdin closed'));
    const taken: unknown[] = [];
    await assert.rejects(
      (async () => {
        for await (const item of buffer) {
          taken.push(item);
        }
      })(),
      /^Error: stdin closed$/,
    );
    assert.deepEqual(taken, [1]);
  });

  it('holds a long stream without keeping what was taken', async () => {
    const buffer = new ItemBuffer(recorder(), 8, 2);
    let taken = 0;
    const reading = (async () => {
      for await (const _item of buffer) {
        taken += 1;
      }
    })();
    for (let i = 0; i < 10_000; i += 1) {
      buffer.push(i);
      await Promise.resolve();
      await Promise.resolve();
    }
    buffer.end();
    await reading;
    assert.equal(taken, 10_000);
    assert.equal(buffer.size, 0);
  });
});

describe('Credits', () => {
  it('lets take() through only as credits are added', async () => {
    const credits = new Credits();
    let taken = 0;
    const taking = (async () => {
      for (let i = 0; i < 3; i += 1) {
        await credits.take();
        taken += 1;
      }
    })();
    await Promise.resolve();
    assert.equal(taken, 0);
    credits.add(2);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(taken, 2);
    credits.add(1);
    await taking;
    assert.equal(taken, 3);
  });
});
