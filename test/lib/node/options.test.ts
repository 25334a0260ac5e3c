import assert from 'node:assert/strict';

import { InvalidOptionError } from '../../../lib/core/errors.js';
import { compileNodeOptions } from '../../../lib/node/options.js';

describe('node options', () => {
  it('names the option, the expectation and the received value', () => {
    assert.throws(() => compileNodeOptions({ concurrency: 0 }), {
      name: 'InvalidOptionError',
      message: 'Expected the `concurrency` option to be valid (too small: expected number to be >0), got `0` (number)',
    });
    assert.throws(
      () => compileNodeOptions({ id: 'has:colon' }),
      (error: Error) =>
        error instanceof InvalidOptionError &&
        error.message.startsWith('Expected the `id` option to be valid (') &&
        error.message.endsWith('got `"has:colon"` (string)'),
    );
  });

  it('rejects a default task limit above the maximum, naming both', () => {
    assert.throws(() => compileNodeOptions({ taskLimits: { timeoutMs: 10 }, maxTaskLimits: { timeoutMs: 5 } }), {
      message:
        'Expected the `taskLimits.timeoutMs` option to be at most `maxTaskLimits.timeoutMs` (5), got `10` (number)',
    });
  });

  it('lowers a default limit with a lowered maximum, and rejects unknown or too small limits', () => {
    const options = compileNodeOptions({ maxTaskLimits: { memoryBytes: 64 * 1024 * 1024 } });
    assert.equal(options.taskLimits.memoryBytes, 64 * 1024 * 1024);
    assert.equal(options.taskLimits.pids, 64);
    assert.throws(
      () => compileNodeOptions({ taskLimits: { memory: 1 } as never }),
      /Unrecognized key.*memory|unknown.*memory/i,
    );
    assert.throws(() => compileNodeOptions({ taskLimits: { pids: 1 } }), /taskLimits\.pids/);
  });
});
