/**
 * What every mode shares: the `ctx` argument task code gets, loading the task's export, and
 * turning what task code returns or logs into JSON for the protocol. One module rather than
 * three: each module the runner loads before `start` is on every cold start's critical path.
 */
import { type NodeMessage, UNRECOVERABLE_ERROR_NAME, type UnitFailure } from '../protocol.js';
import type { Channel } from './channel.js';
import type { Pausable } from './item-buffer.js';
import { loadTaskModule } from './task-module.js';

export type StartMessage = Extract<NodeMessage, { type: 'start' }>;

/** The folder the package is mounted at (read-only); the launcher always sets it. */
export const PACKAGE_DIR = process.env.TYDRA_PACKAGE_DIR ?? '/task';

export interface TaskContext {
  instanceId: string;
  /** Which try this is: of the TaskInstance, or in `work`, of the work unit. */
  attempt: number;
  /** Aborted when the TaskInstance is cancelled or about to be killed. */
  signal: AbortSignal;
  progress(value: number | Record<string, unknown>): void;
  log(...args: unknown[]): void;
  /**
   * Fails the TaskInstance for good with `message`: throws an error named `TydraUnrecoverable`,
   * which is not retried whatever `attempts` says (`throw`ing one of your own does the same).
   */
  fail(message: string): never;
}

/** `work(unit, ctx)`: which unit this is, in split order. */
export interface WorkContext extends TaskContext {
  index: number;
}

/** `reduce(results, input, ctx)`: the units that failed for good (their results are `null`). */
export interface ReduceContext extends TaskContext {
  failures: UnitFailure[];
}

/** What a mode needs of the runner process. */
export interface RunnerEnv {
  channel: Channel;
  /** Aborted by a `cancel` message. */
  signal: AbortSignal;
  /** Reading of stdin (reduce pauses it while its buffer is full). */
  stdin: Pausable;
}

/** One mode of the runner, started by the `start` message; gets every later message. */
export interface Mode {
  onMessage(message: NodeMessage): void;
  /** stdin ended. */
  onInputEnd(): void;
}

export function taskContext(start: StartMessage, env: RunnerEnv): TaskContext {
  return {
    instanceId: start.instanceId,
    attempt: start.attempt,
    signal: env.signal,
    progress: (value) => env.channel.progress(value),
    log: (...args) => env.channel.send({ type: 'log', line: args.map(formatArg).join(' ') }),
    fail: (message) => {
      const error = new Error(String(message));
      error.name = UNRECOVERABLE_ERROR_NAME;
      throw error;
    },
  };
}

/**
 * The export `name` of the package module `module` (`default` for a simple task), or a
 * TypeError naming both when it is not a function. Loads task code from the read-only package
 * folder (`task-module.ts`: CommonJS with `require()`, the rest with `import()`): called only once `start` arrived, never before (see `sandbox/launcher/cgroup/attach-overlapped.ts`).
 */
export async function loadExport<F extends (...args: never[]) => unknown>(
  module: string,
  name: string,
  signature: string,
): Promise<F> {
  const exports = await loadTaskModule(`${PACKAGE_DIR}/${module}`, PACKAGE_DIR);
  const fn = exports[name];
  if (typeof fn !== 'function') {
    const which = name === 'default' ? 'the default export' : `an export named \`${name}\``;
    throw new TypeError(`Expected ${which} of ${module} to be a function ${signature}, got ${typeof fn}`);
  }
  return fn as F;
}

/** The result must survive JSON: `undefined` becomes `null`; BigInt or cycles fail the task. */
export function toJsonValue(value: unknown, what = "the task's result"): unknown {
  if (value === undefined) {
    return null;
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new TypeError(`Expected ${what} to be JSON-serialisable, got an error: ${(error as Error).message}`);
  }
  return text === undefined ? null : (JSON.parse(text) as unknown);
}

/**
 * A work unit must be a JSON value as it is: it is stored, sent to other nodes and retried, so
 * `undefined`, functions or symbols are refused rather than silently turned into `null`.
 */
export function toJsonUnit(value: unknown, what: string): unknown {
  const text = ((): string | undefined => {
    try {
      return JSON.stringify(value);
    } catch (error) {
      throw new TypeError(`Expected ${what} to be JSON-serialisable, got an error: ${(error as Error).message}`);
    }
  })();
  if (text === undefined) {
    throw new TypeError(`Expected ${what} to be JSON-serialisable, got ${typeof value}`);
  }
  return JSON.parse(text) as unknown;
}

export function formatArg(arg: unknown): string {
  if (typeof arg === 'string') {
    return arg;
  }
  if (arg instanceof Error) {
    return arg.stack ?? arg.message;
  }
  try {
    return JSON.stringify(arg) ?? String(arg);
  } catch {
    return String(arg);
  }
}
