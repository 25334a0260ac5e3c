/**
 * `workunits`: one queue shared by every node. Each job is a batch of consecutive workunits of one
 * parallel TaskInstance (Pydra batched about five per dispatch; batching is what lets a workunit
 * cost less than a job). Every node's workunit Worker pulls from it when it has a free slot, so
 * work spreads by free capacity, a node that joins mid-run gets work at once, and the batches of a
 * node that dies go back to waiting through BullMQ's stalled-job check (at least once per unit).
 *
 * A batch's job id is `<instanceId>.b<first index>` (BullMQ ids cannot contain `:`); its attempt
 * counter is tydra's own (`attempt`), because a failed unit is retried alone, not with its batch.
 */
import type { DefaultJobOptions } from 'bullmq';
import { z } from 'zod';

export const WORKUNITS_QUEUE = 'workunits';
export const WORKUNIT_BATCH_JOB = 'batch';

export const workunitBatchSchema = z.object({
  instanceId: z.string().min(1),
  /** Index of the first unit; the units are `first`, `first + 1`, … in split order. */
  first: z.number().int().min(0),
  units: z.array(z.unknown()).min(1),
  /** 1 for a batch from split; n for a unit retried after n - 1 failed tries. */
  attempt: z.number().int().min(1),
});
export type WorkunitBatchData = z.infer<typeof workunitBatchSchema>;

/** `handBack` names a batch handed back by a node that shut down mid-batch (its own id is still taken). */
export function batchJobId(instanceId: string, first: number, attempt: number, handBack?: string): string {
  const base = attempt === 1 ? `${instanceId}.b${first}` : `${instanceId}.b${first}.a${attempt}`;
  return handBack === undefined ? base : `${base}.h${handBack}`;
}

/** Results live in tydra's own keys (see `lib/redis/keys.ts`), so a batch job keeps nothing. */
export const WORKUNIT_JOB_OPTIONS: DefaultJobOptions = {
  attempts: 1,
  removeOnComplete: true,
  removeOnFail: { age: 24 * 3600, count: 1000 },
};
