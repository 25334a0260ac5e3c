/**
 * A node: one machine's processor. It registers itself with a heartbeat, takes jobs from its
 * own queue `node.<id>`, syncs the pinned package version into its cache and runs each
 * TaskInstance in a fresh bubblewrap sandbox. Only the node talks to workers; workers cannot
 * reach Redis or the network.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

import { type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';

import { type NodeJobData, nodeQueueName } from '../queues/node.js';
import { TASKS_QUEUE } from '../queues/tasks.js';
import { checkBwrap } from '../sandbox/launcher/bwrap.js';
import { runTask } from '../sandbox/launcher/run-task.js';
import { PackageRejectedError, SandboxUnavailableError, TaskFailedError, TaskTimeoutError } from './errors.js';
import type { Logger } from './logger.js';
import { MANIFEST_FILE, parseManifest } from './manifest.js';
import { NodeRegistry } from './node-registry.js';
import { type CompiledNodeOptions, compileNodeOptions, type NodeOptions } from './options.js';
import { type CacheLease, PackageCache } from './package-cache.js';
import { PackageStore } from './package-store.js';
import { createRedis } from './redis.js';

export type NodeState = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

/** Log lines mirrored to Redis per TaskInstance; more are dropped with a note. */
const MAX_LOG_LINES = 1000;

const nodeJobSchema = z.object({
  instanceId: z.string().min(1),
  ref: z.string(),
  package: z.object({ name: z.string().min(1), sha1: z.string().regex(/^[0-9a-f]{40}$/) }),
  task: z.string().min(1),
  input: z.unknown(),
  timeoutMs: z.number().int().positive().optional(),
});

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
  private bwrap: string | undefined;
  private closing: Promise<void> | undefined;
  private registered = false;
  private readonly startedAt = Date.now();
  state: NodeState = 'idle';

  constructor(options: NodeOptions = {}) {
    this.options = compileNodeOptions(options);
    this.id = this.options.id;
    this.logger = this.options.logger.child({ component: 'node', nodeId: this.id });
    this.redis = createRedis(this.options.redisUrl);
    this.redis.on('error', (error) => this.logger.warn({ err: error.message }, 'redis connection error'));
    this.registry = new NodeRegistry(this.redis);
    this.tasksQueue = new Queue(TASKS_QUEUE, { connection: this.redis });
    this.tasksQueue.on('error', (error) => this.logger.warn({ err: error.message }, 'tasks queue error'));
    this.cache = new PackageCache(this.options.cacheDir, new PackageStore(this.redis), this.options.limits, this.logger, this.options.cacheMaxBytes);
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
      this.logger.warn('UNSAFE: --unsafe-no-sandbox is set: task code runs WITHOUT bubblewrap, with this process\'s user, files and network. Never use this outside development.');
    } else {
      this.bwrap = await checkBwrap();
    }
    await this.cache.init();
    this.registered = true;
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat(), this.options.heartbeatMs);
    this.heartbeat.unref();
    this.worker = new Worker<NodeJobData, unknown>(this.queueName, (job, _token, signal) => this.process(job, signal), {
      connection: this.redis,
      concurrency: this.options.concurrency,
      name: this.id,
      lockDuration: this.options.lockDurationMs,
    });
    this.worker.on('error', (error) => this.logger.error({ err: error.message }, 'node worker error'));
    await this.worker.waitUntilReady();
    this.state = 'running';
    this.logger.info({ queue: this.queueName, concurrency: this.options.concurrency, cacheDir: this.options.cacheDir, sandbox: this.bwrap ?? 'NONE' }, 'node started');
  }

  /** Stops taking jobs, waits for running ones, and leaves the registry as stopped. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.closeInternal();
    return this.closing;
  }

  private async closeInternal(): Promise<void> {
    this.state = 'closing';
    clearInterval(this.heartbeat);
    const results = await Promise.allSettled([this.worker?.close()]);
    await Promise.allSettled([this.registered ? this.registry.markStopped(this.id) : undefined, this.tasksQueue.close()]);
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
      .heartbeat({ id: this.id, concurrency: this.options.concurrency, hostname: hostname(), pid: process.pid, startedAt: this.startedAt, heartbeatMs: this.options.heartbeatMs })
      .catch((error: Error) => this.logger.warn({ err: error.message }, 'heartbeat failed'));
  }

  private async process(job: Job<NodeJobData, unknown>, signal?: AbortSignal): Promise<unknown> {
    const parsed = nodeJobSchema.safeParse(job.data);
    if (!parsed.success) {
      throw new UnrecoverableError(`Expected node job data {instanceId, package, task, input}, got invalid data: ${parsed.error.issues[0]?.message ?? ''}`);
    }
    const data = parsed.data;
    const logger = this.logger.child({ instanceId: data.instanceId });
    const mirror = new RedisMirror(job, this.tasksQueue, data.instanceId);

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
    } finally {
      lease.release();
    }
  }

  private async runFromPackage(job: Job<NodeJobData, unknown>, data: z.output<typeof nodeJobSchema>, packageDir: string, mirror: RedisMirror, logger: Logger, signal?: AbortSignal): Promise<unknown> {
    const manifest = parseManifest(await readFile(join(packageDir, MANIFEST_FILE), 'utf8'));
    const task = manifest.tasks[data.task];
    if (task === undefined) {
      throw new UnrecoverableError(`Expected package ${data.package.name}@${data.package.sha1} to define task ${data.task}, found none`);
    }
    const timeoutMs = Math.min(data.timeoutMs ?? this.options.defaultTimeoutMs, this.options.maxTimeoutMs);
    mirror.log(`running ${data.ref} on node ${this.id} (attempt ${job.attemptsMade + 1}, timeout ${timeoutMs} ms${this.bwrap ? '' : ', UNSANDBOXED'})`);
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
        timeoutMs,
        scratchBytes: this.options.scratchBytes,
        bwrap: this.bwrap,
        signal,
        onProgress: (value) => mirror.progress(value),
        onLog: (line) => mirror.log(line),
      });
      await mirror.flush();
      return result;
    } catch (error) {
      await mirror.flush();
      logger.info({ reason: (error as Error).message }, 'task failed');
      if (error instanceof TaskTimeoutError) {
        // Not retried: a task that hit its wall-clock limit would most likely hit it again.
        throw new UnrecoverableError(error.message);
      }
      if (error instanceof TaskFailedError) {
        // Keep the task's own message and stack: BullMQ stores them as the failure reason.
        const failure = new Error(error.message);
        failure.stack = error.remoteStack ?? error.message;
        throw failure;
      }
      if (error instanceof SandboxUnavailableError) {
        logger.error({ err: error.message }, 'sandbox set-up failed');
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
    this.enqueue(() => Promise.all([this.job.updateProgress(value), this.tasksQueue.updateJobProgress(this.instanceId, value)]));
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
