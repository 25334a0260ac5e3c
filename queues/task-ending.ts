/**
 * How a TaskInstance (or one run of its node job) ended, as data rather than as text.
 *
 * BullMQ keeps only `failedReason` (a message) and `stacktrace` for a failed job, and a message
 * is the task's to choose: a task that throws "cancelled by request" must not read as cancelled.
 * So whoever fails a job first records its ending in the job's data (`data.ending`) with
 * `job.updateData`, then fails it:
 *  - the node records it on the node job before it throws (see lib/node/task-execution.ts);
 *  - the master copies the child's ending onto the TaskInstance before it fails it, and records
 *    its own endings (cancelled before dispatch, every node lost) the same way;
 *  - the client reads `ending` from a failed TaskInstance to choose its state and error class.
 * A completed job needs no record: its BullMQ state says it. A job failed by BullMQ itself (a
 * stalled job, an invalid job) has no ending and reads as `failed`. An ending left by an
 * earlier attempt is cleared when a new attempt starts, so it never describes another run.
 */
import { z } from 'zod';

export const taskEndingSchema = z.discriminatedUnion('kind', [
  /** The task returned a result. */
  z.strictObject({ kind: z.literal('completed') }),
  /**
   * The task threw, exited non-zero, or broke the runner protocol; `unrecoverable` when it said a
   * retry cannot help (`ctx.fail`, an error named `TydraUnrecoverable`), so it was not retried.
   */
  z.strictObject({ kind: z.literal('failed'), unrecoverable: z.literal(true).optional() }),
  /** Cancelled on request (`tydra cancel`, `run.cancel()`). */
  z.strictObject({ kind: z.literal('cancelled') }),
  /** Killed at its wall-clock limit. */
  z.strictObject({ kind: z.literal('timeout'), timeoutMs: z.number() }),
  /** Killed for breaking a limit: `limit` names it (`memoryBytes`, `pids`, `outputBytes`…), `value` is its value. */
  z.strictObject({ kind: z.literal('limit'), limit: z.string(), value: z.number() }),
  /** The nodes, not the task, failed: sandbox set-up failed every time, or every node holding it was lost. */
  z.strictObject({ kind: z.literal('infrastructure') }),
  /** It could not run at all: invalid job data, a package the node refused, a task the package lacks. */
  z.strictObject({ kind: z.literal('rejected') }),
]);

/** How a TaskInstance ended; see the module comment for who records it where. */
export type TaskEnding = z.infer<typeof taskEndingSchema>;

/**
 * The ending recorded in a job's data, or undefined when none (or a malformed one) is there:
 * job data is writable by anyone with Redis access, so it is checked, never trusted.
 */
export function recordedEnding(data: unknown): TaskEnding | undefined {
  if (typeof data !== 'object' || data === null || !('ending' in data)) {
    return undefined;
  }
  const parsed = taskEndingSchema.safeParse(data.ending);
  return parsed.success ? parsed.data : undefined;
}

/** `data` without a recorded ending (a new attempt or dispatch starts with none). */
export function withoutEnding<T extends { ending?: TaskEnding }>(data: T): Omit<T, 'ending'> {
  const { ending: _previous, ...rest } = data;
  return rest;
}
