/**
 * `schedules`: one BullMQ job scheduler per tydra schedule (`tydra schedule add`), whose id is the
 * schedule's name. Each firing is a `fire` job that a master turns into a normal TaskInstance in
 * `tasks`: resolved at that moment (the latest version for `name/task`, or the pinned one), with a
 * package reference and the schedule's name in its data. Upserting a scheduler is idempotent, so
 * any number of clients and masters are safe; each firing is one job, run by one master.
 */
import type { DefaultJobOptions } from 'bullmq';
import { z } from 'zod';

import { secretMappingSchema } from '../lib/core/secret-box.js';
import { taskEnvSchema } from '../lib/core/task-env.js';

export const SCHEDULES_QUEUE = 'schedules';

/** Job name of one firing. */
export const FIRE_JOB = 'fire';

/** Schedule names: letters, digits, `.`, `_`, `-`; 1 to 64 characters. */
export const SCHEDULE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const fireJobSchema = z.object({
  schedule: z.string().regex(SCHEDULE_NAME_PATTERN),
  /** `name/task` (the latest version at each firing) or `name@sha1/task` (pinned). */
  ref: z.string().min(1),
  input: z.unknown(),
  /** Environment variables of each TaskInstance it makes (as the `env` submit option). */
  env: taskEnvSchema.optional(),
  /** Environment variable → stored secret name of each TaskInstance (names only, never values). */
  secrets: secretMappingSchema.optional(),
});
export type FireJobData = z.infer<typeof fireJobSchema>;

/** A firing's job keeps the TaskInstance id it made (its result); the last thousand are kept. */
export const FIRE_JOB_OPTIONS: DefaultJobOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { count: 1000 },
  removeOnFail: { count: 1000 },
};
