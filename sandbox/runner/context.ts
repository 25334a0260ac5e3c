/** The `ctx` argument task code gets, in every mode. */
import { type NodeMessage, UNRECOVERABLE_ERROR_NAME, type UnitFailure } from '../protocol.js';
import type { Channel } from './channel.js';
import type { Pausable } from './item-buffer.js';
import { formatArg } from './values.js';

export type StartMessage = Extract<NodeMessage, { type: 'start' }>;

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
    progress: (value) => env.channel.send({ type: 'progress', value }),
    log: (...args) => env.channel.send({ type: 'log', line: args.map(formatArg).join(' ') }),
    fail: (message) => {
      const error = new Error(String(message));
      error.name = UNRECOVERABLE_ERROR_NAME;
      throw error;
    },
  };
}
