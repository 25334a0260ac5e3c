/**
 * Runs one TaskInstance in a fresh bubblewrap sandbox and returns its result. The process is
 * never reused: one sandbox, one TaskInstance. JavaScript tasks run under the in-sandbox
 * runner, which speaks the protocol in `../protocol.ts` over stdin and fd 3; command tasks get
 * their input as JSON on stdin and print their JSON result on stdout.
 *
 * The parts: `spawn-sandbox.ts` starts the sandbox in its own process group, `stream-capture.ts`
 * reads its streams, `monitor.ts` puts it in its cgroup and watches the counters, and
 * `outcome.ts` turns the way it ended into a result or an error.
 *
 * Termination: on timeout or abort execa sends SIGTERM to bwrap, which takes the whole sandbox
 * down with it (`--die-with-parent`, own pid namespace: daemons that called setsid die too),
 * then SIGKILL after a grace period.
 */
import { randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { SandboxUnavailableError, TaskFailedError } from '../../lib/core/errors.js';
import type { CompiledTaskLimits } from '../../lib/core/limits.js';
import { buildBwrapArgs, PACKAGE_MOUNT, RUNTIME_MOUNT, sandboxNodePath } from './bwrap-args.js';
import { sandboxSyncArgs } from './cgroup/attach.js';
import type { CgroupSupport } from './cgroup/support.js';
import { createTaskCgroup, type TaskCgroup } from './cgroup/task-cgroup.js';
import { monitorSandbox } from './monitor.js';
import { abortError, type LimitHit, type Outcome, outcome } from './outcome.js';
import { prlimitArgs } from './rlimits.js';
import { killOnExit, sandboxStreams, spawnSandbox } from './spawn-sandbox.js';
import { captureStreams, feedCommand, type SandboxStreams, startRunner } from './stream-capture.js';

/** The compiled `sandbox/` folder, mounted read-only into every sandbox. */
const RUNTIME_DIR = fileURLToPath(new URL('..', import.meta.url));
const NODE_BINARY = realpathSync(process.execPath);
const DEFAULT_MAX_RESULT_BYTES = 16 * 1024 * 1024;
/** How long the streams may stay open after the sandbox exited (see `StreamCapture.ended`). */
const STREAM_END_GRACE_MS = 2000;

/** What to start in the sandbox: a JavaScript module under the runner, or a command's argv. */
export interface TaskEntry {
  module?: string;
  command?: readonly string[];
}

export interface RunTaskOptions {
  packageDir: string;
  task: TaskEntry;
  input: unknown;
  instanceId: string;
  attempt: number;
  /** The limits that apply (see `lib/core/limits.ts`). */
  limits: CompiledTaskLimits;
  /** Absolute path of bwrap; `undefined` runs the task WITHOUT a sandbox (development only). */
  bwrap: string | undefined;
  /** Absolute path of util-linux prlimit, which applies the rlimits. Required with `bwrap`. */
  prlimit?: string;
  /**
   * Host user the sandbox runs as. bwrap maps the task's uid 65534 to the user that starts it, so
   * a node running as root must start it as an unprivileged user, or the task is the host's root
   * for the kernel (sysctls, files of mounts). @defaultValue the node's own user
   */
  sandboxUser?: { uid: number; gid: number };
  /** The runner folder mounted at `/opt/tydra` (see `installRuntime`). @defaultValue this install's `sandbox/` */
  runtimeDir?: string;
  /** How TaskInstance cgroups are made on this host (`detectCgroups`); absent or none: rlimits only. */
  cgroups?: CgroupSupport;
  /**
   * Aborting it kills the sandbox (SIGTERM, then SIGKILL after a grace period) and `runTask`
   * rejects with `signal.reason` itself when that is an `Error`: pass a typed reason (such as
   * `TaskCancelledError`, or the node's own shutdown error) and tell the endings apart with
   * `instanceof`, never by message. Any other reason rejects with `TaskFailedError('cancelled')`.
   * The same holds when the signal is already aborted at the call. A limit broken or the
   * timeout reached before the abort still wins: the run rejects with that error instead.
   */
  signal?: AbortSignal;
  onProgress?: (value: number | Record<string, unknown>) => void;
  /** Every log line: the task's stdout and stderr (prefixed `[stdout] ` / `[stderr] `) and `ctx.log`. */
  onLog?: (line: string) => void;
  /** Largest result (JSON bytes). @defaultValue 16 MiB */
  maxResultBytes?: number;
}

/**
 * Runs the task and resolves with its result, or rejects with a named error: `TaskFailedError`
 * (it threw or exited badly), `LimitExceededError`, `TaskTimeoutError`, the abort reason (see
 * `signal`), `RunnerProtocolError`, or an `InfrastructureError` when the node could not sandbox it.
 */
export async function runTask(options: RunTaskOptions): Promise<unknown> {
  const { instanceId, bwrap, limits } = options;
  const isModule = options.task.module !== undefined;
  const cgroups =
    bwrap !== undefined && options.cgroups !== undefined && options.cgroups.mode !== 'none'
      ? options.cgroups
      : undefined;
  const command = taskCommand(options, cgroups !== undefined);
  const env = {
    TYDRA_INSTANCE_ID: instanceId,
    TYDRA_ATTEMPT: String(options.attempt),
    TYDRA_PACKAGE_DIR: bwrap === undefined ? options.packageDir : PACKAGE_MOUNT,
  };
  if (command.length === 0) {
    throw new TaskFailedError('Expected a command to run, got an empty one', instanceId);
  }
  if (bwrap === undefined) {
    const [file = '', ...args] = command;
    const hostEnv = { PATH: process.env.PATH ?? '', HOME: '/tmp', ...env };
    return supervise(options, { file, args, isModule, env: hostEnv, cgroup: undefined });
  }
  if (options.prlimit === undefined) {
    throw new SandboxUnavailableError('Expected the path of prlimit to run a sandboxed task, got none');
  }
  const rlimits = prlimitArgs({
    cpuSeconds: Math.max(1, Math.ceil(limits.cpuMs / 1000)),
    openFiles: limits.openFiles,
    fileSizeBytes: limits.fileSizeBytes,
    core: 0,
    // Without a cgroup the address-space rlimit is the memory fallback. Not for JavaScript: V8
    // reserves far more address space than it uses; the heap flag above bounds it instead.
    ...(cgroups === undefined && !isModule ? { addressSpaceBytes: limits.memoryBytes } : {}),
  });
  const mounts = {
    packageDir: options.packageDir,
    runtimeDir: options.runtimeDir ?? RUNTIME_DIR,
    nodeBinary: NODE_BINARY,
    scratchBytes: limits.scratchBytes,
  };
  const args = [...rlimits, bwrap, ...buildBwrapArgs(mounts, env, command, sandboxSyncArgs())];
  // One cgroup per TaskInstance, made before the sandbox and joined by it before the task runs.
  const cgroup =
    cgroups === undefined
      ? undefined
      : await createTaskCgroup(cgroups, `task-${randomUUID()}`, { memoryBytes: limits.memoryBytes, pids: limits.pids });
  try {
    return await supervise(options, { file: options.prlimit, args, isModule, env: {}, cgroup });
  } finally {
    // Whatever happened, nothing of the task survives it, and its cgroup goes.
    await cgroup?.remove().catch(() => undefined);
  }
}

/** The argv started in the sandbox: node and the runner for a module, else the task's command. */
function taskCommand(options: RunTaskOptions, withCgroup: boolean): readonly string[] {
  const { task, bwrap } = options;
  if (task.module === undefined) {
    return task.command ?? [];
  }
  return [
    bwrap === undefined ? NODE_BINARY : sandboxNodePath(NODE_BINARY),
    '--disable-proto=delete',
    // Without a cgroup, V8's heap limit is the memory limit of a JavaScript task (V8 reserves
    // too much address space for RLIMIT_AS). With one, the cgroup bounds every process, and
    // the flag is left out: it made a sandboxed start about 10 ms slower here.
    ...(withCgroup ? [] : [`--max-old-space-size=${heapMiB(options.limits.memoryBytes)}`]),
    `${bwrap === undefined ? RUNTIME_DIR : RUNTIME_MOUNT}/runner/main.js`,
  ];
}

/** Starts the runner (returns the remover of its cancel listener), or gives a command its input. */
function feedSandbox(stdin: SandboxStreams['stdin'], options: RunTaskOptions): () => void {
  if (options.task.module === undefined) {
    feedCommand(stdin, options.input);
    return () => undefined;
  }
  const { instanceId, attempt, input } = options;
  return startRunner(stdin, { instanceId, attempt, module: options.task.module, input }, options.signal);
}

interface Launch {
  file: string;
  args: string[];
  isModule: boolean;
  /** Environment of the spawned process (bwrap's own is empty: it sets the task's). */
  env: Record<string, string>;
  cgroup: TaskCgroup | undefined;
}

/** Spawns the sandbox, feeds it, watches its streams and limits, and turns its end into a result or an error. */
async function supervise(options: RunTaskOptions, launch: Launch): Promise<unknown> {
  const { instanceId, bwrap, limits, signal } = options;
  // Aborted before the spawn (while the node fetched the package or made the cgroup): an
  // 'abort' listener added now would never fire, so nothing would stop the sandbox.
  if (signal?.aborted) {
    throw abortError(signal.reason, instanceId);
  }
  const subprocess = spawnSandbox({
    ...launch,
    sandboxed: bwrap !== undefined,
    cwd: bwrap === undefined ? options.packageDir : undefined,
    timeoutMs: limits.timeoutMs,
    signal,
    user: options.sandboxUser,
  });
  const forgetOnExit = killOnExit(subprocess);
  let limitHit: LimitHit | undefined;
  const stop = (hit?: LimitHit): void => {
    limitHit ??= hit;
    subprocess.kill('SIGTERM');
  };
  const streams = sandboxStreams(subprocess, launch.isModule);
  const maxResultBytes = options.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES;
  const capture = captureStreams(streams, {
    outputBytes: limits.outputBytes,
    maxResultBytes,
    onLog: options.onLog ?? (() => undefined),
    onProgress: options.onProgress,
    onStop: stop,
  });
  const forgetCancel = feedSandbox(streams.stdin, options);
  try {
    // Let the sandbox start only once it is inside its cgroup; then watch the cgroup's counters.
    const shouldStart = (): boolean =>
      !signal?.aborted && subprocess.exitCode === null && subprocess.signalCode === null && limitHit === undefined;
    const monitor =
      bwrap === undefined ? undefined : await monitorSandbox(subprocess, launch.cgroup, limits, shouldStart, stop);
    const result = await subprocess;
    // Everything the task wrote is read and counted before its ending is judged.
    await capture.ended(STREAM_END_GRACE_MS);
    // Not `limitHit ??= await …`: that would skip stop(), and its timer would outlive the run.
    const finalHit = await monitor?.stop();
    limitHit ??= finalHit;
    return settle(
      outcome({
        ...capture.output,
        instanceId,
        limits,
        maxResultBytes,
        sandboxed: bwrap !== undefined,
        kind: launch.isModule ? 'module' : 'command',
        setupError: monitor?.setupError,
        limitHit,
        timedOut: result.timedOut,
        aborted: result.isCanceled,
        abortReason: signal?.reason,
        exitCode: result.exitCode,
        signal: result.signal,
      }),
    );
  } finally {
    forgetCancel();
    forgetOnExit();
  }
}

/** The V8 heap limit for a memory limit: three quarters of it, leaving room for the rest. */
function heapMiB(memoryBytes: number): number {
  return Math.max(16, Math.floor((memoryBytes * 0.75) / (1024 * 1024)));
}

function settle(ending: Outcome): unknown {
  if ('error' in ending) {
    throw ending.error;
  }
  return ending.result;
}
