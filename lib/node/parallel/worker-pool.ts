/**
 * The work sandboxes of the parallel TaskInstances this node serves (Pydra's workers held for a
 * task). Each TaskInstance has its own set, never shared with another: at most one sandbox per
 * slot it holds here, each running many units one after the other. A sandbox that was killed (a
 * crash, a limit, a unit's timeout) is dropped and the next unit starts a new one. An idle
 * sandbox is closed after `idleMs`, and all of an instance's at once when it ends, is cancelled
 * or aborted, or when the node closes.
 */
import { setMaxListeners } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { EndpointAccess } from '../../../sandbox/launcher/network/loopback-plan.js';
import type { SandboxNetworkOptions } from '../../../sandbox/launcher/network/sandbox-network.js';
import { startWorker, type WorkSandbox } from '../../../sandbox/launcher/phases/index.js';
import { UnknownTaskError } from '../../core/errors.js';
import { type CompiledTaskLimits, resolveLimits } from '../../core/limits.js';
import type { Logger } from '../../core/logger.js';
import { maskSecrets, maskSecretsIn } from '../../core/secret-box.js';
import type { TaskEnv } from '../../core/task-env.js';
import type { CacheLease } from '../../packages/cache/package-cache.js';
import { MANIFEST_FILE, parseManifest, parallelEntries, type PhaseEntry } from '../../packages/manifest.js';
import type { ParallelMeta } from '../../redis/parallel-commands.js';
import type { ExecutionEnv } from '../execution-env.js';
import { connectionReporter } from '../network/connection-reporter.js';
import { judgeEndpoints } from '../network/task-network.js';
import { openTaskSecrets } from '../task-secrets.js';

const IDLE_MS = 3000;

/** One TaskInstance's sandboxes on this node. */
export class InstanceWorkers {
  private readonly idle: WorkSandbox[] = [];
  private busy = 0;
  private lastUsed = Date.now();
  private readonly abort = new AbortController();
  /** Every sandbox ever started for the instance here (tests and logs count them). */
  started = 0;

  constructor(
    readonly instanceId: string,
    private readonly env: ExecutionEnv,
    private readonly lease: CacheLease,
    private readonly entry: PhaseEntry,
    readonly limits: CompiledTaskLimits,
    private readonly stopTracking: () => void,
    private readonly stats: WorkunitStats,
    /**
     * The submission's environment and the opened secret values, set in every work sandbox, and
     * the endpoints each one gets (judged by this node's policy once for the instance).
     */
    private readonly sandboxEnv: { env?: TaskEnv; secrets: Record<string, string>; endpoints?: EndpointAccess[] } = {
      secrets: {},
    },
  ) {
    // Every work sandbox of the instance here listens to it: as many as the node's slots.
    setMaxListeners(0, this.abort.signal);
  }

  /** `text` with this instance's secret values masked as `***` (unit logs, results, failures). */
  mask(text: string): string {
    return maskSecrets(text, Object.values(this.sandboxEnv.secrets));
  }

  /** A unit's JSON value with the secret values masked in its strings. */
  maskValue(value: unknown): unknown {
    const values = Object.values(this.sandboxEnv.secrets);
    return values.length === 0 ? value : maskSecretsIn(value, values);
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  /** An idle sandbox of this instance, or a new one. */
  async take(): Promise<WorkSandbox> {
    if (this.stopped) {
      throw this.abort.signal.reason as Error;
    }
    this.busy += 1;
    this.lastUsed = Date.now();
    for (let sandbox = this.idle.pop(); sandbox !== undefined; sandbox = this.idle.pop()) {
      if (sandbox.alive) {
        return sandbox;
      }
      void sandbox.close();
    }
    try {
      this.started += 1;
      this.stats.sandboxes += 1;
      const launched = performance.now();
      const sandbox: { started?: WorkSandbox } = {};
      const log = (line: string): void => this.env.reporter.log(this.instanceId, this.mask(`[work] ${line}`));
      const worker = await startWorker({
        entry: this.entry,
        packageDir: this.lease.dir,
        instanceId: this.instanceId,
        attempt: 1,
        limits: this.limits,
        signal: this.abort.signal,
        ...{ bwrap: this.env.bwrap, prlimit: this.env.prlimit, cgroups: this.env.cgroups },
        ...{ runtimeDir: this.env.runtimeDir, sandboxUser: this.env.options.sandboxUser },
        ...(this.sandboxEnv.env !== undefined ? { env: this.sandboxEnv.env } : {}),
        ...(Object.keys(this.sandboxEnv.secrets).length > 0 ? { secrets: this.sandboxEnv.secrets } : {}),
        ...this.network((line) => (sandbox.started === undefined ? log(line) : sandbox.started.log(line))),
        // What it prints before its first unit (its module loading) is the instance's.
        onLog: log,
      });
      sandbox.started = worker;
      this.env.metrics.sandboxStarted((performance.now() - launched) / 1000, 'work');
      return worker;
    } catch (error) {
      this.busy -= 1;
      throw error;
    }
  }

  /** A work sandbox's network, if the task declares one: its connections go to `log`. */
  private network(log: (line: string) => void): { network?: SandboxNetworkOptions } {
    const { endpoints } = this.sandboxEnv;
    if (endpoints === undefined) {
      return {};
    }
    const { logger, metrics } = this.env;
    return {
      network: { endpoints, ...connectionReporter({ instanceId: this.instanceId, logger, metrics, log }) },
    };
  }

  /** Gives a sandbox back after a unit: kept for the next one unless it died or the instance stopped. */
  give(sandbox: WorkSandbox): void {
    this.busy -= 1;
    this.stats.units += 1;
    this.lastUsed = Date.now();
    if (sandbox.alive && !this.stopped) {
      this.idle.push(sandbox);
    } else {
      void sandbox.close();
    }
    this.finishIfStopped();
  }

  isIdleFor(ms: number): boolean {
    return this.busy === 0 && Date.now() - this.lastUsed >= ms;
  }

  /** Kills every sandbox of the instance (running units reject with `reason`). */
  async stop(reason: Error): Promise<void> {
    if (!this.abort.signal.aborted) {
      this.abort.abort(reason);
    }
    const idle = this.idle.splice(0);
    await Promise.allSettled(idle.map((sandbox) => sandbox.close()));
    if (this.busy === 0) {
      this.stopTracking();
      this.lease.release();
    }
  }

  /** Called when the last busy sandbox was given back after `stop`. */
  finishIfStopped(): void {
    if (this.stopped && this.busy === 0) {
      this.stopTracking();
      this.lease.release();
    }
  }
}

/** What this node did for parallel TaskInstances since it started. */
export interface WorkunitStats {
  /** Units run here (each try counts). */
  units: number;
  /** Work sandboxes started here. */
  sandboxes: number;
}

export class WorkerPool {
  readonly stats: WorkunitStats = { units: 0, sandboxes: 0 };
  private readonly instances = new Map<string, Promise<InstanceWorkers>>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly env: ExecutionEnv,
    private readonly logger: Logger,
  ) {
    this.sweeper = setInterval(() => void this.sweepIdle(), 1000);
    this.sweeper.unref();
  }

  /** The instance's workers, loading its package and manifest on first use. */
  instance(instanceId: string, meta: ParallelMeta): Promise<InstanceWorkers> {
    let entry = this.instances.get(instanceId);
    if (entry === undefined) {
      entry = this.load(instanceId, meta);
      this.instances.set(instanceId, entry);
      entry.catch(() => this.instances.delete(instanceId));
    }
    return entry;
  }

  /** Stops and forgets an instance's workers (it ended, was cancelled or aborted). */
  async stop(instanceId: string, reason: Error): Promise<void> {
    const entry = this.instances.get(instanceId);
    this.instances.delete(instanceId);
    const workers = await entry?.catch(() => undefined);
    await workers?.stop(reason);
  }

  async close(reason: Error): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.allSettled([...this.instances.keys()].map((id) => this.stop(id, reason)));
  }

  private async load(instanceId: string, meta: ParallelMeta): Promise<InstanceWorkers> {
    const lease = await this.env.cache.acquire(meta.package.name, meta.package.sha1);
    try {
      const manifest = parseManifest(await readFile(join(lease.dir, MANIFEST_FILE), 'utf8'));
      const task = manifest.tasks[meta.task];
      if (task?.kind !== 'parallel') {
        throw new UnknownTaskError(
          `Expected package ${meta.package.name}@${meta.package.sha1} to define parallel task ${meta.task}, found ${task === undefined ? 'none' : `a ${task.kind ?? 'simple'} task`}`,
        );
      }
      const { limits } = resolveLimits(
        { submission: meta.limits, task: task.limits, package: manifest.limits },
        this.env.options.taskLimits,
        this.env.options.maxTaskLimits,
      );
      // This node's key opens the secrets; without it every unit here fails, saying so.
      const { redis, options, nodeId } = this.env;
      const secrets = await openTaskSecrets(
        redis,
        this.env.keys,
        options.secretKey,
        nodeId,
        task.secrets,
        meta.secrets,
      );
      // This node's policy, whichever node runs split and reduce; said once in the log.
      const endpoints = judgeEndpoints(task.network, {
        nodeId,
        policy: options.allowConnect,
        log: (line) => this.env.reporter.log(instanceId, `[work] ${line}`),
      });
      const { signal, release } = this.env.cancels.track(instanceId);
      const workers = new InstanceWorkers(
        instanceId,
        this.env,
        lease,
        parallelEntries(task).work,
        limits,
        release,
        this.stats,
        { ...(meta.env !== undefined ? { env: meta.env } : {}), secrets, ...(endpoints ? { endpoints } : {}) },
      );
      signal.addEventListener('abort', () => void this.stop(instanceId, signal.reason as Error), { once: true });
      return workers;
    } catch (error) {
      lease.release();
      throw error;
    }
  }

  private async sweepIdle(): Promise<void> {
    for (const [id, entry] of this.instances) {
      const workers = await entry.catch(() => undefined);
      if (workers?.isIdleFor(IDLE_MS)) {
        this.logger.debug(
          { instanceId: id, started: workers.started },
          'closing the idle work sandboxes of an instance',
        );
        this.instances.delete(id);
        await workers.stop(new Error('idle'));
      }
    }
  }
}
