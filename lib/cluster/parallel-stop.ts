/**
 * Stops every outstanding workunit of a parallel TaskInstance, wherever it is: records why (so a
 * batch that starts later does nothing), removes the batches still waiting, and tells every node
 * to kill the instance's work sandboxes. Used by the coordinator (a unit failed past the policy,
 * a cancel) and by the client's cancel (the coordinator may be parked, not running).
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

import type { WorkunitBatchData } from '../../queues/workunits.js';
import type { Keyspace } from '../redis/keys.js';
import { abortParallel, type ParallelAbort, pendingBatches } from '../redis/parallel-commands.js';

export async function stopParallel(
  redis: Redis,
  keys: Keyspace,
  workunits: Queue<WorkunitBatchData>,
  instanceId: string,
  abort: ParallelAbort,
): Promise<ParallelAbort> {
  const held = await abortParallel(redis, keys, instanceId, abort);
  await redis.publish(keys.parallelAbortChannel, instanceId);
  // A batch running now is locked and cannot be removed: the message above kills its sandbox,
  // and the batch ends without running its other units.
  const batches = await pendingBatches(redis, keys, instanceId);
  await Promise.allSettled(batches.map((id) => workunits.remove(id)));
  return held;
}
