/**
 * `Tydra.runs()`: TaskInstances, newest first, read from BullMQ's own sets of the `tasks` queue
 * (never a SCAN of the keyspace), in pages. Completed and failed are sorted sets by finish time:
 * reading them from the newest end stops as soon as nothing older can still make the list. The
 * unfinished states (waiting, prioritised, active, delayed, waiting-children) are read whole, up to
 * a bound, and sorted here. A TaskInstance cancelled before it started has no job left: those come
 * from the set `cancel` keeps of them (`cancel-record.ts`), by submit time, again only as far as needed.
 */
import type { Job, JobType, Queue } from 'bullmq';
import { z } from 'zod';

import type { TaskInstanceData, TaskInstanceResult } from '../../queues/tasks.js';
import { DURATION_PATTERN, parseDuration } from '../core/duration.js';
import { parseOptions } from '../core/validate.js';
import { parsePackageName } from '../packages/task-ref.js';
import type { UnstartedCancel } from './cancel-record.js';
import { wasCancelled } from './task-ending.js';
import type { TaskState } from './types.js';

/** What {@link Tydra.runs} lists. */
export interface RunsOptions {
  /** Only TaskInstances of this package (`name`) or task (`name/task`). */
  task?: string;
  /** Only TaskInstances in this state. */
  state?: TaskState;
  /** Only TaskInstances submitted since then: a `Date`, or a duration ago (`30s`, `10m`, `1h`, `2d`). */
  since?: Date | string;
  /** At most this many, 1 … 1,000. @defaultValue 20 */
  limit?: number;
  /** Include the steps of sequences (TaskInstances a sequence submitted). @defaultValue false */
  all?: boolean;
}

/** One TaskInstance as {@link Tydra.runs} lists it. */
export interface RunRow {
  id: string;
  /** `name@sha1/task`: the version it ran. */
  ref: string;
  state: TaskState;
  submittedAt: number;
  finishedAt: number | undefined;
  /** The node it was dispatched to, once dispatched. */
  nodeId: string | undefined;
  /** A re-run: the id of the TaskInstance it re-ran. */
  rerunOf?: string;
  /** A step of a sequence: the sequence's TaskInstance id. */
  sequenceId?: string;
}

export const RUNS_DEFAULT_LIMIT = 20;
export const RUNS_MAX_LIMIT = 1000;
const PAGE = 200;
/** Most jobs read from one BullMQ state per listing: the bound of a listing's cost. */
const MAX_SCANNED = 20_000;

const STATES = ['queued', 'delayed', 'dispatched', 'running', 'completed', 'failed', 'cancelled'] as const;

const runsOptionsSchema = z.strictObject({
  task: z
    .string()
    .regex(/^[^/]+(\/[^/]+)?$/, 'a package name or name/task')
    .optional(),
  state: z.enum(STATES).optional(),
  since: z
    .union([z.date(), z.string().regex(DURATION_PATTERN, 'a Date or a duration such as 30s, 10m, 1h, 2d')])
    .optional(),
  limit: z
    .number()
    .int()
    .min(1, `an integer from 1 to ${RUNS_MAX_LIMIT}`)
    .max(RUNS_MAX_LIMIT)
    .default(RUNS_DEFAULT_LIMIT),
  all: z.boolean().default(false),
});

/** The BullMQ states a TaskInstance in `state` can be in. */
const BULL_STATES: Record<TaskState, JobType[]> = {
  queued: ['active', 'waiting', 'prioritized', 'delayed', 'waiting-children'],
  delayed: ['delayed'],
  dispatched: ['waiting-children'],
  running: ['waiting-children'],
  completed: ['completed'],
  failed: ['failed'],
  cancelled: ['failed'],
};
const ALL_BULL_STATES: JobType[] = [
  'active',
  'waiting',
  'prioritized',
  'delayed',
  'waiting-children',
  'completed',
  'failed',
];

type TaskJob = Job<TaskInstanceData, TaskInstanceResult>;

/** What a listing matches, compiled from {@link RunsOptions}. */
interface RunsFilter {
  name: string | undefined;
  task: string | undefined;
  since: number;
  limit: number;
  all: boolean;
  state: TaskState | undefined;
}

function compileFilter(options: RunsOptions, now: number): RunsFilter {
  const parsed = parseOptions(runsOptionsSchema, options, 'runs option');
  const [name, task] = parsed.task === undefined ? [undefined, undefined] : parsed.task.split('/');
  const since =
    parsed.since === undefined
      ? 0
      : parsed.since instanceof Date
        ? parsed.since.getTime()
        : now - parseDuration(parsed.since, 'the `since` runs option');
  return {
    name: name === undefined ? undefined : parsePackageName(name),
    task,
    since,
    limit: parsed.limit,
    all: parsed.all,
    state: parsed.state,
  };
}

function matches(job: TaskJob, filter: RunsFilter): boolean {
  const data = job.data as Partial<TaskInstanceData> | undefined;
  return (
    data?.package !== undefined &&
    (filter.all || data.parentSequence === undefined) &&
    (filter.name === undefined || data.package.name === filter.name) &&
    (filter.task === undefined || data.task === filter.task) &&
    (data.submittedAt ?? 0) >= filter.since
  );
}

/** Whether a TaskInstance cancelled before it started matches (`since` is applied by the reader). */
function accepts({ record }: UnstartedCancel, filter: RunsFilter): boolean {
  // `name@sha1/task`, as the job's data had it.
  const slash = record.ref.indexOf('/');
  const name = record.ref.slice(0, slash).split('@')[0];
  return (
    slash > 0 &&
    (filter.all || record.sequenceId === undefined) &&
    (filter.name === undefined || name === filter.name) &&
    (filter.task === undefined || record.ref.slice(slash + 1) === filter.task)
  );
}

function unstartedRow({ id, record }: UnstartedCancel): RunRow {
  return {
    id,
    ref: record.ref,
    state: 'cancelled',
    submittedAt: record.submittedAt,
    finishedAt: record.at,
    nodeId: undefined,
    ...(record.rerunOf !== undefined ? { rerunOf: record.rerunOf } : {}),
    ...(record.sequenceId !== undefined ? { sequenceId: record.sequenceId } : {}),
  };
}

/** Asks a node queue for the state of a TaskInstance's node job (running or only dispatched). */
export type NodeJobState = (nodeId: string, id: string) => Promise<string>;

/** What a listing reads besides the `tasks` queue. */
export interface RunsSources {
  nodeJobState: NodeJobState;
  /** TaskInstances cancelled before they started (`listUnstartedCancels`). */
  unstartedCancels(query: {
    since: number;
    limit: number;
    accept: (found: UnstartedCancel) => boolean;
  }): Promise<UnstartedCancel[]>;
}

/** Lists TaskInstances as {@link RunsOptions} says, newest (by submit time) first. */
export async function listRuns(
  tasks: Queue<TaskInstanceData, TaskInstanceResult>,
  options: RunsOptions,
  sources: RunsSources,
): Promise<RunRow[]> {
  const now = Date.now();
  const filter = compileFilter(options, now);
  const types = filter.state === undefined ? ALL_BULL_STATES : BULL_STATES[filter.state];
  const [perState, unstarted] = await Promise.all([
    Promise.all(types.map((type) => readState(tasks, type, filter))),
    filter.state === undefined || filter.state === 'cancelled'
      ? sources.unstartedCancels({
          since: filter.since,
          limit: filter.limit,
          accept: (found) => accepts(found, filter),
        })
      : [],
  ]);
  const rows: RunRow[] = unstarted.map(unstartedRow);
  for (const [index, jobs] of perState.entries()) {
    for (const job of jobs) {
      const row = await rowOf(job, types[index] as JobType, now, sources.nodeJobState);
      if (filter.state === undefined || row.state === filter.state) {
        rows.push(row);
      }
    }
  }
  rows.sort((a, b) => b.submittedAt - a.submittedAt || (a.id < b.id ? -1 : 1));
  return rows.slice(0, filter.limit);
}

/**
 * The matching jobs of one BullMQ state, newest first by the set's own order. A finished set is
 * ordered by finish time, and a TaskInstance finishes after it was submitted: once `limit` matches
 * are in hand and the page reached jobs that finished before the `limit`-th newest submit (or
 * before `since`), no later job can make the list.
 */
async function readState(tasks: Queue<TaskInstanceData, TaskInstanceResult>, type: JobType, filter: RunsFilter) {
  const finished = type === 'completed' || type === 'failed';
  const found: TaskJob[] = [];
  for (let start = 0; start < MAX_SCANNED; start += PAGE) {
    // A job removed between BullMQ's read of the ids and of the jobs comes back undefined.
    const read = await tasks.getJobs([type], start, start + PAGE - 1, false);
    const page = read.filter((job) => job !== undefined);
    found.push(...page.filter((job) => matches(job, filter)));
    if (read.length < PAGE || (finished && page.length > 0 && (page.at(-1)?.finishedOn ?? 0) < cutoff(found, filter))) {
      break;
    }
  }
  return found;
}

/**
 * How far back a finished set still matters: jobs that finished before it were submitted before
 * `since`, or before the `limit`-th newest submit among the matches in hand.
 */
function cutoff(found: TaskJob[], filter: RunsFilter): number {
  if (found.length < filter.limit) {
    return filter.since;
  }
  const submits = found.map((job) => job.data.submittedAt).sort((a, b) => b - a);
  return Math.max(filter.since, submits[filter.limit - 1] ?? 0);
}

/** The row of one job found in BullMQ state `type`; the state as `status()` tells it. */
async function rowOf(job: TaskJob, type: JobType, now: number, nodeJobState: NodeJobState): Promise<RunRow> {
  const { data } = job;
  const nodeId = data.dispatch?.nodeId;
  let state: TaskState = 'queued';
  if (type === 'completed') {
    state = 'completed';
  } else if (type === 'failed') {
    state = wasCancelled(job) ? 'cancelled' : 'failed';
  } else if (type === 'delayed' && data.runAt !== undefined && data.runAt > now) {
    state = 'delayed';
  } else if (type === 'waiting-children' && data.kind === 'sequence') {
    state = 'running';
  } else if (type === 'waiting-children' && nodeId !== undefined) {
    state = (await nodeJobState(nodeId, job.id ?? '')) === 'active' ? 'running' : 'dispatched';
  }
  return {
    id: job.id ?? '',
    ref: data.ref,
    state,
    submittedAt: data.submittedAt,
    finishedAt: job.finishedOn,
    nodeId,
    ...(data.rerunOf !== undefined ? { rerunOf: data.rerunOf } : {}),
    ...(data.parentSequence !== undefined ? { sequenceId: data.parentSequence.id } : {}),
  };
}
