/**
 * Runs one TaskInstance in a fresh bubblewrap sandbox and returns its result. The process is
 * never reused: one sandbox, one TaskInstance. JavaScript tasks run under the in-sandbox
 * runner, which speaks the protocol in `../protocol.ts` over stdin and fd 3; command tasks get
 * their input as JSON on stdin and print their JSON result on stdout.
 *
 * Termination: on timeout or abort execa sends SIGTERM to bwrap, which takes the whole sandbox
 * down with it (`--die-with-parent`, own pid namespace: daemons that called setsid die too),
 * then SIGKILL after a grace period.
 */
import { randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';

import { execa } from 'execa';

import {
  LimitExceededError,
  RunnerProtocolError,
  SandboxUnavailableError,
  TaskFailedError,
  TaskTimeoutError,
} from '../../lib/core/errors.js';
import { type CompiledTaskLimits, formatBytes, formatDuration } from '../../lib/core/limits.js';
import { encodeMessage, LineSplitter, type RunnerMessage } from '../protocol.js';
import { buildBwrapArgs, PACKAGE_MOUNT, RUNTIME_MOUNT, sandboxNodePath } from './bwrap-args.js';
import type { CgroupSupport } from './cgroup/support.js';
import {
  attachSandbox,
  SANDBOX_SYNC_FDS,
  sandboxSyncArgs,
  sandboxSyncStdio,
  type StdioArray,
} from './cgroup/attach.js';
import { signalFromExit } from './exit-signal.js';
import { prlimitArgs } from './rlimits.js';
import { createTaskCgroup, type TaskCgroup, type TaskCgroupStats } from './cgroup/task-cgroup.js';
import { parseRunnerMessage } from './runner-message.js';

/** The compiled `sandbox/` folder, mounted read-only into every sandbox. */
const RUNTIME_DIR = fileURLToPath(new URL('..', import.meta.url));
const NODE_BINARY = realpathSync(process.execPath);
const KILL_GRACE_MS = 2000;
/** How often a running sandbox's cgroup counters are read. */
const MONITOR_MS = 100;
const STDERR_TAIL_BYTES = 2048;

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
  /** The limits that apply (see `lib/task-limits.ts`). */
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
  signal?: AbortSignal;
  onProgress?: (value: number | Record<string, unknown>) => void;
  onLog?: (line: string) => void;
  /** Largest result (JSON bytes). @defaultValue 16 MiB */
  maxResultBytes?: number;
}

export async function runTask(options: RunTaskOptions): Promise<unknown> {
  const { task, instanceId, bwrap, limits } = options;
  const isModule = task.module !== undefined;
  const withCgroup = bwrap !== undefined && options.cgroups !== undefined && options.cgroups.mode !== 'none';

  const packageRoot = bwrap === undefined ? options.packageDir : PACKAGE_MOUNT;
  const runtimeRoot = bwrap === undefined ? RUNTIME_DIR : RUNTIME_MOUNT;
  const command = isModule
    ? [
        bwrap === undefined ? NODE_BINARY : sandboxNodePath(NODE_BINARY),
        '--disable-proto=delete',
        // Without a cgroup, V8's heap limit is the memory limit of a JavaScript task (V8 reserves
        // too much address space for RLIMIT_AS). With one, the cgroup bounds every process, and
        // the flag is left out: it made a sandboxed start about 10 ms slower here.
        ...(withCgroup ? [] : [`--max-old-space-size=${heapMiB(limits.memoryBytes)}`]),
        `${runtimeRoot}/runner/main.js`,
      ]
    : (task.command ?? []);
  const env = {
    TYDRA_INSTANCE_ID: instanceId,
    TYDRA_ATTEMPT: String(options.attempt),
    TYDRA_PACKAGE_DIR: packageRoot,
  };
  if (command.length === 0) {
    throw new TaskFailedError('Expected a command to run, got an empty one', instanceId);
  }
  if (bwrap === undefined) {
    const [file = '', ...args] = command;
    return supervise(options, {
      file,
      args,
      isModule,
      env: { PATH: process.env.PATH ?? '', HOME: '/tmp', ...env },
      cgroup: undefined,
    });
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
    ...(!withCgroup && !isModule ? { addressSpaceBytes: limits.memoryBytes } : {}),
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
    options.cgroups !== undefined && options.cgroups.mode !== 'none'
      ? await createTaskCgroup(options.cgroups, `task-${randomUUID()}`, {
          memoryBytes: limits.memoryBytes,
          pids: limits.pids,
        })
      : undefined;
  try {
    return await supervise(options, { file: options.prlimit, args, isModule, env: {}, cgroup });
  } finally {
    // Whatever happened, nothing of the task survives it, and its cgroup goes.
    await cgroup?.remove().catch(() => undefined);
  }
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
  const { task, instanceId, bwrap, limits } = options;
  const { isModule, cgroup } = launch;
  const maxResultBytes = options.maxResultBytes ?? 16 * 1024 * 1024;
  const onLog = options.onLog ?? (() => undefined);
  const baseStdio: StdioArray = isModule ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe'];
  // Aborted before the spawn (while the node fetched the package or made the cgroup): an
  // 'abort' listener added now would never fire, so nothing would stop the sandbox.
  if (options.signal?.aborted) {
    throw new TaskFailedError('cancelled', instanceId);
  }

  const subprocess = execa(launch.file, launch.args, {
    stdio: bwrap === undefined ? baseStdio : sandboxSyncStdio(baseStdio),
    buffer: false,
    reject: false,
    extendEnv: false,
    env: launch.env,
    cwd: bwrap === undefined ? options.packageDir : undefined,
    timeout: limits.timeoutMs,
    killSignal: 'SIGTERM',
    forceKillAfterDelay: KILL_GRACE_MS,
    cancelSignal: options.signal,
    ...(bwrap === undefined ? {} : options.sandboxUser),
  });

  // Every stdio entry of the first three is a pipe (see baseStdio); execa's types cannot see it.
  const stdin = subprocess.stdin as Writable;
  const stdoutStream = subprocess.stdout as Readable;
  const stderrStream = subprocess.stderr as Readable;

  let final: RunnerMessage | undefined;
  let violation: LimitExceededError | undefined;
  let protocolError: string | undefined;
  const stopWith = (error: LimitExceededError): void => {
    violation ??= error;
    subprocess.kill('SIGTERM');
  };
  const outputLimit = (stream: string): void =>
    stopWith(
      new LimitExceededError(
        `output limit exceeded (${formatBytes(limits.outputBytes)} on ${stream})`,
        instanceId,
        'outputBytes',
        limits.outputBytes,
      ),
    );

  // stderr: log lines, plus a tail for error messages.
  let stderrTail = '';
  captureLines(
    stderrStream,
    limits.outputBytes,
    (line) => onLog(`[stderr] ${line}`),
    () => outputLimit('stderr'),
    (chunk) => {
      stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
    },
  );

  let stdout = '';
  if (isModule) {
    captureLines(
      stdoutStream,
      limits.outputBytes,
      (line) => onLog(`[stdout] ${line}`),
      () => outputLimit('stdout'),
    );
    let logBytes = 0;
    const protocol = subprocess.stdio[3] as Readable;
    const lines = new LineSplitter(maxResultBytes, (line) => {
      const message = parseRunnerMessage(line);
      if (message === undefined) {
        protocolError ??= `Expected a runner message, got ${JSON.stringify(line.slice(0, 200))}`;
        subprocess.kill('SIGTERM');
      } else if (message.type === 'progress') {
        options.onProgress?.(message.value);
      } else if (message.type === 'log') {
        logBytes += Buffer.byteLength(message.line);
        if (logBytes > limits.outputBytes) {
          outputLimit('ctx.log');
          return;
        }
        onLog(message.line.slice(0, 16_384));
      } else {
        final ??= message;
      }
    });
    protocol.setEncoding('utf8');
    protocol.on('data', (chunk: string) => {
      if (!lines.push(chunk)) {
        stopWith(
          new LimitExceededError(
            `output limit exceeded (${formatBytes(maxResultBytes)} in one result message)`,
            instanceId,
            'resultBytes',
            maxResultBytes,
          ),
        );
      }
    });
    protocol.on('end', () => lines.flush());
    stdin.on('error', () => undefined); // EPIPE when the task dies before reading
    stdin.write(
      encodeMessage({
        type: 'start',
        instanceId,
        attempt: options.attempt,
        module: task.module ?? '',
        input: options.input,
      }),
    );
    options.signal?.addEventListener(
      'abort',
      () => stdin.write(encodeMessage({ type: 'cancel', reason: 'cancelled' })),
      { once: true },
    );
  } else {
    // A command's stdout is its result: capped by the output limit like any stream.
    stdoutStream.setEncoding('utf8');
    let stdoutBytes = 0;
    stdoutStream.on('data', (chunk: string) => {
      stdoutBytes += Buffer.byteLength(chunk);
      if (stdoutBytes > Math.min(limits.outputBytes, maxResultBytes)) {
        stdout = '';
        outputLimit('stdout');
        return;
      }
      stdout += chunk;
    });
    stdin.on('error', () => undefined);
    stdin.end(JSON.stringify(options.input ?? null));
  }

  // Let the sandbox start only once it is inside its cgroup; then watch the cgroup's counters.
  let attachError: Error | undefined;
  let monitor: NodeJS.Timeout | undefined;
  if (bwrap !== undefined) {
    // If bwrap ends (killed on cancel or timeout) while its sandbox is still being set up, the
    // sandbox may live on: whatever is in the TaskInstance's cgroup dies with it.
    subprocess.once('exit', () => void cgroup?.kill().catch(() => undefined));
    try {
      await attachSandbox(
        subprocess,
        SANDBOX_SYNC_FDS,
        cgroup,
        () =>
          !options.signal?.aborted &&
          subprocess.exitCode === null &&
          subprocess.signalCode === null &&
          violation === undefined,
      );
    } catch (error) {
      attachError = error instanceof Error ? error : new Error(String(error));
      // Never leave a sandbox blocked on its start signal until the wall-clock limit.
      subprocess.kill('SIGKILL');
    }
    if (cgroup !== undefined && attachError === undefined) {
      monitor = setInterval(() => {
        void cgroup.stats().then(
          (stats) => {
            const broken = brokenLimit(stats, limits, instanceId);
            if (broken !== undefined) {
              stopWith(broken);
              void cgroup.kill().catch(() => undefined);
            }
          },
          () => undefined,
        );
      }, MONITOR_MS);
    }
  }
  const result = await subprocess;
  clearInterval(monitor);
  if (attachError !== undefined) {
    throw attachError;
  }
  // The final counters: an OOM kill or a fork refused in the last moments counts too.
  const stats = await cgroup?.stats().catch(() => undefined);
  violation ??= stats === undefined ? undefined : brokenLimit(stats, limits, instanceId);

  if (violation !== undefined) {
    throw violation;
  }
  if (result.timedOut) {
    throw new TaskTimeoutError(limits.timeoutMs);
  }
  if (result.isCanceled) {
    throw new TaskFailedError('cancelled', instanceId);
  }
  if (final === undefined) {
    const exitSignal = signalFromExit(result.exitCode, result.signal);
    if (/JavaScript heap out of memory|Reached heap limit/.test(stderrTail)) {
      throw memoryExceeded(limits, instanceId);
    }
    if (bwrap !== undefined && exitSignal === 'SIGXCPU') {
      throw new LimitExceededError(
        `CPU time limit exceeded (${formatDuration(limits.cpuMs)})`,
        instanceId,
        'cpuMs',
        limits.cpuMs,
      );
    }
    if (bwrap !== undefined && exitSignal === 'SIGXFSZ') {
      throw new LimitExceededError(
        `file size limit exceeded (${formatBytes(limits.fileSizeBytes)})`,
        instanceId,
        'fileSizeBytes',
        limits.fileSizeBytes,
      );
    }
  }
  if (protocolError !== undefined) {
    throw new RunnerProtocolError(protocolError);
  }
  const sandboxFailure = /^bwrap: .*/m.exec(stderrTail);
  if (bwrap !== undefined && sandboxFailure && final === undefined && result.exitCode !== 0) {
    throw new SandboxUnavailableError(`sandbox set-up failed: ${sandboxFailure[0]}`);
  }
  const ending = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
  if (isModule) {
    if (final?.type === 'result') {
      return final.value;
    }
    if (final?.type === 'error') {
      throw new TaskFailedError(final.message, instanceId, final.stack ?? `${final.name}: ${final.message}`);
    }
    throw new TaskFailedError(
      `task process ${ending} before returning a result${tailSuffix(stderrTail)}`,
      instanceId,
      stderrTail || undefined,
    );
  }
  if (result.exitCode !== 0) {
    throw new TaskFailedError(`command ${ending}${tailSuffix(stderrTail)}`, instanceId, stderrTail || undefined);
  }
  const text = stdout.trim();
  if (text === '') {
    return null;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new TaskFailedError(
      `Expected the command to print one JSON value on stdout, got ${JSON.stringify(text.slice(0, 200))}`,
      instanceId,
    );
  }
}

/** A limit the cgroup's counters show broken, or undefined. */
function brokenLimit(
  stats: TaskCgroupStats,
  limits: CompiledTaskLimits,
  instanceId: string,
): LimitExceededError | undefined {
  if (stats.oomKills > 0) {
    return memoryExceeded(limits, instanceId);
  }
  if (stats.pidsLimitHits > 0) {
    // Killed at the first refused fork: a task at its process limit is a fork bomb or a bug,
    // and letting it spin until the wall-clock limit only burns the node's CPU.
    return new LimitExceededError(
      `process limit exceeded (${limits.pids} processes and threads)`,
      instanceId,
      'pids',
      limits.pids,
    );
  }
  if (stats.cpuUsageMs !== undefined && stats.cpuUsageMs > limits.cpuMs) {
    return new LimitExceededError(
      `CPU time limit exceeded (${formatDuration(limits.cpuMs)})`,
      instanceId,
      'cpuMs',
      limits.cpuMs,
    );
  }
  return undefined;
}

function memoryExceeded(limits: CompiledTaskLimits, instanceId: string): LimitExceededError {
  return new LimitExceededError(
    `memory limit exceeded (${formatBytes(limits.memoryBytes)})`,
    instanceId,
    'memoryBytes',
    limits.memoryBytes,
  );
}

function tailSuffix(stderrTail: string): string {
  const tail = stderrTail.trim().split('\n').slice(-5).join('\n').slice(-500);
  return tail ? `: ${tail}` : '';
}

/** The V8 heap limit for a memory limit: three quarters of it, leaving room for the rest. */
function heapMiB(memoryBytes: number): number {
  return Math.max(16, Math.floor((memoryBytes * 0.75) / (1024 * 1024)));
}

/**
 * Emits whole lines from `stream` (a line longer than 16 KiB is cut into pieces) and calls
 * `onLimit` once when more than `maxBytes` arrived; nothing after that is kept.
 */
function captureLines(
  stream: Readable,
  maxBytes: number,
  onLine: (line: string) => void,
  onLimit: () => void,
  onChunk?: (chunk: string) => void,
): void {
  let seen = 0;
  let over = false;
  const lines = new LineSplitter(16_384, (line) => {
    if (!over) {
      onLine(line);
    }
  });
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    if (over) {
      return;
    }
    onChunk?.(chunk);
    seen += Buffer.byteLength(chunk);
    if (seen > maxBytes) {
      over = true;
      onLimit();
      return;
    }
    if (!lines.push(chunk)) {
      lines.flush();
    }
  });
  stream.on('end', () => lines.flush());
}
