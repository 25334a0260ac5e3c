/**
 * Idempotent submits: a submission with a key claims `{NAME}:idem:<pkg>:<task>:<key>` for its
 * TaskInstance id before it enqueues anything, in one command that also returns the id already
 * there (SET NX GET), so two submits racing on one key agree on a single TaskInstance.
 */
import type { Redis } from 'ioredis';

import type { Keyspace } from './keys.js';
import { runScript } from './scripts.js';

export interface IdempotencyScope {
  pkg: string;
  task: string;
  key: string;
}

/**
 * Claims the key for `instanceId` for `ttlMs`; returns undefined when claimed, or the id of the
 * TaskInstance that holds it already.
 */
export async function claimIdempotencyKey(
  redis: Redis,
  keys: Keyspace,
  scope: IdempotencyScope,
  instanceId: string,
  ttlMs: number,
): Promise<string | undefined> {
  const key = keys.idempotency(scope.pkg, scope.task, scope.key);
  const previous = await redis.call('SET', key, instanceId, 'PX', String(ttlMs), 'NX', 'GET');
  return typeof previous === 'string' ? previous : undefined;
}

/** Lets go of a claim whose submit failed, if it is still this TaskInstance's (see `release-idempotency-1.lua`). */
export async function releaseIdempotencyKey(
  redis: Redis,
  keys: Keyspace,
  scope: IdempotencyScope,
  instanceId: string,
): Promise<void> {
  await runScript(redis, {
    script: 'releaseIdempotency',
    keys: [keys.idempotency(scope.pkg, scope.task, scope.key)],
    argv: [instanceId],
  });
}
