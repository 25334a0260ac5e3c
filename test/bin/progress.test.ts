import assert from 'node:assert/strict';

import { formatStatus } from '../../bin/cli/format.js';
import { type BarStream, formatProgress, ProgressBar, renderBar } from '../../bin/cli/progress.js';
import type { TaskProgress, TaskStatus } from '../../lib/index.js';

const PARALLEL: TaskProgress = {
  percent: 42,
  workunits: { total: 1000, done: 420, failed: 3, running: 8 },
  splitDone: true,
};

/** A stream that records what is written, a terminal or not as told. */
function fakeStream(isTTY: boolean, columns = 80): BarStream & { written: string[] } {
  const written: string[] = [];
  return {
    isTTY,
    columns,
    written,
    write(text: string) {
      written.push(text);
      return true;
    },
  };
}

describe('progress in words', () => {
  it('says workunit counts for a parallel task, and whether split still runs', () => {
    assert.equal(formatProgress(PARALLEL), '42% · workunits 420/1000 done, 3 failed, 8 running');
    assert.equal(
      formatProgress({ ...PARALLEL, percent: 7.9, splitDone: false }),
      '7% · workunits 420/1000 done, 3 failed, 8 running (split still running)',
    );
  });

  it('says the step of a sequence, counted from 1', () => {
    assert.equal(
      formatProgress({ percent: 33.4, step: { index: 1, name: 'count' }, steps: 3 }),
      '33% · step 2/3 (count)',
    );
  });

  it("says a simple task's percent, with what else it reported", () => {
    assert.equal(formatProgress({ percent: 42, value: 42 }), '42%');
    assert.equal(formatProgress({ percent: 50, value: { percent: 50 } }), '50%');
    assert.equal(formatProgress({ percent: 50, value: { percent: 50, stage: 'parse' } }), '50% · {"stage":"parse"}');
  });

  it('is the progress line of `tydra status`, absent when nothing was reported', () => {
    const status: TaskStatus = {
      id: 'i1',
      ref: 'wc@abc/count',
      state: 'running',
      nodeId: 'n1',
      progress: PARALLEL,
      result: undefined,
      error: undefined,
      submittedAt: 0,
      finishedAt: undefined,
      logs: [],
    };
    assert.ok(
      formatStatus(status).split('\n').includes('progress: 42% · workunits 420/1000 done, 3 failed, 8 running'),
    );
    assert.ok(!formatStatus({ ...status, progress: undefined }).includes('progress'));
  });
});

describe('progress bar', () => {
  it('draws nothing when the stream is not a terminal', () => {
    const stream = fakeStream(false);
    const bar = new ProgressBar(stream);
    assert.equal(bar.enabled, false);
    bar.update(PARALLEL);
    bar.update({ percent: 100, value: 100 });
    bar.clear();
    assert.deepEqual(stream.written, []);
  });

  it('redraws one line in place on a terminal, and erases it on clear', () => {
    const stream = fakeStream(true);
    let now = 0;
    const bar = new ProgressBar(stream, () => now);
    bar.update({ percent: 10, value: 10 });
    now += 1000;
    bar.update(PARALLEL);
    bar.clear();
    assert.deepEqual(stream.written, [
      `\r[##----------------------] 10%\x1b[K`,
      `\r[##########--------------] 42% · workunits 420/1000 done, 3 failed, 8 running\x1b[K`,
      '\r\x1b[K',
    ]);
    assert.ok(
      stream.written.every((text) => !text.includes('\n')),
      'a redraw never starts a new line',
    );
  });

  it('redraws at most every 100 ms, except to show 100%', () => {
    const stream = fakeStream(true);
    let now = 0;
    const bar = new ProgressBar(stream, () => now);
    bar.update({ percent: 10, value: 10 });
    now += 10;
    bar.update({ percent: 20, value: 20 });
    now += 10;
    bar.update({ percent: 100, value: 100 });
    assert.equal(stream.written.length, 2);
    assert.match(stream.written[1] ?? '', /\] 100%/);
  });

  it('takes a terminal that reports 0 columns for one of unknown width (80)', () => {
    const stream = fakeStream(true, 0);
    new ProgressBar(stream).update(PARALLEL);
    assert.deepEqual(stream.written, [
      `\r[##########--------------] 42% · workunits 420/1000 done, 3 failed, 8 running\x1b[K`,
    ]);
  });

  it('fits the terminal width', () => {
    assert.equal(renderBar(PARALLEL, 30).length, 29);
    assert.equal(renderBar({ percent: 100, value: 100 }, 200), `[${'#'.repeat(24)}] 100%`);
  });
});
