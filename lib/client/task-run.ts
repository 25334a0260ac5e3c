/**
 * A handle on one submitted TaskInstance: wait for its result, follow its progress, cancel it,
 * read its status.
 */
import { EventEmitter } from 'node:events';

import { Job } from 'bullmq';

import type { TaskProgress } from '../../queues/progress.js';
import { TaskCancelledError, TaskNotFoundError } from '../core/errors.js';
import { failedError } from './task-ending.js';
import { ProgressFollower } from './progress-follower.js';
import type { TaskRunContext } from './task-run-context.js';
import type { CancelResult, TaskStatus } from './types.js';

export type { TaskRunContext } from './task-run-context.js';

/** The events of a {@link TaskRun}. */
export interface TaskRunEvents {
  /**
   * The TaskInstance's progress, live, each time it changes (and once at first, with what it had
   * reported before the listener was added). Shapes: see `TaskProgress`.
   */
  progress: [progress: TaskProgress];
  /**
   * Following the progress failed (Redis out of reach…). Emitted only when an `error` listener is
   * there: a progress display must not crash a program that waits for the result anyway.
   */
  error: [error: Error];
  newListener: [event: string | symbol, listener: (...args: unknown[]) => void];
  removeListener: [event: string | symbol, listener: (...args: unknown[]) => void];
}

/**
 * One submitted TaskInstance. `run.on('progress', fn)` starts following its progress on the
 * client's shared QueueEvents; following stops by itself when the TaskInstance ends, when the
 * last `progress` listener is removed, or at {@link TaskRun.close}.
 */
export class TaskRun extends EventEmitter<TaskRunEvents> {
  private follower: ProgressFollower | undefined;

  /** @internal Made by `Tydra.submit` and `Tydra.run`. */
  constructor(
    private readonly context: TaskRunContext,
    /** The TaskInstance id. */
    readonly id: string,
    /** The pinned reference `name@sha1/task` (undefined for a handle made by `run(id)`). */
    readonly ref: string | undefined,
  ) {
    super();
    this.on('newListener', (event) => {
      if (event === 'progress') {
        this.follow();
      }
    });
    this.on('removeListener', (event) => {
      if (event === 'progress' && this.listenerCount('progress') === 0) {
        this.follower?.stop();
      }
    });
  }

  /**
   * Stops following the progress and removes the run's `progress` and `error` listeners (a later
   * `on('progress')` follows again). Idempotent. Not needed after the TaskInstance ended.
   */
  close(): void {
    this.follower?.stop();
    this.follower = undefined;
    this.removeAllListeners('progress');
    this.removeAllListeners('error');
  }

  private follow(): void {
    if (this.follower?.active) {
      return;
    }
    const follower = new ProgressFollower(this.context, this.id, (progress) => this.deliver(progress));
    this.follower = follower;
    follower.start().catch((error: unknown) => {
      follower.stop();
      if (this.listenerCount('error') > 0) {
        this.emit('error', error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  /**
   * Emits `progress` from inside the shared QueueEvents' emit: a listener that throws must not
   * break that emitter for every other run of the client, so its error goes to this run's `error`
   * listeners, or else is thrown on its own tick (an uncaught exception, as from any listener).
   */
  private deliver(progress: TaskProgress): void {
    try {
      this.emit('progress', progress);
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      if (this.listenerCount('error') > 0) {
        this.emit('error', failure);
      } else {
        process.nextTick(() => {
          throw failure;
        });
      }
    }
  }

  /**
   * Waits for the TaskInstance to finish and returns the task's result. Rejects with a
   * `TaskFailedError` carrying the task's message (and its stack as `remoteStack`).
   */
  async result(options: { timeoutMs?: number } = {}): Promise<unknown> {
    const events = await this.context.events();
    // A handle, not a fetch: waitUntilFinished needs only the id, and its own first check (one
    // script: finished? with what result?) also says when the job does not exist, which spares
    // a round trip before every wait. Job ids are TaskInstance ids; the name only labels errors.
    const job = new Job(this.context.tasksQueue, 'task', null, {}, this.id);
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
      if (finished === undefined && isMissingJob(error)) {
        throw new TaskNotFoundError(this.id);
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

/** BullMQ's waitUntilFinished found no job with that id (its `isFinished` check said -1). */
function isMissingJob(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('Missing key for job ');
}
