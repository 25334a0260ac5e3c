/**
 * A node: one machine's processor, and its lifecycle (start, heartbeat, drain, close). It
 * registers itself with a heartbeat and takes jobs from its own queue `node.<id>` with a BullMQ
 * Worker; each job runs in a fresh bubblewrap sandbox (see `task-execution.ts`). Only the node
 * talks to sandboxes; task processes cannot reach Redis or the network.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';

import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';

import { type NodeJobData, nodeQueueName } from '../../queues/node.js';
import { TASKS_QUEUE } from '../../queues/tasks.js';
import {
  SECRETS_WORKUNITS_QUEUE,
  WORKUNITS_QUEUE,
  type WorkunitBatchData,
  type WorkunitsQueueName,
  workunitsQueueOf,
} from '../../queues/workunits.js';
import { checkBwrap } from '../../sandbox/launcher/bwrap.js';
import {
  type CgroupSupport,
  cleanStaleCgroups,
  detectCgroups,
  removeCgroupParent,
  removeOrphanParents,
} from '../../sandbox/launcher/cgroup/support.js';
import { removeStaleNetworkFolders } from '../../sandbox/launcher/network/stale-folders.js';
import { firstSandboxUser, SandboxUsers } from '../../sandbox/launcher/sandbox-users.js';
import { WITH_SECCOMP } from '../../sandbox/launcher/seccomp.js';
import { killOrphanedSandboxes } from '../../sandbox/launcher/orphans.js';
import { findPrlimit } from '../../sandbox/launcher/rlimits.js';
import { installRuntime } from '../../sandbox/launcher/runtime-dir.js';
import { QUIT_MS, settlesWithin, trigger } from '../core/bounded-close.js';
import { NodeShutdownError, SandboxUnavailableError, TaskCancelledError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { tydraMetrics } from '../core/metrics.js';
import { type MetricsServer, serveMetricsIfAsked } from '../core/metrics-server.js';
import { unreachableFolder } from '../core/path-access.js';
import { type NodeInfo, NodeRegistry } from '../cluster/node-registry.js';
import { blobExists, PackageCache } from '../packages/cache/package-cache.js';
import { PackageStore } from '../packages/store.js';
import { createRedis, logErrors, watchConnection } from '../redis/connection.js';
import { createKeys, type Keyspace } from '../redis/keys.js';
import { dropConnections } from '../redis/force-disconnect.js';
import { CancelListener } from './cancel-listener.js';
import { heartbeatFacts, sandboxMode } from './heartbeat-facts.js';
import { type NodeMetrics, nodeMetrics } from './node-metrics.js';
import { type CompiledNodeOptions, compileNodeOptions, type NodeOptions } from './options.js';
import { processBatch } from './parallel/batch-processor.js';
import { InstanceReporter } from './parallel/instance-report.js';
import { WorkerPool, type WorkunitStats } from './parallel/worker-pool.js';
import { SlotGate } from './slot-gate.js';
import { executeNodeJob, type ExecutionEnv } from './task-execution.js';
import { Teardowns } from './teardowns.js';
import { Handoffs } from './handoffs.js';
import { WarmPool, type WarmPoolStats } from './warm-pool.js';
import { upkeepWarmPool } from './warm-upkeep.js';

/**
 * After the drain timeout, how long running TaskInstances get to die and hand their jobs back:
 * the sandbox kill ladder's SIGTERM-to-SIGKILL grace (2 s) and a margin.
 */
const SANDBOX_KILL_MS = 2500;

export type NodeState = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

export class TydraNode {
  readonly options: CompiledNodeOptions;
  readonly id: string;
  readonly cache: PackageCache;
  private readonly logger: Logger;
  /** Every key and queue of the node's namespace. */
  private readonly keys: Keyspace;
  private readonly redis: Redis;
  private readonly registry: NodeRegistry;
  private readonly tasksQueue: Queue;
  private worker: Worker<NodeJobData, unknown> | undefined;
  /** Take batches of parallel TaskInstances' workunits from `workunits` (and `workunits.secrets`). */
  private unitsWorkers: Array<Worker<WorkunitBatchData>> = [];
  private readonly workunitsQueues: Readonly<Record<WorkunitsQueueName, Queue<WorkunitBatchData>>>;
  /** Other nodes' queues, to wake the coordinator of a parallel TaskInstance. */
  private readonly otherQueues = new Map<string, Queue>();
  private readonly gate: SlotGate;
  private readonly reporter: InstanceReporter;
  private pool: WorkerPool | undefined;
  private slotsCache: { at: number; slots: Promise<{ all: number; keyHolders: number }> } | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private cachePruner: NodeJS.Timeout | undefined;
  private readonly cancels: CancelListener;
  private bwrap: string | undefined;
  private prlimit: string | undefined;
  private runtimeDir: string | undefined;
  /** How this node limits each sandbox; detected once at start. */
  cgroups: CgroupSupport | undefined;
  private closing: Promise<void> | undefined;
  private readonly forced = trigger();
  private registered = false;
  private readonly startedAt = Date.now();
  private readonly metrics: NodeMetrics;
  private metricsServer: MetricsServer | undefined;
  /** Pre-started sandboxes (`warm-pool.ts`); made once the sandbox is prepared. */
  private warmPool: WarmPool | undefined;
  private readonly teardowns = new Teardowns();
  private readonly handoffs: Handoffs;
  /** `http://host:port/metrics` once started with `metricsPort`. */
  metricsUrl: string | undefined;
  state: NodeState = 'idle';

  constructor(options: NodeOptions = {}) {
    this.options = compileNodeOptions(options);
    this.id = this.options.id;
    this.logger = this.options.logger.child({ component: 'node', nodeId: this.id });
    this.redis = createRedis(this.options.redisUrl);
    watchConnection(this.redis, this.logger, 'node');
    this.keys = createKeys(this.options.namespace);
    this.registry = new NodeRegistry(this.redis, this.keys);
    this.tasksQueue = new Queue(TASKS_QUEUE, { connection: this.redis, prefix: this.keys.bullPrefix });
    logErrors(this.tasksQueue, (error) => this.logger.warn({ err: error.message }, 'tasks queue error'));
    this.cancels = new CancelListener(this.redis, this.keys, this.logger);
    const workunitsQueue = (name: WorkunitsQueueName): Queue<WorkunitBatchData> => {
      const queue = new Queue<WorkunitBatchData>(name, { connection: this.redis, prefix: this.keys.bullPrefix });
      logErrors(queue, (error) => this.logger.warn({ err: error.message, queue: name }, 'workunits queue error'));
      return queue;
    };
    this.workunitsQueues = {
      [WORKUNITS_QUEUE]: workunitsQueue(WORKUNITS_QUEUE),
      [SECRETS_WORKUNITS_QUEUE]: workunitsQueue(SECRETS_WORKUNITS_QUEUE),
    };
    this.gate = new SlotGate(this.options.concurrency);
    this.reporter = new InstanceReporter(this.tasksQueue, this.redis, this.keys);
    this.metrics = nodeMetrics(tydraMetrics(this.options.metrics), this.id);
    this.handoffs = new Handoffs((by) => this.metrics.handoff(by));
    this.cache = new PackageCache(
      this.options.cacheDir,
      new PackageStore(this.redis, this.keys),
      this.options.limits,
      this.logger,
      this.options.cacheMaxBytes,
      this.metrics.cache,
    );
  }

  /** Workunits run and work sandboxes started on this node since it started. */
  get workunitStats(): WorkunitStats {
    return { ...(this.pool?.stats ?? { units: 0, sandboxes: 0 }) };
  }

  /** The warm pool's counters (all zero while it is off). */
  get warmPoolStats(): WarmPoolStats {
    return this.warmPool?.stats ?? { size: 0, ready: 0, hits: 0, misses: 0, started: 0, discarded: 0 };
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
    this.metricsServer = await serveMetricsIfAsked(this.options, this.logger);
    this.metricsUrl = this.metricsServer?.url;
    if (this.options.unsafeNoSandbox) {
      this.logger.warn(
        "UNSAFE: --unsafe-no-sandbox is set: task code runs WITHOUT bubblewrap, with this process's user, files and network. Never use this outside development.",
      );
    } else {
      await this.prepareSandbox();
    }
    if (this.bwrap !== undefined) {
      // Before the cache creates its folder: a refused --cache-dir must not be left behind.
      await this.checkCacheReach();
    }
    await this.cache.init();
    if (this.bwrap !== undefined) {
      await this.prepareSandboxFiles();
      this.startWarmPool();
    }
    this.registered = true;
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat(), this.options.heartbeatMs);
    this.heartbeat.unref();
    this.cachePruner = setInterval(() => void this.pruneCache(), this.options.cachePruneMs);
    this.cachePruner.unref();
    await this.cancels.start();
    const env = this.executionEnv();
    this.worker = new Worker<NodeJobData, unknown>(this.queueName, (job, token) => executeNodeJob(env, job, token), {
      connection: this.redis,
      prefix: this.keys.bullPrefix,
      concurrency: this.options.concurrency,
      name: this.id,
      lockDuration: this.options.lockDurationMs,
    });
    logErrors(this.worker, (error) => this.logger.error({ err: error.message }, 'node worker error'));
    this.worker.on('completed', (job) => this.handoffs.recorded(job.id));
    this.worker.on('failed', (job) => this.handoffs.recorded(job?.id));
    await this.worker.waitUntilReady();
    this.startUnitsWorkers(env);
    this.state = 'running';
    this.logger.info(
      {
        queue: this.queueName,
        concurrency: this.options.concurrency,
        cacheDir: this.options.cacheDir,
        sandbox: this.bwrap ?? 'NONE',
        allowConnect: this.options.allowConnect.map((pattern) => pattern.text),
      },
      'node started',
    );
  }

  /**
   * The Workers of workunit batches, sharing this node's slots (see `slot-gate.ts`): of
   * `workunits`, and of `workunits.secrets` when this node holds a secret key (a node without one
   * could only fail those units).
   */
  private startUnitsWorkers(env: ExecutionEnv): void {
    const pool = new WorkerPool(env, this.logger);
    this.pool = pool;
    this.cancels.onUnitsStop((instanceId) => void pool.stop(instanceId, new TaskCancelledError(instanceId)));
    const deps = {
      redis: this.redis,
      keys: this.keys,
      pool,
      gate: this.gate,
      reporter: this.reporter,
      workunitsQueueOf: env.workunitsQueueOf,
      queueNamed: (name: string) => this.queueNamed(name),
      logger: this.logger,
      metrics: this.metrics,
    };
    const names = this.options.secretKey === undefined ? [WORKUNITS_QUEUE] : [WORKUNITS_QUEUE, SECRETS_WORKUNITS_QUEUE];
    this.unitsWorkers = names.map((name) => {
      const worker = new Worker<WorkunitBatchData>(name, (job) => processBatch(deps, job), {
        connection: this.redis,
        prefix: this.keys.bullPrefix,
        concurrency: this.options.concurrency,
        name: this.id,
        lockDuration: this.options.lockDurationMs,
        // A batch whose node died goes back to waiting once its lock expires (at least once).
        stalledInterval: this.options.lockDurationMs,
        maxStalledCount: 100,
      });
      logErrors(worker, (error) => this.logger.error({ err: error.message, queue: name }, 'workunits worker error'));
      return worker;
    });
  }

  /** The workunits queue of a parallel TaskInstance with this secret mapping. */
  private workunitsQueueOf(secrets: Readonly<Record<string, string>> | undefined): Queue<WorkunitBatchData> {
    return this.workunitsQueues[workunitsQueueOf(secrets)];
  }

  private queueNamed(name: string): Queue {
    let queue = this.otherQueues.get(name);
    if (queue === undefined) {
      queue = new Queue(name, { connection: this.redis, prefix: this.keys.bullPrefix });
      logErrors(queue, (error) => this.logger.warn({ err: error.message }, 'queue error'));
      this.otherQueues.set(name, queue);
    }
    return queue;
  }

  /**
   * Slots of the live nodes (at least 1), read at most every 2 s; `keyHolders`: of those that may
   * hold a secret key (the only ones that pull a secret instance's units; a node of a version that
   * does not say counts, as for dispatch).
   */
  private async clusterSlots(keyHolders = false): Promise<number> {
    if (this.slotsCache === undefined || Date.now() - this.slotsCache.at > 2000) {
      const own = this.options.concurrency;
      const sum = (nodes: NodeInfo[]): number => nodes.reduce((total, node) => total + node.concurrency, 0);
      const slots = this.registry
        .live()
        .then((nodes) => ({ all: sum(nodes), keyHolders: sum(nodes.filter((node) => node.secretKey !== false)) }))
        .catch(() => ({ all: own, keyHolders: own }));
      this.slotsCache = { at: Date.now(), slots };
    }
    const slots = await this.slotsCache.slots;
    return Math.max(1, keyHolders ? slots.keyHolders : slots.all);
  }

  /** Sandboxes of node processes on this host that crashed: whatever is left of them goes now. */
  private async removeLeftovers(cgroups: CgroupSupport, bwrap: string): Promise<void> {
    const stale = [
      ...(await cleanStaleCgroups(cgroups)),
      ...(await removeOrphanParents(cgroups, this.options.cgroupName)),
    ];
    if (stale.length > 0) {
      this.logger.warn({ cgroups: stale }, 'removed cgroups left by crashed node processes on this host');
    }
    const orphans = await killOrphanedSandboxes(bwrap);
    if (orphans.length > 0) {
      this.logger.warn({ pids: orphans }, 'killed bwrap processes a crashed node left stuck on this host');
    }
    const folders = await removeStaleNetworkFolders();
    if (folders.length > 0) {
      this.logger.warn({ folders }, 'removed network folders left by crashed node processes on this host');
    }
  }

  /** Checks bubblewrap and prlimit, detects cgroups and removes what crashed nodes left behind. */
  private async prepareSandbox(): Promise<void> {
    const user = firstSandboxUser(this.options.sandboxUser);
    const bwrap = await checkBwrap(undefined, user);
    this.bwrap = bwrap;
    this.prlimit = findPrlimit();
    if (user?.uid === 0) {
      this.logger.warn(
        "UNSAFE: sandboxUser uid 0: tasks are the host's root for the kernel (sysctls, mounted files); use an unprivileged user",
      );
    }
    const users = this.options.sandboxUser;
    if (users instanceof SandboxUsers) {
      this.logger.info(
        { uids: `${users.first.uid}-${users.first.uid + users.count - 1}`, gid: users.first.gid },
        'each sandbox runs as a host user of its own while there are enough (shared evenly beyond)',
      );
    }
    if (!WITH_SECCOMP) {
      this.logger.warn(
        { cpu: process.arch },
        'no seccomp filter for this CPU: tasks may use the kernel key calls (keys in a keyring they share with the node)',
      );
    }
    this.cgroups = await detectCgroups({ parentName: this.cgroupParentName() });
    await this.removeLeftovers(this.cgroups, bwrap);
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

  /** The warm pool, drained of a version whenever the cache removes it. */
  private startWarmPool(): void {
    const pool = new WarmPool({
      max: this.options.warmMax,
      idleMs: this.options.warmIdleMs,
      sandbox: {
        bwrap: this.bwrap,
        prlimit: this.prlimit,
        cgroups: this.cgroups,
        runtimeDir: this.runtimeDir,
        sandboxUser: this.options.sandboxUser,
      },
      logger: this.logger.child({ component: 'warm-pool' }),
      onClaim: (hit) => this.metrics.warmClaim(hit),
    });
    this.cache.onRemove((name, sha1) => pool.drainVersion(name, sha1));
    this.warmPool = pool;
  }

  /** What each run needs from this node, fixed once the sandbox is prepared. */
  private executionEnv(): ExecutionEnv {
    return {
      nodeId: this.id,
      options: this.options,
      cache: this.cache,
      tasksQueue: this.tasksQueue,
      cancels: this.cancels,
      logger: this.logger,
      bwrap: this.bwrap,
      prlimit: this.prlimit,
      cgroups: this.cgroups,
      runtimeDir: this.runtimeDir,
      redis: this.redis,
      keys: this.keys,
      gate: this.gate,
      reporter: this.reporter,
      workunitsQueueOf: (secrets) => this.workunitsQueueOf(secrets),
      clusterSlots: (keyHolders) => this.clusterSlots(keyHolders),
      metrics: this.metrics,
      warmPool: this.warmPool,
      teardowns: this.teardowns,
      handoffs: this.handoffs,
    };
  }

  /**
   * Stops taking jobs, lets running TaskInstances finish for at most the drain timeout, then
   * kills them (their sandboxes get SIGTERM, then SIGKILL) and hands them back for re-routing;
   * what still waits for Redis after that is force-closed. `force: true` skips the drain, also
   * while a graceful close is under way. Leaves the registry as stopped when Redis allows.
   * Resolves within the drain timeout plus 5 s (`FORCE_CLOSE_MS`), whatever Redis does. Idempotent.
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
    clearInterval(this.heartbeat);
    clearInterval(this.cachePruner);
    // Pooled sandboxes run no work: they go first, and nothing refills them.
    const pooled = this.warmPool?.close();
    // Stopped now, not when the last task ends: masters stop sending work here and re-route
    // what waits in our queue, while running TaskInstances finish. Not awaited before the
    // drain: with Redis down it would wait for ever.
    const stopped = this.registered ? this.registry.markStopped(this.id).catch(() => undefined) : undefined;
    const worker = Promise.allSettled([this.worker?.close(), ...this.unitsWorkers.map((units) => units.close())]);
    await this.drain(worker);
    // Every job's ending is recorded or given up on by now: no sandbox waits for it any more.
    this.handoffs.releaseAll();
    await pooled;
    await this.pool?.close(new NodeShutdownError(this.id));
    // Sandboxes of settled TaskInstances still ending: their cgroups go before their parent does.
    await this.teardowns.idle();
    this.reporter.close();
    const closed = Promise.allSettled([
      stopped?.then(() => this.registry.markStopped(this.id)),
      this.tasksQueue.close(),
      ...Object.values(this.workunitsQueues).map((queue) => queue.close()),
      ...[...this.otherQueues.values()].map((queue) => queue.close()),
      this.cache.idle(),
      this.cancels.close(),
    ]).then(() => this.redis.quit().catch(() => this.redis.disconnect()));
    if (!(await settlesWithin(closed, QUIT_MS))) {
      this.dropConnections();
    }
    if (this.cgroups !== undefined) {
      await removeCgroupParent(this.cgroups).catch((error: Error) =>
        this.logger.warn({ err: error.message }, "could not remove the node's parent cgroup"),
      );
    }
    await this.metricsServer?.close();
    for (const result of await worker) {
      if (result.status === 'rejected') {
        this.logger.warn({ err: String(result.reason) }, 'error while closing the node');
      }
    }
    this.state = 'closed';
  }

  /**
   * Waits for the Worker to close (its running jobs to end) for the drain timeout; then kills the
   * running TaskInstances, whose runs park their jobs for re-routing once the sandboxes are dead
   * (the kill ladder takes up to {@link SANDBOX_KILL_MS}); then, if Redis still holds the Worker
   * up, drops every connection.
   */
  private async drain(worker: Promise<unknown>): Promise<void> {
    if (await settlesWithin(worker, this.options.drainTimeoutMs, this.forced.promise)) {
      return;
    }
    this.logger.warn(
      { drainTimeoutMs: this.options.drainTimeoutMs },
      'drain timeout (or forced stop): killing running TaskInstances; they will be re-routed',
    );
    const killed = this.cancels.abortAll(this.id);
    if (killed > 0 && (await settlesWithin(worker, SANDBOX_KILL_MS))) {
      return;
    }
    this.logger.warn('the node could not close its Worker (is Redis down?): force-closing its connections');
    this.dropConnections();
    await settlesWithin(worker, QUIT_MS);
  }

  /** Drops every connection: pending commands fail at once and nothing reconnects. */
  private dropConnections(): void {
    dropConnections([
      this.worker,
      ...this.unitsWorkers,
      this.tasksQueue,
      ...Object.values(this.workunitsQueues),
      ...this.otherQueues.values(),
      this.redis,
    ]);
    this.cancels.dropConnection();
  }

  private async beat(): Promise<void> {
    const pool = this.warmPool;
    if (pool?.enabled === true && this.state !== 'closing') {
      await upkeepWarmPool(this.redis, this.keys, this.id, pool).catch((error: Error) =>
        this.logger.warn({ err: error.message }, 'warm pool upkeep failed'),
      );
    }
    const stats = this.warmPoolStats;
    await this.registry
      .heartbeat({
        id: this.id,
        concurrency: this.options.concurrency,
        hostname: hostname(),
        pid: process.pid,
        startedAt: this.startedAt,
        heartbeatMs: this.options.heartbeatMs,
        lockDurationMs: this.options.lockDurationMs,
        facts: heartbeatFacts(
          sandboxMode(this.options.unsafeNoSandbox, this.cgroups),
          this.cache,
          this.options.secretKey !== undefined,
        ),
        warm: pool?.warmVersions() ?? [],
        cached: this.cache.versions().map((version) => `${version.name}@${version.sha1}`),
        pool: { size: stats.size, max: pool?.enabled === true ? this.options.warmMax : 0, ...pickHits(stats) },
      })
      .catch((error: Error) => this.logger.warn({ err: error.message }, 'heartbeat failed'));
  }

  /**
   * The sandbox user must reach what bwrap mounts: the package cache (checked here, with the
   * fix in the error) and the runner (copied into the cache, since tydra's own folder may be
   * private).
   */
  private async prepareSandboxFiles(): Promise<void> {
    // Again now that the cache made its folders: a umask may have made them private.
    await this.checkCacheReach();
    this.runtimeDir = await installRuntime(this.options.cacheDir);
  }

  /** Throws, naming the folder and the fix, when the sandbox user cannot reach the package cache. */
  private async checkCacheReach(): Promise<void> {
    // The first sandbox user stands for all: they are all "others" to the cache's owner.
    const user = firstSandboxUser(this.options.sandboxUser);
    if (user === undefined) {
      return;
    }
    const blocked = await unreachableFolder(this.options.cacheDir, user.uid, user.gid);
    if (blocked !== undefined) {
      throw new SandboxUnavailableError(
        `Expected the package cache ${this.options.cacheDir} to be reachable by the sandbox user ${user.uid}:${user.gid}, but ${blocked.path} has mode ${blocked.mode}; ` +
          `allow it with chmod o+x ${blocked.path}, or choose another --cache-dir (default for root: /var/cache/tydra/packages)`,
      );
    }
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

  /** Drops cached versions the prune job removed from Redis (never one in use). */
  private async pruneCache(): Promise<void> {
    try {
      const summary = await this.cache.pruneRemoved((name, sha1) => blobExists(this.redis, this.keys, name, sha1));
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
}

function pickHits(stats: WarmPoolStats): { hits: number; misses: number } {
  return { hits: stats.hits, misses: stats.misses };
}
