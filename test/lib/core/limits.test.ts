import assert from 'node:assert/strict';

import { LimitExceededError, TaskFailedError } from '../../../lib/core/errors.js';
import {
  type CompiledTaskLimits,
  DEFAULT_MAX_TASK_LIMITS,
  DEFAULT_TASK_LIMITS,
  describeLimit,
  LIMIT_NAMES,
  parseLimitValue,
  resolveLimits,
} from '../../../lib/core/limits.js';

const MiB = 1024 * 1024;

describe('resolveLimits', () => {
  it('resolves submission > task > package > default, capped by the maximum', () => {
    const { limits, clamped } = resolveLimits(
      {
        submission: { memoryBytes: 900 * MiB },
        task: { memoryBytes: 100 * MiB, pids: 10 },
        package: { pids: 20, cpuMs: 5000 },
      },
      DEFAULT_TASK_LIMITS,
      { ...DEFAULT_MAX_TASK_LIMITS, memoryBytes: 768 * MiB },
    );
    assert.equal(limits.memoryBytes, 768 * MiB);
    assert.equal(limits.pids, 10);
    assert.equal(limits.cpuMs, 5000);
    assert.equal(limits.timeoutMs, DEFAULT_TASK_LIMITS.timeoutMs);
    assert.deepEqual(clamped, [{ name: 'memoryBytes', asked: 900 * MiB, allowed: 768 * MiB }]);
  });

  it('takes every limit from the first layer that sets it, each limit on its own', () => {
    const { limits, clamped } = resolveLimits(
      { submission: { timeoutMs: 1000 }, task: { cpuMs: 2000, timeoutMs: 9000 }, package: { openFiles: 50, cpuMs: 9 } },
      DEFAULT_TASK_LIMITS,
      DEFAULT_MAX_TASK_LIMITS,
    );
    assert.deepEqual(limits, { ...DEFAULT_TASK_LIMITS, timeoutMs: 1000, cpuMs: 2000, openFiles: 50 });
    assert.deepEqual(clamped, []);
  });

  it('with no layer at all returns the defaults, as a copy', () => {
    const { limits, clamped } = resolveLimits({}, DEFAULT_TASK_LIMITS, DEFAULT_MAX_TASK_LIMITS);
    assert.deepEqual(limits, DEFAULT_TASK_LIMITS);
    assert.notEqual(limits, DEFAULT_TASK_LIMITS);
    assert.deepEqual(clamped, []);
  });

  it('caps every limit, from any layer or the defaults, and lists each cap once in LIMIT_NAMES order', () => {
    const maxima = Object.fromEntries(LIMIT_NAMES.map((name) => [name, 100])) as CompiledTaskLimits;
    const defaults = Object.fromEntries(LIMIT_NAMES.map((name) => [name, 150])) as CompiledTaskLimits;
    const { limits, clamped } = resolveLimits(
      { submission: { pids: 400 }, task: { memoryBytes: 300 }, package: { cpuMs: 200, pids: 1 } },
      defaults,
      maxima,
    );
    assert.deepEqual(limits, maxima);
    const asked: Record<string, number> = { pids: 400, memoryBytes: 300, cpuMs: 200 };
    assert.deepEqual(
      clamped,
      LIMIT_NAMES.map((name) => ({ name, asked: asked[name] ?? 150, allowed: 100 })),
    );
  });

  it('never raises a value below the maximum, and a value at the maximum is not a clamp', () => {
    const { limits, clamped } = resolveLimits(
      { submission: { pids: DEFAULT_MAX_TASK_LIMITS.pids, memoryBytes: 1 } },
      DEFAULT_TASK_LIMITS,
      DEFAULT_MAX_TASK_LIMITS,
    );
    assert.equal(limits.pids, DEFAULT_MAX_TASK_LIMITS.pids);
    assert.equal(limits.memoryBytes, 1);
    assert.deepEqual(clamped, []);
  });
});

describe('limit values and names', () => {
  it('parses CLI limit values with units', () => {
    assert.equal(parseLimitValue('memoryBytes', '512MiB'), 512 * MiB);
    assert.equal(parseLimitValue('memoryBytes', '1.5g'), 1.5 * 1024 * MiB);
    assert.equal(parseLimitValue('timeoutMs', '90s'), 90_000);
    assert.equal(parseLimitValue('timeoutMs', '2m'), 120_000);
    assert.equal(parseLimitValue('pids', '128'), 128);
    assert.throws(() => parseLimitValue('pids', '12k'), /Expected a unit for pids \(a plain count\), got `k`/);
    assert.throws(
      () => parseLimitValue('memoryBytes', 'lots'),
      /Expected a number with an optional unit for memory, got `lots`/,
    );
    // Messages name the limit as the CLI's --limit does, or the flag the caller names.
    assert.throws(() => parseLimitValue('openFiles', '1k'), /^TypeError: Expected a unit for open-files \(/);
    assert.throws(() => parseLimitValue('memoryBytes', '1XB', '--cache-max'), /Expected a unit for --cache-max \(/);
  });

  it('describes limits the way error messages name them', () => {
    assert.equal(describeLimit('memoryBytes', 512 * MiB), 'memory limit (512 MiB)');
    assert.equal(describeLimit('cpuMs', 1500), 'CPU time limit (1.5 s)');
    assert.equal(describeLimit('outputBytes', 64 * 1024), 'output limit (64 KiB per stream)');
  });

  it('names limits in errors', () => {
    assert.ok(
      new LimitExceededError('memory limit exceeded (512 MiB)', 'id', 'memoryBytes', 512 * MiB) instanceof
        TaskFailedError,
    );
  });
});
