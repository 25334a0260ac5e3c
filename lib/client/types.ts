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
  /**
   * BullMQ priority, 1 (highest) … 2,097,152, of the TaskInstance in the `tasks` queue and on its
   * node: a higher-priority TaskInstance overtakes queued lower-priority ones. One submitted
   * without a priority comes before every prioritised one (BullMQ's rule).
   * @defaultValue none
   */
  priority?: number;
  /** Wait this long (ms) before the TaskInstance may start; it is `delayed` meanwhile. Not with `at`. */
  delayMs?: number;
  /** Start no earlier than this time (a `Date` or an ISO 8601 string), which must be in the future. Not with `delayMs`. */
  at?: Date | string;
  /**
   * Idempotency key (1 to 256 characters, no control characters), scoped by package and task: a
   * second submit with the same key within the client's `idempotencyWindowMs` returns the first
   * TaskInstance (same id) instead of submitting another, whatever its state (queued, running,
   * finished, cancelled).
   */
  key?: string;
  /**
   * Wait between `attempts`: `fixed` waits `delayMs` each time, `exponential` `delayMs × 2^(n - 1)`
   * before the n-th retry. Not for a parallel task. A task that calls `ctx.fail(message)`, or
   * throws an error named `TydraUnrecoverable`, is not retried. @defaultValue no wait
   */
  backoff?: { type: 'exponential' | 'fixed'; delayMs: number };
  /**
   * Environment variables set in this TaskInstance's sandbox only. Names match
   * `^[A-Z][A-Z0-9_]{0,63}$` and are none tydra sets (`PATH`, `HOME`, `TMPDIR`, `LANG`, `PWD`,
   * `NODE_OPTIONS`, `NODE_PATH`, `TYDRA_*`, `LD_*`); values are strings of at most 4 KiB, 64 KiB in
   * all. Every kind of task: each phase of a parallel task and each step of a sequence sees them.
   * They are stored in the job data: not for secrets.
   */
  env?: Record<string, string>;
  /**
   * Secrets of this TaskInstance: environment variable name → stored secret name (`setSecret`),
   * over the task's declared `secrets` (each mapped to the stored secret of its own name). Every
   * stored name must exist, or the submit fails naming it. Only the names go into the job data;
   * the node decrypts the values and the task sees them as environment variables. Every kind of
   * task: a module or a command, each phase of a parallel task, each step of a sequence (over the
   * secrets its own task declares).
   */
  secrets?: Record<string, string>;
}

/** Where a TaskInstance is in its life. */
export type TaskState = 'queued' | 'delayed' | 'dispatched' | 'running' | 'completed' | 'failed' | 'cancelled';

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
  /**
   * When it was submitted (ms since the epoch). Undefined only for a TaskInstance cancelled before it
   * started whose cancel request does not say (one cancelled by an older client).
   */
  submittedAt: number | undefined;
  /** A delayed submission (`delayMs`, `at`): when it may start (ms since the epoch). */
  runAt?: number;
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
