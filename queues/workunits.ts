/**
 * `workunits`: one queue shared by every node (and `workunits.secrets`, the same for TaskInstances
 * that need secrets, shared by the nodes that hold a secret key). Each job is a batch of
 * consecutive workunits of one parallel TaskInstance (Pydra batched about five per dispatch;
 * batching is what lets a workunit cost less than a job). Every node's workunit Worker pulls from it when it has a free slot, so
 * work spreads by free capacity, a node that joins mid-run gets work at once, and the batches of a
 * node that dies go back to waiting through BullMQ's stalled-job check (at least once per unit).
 *
 * A batch's job id is `<instanceId>.b<first index>` (BullMQ ids cannot contain `:`); its attempt
 * counter is tydra's own (`attempt`), because a failed unit is retried alone, not with its batch.
 */
import type { DefaultJobOptions } from 'bullmq';
import { z } from 'zod';

export const WORKUNITS_QUEUE = 'workunits';
/**
 * The batches of parallel TaskInstances that need secrets. Only nodes that hold a secret key pull
 * from it, so a node started without one never takes a unit it could only fail. The node that
 * coordinates such an instance holds a key (it opened the secrets for split), so someone always
 * pulls: units never wait for a node that may never come.
 */
export const SECRETS_WORKUNITS_QUEUE = 'workunits.secrets';
/** Every workunits queue, plain first. */
export const WORKUNITS_QUEUES = [WORKUNITS_QUEUE, SECRETS_WORKUNITS_QUEUE] as const;
export type WorkunitsQueueName = (typeof WORKUNITS_QUEUES)[number];

/** Whether a parallel TaskInstance with this secret mapping (names only) needs nodes holding a key. */
export function needsSecretKey(secrets: Readonly<Record<string, string>> | undefined): boolean {
  return secrets !== undefined && Object.keys(secrets).length > 0;
}

/** The queue of a parallel TaskInstance's batches, from its secret mapping. */
export function workunitsQueueOf(secrets: Readonly<Record<string, string>> | undefined): WorkunitsQueueName {
  return needsSecretKey(secrets) ? SECRETS_WORKUNITS_QUEUE : WORKUNITS_QUEUE;
}
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
