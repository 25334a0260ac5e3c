/**
 * The reduce phase: runs reduce in a sandbox with the work results streamed into its stdin in
 * split order, at the pace it reads them (never all in memory: the runner pauses its stdin while
 * its buffer is full, and the node waits for 'drain'). Its result is a task's result.
 */
import type { Writable } from 'node:stream';

import { encodeMessage, type UnitFailure } from '../../protocol.js';
import { prepareLaunch } from '../launch.js';
import { outcome } from '../outcome.js';
import { settle } from '../run-task.js';
import { type RunningSandbox, startSandbox } from '../sandbox-process.js';
import { startRunner } from '../stream-capture.js';
import { type PhaseOptions, secretEnv, taskEntry } from './options.js';
import { writeLines } from './write-lines.js';

export interface ReduceOptions extends PhaseOptions {
  input: unknown;
  /** The work results in split order (`null` for a unit that failed for good). */
  results: AsyncIterable<unknown>;
  /** The units that failed for good (reduce's `ctx.failures`). */
  failures: UnitFailure[];
}

/** Feeds `results` in order (respecting stdin backpressure); resolves with reduce's value. */
export async function runReduce(options: ReduceOptions): Promise<unknown> {
  const ref: { sandbox?: RunningSandbox; failure?: { error: unknown } } = {};
  const onFeedError = (error: unknown): void => {
    // The results could not be read (the node's side failed): the reduce cannot be right.
    ref.failure ??= { error };
    ref.sandbox?.stop();
  };
  const launch = await prepareLaunch(options, taskEntry(options.entry));
  const sandbox = await startSandbox(options, launch, {
    timeoutMs: options.limits.timeoutMs,
    onLog: options.onLog ?? (() => undefined),
    onProgress: options.onProgress,
    feed: (stdin) => feedReduce(stdin, options, onFeedError),
  });
  ref.sandbox = sandbox;
  if (ref.failure !== undefined) {
    sandbox.stop();
  }
  const result = outcome(await sandbox.ending);
  if (ref.failure !== undefined) {
    throw ref.failure.error;
  }
  return settle(result);
}

/** Starts the runner in reduce mode, or gives a command its input line, then streams the results. */
function feedReduce(stdin: Writable, options: ReduceOptions, onError: (error: unknown) => void): () => void {
  const { entry, instanceId, attempt, input, failures } = options;
  stdin.on('error', () => undefined); // EPIPE when reduce ends before reading everything
  if (!('module' in entry)) {
    const lines = (async function* () {
      yield input;
      yield* options.results;
    })();
    writeLines(stdin, lines, (item) => `${JSON.stringify(item ?? null)}\n`).catch(onError);
    return () => undefined;
  }
  const start = {
    instanceId,
    attempt,
    module: entry.module,
    input,
    mode: 'reduce' as const,
    failures,
    ...secretEnv(options),
  };
  const forget = startRunner(stdin, start, options.signal);
  const item = (value: unknown): string => encodeMessage({ type: 'item', value: value ?? null });
  writeLines(stdin, options.results, item, encodeMessage({ type: 'items-end' })).catch(onError);
  return forget;
}
