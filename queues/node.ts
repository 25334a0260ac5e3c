/**
 * `node.<nodeId>`: one queue per node (BullMQ queue names cannot contain `:`). Each job is the
 * node-side half of a TaskInstance: a child of the TaskInstance job in `tasks`, with the same id.
 * The node's worker runs it in a fresh sandbox; its return value is the task's result, its
 * failure reason the task's error message and its stack trace the task's stack.
 */
import type { DefaultJobOptions } from 'bullmq';

import type { TaskLimits } from '../lib/task-limits.js';

export const NODE_QUEUE_PREFIX = 'node.';
export const NODE_JOB = 'run';

export function nodeQueueName(nodeId: string): string {
  return `${NODE_QUEUE_PREFIX}${nodeId}`;
}

export function isNodeQueueName(name: string): boolean {
  return name.startsWith(NODE_QUEUE_PREFIX);
}

/** Data of a node job. */
export interface NodeJobData {
  instanceId: string;
  ref: string;
  package: { name: string; sha1: string };
  task: string;
  input: unknown;
  timeoutMs?: number;
  limits?: TaskLimits;
  retryOnLimit?: boolean;
  /** Sandbox set-up failures so far on this node (they do not use the task's attempts). */
  infraFailures?: number;
}

/** Retention as for `tasks`; logs capped so a chatty task cannot fill Redis. */
export const NODE_JOB_OPTIONS: DefaultJobOptions = {
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
  keepLogs: 1000,
};
