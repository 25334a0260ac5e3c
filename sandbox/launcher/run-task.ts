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
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';

import { execa } from 'execa';

import { LimitExceededError, RunnerProtocolError, SandboxUnavailableError, TaskFailedError, TaskTimeoutError } from '../../lib/errors.js';
import { type CompiledTaskLimits, formatBytes } from '../../lib/task-limits.js';
import type { TaskSpec } from '../../lib/manifest.js';
import { encodeMessage, LineSplitter, type RunnerMessage } from '../protocol.js';
import { buildBwrapArgs, PACKAGE_MOUNT, RUNTIME_MOUNT, sandboxNodePath } from './bwrap-args.js';
import { parseRunnerMessage } from './runner-message.js';

/** The compiled `sandbox/` folder, mounted read-only into every sandbox. */
const RUNTIME_DIR = fileURLToPath(new URL('..', import.meta.url));
const NODE_BINARY = realpathSync(process.execPath);
const KILL_GRACE_MS = 2000;
const STDERR_TAIL_BYTES = 2048;

export interface RunTaskOptions {
  packageDir: string;
  task: TaskSpec;
  input: unknown;
  instanceId: string;
  attempt: number;
  /** The limits that apply (see `lib/task-limits.ts`). */
  limits: CompiledTaskLimits;
  /** Absolute path of bwrap; `undefined` runs the task WITHOUT a sandbox (development only). */
  bwrap: string | undefined;
  signal?: AbortSignal;
  onProgress?: (value: number | Record<string, unknown>) => void;
  onLog?: (line: string) => void;
  /** Largest result (JSON bytes). @defaultValue 16 MiB */
  maxResultBytes?: number;
}

export async function runTask(options: RunTaskOptions): Promise<unknown> {
  const { task, instanceId, bwrap, limits } = options;
  const maxResultBytes = options.maxResultBytes ?? 16 * 1024 * 1024;
  const onLog = options.onLog ?? (() => undefined);
  const isModule = task.module !== undefined;

  const packageRoot = bwrap === undefined ? options.packageDir : PACKAGE_MOUNT;
  const runtimeRoot = bwrap === undefined ? RUNTIME_DIR : RUNTIME_MOUNT;
  const command = isModule
    ? [
        bwrap === undefined ? NODE_BINARY : sandboxNodePath(NODE_BINARY),
        '--disable-proto=delete',
        // V8 reserves address space freely and grows its heap up to its own limit: keep the heap
        // under the memory limit so a hog fails with V8's clear message, not a cgroup SIGKILL.
        `--max-old-space-size=${heapMiB(limits.memoryBytes)}`,
        `${runtimeRoot}/runner/main.js`,
      ]
    : (task.command ?? []);
  const env = {
    TYDRA_INSTANCE_ID: instanceId,
    TYDRA_ATTEMPT: String(options.attempt),
    TYDRA_PACKAGE_DIR: packageRoot,
  };
  const [file, ...args] =
    bwrap === undefined
      ? command
      : [bwrap, ...buildBwrapArgs({ packageDir: options.packageDir, runtimeDir: RUNTIME_DIR, nodeBinary: NODE_BINARY, scratchBytes: limits.scratchBytes }, env, command)];
  if (file === undefined) {
    throw new TaskFailedError('Expected a command to run, got an empty one', instanceId);
  }

  const subprocess = execa(file, args, {
    stdio: isModule ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe'],
    buffer: false,
    reject: false,
    extendEnv: false,
    env: bwrap === undefined ? { PATH: process.env.PATH ?? '', HOME: '/tmp', ...env } : {},
    cwd: bwrap === undefined ? options.packageDir : undefined,
    timeout: limits.timeoutMs,
    killSignal: 'SIGTERM',
    forceKillAfterDelay: KILL_GRACE_MS,
    cancelSignal: options.signal,
  });

  let final: RunnerMessage | undefined;
  let violation: LimitExceededError | undefined;
  let protocolError: string | undefined;
  const stopWith = (error: LimitExceededError): void => {
    violation ??= error;
    subprocess.kill('SIGTERM');
  };
  const outputLimit = (stream: string): void =>
    stopWith(new LimitExceededError(`output limit exceeded (${formatBytes(limits.outputBytes)} on ${stream})`, instanceId, 'outputBytes', limits.outputBytes));

  // stderr: log lines, plus a tail for error messages.
  let stderrTail = '';
  captureLines(subprocess.stderr, limits.outputBytes, (line) => onLog(`[stderr] ${line}`), () => outputLimit('stderr'), (chunk) => {
    stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
  });

  let stdout = '';
  if (isModule) {
    captureLines(subprocess.stdout, limits.outputBytes, (line) => onLog(`[stdout] ${line}`), () => outputLimit('stdout'));
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
        stopWith(new LimitExceededError(`output limit exceeded (${formatBytes(maxResultBytes)} in one result message)`, instanceId, 'resultBytes', maxResultBytes));
      }
    });
    protocol.on('end', () => lines.flush());
    subprocess.stdin.on('error', () => undefined); // EPIPE when the task dies before reading
    subprocess.stdin.write(encodeMessage({ type: 'start', instanceId, attempt: options.attempt, module: task.module ?? '', input: options.input }));
    options.signal?.addEventListener('abort', () => subprocess.stdin.write(encodeMessage({ type: 'cancel', reason: 'cancelled' })), { once: true });
  } else {
    // A command's stdout is its result: capped by the output limit like any stream.
    subprocess.stdout.setEncoding('utf8');
    let stdoutBytes = 0;
    subprocess.stdout.on('data', (chunk: string) => {
      stdoutBytes += Buffer.byteLength(chunk);
      if (stdoutBytes > Math.min(limits.outputBytes, maxResultBytes)) {
        stdout = '';
        outputLimit('stdout');
        return;
      }
      stdout += chunk;
    });
    subprocess.stdin.on('error', () => undefined);
    subprocess.stdin.end(JSON.stringify(options.input ?? null));
  }

  const result = await subprocess;

  if (violation !== undefined) {
    throw violation;
  }
  if (result.timedOut) {
    throw new TaskTimeoutError(limits.timeoutMs);
  }
  if (result.isCanceled) {
    throw new TaskFailedError('cancelled', instanceId);
  }
  if (/JavaScript heap out of memory|Reached heap limit/.test(stderrTail) && final === undefined) {
    throw new LimitExceededError(`memory limit exceeded (${formatBytes(limits.memoryBytes)})`, instanceId, 'memoryBytes', limits.memoryBytes);
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
    throw new TaskFailedError(`task process ${ending} before returning a result${tailSuffix(stderrTail)}`, instanceId, stderrTail || undefined);
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
    throw new TaskFailedError(`Expected the command to print one JSON value on stdout, got ${JSON.stringify(text.slice(0, 200))}`, instanceId);
  }
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
function captureLines(stream: Readable, maxBytes: number, onLine: (line: string) => void, onLimit: () => void, onChunk?: (chunk: string) => void): void {
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
