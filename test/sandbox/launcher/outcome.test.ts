/**
 * Every way a sandbox can end, and the result or error each one maps to. Pure: no bwrap, no
 * cgroup, no Redis.
 */
import assert from 'node:assert/strict';

import {
  LimitExceededError,
  RunnerProtocolError,
  SandboxUnavailableError,
  TaskCancelledError,
  TaskFailedError,
  TaskTimeoutError,
  TaskUnrecoverableError,
} from '../../../lib/core/errors.js';
import { DEFAULT_TASK_LIMITS } from '../../../lib/core/limits.js';
import { outcome, type SandboxEnding } from '../../../sandbox/launcher/outcome.js';

const MiB = 1024 * 1024;
const LIMITS = { ...DEFAULT_TASK_LIMITS, memoryBytes: 256 * MiB, pids: 64, cpuMs: 30_000, fileSizeBytes: 8 * MiB };

/** A JavaScript task that returned 42 normally; each case changes what it needs. */
const BASE: SandboxEnding = {
  instanceId: 'i-1',
  limits: LIMITS,
  maxResultBytes: 16 * MiB,
  sandboxed: true,
  kind: 'module',
  timedOut: false,
  aborted: false,
  exitCode: 0,
  signal: undefined,
  final: { type: 'result', value: 42 },
  stderrTail: '',
  stdout: '',
};
const COMMAND: Partial<SandboxEnding> = { kind: 'command', final: undefined };
const NO_RESULT: Partial<SandboxEnding> = { final: undefined };
const typedReason = new TaskCancelledError('i-1');
const setupError = new Error('cgroup refused the sandbox');

type Expected =
  | { result: unknown }
  | { error: new (...args: never[]) => Error; message: string; limit?: string; value?: number }
  | { same: Error };

const CASES: Array<[name: string, ending: Partial<SandboxEnding>, expected: Expected]> = [
  ['a result', {}, { result: 42 }],
  ['an undefined result sent as null', { final: { type: 'result', value: null } }, { result: null }],
  [
    'the task threw',
    { final: { type: 'error', name: 'TypeError', message: 'boom', stack: 'TypeError: boom\n    at x' } },
    { error: TaskFailedError, message: 'boom' },
  ],
  [
    'the cgroup attach failed (wins over all but a cancel)',
    { setupError, timedOut: true, limitHit: { limit: 'pids' } },
    { same: setupError },
  ],
  [
    'the cgroup attach failed because a cancel killed the sandbox under it: the cancel',
    { setupError, aborted: true, abortReason: typedReason },
    { same: typedReason },
  ],
  [
    'output limit on stdout',
    { limitHit: { limit: 'outputBytes', stream: 'stdout' }, exitCode: undefined, signal: 'SIGTERM' },
    { error: LimitExceededError, message: 'output limit exceeded (1 MiB on stdout)', limit: 'outputBytes', value: MiB },
  ],
  [
    'output limit on stderr',
    { limitHit: { limit: 'outputBytes', stream: 'stderr' } },
    { error: LimitExceededError, message: 'output limit exceeded (1 MiB on stderr)', limit: 'outputBytes', value: MiB },
  ],
  [
    'output limit on ctx.log',
    { limitHit: { limit: 'outputBytes', stream: 'ctx.log' } },
    {
      error: LimitExceededError,
      message: 'output limit exceeded (1 MiB on ctx.log)',
      limit: 'outputBytes',
      value: MiB,
    },
  ],
  [
    'one progress value over its cap, with its size',
    { limitHit: { limit: 'progressBytes', bytes: 3 * MiB + 16 } },
    {
      error: LimitExceededError,
      message: 'output limit exceeded (64 KiB in one progress value, got 3 MiB)',
      limit: 'progressBytes',
      value: 64 * 1024,
    },
  ],
  [
    'a result message over its limit',
    { limitHit: { limit: 'resultBytes' }, final: undefined },
    {
      error: LimitExceededError,
      message: 'output limit exceeded (16 MiB in one result message)',
      limit: 'resultBytes',
      value: 16 * MiB,
    },
  ],
  [
    'OOM kill seen in the cgroup (wins over the timeout)',
    { limitHit: { limit: 'memoryBytes' }, timedOut: true, ...NO_RESULT, exitCode: 137 },
    { error: LimitExceededError, message: 'memory limit exceeded (256 MiB)', limit: 'memoryBytes', value: 256 * MiB },
  ],
  [
    'a refused fork',
    { limitHit: { limit: 'pids' }, ...NO_RESULT },
    {
      error: LimitExceededError,
      message: 'process limit exceeded (64 processes and threads)',
      limit: 'pids',
      value: 64,
    },
  ],
  [
    'CPU time over the limit in the cgroup',
    { limitHit: { limit: 'cpuMs' }, ...NO_RESULT },
    { error: LimitExceededError, message: 'CPU time limit exceeded (30 s)', limit: 'cpuMs', value: 30_000 },
  ],
  [
    'the wall-clock limit',
    { timedOut: true, aborted: true, abortReason: typedReason, ...NO_RESULT, exitCode: undefined, signal: 'SIGTERM' },
    { error: TaskTimeoutError, message: 'timed out after 60 s' },
  ],
  ['aborted with a typed reason', { aborted: true, abortReason: typedReason, ...NO_RESULT }, { same: typedReason }],
  [
    'aborted with a string reason',
    { aborted: true, abortReason: 'cancelled by request', ...NO_RESULT, signal: 'SIGTERM' },
    { error: TaskFailedError, message: 'cancelled' },
  ],
  [
    "V8's heap limit",
    { ...NO_RESULT, exitCode: 134, stderrTail: 'FATAL ERROR: Reached heap limit Allocation failed' },
    { error: LimitExceededError, message: 'memory limit exceeded (256 MiB)', limit: 'memoryBytes' },
  ],
  [
    'SIGXCPU from prlimit (exit 152)',
    { ...NO_RESULT, exitCode: 152 },
    { error: LimitExceededError, message: 'CPU time limit exceeded (30 s)', limit: 'cpuMs' },
  ],
  [
    'SIGXFSZ from prlimit (exit 153)',
    { ...COMMAND, exitCode: 153 },
    { error: LimitExceededError, message: 'file size limit exceeded (8 MiB)', limit: 'fileSizeBytes', value: 8 * MiB },
  ],
  [
    'exit 152 without a sandbox is no rlimit',
    { ...NO_RESULT, sandboxed: false, exitCode: 152 },
    { error: TaskFailedError, message: 'task process exited with code 152 before returning a result' },
  ],
  ['SIGXCPU after a result is just the result', { exitCode: 152 }, { result: 42 }],
  [
    'a malformed runner message',
    { protocolError: 'Expected a runner message, got "hello"', exitCode: undefined, signal: 'SIGTERM' },
    { error: RunnerProtocolError, message: 'Expected a runner message, got "hello"' },
  ],
  [
    'bwrap could not set the sandbox up',
    { ...NO_RESULT, exitCode: 1, stderrTail: "bwrap: Can't mount tmpfs on /newroot/tmp: No space left\n" },
    {
      error: SandboxUnavailableError,
      message: "sandbox set-up failed: bwrap: Can't mount tmpfs on /newroot/tmp: No space left",
    },
  ],
  [
    'the task process died without a result',
    { ...NO_RESULT, exitCode: 1, stderrTail: 'line 1\nSegmentation fault\n' },
    {
      error: TaskFailedError,
      message: 'task process exited with code 1 before returning a result: line 1\nSegmentation fault',
    },
  ],
  [
    'the task process was killed by a signal',
    { ...NO_RESULT, exitCode: undefined, signal: 'SIGINT' },
    { error: TaskFailedError, message: 'task process was killed by SIGINT before returning a result' },
  ],
  ['a command printing JSON', { ...COMMAND, stdout: ' {"a":1}\n' }, { result: { a: 1 } }],
  ['a command printing nothing', { ...COMMAND }, { result: null }],
  [
    'a command printing something else',
    { ...COMMAND, stdout: 'hello\n' },
    { error: TaskFailedError, message: 'Expected the command to print one JSON value on stdout, got "hello"' },
  ],
  [
    'a command exiting non-zero',
    { ...COMMAND, exitCode: 3, stdout: '1', stderrTail: 'no such file\n' },
    { error: TaskFailedError, message: 'command exited with code 3: no such file' },
  ],
  [
    'a command exiting with a code its package declared unrecoverable: failed for good',
    { ...COMMAND, exitCode: 3, unrecoverableExitCodes: [2, 3], stderrTail: 'bad input\n' },
    { error: TaskUnrecoverableError, message: 'command exited with code 3: bad input' },
  ],
  [
    'a command exiting with another code than those declared: an ordinary failure',
    { ...COMMAND, exitCode: 4, unrecoverableExitCodes: [2, 3] },
    { error: TaskFailedError, message: 'command exited with code 4' },
  ],
];

describe('outcome(ending)', () => {
  for (const [name, changes, expected] of CASES) {
    it(name, () => {
      const got = outcome({ ...BASE, ...changes });
      if ('result' in expected) {
        assert.deepEqual(got, { result: expected.result });
        return;
      }
      assert.ok('error' in got, `expected an error, got the result ${JSON.stringify(got)}`);
      if ('same' in expected) {
        assert.equal(got.error, expected.same);
        return;
      }
      assert.ok(got.error instanceof expected.error, `${got.error.name}: ${got.error.message}`);
      // Exactly that class: TaskUnrecoverableError is a TaskFailedError too.
      assert.equal(
        got.error.constructor,
        expected.error,
        `${got.error.constructor.name}, expected ${expected.error.name}`,
      );
      assert.equal(got.error.message, expected.message);
      if (got.error instanceof LimitExceededError) {
        assert.equal(got.error.limit, expected.limit);
        assert.equal(got.error.value, expected.value ?? got.error.value);
      }
    });
  }

  it("keeps the task's own stack, or its name and message without one", () => {
    const withStack = outcome({ ...BASE, final: { type: 'error', name: 'E', message: 'm', stack: 'E: m\n    at f' } });
    const without = outcome({ ...BASE, final: { type: 'error', name: 'E', message: 'm' } });
    assert.ok('error' in withStack && withStack.error instanceof TaskFailedError);
    assert.ok('error' in without && without.error instanceof TaskFailedError);
    assert.equal(withStack.error.remoteStack, 'E: m\n    at f');
    assert.equal(without.error.remoteStack, 'E: m');
  });
});
