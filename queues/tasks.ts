/**
 * `tasks`: the master queue. One job per TaskInstance; the job id is the TaskInstance id.
 *
 * A master takes each job, picks a live node, adds a child job to that node's queue
 * (`node.<id>`, see `node.ts`) and parks the TaskInstance in BullMQ's `waiting-children` state.
 * When the child finishes, the master processes the TaskInstance again and completes it with
 * the child's value or fails it with the child's error. Both jobs are visible in Bull Board.
 */
import type { DefaultJobOptions } from 'bullmq';
import { z } from 'zod';

import { type TaskLimits, taskLimitsSchema } from '../lib/core/limits.js';
import { type SecretMapping, secretMappingSchema } from '../lib/core/secret-box.js';
import { type TaskEnv, taskEnvSchema } from '../lib/core/task-env.js';
import { type TaskEnding, taskEndingSchema } from './task-ending.js';

export const TASKS_QUEUE = 'tasks';

/** What a task is (see `lib/packages/manifest.ts`): one run, split → workunits → reduce, or steps. */
export type TaskKind = 'simple' | 'parallel' | 'sequence';

/** Job name of a TaskInstance in the `tasks` queue. */
export const TASK_INSTANCE_JOB = 'task-instance';

/** Data of a TaskInstance job. */
export interface TaskInstanceData {
  /** `name@sha1/task`: the version is pinned at submit time. */
  ref: string;
  package: { name: string; sha1: string };
  task: string;
  input: unknown;
  /** Wall-clock limit in ms; the node's default when absent. Same as `limits.timeoutMs`. */
  timeoutMs?: number;
  /** Limits asked by the submission; override the task's, capped by the node's maxima. */
  limits?: TaskLimits;
  /** Retry (within `attempts`) a run that broke a limit; by default such a run fails for good. */
  retryOnLimit?: boolean;
  /**
   * Attempts of the node job (1 = no retry). For a parallel task: the attempts of each workunit
   * (its split, reduce and coordination are not retried).
   */
  attempts: number;
  /** The manifest's kind of the task, copied at submit (absent: `simple`). */
  kind?: TaskKind;
  /** Parallel tasks: workunits that may fail for good before the TaskInstance does. @defaultValue 0 */
  maxFailedWorkunits?: number;
  /** The schedule (`queues/schedules.ts`) whose firing made this TaskInstance. */
  schedule?: string;
  submittedAt: number;
  /**
   * BullMQ priority of the TaskInstance job and of its node job (1 = highest … 2,097,152); absent:
   * no priority, which BullMQ runs before every prioritised job.
   */
  priority?: number;
  /** When a delayed submission (`delayMs`, `at`) may start (ms since the epoch); it waits as `delayed` until then. */
  runAt?: number;
  /** How long to wait between attempts of the node job (BullMQ backoff). */
  backoff?: TaskBackoff;
  /** Environment variables set in this TaskInstance's sandbox only (see `lib/core/task-env.ts`). */
  env?: TaskEnv;
  /**
   * Environment variable → stored secret name (`lib/core/secret-box.ts`), given to the sandbox
   * by the node. Names only: a value is never in job data.
   */
  secrets?: SecretMapping;
  /** The idempotency key of the submission, if any (scoped by package and task). */
  key?: string;
  /** A re-run (`Tydra.rerun`, `tydra rerun`): the id of the TaskInstance it re-runs. */
  rerunOf?: string;
  /**
   * The job's `attemptsMade` when its current run started (absent: 0). BullMQ counts an attempt
   * each time the TaskInstance ends, and a retry from Bull Board keeps the count: a TaskInstance
   * whose `attemptsMade` is past this was retried after it ended, and runs afresh (see
   * `lib/master/rerun.ts`) rather than being settled again from its old child.
   */
  run?: number;
  /** Set by the master before it adds the node job, so a re-dispatch after a crash is idempotent. */
  dispatch?: { nodeId: string; at: number };
  /**
   * Nodes lost while running this TaskInstance (each counts toward the master's `maxReroutes`);
   * recorded by the dispatch step from the sweeper's take-back record.
   */
  lostNodes?: string[];
  /** Every node the TaskInstance was taken back from, whether or not it had started there (for logs). */
  takenBackFrom?: string[];
  /** How it ended, recorded by the master just before it fails the job (see `task-ending.ts`). */
  ending?: TaskEnding;
  /**
   * A sequence: the step under way (0-based), recorded by the master before it adds the step's
   * children, and that step's input (the previous step's output; absent for the first step, whose
   * input is `input`). Only the step under way is kept: earlier outputs are not needed any more.
   */
  sequence?: { step: number; input?: unknown };
  /** A step of a sequence: the sequence's TaskInstance id, its step (0-based) and, in an `all` step, the branch. */
  parentSequence?: { id: string; step: number; branch?: number };
}

/** Wait between attempts: always `delayMs` (`fixed`), or `delayMs × 2^(attempt - 1)` (`exponential`). */
export interface TaskBackoff {
  type: 'exponential' | 'fixed';
  delayMs: number;
}

/** Most BullMQ accepts as a priority. */
export const MAX_PRIORITY = 2_097_152;

export const taskBackoffSchema = z.strictObject({
  type: z.enum(['exponential', 'fixed']),
  delayMs: z
    .number()
    .int()
    .min(0)
    .max(24 * 3600 * 1000),
});

/** What a master checks before acting on a TaskInstance job. */
export const taskInstanceSchema = z.object({
  ref: z.string().min(1),
  package: z.object({ name: z.string().min(1), sha1: z.string().regex(/^[0-9a-f]{40}$/) }),
  task: z.string().min(1),
  input: z.unknown(),
  timeoutMs: z.number().int().positive().optional(),
  limits: taskLimitsSchema.optional(),
  retryOnLimit: z.boolean().optional(),
  attempts: z.number().int().min(1).max(100),
  kind: z.enum(['simple', 'parallel', 'sequence']).optional(),
  maxFailedWorkunits: z.number().int().min(0).optional(),
  schedule: z.string().optional(),
  submittedAt: z.number(),
  priority: z.number().int().min(1).max(MAX_PRIORITY).optional(),
  runAt: z.number().optional(),
  backoff: taskBackoffSchema.optional(),
  env: taskEnvSchema.optional(),
  secrets: secretMappingSchema.optional(),
  key: z.string().optional(),
  rerunOf: z.string().min(1).optional(),
  run: z.number().int().min(0).optional(),
  dispatch: z.object({ nodeId: z.string().min(1), at: z.number() }).optional(),
  lostNodes: z.array(z.string()).optional(),
  takenBackFrom: z.array(z.string()).optional(),
  ending: taskEndingSchema.optional(),
  sequence: z.object({ step: z.number().int().min(0), input: z.unknown().optional() }).optional(),
  parentSequence: z
    .object({ id: z.string().min(1), step: z.number().int().min(0), branch: z.number().int().min(0).optional() })
    .optional(),
});

/** The result of a TaskInstance is whatever JSON value the task returned. */
export type TaskInstanceResult = unknown;

/**
 * Retention: BullMQ keeps finished jobs forever by default. A day (or 10,000) of completed and a
 * week of failed TaskInstances is enough to read results and investigate failures. The client
 * sets its own per submit (`keepCompleted`, `keepFailed`, these by default); sequence steps,
 * added by masters, keep these.
 */
export const TASKS_JOB_OPTIONS: DefaultJobOptions = {
  attempts: 1,
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
};
