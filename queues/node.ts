/**
 * `node.<nodeId>`: one queue per node (BullMQ queue names cannot contain `:`). Each job is the
 * node-side half of a TaskInstance: a child of the TaskInstance job in `tasks`, with the same id.
 * The node's BullMQ Worker runs it in a fresh sandbox; its return value is the task's result, its
 * failure reason the task's error message and its stack trace the task's stack.
 */
import type { DefaultJobOptions } from 'bullmq';

import { z } from 'zod';

import { taskEndingSchema } from './task-ending.js';
import { taskInstanceSchema } from './tasks.js';

const NODE_QUEUE_PREFIX = 'node.';
export const NODE_JOB = 'run';

export function nodeQueueName(nodeId: string): string {
  return `${NODE_QUEUE_PREFIX}${nodeId}`;
}

/**
 * Data of a node job: the TaskInstance fields a node needs, as the master copies them, plus
 * the node's own count of sandbox set-up failures (they do not use the task's attempts) and the
 * ending the node records before it fails the job (see `task-ending.ts`).
 * Derived from the TaskInstance schema so the two cannot drift apart.
 */
export const nodeJobSchema = taskInstanceSchema
  .pick({
    ref: true,
    package: true,
    task: true,
    input: true,
    limits: true,
    retryOnLimit: true,
    attempts: true,
    kind: true,
    maxFailedWorkunits: true,
    env: true,
    secrets: true,
  })
  .partial({ attempts: true })
  .extend({
    instanceId: z.string().min(1),
    infraFailures: z.number().int().min(0).optional(),
    ending: taskEndingSchema.optional(),
  });
export type NodeJobData = z.infer<typeof nodeJobSchema>;

/**
 * Log lines of one run kept in Redis, on the node job and on its TaskInstance; the node counts
 * the lines past this and says how many at the end of the run.
 */
export const MAX_RUN_LOG_LINES = 1000;

/** Retention as for `tasks`; logs capped (the run's lines and the note of what was dropped) so a chatty task cannot fill Redis. */
export const NODE_JOB_OPTIONS: DefaultJobOptions = {
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
  keepLogs: MAX_RUN_LOG_LINES + 1,
};
