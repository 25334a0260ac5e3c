/**
 * Starts the sandbox process (prlimit → bwrap, or the bare task in development mode) in its own
 * session and process group. A terminal's Ctrl-C sends SIGINT to its whole foreground process
 * group: in the node's group, bwrap would die of it and take the task down with it, where the
 * node means to drain. Detached, only the node decides the sandbox's fate: its kill ladder
 * (SIGTERM, then SIGKILL after a grace period, on timeout or abort) signals bwrap, the sandbox
 * dies with bwrap (`--die-with-parent`, own pid namespace) and the cgroup is killed when bwrap exits.
 *
 * execa does not kill a detached subprocess when the node exits, so `killOnExit` does. A node
 * killed by a signal it does not handle (or SIGKILL) runs no exit hook; then bwrap's
 * `--die-with-parent` takes its sandbox down, except in the start-up window before the sandbox is
 * let go (`cgroup/attach.ts`).
 *
 * When bwrap exits, whatever is left of its process group is SIGKILLed: a sandbox child that bwrap
 * cloned but had not let go yet (bwrap killed on a cancel before it reported the child's pid) is
 * still in that group, outside any cgroup, with `--die-with-parent` not yet armed, and holds the
 * node's pipes open. The group cannot be reused while such a member lives, and a group with no
 * member left makes the kill a no-op (ESRCH).
 */
import type { Readable, Writable } from 'node:stream';

import { execa, type Options, type ResultPromise } from 'execa';

import { sandboxSyncStdio, type StdioArray } from './cgroup/attach.js';
import { spawnWithSeccomp } from './seccomp.js';
import { feedSecretArgs, SECRET_ARGS_FD, withSecretArgsStdio } from './secret-args.js';
import type { SandboxStreams } from './stream-capture.js';

const KILL_GRACE_MS = 2000;

export interface SpawnOptions {
  file: string;
  args: string[];
  /** A JavaScript task: fd 3 is the runner's protocol pipe. */
  isModule: boolean;
  /** Under bwrap: the sync pipes of `attach.ts` are added and the sandbox user applies. */
  sandboxed: boolean;
  /** Environment of the spawned process (bwrap's own is empty: it sets the task's). */
  env: Record<string, string>;
  cwd?: string;
  timeoutMs: number;
  signal?: AbortSignal;
  user?: { uid: number; gid: number };
  /** bwrap's `--args` input (`secret-args.ts`): piped at `SECRET_ARGS_FD`, never on the command line. */
  secretArgs?: Uint8Array;
  /** bwrap was given `--seccomp SECCOMP_FD`: the filter's descriptor goes there (`seccomp.ts`). */
  seccomp?: boolean;
}

/** Spawns the sandbox in its own process group, with every stream a pipe. */
export function spawnSandbox(options: SpawnOptions): ResultPromise {
  const baseStdio: StdioArray = options.isModule ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe'];
  const syncStdio = options.sandboxed ? sandboxSyncStdio(baseStdio) : baseStdio;
  const pipes = options.secretArgs !== undefined ? withSecretArgsStdio(syncStdio) : syncStdio;
  return options.seccomp === true
    ? spawnWithSeccomp(pipes, (stdio) => spawned(options, stdio))
    : spawned(options, pipes);
}

function spawned(options: SpawnOptions, stdio: ReadonlyArray<string | number>): ResultPromise {
  const subprocess = execa(options.file, options.args, {
    // execa types a descriptor as 3 to 9 only; any open one works.
    stdio: stdio as Options['stdio'],
    buffer: false,
    reject: false,
    extendEnv: false,
    env: options.env,
    cwd: options.cwd,
    timeout: options.timeoutMs,
    killSignal: 'SIGTERM',
    forceKillAfterDelay: KILL_GRACE_MS,
    cancelSignal: options.signal,
    detached: true,
    ...(options.sandboxed ? options.user : {}),
  });
  if (options.secretArgs !== undefined) {
    feedSecretArgs((subprocess.stdio as readonly unknown[])[SECRET_ARGS_FD], options.secretArgs);
  }
  const group = subprocess.pid;
  subprocess.once('exit', () => killGroup(group));
  return subprocess;
}

function killGroup(group: number | undefined): void {
  if (group === undefined) {
    return;
  }
  try {
    process.kill(-group, 'SIGKILL');
  } catch {
    // ESRCH: nothing left in the group.
  }
}

/** The streams of a spawned sandbox; every one of them is a pipe (see `spawnSandbox`). */
export function sandboxStreams(subprocess: ResultPromise, isModule: boolean): SandboxStreams {
  return {
    stdin: subprocess.stdin as Writable,
    stdout: subprocess.stdout as Readable,
    stderr: subprocess.stderr as Readable,
    protocol: isModule ? subprocess.stdio[3] : undefined,
  };
}

const running = new Set<ResultPromise>();
const killAll = (): void => running.forEach((subprocess) => subprocess.kill('SIGKILL'));

/**
 * SIGKILLs `subprocess` if the node exits while it runs; returns the undo. One `exit` listener
 * serves every running sandbox, and it is removed when none runs.
 */
export function killOnExit(subprocess: ResultPromise): () => void {
  if (running.size === 0) {
    process.on('exit', killAll);
  }
  running.add(subprocess);
  return () => {
    if (running.delete(subprocess) && running.size === 0) {
      process.off('exit', killAll);
    }
  };
}
