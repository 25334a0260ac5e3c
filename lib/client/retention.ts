/**
 * How long finished TaskInstances stay readable (results, errors, `tydra runs`): BullMQ's
 * `removeOnComplete` / `removeOnFail`, set per job at submit from the client's `keepCompleted` and
 * `keepFailed` options. A finished TaskInstance holds no package reference (the master lets go of
 * it as it finishes), so keeping many costs Redis memory only, never package versions.
 */
import type { DefaultJobOptions, KeepJobs } from 'bullmq';
import { z } from 'zod';

import { TASKS_JOB_OPTIONS } from '../../queues/tasks.js';

/** How many finished TaskInstances to keep, and for how long: the first limit reached applies. */
export interface KeepFinished {
  /** Keep at most this many (the newest). Absent: no count limit. */
  count?: number;
  /** Keep none older than this (ms since it finished). Absent: no age limit. */
  ageMs?: number;
}

/** The defaults: completed 10,000 or 24 h, failed 7 days (as `TASKS_JOB_OPTIONS`, which masters use). */
export { RETENTION_DEFAULTS } from './defaults.js';

const YEAR_MS = 365 * 24 * 3600 * 1000;

export const keepFinishedSchema = z
  .strictObject({
    count: z.number().int().min(0, 'an integer >= 0').max(10_000_000).optional(),
    ageMs: z.number().int().min(1000, 'at least 1,000 ms').max(YEAR_MS).optional(),
  })
  .refine((keep) => keep.count !== undefined || keep.ageMs !== undefined, 'a `count`, an `ageMs` or both');

/** BullMQ's form: age in whole seconds. */
function keepJobs(keep: KeepFinished): KeepJobs {
  return {
    ...(keep.count !== undefined ? { count: keep.count } : {}),
    ...(keep.ageMs !== undefined ? { age: Math.ceil(keep.ageMs / 1000) } : {}),
  } as KeepJobs;
}

/** The TaskInstance job options of a client that keeps `keepCompleted` and `keepFailed`. */
export function retentionJobOptions(keepCompleted: KeepFinished, keepFailed: KeepFinished): DefaultJobOptions {
  return { ...TASKS_JOB_OPTIONS, removeOnComplete: keepJobs(keepCompleted), removeOnFail: keepJobs(keepFailed) };
}
