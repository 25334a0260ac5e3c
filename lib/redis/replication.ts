/**
 * Durable writes on a replicated Redis. Replication is asynchronous: the primary acknowledges a
 * write before any replica has it, so a failover in that moment loses it. Redis `WAIT` blocks
 * until `replicas` replicas have every write this connection made so far, or the timeout passes,
 * and says how many did; it does not make the write synchronous (a primary that dies after
 * `WAIT` returned too few still has it, and so may its successor), it only tells the caller.
 */
import type { Redis } from 'ioredis';

import { SubmitNotReplicatedError } from '../core/errors.js';
import type { Keyspace } from './keys.js';

/** What `WAIT` needs of a Cluster: its slot map (`host:port` of each slot's primary first) and its nodes. */
interface ClusterView {
  slots: string[][];
  nodes(role: 'master'): Redis[];
}

/**
 * The connection `WAIT` must go to: WAIT counts the writes of the connection it is sent on, and a
 * Cluster, which would send a keyless command to any node, wrote the submit on its connection
 * to the primary of the namespace's slot.
 */
async function waitConnection(redis: Redis, keys: Keyspace): Promise<Redis> {
  if (!redis.isCluster) {
    return redis;
  }
  const slot = Number(await redis.call('CLUSTER', 'KEYSLOT', keys.tag));
  const cluster = redis as unknown as ClusterView;
  const primary = cluster.slots[slot]?.[0];
  const node = cluster.nodes('master').find(({ options }) => `${options.host}:${options.port}` === primary);
  return node ?? redis;
}

/**
 * Resolves once `replicas` replicas have acknowledged every write `redis` made so far (the
 * TaskInstance `instanceId` among them); rejects with a {@link SubmitNotReplicatedError} when
 * fewer did within `timeoutMs`.
 */
export async function confirmReplicated(
  redis: Redis,
  keys: Keyspace,
  instanceId: string,
  { replicas, timeoutMs }: { replicas: number; timeoutMs: number },
): Promise<void> {
  const acknowledged = await (await waitConnection(redis, keys)).wait(replicas, timeoutMs);
  if (acknowledged < replicas) {
    throw new SubmitNotReplicatedError(instanceId, replicas, acknowledged, timeoutMs);
  }
}
