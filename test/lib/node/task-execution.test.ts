import assert from 'node:assert/strict';

import { recordedEnding, type TaskEnding } from '../../../queues/task-ending.js';
import {
  CgroupError,
  InvalidJobDataError,
  LimitExceededError,
  NodeShutdownError,
  PackageRejectedError,
  RunnerProtocolError,
  SandboxUnavailableError,
  TaskCancelledError,
  TaskFailedError,
  TaskTimeoutError,
  TaskUnrecoverableError,
  UnknownTaskError,
} from '../../../lib/core/errors.js';
import { endingOf } from '../../../lib/node/task-execution.js';

function aborted(reason: unknown): AbortSignal {
  const controller = new AbortController();
  controller.abort(reason);
  return controller.signal;
}

describe('endingOf: how a run ended, from its error and its abort reason', () => {
  const cases: Array<[string, unknown, AbortSignal | undefined, TaskEnding]> = [
    ['a task error', new TaskFailedError('boom', 'id'), undefined, { kind: 'failed' }],
    [
      'a task that throws the cancel message itself',
      new TaskFailedError('cancelled by request', 'id'),
      undefined,
      { kind: 'failed' },
    ],
    [
      'a cancel request (the launcher reports its own error)',
      new TaskFailedError('cancelled', 'id'),
      aborted(new TaskCancelledError('id')),
      { kind: 'cancelled' },
    ],
    [
      'a cancel request (the launcher rejects with the reason)',
      new TaskCancelledError('id'),
      aborted(new TaskCancelledError('id')),
      { kind: 'cancelled' },
    ],
    ['a cancel seen before the run', new TaskCancelledError('id'), undefined, { kind: 'cancelled' }],
    [
      'a string abort reason is not a cancellation',
      new TaskFailedError('x', 'id'),
      aborted('cancelled by request'),
      { kind: 'failed' },
    ],
    [
      'a shutdown abort is not a cancellation',
      new TaskFailedError('x', 'id'),
      aborted(new NodeShutdownError('n1')),
      { kind: 'failed' },
    ],
    ['the wall-clock limit', new TaskTimeoutError(1500), undefined, { kind: 'timeout', timeoutMs: 1500 }],
    [
      'a resource limit',
      new LimitExceededError('memory limit exceeded (512 MiB)', 'id', 'memoryBytes', 512),
      undefined,
      { kind: 'limit', limit: 'memoryBytes', value: 512 },
    ],
    ['a sandbox set-up failure', new SandboxUnavailableError('no bwrap'), undefined, { kind: 'infrastructure' }],
    ['a cgroup failure', new CgroupError('EBUSY', '/sys/fs/cgroup/x'), undefined, { kind: 'infrastructure' }],
    ['invalid job data', new InvalidJobDataError('bad'), undefined, { kind: 'rejected' }],
    ['a refused package', new PackageRejectedError('bad'), undefined, { kind: 'rejected' }],
    ['a task the package lacks', new UnknownTaskError('nope'), undefined, { kind: 'rejected' }],
    ['a runner protocol error', new RunnerProtocolError('garbage'), undefined, { kind: 'failed' }],
    [
      'a task that gave up (ctx.fail)',
      new TaskUnrecoverableError('bad input', 'i'),
      undefined,
      { kind: 'failed', unrecoverable: true },
    ],
    ['anything else', new Error('ECONNRESET'), undefined, { kind: 'failed' }],
  ];
  for (const [what, error, signal, ending] of cases) {
    it(what, () => {
      assert.deepEqual(endingOf(error, signal), ending);
    });
  }
});

describe('recordedEnding: the ending in job data, checked', () => {
  it('reads a well-formed ending and nothing else', () => {
    assert.deepEqual(recordedEnding({ ref: 'x', ending: { kind: 'timeout', timeoutMs: 5 } }), {
      kind: 'timeout',
      timeoutMs: 5,
    });
    assert.equal(recordedEnding({ ref: 'x' }), undefined);
    assert.equal(recordedEnding({ ending: { kind: 'exploded' } }), undefined);
    assert.equal(recordedEnding({ ending: { kind: 'limit', limit: 'pids' } }), undefined);
    assert.equal(recordedEnding({ ending: 'cancelled' }), undefined);
    assert.equal(recordedEnding('not an object'), undefined);
    assert.equal(recordedEnding(null), undefined);
  });
});
