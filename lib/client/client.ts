/**
 * The client library: deploy packages, submit TaskInstances, wait for results.
 *
 *   const tydra = new Tydra({ redis: 'redis://127.0.0.1:6379' });
 *   await tydra.deploy('./examples/hello');
 *   const run = await tydra.submit('hello/greet', { name: 'Ada' });
 *   console.log(await run.result());
 *   await tydra.close();
 */
import { randomUUID } from 'node:crypto';

import { Job, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';

import { NODE_JOB_OPTIONS, nodeQueueName } from '../../queues/node.js';
import {
  TASK_INSTANCE_JOB,
  TASKS_JOB_OPTIONS,
  TASKS_QUEUE,
  type TaskInstanceData,
  type TaskInstanceResult,
} from '../../queues/tasks.js';
import {
  InvalidOptionError,
  TaskCancelledError,
  TaskNotFoundError,
  UnknownTaskError,
  describe,
} from '../core/errors.js';
import { cancelChannel, cancelKey } from '../redis/keys.js';
import type { Logger } from '../core/logger.js';
import { type NodeInfo, NodeRegistry } from '../cluster/node-registry.js';
import { type CompiledTydraOptions, compileTydraOptions, type TydraOptions } from './options.js';
import { packDirectory } from '../packages/pack.js';
import { type PruneOptions, type PruneReport, prunePackages } from '../packages/pruner.js';
import { type DeployResult, PackageStore, type PackageVersionInfo } from '../packages/store.js';
import { BOUNDED_QUEUE_OPTIONS, createBoundedRedis, whenReachable } from '../redis/connection.js';
import { type TaskLimits, taskLimitsSchema } from '../core/limits.js';
import { formatTaskRef, parseTaskRef } from '../packages/task-ref.js';
import { parseOptions } from '../core/validate.js';
import { failedError, wasCancelled } from './task-ending.js';

/** Per-submission options. */
export interface SubmitOptions {
  /** Wall-clock limit in ms (same as `limits.timeoutMs`), capped by the node's maximum. @defaultValue the node's default (60 s) */
  timeoutMs?: number;
  /** Runs of the task before it fails for good (1 = no retry). @defaultValue 1 */
  attempts?: number;
  /** Limits for this TaskInstance; override the task's `tydra.json` limits, capped by the node's maxima. */
  limits?: TaskLimits;
  /** Retry (within `attempts`) a run that broke a limit or timed out. @defaultValue false: such a run fails for good */
  retryOnLimit?: boolean;
}

const submitOptionsSchema = z.strictObject({
  timeoutMs: z.number().int().positive('a positive integer').optional(),
  attempts: z.number().int().positive('a positive integer').max(100).optional(),
  limits: taskLimitsSchema.optional(),
  retryOnLimit: z.boolean().optional(),
});

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

/** How long a cancel request is remembered (it only matters until the TaskInstance ends). */
const CANCEL_TTL_SECONDS = 7 * 24 * 3600;

export interface TaskStatus {
  id: string;
  ref: string;
  state: TaskState;
  /** The node it was dispatched to, once dispatched. */
  nodeId: string | undefined;
  progress: unknown;
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

/** @internal Test hooks into `submit`, to force races deterministically. */
export interface SubmitHooks {
  afterResolve?: () => Promise<void>;
  afterReference?: () => Promise<void>;
}

export class Tydra {
  readonly options: CompiledTydraOptions;
  /** @internal */
  readonly hooks: SubmitHooks = {};
  private readonly logger: Logger;
  private readonly redis: Redis;
  private readonly store: PackageStore;
  private readonly tasksQueue: Queue<TaskInstanceData, TaskInstanceResult>;
  private queueEvents: QueueEvents | undefined;
  private eventsRedis: Redis | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: TydraOptions = {}) {
    this.options = compileTydraOptions(options);
    this.logger = this.options.logger.child({ component: 'client' });
    this.redis = createBoundedRedis(this.options.redisUrl, this.options.connectTimeoutMs);
    this.redis.on('error', (error) => this.logger.warn({ err: error.message }, 'redis connection error'));
    this.store = new PackageStore(this.redis, { leaseMs: this.options.deployLeaseMs });
    this.tasksQueue = new Queue<TaskInstanceData, TaskInstanceResult>(TASKS_QUEUE, {
      connection: this.redis,
      defaultJobOptions: TASKS_JOB_OPTIONS,
      ...BOUNDED_QUEUE_OPTIONS,
    });
    this.tasksQueue.on('error', (error) => this.logger.warn({ err: error.message }, 'tasks queue error'));
    // Every pending `result()` adds a listener (BullMQ's waitUntilFinished); many in flight is normal.
    this.tasksQueue.setMaxListeners(0);
  }

  /**
   * Packs `dir` deterministically and stores it as a new version of its package (or finds the
   * identical version already stored). Throws `ManifestError` or `PackageRejectedError`, with
   * nothing stored, when the package is invalid.
   */
  async deploy(dir: string): Promise<DeployResult> {
    const packed = await packDirectory(dir, this.options.limits);
    const result = await this.store.deploy(packed);
    this.logger.info({ package: result.ref, size: result.size, stored: result.stored }, 'package deployed');
    return result;
  }

  /**
   * Submits a TaskInstance of `ref` (`name/task` or `name@sha1prefix/task`) with `input`.
   * The version is resolved and pinned now; an unknown package, version or task throws here.
   */
  async submit(ref: string, input: unknown = null, options: SubmitOptions = {}): Promise<TaskRun> {
    const parsed = parseTaskRef(ref);
    const checked = parseOptions(submitOptionsSchema, options, 'submit option');
    const inputJson = JSON.stringify(input ?? null);
    if (inputJson === undefined || Buffer.byteLength(inputJson) > this.options.maxInputBytes) {
      throw new InvalidOptionError(
        `Expected the input to be JSON of at most ${this.options.maxInputBytes} bytes, got ${inputJson === undefined ? describe(input) : `${Buffer.byteLength(inputJson)} bytes`}`,
      );
    }
    const version = await this.store.resolve(parsed.name, parsed.version);
    if (version.manifest.tasks[parsed.task] === undefined) {
      const known = Object.keys(version.manifest.tasks).join(', ');
      throw new UnknownTaskError(
        `Expected package ${version.name}@${version.sha1.slice(0, 12)} to define task ${parsed.task}, got only: ${known}`,
      );
    }
    const id = randomUUID();
    const pinned = formatTaskRef(version.name, version.sha1, parsed.task);
    const data: TaskInstanceData = {
      ref: pinned,
      package: { name: version.name, sha1: version.sha1 },
      task: parsed.task,
      input: JSON.parse(inputJson) as unknown,
      attempts: checked.attempts ?? 1,
      submittedAt: Date.now(),
      ...(checked.timeoutMs !== undefined ? { timeoutMs: checked.timeoutMs } : {}),
      ...(checked.limits !== undefined ? { limits: checked.limits } : {}),
      ...(checked.retryOnLimit ? { retryOnLimit: true } : {}),
    };
    await this.hooks.afterResolve?.();
    // The reference first, atomically with the check that the version still exists: from here
    // on no prune can delete it. Then the enqueue; if that fails, let go again.
    await this.store.takeRef(version.name, version.sha1, id);
    try {
      await this.hooks.afterReference?.();
      await this.tasksQueue.add(TASK_INSTANCE_JOB, data, { jobId: id });
    } catch (error) {
      await this.store.releaseRef(id, data.package).catch(() => undefined);
      throw error;
    }
    this.logger.debug({ instanceId: id, ref: pinned }, 'TaskInstance submitted');
    return new TaskRun(this, id, pinned);
  }

  /** A handle on an existing TaskInstance. */
  run(id: string): TaskRun {
    return new TaskRun(this, id, undefined);
  }

  /**
   * Cancels a TaskInstance. One that has not started is removed (and its package reference
   * released); a running one is killed on whichever node runs it and ends as `cancelled`.
   * Throws `TaskNotFoundError` for an unknown id.
   */
  async cancel(id: string): Promise<CancelResult> {
    const job = await this.job(id);
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') {
      return { id, outcome: 'finished' };
    }
    // Remembered first: a master or node that picks the job up after this point sees it.
    await this.redis.set(
      cancelKey(id),
      JSON.stringify({ ref: job.data.ref, at: Date.now() }),
      'EX',
      CANCEL_TTL_SECONDS,
    );
    try {
      // Fails when the TaskInstance or its node job is locked, i.e. being worked on.
      await job.remove();
      await this.store.releaseRef(id, job.data.package);
      await this.redis.publish(cancelChannel, id);
      this.logger.info({ instanceId: id }, 'TaskInstance cancelled before it started: removed');
      return { id, outcome: 'removed' };
    } catch (error) {
      this.logger.debug(
        { instanceId: id, err: (error as Error).message },
        'TaskInstance is running: asking its node to kill it',
      );
    }
    await this.redis.publish(cancelChannel, id);
    return { id, outcome: 'cancelling' };
  }

  /** Deployed package names. */
  async packageNames(): Promise<string[]> {
    return this.store.names();
  }

  /**
   * Every stored version of a package, newest first: which is latest, which are undeployed, its
   * holders (the reference count is their number) and their states, its lease.
   */
  async packageVersions(name: string): Promise<{ latest: string | null; versions: PackageVersionUse[] }> {
    const { latest, versions } = await this.store.versions(name);
    const withStates = await Promise.all(
      versions.map(async (version): Promise<PackageVersionUse> => {
        const states = await Promise.all(version.holders.map((id) => this.tasksQueue.getJobState(id)));
        const holderStates: Record<string, number> = {};
        for (const state of states) {
          holderStates[state] = (holderStates[state] ?? 0) + 1;
        }
        return { ...version, references: version.holders.length, holderStates };
      }),
    );
    return { latest, versions: withStates };
  }

  /**
   * Removes `name@version` (a sha1 or unique prefix), or every version of `name`, from use: it can
   * no longer be submitted. Its bytes stay until no TaskInstance holds it and a prune runs.
   */
  async undeploy(name: string, version?: string): Promise<{ undeployed: string[]; latest: string | null }> {
    const sha1 = version === undefined ? undefined : await this.store.expandVersion(name, version);
    const before = await this.store.versions(name);
    const result = await this.store.undeploy(name, sha1);
    const undeployed = before.versions
      .filter((v) => !v.undeployed && (sha1 === undefined || v.sha1 === sha1))
      .map((v) => v.sha1);
    this.logger.info({ package: name, undeployed, latest: result.latest }, 'package undeployed');
    return { undeployed, latest: result.latest };
  }

  /**
   * Runs one prune pass now (the same logic as the prune job): deletes versions without holders,
   * lease or latest status that have been idle longer than the grace period. `dryRun` changes
   * nothing and reports what would go.
   */
  async prune(options: Pick<PruneOptions, 'dryRun' | 'graceMs'> = {}): Promise<PruneReport> {
    return prunePackages(this.redis, options);
  }

  /** Every registered node, alive or not. */
  async nodes(): Promise<NodeInfo[]> {
    return new NodeRegistry(this.redis).list();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([this.queueEvents?.close(), this.tasksQueue.close()]);
      // QueueEvents does not close a connection it was given: we own both.
      await Promise.allSettled([this.eventsRedis?.quit(), this.redis.quit()]);
      this.eventsRedis?.disconnect();
      this.redis.disconnect();
    })();
    return this.closing;
  }

  /** @internal */
  tasksQueueForRun(): Queue<TaskInstanceData, TaskInstanceResult> {
    return this.tasksQueue;
  }

  /** @internal */
  async job(id: string): Promise<Job<TaskInstanceData, TaskInstanceResult>> {
    const job = await Job.fromId<TaskInstanceData, TaskInstanceResult>(this.tasksQueue, id);
    if (job === undefined) {
      throw new TaskNotFoundError(id);
    }
    return job;
  }

  /** @internal The cancel request of a TaskInstance, if one was made. */
  async cancelRecord(id: string): Promise<{ ref: string; at: number } | undefined> {
    const text = await this.redis.get(cancelKey(id));
    if (text === null) {
      return undefined;
    }
    try {
      const record = JSON.parse(text) as { ref?: unknown; at?: unknown };
      return {
        ref: typeof record.ref === 'string' ? record.ref : '',
        at: typeof record.at === 'number' ? record.at : 0,
      };
    } catch {
      return { ref: '', at: 0 };
    }
  }

  /** @internal */
  async events(): Promise<QueueEvents> {
    // Its blocking connection must ride out outages, so it is not bounded: check Redis first.
    await whenReachable(this.redis);
    if (this.queueEvents === undefined) {
      this.eventsRedis = this.redis.duplicate();
      this.eventsRedis.on('error', (error) => this.logger.warn({ err: error.message }, 'redis connection error'));
      this.queueEvents = new QueueEvents(TASKS_QUEUE, { connection: this.eventsRedis });
      this.queueEvents.on('error', (error) => this.logger.warn({ err: error.message }, 'queue events error'));
      this.queueEvents.setMaxListeners(0);
    }
    await this.queueEvents.waitUntilReady();
    return this.queueEvents;
  }

  /** @internal */
  async status(id: string): Promise<TaskStatus> {
    const job = await Job.fromId<TaskInstanceData, TaskInstanceResult>(this.tasksQueue, id);
    if (job === undefined) {
      const cancelled = await this.cancelRecord(id);
      if (cancelled === undefined) {
        throw new TaskNotFoundError(id);
      }
      return {
        id,
        ref: cancelled.ref,
        state: 'cancelled',
        nodeId: undefined,
        progress: 0,
        result: undefined,
        error: new TaskCancelledError(id).message,
        submittedAt: 0,
        finishedAt: cancelled.at,
        logs: [],
      };
    }
    const [jobState, { logs }] = await Promise.all([job.getState(), this.tasksQueue.getJobLogs(id)]);
    const nodeId = job.data.dispatch?.nodeId;
    let state: TaskState;
    if (jobState === 'failed' && wasCancelled(job)) {
      state = 'cancelled';
    } else if (jobState === 'completed' || jobState === 'failed') {
      state = jobState;
    } else if (jobState === 'waiting-children' && nodeId !== undefined) {
      const nodeQueue = new Queue(nodeQueueName(nodeId), {
        connection: this.redis,
        defaultJobOptions: NODE_JOB_OPTIONS,
        ...BOUNDED_QUEUE_OPTIONS,
      });
      try {
        state = (await nodeQueue.getJobState(id)) === 'active' ? 'running' : 'dispatched';
      } finally {
        await nodeQueue.close();
      }
    } else {
      state = 'queued';
    }
    return {
      id,
      ref: job.data.ref,
      state,
      nodeId,
      progress: job.progress,
      result: state === 'completed' ? job.returnvalue : undefined,
      error: state === 'failed' || state === 'cancelled' ? job.failedReason : undefined,
      submittedAt: job.data.submittedAt,
      finishedAt: job.finishedOn,
      logs,
    };
  }
}

/** One submitted TaskInstance. */
export class TaskRun {
  constructor(
    private readonly client: Tydra,
    /** The TaskInstance id. */
    readonly id: string,
    /** The pinned reference `name@sha1/task` (undefined for a handle made by `run(id)`). */
    readonly ref: string | undefined,
  ) {}

  /**
   * Waits for the TaskInstance to finish and returns the task's result. Rejects with a
   * `TaskFailedError` carrying the task's message (and its stack as `remoteStack`).
   */
  async result(options: { timeoutMs?: number } = {}): Promise<unknown> {
    const events = await this.client.events();
    const job = await Job.fromId(this.client.tasksQueueForRun(), this.id);
    if (job === undefined) {
      throw (await this.client.cancelRecord(this.id)) !== undefined
        ? new TaskCancelledError(this.id)
        : new TaskNotFoundError(this.id);
    }
    // A TaskInstance cancelled before it started is removed: BullMQ then sends `removed`, not
    // `failed`, and waitUntilFinished alone would wait forever.
    let onRemoved: ((event: { jobId: string }) => void) | undefined;
    const removed = new Promise<never>((_resolve, reject) => {
      onRemoved = ({ jobId }) => {
        if (jobId === this.id) {
          reject(new TaskCancelledError(this.id));
        }
      };
      events.on('removed', onRemoved);
    });
    try {
      return await Promise.race([job.waitUntilFinished(events, options.timeoutMs), removed]);
    } catch (error) {
      if (error instanceof TaskCancelledError) {
        throw error;
      }
      const finished = await Job.fromId(this.client.tasksQueueForRun(), this.id);
      if (finished?.failedReason) {
        throw failedError(finished, this.id);
      }
      if (finished === undefined && (await this.client.cancelRecord(this.id)) !== undefined) {
        throw new TaskCancelledError(this.id);
      }
      throw error;
    } finally {
      if (onRemoved !== undefined) {
        events.off('removed', onRemoved);
      }
    }
  }

  /** Cancels this TaskInstance; see {@link Tydra.cancel}. */
  async cancel(): Promise<CancelResult> {
    return this.client.cancel(this.id);
  }

  async status(): Promise<TaskStatus> {
    return this.client.status(this.id);
  }
}
