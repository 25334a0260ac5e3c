/**
 * The node's warm pool: sandboxes started ahead of demand for the (package version, task module,
 * limits) combinations it ran lately, each claimed by one TaskInstance and never reused (see
 * `sandbox/launcher/warm-sandbox.ts`). Like Android's USAP pool or Lambda's provisioned
 * concurrency, but every TaskInstance still gets a fresh sandbox.
 *
 * Sizing, bounded and adaptive:
 * - at most `max` sandboxes on the node in all (`--warm-max`, default the node's concurrency; 0
 *   turns the pool off);
 * - per combination, as many as its TaskInstances ran at once lately (at least one), on top of
 *   those running, started only after one of them ran: the first run of a combination is always cold;
 * - a sandbox unclaimed for `idleMs` is stopped and not replaced, and a combination nobody ran for
 *   `idleMs` gets none; when the pool is full, a combination that missed takes the place of the
 *   least recently used one.
 *
 * Refills never delay real work: at most two sandboxes start at a time; a claimed one's replacement
 * {@link REFILL_AFTER_CLAIM_MS} after its TaskInstance settled, a cold one's once its sandbox was let
 * go; never while a cold start is under way on the node. A TaskInstance takes the readiest sandbox of
 * its combination, even one still being spawned (it waits for the spawn), rather than start a cold
 * one beside it: two sandboxes starting at once on a small machine slow each other, and the one in
 * the pool had a head start. A pooled sandbox runs under its own limits, not a TaskInstance's, and
 * its timeout starts at the claim.
 *
 * Drained (every sandbox stopped): a version by `drainVersion` (cache eviction, prune, undeploy:
 * the node calls it), all by `pause` (node drain) and `close` (shutdown). Nothing of a pooled
 * sandbox outlives the node: bwrap's `--die-with-parent`, the exit hook of `spawn-sandbox.ts` and
 * its cgroup's kill hold for it as for any sandbox.
 */
import type { CompiledTaskLimits } from '../core/limits.js';
import type { Logger } from '../core/logger.js';
import { type WarmClaim, WarmSandbox, type WarmSandboxOptions } from '../../sandbox/launcher/warm-sandbox.js';

/** A TaskInstance's combination: sandboxes are pooled per value of it. */
export interface WarmSpec {
  package: { name: string; sha1: string };
  /** The cached folder of the version. */
  packageDir: string;
  module: string;
  limits: CompiledTaskLimits;
}

export interface WarmPoolOptions {
  /** Most pooled sandboxes on the node; 0 turns the pool off. */
  max: number;
  /** How long a pooled sandbox waits for a claim, and a combination is kept without a run. */
  idleMs: number;
  /** The node's sandbox settings (bwrap, prlimit, cgroups, runtime folder, user). */
  sandbox: Omit<WarmSandboxOptions, 'packageDir' | 'module' | 'limits'>;
  logger: Logger;
  /** Each TaskInstance the pool saw: `hit` when it claimed a pooled sandbox. */
  onClaim?: (hit: boolean) => void;
  /**
   * How long a TaskInstance waits for the runner of a pooled sandbox it took, still starting; then
   * that sandbox is stopped and the TaskInstance starts cold. @defaultValue {@link READY_WAIT_MS}
   */
  readyWaitMs?: number;
}

/**
 * A pooled runner is ready well within a second, even on a loaded machine. One that is not after
 * this is stuck (bwrap or the kernel wedged; not a package, which holds only regular files:
 * `lib/packages/extract.ts`), and its TaskInstance is better off cold than waiting with no timeout
 * armed (a claim arms it).
 */
export const READY_WAIT_MS = 10_000;

export interface WarmPoolStats {
  /** Pooled sandboxes now, starting ones included. */
  size: number;
  /** Of them, runners loaded and waiting. */
  ready: number;
  /** TaskInstances that claimed a pooled sandbox. */
  hits: number;
  /** TaskInstances that could have, but found none (they started cold). */
  misses: number;
  /** Pooled sandboxes started since the node started. */
  started: number;
  /** Of them, stopped unclaimed (idle, drained, or died). */
  discarded: number;
}

/**
 * Pooled sandboxes starting at once. Two: one start at a time could not keep up with a node whose
 * two slots each finish a short task every few tens of milliseconds (half the TaskInstances of a
 * burst found the pool empty), and more would only crowd the CPU the running tasks need.
 */
const MAX_REFILLS = 2;

/** Unclaimed sandboxes of one combination that died by themselves before it stops refilling it. */
const MAX_UNCLAIMED_DEATHS = 3;

interface Combination {
  key: string;
  spec: WarmSpec;
  /** Its TaskInstances running now, and the most seen at once since it was last forgotten. */
  running: number;
  peak: number;
  lastUsed: number;
  deaths: number;
  sandboxes: Set<Pooled>;
  /** Forgotten while some of its TaskInstances ran: no refill, and dropped when the last one ends. */
  drained: boolean;
}

interface Pooled {
  combination: Combination;
  /** Undefined while `WarmSandbox.start` runs (see `spawned`). */
  sandbox: WarmSandbox | undefined;
  /** The sandbox once `WarmSandbox.start` resolved; undefined when it failed or was drained meanwhile. */
  spawned: Promise<WarmSandbox | undefined>;
  /** Settles when a TaskInstance takes it ({@link WarmPool.take}). */
  taken: Promise<void>;
  markTaken: () => void;
  /** Stopped by the pool (drain, idle, close): its end is no death. */
  discarded: boolean;
  idleTimer: NodeJS.Timeout;
}

/**
 * How long after a pooled TaskInstance settled its replacement starts. Spawning bwrap forks the
 * node's process, which blocks its event loop for several milliseconds: started at the claim (as
 * it was), that landed while the runner ran the task and held its result back; started at once
 * after it, on the job's way to Redis. A refill is only for a future TaskInstance.
 */
const REFILL_AFTER_CLAIM_MS = 10;

/** How far on a pooled sandbox is: 3 ready, 2 loading its runner, 1 being spawned, 0 not claimable. */
function readiness(pooled: Pooled): number {
  if (pooled.sandbox === undefined) {
    return pooled.discarded ? 0 : 1;
  }
  if (!pooled.sandbox.claimable) {
    return 0;
  }
  return pooled.sandbox.state === 'ready' ? 3 : 2;
}

/** `sandbox.ready`; true as soon as `signal` aborts, false after `waitMs`. */
function readyOrAborted(sandbox: WarmSandbox, signal: AbortSignal | undefined, waitMs: number): Promise<boolean> {
  if (sandbox.state === 'ready' || signal?.aborted === true) {
    return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    const done = (ready: boolean): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(ready);
    };
    const onAbort = (): void => done(true);
    const timer = setTimeout(() => done(false), waitMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    void sandbox.ready.then(done);
  });
}

export class WarmPool {
  private readonly combinations = new Map<string, Combination>();
  private readonly counts = { hits: 0, misses: 0, started: 0, discarded: 0 };
  private coldStarts = 0;
  private refilling = 0;
  private paused = false;
  private closed = false;
  private refillTimer: NodeJS.Timeout | undefined;
  private readonly ending = new Set<Promise<void>>();

  constructor(private readonly options: WarmPoolOptions) {}

  get enabled(): boolean {
    return this.options.max > 0;
  }

  get stats(): WarmPoolStats {
    let size = 0;
    let ready = 0;
    for (const combination of this.combinations.values()) {
      for (const pooled of combination.sandboxes) {
        size += 1;
        ready += pooled.sandbox?.state === 'ready' ? 1 : 0;
      }
    }
    return { size, ready, ...this.counts };
  }

  /** `name@sha1` of the versions with a pooled sandbox now (for the heartbeat). */
  warmVersions(): string[] {
    const versions = new Set<string>();
    for (const combination of this.combinations.values()) {
      if (combination.sandboxes.size > 0) {
        versions.add(`${combination.spec.package.name}@${combination.spec.package.sha1}`);
      }
    }
    return [...versions];
  }

  /**
   * Runs one TaskInstance: in a pooled sandbox of its combination when one is there, ready or
   * still starting ({@link WarmPool.readyToClaim}), else with `runCold(onStarted)`, which must call
   * `onStarted` once its sandbox runs. Either way it counts as a use of the combination; a
   * replacement starts once a cold TaskInstance started, and shortly after a pooled one settled
   * ({@link REFILL_AFTER_CLAIM_MS}).
   */
  async run(spec: WarmSpec, claim: WarmClaim, runCold: (onStarted: () => void) => Promise<unknown>): Promise<unknown> {
    if (!this.enabled || this.closed) {
      return runCold(() => undefined);
    }
    const combination = this.use(spec);
    combination.running += 1;
    combination.peak = Math.max(combination.peak, combination.running);
    let hit = false;
    try {
      const pooled = this.take(combination);
      const sandbox = pooled === undefined ? undefined : await this.readyToClaim(pooled, claim.signal);
      if (sandbox !== undefined) {
        hit = true;
        this.counts.hits += 1;
        this.options.onClaim?.(true);
        return await sandbox.claim(claim);
      }
      this.counts.misses += 1;
      this.options.onClaim?.(false);
      this.makeRoom(combination);
      return await this.runColdCounted(runCold);
    } finally {
      combination.running -= 1;
      if (combination.drained && combination.running === 0) {
        this.combinations.delete(combination.key);
      }
      // Also when a claim failed before its start (the sandbox died meanwhile).
      if (hit) {
        this.refillSoon();
      } else {
        this.refill();
      }
    }
  }

  /**
   * The sandbox of `pooled` once its runner is ready, or undefined when it could not be spawned or
   * ended before: a pooled sandbox's own start-up must not fail the TaskInstance that took it, which
   * then starts cold. One still starting is waited for: it is further on than a cold start would be,
   * and a cold start beside it would slow both. A cancel ends the wait (the claim then stops the
   * sandbox and settles as cancelled); a runner not ready within `readyWaitMs` is stopped.
   */
  private async readyToClaim(pooled: Pooled, signal: AbortSignal | undefined): Promise<WarmSandbox | undefined> {
    const sandbox = pooled.sandbox ?? (await pooled.spawned);
    if (sandbox === undefined) {
      return undefined;
    }
    const waitMs = this.options.readyWaitMs ?? READY_WAIT_MS;
    if (!(await readyOrAborted(sandbox, signal, waitMs))) {
      const reason = `its runner was not ready within ${waitMs} ms`;
      this.options.logger.warn({ module: pooled.combination.spec.module, reason }, 'pooled sandbox stopped');
      this.counts.discarded += 1;
      sandbox.discard(reason);
      return undefined;
    }
    return sandbox.claimable ? sandbox : undefined;
  }

  /** {@link refill} in {@link REFILL_AFTER_CLAIM_MS}, once however many claims settle meanwhile. */
  private refillSoon(): void {
    this.refillTimer ??= setTimeout(() => {
      this.refillTimer = undefined;
      this.refill();
    }, REFILL_AFTER_CLAIM_MS);
  }

  /** Stops the pooled sandboxes of one version (evicted, pruned or undeployed) and forgets it. */
  drainVersion(name: string, sha1: string): void {
    for (const combination of [...this.combinations.values()]) {
      if (combination.spec.package.name === name && combination.spec.package.sha1 === sha1) {
        this.forget(combination, 'version drained');
      }
    }
  }

  /** Paused (the node is draining): every pooled sandbox stops and none starts until resumed. */
  pause(paused: boolean): void {
    if (paused === this.paused) {
      return;
    }
    this.paused = paused;
    if (paused) {
      for (const combination of [...this.combinations.values()]) {
        this.forget(combination, 'node draining');
      }
    }
  }

  /** Stops every pooled sandbox and starts no more; resolves once all have exited. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.refillTimer);
    for (const combination of [...this.combinations.values()]) {
      this.forget(combination, 'node closing');
    }
    while (this.ending.size > 0) {
      await Promise.allSettled([...this.ending]);
    }
  }

  private use(spec: WarmSpec): Combination {
    const key = JSON.stringify([spec.package.name, spec.package.sha1, spec.packageDir, spec.module, spec.limits]);
    let combination = this.combinations.get(key);
    if (combination === undefined) {
      combination = { key, spec, running: 0, peak: 0, lastUsed: 0, deaths: 0, sandboxes: new Set(), drained: false };
      this.combinations.set(key, combination);
    }
    combination.lastUsed = Date.now();
    combination.drained = false;
    return combination;
  }

  /**
   * A sandbox of the combination, taken out of the pool: the readiest, from a ready one to one
   * still being spawned (`sandbox` undefined: whoever takes it waits for `spawned`).
   */
  private take(combination: Combination): Pooled | undefined {
    let best: Pooled | undefined;
    for (const pooled of combination.sandboxes) {
      if (readiness(pooled) > (best === undefined ? 0 : readiness(best))) {
        best = pooled;
      }
    }
    if (best !== undefined) {
      this.release(best);
      best.markTaken();
    }
    return best;
  }

  private async runColdCounted(runCold: (onStarted: () => void) => Promise<unknown>): Promise<unknown> {
    let starting = true;
    const started = (): void => {
      if (starting) {
        starting = false;
        this.coldStarts -= 1;
        this.refill();
      }
    };
    this.coldStarts += 1;
    try {
      return await runCold(started);
    } finally {
      started();
    }
  }

  /** Full: a combination that missed takes an unclaimed sandbox of the least recently used other one. */
  private makeRoom(wanting: Combination): void {
    if (this.stats.size < this.options.max) {
      return;
    }
    const others = [...this.combinations.values()]
      .filter((combination) => combination !== wanting && combination.sandboxes.size > 0)
      .sort((a, b) => a.lastUsed - b.lastUsed);
    const victim = others[0]?.sandboxes.values().next().value;
    if (victim !== undefined) {
      this.discard(victim, 'room for a combination in use');
    }
  }

  /**
   * Starts the missing sandboxes, at most {@link MAX_REFILLS} at a time, when no cold start is under
   * way on the node (a cold start is a TaskInstance waiting; a refill is only a future one).
   */
  private refill(): void {
    while (this.refilling < MAX_REFILLS && !this.paused && !this.closed && this.coldStarts === 0) {
      const combination = this.nextToFill();
      if (combination === undefined) {
        return;
      }
      this.refilling += 1;
      const work = this.startOne(combination).finally(() => {
        this.refilling -= 1;
        this.refill();
      });
      this.ending.add(work);
      void work.finally(() => this.ending.delete(work));
    }
  }

  /** The most recently used combination below its target, if the pool has room. */
  private nextToFill(): Combination | undefined {
    const now = Date.now();
    if (this.stats.size >= this.options.max) {
      return undefined;
    }
    const recent = [...this.combinations.values()].sort((a, b) => b.lastUsed - a.lastUsed);
    for (const combination of recent) {
      if (now - combination.lastUsed > this.options.idleMs) {
        this.forget(combination, 'not used lately');
      } else if (
        !combination.drained &&
        combination.deaths < MAX_UNCLAIMED_DEATHS &&
        combination.sandboxes.size < Math.max(1, combination.peak)
      ) {
        return combination;
      }
    }
    return undefined;
  }

  private async startOne(combination: Combination): Promise<void> {
    let spawned: (sandbox: WarmSandbox | undefined) => void = () => undefined;
    let markTaken: () => void = () => undefined;
    // Both executors run at once: the resolvers are set before the object is made.
    const whenSpawned = new Promise<WarmSandbox | undefined>((resolve) => (spawned = resolve));
    const taken = new Promise<void>((resolve) => (markTaken = resolve));
    const pooled: Pooled = {
      combination,
      sandbox: undefined,
      spawned: whenSpawned,
      taken,
      markTaken,
      discarded: false,
      idleTimer: setTimeout(() => this.discard(pooled, 'idle'), this.options.idleMs).unref(),
    };
    combination.sandboxes.add(pooled);
    this.counts.started += 1;
    const { spec } = combination;
    try {
      pooled.sandbox = await WarmSandbox.start({
        ...this.options.sandbox,
        packageDir: spec.packageDir,
        module: spec.module,
        limits: spec.limits,
      });
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'could not start a pooled sandbox');
      combination.deaths += 1;
      this.release(pooled);
      spawned(undefined);
      return;
    }
    const sandbox = pooled.sandbox;
    const ended = sandbox.ended.then(() => this.onEnded(pooled));
    this.ending.add(ended);
    void ended.finally(() => this.ending.delete(ended));
    if (pooled.discarded) {
      sandbox.discard('drained while it started');
      spawned(undefined);
      return;
    }
    spawned(sandbox);
    // The next refill waits for this runner to load (refills never pile up on the CPU), or for a
    // TaskInstance to take it: from then on it is that TaskInstance's start, not a refill.
    await Promise.race([sandbox.ready, pooled.taken]);
  }

  private onEnded(pooled: Pooled): void {
    if (pooled.sandbox?.state === 'ended' && !pooled.discarded && pooled.combination.sandboxes.has(pooled)) {
      // Died unclaimed (OOM at start-up, killed from outside): replaced, a bounded number of times.
      pooled.combination.deaths += 1;
      this.counts.discarded += 1;
      this.release(pooled);
      this.refill();
    }
  }

  private discard(pooled: Pooled, reason: string): void {
    if (pooled.discarded || !pooled.combination.sandboxes.has(pooled)) {
      return;
    }
    pooled.discarded = true;
    this.counts.discarded += 1;
    this.release(pooled);
    pooled.sandbox?.discard(reason);
    this.options.logger.debug({ module: pooled.combination.spec.module, reason }, 'pooled sandbox stopped');
  }

  /** Out of the pool: claimed, discarded or dead. */
  private release(pooled: Pooled): void {
    clearTimeout(pooled.idleTimer);
    pooled.combination.sandboxes.delete(pooled);
  }

  private forget(combination: Combination, reason: string): void {
    for (const pooled of [...combination.sandboxes]) {
      this.discard(pooled, reason);
    }
    if (combination.running === 0) {
      this.combinations.delete(combination.key);
    } else {
      combination.drained = true;
    }
  }
}
