/**
 * What a TaskInstance page shows of a TaskInstance's parts: a parallel one's workunits (counts,
 * and its failures a page at a time), a sequence's steps (each step's child TaskInstances
 * `<id>.s<i>` or `<id>.s<i>.<branch>`, with their states). A simple TaskInstance has none.
 */
import { Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';

import type { TaskState, TaskStatus } from '../client/types.js';
import { TaskNotFoundError, TydraError } from '../core/errors.js';
import { stepChildren } from '../master/sequence-children.js';
import { readSequencePlan } from '../master/sequence-plan.js';
import type { Keyspace } from '../redis/keys.js';
import { readCounts, readFailuresPage } from '../redis/parallel-commands.js';
import type { WorkunitCounts } from '../../queues/progress.js';
import type { TaskInstanceData } from '../../queues/tasks.js';

/** Failed workunits shown per page. */
export const FAILURES_PER_PAGE = 20;

export interface WorkunitParts {
  kind: 'parallel';
  /** Undefined before its split started, and once its state expired (an hour after it ended) with no progress kept. */
  counts: (WorkunitCounts & { splitDone: boolean }) | undefined;
  failures: { total: number; from: number; items: Array<{ index: number; message: string }> };
}

/** A step's child TaskInstance: its state, `not started` (a step not reached) or `gone` (removed by retention). */
export interface StepChildState {
  id: string;
  task: string;
  state: TaskState | 'not started' | 'gone';
}

export interface StepParts {
  kind: 'sequence';
  /** The step under way (or the last one reached), 0-based; undefined before the first. */
  current: number | undefined;
  steps: Array<{ index: number; label: string; children: StepChildState[] }>;
  /** Why the steps cannot be listed (the package version was pruned). */
  problem?: string;
}

export type InstanceParts = WorkunitParts | StepParts;

export interface InstancePartsDeps {
  redis: Redis;
  keys: Keyspace;
  tasksQueue: Queue;
  /** A TaskInstance's status, as `tydra status` reads it. */
  status: (id: string) => Promise<TaskStatus>;
}

/** The parts of TaskInstance `id`; undefined for a simple TaskInstance or one not found. */
export async function readInstanceParts(
  deps: InstancePartsDeps,
  id: string,
  failuresFrom = 0,
): Promise<InstanceParts | undefined> {
  const job = await Job.fromId<TaskInstanceData>(deps.tasksQueue, id);
  if (job?.data.kind === 'parallel') {
    return workunitParts(deps.redis, deps.keys, job, failuresFrom);
  }
  if (job?.data.kind === 'sequence') {
    return stepParts(deps, job);
  }
  return undefined;
}

async function workunitParts(
  redis: Redis,
  keys: Keyspace,
  job: Job<TaskInstanceData>,
  from: number,
): Promise<WorkunitParts> {
  const id = job.id ?? '';
  const [live, failures] = await Promise.all([
    readCounts(redis, keys, id),
    readFailuresPage(redis, keys, id, from, FAILURES_PER_PAGE),
  ]);
  // The state hash counts while it lives; the job's last progress report outlives it.
  const progress = job.progress as { workunits?: WorkunitCounts; splitDone?: boolean } | undefined;
  const counts =
    live.total > 0 || live.splitDone
      ? { total: live.total, done: live.done, failed: live.failed, running: live.running, splitDone: live.splitDone }
      : progress?.workunits !== undefined
        ? { ...progress.workunits, splitDone: progress.splitDone === true }
        : undefined;
  return { kind: 'parallel', counts, failures: { total: failures.total, from, items: failures.failures } };
}

async function stepParts(deps: InstancePartsDeps, job: Job<TaskInstanceData>): Promise<StepParts> {
  const id = job.id ?? '';
  const current = job.data.sequence?.step;
  let plan;
  try {
    plan = await readSequencePlan(deps.redis, deps.keys, job.data.package, job.data.task);
  } catch (error) {
    if (error instanceof TydraError) {
      return { kind: 'sequence', current, steps: [], problem: error.message };
    }
    throw error;
  }
  const steps = await Promise.all(
    plan.steps.map(async (step, index) => {
      const children = await Promise.all(
        stepChildren(id, plan, index).map(async (child): Promise<StepChildState> => {
          const reached = current !== undefined && index <= current;
          return { id: child.id, task: child.task, state: reached ? await childState(deps, child.id) : 'not started' };
        }),
      );
      return { index, label: step.label, children };
    }),
  );
  return { kind: 'sequence', current, steps };
}

/** A reached step's child: its state, or `gone` (removed by retention; or, for a moment, not added yet). */
async function childState(deps: InstancePartsDeps, id: string): Promise<StepChildState['state']> {
  try {
    return (await deps.status(id)).state;
  } catch (error) {
    if (!(error instanceof TaskNotFoundError)) {
      throw error;
    }
  }
  return 'gone';
}
