/**
 * `node.<nodeId>`: one queue per node (BullMQ queue names cannot contain `:`). Each job is the
 * node-side half of a TaskInstance: a child of the TaskInstance job in `tasks`, with the same id.
 * The node's worker runs it in a fresh sandbox; its return value is the task's result, its
 * failure reason the task's error message and its stack trace the task's stack.
 */
import type { DefaultJobOptions } from 'bullmq';

import { z } from 'zod';

import { taskInstanceSchema } from './tasks.js';

export const NODE_QUEUE_PREFIX = 'node.';
export const NODE_JOB = 'run';

export function nodeQueueName(nodeId: string): string {
  return `${NODE_QUEUE_PREFIX}${nodeId}`;
}

export function isNodeQueueName(name: string): boolean {
  return name.startsWith(NODE_QUEUE_PREFIX);
}

/**
 * Data of a node job: the TaskInstance fields a node needs, as the master copies them, plus
 * the node's own count of sandbox set-up failures (they do not use the task's attempts).
 * Derived from the TaskInstance schema so the two cannot drift apart.
 */
export const nodeJobSchema = taskInstanceSchema
  .pick({ ref: true, package: true, task: true, input: true, limits: true, retryOnLimit: true })
  .extend({ instanceId: z.string().min(1), infraFailures: z.number().int().min(0).optional() });
export type NodeJobData = z.infer<typeof nodeJobSchema>;

/** Retention as for `tasks`; logs capped so a chatty task cannot fill Redis. */
export const NODE_JOB_OPTIONS: DefaultJobOptions = {
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
  keepLogs: 1000,
};
