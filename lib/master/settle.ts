/**
 * Step 2 of a TaskInstance: its node job has finished. The master completes the TaskInstance with
 * the child's value, or fails it with the child's own error (message and stack) after copying the
 * child's recorded ending onto it (see `queues/task-ending.ts`). When the TaskInstance has reached
 * a final state, its package reference is released.
 */
import { Job, type Queue, UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';

import type { NodeJobData } from '../../queues/node.js';
import { recordedEnding, type TaskEnding } from '../../queues/task-ending.js';
import type { TaskInstanceData, TaskInstanceResult } from '../../queues/tasks.js';
import type { Logger } from '../core/logger.js';
import type { PackageStore } from '../packages/store.js';
import type { Keyspace } from '../redis/keys.js';
import { readSettled } from '../redis/settle-commands.js';

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

export interface SettleDeps {
  redis: Redis;
  keys: Keyspace;
  nodeQueue: (nodeId: string) => Queue<NodeJobData>;
}

/**
 * The settled child's value, or throws its error; undefined while no child has settled. A value
 * comes with the TaskInstance's package reference already released, in the same round trip as
 * its read (`read-settled-5.lua`): the step completes the TaskInstance with it.
 */
export async function settle(
  job: TaskInstanceJob,
  deps: SettleDeps,
): Promise<{ value: TaskInstanceResult } | undefined> {
  const instanceId = job.id ?? '';
  const { processed, failed } = await readSettled(deps.redis, deps.keys, {
    tasksQueue: job.queueName,
    instanceId,
    name: job.data.package.name,
    sha1: job.data.package.sha1,
    now: Date.now(),
  });
  const [value] = Object.values(processed);
  if (value !== undefined) {
    return { value: JSON.parse(value) as TaskInstanceResult };
  }
  const failures = Object.entries(failed);
  const [first] = failures;
  if (first === undefined) {
    return undefined;
  }
  // The child is the node job with the TaskInstance's id on the queue of a node it was sent to;
  // its key is matched against those queues' keys rather than taken apart.
  const nodes = [job.data.dispatch?.nodeId, ...(job.data.lostNodes ?? [])].filter((id) => id !== undefined);
  for (const nodeId of nodes) {
    const queue = deps.nodeQueue(nodeId);
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
 * Idempotent (`release-ref-3.lua`). A settled child's value comes with the release made ({@link settle}).
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
