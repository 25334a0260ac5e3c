/** @internal What a TaskRun (and its progress follower) gets from the client that made it. */
import type { Queue, QueueEvents } from 'bullmq';

import type { TaskInstanceData, TaskInstanceResult } from '../../queues/tasks.js';
import type { CancelRecord } from './cancel-record.js';
import type { CancelResult, TaskStatus } from './types.js';

/**
 * @internal What a {@link TaskRun} needs from the client that made it, given at construction:
 * the run reaches nothing else of the client.
 */
export interface TaskRunContext {
  readonly tasksQueue: Queue<TaskInstanceData, TaskInstanceResult>;
  /** The client's shared QueueEvents on the tasks queue, opened on first use. */
  events(): Promise<QueueEvents>;
  cancelRecord(id: string): Promise<CancelRecord | undefined>;
  cancel(id: string): Promise<CancelResult>;
  status(id: string): Promise<TaskStatus>;
}
