/**
 * The master: takes TaskInstances from `tasks` and schedules each onto a live node.
 *
 * A TaskInstance is processed in steps (BullMQ's "process step jobs" pattern), so no master
 * holds it while it runs and any master may finish it:
 *  1. dispatch: pick a node, record it in the job data, add the node job as a child of the
 *     TaskInstance, park the TaskInstance in `waiting-children`;
 *  2. settle: when the child completes or fails, BullMQ queues the TaskInstance again and a
 *     master completes it with the child's value or fails it with the child's own error.
 * The child is added with `ignoreDependencyOnFailure`, not `failParentOnFailure`, because the
 * latter replaces the task's error with BullMQ's generic "child failed" text.
 * Several masters can run at once: each TaskInstance is locked by one of them per step.
 */
import { DelayedError, Job, Queue, UnrecoverableError, WaitingChildrenError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';

import {
  MAINTENANCE_JOB_OPTIONS,
  MAINTENANCE_QUEUE,
  PRUNE_JOB,
  PRUNE_SCHEDULER,
  type PruneJobData,
} from '../../queues/maintenance.js';
import { NODE_JOB, NODE_JOB_OPTIONS, type NodeJobData, nodeQueueName } from '../../queues/node.js';
import { TASKS_QUEUE, type TaskInstanceData, type TaskInstanceResult, taskInstanceSchema } from '../../queues/tasks.js';
import { chooseNode } from './choose-node.js';
import { CANCELLED_MESSAGE } from '../core/errors.js';
import { cancelKey } from '../redis/keys.js';
import type { Logger } from '../core/logger.js';
import { NodeRegistry } from '../cluster/node-registry.js';
import { type CompiledMasterOptions, compileMasterOptions, type MasterOptions } from './options.js';
import { sweepDeadNodes } from './node-sweeper.js';
import { type PruneReport, prunePackages } from '../packages/pruner.js';
import { PackageStore } from '../packages/store.js';
import { createRedis, logErrors, watchConnection } from '../redis/connection.js';

export type MasterState = 'idle' | 'running' | 'closing' | 'closed';

/** Lines of one prune job's log; the summary line always follows. */
const MAX_PRUNE_LOG_LINES = 500;

/** What a prune job returns (shown in Bull Board). */
export interface PruneSummary {
  removed: string[];
  healed: number;
  kept: Record<string, number>;
  packages: number;
  versions: number;
  ms: number;
}

function summarize(report: PruneReport): PruneSummary {
  const kept: Record<string, number> = {};
  for (const decision of report.kept) {
    kept[decision.verdict] = (kept[decision.verdict] ?? 0) + 1;
  }
  return {
    removed: report.removed.slice(0, 100).map((decision) => `${decision.name}@${decision.sha1}`),
    healed: report.healed.length,
    kept,
    packages: report.packages,
    versions: report.versions,
    ms: report.ms,
  };
}

export class Master {
  readonly options: CompiledMasterOptions;
  private readonly logger: Logger;
  private readonly redis: Redis;
  private readonly registry: NodeRegistry;
  private readonly store: PackageStore;
  private readonly nodeQueues = new Map<string, Queue<NodeJobData>>();
  private worker: Worker<TaskInstanceData, TaskInstanceResult> | undefined;
  private tasksQueue: Queue<TaskInstanceData> | undefined;
  private maintenanceQueue: Queue<PruneJobData> | undefined;
  private maintenanceWorker: Worker<PruneJobData, PruneSummary> | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<unknown> | undefined;
  private turn = 0;
  private closing: Promise<void> | undefined;
  state: MasterState = 'idle';

  constructor(options: MasterOptions = {}) {
    this.options = compileMasterOptions(options);
    this.logger = this.options.logger.child({ component: 'master' });
    this.redis = createRedis(this.options.redisUrl);
    watchConnection(this.redis, this.logger, 'master');
    this.registry = new NodeRegistry(this.redis);
    this.store = new PackageStore(this.redis);
  }

  async start(): Promise<void> {
    if (this.state !== 'idle') {
      return;
    }
    this.worker = new Worker<TaskInstanceData, TaskInstanceResult>(
      TASKS_QUEUE,
      (job, token) => this.process(job, token),
      {
        connection: this.redis,
        concurrency: this.options.concurrency,
        name: 'master',
      },
    );
    logErrors(this.worker, (error) => this.logger.error({ err: error.message }, 'master worker error'));
    this.worker.on('failed', (job, error) => {
      this.logger.info({ instanceId: job?.id, reason: error.message }, 'TaskInstance failed');
      if (job !== undefined) {
        void this.releaseIfFinal(job);
      }
    });
    this.worker.on('completed', (job) => {
      this.logger.info({ instanceId: job.id }, 'TaskInstance completed');
      void this.releaseIfFinal(job);
    });
    await this.worker.waitUntilReady();
    await this.startMaintenance();
    this.tasksQueue = new Queue<TaskInstanceData>(TASKS_QUEUE, { connection: this.redis });
    logErrors(this.tasksQueue, (error) => this.logger.warn({ err: error.message }, 'tasks queue error'));
    this.sweepTimer = setInterval(() => void this.sweep(), this.options.sweepIntervalMs);
    this.sweepTimer.unref();
    this.state = 'running';
    this.logger.info({ concurrency: this.options.concurrency }, 'master started');
  }

  close(): Promise<void> {
    this.closing ??= this.closeInternal();
    return this.closing;
  }

  private async closeInternal(): Promise<void> {
    this.state = 'closing';
    clearInterval(this.sweepTimer);
    await Promise.allSettled([this.worker?.close(), this.maintenanceWorker?.close(), this.sweeping]);
    await Promise.allSettled([this.tasksQueue?.close(), this.maintenanceQueue?.close()]);
    await Promise.allSettled([...this.nodeQueues.values()].map((queue) => queue.close()));
    await this.redis.quit().catch(() => this.redis.disconnect());
    this.state = 'closed';
  }

  private async process(job: Job<TaskInstanceData, TaskInstanceResult>, token?: string): Promise<TaskInstanceResult> {
    if (token === undefined || job.id === undefined) {
      throw new Error('internal error: a TaskInstance was processed without a lock token or id; please file an issue');
    }
    // Anyone with Redis access can add to `tasks`: check the shape before acting on it.
    const shape = taskInstanceSchema.safeParse(job.data);
    if (!shape.success) {
      throw new UnrecoverableError(
        `Expected TaskInstance data {ref, package, task, input, attempts}, got invalid data at \`${shape.error.issues[0]?.path.join('.') ?? ''}\`: ${shape.error.issues[0]?.message ?? ''}`,
      );
    }
    // Step 2 first: a TaskInstance that comes back from waiting-children has a settled child.
    const settled = await this.settle(job);
    if (settled !== undefined) {
      return settled.value;
    }
    if ((await this.redis.exists(cancelKey(job.id))) === 1) {
      throw new UnrecoverableError(CANCELLED_MESSAGE);
    }
    let dispatch = job.data.dispatch;
    const lost = job.data.lostNodes ?? [];
    if (dispatch === undefined && lost.length > this.options.maxReroutes) {
      throw new Error(
        `Expected the TaskInstance to finish on a live node, but ${lost.length} node(s) were lost while holding it (${lost.join(', ')}); giving up`,
      );
    }
    if (dispatch === undefined) {
      const nodeId = await this.pickNode();
      if (nodeId === undefined) {
        this.logger.debug({ instanceId: job.id }, 'no live node; retrying dispatch later');
        await job.moveToDelayed(Date.now() + this.options.noNodeRetryMs, token);
        throw new DelayedError();
      }
      // Record the choice before adding the child: a master that crashes between the two
      // leaves a TaskInstance that the next master re-dispatches to the same node, where the
      // fixed job id makes the second add a no-op.
      // Hold the pinned version again (a no-op for a normal submission): a TaskInstance retried
      // from Bull Board after it finished has released its reference, and must not run on a
      // version the prune job is free to delete.
      try {
        await this.store.takeRef(job.data.package.name, job.data.package.sha1, job.id ?? '', { alreadyHeld: true });
      } catch (error) {
        throw new UnrecoverableError((error as Error).message);
      }
      dispatch = { nodeId, at: Date.now() };
      await job.updateData({ ...job.data, dispatch });
    }
    const instanceId = job.id;
    const data = job.data;
    await this.nodeQueue(dispatch.nodeId).add(
      NODE_JOB,
      {
        instanceId,
        ref: data.ref,
        package: data.package,
        task: data.task,
        input: data.input,
        limits: { ...data.limits, ...(data.timeoutMs !== undefined ? { timeoutMs: data.timeoutMs } : {}) },
        ...(data.retryOnLimit ? { retryOnLimit: true } : {}),
      },
      {
        ...NODE_JOB_OPTIONS,
        jobId: instanceId,
        attempts: data.attempts,
        parent: { id: instanceId, queue: job.queueQualifiedName },
        ignoreDependencyOnFailure: true,
      },
    );
    await job.log(`dispatched to node ${dispatch.nodeId}`);
    if (await job.moveToWaitingChildren(token)) {
      throw new WaitingChildrenError();
    }
    // The child finished before we could park the TaskInstance: settle it now.
    const late = await this.settle(job);
    if (late === undefined) {
      throw new Error(
        `internal error: TaskInstance ${instanceId} has no pending and no settled node job; please file an issue`,
      );
    }
    return late.value;
  }

  /** The settled child's value, or throws its error; undefined while no child has settled. */
  private async settle(
    job: Job<TaskInstanceData, TaskInstanceResult>,
  ): Promise<{ value: TaskInstanceResult } | undefined> {
    const values = await job.getChildrenValues<TaskInstanceResult>();
    const [value] = Object.values(values);
    if (Object.keys(values).length > 0) {
      return { value: value ?? null };
    }
    const failures = await job.getIgnoredChildrenFailures();
    const [childKey, reason] = Object.entries(failures)[0] ?? [];
    if (childKey === undefined) {
      return undefined;
    }
    throw await this.childError(childKey, reason ?? 'the node job failed');
  }

  /** Rebuilds the task's own error (message and stack) from the failed node job. */
  private async childError(childKey: string, reason: string): Promise<Error> {
    // childKey is `<prefix>:<queue>:<jobId>`; queue names cannot contain `:`.
    const parts = childKey.split(':');
    const jobId = parts.at(-1);
    const queueName = parts.at(-2);
    const error = new Error(reason);
    if (jobId !== undefined && queueName !== undefined) {
      const child = await Job.fromId(this.nodeQueue(queueName.slice('node.'.length)), jobId);
      const stack = child?.stacktrace?.at(-1);
      if (stack) {
        error.stack = stack;
      }
    }
    return error;
  }

  /** Releases the TaskInstance's package reference once it has reached a final state. */
  private async releaseIfFinal(job: Job<TaskInstanceData, TaskInstanceResult>): Promise<void> {
    try {
      if (job.id !== undefined && ((await job.isCompleted()) || (await job.isFailed()))) {
        await this.store.releaseRef(job.id, job.data.package);
      }
    } catch (error) {
      // The prune job heals what we could not release here.
      this.logger.warn({ instanceId: job.id, err: (error as Error).message }, 'could not release a package reference');
    }
  }

  /** Upserts the prune job scheduler and runs prune passes (one at a time per master). */
  private async startMaintenance(): Promise<void> {
    this.maintenanceQueue = new Queue<PruneJobData>(MAINTENANCE_QUEUE, {
      connection: this.redis,
      defaultJobOptions: MAINTENANCE_JOB_OPTIONS,
    });
    logErrors(this.maintenanceQueue, (error) => this.logger.warn({ err: error.message }, 'maintenance queue error'));
    await this.maintenanceQueue.upsertJobScheduler(
      PRUNE_SCHEDULER,
      { every: this.options.pruneEveryMs },
      { name: PRUNE_JOB, data: { graceMs: this.options.pruneGraceMs }, opts: MAINTENANCE_JOB_OPTIONS },
    );
    this.maintenanceWorker = new Worker<PruneJobData, PruneSummary>(MAINTENANCE_QUEUE, (job) => this.prune(job), {
      connection: this.redis,
      concurrency: 1,
      name: 'master',
    });
    logErrors(this.maintenanceWorker, (error) => this.logger.error({ err: error.message }, 'maintenance worker error'));
    await this.maintenanceWorker.waitUntilReady();
  }

  private async prune(job: Job<PruneJobData, PruneSummary>): Promise<PruneSummary> {
    if (job.name !== PRUNE_JOB) {
      throw new UnrecoverableError(`Expected a maintenance job named ${PRUNE_JOB}, got ${job.name}`);
    }
    const graceMs =
      typeof job.data.graceMs === 'number' && job.data.graceMs >= 0 ? job.data.graceMs : this.options.pruneGraceMs;
    const lines: string[] = [];
    const report = await prunePackages(this.redis, {
      graceMs,
      // Kept versions are the common case: the log lists only what changed, plus a summary.
      log: (line) => {
        if (!line.startsWith('kept ') && lines.length < MAX_PRUNE_LOG_LINES) {
          lines.push(line);
        }
      },
    });
    for (const line of lines) {
      await job.log(line);
    }
    const summary = summarize(report);
    await job.log(
      `pass over ${report.packages} package(s), ${report.versions} version(s) in ${report.ms} ms: removed ${report.removed.length}, healed ${report.healed.length}, kept ${report.kept.length} (${
        Object.entries(summary.kept)
          .map(([why, count]) => `${why} ${count}`)
          .join(', ') || 'none'
      })`,
    );
    if (report.removed.length > 0 || report.healed.length > 0) {
      this.logger.info({ removed: report.removed.length, healed: report.healed.length }, 'prune pass');
    }
    return summary;
  }

  /** One sweep of dead nodes' queues at a time; errors are logged, never thrown. */
  private async sweep(): Promise<void> {
    if (this.sweeping !== undefined || this.tasksQueue === undefined || this.state !== 'running') {
      return;
    }
    const tasksQueue = this.tasksQueue;
    this.sweeping = sweepDeadNodes({
      redis: this.redis,
      registry: this.registry,
      nodeQueue: (nodeId) => this.nodeQueue(nodeId),
      tasksQueue,
      logger: this.logger,
      owner: `master-${process.pid}`,
      lockMs: Math.max(10_000, this.options.sweepIntervalMs * 2),
    })
      .catch((error: Error) => this.logger.warn({ err: error.message }, 'sweep of dead nodes failed'))
      .finally(() => {
        this.sweeping = undefined;
      });
    await this.sweeping;
  }

  private async pickNode(): Promise<string | undefined> {
    const nodes = await this.registry.live();
    const loads = await Promise.all(
      nodes.map(async (node) => {
        const counts = await this.nodeQueue(node.id).getJobCounts('wait', 'active', 'prioritized', 'delayed');
        const pending = Object.values(counts).reduce((sum, count) => sum + count, 0);
        return { id: node.id, concurrency: node.concurrency, pending };
      }),
    );
    this.turn += 1;
    return chooseNode(loads, this.turn)?.id;
  }

  private nodeQueue(nodeId: string): Queue<NodeJobData> {
    let queue = this.nodeQueues.get(nodeId);
    if (queue === undefined) {
      queue = new Queue<NodeJobData>(nodeQueueName(nodeId), { connection: this.redis });
      logErrors(queue, (error) => this.logger.warn({ err: error.message, nodeId }, 'node queue error'));
      this.nodeQueues.set(nodeId, queue);
    }
    return queue;
  }
}
