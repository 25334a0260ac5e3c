/**
 * The split phase: runs split in a sandbox and hands its units to the node in order, one at a
 * time. Backpressure keeps the sandbox from running ahead of the node: the runner gets one
 * credit per unit the node took (`SPLIT_WINDOW` to start with); a command's stdout is no longer
 * read while `SPLIT_WINDOW` units wait (its pipe fills and its writes block).
 */
import type { Writable } from 'node:stream';

import { TaskFailedError, TaskTimeoutError } from '../../../lib/core/errors.js';
import { encodeMessage } from '../../protocol.js';
import { prepareLaunch } from '../launch.js';
import { outcome } from '../outcome.js';
import { settle } from '../run-task.js';
import { type RunningSandbox, startSandbox } from '../sandbox-process.js';
import { startRunner } from '../stream-capture.js';
import { type PhaseOptions, secretEnv, taskEntry } from './options.js';
import { PausableTimer } from './pausable-timer.js';
import { UnitPump } from './unit-pump.js';

/** Units the sandbox may be ahead of the node by. */
export const SPLIT_WINDOW = 16;
/** Credits given back in one message while the node keeps up. */
const CREDIT_BATCH = 4;

export interface SplitOptions extends PhaseOptions {
  input: unknown;
  /** Takes one unit; the next comes only once its promise resolved. A rejection fails the split. */
  onUnit(unit: unknown): void | Promise<void>;
}

/**
 * Resolves with the number of units; awaits each onUnit promise before taking more (backpressure).
 * Settles only once the onUnit call in progress settled: no onUnit call comes after.
 */
export async function runSplit(options: SplitOptions): Promise<number> {
  const isModule = 'module' in options.entry;
  // Set once started; the callbacks below may run before (a unit or a failure during the start).
  const ref: { sandbox?: RunningSandbox } = {};
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown): void => {
    failure ??= { error };
    ref.sandbox?.stop();
  };
  const { timeoutMs } = options.limits;
  const timer = new PausableTimer(timeoutMs, () =>
    ref.sandbox === undefined ? fail(new TaskTimeoutError(timeoutMs, options.instanceId)) : ref.sandbox.timeOut(),
  );
  const credits: Credits = { granted: 0, received: 0, broken: false };
  const pump = splitPump(options, ref, timer, fail, credits);
  const takeLine = (line: string): void => {
    pushLine(line, pump, options.instanceId, fail);
    holdBack(ref.sandbox, pump);
  };
  const launch = await prepareLaunch(options, taskEntry(options.entry));
  const sandbox = await startSandbox(options, launch, {
    timeoutMs: 0,
    onLog: options.onLog ?? (() => undefined),
    onProgress: options.onProgress,
    onMessage: (message) =>
      message.type === 'unit'
        ? takeCredited(message.value, credits, pump, fail, options.instanceId)
        : fail(unexpected(message.type, options.instanceId)),
    onStdoutLine: isModule ? undefined : takeLine,
    feed: (stdin) => feedSplit(stdin, options, credits),
  });
  ref.sandbox = sandbox;
  if (failure !== undefined) {
    sandbox.stop();
  }
  // Once the command exited, what is left in its pipe is read at once (it is bounded by the
  // pipe's size): a stream held paused would never end.
  void sandbox.exit.then(() => sandbox.stdout.resume());
  timer.arm();
  const result = outcome(await sandbox.ending);
  timer.dispose();
  if (failure !== undefined || 'error' in result) {
    // Nothing reaches onUnit once the split failed; the call in progress still ends first.
    pump.stop();
  }
  await pump.idle();
  if (failure !== undefined) {
    throw failure.error;
  }
  settle(result);
  return pump.received;
}

/**
 * Hands units to onUnit, holding the sandbox back meanwhile: the runner by credits (given back a
 * few at a time while the node keeps up, all of them when it is idle), a command by not reading
 * its stdout. Holds the split's timer while onUnit is busy.
 */
function splitPump(
  options: SplitOptions,
  ref: { sandbox?: RunningSandbox },
  timer: PausableTimer,
  fail: (error: unknown) => void,
  credits: Credits,
): UnitPump {
  const isModule = 'module' in options.entry;
  let owed = 0;
  const repay = (atLeast: number): void => {
    if (isModule && owed >= atLeast && owed > 0) {
      grant(ref.sandbox?.stdin, owed, credits);
      owed = 0;
    }
  };
  const pump: UnitPump = new UnitPump({
    onUnit: (unit) => options.onUnit(unit),
    onAck: () => {
      owed += 1;
      repay(CREDIT_BATCH);
      if (!isModule) {
        holdBack(ref.sandbox, pump);
      }
    },
    onBusy: (busy) => {
      repay(1);
      return busy ? timer.hold() : timer.release();
    },
    onError: fail,
  });
  return pump;
}

/** The runner's start (split mode, `SPLIT_WINDOW` credits), or a command's input line. */
function feedSplit(stdin: Writable, options: SplitOptions, credits: Credits): () => void {
  const { entry, instanceId, attempt, input } = options;
  if (!('module' in entry)) {
    stdin.on('error', () => undefined);
    stdin.end(`${JSON.stringify(input ?? null)}\n`);
    return () => undefined;
  }
  const forget = startRunner(
    stdin,
    { instanceId, attempt, module: entry.module, input, mode: 'split', ...secretEnv(options) },
    options.signal,
  );
  grant(stdin, SPLIT_WINDOW, credits);
  return forget;
}

/** Units the runner was allowed to send (its credits) and units it sent. */
interface Credits {
  granted: number;
  received: number;
  /** Set at the first unit beyond them: the split is failing, and no unit of it is taken after. */
  broken: boolean;
}

function grant(stdin: Writable | undefined, count: number, credits: Credits): void {
  if (stdin !== undefined && !stdin.destroyed) {
    credits.granted += count;
    stdin.write(encodeMessage({ type: 'credit', count }));
  }
}

/**
 * Takes a runner's unit if a credit covers it. The credits are the runner's to honour, and it runs
 * beside the task's code, which can write units to fd 3 itself: each one past the credits would
 * wait in the node's memory (and hold the split's timer) for as long as the node is slower than
 * the split. A unit beyond them is a protocol error; what waits stays within `SPLIT_WINDOW`.
 */
function takeCredited(
  unit: unknown,
  credits: Credits,
  pump: UnitPump,
  fail: (error: unknown) => void,
  instanceId: string,
): void {
  credits.received += 1;
  if (credits.received > credits.granted && !credits.broken) {
    credits.broken = true;
    const message = `Expected the split runner to wait for the node's credits, got work unit ${credits.received} with ${credits.granted} granted`;
    fail(new TaskFailedError(message, instanceId));
  }
  if (!credits.broken) {
    pump.push(unit);
  }
}

/** A command's stdout is read only while fewer than `SPLIT_WINDOW` units wait, and while it runs. */
function holdBack(sandbox: RunningSandbox | undefined, pump: UnitPump): void {
  if (sandbox === undefined) {
    return;
  }
  if (pump.waiting >= SPLIT_WINDOW && !sandbox.exited) {
    sandbox.stdout.pause();
  } else if (sandbox.stdout.isPaused()) {
    sandbox.stdout.resume();
  }
}

/** One line of a split command: one JSON unit (blank lines are skipped). */
function pushLine(line: string, pump: UnitPump, instanceId: string, fail: (error: unknown) => void): void {
  if (line.trim() === '') {
    return;
  }
  try {
    pump.push(JSON.parse(line) as unknown);
  } catch {
    const got = JSON.stringify(line.slice(0, 200));
    fail(
      new TaskFailedError(`Expected the split command to print one JSON work unit per line, got ${got}`, instanceId),
    );
  }
}

function unexpected(type: string, instanceId: string): Error {
  const message = `Expected the split runner to send work units, got a ${JSON.stringify(type)} message`;
  return new TaskFailedError(message, instanceId);
}
