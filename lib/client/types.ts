/** The types the client's API returns and takes, shared by `client.ts` and `task-run.ts`. */
import type { TaskProgress } from '../../queues/progress.js';
import type { TaskLimits } from '../core/limits.js';
import type { PackageVersionInfo } from '../packages/store.js';

/** Per-submission options. */
export interface SubmitOptions {
  /** Wall-clock limit in ms (same as `limits.timeoutMs`), capped by the node's maximum. @defaultValue the node's default (60 s) */
  timeoutMs?: number;
  /**
   * Runs of the task before it fails for good (1 = no retry); for a parallel task, tries of each
   * workunit. @defaultValue 1; for a parallel task, its `attempts` in `tydra.json`, else 1
   */
  attempts?: number;
  /** Limits for this TaskInstance; override the task's `tydra.json` limits, capped by the node's maxima. */
  limits?: TaskLimits;
  /** Retry (within `attempts`) a run that broke a limit or timed out. @defaultValue false: such a run fails for good */
  retryOnLimit?: boolean;
  /**
   * Parallel tasks only (an error for another kind): workunits that may fail for good before the
   * TaskInstance does; reduce gets `null` in their slots. @defaultValue the task's
   * `maxFailedWorkunits` in `tydra.json`, else 0
   */
  maxFailedWorkunits?: number;
}

/** Where a TaskInstance is in its life. */
export type TaskState = 'queued' | 'dispatched' | 'running' | 'completed' | 'failed' | 'cancelled';

/** What `cancel` did. */
export interface CancelResult {
  id: string;
  /**
   * `removed`: it had not started, and is gone; `cancelling`: it is running and its node was told
   * to kill it (it ends as `cancelled` within a second); `finished`: it had already ended,
   * nothing changed.
   */
  outcome: 'removed' | 'cancelling' | 'finished';
}

export interface TaskStatus {
  id: string;
  ref: string;
  state: TaskState;
  /** The node it was dispatched to, once dispatched. */
  nodeId: string | undefined;
  /** What it reported last (see `TaskProgress`); undefined until it reports any. */
  progress: TaskProgress | undefined;
  /** The task's result, once completed. */
  result: unknown;
  /** The task's error message, once failed. */
  error: string | undefined;
  submittedAt: number;
  finishedAt: number | undefined;
  /** Log lines: dispatch, task output and `ctx.log` lines. */
  logs: string[];
}

/** A version with its references, as {@link Tydra.packageVersions} lists it. */
export interface PackageVersionUse extends PackageVersionInfo {
  /** The reference count: TaskInstances holding this version. */
  references: number;
  /** Holders per BullMQ state of their TaskInstance job (`waiting`, `waiting-children`, …). */
  holderStates: Record<string, number>;
}
