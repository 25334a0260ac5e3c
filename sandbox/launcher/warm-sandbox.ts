/**
 * A sandbox started ahead of its TaskInstance, for the node's warm pool (`lib/node/warm-pool.ts`):
 * bwrap up, already in its own cgroup with its limits, Node and the runner loaded, the runner
 * blocked on its `start` message. One TaskInstance claims it, it runs once and exits: a warm
 * sandbox is never reused, exactly like a cold one (`run-task.ts`).
 *
 * What is NOT done before the claim, and why:
 * - The task module is not imported: modules may read `process.env` at import, and the
 *   per-TaskInstance variables (`TYDRA_INSTANCE_ID`, `TYDRA_ATTEMPT`, the submission's `env`,
 *   secrets) are only known at the claim. They travel in the `start` message and are set in
 *   `process.env` before the import, so a task sees the same environment, at the same moment,
 *   as in a cold sandbox. (Importing a small module costs about a millisecond; Node's start-up,
 *   which the pool does save, costs tens.)
 * - Variables Node itself reads at its start-up (`NODE_*`, `UV_*`) cannot be set that late:
 *   a submission that sets one is run cold (`isWarmEligible`).
 *
 * What the claim changes for limits:
 * - The wall-clock timeout starts at the claim, not at the spawn (execa's timeout is off; the
 *   claim arms its own timer and uses `timeOut()`).
 * - CPU time: the cgroup's counter is read at the claim and only what the sandbox uses after it
 *   counts against `cpuMs`. RLIMIT_CPU cannot be reset, and Node's start-up has used some of it
 *   already, so a pooled sandbox's RLIMIT_CPU is the task's plus {@link WARM_START_CPU_MS} (whole
 *   seconds either way): the exact bound is the cgroup's, as for a cold sandbox.
 * - Memory and processes: the same cgroup limits as cold; Node's own start-up memory and threads
 *   count there in both cases.
 */
import { IllegalStateError } from '../../lib/core/errors.js';
import { prepareLaunch, type SandboxOptions } from './launch.js';
import { outcome } from './outcome.js';
import { settle } from './run-task.js';
import { type RunningSandbox, startSandbox } from './sandbox-process.js';
import { startRunner } from './stream-capture.js';

/** RLIMIT_CPU headroom of a pooled sandbox for what Node's start-up used before the claim. */
export const WARM_START_CPU_MS = 1000;

/** Names Node reads at its own start-up: setting them after it would change nothing. */
const START_UP_ENV = /^(NODE_|UV_)/;

/** Everything a pooled sandbox needs before a TaskInstance is known. */
export type WarmSandboxOptions = Omit<
  SandboxOptions,
  'instanceId' | 'attempt' | 'env' | 'signal' | 'onProgress' | 'onLog'
> & {
  /** Package-relative path of the task module. */
  module: string;
};

/** What the TaskInstance that claims a pooled sandbox brings. */
export interface WarmClaim {
  instanceId: string;
  attempt: number;
  input: unknown;
  /** The submission's environment (`lib/core/task-env.ts`); see `isWarmEligible`. */
  env?: Readonly<Record<string, string>>;
  /** Secret values by variable name, sent in the `start` message as for a cold sandbox. */
  secrets?: Readonly<Record<string, string>>;
  /** As `SandboxOptions.signal`. */
  signal?: AbortSignal;
  onProgress?: (value: number | Record<string, unknown>) => void;
  onLog?: (line: string) => void;
  /** Called once the `start` message is sent: the TaskInstance runs. */
  onStarted?: () => void;
  /** As `RunTaskOptions.startAfter`: `start` is sent only once it settled, if `signal` is not aborted. */
  startAfter?: Promise<void>;
  /** As `RunTaskOptions.exitAfter`. */
  exitAfter?: Promise<unknown>;
}

/** Why a pooled sandbox was stopped before any TaskInstance claimed it. */
export class WarmSandboxDiscardedError extends Error {
  override name = 'WarmSandboxDiscardedError';
}

/** Whether a TaskInstance with this submission `env` may run in a pooled sandbox. */
export function isWarmEligible(env: Readonly<Record<string, string>> | undefined): boolean {
  return env === undefined || Object.keys(env).every((name) => !START_UP_ENV.test(name));
}

export type WarmState = 'starting' | 'ready' | 'claimed' | 'ended';

export class WarmSandbox {
  #state: WarmState = 'starting';
  private target: Pick<WarmClaim, 'onLog' | 'onProgress'> = {};
  private startWatch: (cpuBeforeMs: number) => void = () => undefined;

  private constructor(
    private readonly options: WarmSandboxOptions,
    private readonly control: AbortController,
    /** Resolves true once the runner said it is ready, false if the sandbox ended first. */
    readonly ready: Promise<boolean>,
    private readonly sandbox: RunningSandbox,
    private readonly cgroupStats: () => Promise<number | undefined>,
  ) {
    void ready.then((isReady) => {
      if (isReady && this.#state === 'starting') {
        this.#state = 'ready';
      }
    });
    void sandbox.ending.then(() => (this.#state = 'ended'));
  }

  /**
   * Starts a sandbox for `options.module` and resolves once it is in its cgroup and let go
   * (the runner may still be loading: see `ready`). Rejects like `runTask` when it cannot start.
   */
  static async start(options: WarmSandboxOptions): Promise<WarmSandbox> {
    const control = new AbortController();
    const sandboxOptions = { ...options, instanceId: 'warm', attempt: 0, signal: control.signal };
    const launch = await prepareLaunch(
      {
        ...sandboxOptions,
        // The module's path, for the runner's warm-up of the loader it needs (`warmUpLoader`).
        env: { TYDRA_WARM: '1', TYDRA_WARM_MODULE: options.module },
        limits: { ...options.limits, cpuMs: options.limits.cpuMs + WARM_START_CPU_MS },
      },
      { module: options.module },
    );
    let markReady: (ready: boolean) => void = () => undefined;
    const ready = new Promise<boolean>((resolve) => (markReady = resolve));
    let startWatch: (cpuBeforeMs: number) => void = () => undefined;
    const watchFrom = new Promise<number>((resolve) => (startWatch = resolve));
    const handle: { warm?: WarmSandbox } = {};
    const sandbox = await startSandbox(sandboxOptions, launch, {
      timeoutMs: 0, // the claim times the TaskInstance
      onLog: (line) => handle.warm?.target.onLog?.(line),
      onProgress: (value) => handle.warm?.target.onProgress?.(value),
      onReady: () => markReady(true),
      feed: () => () => undefined,
      watchFrom,
    });
    void sandbox.ending.then(() => markReady(false));
    const cgroupStats = async (): Promise<number | undefined> =>
      (await launch.cgroup?.stats().catch(() => undefined))?.cpuUsageMs;
    const warm = new WarmSandbox(options, control, ready, sandbox, cgroupStats);
    warm.startWatch = startWatch;
    handle.warm = warm;
    return warm;
  }

  get state(): WarmState {
    return this.#state;
  }

  /** Resolves once the sandbox exited and its cgroup is gone; never rejects. */
  get ended(): Promise<void> {
    return this.sandbox.ending.then(() => undefined);
  }

  /**
   * Whether it may still be claimed: not claimed, not discarded, and its process alive (one that
   * died unclaimed would fail the TaskInstance that claimed it for a fault that is not its own).
   */
  get claimable(): boolean {
    return (
      (this.#state === 'starting' || this.#state === 'ready') && !this.control.signal.aborted && !this.sandbox.exited
    );
  }

  /**
   * Runs one TaskInstance in this sandbox and resolves with its result, or rejects with the same
   * named errors as `runTask`. The timeout starts now. Throws `IllegalStateError` when it was
   * claimed, discarded or ended before.
   */
  async claim(claim: WarmClaim): Promise<unknown> {
    if (!this.claimable) {
      throw new IllegalStateError(`a pooled sandbox can be claimed once, and this one is ${this.#state}`);
    }
    this.#state = 'claimed';
    const { instanceId, attempt, signal } = claim;
    this.target = { onLog: claim.onLog, onProgress: claim.onProgress };
    // What the sandbox used so far was Node's start-up, not this TaskInstance's.
    this.startWatch((await this.cgroupStats()) ?? 0);
    const forward = (): void => this.control.abort(signal?.reason);
    signal?.addEventListener('abort', forward, { once: true });
    if (signal?.aborted) {
      forward();
    }
    const env = { ...claim.env, TYDRA_INSTANCE_ID: instanceId, TYDRA_ATTEMPT: String(attempt), ...claim.secrets };
    const start = { instanceId, attempt, module: this.options.module, input: claim.input, env };
    let unstart = (): void => undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      await claim.startAfter;
      // Timed from here: waiting for `startAfter` is not the task's time.
      timer = setTimeout(() => this.sandbox.timeOut(), this.options.limits.timeoutMs);
      // Aborted by now, the sandbox is being stopped (`forward`): its task must not get its input.
      if (signal?.aborted !== true) {
        if (claim.exitAfter !== undefined) {
          this.sandbox.exitAfter(claim.exitAfter);
        }
        unstart = startRunner(this.sandbox.stdin, start, signal);
        claim.onStarted?.();
      }
      // Settled at the runner's final message: the exit and the cgroup's removal need not delay
      // the result. The pool waits for `ended` (drain, close): nothing of it outlives the node.
      const ending = await this.sandbox.settled;
      return settle(outcome({ ...ending, instanceId, abortReason: signal?.reason }));
    } finally {
      clearTimeout(timer);
      unstart();
      signal?.removeEventListener('abort', forward);
    }
  }

  /** Stops an unclaimed sandbox (SIGTERM, then SIGKILL; its cgroup is removed); see `ended`. */
  discard(reason: string): void {
    if (this.#state !== 'claimed') {
      this.control.abort(new WarmSandboxDiscardedError(reason));
    }
  }
}
