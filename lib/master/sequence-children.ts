/**
 * The children of a sequence's step: one TaskInstance per task of the step, in `tasks`, a child
 * of the sequence's TaskInstance, pinned to the sequence's package version. Their ids are fixed
 * (`<sequence>.s<step>`, or `<sequence>.s<step>.<branch>` in an `all` step), so adding one again
 * after a master crash changes nothing.
 *
 * They are added with `continueParentOnFailure`, not `failParentOnFailure` (which replaces the
 * step's error with BullMQ's generic text) nor only `ignoreDependencyOnFailure` (which waits for
 * every branch): the first failed branch brings the sequence back at once, and the master fails
 * it and cancels the other branches. The failure is kept, as with `ignoreDependencyOnFailure`, in
 * the parent's failed-children hash (`getIgnoredChildrenFailures`).
 */
import { Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';

import { TASK_INSTANCE_JOB, TASKS_JOB_OPTIONS, type TaskInstanceData } from '../../queues/tasks.js';
import { formatTaskRef } from '../packages/task-ref.js';
import type { PackageStore } from '../packages/store.js';
import { writeCancelRecord } from '../redis/cancel-record.js';
import type { Keyspace } from '../redis/keys.js';
import type { SequencePlan } from './sequence-plan.js';
import type { TaskInstanceJob } from './settle.js';

export interface StepChild {
  id: string;
  task: string;
  /** The branch in an `all` step; undefined for a single-task step. */
  branch: number | undefined;
}

/** What the children of a step came to. */
export type StepOutcome =
  | { kind: 'done'; value: unknown }
  | { kind: 'failed'; failed: Array<{ child: StepChild; reason: string }>; pending: StepChild[] }
  | { kind: 'pending'; pending: StepChild[] };

export function stepChildren(sequenceId: string, plan: SequencePlan, step: number): StepChild[] {
  const spec = plan.steps[step];
  if (spec === undefined) {
    return [];
  }
  return spec.tasks.map((task, branch) =>
    spec.all
      ? { id: `${sequenceId}.s${step}.${branch}`, task, branch }
      : { id: `${sequenceId}.s${step}`, task, branch: undefined },
  );
}

/**
 * Reads the step's children's ends from the sequence's own hashes (values and failures stay
 * there even once retention removed a child): failed children win, then all done, else pending.
 */
export async function stepOutcome(job: TaskInstanceJob, children: StepChild[]): Promise<StepOutcome> {
  const [values, failures] = await Promise.all([job.getChildrenValues<unknown>(), job.getIgnoredChildrenFailures()]);
  const keyOf = (child: StepChild): string => `${job.queueQualifiedName}:${child.id}`;
  const pending = children.filter(
    (child) => !Object.hasOwn(values, keyOf(child)) && !Object.hasOwn(failures, keyOf(child)),
  );
  const failed = children
    .filter((child) => Object.hasOwn(failures, keyOf(child)))
    .map((child) => ({ child, reason: failures[keyOf(child)] ?? '' }));
  if (failed.length > 0) {
    return { kind: 'failed', failed, pending };
  }
  if (pending.length > 0) {
    return { kind: 'pending', pending };
  }
  const outputs = children.map((child) => values[keyOf(child)] ?? null);
  const single = children.length === 1 && children[0]?.branch === undefined;
  return { kind: 'done', value: single ? outputs[0] : outputs };
}

export interface AddChildrenDeps {
  store: PackageStore;
  tasksQueue: Queue<TaskInstanceData>;
}

/**
 * Adds the children that do not exist yet, each after taking its own package reference (released
 * by the master when it ends, as for any TaskInstance). Returns the ids it added. A child that
 * exists is never added again: re-adding a failed one would put it back among the pending.
 */
export async function addMissingChildren(
  deps: AddChildrenDeps,
  job: TaskInstanceJob,
  plan: SequencePlan,
  step: number,
  input: unknown,
): Promise<string[]> {
  const added: string[] = [];
  for (const child of stepChildren(job.id ?? '', plan, step)) {
    if ((await Job.fromId(deps.tasksQueue, child.id)) !== undefined) {
      continue;
    }
    const { package: pkg } = job.data;
    // The sequence holds the version, so it is stored even if undeployed meanwhile: accept that.
    await deps.store.takeRef(pkg.name, pkg.sha1, child.id, { alreadyHeld: true });
    await deps.tasksQueue.add(TASK_INSTANCE_JOB, childData(job.id ?? '', job.data, plan, step, child, input), {
      ...TASKS_JOB_OPTIONS,
      jobId: child.id,
      // A step keeps its sequence's place in line.
      ...(job.data.priority !== undefined ? { priority: job.data.priority } : {}),
      parent: { id: job.id ?? '', queue: job.queueQualifiedName },
      continueParentOnFailure: true,
    });
    added.push(child.id);
  }
  return added;
}

/** A step's TaskInstance: the sequence's version, attempts, limits, env and secrets, the step's task and kind. */
function childData(
  sequenceId: string,
  parent: TaskInstanceData,
  plan: SequencePlan,
  step: number,
  child: StepChild,
  input: unknown,
): TaskInstanceData {
  const kind = plan.kindOf(child.task);
  return {
    ref: formatTaskRef(parent.package.name, parent.package.sha1, child.task),
    package: parent.package,
    task: child.task,
    input,
    attempts: parent.attempts,
    submittedAt: Date.now(),
    ...(kind !== 'simple' ? { kind } : {}),
    ...(parent.timeoutMs !== undefined ? { timeoutMs: parent.timeoutMs } : {}),
    ...(parent.limits !== undefined ? { limits: parent.limits } : {}),
    ...(parent.priority !== undefined ? { priority: parent.priority } : {}),
    ...(parent.retryOnLimit ? { retryOnLimit: true } : {}),
    ...(parent.maxFailedWorkunits !== undefined ? { maxFailedWorkunits: parent.maxFailedWorkunits } : {}),
    // The submission's environment and secret mapping (names only): every step sees them, over
    // the secrets its own task declares (opened by the node that runs the step).
    ...(parent.env !== undefined ? { env: parent.env } : {}),
    ...(parent.secrets !== undefined ? { secrets: parent.secrets } : {}),
    parentSequence: { id: sequenceId, step, ...(child.branch !== undefined ? { branch: child.branch } : {}) },
  };
}

/**
 * Asks children to stop as a client's cancel does: a request key first (a child not yet
 * dispatched, or not yet started on its node, reads it there), then the message to the node
 * running it. A child that already ended ignores both. A request already there is kept (`NX`):
 * the client's cancel of a step it removed before it started wrote a fuller one (the step's own
 * ref, its sequence, its submit time), which `runs()` and `status()` read.
 */
export async function cancelChildren(redis: Redis, keys: Keyspace, children: StepChild[], ref: string): Promise<void> {
  for (const child of children) {
    await writeCancelRecord(redis, keys, child.id, { ref }, { keep: true });
    await redis.publish(keys.cancelChannel, child.id);
  }
}

/** Whether a cancel was asked for any of `ids` (the TaskInstance itself, the sequence it is a step of). */
export async function cancelRequested(redis: Redis, keys: Keyspace, ids: Array<string | undefined>): Promise<boolean> {
  const cancelKeys = ids.filter((id) => id !== undefined && id !== '').map((id) => keys.cancel(id ?? ''));
  return (await redis.exists(...cancelKeys)) > 0;
}
