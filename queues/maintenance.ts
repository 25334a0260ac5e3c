/**
 * `maintenance`: housekeeping jobs run by masters. Its only job today is `prune`, produced by a
 * BullMQ job scheduler that masters upsert at start (an upsert of the same scheduler id is
 * idempotent, so many masters starting at once neither duplicate nor lose it). Each run is a
 * normal job: operators see it, its log and its result in Bull Board.
 */
import type { DefaultJobOptions } from 'bullmq';

export const MAINTENANCE_QUEUE = 'maintenance';

/** Job name of one prune pass. */
export const PRUNE_JOB = 'prune';

/** Scheduler id of the repeating prune pass. */
export const PRUNE_SCHEDULER = 'prune-packages';

export interface PruneJobData {
  graceMs: number;
}

export const MAINTENANCE_JOB_OPTIONS: DefaultJobOptions = {
  removeOnComplete: { count: 100 },
  removeOnFail: { count: 100 },
};
