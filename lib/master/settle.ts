/**
 * Step 2 of a TaskInstance: its node job has finished. The master completes the TaskInstance with
 * the child's value, or fails it with the child's own error (message and stack) after copying the
 * child's recorded ending onto it (see `queues/task-ending.ts`). When the TaskInstance has reached
 * a final state, its package reference is released.
 */
import { Job, type Queue, UnrecoverableError } from 'bullmq';

import type { NodeJobData } from '../../queues/node.js';
import { recordedEnding, type TaskEnding } from '../../queues/task-ending.js';
import type { TaskInstanceData, TaskInstanceResult } from '../../queues/tasks.js';
import type { Logger } from '../core/logger.js';
import type { PackageStore } from '../packages/store.js';

export type TaskInstanceJob = Job<TaskInstanceData, TaskInstanceResult>;

/** Errors {@link failWith} recorded an ending for: the step's own decision to fail the TaskInstance. */
const recorded = new WeakSet<Error>();

/**
 * Records how the TaskInstance ended, then returns the error to fail it with. The record comes
 * first: BullMQ keeps only the error's message, which for a task's failure is the task's to choose.
 */
export async function failWith(job: TaskInstanceJob, ending: TaskEnding, error: Error): Promise<Error> {
  await job.updateData({ ...job.data, ending });
  recorded.add(error);
  return error;
}

/** The settled child's value, or throws its error; undefined while no child has settled. */
export async function settle(
  job: TaskInstanceJob,
  nodeQueue: (nodeId: string) => Queue<NodeJobData>,
): Promise<{ value: TaskInstanceResult } | undefined> {
  const values = await job.getChildrenValues<TaskInstanceResult>();
  const [value] = Object.values(values);
  if (Object.keys(values).length > 0) {
    return { value: value ?? null };
  }
  const failures = Object.entries(await job.getIgnoredChildrenFailures());
  const [first] = failures;
  if (first === undefined) {
    return undefined;
  }
  // The child is the node job with the TaskInstance's id on the queue of a node it was sent to;
  // its key is matched against those queues' keys rather than taken apart.
  const instanceId = job.id ?? '';
  const nodes = [job.data.dispatch?.nodeId, ...(job.data.lostNodes ?? [])].filter((id) => id !== undefined);
  for (const nodeId of nodes) {
    const queue = nodeQueue(nodeId);
    const failure = failures.find(([key]) => key === queue.toKey(instanceId));
    if (failure !== undefined) {
      const child = await Job.fromId<NodeJobData>(queue, instanceId);
      throw await failWith(job, recordedEnding(child?.data) ?? { kind: 'failed' }, childError(failure[1], child));
    }
  }
  throw await failWith(job, { kind: 'failed' }, new Error(first[1] || 'the node job failed'));
}

/** The task's own error (message and stack) from the failed node job. */
function childError(reason: string, child: Job<NodeJobData> | undefined): Error {
  const error = new Error(reason || 'the node job failed');
  const stack = child?.stacktrace?.at(-1);
  if (stack) {
    error.stack = stack;
  }
  return error;
}

/**
 * Whether the TaskInstance has had no node job yet: no dispatch recorded, none forgotten after a
 * lost node (`takenBackFrom`, `lostNodes`). Its first step then need not look for a settled child.
 */
export function neverDispatched(job: TaskInstanceJob): boolean {
  const { dispatch, lostNodes, takenBackFrom } = job.data;
  return dispatch === undefined && lostNodes === undefined && takenBackFrom === undefined;
}

/**
 * Releases the TaskInstance's package reference once it has reached a final state: at once when
 * it is known to (its step returned, or threw what fails it for good: {@link failsForGood}), after
 * checking when it failed (on the worker's `failed` event, for the cases that does not cover).
 * Idempotent (`release-ref-3.lua`).
 */
export async function releaseIfFinal(
  job: TaskInstanceJob,
  store: PackageStore,
  logger: Logger,
  final: boolean,
): Promise<void> {
  try {
    if (job.id !== undefined && (final || (await job.isFailed()))) {
      await store.releaseRef(job.id, job.data.package);
    }
  } catch (error) {
    // The prune job heals what we could not release here.
    logger.warn({ instanceId: job.id, err: (error as Error).message }, 'could not release a package reference');
  }
}

/**
 * Whether BullMQ fails the job for good when its processor throws `error`, known before it does:
 * an ending the step recorded ({@link failWith}: the node job failed, a cancel, a rejection),
 * thrown as an UnrecoverableError or on the last attempt (the first test of `Job.shouldRetryJob`).
 * Anything else, a lost lock or Redis gone mid-step, may leave the job to stall and run again, so
 * only the `failed` event, after BullMQ moved it, may release then; it also covers the ends BullMQ
 * decides alone (`maxStartedAttempts`, a backoff of -1).
 */
export function failsForGood(job: TaskInstanceJob, error: unknown): boolean {
  if (!(error instanceof Error) || !recorded.has(error)) {
    return false;
  }
  const unrecoverable = error instanceof UnrecoverableError || error.name === 'UnrecoverableError';
  return unrecoverable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}
