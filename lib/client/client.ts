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

import { NODE_JOB_OPTIONS, nodeQueueName } from '../../queues/node.js';
import { type FireJobData, SCHEDULES_QUEUE } from '../../queues/schedules.js';
import { type WorkunitBatchData, workunitsQueueOf } from '../../queues/workunits.js';
import { TASK_INSTANCE_JOB, TASKS_QUEUE, type TaskInstanceData, type TaskInstanceResult } from '../../queues/tasks.js';
import { InvalidOptionError, TaskCancelledError, TaskNotFoundError, UnknownTaskError } from '../core/errors.js';
import { settlesWithin } from '../core/bounded-close.js';
import { dropConnections } from '../redis/force-disconnect.js';
import { stopParallel } from '../cluster/parallel-stop.js';
import { createKeys, type Keyspace } from '../redis/keys.js';
import { endParallel } from '../redis/parallel-commands.js';
import type { Logger } from '../core/logger.js';
import { type NodeInfo, NodeRegistry } from '../cluster/node-registry.js';
import { type CompiledTydraOptions, compileTydraOptions, type TydraOptions } from './options.js';
import { declaredSecrets, type TaskSpec, taskKind } from '../packages/manifest.js';
import { packDirectory } from '../packages/pack.js';
import { checkTaskInput } from '../packages/task-schemas.js';
import { type PruneOptions, type PruneReport, prunePackages } from '../packages/pruner.js';
import { type DeployResult, PackageStore, type PackageVersion } from '../packages/store.js';
import { wasCancelled } from './task-ending.js';
import {
  BOUNDED_QUEUE_OPTIONS,
  createBoundedRedis,
  whenReachable,
  withoutStaleDisconnectTimer,
} from '../redis/connection.js';
import { confirmReplicated } from '../redis/replication.js';
import {
  checkSubmitOptions,
  type CheckedSubmitOptions,
  runAtOf,
  scheduleData,
  scheduleJobOptions,
} from './submit-options.js';
import { formatTaskRef, parseTaskRef } from '../packages/task-ref.js';
import { claimIdempotencyKey, type IdempotencyScope, releaseIdempotencyKey } from '../redis/idempotency-commands.js';
import { listUnstartedCancels, readCancelRecord, recordUnstartedCancel, writeCancelRecord } from './cancel-record.js';
import { reportedProgress } from './progress.js';
import { serialiseInput } from './input.js';
import {
  addSchedule,
  listSchedules,
  removeSchedule,
  type ScheduleContext,
  type ScheduleInfo,
  type ScheduleSpec,
} from './schedules.js';
import { listSecrets, removeSecret, type SecretInfo, setSecret, submissionSecrets } from './secrets.js';
import { submitHooksOf } from './submit-hooks.js';
import { TaskRun } from './task-run.js';
import { retentionJobOptions } from './retention.js';
import { listRuns, type RunRow, type RunsOptions } from './runs.js';
import { pinnedVersionGone, type RerunOptions, rerunSubmission } from './rerun.js';
import type { TaskRunContext } from './task-run-context.js';
import type { CancelResult, PackageVersionUse, SubmitOptions, TaskState, TaskStatus } from './types.js';

export type { CancelResult, PackageVersionUse, SubmitOptions, TaskState, TaskStatus } from './types.js';
export { TaskRun } from './task-run.js';

/**
 * What a TaskInstance takes from its task's kind: the kind itself; for a parallel task, the
 * attempts of each workunit and the failures it tolerates, from the submission or else the
 * manifest.
 */
function kindData(
  task: string,
  spec: TaskSpec,
  options: CheckedSubmitOptions,
): Pick<TaskInstanceData, 'kind' | 'attempts' | 'maxFailedWorkunits'> {
  const kind = taskKind(spec);
  // `env` and `secrets` reach every kind (each phase of a parallel task, each step of a
  // sequence); a backoff does not: workunits are retried at once, and steps have their own runs.
  if (kind !== 'simple' && options.backoff !== undefined) {
    throw new InvalidOptionError(
      `Expected the \`backoff\` submit option only for a simple task, got it for task ${task}, a ${kind} task`,
    );
  }
  if (spec.kind === 'parallel') {
    return {
      kind,
      attempts: options.attempts ?? spec.attempts ?? 1,
      maxFailedWorkunits: options.maxFailedWorkunits ?? spec.maxFailedWorkunits ?? 0,
    };
  }
  if (options.maxFailedWorkunits !== undefined) {
    throw new InvalidOptionError(
      `Expected the \`maxFailedWorkunits\` submit option only for a parallel task, got it for task ${task}, a ${kind} task`,
    );
  }
  return { kind, attempts: options.attempts ?? 1 };
}

/** Node queues kept open for `status()`; the oldest is closed past this many. */
const MAX_NODE_QUEUES = 32;

export class Tydra {
  readonly options: CompiledTydraOptions;
  private readonly logger: Logger;
  private readonly redis: Redis;
  /** Every key and queue of the client's namespace. */
  private readonly keys: Keyspace;
  private readonly store: PackageStore;
  private readonly tasksQueue: Queue<TaskInstanceData, TaskInstanceResult>;
  /** Read-only handles on node queues (`status()` asks them whether a job is active), by node id. */
  private readonly nodeQueues = new Map<string, Queue>();
  private readonly sharedQueues = new Map<string, Queue>();
  /** What each TaskRun gets: the client's queue, events, cancel and status, and nothing else. */
  private readonly runContext: TaskRunContext;
  private queueEvents: QueueEvents | undefined;
  /** The events stream's last id when the client first needed events: where its QueueEvents starts. */
  private eventsStart: Promise<string> | undefined;
  private eventsRedis: Redis | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: TydraOptions = {}) {
    this.options = compileTydraOptions(options);
    this.logger = this.options.logger.child({ component: 'client' });
    this.redis = createBoundedRedis(this.options.redisUrl, this.options.connectTimeoutMs);
    this.redis.on('error', (error) => this.logger.warn({ err: error.message }, 'redis connection error'));
    this.keys = createKeys(this.options.namespace);
    this.store = new PackageStore(this.redis, this.keys, { leaseMs: this.options.deployLeaseMs });
    this.tasksQueue = new Queue<TaskInstanceData, TaskInstanceResult>(TASKS_QUEUE, {
      connection: this.redis,
      prefix: this.keys.bullPrefix,
      defaultJobOptions: retentionJobOptions(this.options.keepCompleted, this.options.keepFailed),
      ...BOUNDED_QUEUE_OPTIONS,
    });
    this.tasksQueue.on('error', (error) => this.logger.warn({ err: error.message }, 'tasks queue error'));
    // Every pending `result()` adds a listener (BullMQ's waitUntilFinished); many in flight is normal.
    this.tasksQueue.setMaxListeners(0);
    this.runContext = {
      tasksQueue: this.tasksQueue,
      events: () => this.events(),
      cancelRecord: (id) => readCancelRecord(this.redis, this.keys, id),
      cancel: (id) => this.cancel(id),
      status: (id) => this.status(id),
    };
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
    return this.submitData(ref, input, options, {});
  }

  /**
   * `submit`, with data only tydra sets (`rerunOf`). The version is resolved and the new
   * TaskInstance's reference taken on it in one round trip; from then on every way out that does
   * not enqueue it (a failed check, an idempotent submit that finds its TaskInstance, a failed
   * add) lets go of the reference again.
   */
  private async submitData(
    ref: string,
    input: unknown,
    options: SubmitOptions,
    extra: Pick<TaskInstanceData, 'rerunOf'>,
  ): Promise<TaskRun> {
    const parsed = parseTaskRef(ref);
    const checked = checkSubmitOptions(options);
    const inputJson = serialiseInput(input, this.options.maxInputBytes);
    const id = randomUUID();
    const version = await this.store.resolve(parsed.name, parsed.version, { referenceFor: id });
    let enqueued: { data: TaskInstanceData; existing?: TaskRun };
    try {
      await submitHooksOf(this).afterReference?.();
      enqueued = await this.enqueue(id, version, parsed.task, { inputJson, checked, extra });
    } catch (error) {
      await this.store.releaseRef(id, version).catch(() => undefined);
      throw error;
    }
    if (enqueued.existing !== undefined) {
      await this.store.releaseRef(id, version).catch(() => undefined);
      return enqueued.existing;
    }
    if (this.options.durableSubmit !== undefined) {
      // After the enqueue, not instead of it: `WAIT` covers every write of this connection so far.
      await confirmReplicated(this.redis, this.keys, id, this.options.durableSubmit);
    }
    this.logger.debug({ instanceId: id, ref: enqueued.data.ref }, 'TaskInstance submitted');
    return new TaskRun(this.runContext, id, enqueued.data.ref);
  }

  /**
   * Checks the task and its input against the resolved version, then adds the TaskInstance job
   * (after claiming its idempotency key, if it has one: `existing` is the TaskInstance that holds
   * it, and nothing was added).
   */
  private async enqueue(
    id: string,
    version: PackageVersion,
    task: string,
    submission: { inputJson: string; checked: CheckedSubmitOptions; extra: Pick<TaskInstanceData, 'rerunOf'> },
  ): Promise<{ data: TaskInstanceData; existing?: TaskRun }> {
    const { checked } = submission;
    const spec = version.manifest.tasks[task];
    if (spec === undefined) {
      const known = Object.keys(version.manifest.tasks).join(', ');
      throw new UnknownTaskError(
        `Expected package ${version.name}@${version.sha1.slice(0, 12)} to define task ${task}, got only: ${known}`,
      );
    }
    // The input as the task will get it (after JSON), checked before the TaskInstance is written.
    const jsonInput = JSON.parse(submission.inputJson) as unknown;
    checkTaskInput(task, spec, jsonInput);
    const declared = declaredSecrets(version.manifest, task);
    const mapping = await submissionSecrets(this.redis, this.keys, task, declared, checked.secrets);
    const now = Date.now();
    const data: TaskInstanceData = {
      ref: formatTaskRef(version.name, version.sha1, task),
      package: { name: version.name, sha1: version.sha1 },
      task,
      input: jsonInput,
      submittedAt: now,
      ...kindData(task, spec, checked),
      ...(checked.timeoutMs !== undefined ? { timeoutMs: checked.timeoutMs } : {}),
      ...(checked.limits !== undefined ? { limits: checked.limits } : {}),
      ...(checked.retryOnLimit ? { retryOnLimit: true } : {}),
      ...scheduleData(checked, runAtOf(checked, now)),
      ...(mapping !== undefined ? { secrets: mapping } : {}),
      ...submission.extra,
    };
    const scope = checked.key === undefined ? undefined : { pkg: version.name, task, key: checked.key };
    const existing = scope === undefined ? undefined : await this.claimKey(scope, id);
    if (existing !== undefined) {
      return { data, existing };
    }
    try {
      await this.tasksQueue.add(TASK_INSTANCE_JOB, data, { jobId: id, ...scheduleJobOptions(data, Date.now()) });
    } catch (error) {
      if (scope !== undefined) {
        await releaseIdempotencyKey(this.redis, this.keys, scope, id).catch(() => undefined);
      }
      throw error;
    }
    return { data };
  }

  /**
   * Claims the idempotency key for `id` (undefined: claimed, go on), or returns the TaskRun of the
   * TaskInstance that holds it. That one's submit claims the key before it enqueues, so its job
   * may be a moment away: wait for it (bounded by `connectTimeoutMs`); if its submit failed and
   * let go of the key meanwhile, claim it again.
   */
  private async claimKey(scope: IdempotencyScope, id: string): Promise<TaskRun | undefined> {
    const deadline = Date.now() + this.options.connectTimeoutMs;
    for (;;) {
      const existing = await claimIdempotencyKey(this.redis, this.keys, scope, id, this.options.idempotencyWindowMs);
      if (existing === undefined) {
        return undefined;
      }
      const job = await Job.fromId<TaskInstanceData, TaskInstanceResult>(this.tasksQueue, existing);
      const ref = job?.data.ref ?? (await readCancelRecord(this.redis, this.keys, existing))?.ref;
      if (ref !== undefined || Date.now() > deadline) {
        this.logger.debug({ instanceId: existing, key: scope.key }, 'idempotent submit: the TaskInstance exists');
        return new TaskRun(this.runContext, existing, ref);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** A handle on an existing TaskInstance. */
  run(id: string): TaskRun {
    return new TaskRun(this.runContext, id, undefined);
  }

  /**
   * TaskInstances, newest first (see {@link RunsOptions}; the steps of sequences only with `all`),
   * from BullMQ's own sets of the `tasks` queue: what retention (`keepCompleted`, `keepFailed`)
   * has kept; and those cancelled before they started (their jobs removed) while their cancel
   * request lasts (7 days; the newest 10,000 by submit time).
   */
  async runs(options: RunsOptions = {}): Promise<RunRow[]> {
    return listRuns(this.tasksQueue, options, {
      nodeJobState: (nodeId, id) => this.nodeQueue(nodeId).getJobState(id),
      unstartedCancels: (query) => listUnstartedCancels(this.redis, this.keys, query),
    });
  }

  /**
   * Submits a new TaskInstance with the input and submit options of TaskInstance `id`, pinned to
   * the version it ran unless `latest`; its data records `rerunOf: id`. Throws
   * `TaskNotFoundError` for an id not (or no longer) kept, and `UnknownTaskError` for a version
   * pruned or undeployed since (re-run with `latest`).
   */
  async rerun(id: string, options: RerunOptions = {}): Promise<TaskRun> {
    const { data } = await this.job(id);
    const submission = rerunSubmission(data, options);
    try {
      return await this.submitData(submission.ref, submission.input, submission.options, { rerunOf: id });
    } catch (error) {
      throw !options.latest && error instanceof UnknownTaskError ? pinnedVersionGone(id, data, error) : error;
    }
  }

  /**
   * Adds schedule `name`: a TaskInstance of `ref` on a cron pattern (`{ cron, tz }`) or every so
   * often (`{ every: '30s' }`), made by the masters; `name/task` runs the latest version at each
   * firing, `name@sha1/task` the pinned one. A name in use is replaced. The reference and the
   * input are checked now.
   */
  async addSchedule(name: string, ref: string, spec: ScheduleSpec): Promise<ScheduleInfo> {
    return addSchedule(this.scheduleContext(), name, ref, spec);
  }

  /** Every schedule, by name, with when it fires next. */
  async listSchedules(): Promise<ScheduleInfo[]> {
    return listSchedules(this.scheduleContext());
  }

  /** Removes schedule `name` (false when there was none); the TaskInstances it made stay. */
  async removeSchedule(name: string): Promise<boolean> {
    return removeSchedule(this.scheduleContext(), name);
  }

  /**
   * Seals `value` with the client's `secretKey` and stores it as secret `name` (replacing it).
   * Names match `^[A-Z][A-Z0-9_]{0,63}$`; values are 1 byte to 64 KiB. Only the sealed value
   * reaches Redis.
   */
  async setSecret(name: string, value: string): Promise<void> {
    await setSecret(this.redis, this.keys, this.options.secretKey, name, value);
    this.logger.info({ secret: name }, 'secret set');
  }

  /** Every stored secret: its name and when it was set (never its value). Needs no key. */
  async listSecrets(): Promise<SecretInfo[]> {
    return listSecrets(this.redis, this.keys);
  }

  /** Removes secret `name` (false when there was none). Needs no key. */
  async removeSecret(name: string): Promise<boolean> {
    return removeSecret(this.redis, this.keys, name);
  }

  private scheduleContext(): ScheduleContext {
    return {
      queue: () => this.sharedQueue<FireJobData>(SCHEDULES_QUEUE),
      redis: this.redis,
      keys: this.keys,
      store: this.store,
      serialiseInput: (input) => JSON.parse(serialiseInput(input, this.options.maxInputBytes)) as unknown,
    };
  }

  /**
   * Cancels a TaskInstance. One that has not started is removed (and its package reference
   * released); a running one is killed on whichever node runs it and ends as `cancelled`.
   * One that has already ended, cancelled before it started included, is left as it is
   * (`finished`). Throws `TaskNotFoundError` for an unknown id.
   */
  async cancel(id: string): Promise<CancelResult> {
    const job = await Job.fromId<TaskInstanceData, TaskInstanceResult>(this.tasksQueue, id);
    if (job === undefined) {
      // Removed by an earlier cancel (its request outlives the job), or never there.
      if ((await readCancelRecord(this.redis, this.keys, id)) !== undefined) {
        return { id, outcome: 'finished' };
      }
      throw new TaskNotFoundError(id);
    }
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') {
      return { id, outcome: 'finished' };
    }
    // Remembered first: a master or node that picks the job up after this point sees it.
    await writeCancelRecord(this.redis, this.keys, id, job.data);
    const parallel = job.data.kind === 'parallel';
    if (parallel) {
      // Its workunits run on every node, and its coordinator may be parked (not running, so
      // not listening): stop them from here.
      await stopParallel(this.redis, this.keys, this.workunits(job.data.secrets), id, { kind: 'cancelled' });
    }
    // A sequence parked on its step is not removed whole (its finished steps with it): its
    // step's children are cancelled below, and the master then fails it as cancelled.
    const sequence = job.data.kind === 'sequence';
    if (!sequence || state !== 'waiting-children') {
      try {
        // Fails when the TaskInstance or its node job is locked, i.e. being worked on.
        await job.remove();
        if (parallel) {
          await endParallel(this.redis, this.keys, id);
        }
        await this.store.releaseRef(id, job.data.package);
        await recordUnstartedCancel(this.redis, this.keys, id, job.data.submittedAt);
        await this.redis.publish(this.keys.cancelChannel, id);
        this.logger.info({ instanceId: id }, 'TaskInstance cancelled before it started: removed');
        return { id, outcome: 'removed' };
      } catch (error) {
        this.logger.debug(
          { instanceId: id, err: (error as Error).message },
          'TaskInstance is running: asking its node to kill it',
        );
      }
    }
    if (sequence) {
      await this.cancelSteps(job);
    }
    await this.redis.publish(this.keys.cancelChannel, id);
    return { id, outcome: 'cancelling' };
  }

  /**
   * Cancels the children a sequence waits for (its current step), each as `cancel` does (a nested
   * sequence in turn). Listed after the sequence's cancel request was written: a child a master
   * adds later reads that request when it is dispatched, and fails as cancelled.
   */
  private async cancelSteps(job: Job<TaskInstanceData, TaskInstanceResult>): Promise<void> {
    const prefix = `${this.tasksQueue.qualifiedName}:`;
    let cursor = 0;
    do {
      const page = await job.getDependencies({ unprocessed: { cursor, count: 100 } });
      for (const key of page.unprocessed ?? []) {
        if (key.startsWith(prefix)) {
          await this.cancel(key.slice(prefix.length)).catch((error: Error) =>
            this.logger.debug({ instanceId: job.id, child: key, err: error.message }, 'could not cancel a step'),
          );
        }
      }
      cursor = page.nextUnprocessedCursor ?? 0;
    } while (cursor !== 0);
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
    return prunePackages(this.redis, this.keys, options);
  }

  /** Every registered node, alive or not. */
  async nodes(): Promise<NodeInfo[]> {
    return new NodeRegistry(this.redis, this.keys).list();
  }

  /**
   * Closes the client's queues and connections. Bounded like every other call: with Redis out of
   * reach a graceful close would wait for it, so past `connectTimeoutMs` the connections are
   * dropped instead.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const nodeQueues = [...this.nodeQueues.values(), ...this.sharedQueues.values()];
      this.nodeQueues.clear();
      const graceful = (async () => {
        await Promise.allSettled([
          this.queueEvents?.close(),
          this.tasksQueue.close(),
          ...nodeQueues.map((queue) => queue.close()),
        ]);
        // QueueEvents does not close a connection it was given: we own both.
        await Promise.allSettled([this.eventsRedis?.quit(), this.redis.quit()]);
      })();
      if (!(await settlesWithin(graceful, this.options.connectTimeoutMs))) {
        dropConnections([this.queueEvents, this.tasksQueue, ...nodeQueues, this.eventsRedis, this.redis]);
      }
      this.eventsRedis?.disconnect();
      this.redis.disconnect();
    })();
    return this.closing;
  }

  private async job(id: string): Promise<Job<TaskInstanceData, TaskInstanceResult>> {
    const job = await Job.fromId<TaskInstanceData, TaskInstanceResult>(this.tasksQueue, id);
    if (job === undefined) {
      throw new TaskNotFoundError(id);
    }
    return job;
  }

  private async events(): Promise<QueueEvents> {
    // Its blocking connection must ride out outages, so it is not bounded: check Redis first.
    await whenReachable(this.redis);
    // QueueEvents starts after the stream's end as read here, not at `$`: it is "ready" before its
    // first XREAD, and an event added in between (a job finished or removed) would be lost for good.
    this.eventsStart ??= this.redis
      .xrevrange(this.tasksQueue.keys.events ?? '', '+', '-', 'COUNT', 1)
      .then(([last]) => last?.[0] ?? '0')
      .catch((error: unknown) => {
        this.eventsStart = undefined;
        throw error;
      });
    const lastEventId = await this.eventsStart;
    if (this.queueEvents === undefined) {
      this.eventsRedis = withoutStaleDisconnectTimer(this.redis.duplicate());
      this.eventsRedis.on('error', (error) => this.logger.warn({ err: error.message }, 'redis connection error'));
      this.queueEvents = new QueueEvents(TASKS_QUEUE, {
        connection: this.eventsRedis,
        prefix: this.keys.bullPrefix,
        lastEventId,
      });
      this.queueEvents.on('error', (error) => this.logger.warn({ err: error.message }, 'queue events error'));
      this.queueEvents.setMaxListeners(0);
    }
    await this.queueEvents.waitUntilReady();
    return this.queueEvents;
  }

  /** The workunits queue of a parallel TaskInstance with this secret mapping (a cancel of one). */
  private workunits(secrets: Readonly<Record<string, string>> | undefined): Queue<WorkunitBatchData> {
    return this.sharedQueue<WorkunitBatchData>(workunitsQueueOf(secrets));
  }

  /** A queue other than `tasks` and the nodes', opened on first use and kept until `close()`. */
  private sharedQueue<T>(name: string): Queue<T> {
    let queue = this.sharedQueues.get(name);
    if (queue === undefined) {
      queue = new Queue(name, { connection: this.redis, prefix: this.keys.bullPrefix, ...BOUNDED_QUEUE_OPTIONS });
      queue.on('error', (error) => this.logger.warn({ err: error.message, queue: name }, 'queue error'));
      this.sharedQueues.set(name, queue);
    }
    return queue as Queue<T>;
  }

  /**
   * Where a node queue is asked about one job: the client's own connection, one handle per node
   * kept open (a status poll must not open and close a Queue per call).
   */

  private nodeQueue(nodeId: string): Queue {
    let queue = this.nodeQueues.get(nodeId);
    if (queue === undefined) {
      queue = new Queue(nodeQueueName(nodeId), {
        connection: this.redis,
        prefix: this.keys.bullPrefix,
        defaultJobOptions: NODE_JOB_OPTIONS,
        ...BOUNDED_QUEUE_OPTIONS,
      });
      queue.on('error', (error) => this.logger.warn({ err: error.message }, 'node queue error'));
      this.nodeQueues.set(nodeId, queue);
      const oldest = this.nodeQueues.size > MAX_NODE_QUEUES ? this.nodeQueues.keys().next().value : undefined;
      if (oldest !== undefined) {
        const evicted = this.nodeQueues.get(oldest);
        this.nodeQueues.delete(oldest);
        void evicted?.close().catch(() => undefined);
      }
    }
    return queue;
  }

  private async status(id: string): Promise<TaskStatus> {
    const job = await Job.fromId<TaskInstanceData, TaskInstanceResult>(this.tasksQueue, id);
    if (job === undefined) {
      const cancelled = await readCancelRecord(this.redis, this.keys, id);
      if (cancelled === undefined) {
        throw new TaskNotFoundError(id);
      }
      return {
        id,
        ref: cancelled.ref,
        state: 'cancelled',
        nodeId: undefined,
        progress: undefined,
        result: undefined,
        error: new TaskCancelledError(id).message,
        submittedAt: cancelled.submittedAt,
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
    } else if (jobState === 'delayed' && job.data.runAt !== undefined && job.data.runAt > Date.now()) {
      // Delayed by its submission (not by a master waiting for a live node, which reads as queued).
      state = 'delayed';
    } else if (jobState === 'waiting-children' && job.data.kind === 'sequence') {
      state = 'running';
    } else if (jobState === 'waiting-children' && nodeId !== undefined) {
      state = (await this.nodeQueue(nodeId).getJobState(id)) === 'active' ? 'running' : 'dispatched';
    } else {
      state = 'queued';
    }
    return {
      id,
      ref: job.data.ref,
      state,
      nodeId,
      progress: reportedProgress(job.progress),
      result: state === 'completed' ? job.returnvalue : undefined,
      error: state === 'failed' || state === 'cancelled' ? job.failedReason : undefined,
      submittedAt: job.data.submittedAt,
      ...(job.data.runAt !== undefined ? { runAt: job.data.runAt } : {}),
      finishedAt: job.finishedOn,
      logs,
    };
  }
}
