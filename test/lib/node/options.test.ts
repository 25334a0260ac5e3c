import assert from 'node:assert/strict';

import { InvalidOptionError } from '../../../lib/core/errors.js';
import { compileNodeOptions } from '../../../lib/node/options.js';
import { SandboxUsers } from '../../../sandbox/launcher/sandbox-users.js';

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

  it('sandbox users: as root 256 from 60000 by default, one with --sandbox-user, as many as asked with both', () => {
    if (process.getuid?.() !== 0) {
      // Not root: sandboxes run as the node's own user, and it cannot start them as others.
      assert.equal(compileNodeOptions({}).sandboxUser, undefined);
      assert.throws(() => compileNodeOptions({ sandboxUsers: 2 }), /only on a node running as root/);
      return;
    }
    const byDefault = compileNodeOptions({}).sandboxUser;
    assert.ok(byDefault instanceof SandboxUsers);
    assert.deepEqual([byDefault.first, byDefault.count], [{ uid: 60_000, gid: 65_534 }, 256]);
    assert.deepEqual(compileNodeOptions({ sandboxUser: { uid: 1234, gid: 1234 } }).sandboxUser, {
      uid: 1234,
      gid: 1234,
    });
    const asked = compileNodeOptions({ sandboxUser: { uid: 70_000, gid: 70_000 }, sandboxUsers: 8 }).sandboxUser;
    assert.ok(asked instanceof SandboxUsers);
    assert.deepEqual([asked.first, asked.count], [{ uid: 70_000, gid: 70_000 }, 8]);
    assert.deepEqual(compileNodeOptions({ sandboxUsers: 1 }).sandboxUser, { uid: 60_000, gid: 65_534 });
    assert.throws(() => compileNodeOptions({ sandboxUsers: 0 }), /`sandboxUsers` option to be valid/);
    assert.throws(() => compileNodeOptions({ sandboxUser: { uid: 0, gid: 0 }, sandboxUsers: 2 }), /one sandbox user/);
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
