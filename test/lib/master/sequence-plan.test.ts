import assert from 'node:assert/strict';

import { ManifestError } from '../../../lib/core/errors.js';
import { readSequencePlan } from '../../../lib/master/sequence-plan.js';
import { testRedis } from '../../helpers.js';
import { createKeys } from '../../../lib/redis/keys.js';

const keys = createKeys();

const SHA1 = 'a'.repeat(40);
const pkg = { name: 'plans', sha1: SHA1 };

/** Stores a version entry as a deploy would (only the fields the plan reads, plus one it must ignore). */
async function stored(tasks: Record<string, unknown>): Promise<ReturnType<typeof testRedis>> {
  const redis = testRedis();
  await redis.hset(
    '{tydra}:package:plans:versions',
    SHA1,
    JSON.stringify({ name: 'plans', sha1: SHA1, size: 1, deployedAt: 0, manifest: { name: 'plans', tasks } }),
  );
  return redis;
}

async function manifestError(promise: Promise<unknown>): Promise<ManifestError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ManifestError, String(error));
    return error;
  }
  assert.fail('expected a ManifestError');
}

describe('sequence plans from the stored manifest (@integration)', () => {
  it('reads steps, `all` steps and the kind of each step task, ignoring fields it does not know', async () => {
    const redis = await stored({
      fetch: { module: 'fetch.js' },
      count: { kind: 'parallel', module: 'count.js', someFutureField: true },
      chart: { command: ['python3', 'chart.py'] },
      summary: { module: 'summary.js' },
      report: { kind: 'sequence', steps: ['fetch', 'count', { all: ['chart', 'summary'] }], description: 'x' },
    });
    const plan = await readSequencePlan(redis, keys, pkg, 'report');
    assert.deepEqual(plan.steps, [
      { tasks: ['fetch'], all: false, label: 'fetch' },
      { tasks: ['count'], all: false, label: 'count' },
      { tasks: ['chart', 'summary'], all: true, label: 'all(chart, summary)' },
    ]);
    assert.equal(plan.kindOf('count'), 'parallel');
    assert.equal(plan.kindOf('fetch'), 'simple');
    assert.equal(plan.kindOf('report'), 'sequence');
  });

  it('names the field of an unknown or self-naming step, and of a task that is no sequence', async () => {
    const redis = await stored({
      fetch: { module: 'fetch.js' },
      unknown: { kind: 'sequence', steps: ['fetch', { all: ['fetch', 'nope'] }] },
      itself: { kind: 'sequence', steps: ['fetch', 'itself'] },
    });
    const unknown = await manifestError(readSequencePlan(redis, keys, pkg, 'unknown'));
    assert.equal(unknown.field, 'tasks.unknown.steps[1].all[1]');
    assert.match(unknown.message, /name another task of the package, got "nope"/);
    assert.equal((await manifestError(readSequencePlan(redis, keys, pkg, 'itself'))).field, 'tasks.itself.steps[1]');
    assert.equal((await manifestError(readSequencePlan(redis, keys, pkg, 'fetch'))).field, 'tasks.fetch.steps');
    await manifestError(readSequencePlan(redis, keys, { name: 'plans', sha1: 'b'.repeat(40) }, 'unknown'));
  });
});
