/**
 * One running sandbox, supervised: spawned in its own process group (`spawn-sandbox.ts`), its
 * streams read (`stream-capture.ts`), put in its cgroup and watched (`monitor.ts`). `ending`
 * describes how it ended, as plain data for `outcome.ts`, once it exited, its streams are read
 * and its counters checked; by then its cgroup is removed too. A task waits for that ending at
 * once; a long-lived work sandbox keeps the handle and talks to it meanwhile.
 */
import type { Readable, Writable } from 'node:stream';

import type { ResultPromise } from 'execa';

import { type ExitAfter, holdExit } from './exit-hold.js';
import type { Launch, SandboxOptions } from './launch.js';
import { monitorSandbox, type SandboxMonitor } from './monitor.js';
import { abortError, type LimitHit, type SandboxEnding } from './outcome.js';
import type { PhaseRunnerMessage } from './runner-message.js';
import { killOnExit, sandboxStreams, spawnSandbox } from './spawn-sandbox.js';
import { captureStreams, type StreamCapture } from './stream-capture.js';

const DEFAULT_MAX_RESULT_BYTES = 16 * 1024 * 1024;
/** How long the streams may stay open after the sandbox exited (see `StreamCapture.ended`). */
const STREAM_END_GRACE_MS = 2000;

/** How the caller talks to the sandbox. */
export interface SandboxIo {
  /** The wall-clock limit execa enforces; 0 when the caller times the sandbox itself (`timeOut`). */
  timeoutMs: number;
  onLog: (line: string) => void;
  onProgress?: (value: number | Record<string, unknown>) => void;
  /** See `CaptureOptions.onMessage`. */
  onMessage?: (message: PhaseRunnerMessage) => void;
  /** See `CaptureOptions.onStdoutLine`. */
  onStdoutLine?: (line: string) => void;
  /** Writes the first input; returns what to undo once the sandbox ended (e.g. a listener). */
  feed: (stdin: Writable) => () => void;
  /** See `CaptureOptions.onReady`. */
  onReady?: () => void;
  /**
   * What `feed` waits for, while the sandbox boots: see `RunTaskOptions.startAfter`. Never
   * rejects; once it settled, `feed` runs only if `signal` is still not aborted.
   */
  startAfter?: Promise<void>;
  /** A pooled sandbox's claim: see `monitorSandbox`'s `watchFrom`. */
  watchFrom?: Promise<number>;
  /** What the exit waits for after the final message: see `RunTaskOptions.exitAfter`. */
  exitAfter?: Promise<unknown>;
}

export interface RunningSandbox {
  readonly stdin: Writable;
  readonly stdout: Readable;
  /** True once the process exited. */
  readonly exited: boolean;
  /** Resolves when the process exited (its streams may still hold data). */
  readonly exit: Promise<void>;
  /** Why the sandbox could not be put in its cgroup (it was killed at once), if so. */
  readonly setupError: Error | undefined;
  /** Stops it (SIGTERM, then SIGKILL): at a broken limit, or without one at a protocol error. */
  stop(hit?: LimitHit): void;
  /** Stops it as timed out: for callers that time it themselves (`timeoutMs: 0`). */
  timeOut(): void;
  /**
   * For a JavaScript task, how it ended as judged at the runner's final message, without waiting
   * for its exit (see `judgeAtFinal`); else, or when it exits without one, as judged at its exit.
   * Never rejects. A caller that settles on it must still wait for `ending` before it reports the
   * sandbox gone.
   */
  readonly settled: Promise<SandboxEnding>;
  /** How it ended, judged at its exit, once nothing of it is left (cgroup, network); never rejects. */
  readonly ending: Promise<SandboxEnding>;
  /**
   * What a JavaScript sandbox's exit waits for once its final message came (`exit-hold.ts`): by
   * default `SandboxIo.exitAfter`, or nothing. For a pooled sandbox's claim: call it before
   * `start` goes out.
   */
  readonly exitAfter: ExitAfter;
}

/** What is known of a sandbox while it runs. */
interface SandboxState {
  limitHit: LimitHit | undefined;
  timedOut: boolean;
  exited: boolean;
}

/** Removes what `prepareLaunch` made for the sandbox: its cgroup and its network; gives its user back. */
async function releaseLaunch(launch: Launch): Promise<void> {
  try {
    await launch.cgroup?.remove().catch(() => undefined);
    await launch.network?.close();
  } finally {
    launch.user?.release();
  }
}

/**
 * Spawns the sandbox; should the spawn throw (out of descriptors for the seccomp filter's, say),
 * what was made for it goes first: nothing else would release it.
 */
function spawnOrRelease(
  launch: Launch,
  rest: { cwd: string | undefined; timeoutMs: number; signal: AbortSignal | undefined },
): ReturnType<typeof spawnSandbox> {
  try {
    return spawnSandbox({ ...launch, ...rest, user: launch.user?.user });
  } catch (error) {
    void releaseLaunch(launch).catch(() => undefined);
    throw error;
  }
}

/** Resolves when the sandbox process exits, marking `state.exited` first. */
function exitOf(subprocess: ResultPromise, state: SandboxState): Promise<void> {
  return new Promise<void>((resolve) =>
    subprocess.once('exit', () => {
      state.exited = true;
      resolve();
    }),
  );
}

/**
 * Spawns `launch` and resolves once the sandbox is in its cgroup and let go. Owns `launch.cgroup`
 * from the call: it is removed when the sandbox ended, or at once if it never starts.
 */
export async function startSandbox(options: SandboxOptions, launch: Launch, io: SandboxIo): Promise<RunningSandbox> {
  const { signal, limits } = options;
  // Aborted before the spawn (while the node fetched the package or made the cgroup): an
  // 'abort' listener added now would never fire, so nothing would stop the sandbox.
  if (signal?.aborted) {
    await releaseLaunch(launch);
    throw abortError(signal.reason, options.instanceId);
  }
  const subprocess = spawnOrRelease(launch, {
    cwd: launch.sandboxed ? undefined : options.packageDir,
    timeoutMs: io.timeoutMs,
    signal,
  });
  const forgetOnExit = killOnExit(subprocess);
  const state: SandboxState = { limitHit: undefined, timedOut: false, exited: false };
  const exit = exitOf(subprocess, state);
  const stop = stopper(subprocess, state);
  const streams = sandboxStreams(subprocess, launch.isModule);
  const maxResultBytes = options.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES;
  const capture = captureStreams(streams, { ...io, outputBytes: limits.outputBytes, maxResultBytes, onStop: stop });
  void exit.then(() => capture.exited());
  const exitAfter = holdExit(streams.protocol, capture.final, exit, () => stop(), io.exitAfter);
  // No task code before the sandbox is in its cgroup (a runner without a network boots while it
  // is moved, and gets `start` from the feed below, after); then watch the cgroup's counters.
  const shouldStart = (): boolean =>
    !signal?.aborted && subprocess.exitCode === null && subprocess.signalCode === null && state.limitHit === undefined;
  const monitor = launch.sandboxed
    ? await monitorSandbox(
        subprocess,
        launch.cgroup,
        limits,
        shouldStart,
        stop,
        launch.network?.beforeStart,
        io.watchFrom,
        launch.isModule && launch.network === undefined ? 'overlapped' : 'blocking',
      )
    : undefined;
  const unfeed = await feedWhenAllowed(io, streams.stdin, signal);
  const parts = { options, launch, subprocess, capture, monitor, state, maxResultBytes };
  const judged = judge(parts).finally(() => {
    unfeed();
    forgetOnExit();
    // A feeder waiting for 'drain' on a sandbox that is gone learns it from 'close'.
    streams.stdin.destroy();
  });
  return {
    stdin: streams.stdin,
    stdout: streams.stdout,
    get exited() {
      return state.exited;
    },
    exit,
    setupError: monitor?.setupError,
    stop,
    timeOut: () => {
      state.timedOut ||= !state.exited;
      subprocess.kill('SIGTERM');
    },
    settled: launch.isModule ? Promise.race([judged, capture.final.then(() => judgeAtFinal(parts))]) : judged,
    // Whatever happened, nothing of the sandbox survives it, and its cgroup goes.
    ending: judged.finally(() => releaseLaunch(launch)),
    exitAfter,
  };
}

/** Feeds the sandbox once `startAfter` settled; not when the run was aborted meanwhile (execa is killing it). */
async function feedWhenAllowed(io: SandboxIo, stdin: Writable, signal: AbortSignal | undefined): Promise<() => void> {
  await io.startAfter;
  return signal?.aborted === true ? () => undefined : io.feed(stdin);
}

/** Stops the sandbox (SIGTERM, then execa's SIGKILL), recording the limit that made it stop. */
function stopper(subprocess: ResultPromise, state: SandboxState): (hit?: LimitHit) => void {
  return (hit) => {
    state.limitHit ??= hit;
    subprocess.kill('SIGTERM');
  };
}

interface JudgeParts {
  options: SandboxOptions;
  launch: Launch;
  subprocess: ResultPromise;
  capture: StreamCapture;
  monitor: SandboxMonitor | undefined;
  state: SandboxState;
  maxResultBytes: number;
}

/**
 * How a JavaScript sandbox ended, judged at its runner's final message instead of at its exit,
 * which saves the exit and namespace teardown (milliseconds). The runner sends that message only
 * once what the task printed went out on stdout and stderr (`runner/channel.ts`), so that output
 * already sits in the pipes: after one turn of the event loop it has been read, and an
 * unterminated last line is emitted now. The final counters are read now too. The exit itself
 * (its status, a death by signal) decides nothing for a run that has a final message
 * (`outcome.ts`), and a limit broken after the task returned is not the task's result's concern:
 * the teardown kills whatever is left.
 */
async function judgeAtFinal(parts: JudgeParts): Promise<SandboxEnding> {
  // The counters are read on libuv's threads meanwhile. Not `limitHit ??= await …`: see `judge`.
  const finalHit = parts.monitor?.stop();
  await new Promise((resolve) => setImmediate(resolve));
  parts.capture.flushLines();
  const hit = await finalHit;
  parts.state.limitHit ??= hit;
  return endingOf(parts, {
    timedOut: parts.state.timedOut,
    aborted: parts.options.signal?.aborted === true,
    exitCode: undefined,
    signal: undefined,
  });
}

/** Waits for the sandbox's end, the rest of its streams and its final counters. */
async function judge(parts: JudgeParts): Promise<SandboxEnding> {
  const { capture, monitor, state } = parts;
  const result = await parts.subprocess;
  // Everything the task wrote is read and counted before its ending is judged; the cgroup's
  // final counters are read meanwhile. Not `limitHit ??= await …`: that would skip stop(), and
  // its timer would outlive the run.
  const [, finalHit] = await Promise.all([capture.ended(STREAM_END_GRACE_MS), monitor?.stop()]);
  state.limitHit ??= finalHit;
  return endingOf(parts, {
    timedOut: state.timedOut || result.timedOut,
    aborted: result.isCanceled,
    exitCode: result.exitCode,
    signal: result.signal,
  });
}

function endingOf(
  parts: JudgeParts,
  exit: Pick<SandboxEnding, 'timedOut' | 'aborted' | 'exitCode' | 'signal'>,
): SandboxEnding {
  const { options, launch, capture, monitor, state } = parts;
  return {
    ...capture.output,
    instanceId: options.instanceId,
    limits: options.limits,
    maxResultBytes: parts.maxResultBytes,
    sandboxed: launch.sandboxed,
    kind: launch.isModule ? 'module' : 'command',
    unrecoverableExitCodes: launch.unrecoverableExitCodes,
    setupError: monitor?.setupError,
    limitHit: state.limitHit,
    ...exit,
    abortReason: options.signal?.reason,
  };
}
