/**
 * A node: one machine's processor. It registers itself with a heartbeat, takes jobs from its
 * own queue `node.<id>`, syncs the pinned package version into its cache and runs each
 * TaskInstance in a fresh bubblewrap sandbox. Only the node talks to workers; workers cannot
 * reach Redis or the network.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

import { DelayedError, type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';

import { type NodeJobData, nodeJobSchema, nodeQueueName } from '../../queues/node.js';
import { TASKS_QUEUE } from '../../queues/tasks.js';
import { checkBwrap } from '../../sandbox/launcher/bwrap.js';
import {
  type CgroupSupport,
  cleanStaleCgroups,
  detectCgroups,
  removeCgroupParent,
  removeOrphanParents,
} from '../../sandbox/launcher/cgroup/support.js';
import { findPrlimit } from '../../sandbox/launcher/rlimits.js';
import { installRuntime } from '../../sandbox/launcher/runtime-dir.js';
import { runTask } from '../../sandbox/launcher/run-task.js';
import {
  CANCELLED_MESSAGE,
  InfrastructureError,
  LimitExceededError,
  PackageRejectedError,
  SandboxUnavailableError,
  TaskFailedError,
  TaskTimeoutError,
} from '../core/errors.js';
import { cancelChannel, cancelKey } from '../redis/keys.js';
import { unreachableFolder } from '../core/path-access.js';
import type { Logger } from '../core/logger.js';
import { MANIFEST_FILE, parseManifest } from '../packages/manifest.js';
import { NodeRegistry } from '../cluster/node-registry.js';
import { type CompiledNodeOptions, compileNodeOptions, type NodeOptions } from './options.js';
import { blobExists, type CacheLease, PackageCache } from '../packages/cache/package-cache.js';
import { PackageStore } from '../packages/store.js';
import { createRedis, logErrors, watchConnection } from '../redis/connection.js';
import { describeLimit, resolveLimits } from '../core/limits.js';

export type NodeState = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

/** Log lines mirrored to Redis per TaskInstance; more are dropped with a note. */
const MAX_LOG_LINES = 1000;

/** Sandbox set-up failures a TaskInstance may meet on one node before it fails for good. */
const MAX_INFRA_FAILURES = 3;

/** Abort reason of TaskInstances killed because the node is shutting down (re-routed, not failed). */
const SHUTDOWN_REASON = 'node shutting down';

export class TydraNode {
  readonly options: CompiledNodeOptions;
  readonly id: string;
  readonly cache: PackageCache;
  private readonly logger: Logger;
  private readonly redis: Redis;
  private readonly registry: NodeRegistry;
  private readonly tasksQueue: Queue;
  private worker: Worker<NodeJobData, unknown> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private cachePruner: NodeJS.Timeout | undefined;
  private subscriber: Redis | undefined;
  private bwrap: string | undefined;
  private prlimit: string | undefined;
  private runtimeDir: string | undefined;
  /** How this node limits each sandbox; detected once at start. */
  cgroups: CgroupSupport | undefined;
  private closing: Promise<void> | undefined;
  private registered = false;
  private readonly startedAt = Date.now();
  state: NodeState = 'idle';

  constructor(options: NodeOptions = {}) {
    this.options = compileNodeOptions(options);
    this.id = this.options.id;
    this.logger = this.options.logger.child({ component: 'node', nodeId: this.id });
    this.redis = createRedis(this.options.redisUrl);
    watchConnection(this.redis, this.logger, 'node');
    this.registry = new NodeRegistry(this.redis);
    this.tasksQueue = new Queue(TASKS_QUEUE, { connection: this.redis });
    logErrors(this.tasksQueue, (error) => this.logger.warn({ err: error.message }, 'tasks queue error'));
    this.cache = new PackageCache(
      this.options.cacheDir,
      new PackageStore(this.redis),
      this.options.limits,
      this.logger,
      this.options.cacheMaxBytes,
    );
  }

  /** The node's BullMQ queue name. */
  get queueName(): string {
    return nodeQueueName(this.id);
  }

  /** Checks the sandbox, prepares the cache, registers and starts taking jobs. */
  async start(): Promise<void> {
    if (this.state !== 'idle') {
      return;
    }
    this.state = 'starting';
    try {
      await this.startInternal();
    } catch (error) {
      // Leave nothing open behind a failed start (no Redis connection keeps the process alive).
      await this.close();
      throw error;
    }
  }

  private async startInternal(): Promise<void> {
    if (this.options.unsafeNoSandbox) {
      this.logger.warn(
        "UNSAFE: --unsafe-no-sandbox is set: task code runs WITHOUT bubblewrap, with this process's user, files and network. Never use this outside development.",
      );
    } else {
      const user = this.options.sandboxUser;
      this.bwrap = await checkBwrap(undefined, user);
      this.prlimit = findPrlimit();
      if (user?.uid === 0) {
        this.logger.warn(
          "UNSAFE: sandboxUser uid 0: tasks are the host's root for the kernel (sysctls, mounted files); use an unprivileged user",
        );
      }
      this.cgroups = await detectCgroups({ parentName: this.cgroupParentName() });
      // Sandboxes of node processes on this host that crashed: whatever is left dies now.
      const stale = [
        ...(await cleanStaleCgroups(this.cgroups)),
        ...(await removeOrphanParents(this.cgroups, this.options.cgroupName)),
      ];
      if (stale.length > 0) {
        this.logger.warn({ cgroups: stale }, 'removed cgroups left by crashed node processes on this host');
      }
      if (this.cgroups.mode === 'none') {
        this.logger.warn(
          { reason: this.cgroups.reason },
          'no usable cgroups: memory is limited by rlimits (address space) and the V8 heap flag, processes only by the wall-clock limit',
        );
      } else {
        this.logger.info(
          {
            cgroups: this.cgroups.mode,
            parent: this.cgroups.mode === 'v2' ? this.cgroups.parent : this.cgroups.memory,
          },
          'each TaskInstance gets its own cgroup (memory, pids)',
        );
      }
    }
    await this.cache.init();
    if (this.bwrap !== undefined) {
      await this.prepareSandboxFiles();
    }
    this.registered = true;
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat(), this.options.heartbeatMs);
    this.heartbeat.unref();
    this.cachePruner = setInterval(() => void this.pruneCache(), this.options.cachePruneMs);
    this.cachePruner.unref();
    await this.listenForCancels();
    this.worker = new Worker<NodeJobData, unknown>(
      this.queueName,
      (job, token, signal) => this.process(job, token, signal),
      {
        connection: this.redis,
        concurrency: this.options.concurrency,
        name: this.id,
        lockDuration: this.options.lockDurationMs,
      },
    );
    logErrors(this.worker, (error) => this.logger.error({ err: error.message }, 'node worker error'));
    await this.worker.waitUntilReady();
    this.state = 'running';
    this.logger.info(
      {
        queue: this.queueName,
        concurrency: this.options.concurrency,
        cacheDir: this.options.cacheDir,
        sandbox: this.bwrap ?? 'NONE',
      },
      'node started',
    );
  }

  /** Stops taking jobs, waits for running ones, and leaves the registry as stopped. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.closeInternal();
    return this.closing;
  }

  private async closeInternal(): Promise<void> {
    this.state = 'closing';
    clearInterval(this.heartbeat);
    clearInterval(this.cachePruner);
    // Stopped now, not when the last task ends: masters stop sending work here and re-route
    // what waits in our queue, while running TaskInstances finish.
    if (this.registered) {
      await this.registry.markStopped(this.id).catch(() => undefined);
    }
    const closing = this.worker?.close();
    let drainTimer: NodeJS.Timeout | undefined;
    if (closing !== undefined) {
      drainTimer = setTimeout(() => {
        this.logger.warn(
          { drainTimeoutMs: this.options.drainTimeoutMs },
          'drain timeout: killing running TaskInstances; they will be re-routed',
        );
        this.worker?.cancelAllJobs(SHUTDOWN_REASON);
      }, this.options.drainTimeoutMs);
    }
    const results = await Promise.allSettled([closing]);
    clearTimeout(drainTimer);
    await Promise.allSettled([
      this.registered ? this.registry.markStopped(this.id) : undefined,
      this.tasksQueue.close(),
      this.cache.idle(),
    ]);
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
    if (this.cgroups !== undefined) {
      await removeCgroupParent(this.cgroups).catch((error: Error) =>
        this.logger.warn({ err: error.message }, "could not remove the node's parent cgroup"),
      );
    }
    await this.redis.quit().catch(() => this.redis.disconnect());
    for (const result of results) {
      if (result.status === 'rejected') {
        this.logger.warn({ err: String(result.reason) }, 'error while closing the node');
      }
    }
    this.state = 'closed';
  }

  private async beat(): Promise<void> {
    await this.registry
      .heartbeat({
        id: this.id,
        concurrency: this.options.concurrency,
        hostname: hostname(),
        pid: process.pid,
        startedAt: this.startedAt,
        heartbeatMs: this.options.heartbeatMs,
      })
      .catch((error: Error) => this.logger.warn({ err: error.message }, 'heartbeat failed'));
  }

  /**
   * The sandbox user must reach what bwrap mounts: the package cache (checked here, with the
   * fix in the error) and the runner (copied into the cache, since tydra's own folder may be
   * private).
   */
  private async prepareSandboxFiles(): Promise<void> {
    const user = this.options.sandboxUser;
    if (user !== undefined) {
      const blocked = await unreachableFolder(this.options.cacheDir, user.uid, user.gid);
      if (blocked !== undefined) {
        throw new SandboxUnavailableError(
          `Expected the package cache ${this.options.cacheDir} to be reachable by the sandbox user ${user.uid}:${user.gid}, but ${blocked.path} has mode ${blocked.mode}; ` +
            `allow it with chmod o+x ${blocked.path}, or choose another --cache-dir (default for root: /var/cache/tydra/packages)`,
        );
      }
    }
    this.runtimeDir = await installRuntime(this.options.cacheDir);
  }

  /**
   * One parent cgroup per node process, `<cgroupName>.<nodeId>.<pid>`: cleaning up never
   * touches another node's sandboxes, and the pid tells a crashed node's leftovers from a live
   * node's (see `removeOrphanParents`).
   */
  private cgroupParentName(): string {
    const name = `${this.options.cgroupName}.${this.id}.${process.pid}`;
    return name.length <= 128
      ? name
      : `${this.options.cgroupName}.${createHash('sha1').update(this.id).digest('hex')}.${process.pid}`;
  }

  /** Cancel requests arrive on a pub/sub channel; a request for a job running here kills it. */
  private async listenForCancels(): Promise<void> {
    const subscriber = this.redis.duplicate();
    this.subscriber = subscriber;
    watchConnection(subscriber, this.logger, 'node cancel subscriber');
    subscriber.on('message', (_channel: string, instanceId: string) => {
      if (this.worker?.cancelJob(instanceId, CANCELLED_MESSAGE)) {
        this.logger.info({ instanceId }, 'cancelling a running TaskInstance on request');
      }
    });
    await subscriber.subscribe(cancelChannel);
  }

  /** Drops cached versions the prune job removed from Redis (never one in use). */
  private async pruneCache(): Promise<void> {
    try {
      const summary = await this.cache.pruneRemoved((name, sha1) => blobExists(this.redis, name, sha1));
      if (summary.removed.length > 0) {
        this.logger.info(
          { removed: summary.removed.length, freedBytes: summary.freedBytes },
          'removed cached versions that were pruned from Redis',
        );
      }
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'cache prune failed');
    }
  }

  private async process(
    job: Job<NodeJobData, unknown>,
    token: string | undefined,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const parsed = nodeJobSchema.safeParse(job.data);
    if (!parsed.success) {
      throw new UnrecoverableError(
        `Expected node job data {instanceId, package, task, input}, got invalid data: ${parsed.error.issues[0]?.message ?? ''}`,
      );
    }
    const data = parsed.data;
    const logger = this.logger.child({ instanceId: data.instanceId });
    const mirror = new RedisMirror(job, this.tasksQueue, data.instanceId);
    // A cancel may have been asked before this job reached us: its message is long gone.
    if ((await this.redis.exists(cancelKey(data.instanceId))) === 1) {
      throw new UnrecoverableError(CANCELLED_MESSAGE);
    }

    let lease: CacheLease;
    try {
      lease = await this.cache.acquire(data.package.name, data.package.sha1);
    } catch (error) {
      // A bad or missing package will not get better on retry.
      throw error instanceof PackageRejectedError ? new UnrecoverableError(error.message) : error;
    }
    // The lease keeps the version from eviction while this TaskInstance reads and runs it.
    try {
      return await this.runFromPackage(job, data, lease.dir, mirror, logger, signal);
    } catch (error) {
      if (signal?.aborted && signal.reason === SHUTDOWN_REASON && token !== undefined) {
        // Killed by the drain timeout: not the task's fault. Parked here (this node is stopped),
        // the masters' sweep hands it to a live node.
        await job.moveToDelayed(Date.now(), token);
        throw new DelayedError();
      }
      if (error instanceof InfrastructureError && token !== undefined) {
        const failures = (data.infraFailures ?? 0) + 1;
        logger.error({ err: error.message, failures }, 'sandbox set-up failed');
        mirror.log(`infrastructure error on node ${this.id}: ${error.message}`);
        await mirror.flush();
        if (failures < MAX_INFRA_FAILURES) {
          // Retried without using the task's attempts, a bounded number of times.
          await job.updateData({ ...job.data, infraFailures: failures });
          await job.moveToDelayed(Date.now() + 1000 * failures, token);
          throw new DelayedError();
        }
        throw new UnrecoverableError(`infrastructure error on node ${this.id} (${failures} times): ${error.message}`);
      }
      throw error;
    } finally {
      lease.release();
    }
  }

  private async runFromPackage(
    job: Job<NodeJobData, unknown>,
    data: NodeJobData,
    packageDir: string,
    mirror: RedisMirror,
    logger: Logger,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const manifest = parseManifest(await readFile(join(packageDir, MANIFEST_FILE), 'utf8'));
    const task = manifest.tasks[data.task];
    if (task === undefined) {
      throw new UnrecoverableError(
        `Expected package ${data.package.name}@${data.package.sha1} to define task ${data.task}, found none`,
      );
    }
    const { limits, clamped } = resolveLimits(
      { submission: data.limits, task: task.limits, package: manifest.limits },
      this.options.taskLimits,
      this.options.maxTaskLimits,
    );
    for (const clamp of clamped) {
      mirror.log(
        `asked for a ${describeLimit(clamp.name, clamp.asked)}; this node allows at most ${describeLimit(clamp.name, clamp.allowed)}`,
      );
    }
    mirror.log(
      `running ${data.ref} on node ${this.id} (attempt ${job.attemptsMade + 1}, timeout ${limits.timeoutMs} ms${this.bwrap ? '' : ', UNSANDBOXED'})`,
    );
    if (this.bwrap === undefined) {
      logger.warn('UNSAFE: running a task without a sandbox');
    }
    try {
      const result = await runTask({
        packageDir,
        task,
        input: data.input,
        instanceId: data.instanceId,
        attempt: job.attemptsMade + 1,
        limits,
        bwrap: this.bwrap,
        prlimit: this.prlimit,
        cgroups: this.cgroups,
        sandboxUser: this.options.sandboxUser,
        runtimeDir: this.runtimeDir,
        signal,
        onProgress: (value) => mirror.progress(value),
        onLog: (line) => mirror.log(line),
      });
      await mirror.flush();
      return result;
    } catch (error) {
      await mirror.flush();
      logger.info({ reason: (error as Error).message }, 'task failed');
      if (signal?.aborted && signal.reason === CANCELLED_MESSAGE) {
        throw new UnrecoverableError(CANCELLED_MESSAGE);
      }
      if ((error instanceof TaskTimeoutError || error instanceof LimitExceededError) && !data.retryOnLimit) {
        // Not retried unless asked: a task that broke a limit would most likely break it again.
        throw new UnrecoverableError(error.message);
      }
      if (error instanceof TaskFailedError) {
        // Keep the task's own message and stack: BullMQ stores them as the failure reason.
        const failure = new Error(error.message);
        failure.stack = error.remoteStack ?? error.message;
        throw failure;
      }
      throw error;
    }
  }
}

/**
 * Writes a task's progress and log lines to its node job and to its TaskInstance, in order and
 * without blocking the task: each write is chained, and `flush` waits for the chain.
 */
class RedisMirror {
  private chain: Promise<unknown> = Promise.resolve();
  private lines = 0;

  constructor(
    private readonly job: Job,
    private readonly tasksQueue: Queue,
    private readonly instanceId: string,
  ) {}

  log(line: string): void {
    this.lines += 1;
    if (this.lines > MAX_LOG_LINES) {
      if (this.lines === MAX_LOG_LINES + 1) {
        this.enqueue(() => this.both(`[log limit of ${MAX_LOG_LINES} lines reached; further lines dropped]`));
      }
      return;
    }
    this.enqueue(() => this.both(line));
  }

  progress(value: number | Record<string, unknown>): void {
    this.enqueue(() =>
      Promise.all([this.job.updateProgress(value), this.tasksQueue.updateJobProgress(this.instanceId, value)]),
    );
  }

  flush(): Promise<unknown> {
    return this.chain;
  }

  private both(line: string): Promise<unknown> {
    return Promise.all([this.job.log(line), this.tasksQueue.addJobLog(this.instanceId, line, MAX_LOG_LINES + 1)]);
  }

  private enqueue(write: () => Promise<unknown>): void {
    this.chain = this.chain.then(write).catch(() => undefined);
  }
}
