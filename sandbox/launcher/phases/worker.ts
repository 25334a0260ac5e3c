/**
 * A long-lived work sandbox for ONE TaskInstance: started once, it runs many work units, one at
 * a time. A JavaScript worker is the runner in `work` mode (a `unit` message in, `unit-result` or
 * `unit-error` out); a command reads one JSON unit per stdin line and prints one JSON result per
 * stdout line, in order.
 *
 * Limits are those of a task, per sandbox (memory, processes, output over the worker's life,
 * CPU time too), except the wall-clock limit, which is per unit. Whatever kills the worker (a
 * unit's timeout, a broken limit, a crash, the signal) fails the unit it was running with the
 * matching named error, and the worker is dead: its pool starts another.
 */
import { randomUUID } from 'node:crypto';
import type { Writable } from 'node:stream';

import { IllegalStateError, TaskFailedError, TaskUnrecoverableError } from '../../../lib/core/errors.js';
import { encodeMessage, UNRECOVERABLE_ERROR_NAME } from '../../protocol.js';
import { prepareLaunch } from '../launch.js';
import { outcome, type SandboxEnding } from '../outcome.js';
import type { PhaseRunnerMessage } from '../runner-message.js';
import { type RunningSandbox, startSandbox } from '../sandbox-process.js';
import { startRunner } from '../stream-capture.js';
import { type PhaseOptions, secretEnv, taskEntry } from './options.js';

/** How long `close()` waits for the worker to exit on its own before it kills it. */
const CLOSE_GRACE_MS = 2000;

/** One work unit: its place in split order, which try this is, and the unit itself. */
export interface WorkUnit {
  index: number;
  attempt: number;
  value: unknown;
}

/** A long-lived work sandbox for ONE TaskInstance; many units, one at a time. */
export interface WorkSandbox {
  /** Random, for logs and tests. */
  readonly id: string;
  /** False once the process exited or was killed (or is being closed). */
  readonly alive: boolean;
  /**
   * Runs one unit. Rejects with TaskFailedError (unit threw / bad output), TaskTimeoutError
   * (limits.timeoutMs is PER UNIT: the worker is killed), LimitExceededError (worker killed),
   * or o.signal.reason (worker killed). After a kill `alive` is false and the pool replaces it.
   */
  run(unit: WorkUnit, onLog?: (line: string) => void): Promise<unknown>;
  /**
   * Writes a line of the node's about this sandbox (its network's connections) where its own
   * lines go: to the unit it runs, or ran last, or before its first unit to the phase's `onLog`.
   */
  log(line: string): void;
  /** Ends stdin, waits for exit (SIGTERM→SIGKILL ladder), removes its cgroup. Idempotent. */
  close(): Promise<void>;
}

interface Running {
  index: number;
  resolve(value: unknown): void;
  reject(error: Error): void;
  onLog?: (line: string) => void;
  timer: NodeJS.Timeout;
}

/** Starts a work sandbox; resolves once it runs (in its cgroup), before its module is loaded. */
export async function startWorker(options: PhaseOptions): Promise<WorkSandbox> {
  const worker = new Worker(options);
  const launch = await prepareLaunch(options, taskEntry(options.entry));
  const sandbox = await startSandbox(options, launch, {
    timeoutMs: 0,
    onLog: (line) => worker.log(line),
    onProgress: options.onProgress,
    onMessage: (message) => worker.onMessage(message),
    onStdoutLine: 'module' in options.entry ? undefined : (line) => worker.onLine(line),
    feed: (stdin) => feedWorker(stdin, options),
  });
  worker.attach(sandbox);
  if (sandbox.setupError !== undefined) {
    // The node could not confine it: no worker to hand out (the error is the node's, not the task's).
    await sandbox.ending;
    throw sandbox.setupError;
  }
  return worker;
}

function feedWorker(stdin: Writable, options: PhaseOptions): () => void {
  const { entry, instanceId, attempt } = options;
  if (!('module' in entry)) {
    stdin.on('error', () => undefined);
    return () => undefined;
  }
  const start = {
    instanceId,
    attempt,
    module: entry.module,
    input: null,
    mode: 'work' as const,
    ...secretEnv(options),
  };
  return startRunner(stdin, start, options.signal);
}

class Worker implements WorkSandbox {
  readonly id = randomUUID();
  private sandbox: RunningSandbox | undefined;
  private running: Running | undefined;
  private lastRunning: Running | undefined;
  private dead = false;
  private protocolError: string | undefined;
  private closing: Promise<void> | undefined;
  /** Why it ended, when it ended badly (a setup failure, a crash between units…). */
  private endReason: Error | undefined;

  constructor(private readonly options: PhaseOptions) {}

  get alive(): boolean {
    return !this.dead && this.sandbox !== undefined && !this.sandbox.exited;
  }

  /** @internal */
  attach(sandbox: RunningSandbox): void {
    this.sandbox = sandbox;
    void sandbox.ending.then((ending) => this.ended(ending));
  }

  run(unit: WorkUnit, onLog?: (line: string) => void): Promise<unknown> {
    const { sandbox } = this;
    if (sandbox === undefined || !this.alive) {
      const why = this.endReason === undefined ? '' : ` (${this.endReason.message})`;
      const message = `work sandbox ${this.id} has ended${why}; start another one`;
      return Promise.reject(new TaskFailedError(message, this.options.instanceId));
    }
    if (this.running !== undefined) {
      const busy = `work sandbox ${this.id} got unit ${unit.index} while unit ${this.running.index} runs`;
      return Promise.reject(new IllegalStateError(`${busy}: run() takes one unit at a time`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.kill('timeout'), this.options.limits.timeoutMs);
      this.running = { index: unit.index, resolve, reject, onLog, timer };
      const line =
        'module' in this.options.entry
          ? encodeMessage({ type: 'unit', index: unit.index, attempt: unit.attempt, value: unit.value })
          : `${JSON.stringify(unit.value ?? null)}\n`;
      sandbox.stdin.write(line);
    });
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  /**
   * A log line of the worker: the running unit's. stdout and stderr are pipes of their
   * own, so a unit's last lines may arrive after its result: until the next unit starts, they
   * are still the last unit's. Before the first unit (the module loading), they are the phase's.
   */
  log(line: string): void {
    const unit = this.running ?? this.lastRunning;
    (unit === undefined ? this.options.onLog : unit.onLog)?.(line);
  }

  /** @internal */
  onMessage(message: PhaseRunnerMessage): void {
    const running = this.running;
    if (message.type === 'unit' || running === undefined || message.index !== running.index) {
      const got = message.type === 'unit' ? 'a split unit' : `the answer to unit ${message.index}`;
      this.breakProtocol(`Expected the answer to unit ${running?.index ?? '(none running)'}, got ${got}`);
    } else if (message.type === 'unit-result') {
      this.settle()?.resolve(message.value);
    } else {
      const stack = message.stack ?? `${message.name}: ${message.message}`;
      const Failure = message.name === UNRECOVERABLE_ERROR_NAME ? TaskUnrecoverableError : TaskFailedError;
      this.settle()?.reject(new Failure(message.message, this.options.instanceId, stack));
    }
  }

  /** @internal One stdout line of a command worker: the running unit's result. */
  onLine(line: string): void {
    if (line.trim() === '') {
      return;
    }
    if (this.running === undefined) {
      this.breakProtocol(`Expected no output between work units, got ${JSON.stringify(line.slice(0, 200))}`);
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      const got = JSON.stringify(line.slice(0, 200));
      const error = new TaskFailedError(
        `Expected the work command to print one JSON result per line, got ${got}`,
        this.options.instanceId,
      );
      // Its output is out of step with its input now: it cannot serve another unit.
      this.settle()?.reject(error);
      this.kill();
      return;
    }
    this.settle()?.resolve(value);
  }

  private settle(): Running | undefined {
    const running = this.running;
    this.lastRunning = running ?? this.lastRunning;
    this.running = undefined;
    if (running !== undefined) {
      clearTimeout(running.timer);
    }
    return running;
  }

  private breakProtocol(message: string): void {
    this.protocolError ??= message;
    this.kill();
  }

  private kill(reason?: 'timeout'): void {
    this.dead = true;
    if (reason === 'timeout') {
      this.sandbox?.timeOut();
    } else {
      this.sandbox?.stop();
    }
  }

  /** The process is gone: the unit it was running fails with the reason. */
  private ended(ending: SandboxEnding): void {
    this.dead = true;
    const running = this.settle();
    const protocolError = ending.protocolError ?? this.protocolError;
    const result = outcome({ ...ending, protocolError, subject: 'worker process' });
    this.endReason = 'error' in result && this.closing === undefined ? result.error : undefined;
    if (running === undefined) {
      return;
    }
    if ('error' in result) {
      running.reject(result.error);
    } else {
      const how = ending.signal ? `was killed by ${ending.signal}` : `exited with code ${ending.exitCode}`;
      const message = `worker process ${how} before returning the result of work unit ${running.index}`;
      running.reject(new TaskFailedError(message, this.options.instanceId));
    }
  }

  private async shutDown(): Promise<void> {
    const sandbox = this.sandbox;
    this.dead = true;
    if (sandbox === undefined) {
      return;
    }
    if (!sandbox.exited) {
      if ('module' in this.options.entry && !sandbox.stdin.destroyed) {
        sandbox.stdin.write(encodeMessage({ type: 'end' }));
      }
      sandbox.stdin.end();
      const grace = setTimeout(() => sandbox.stop(), CLOSE_GRACE_MS);
      await sandbox.exit;
      clearTimeout(grace);
    }
    await sandbox.ending;
  }
}
