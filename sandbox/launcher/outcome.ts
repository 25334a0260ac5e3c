/**
 * How a sandbox ended, as plain data, and the one pure function that turns it into the
 * TaskInstance's result or a named error. Every message a run can end with is built here, so the
 * order in which endings win (a broken limit over the exit status it caused, a timeout over the
 * SIGTERM it sent, …) is in one table rather than spread through the supervision code.
 */
import {
  LimitExceededError,
  RunnerProtocolError,
  SandboxUnavailableError,
  TaskFailedError,
  TaskTimeoutError,
  TaskUnrecoverableError,
} from '../../lib/core/errors.js';
import { type CompiledTaskLimits, formatBytes, formatDuration } from '../../lib/core/limits.js';
import { MAX_PROGRESS_BYTES, type RunnerMessage, UNRECOVERABLE_ERROR_NAME } from '../protocol.js';
import { signalFromExit } from './exit-signal.js';

/** A limit the task broke, seen by the stream capture, the cgroup counters or the exit status. */
export type LimitHit =
  | { limit: 'outputBytes'; stream: 'stdout' | 'stderr' | 'ctx.log' }
  | { limit: 'resultBytes' }
  /** One `ctx.progress` value over `MAX_PROGRESS_BYTES`; `bytes` is its size as JSON. */
  | { limit: 'progressBytes'; bytes: number }
  | { limit: 'memoryBytes' }
  | { limit: 'pids' }
  | { limit: 'cpuMs' }
  | { limit: 'fileSizeBytes' };

/** The runner's last word: a JavaScript task's result or the error it threw. */
export type FinalMessage = Extract<RunnerMessage, { type: 'result' | 'error' }>;

/** Everything `outcome` needs to know about how one sandbox ended. */
export interface SandboxEnding {
  instanceId: string;
  limits: CompiledTaskLimits;
  /** Largest result message (JSON bytes). */
  maxResultBytes: number;
  /** Ran under bwrap; false for the unsandboxed development mode. */
  sandboxed: boolean;
  /** A JavaScript module under the runner, or a command whose stdout is its result. */
  kind: 'module' | 'command';
  /** Commands: exit codes that fail the task for good (`TaskUnrecoverableError`, never retried). */
  unrecoverableExitCodes?: readonly number[];
  /** The node could not put the sandbox in its cgroup: the node failed, not the task. */
  setupError?: Error;
  /** The first limit seen broken while it ran, or in the cgroup's final counters. */
  limitHit?: LimitHit;
  /** Killed at the wall-clock limit. */
  timedOut: boolean;
  /** Killed because the run's signal was aborted; `abortReason` is the signal's reason. */
  aborted: boolean;
  abortReason?: unknown;
  /** bwrap's exit code (128 + N when the task died of signal N), or undefined when signalled. */
  exitCode: number | undefined;
  /** The signal that killed bwrap (or the unsandboxed process) itself. */
  signal: NodeJS.Signals | undefined;
  /** JavaScript tasks: the runner's final message, when one came. */
  final?: FinalMessage;
  /** JavaScript tasks: the runner said `started` (bwrap had set the sandbox up; no task code had run). */
  started?: boolean;
  /** JavaScript tasks: the runner sent something that is not a runner message. */
  protocolError?: string;
  /** What ran, in the message of a JavaScript sandbox that died early. @defaultValue 'task process' */
  subject?: string;
  /** The last 2 KiB of stderr. */
  stderrTail: string;
  /** Commands: everything printed on stdout (empty once over the output limit). */
  stdout: string;
}

export type Outcome = { result: unknown } | { error: Error };

/**
 * The rules, in the order they win. Each returns the error for its ending or undefined. A task
 * that reached neither a result nor an error is judged by `finalOutcome` after them.
 */
const RULES: ReadonlyArray<(ending: SandboxEnding) => Error | undefined> = [
  // A cancel during the set-up kills the sandbox under the attach, which then fails (ESRCH): the
  // cancel is the cause, and the rule for it below answers.
  (e) => (e.aborted ? undefined : e.setupError),
  (e) => (e.limitHit === undefined ? undefined : limitError(e.limitHit, e)),
  (e) => (e.timedOut ? new TaskTimeoutError(e.limits.timeoutMs, e.instanceId) : undefined),
  (e) => (e.aborted ? abortError(e.abortReason, e.instanceId) : undefined),
  (e) => {
    const hit = e.final === undefined ? limitFromDeath(e) : undefined;
    return hit === undefined ? undefined : limitError(hit, e);
  },
  (e) => (e.protocolError === undefined ? undefined : new RunnerProtocolError(e.protocolError)),
  sandboxSetupFailure,
];

/** The TaskInstance's result, or the error it fails with, for the way its sandbox ended. */
export function outcome(ending: SandboxEnding): Outcome {
  for (const rule of RULES) {
    const error = rule(ending);
    if (error !== undefined) {
      return { error };
    }
  }
  return ending.kind === 'module' ? moduleOutcome(ending) : commandOutcome(ending);
}

/**
 * The error an aborted run rejects with: the signal's reason itself when it is an Error (e.g.
 * `TaskCancelledError`), so callers tell endings apart with `instanceof`; else `cancelled`.
 */
export function abortError(reason: unknown, instanceId: string): Error {
  return reason instanceof Error ? reason : new TaskFailedError('cancelled', instanceId);
}

/** A limit the task died of without the node seeing it broken: V8's heap limit, SIGXCPU, SIGXFSZ. */
function limitFromDeath(ending: SandboxEnding): LimitHit | undefined {
  if (/JavaScript heap out of memory|Reached heap limit/.test(ending.stderrTail)) {
    return { limit: 'memoryBytes' };
  }
  // Only in a sandbox is the signal prlimit's: an unsandboxed process has no such rlimits.
  const signal = ending.sandboxed ? signalFromExit(ending.exitCode, ending.signal) : undefined;
  if (signal === 'SIGXCPU') {
    return { limit: 'cpuMs' };
  }
  return signal === 'SIGXFSZ' ? { limit: 'fileSizeBytes' } : undefined;
}

/**
 * bwrap failed to set the sandbox up: it said so on stderr (`bwrap: …`) and no task ran. stderr is
 * the task's too, so the line alone proves nothing: a task can print it and exit 1, and would be
 * tried again as the node's failure, three times, with the node blamed in its log. A JavaScript
 * runner says `started` before any task code runs; once it did, the line is the task's. A command
 * has no such witness (bwrap execs it directly): see the README's limitations.
 */
function sandboxSetupFailure(ending: SandboxEnding): Error | undefined {
  const failure = /^bwrap: .*/m.exec(ending.stderrTail);
  const ran = ending.kind === 'module' && ending.started === true;
  if (ending.sandboxed && failure && !ran && ending.final === undefined && ending.exitCode !== 0) {
    return new SandboxUnavailableError(`sandbox set-up failed: ${failure[0]}`);
  }
  return undefined;
}

function moduleOutcome(ending: SandboxEnding): Outcome {
  const { final, instanceId, stderrTail } = ending;
  if (final?.type === 'result') {
    return { result: final.value };
  }
  if (final?.type === 'error') {
    const Failure = final.name === UNRECOVERABLE_ERROR_NAME ? TaskUnrecoverableError : TaskFailedError;
    return { error: new Failure(final.message, instanceId, final.stack ?? `${final.name}: ${final.message}`) };
  }
  const message = `${ending.subject ?? 'task process'} ${exitDescription(ending)} before returning a result${tailSuffix(stderrTail)}`;
  return { error: new TaskFailedError(message, instanceId, stderrTail || undefined) };
}

function commandOutcome(ending: SandboxEnding): Outcome {
  const { instanceId, stderrTail } = ending;
  if (ending.exitCode !== 0) {
    const message = `command ${exitDescription(ending)}${tailSuffix(stderrTail)}`;
    // An exit code the package declared final; only when exited, never for a signal's 128 + N.
    const final = ending.signal === undefined && ending.unrecoverableExitCodes?.includes(ending.exitCode ?? 0);
    const Failure = final === true ? TaskUnrecoverableError : TaskFailedError;
    return { error: new Failure(message, instanceId, stderrTail || undefined) };
  }
  const text = ending.stdout.trim();
  if (text === '') {
    return { result: null };
  }
  try {
    return { result: JSON.parse(text) as unknown };
  } catch {
    const got = JSON.stringify(text.slice(0, 200));
    return {
      error: new TaskFailedError(`Expected the command to print one JSON value on stdout, got ${got}`, instanceId),
    };
  }
}

/** The error for a broken limit, naming the limit and its value. */
function limitError(hit: LimitHit, ending: SandboxEnding): LimitExceededError {
  const { limits, instanceId } = ending;
  const error = (message: string, limit: string, value: number): LimitExceededError =>
    new LimitExceededError(message, instanceId, limit, value);
  switch (hit.limit) {
    case 'outputBytes':
      return error(
        `output limit exceeded (${formatBytes(limits.outputBytes)} on ${hit.stream})`,
        hit.limit,
        limits.outputBytes,
      );
    case 'resultBytes':
      return error(
        `output limit exceeded (${formatBytes(ending.maxResultBytes)} in one result message)`,
        hit.limit,
        ending.maxResultBytes,
      );
    case 'progressBytes': {
      const got = formatBytes(hit.bytes);
      return error(
        `output limit exceeded (${formatBytes(MAX_PROGRESS_BYTES)} in one progress value, got ${got})`,
        hit.limit,
        MAX_PROGRESS_BYTES,
      );
    }
    case 'memoryBytes':
      return error(`memory limit exceeded (${formatBytes(limits.memoryBytes)})`, hit.limit, limits.memoryBytes);
    case 'pids':
      return error(`process limit exceeded (${limits.pids} processes and threads)`, hit.limit, limits.pids);
    case 'cpuMs':
      return error(`CPU time limit exceeded (${formatDuration(limits.cpuMs)})`, hit.limit, limits.cpuMs);
    case 'fileSizeBytes':
      return error(`file size limit exceeded (${formatBytes(limits.fileSizeBytes)})`, hit.limit, limits.fileSizeBytes);
  }
}

function exitDescription(ending: SandboxEnding): string {
  return ending.signal ? `was killed by ${ending.signal}` : `exited with code ${ending.exitCode}`;
}

function tailSuffix(stderrTail: string): string {
  const tail = stderrTail.trim().split('\n').slice(-5).join('\n').slice(-500);
  return tail ? `: ${tail}` : '';
}
