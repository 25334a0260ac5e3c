/**
 * Runs one TaskInstance in a fresh bubblewrap sandbox and returns its result. The process is
 * never reused: one sandbox, one TaskInstance. JavaScript tasks run under the in-sandbox
 * runner, which speaks the protocol in `../protocol.ts` over stdin and fd 3; command tasks get
 * their input as JSON on stdin and print their JSON result on stdout.
 *
 * The parts: `launch.ts` builds what to start and its cgroup, `sandbox-process.ts` spawns and
 * supervises it (`spawn-sandbox.ts`, `stream-capture.ts`, `monitor.ts`), and `outcome.ts` turns
 * the way it ended into a result or an error.
 *
 * Termination: on timeout or abort execa sends SIGTERM to bwrap, which takes the whole sandbox
 * down with it (`--die-with-parent`, own pid namespace: daemons that called setsid die too),
 * then SIGKILL after a grace period.
 */
import type { Writable } from 'node:stream';

import { prepareLaunch, type SandboxOptions, type TaskEntry } from './launch.js';
import { type Outcome, outcome } from './outcome.js';
import { startSandbox } from './sandbox-process.js';
import { feedCommand, startRunner } from './stream-capture.js';

export type { TaskEntry } from './launch.js';

export interface RunTaskOptions extends SandboxOptions {
  task: TaskEntry;
  input: unknown;
  /** Called once the sandbox runs in its cgroup, with the seconds its launch took (for metrics). */
  onStarted?: (seconds: number) => void;
  /**
   * Given, `runTask` settles a JavaScript task at its runner's final message (see
   * `RunningSandbox.settled`) and hands over the rest of the sandbox's end (its exit, its
   * cgroup's removal) as this promise, which the caller must wait for before it reports the
   * sandbox gone. Absent, `runTask` resolves only once nothing of the sandbox is left.
   */
  onTeardown?: (ended: Promise<void>) => void;
  /**
   * The task's code starts only once this settled, and only if `signal` was not aborted by then:
   * the node's check for a cancel asked before the TaskInstance reached it, which aborts `signal`
   * when it finds one. A module's sandbox boots meanwhile (its runner waits for `start`), so the
   * check costs its start no round trip; a command, which runs as soon as it is let go, is not
   * spawned before. Must never reject. The wall-clock timeout starts once it settled.
   */
  startAfter?: Promise<void>;
  /**
   * A JavaScript task's sandbox exits only once this settled (or at the latest
   * `MAX_EXIT_HOLD_MS` after its final message; see `exit-hold.ts`): the node passes the moment
   * its result was handed on, so that the exit's kernel work does not compete with that. Absent,
   * the sandbox is let go at its final message.
   */
  exitAfter?: Promise<unknown>;
}

/**
 * Runs the task and resolves with its result, or rejects with a named error: `TaskFailedError`
 * (it threw or exited badly), `LimitExceededError`, `TaskTimeoutError`, the abort reason (see
 * `signal`), `RunnerProtocolError`, or an `InfrastructureError` when the node could not sandbox it.
 */
export async function runTask(options: RunTaskOptions): Promise<unknown> {
  if (options.task.module === undefined && options.startAfter !== undefined) {
    await options.startAfter;
  }
  // A run held for `startAfter` is timed from its start, not its spawn: a slow answer (Redis
  // restarting) must not use up the task's own time, as a pooled sandbox is timed from its claim.
  const timedHere = options.startAfter !== undefined;
  const launched = performance.now();
  const launch = await prepareLaunch(options, options.task);
  const sandbox = await startSandbox(options, launch, {
    timeoutMs: timedHere ? 0 : options.limits.timeoutMs,
    onLog: options.onLog ?? (() => undefined),
    onProgress: options.onProgress,
    feed: (stdin) => feedSandbox(stdin, options),
    ...(options.startAfter !== undefined ? { startAfter: options.startAfter } : {}),
    ...(options.exitAfter !== undefined ? { exitAfter: options.exitAfter } : {}),
  });
  if (timedHere) {
    // startSandbox resolved once `start` went out (or was withheld after an abort).
    const timer = setTimeout(() => sandbox.timeOut(), options.limits.timeoutMs);
    void sandbox.ending.finally(() => clearTimeout(timer));
  }
  options.onStarted?.((performance.now() - launched) / 1000);
  if (options.onTeardown === undefined) {
    return settle(outcome(await sandbox.ending));
  }
  options.onTeardown(sandbox.ending.then(() => undefined));
  return settle(outcome(await sandbox.settled));
}

/** Starts the runner (returns the remover of its cancel listener), or gives a command its input. */
function feedSandbox(stdin: Writable, options: RunTaskOptions): () => void {
  if (options.task.module === undefined) {
    feedCommand(stdin, options.input);
    return () => undefined;
  }
  const { instanceId, attempt, input } = options;
  const env = options.secrets !== undefined ? { env: { ...options.secrets } } : {};
  return startRunner(stdin, { instanceId, attempt, module: options.task.module, input, ...env }, options.signal);
}

/** The result, or the error thrown. */
export function settle(ending: Outcome): unknown {
  if ('error' in ending) {
    throw ending.error;
  }
  return ending.result;
}
