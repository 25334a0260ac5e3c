/**
 * Durable writes on a replicated Redis. Replication is asynchronous: the primary acknowledges a
 * write before any replica has it, so a failover in that moment loses it. Redis `WAIT` blocks
 * until `replicas` replicas have every write this connection made so far, or the timeout passes,
 * and says how many did; it does not make the write synchronous (a primary that dies after
 * `WAIT` returned too few still has it, and so may its successor), it only tells the caller.
 */
import type { Redis } from 'ioredis';

import { SubmitNotReplicatedError } from '../core/errors.js';

/**
 * Resolves once `replicas` replicas have acknowledged every write `redis` made so far (the
 * TaskInstance `instanceId` among them); rejects with a {@link SubmitNotReplicatedError} when
 * fewer did within `timeoutMs`.
 */
export async function confirmReplicated(
  redis: Redis,
  instanceId: string,
  { replicas, timeoutMs }: { replicas: number; timeoutMs: number },
): Promise<void> {
  const acknowledged = await redis.wait(replicas, timeoutMs);
  if (acknowledged < replicas) {
    throw new SubmitNotReplicatedError(instanceId, replicas, acknowledged, timeoutMs);
  }
}
