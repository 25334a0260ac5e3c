/**
 * A sequence (TaskContainer): the master runs it itself, in steps like any TaskInstance, but its
 * children are TaskInstances in `tasks` (one per task of the current step, see
 * `sequence-children.ts`) rather than a node job. Each time it is processed it:
 *  1. fails as cancelled if it (or the sequence it is a step of) was asked to stop, asking the
 *     current step's children to stop too;
 *  2. reads how the current step's children ended: one failed → the sequence fails with
 *     `step 2 (count) failed: <its message>` and its stack, after copying its ending; all done →
 *     the next step starts with their output (`[outA, outB]` for an `all` step), or the sequence
 *     completes with it after the last step; otherwise adds the children that are missing;
 *  3. parks in `waiting-children` until the step's children end.
 * A step is recorded in the job data (`sequence.step`, and its input) before its children are
 * added: a master that crashes in between leaves a record from which the next one adds them, and
 * the children's fixed ids make any second add a no-op.
 */
import { Job, type Queue, UnrecoverableError, WaitingChildrenError } from 'bullmq';
import type { Redis } from 'ioredis';

import type { TaskProgress } from '../../queues/progress.js';
import { recordedEnding, type TaskEnding } from '../../queues/task-ending.js';
import type { TaskInstanceData, TaskInstanceResult } from '../../queues/tasks.js';
import { IllegalStateError, ManifestError, TaskCancelledError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { PackageStore } from '../packages/store.js';
import type { Keyspace } from '../redis/keys.js';
import {
  addMissingChildren,
  cancelChildren,
  cancelRequested,
  type StepChild,
  stepChildren,
  stepOutcome,
} from './sequence-children.js';
import { readSequencePlan, type SequencePlan } from './sequence-plan.js';
import { failWith, type TaskInstanceJob } from './settle.js';

export interface SequenceDeps {
  redis: Redis;
  keys: Keyspace;
  store: PackageStore;
  logger: Logger;
  tasksQueue: () => Queue<TaskInstanceData>;
}

/** Sequences nest (a step may be a sequence); deploy refuses cycles, and this bounds what slips past. */
const MAX_DEPTH = 16;

/** One step of a sequence's TaskInstance; resolves with its output once the last step has ended. */
export async function runSequence(
  deps: SequenceDeps,
  job: TaskInstanceJob,
  token: string,
): Promise<TaskInstanceResult> {
  const plan = await planOf(deps, job);
  for (;;) {
    const step = job.data.sequence?.step;
    if (await cancelRequested(deps.redis, deps.keys, [job.id, job.data.parentSequence?.id])) {
      const running = step === undefined ? [] : stepChildren(job.id ?? '', plan, step);
      await cancelChildren(deps.redis, deps.keys, running, job.data.ref);
      await job.log('cancelled by request');
      const cancelled = new TaskCancelledError(job.id ?? '');
      throw await failWith(job, { kind: 'cancelled' }, new UnrecoverableError(cancelled.message));
    }
    if (step === undefined) {
      await startStep(deps, job, plan, 0, job.data.input);
    } else {
      const done = await advance(deps, job, plan, step);
      if (done !== undefined) {
        return done.value;
      }
    }
    if (await job.moveToWaitingChildren(token)) {
      await stopAfterEarlyFailure(deps, job, plan);
      throw new WaitingChildrenError();
    }
    // Every child of the step ended before the sequence could park: look at them now.
  }
}

/** The plan of the sequence's pinned version, or fails the TaskInstance as rejected. */
async function planOf(deps: SequenceDeps, job: TaskInstanceJob): Promise<SequencePlan> {
  const depth = (job.id ?? '').split('.s').length - 1;
  try {
    if (depth >= MAX_DEPTH) {
      throw new ManifestError(`Expected sequences nested at most ${MAX_DEPTH} deep, got ${job.id ?? ''} (a cycle?)`);
    }
    return await readSequencePlan(deps.redis, deps.keys, job.data.package, job.data.task);
  } catch (error) {
    if (!(error instanceof ManifestError)) {
      throw error;
    }
    throw await failWith(job, { kind: 'rejected' }, new UnrecoverableError(error.message));
  }
}

/**
 * Looks at the current step's children: fails the sequence on a failed one, starts the next step
 * (or returns the output after the last), or adds what is missing. Returns only when complete.
 */
async function advance(
  deps: SequenceDeps,
  job: TaskInstanceJob,
  plan: SequencePlan,
  step: number,
): Promise<{ value: unknown } | undefined> {
  const outcome = await stepOutcome(job, stepChildren(job.id ?? '', plan, step));
  const steps = plan.steps.length;
  const label = plan.steps[step]?.label ?? '';
  switch (outcome.kind) {
    case 'failed':
      throw await failStep(deps, job, step, await causeOf(deps, outcome.failed), outcome.pending);
    case 'pending': {
      // A step cancelled by its own id before it started was removed, not failed: that ends the sequence too.
      const cancelled = await firstCancelled(deps.redis, deps.keys, outcome.pending);
      if (cancelled !== undefined) {
        const reason = new TaskCancelledError(cancelled.id).message;
        const others = outcome.pending.filter((child) => child !== cancelled);
        throw await failStep(deps, job, step, { child: cancelled, reason, ending: { kind: 'cancelled' } }, others);
      }
      // Otherwise only after a crash between the record and the adds (or a child removed by hand).
      const added = await addMissingChildren(adders(deps), job, plan, step, stepInput(job));
      if (added.length > 0) {
        await job.log(`step ${step + 1}/${steps} ${label} started again: ${added.join(', ')}`);
      }
      return undefined;
    }
    case 'done':
      await job.log(`step ${step + 1}/${steps} ${label} done`);
      if (step + 1 < steps) {
        await startStep(deps, job, plan, step + 1, outcome.value);
        return undefined;
      }
      await job.updateProgress(progress(plan, steps, steps - 1));
      return { value: outcome.value };
    default:
      throw new IllegalStateError(`unknown step outcome of ${job.id ?? ''}`);
  }
}

/** Records the step and its input, then adds its children (see the module comment for the order). */
async function startStep(
  deps: SequenceDeps,
  job: TaskInstanceJob,
  plan: SequencePlan,
  step: number,
  input: unknown,
): Promise<void> {
  await job.updateData({ ...job.data, sequence: step === 0 ? { step } : { step, input } });
  await job.updateProgress(progress(plan, step, step));
  const ids = await addMissingChildren(adders(deps), job, plan, step, input);
  const label = plan.steps[step]?.label ?? '';
  await job.log(`step ${step + 1}/${plan.steps.length} ${label} started: ${ids.join(', ')}`);
  deps.logger.debug({ instanceId: job.id, step, children: ids }, 'sequence step started');
}

/** Fails the sequence with the child's message (named by step) and stack; the other branches are asked to stop. */
async function failStep(
  deps: SequenceDeps,
  job: TaskInstanceJob,
  step: number,
  { child, reason, ending }: { child: StepChild; reason: string; ending?: TaskEnding },
  pending: StepChild[],
): Promise<Error> {
  await cancelChildren(deps.redis, deps.keys, pending, job.data.ref);
  const failed = await Job.fromId<TaskInstanceData>(deps.tasksQueue(), child.id);
  const error = new Error(`step ${step + 1} (${child.task}) failed: ${reason || 'the step failed'}`);
  const stack = failed?.stacktrace?.at(-1);
  if (stack) {
    error.stack = stack;
  }
  await job.log(`step ${step + 1} ${child.task} failed: ${child.id}: ${reason}`);
  return failWith(job, ending ?? recordedEnding(failed?.data) ?? { kind: 'failed' }, error);
}

/**
 * The failure that ends the step: the first failed branch not cancelled, since branches the
 * master cancelled after a failure (see below) fail too; a cancelled one only when no other failed.
 */
async function causeOf(
  deps: SequenceDeps,
  failed: Array<{ child: StepChild; reason: string }>,
): Promise<{ child: StepChild; reason: string }> {
  for (const failure of failed) {
    const child = await Job.fromId<TaskInstanceData>(deps.tasksQueue(), failure.child.id);
    if (recordedEnding(child?.data)?.kind !== 'cancelled') {
      return failure;
    }
  }
  return failed[0] ?? { child: { id: '', task: '', branch: undefined }, reason: '' };
}

/**
 * A branch that failed while the sequence was still active (between the adds and parking) did not
 * bring the sequence back (`continueParentOnFailure` moves only a parked parent). The sequence is
 * now parked on the other branches: ask them to stop, so it comes back now rather than when they end.
 */
async function stopAfterEarlyFailure(deps: SequenceDeps, job: TaskInstanceJob, plan: SequencePlan): Promise<void> {
  const step = job.data.sequence?.step;
  if (step === undefined || plan.steps[step]?.all !== true) {
    return;
  }
  const outcome = await stepOutcome(job, stepChildren(job.id ?? '', plan, step));
  if (outcome.kind === 'failed' && outcome.pending.length > 0) {
    await cancelChildren(deps.redis, deps.keys, outcome.pending, job.data.ref);
  }
}

/** The first of `children` whose cancel was asked for, if any. */
async function firstCancelled(redis: Redis, keys: Keyspace, children: StepChild[]): Promise<StepChild | undefined> {
  for (const child of children) {
    if (await cancelRequested(redis, keys, [child.id])) {
      return child;
    }
  }
  return undefined;
}

function stepInput(job: TaskInstanceJob): unknown {
  const state = job.data.sequence;
  return state === undefined || state.step === 0 ? job.data.input : state.input;
}

function progress(plan: SequencePlan, done: number, running: number): TaskProgress {
  const steps = plan.steps.length;
  return {
    percent: Math.round((done / steps) * 100),
    step: { index: running, name: plan.steps[running]?.label ?? '' },
    steps,
  };
}

function adders(deps: SequenceDeps): { store: PackageStore; tasksQueue: Queue<TaskInstanceData> } {
  return { store: deps.store, tasksQueue: deps.tasksQueue() };
}
