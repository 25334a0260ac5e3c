/** A handle on one submitted TaskInstance: wait for its result, cancel it, read its status. */
import { Job, type Queue, type QueueEvents } from 'bullmq';

import type { TaskInstanceData, TaskInstanceResult } from '../../queues/tasks.js';
import { TaskCancelledError, TaskNotFoundError } from '../core/errors.js';
import { failedError } from './task-ending.js';
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

/** One submitted TaskInstance. */
export class TaskRun {
  /** @internal Made by `Tydra.submit` and `Tydra.run`. */
  constructor(
    private readonly context: TaskRunContext,
    /** The TaskInstance id. */
    readonly id: string,
    /** The pinned reference `name@sha1/task` (undefined for a handle made by `run(id)`). */
    readonly ref: string | undefined,
  ) {}

  /**
   * Waits for the TaskInstance to finish and returns the task's result. Rejects with a
   * `TaskFailedError` carrying the task's message (and its stack as `remoteStack`).
   */
  async result(options: { timeoutMs?: number } = {}): Promise<unknown> {
    const events = await this.context.events();
    const job = await Job.fromId(this.context.tasksQueue, this.id);
    if (job === undefined) {
      throw (await this.context.cancelRecord(this.id)) !== undefined
        ? new TaskCancelledError(this.id)
        : new TaskNotFoundError(this.id);
    }
    // A TaskInstance cancelled before it started is removed: BullMQ then sends `removed`, not
    // `failed`, and waitUntilFinished alone would wait forever.
    let onRemoved: ((event: { jobId: string }) => void) | undefined;
    const removed = new Promise<never>((_resolve, reject) => {
      onRemoved = ({ jobId }) => {
        if (jobId === this.id) {
          reject(new TaskCancelledError(this.id));
        }
      };
      events.on('removed', onRemoved);
    });
    try {
      return await Promise.race([job.waitUntilFinished(events, options.timeoutMs), removed]);
    } catch (error) {
      if (error instanceof TaskCancelledError) {
        throw error;
      }
      const finished = await Job.fromId(this.context.tasksQueue, this.id);
      if (finished?.failedReason) {
        throw failedError(finished, this.id);
      }
      if (finished === undefined && (await this.context.cancelRecord(this.id)) !== undefined) {
        throw new TaskCancelledError(this.id);
      }
      throw error;
    } finally {
      if (onRemoved !== undefined) {
        events.off('removed', onRemoved);
      }
    }
  }

  /** Cancels this TaskInstance; see {@link Tydra.cancel}. */
  async cancel(): Promise<CancelResult> {
    return this.context.cancel(this.id);
  }

  async status(): Promise<TaskStatus> {
    return this.context.status(this.id);
  }
}
