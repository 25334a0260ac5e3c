/**
 * What a client makes of a finished TaskInstance job: its state and, once failed, its error.
 * Both come from the ending the master recorded on the job (`queues/task-ending.ts`), never
 * from the failure message, which a task may set to anything (even "cancelled by request").
 */
import type { Job } from 'bullmq';

import { recordedEnding } from '../../queues/task-ending.js';
import {
  LimitExceededError,
  TaskCancelledError,
  TaskFailedError,
  TaskTimeoutError,
  TaskUnrecoverableError,
} from '../core/errors.js';

/** Whether a failed TaskInstance job was cancelled (its recorded ending says so). */
export function wasCancelled(job: Pick<Job, 'data'>): boolean {
  return recordedEnding(job.data)?.kind === 'cancelled';
}

/**
 * The error `result()` rejects with for a failed TaskInstance job: `TaskCancelledError` when it
 * was cancelled, `TaskTimeoutError` when it ran out of time, `LimitExceededError` when it broke a
 * limit, `TaskUnrecoverableError` when it failed for good on its own say (`ctx.fail`),
 * `TaskFailedError` otherwise (with the task's message, and its stack as `remoteStack`).
 */
export function failedError(job: Pick<Job, 'data' | 'failedReason' | 'stacktrace'>, id: string): TaskFailedError {
  const ending = recordedEnding(job.data);
  const stack = job.stacktrace?.at(-1);
  switch (ending?.kind) {
    case 'cancelled':
      return new TaskCancelledError(id);
    case 'timeout':
      return new TaskTimeoutError(ending.timeoutMs, id);
    case 'limit':
      return new LimitExceededError(job.failedReason, id, ending.limit, ending.value);
    case 'failed':
      return ending.unrecoverable
        ? new TaskUnrecoverableError(job.failedReason, id, stack)
        : new TaskFailedError(job.failedReason, id, stack);
    default:
      return new TaskFailedError(job.failedReason, id, stack);
  }
}
