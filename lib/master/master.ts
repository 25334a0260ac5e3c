/**
 * The master: takes TaskInstances from `tasks` and schedules each onto a live node; this file is
 * its lifecycle (start, close) and the step that routes a TaskInstance.
 *
 * A TaskInstance is processed in steps (BullMQ's "process step jobs" pattern), so no master
 * holds it while it runs and any master may finish it (a sequence is stepped in `sequence.ts`):
 *  1. dispatch (`dispatch.ts`): pick a node, record it in the job data, add the node job as a
 *     child of the TaskInstance, park the TaskInstance in `waiting-children`;
 *  2. settle (`settle.ts`): when the child completes or fails, BullMQ queues the TaskInstance
 *     again and a master completes it with the child's value or fails it with the child's error.
 * Several masters can run at once: each TaskInstance is locked by one of them per step. Every
 * master also sweeps dead nodes' queues (`node-sweeper.ts`) and runs the prune job (`prune-job.ts`).
 */
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';

import { type NodeJobData, nodeQueueName } from '../../queues/node.js';
import { TASKS_QUEUE, type TaskInstanceData, type TaskInstanceResult, taskInstanceSchema } from '../../queues/tasks.js';
import { NodeRegistry } from '../cluster/node-registry.js';
import { QUIT_MS, settlesWithin, trigger } from '../core/bounded-close.js';
import { IllegalStateError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { type TydraMetrics, tydraMetrics } from '../core/metrics.js';
import { type MetricsServer, serveMetricsIfAsked } from '../core/metrics-server.js';
import { PackageStore } from '../packages/store.js';
import { createRedis, logErrors, watchConnection } from '../redis/connection.js';
import { createKeys, type Keyspace } from '../redis/keys.js';
import { dropConnections } from '../redis/force-disconnect.js';
import { dispatch, type DispatchDeps } from './dispatch.js';
import { countFinal } from './master-metrics.js';
import { sweepDeadNodes } from './node-sweeper.js';
import { type CompiledMasterOptions, compileMasterOptions, type MasterOptions } from './options.js';
import { PruneJob } from './prune-job.js';
import { ScheduleFiring } from './schedule-firing.js';
import { isRetried, type RerunDeps, startRerun } from './rerun.js';
import { runSequence, type SequenceDeps } from './sequence.js';
import {
  failsForGood,
  neverDispatched,
  releaseIfFinal,
  settle,
  type SettleDeps,
  type TaskInstanceJob,
} from './settle.js';

export type { PruneSummary } from './prune-job.js';

export type MasterState = 'idle' | 'running' | 'closing' | 'closed';

/** What a step returns: the TaskInstance's value, and whether its reference was released on the way. */
interface StepOutcome {
  value: TaskInstanceResult;
  released: boolean;
}

export class Master {
  readonly options: CompiledMasterOptions;
  private readonly logger: Logger;
  private readonly redis: Redis;
  /** Every key and queue of the master's namespace. */
  private readonly keys: Keyspace;
  private readonly registry: NodeRegistry;
  private readonly store: PackageStore;
  private readonly pruneJob: PruneJob;
  private scheduleFiring: ScheduleFiring | undefined;
  private readonly nodeQueues = new Map<string, Queue<NodeJobData>>();
  private readonly dispatchDeps: DispatchDeps;
  private readonly sequenceDeps: SequenceDeps;
  private readonly rerunDeps: RerunDeps;
  private readonly settleDeps: SettleDeps;
  private worker: Worker<TaskInstanceData, TaskInstanceResult> | undefined;
  private tasksQueue: Queue<TaskInstanceData> | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<unknown> | undefined;
  private turn = 0;
  private closing: Promise<void> | undefined;
  private readonly forced = trigger();
  private readonly metrics: TydraMetrics;
  private metricsServer: MetricsServer | undefined;
  private unwatchNodes: (() => void) | undefined;
  /** `http://host:port/metrics` once started with `metricsPort`. */
  metricsUrl: string | undefined;
  state: MasterState = 'idle';

  constructor(options: MasterOptions = {}) {
    this.options = compileMasterOptions(options);
    this.logger = this.options.logger.child({ component: 'master' });
    this.redis = createRedis(this.options.redisUrl);
    watchConnection(this.redis, this.logger, 'master');
    this.keys = createKeys(this.options.namespace);
    this.registry = new NodeRegistry(this.redis, this.keys);
    this.store = new PackageStore(this.redis, this.keys);
    this.metrics = tydraMetrics(this.options.metrics);
    this.pruneJob = new PruneJob({
      metrics: this.metrics,
      redis: this.redis,
      keys: this.keys,
      logger: this.logger,
      everyMs: this.options.pruneEveryMs,
      graceMs: this.options.pruneGraceMs,
    });
    this.dispatchDeps = {
      options: this.options,
      redis: this.redis,
      keys: this.keys,
      registry: this.registry,
      store: this.store,
      logger: this.logger,
      nodeQueue: (nodeId) => this.nodeQueue(nodeId),
      nextTurn: () => (this.turn += 1),
    };
    this.rerunDeps = { redis: this.redis, keys: this.keys, store: this.store, logger: this.logger };
    this.settleDeps = { redis: this.redis, keys: this.keys, nodeQueue: (nodeId) => this.nodeQueue(nodeId) };
    this.sequenceDeps = {
      redis: this.redis,
      keys: this.keys,
      store: this.store,
      logger: this.logger,
      tasksQueue: () => {
        if (this.tasksQueue === undefined) {
          throw new IllegalStateError('a sequence was processed before the master opened the tasks queue');
        }
        return this.tasksQueue;
      },
    };
  }

  async start(): Promise<void> {
    if (this.state !== 'idle') {
      return;
    }
    this.metricsServer = await serveMetricsIfAsked(this.options, this.logger);
    this.metricsUrl = this.metricsServer?.url;
    this.unwatchNodes = this.metrics.watchAliveNodes(async () => (await this.registry.live()).length);
    // Before the worker: a sequence's first step adds its children to it.
    this.tasksQueue = new Queue<TaskInstanceData>(TASKS_QUEUE, {
      connection: this.redis,
      prefix: this.keys.bullPrefix,
    });
    logErrors(this.tasksQueue, (error) => this.logger.warn({ err: error.message }, 'tasks queue error'));
    this.worker = new Worker<TaskInstanceData, TaskInstanceResult>(
      TASKS_QUEUE,
      (job, token) => this.process(job, token),
      {
        connection: this.redis,
        prefix: this.keys.bullPrefix,
        concurrency: this.options.concurrency,
        name: 'master',
      },
    );
    logErrors(this.worker, (error) => this.logger.error({ err: error.message }, 'master worker error'));
    this.worker.on('failed', (job, error) => {
      this.logger.info({ instanceId: job?.id, reason: error.message }, 'TaskInstance failed');
      countFinal(this.metrics, job, false);
      if (job !== undefined) {
        void releaseIfFinal(job, this.store, this.logger, false);
      }
    });
    // No release here: it happened in `process`, before the completion. This event is lost when
    // the master dies, or Redis restarts, between the completion and its delivery.
    this.worker.on('completed', (job) => {
      this.logger.info({ instanceId: job.id }, 'TaskInstance completed');
      countFinal(this.metrics, job, true);
    });
    await this.worker.waitUntilReady();
    await this.pruneJob.start();
    this.scheduleFiring = new ScheduleFiring({
      redis: this.redis,
      keys: this.keys,
      store: this.store,
      tasksQueue: this.tasksQueue,
      logger: this.logger,
    });
    await this.scheduleFiring.start();
    this.sweepTimer = setInterval(() => void this.sweep(), this.options.sweepIntervalMs);
    this.sweepTimer.unref();
    this.state = 'running';
    this.logger.info({ concurrency: this.options.concurrency }, 'master started');
  }

  /**
   * Stops taking TaskInstances and lets the dispatch steps under way finish, for at most the
   * drain timeout; then force-closes (`force: true` does so at once, also while a graceful close
   * is under way). Resolves within the drain timeout plus 5 s (`FORCE_CLOSE_MS`), whatever Redis
   * does. Idempotent.
   */
  close(options: { force?: boolean } = {}): Promise<void> {
    if (options.force === true) {
      this.forced.fire();
    }
    this.closing ??= this.closeInternal();
    return this.closing;
  }

  private async closeInternal(): Promise<void> {
    this.state = 'closing';
    clearInterval(this.sweepTimer);
    const graceful = this.closeGracefully();
    if (!(await settlesWithin(graceful, this.options.drainTimeoutMs, this.forced.promise))) {
      this.logger.warn(
        { drainTimeoutMs: this.options.drainTimeoutMs },
        'force-closing the master (forced, or not closed within its drain timeout: is Redis down?); dispatch steps under way go to another master once their locks expire',
      );
      this.forceClose();
      // What the graceful close still does (Worker clean-up) ends as its commands fail.
      await settlesWithin(graceful, QUIT_MS);
    }
    this.unwatchNodes?.();
    await this.metricsServer?.close();
    this.state = 'closed';
  }

  private async closeGracefully(): Promise<void> {
    await Promise.allSettled([
      this.worker?.close(),
      this.pruneJob.close(),
      this.scheduleFiring?.close(),
      this.sweeping,
    ]);
    await Promise.allSettled([this.tasksQueue?.close()]);
    await Promise.allSettled([...this.nodeQueues.values()].map((queue) => queue.close()));
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  /** Drops every connection: pending commands fail at once and nothing reconnects. */
  private forceClose(): void {
    dropConnections([
      this.worker,
      ...this.pruneJob.connectionOwners(),
      ...(this.scheduleFiring?.connectionOwners() ?? []),
      this.tasksQueue,
      ...this.nodeQueues.values(),
      this.redis,
    ]);
  }

  /**
   * One step of a TaskInstance. A step that returns completes the TaskInstance (a final state), so
   * its package reference is released first: released before completed, never completed and
   * still held (a settled child's read released it already). Should the completion itself be
   * lost, the step runs again and the release, being idempotent, changes nothing.
   */
  private async process(job: TaskInstanceJob, token?: string): Promise<TaskInstanceResult> {
    let outcome: StepOutcome;
    try {
      outcome = await this.step(job, token);
    } catch (error) {
      // Released before BullMQ records the failure, like a completion below: the `failed` event
      // is lost when the master dies, or Redis restarts, in between. A closing worker leaves the
      // job to stall and run again instead of failing it, so nothing is final then.
      if (this.worker?.closing === undefined && failsForGood(job, error)) {
        await releaseIfFinal(job, this.store, this.logger, true);
      }
      throw error;
    }
    if (!outcome.released) {
      await releaseIfFinal(job, this.store, this.logger, true);
    }
    return outcome.value;
  }

  /** Settles a TaskInstance if its child has finished, dispatches it otherwise; steps a sequence. */
  private async step(job: TaskInstanceJob, token?: string): Promise<StepOutcome> {
    if (token === undefined || job.id === undefined) {
      throw new IllegalStateError('a TaskInstance was processed without a lock token or id');
    }
    // Anyone with Redis access can add to `tasks`: check the shape before acting on it.
    const shape = taskInstanceSchema.safeParse(job.data);
    if (!shape.success) {
      throw new UnrecoverableError(
        `Expected TaskInstance data {ref, package, task, input, attempts}, got invalid data at \`${shape.error.issues[0]?.path.join('.') ?? ''}\`: ${shape.error.issues[0]?.message ?? ''}`,
      );
    }
    // A TaskInstance retried after it ended starts a new run rather than settling from its old child.
    if (isRetried(job)) {
      await startRerun(this.rerunDeps, job);
    }
    if (job.data.kind === 'sequence') {
      return { value: await runSequence(this.sequenceDeps, job, token), released: false };
    }
    // Step 2 first: a TaskInstance that comes back from waiting-children has a settled child.
    // One never dispatched has no child to read (a dispatch is recorded before its child is added).
    const settled = neverDispatched(job) ? undefined : await settle(job, this.settleDeps);
    if (settled !== undefined) {
      return { value: settled.value, released: true };
    }
    await dispatch(this.dispatchDeps, job, token);
    // The child finished before we could park the TaskInstance: settle it now.
    const late = await settle(job, this.settleDeps);
    if (late === undefined) {
      throw new IllegalStateError(`TaskInstance ${job.id} has no pending and no settled node job`);
    }
    return { value: late.value, released: true };
  }

  /** One sweep of dead nodes' queues at a time; errors are logged, never thrown. */
  private async sweep(): Promise<void> {
    if (this.sweeping !== undefined || this.tasksQueue === undefined || this.state !== 'running') {
      return;
    }
    const tasksQueue = this.tasksQueue;
    this.sweeping = sweepDeadNodes({
      redis: this.redis,
      keys: this.keys,
      registry: this.registry,
      nodeQueue: (nodeId) => this.nodeQueue(nodeId),
      tasksQueue,
      logger: this.logger,
      forgetNodeQueue: (nodeId) => this.forgetNodeQueue(nodeId),
      owner: `master-${process.pid}`,
      lockMs: Math.max(10_000, this.options.sweepIntervalMs * 2),
      retentionMs: this.options.nodeRetentionMs,
    })
      .catch((error: Error) => this.logger.warn({ err: error.message }, 'sweep of dead nodes failed'))
      .finally(() => {
        this.sweeping = undefined;
      });
    await this.sweeping;
  }

  private async forgetNodeQueue(nodeId: string): Promise<void> {
    const queue = this.nodeQueues.get(nodeId);
    this.nodeQueues.delete(nodeId);
    await queue?.close();
  }

  private nodeQueue(nodeId: string): Queue<NodeJobData> {
    let queue = this.nodeQueues.get(nodeId);
    if (queue === undefined) {
      queue = new Queue<NodeJobData>(nodeQueueName(nodeId), {
        connection: this.redis,
        prefix: this.keys.bullPrefix,
      });
      logErrors(queue, (error) => this.logger.warn({ err: error.message, nodeId }, 'node queue error'));
      this.nodeQueues.set(nodeId, queue);
    }
    return queue;
  }
}
