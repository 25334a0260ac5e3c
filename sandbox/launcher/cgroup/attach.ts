/**
 * Puts a bubblewrap sandbox into its TaskInstance cgroup before any task code runs.
 *
 * The race: bwrap clones the sandbox at once, so writing bwrap's pid to `cgroup.procs` after
 * spawn misses the sandbox, and writing the sandbox's pid later lets the task fork first. The
 * recipe (bwrap 0.8, proven in test/sandbox/cgroup.test.ts):
 *
 * 1. bwrap gets two extra pipes, `--info-fd 4 --block-fd 5`. Its outer (monitor) process writes
 *    `{"child-pid": N, …}` to fd 4 right after clone(), then closes it.
 * 2. The sandbox process N sets up mounts and namespaces, then blocks on read(fd 5) BEFORE it
 *    forks bwrap's pid 1 and the task (bubblewrap.c: `opt_block_fd` is read right after
 *    `drop_privs`, before the `fork()` for pid 1 and before `execvp`).
 * 3. The node moves N into the cgroup, then walks N's descendants (none in practice; a setuid
 *    bwrap's set-up helper would be one) top-down, each read after its parent moved, so no
 *    process forked meanwhile can be missed.
 * 4. The node writes one byte to fd 5; N forks pid 1 and the task, which inherit the cgroup
 *    (with `--as-pid-1`, N is pid 1 and execs the task itself).
 *
 * What the task sees: bwrap closes the info fd in the sandbox right after clone() and the block
 * fd right after reading it, so neither is open in the task (nor in pid 1, which closes all
 * but stdio). Both stay open only in bwrap's monitor, outside the sandbox. Any other descriptor
 * the node itself inherited without O_CLOEXEC does leak into the sandbox (bwrap passes the
 * command every fd but its own); the node must not hold such fds when it spawns bwrap.
 *
 * Residual risk: bwrap reads the block fd until one byte OR end-of-file. If the node dies
 * between spawn and step 4 its end of fd 5 closes, the sandbox starts unconfined, and pid 1's
 * parent-death signal is armed too late to fire; rlimits (`rlimits.ts`) still apply.
 *
 * Without cgroups (`mode: 'none'`) the same fds are used and the sandbox is unblocked at once,
 * so the argv and stdio never depend on the host.
 */
import { Readable, Writable } from 'node:stream';

import { IllegalStateError, SandboxUnavailableError } from '../../../lib/core/errors.js';
import { errnoCode } from './fs.js';
import { childPids } from './process-tree.js';
import type { TaskCgroup } from './task-cgroup.js';

export interface SandboxSyncFds {
  /** Where bwrap reports the sandbox's pid (`--info-fd`). */
  infoFd: number;
  /** What the sandbox waits on before it starts the task (`--block-fd`). */
  blockFd: number;
}

/** fd 3 is the runner protocol pipe of JavaScript tasks; 4 and 5 follow it. */
export const SANDBOX_SYNC_FDS: Readonly<SandboxSyncFds> = { infoFd: 4, blockFd: 5 };

export type SimpleStdio = 'pipe' | 'ignore' | 'inherit' | 'overlapped';
/** An execa/Node `stdio` array: stdin, stdout, stderr, then extra fds. */
export type StdioArray = [SimpleStdio, SimpleStdio, SimpleStdio, ...SimpleStdio[]];

/** The process `attachSandbox` needs: an execa subprocess (or Node ChildProcess) of bwrap. */
export interface SandboxSubprocess {
  readonly stdio: readonly unknown[];
  kill(signal?: NodeJS.Signals): boolean;
}

export interface AttachedSandbox {
  /** Host pid of the sandbox's first process, its pid 1: bwrap's init, or the runner (`--as-pid-1`). */
  childPid: number;
  /** Host pids moved into the cgroup, `childPid` first; empty without a cgroup. */
  movedPids: number[];
}

/** The bwrap flags that report the sandbox's pid and hold it until `attachSandbox` releases it. */
export function sandboxSyncArgs(fds: SandboxSyncFds = SANDBOX_SYNC_FDS): string[] {
  return ['--info-fd', String(fds.infoFd), '--block-fd', String(fds.blockFd)];
}

/** `stdio` plus a pipe at each sync fd; unused fds in between are left closed (`'ignore'`). */
export function sandboxSyncStdio(stdio: Readonly<StdioArray>, fds: SandboxSyncFds = SANDBOX_SYNC_FDS): StdioArray {
  const last = Math.max(fds.infoFd, fds.blockFd);
  if (fds.infoFd === fds.blockFd || Math.min(fds.infoFd, fds.blockFd) < stdio.length) {
    throw new IllegalStateError(
      `the sync fds ${fds.infoFd} and ${fds.blockFd} must be distinct and beyond the ${stdio.length} stdio entries`,
    );
  }
  const result: StdioArray = [...stdio];
  while (result.length <= last) {
    result.push('ignore');
  }
  result[fds.infoFd] = 'pipe';
  result[fds.blockFd] = 'pipe';
  return result;
}

/**
 * Waits for bwrap to report the sandbox's pid, moves the sandbox into `cgroup` (when given),
 * then lets the task start. Resolves undefined when bwrap exited before creating the sandbox
 * (its exit status and stderr say why). If the cgroup refuses the sandbox, the sandbox and bwrap
 * are SIGKILLed before the error is thrown, so no task ever runs outside its cgroup.
 */
export async function attachSandbox(
  subprocess: SandboxSubprocess,
  fds: SandboxSyncFds,
  cgroup: TaskCgroup | undefined,
  /**
   * Asked right before the task is let go. When it says no (the run was cancelled or bwrap was
   * killed meanwhile), the waiting sandbox is killed instead: bwrap arms `--die-with-parent` in
   * the sandbox only after the block fd, so a sandbox whose bwrap died while it waited would
   * otherwise start its task on its own, unsupervised.
   */
  shouldStart: () => boolean = () => true,
  /** Runs once the sandbox is in its cgroup, before it is let go; if it throws, the sandbox is killed. */
  beforeStart?: (sandboxPid: number) => Promise<void>,
): Promise<AttachedSandbox | undefined> {
  const { block, childPid } = await readSandboxPid(subprocess, fds);
  if (childPid === undefined) {
    return undefined;
  }
  const movedPids: number[] = [];
  if (cgroup !== undefined) {
    try {
      await cgroup.addProcess(childPid);
      movedPids.push(childPid);
      for (let i = 0; i < movedPids.length; i += 1) {
        for (const child of childPids(movedPids[i] ?? 0)) {
          await addIfAlive(cgroup, child, movedPids);
        }
      }
    } catch (error) {
      // Kill the waiting sandbox first: closing fd 5 alone would let it start (EOF unblocks it).
      signalQuietly(childPid);
      subprocess.kill('SIGKILL');
      block.destroy();
      throw error;
    }
  }
  await beforeStartOrKill(beforeStart, childPid, subprocess, block);
  if (!shouldStart()) {
    // Still blocked on fd 5, so `childPid` is certainly this sandbox and alive.
    signalQuietly(childPid);
    subprocess.kill('SIGKILL');
    block.destroy();
    return { childPid, movedPids };
  }
  block.end(Buffer.of(1));
  return { childPid, movedPids };
}

/**
 * bwrap's block pipe and the sandbox's pid, once bwrap reported it; `childPid` is undefined (and
 * the pipe destroyed) when bwrap exited before making the sandbox. On a garbled report bwrap is
 * SIGKILLed and the error thrown. @internal Shared with `attach-overlapped.ts`.
 */
export async function readSandboxPid(
  subprocess: SandboxSubprocess,
  fds: SandboxSyncFds,
): Promise<{ block: Writable; childPid: number | undefined }> {
  const info = subprocess.stdio[fds.infoFd];
  const block = subprocess.stdio[fds.blockFd];
  if (!(info instanceof Readable) || !(block instanceof Writable)) {
    throw new IllegalStateError(
      `bwrap was spawned without pipes at fds ${fds.infoFd} and ${fds.blockFd}; use sandboxSyncStdio()`,
    );
  }
  block.on('error', () => undefined); // EPIPE when bwrap died meanwhile
  let childPid: number | undefined;
  try {
    childPid = parseChildPid(await readAll(info), fds.infoFd);
  } catch (error) {
    subprocess.kill('SIGKILL');
    block.destroy();
    throw error;
  }
  if (childPid === undefined) {
    block.destroy();
  }
  return { block, childPid };
}

/** Runs `beforeStart`; if it throws, kills the waiting sandbox and bwrap first (as a refused cgroup does). */
async function beforeStartOrKill(
  beforeStart: ((sandboxPid: number) => Promise<void>) | undefined,
  childPid: number,
  subprocess: SandboxSubprocess,
  block: Writable,
): Promise<void> {
  try {
    await beforeStart?.(childPid);
  } catch (error) {
    signalQuietly(childPid);
    subprocess.kill('SIGKILL');
    block.destroy();
    throw error;
  }
}

/** Everything bwrap writes to the info fd; it closes the fd right after the one JSON object. */
function readAll(stream: Readable): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const finish = (): void => {
      stream.off('data', onData);
      resolve(text);
    };
    const onData = (chunk: Buffer | string): void => {
      text += String(chunk);
      if (text.length > 65_536) {
        stream.destroy(); // not bwrap's report; parseChildPid rejects it
      }
    };
    stream.on('data', onData);
    stream.once('end', finish);
    stream.once('close', finish);
    stream.once('error', finish);
  });
}

function parseChildPid(text: string, fd: number): number | undefined {
  if (text.trim() === '') {
    return undefined;
  }
  let pid: unknown;
  try {
    pid = (JSON.parse(text) as Record<string, unknown>)['child-pid'];
  } catch {
    pid = undefined;
  }
  if (!Number.isSafeInteger(pid) || (pid as number) <= 1) {
    throw new SandboxUnavailableError(
      `Expected bwrap to report {"child-pid": <pid>} on fd ${fd}, got ${JSON.stringify(text.slice(0, 200))}`,
    );
  }
  return pid as number;
}

/** Moves `pid` and records it in `moved`; a process that exited meanwhile (ESRCH) needs no cgroup. @internal */
export async function addIfAlive(cgroup: TaskCgroup, pid: number, moved: number[]): Promise<void> {
  try {
    await cgroup.addProcess(pid);
    moved.push(pid);
  } catch (error) {
    if (errnoCode(error) !== 'ESRCH') {
      throw error;
    }
  }
}

/** SIGKILLs `pid` unless it is gone already. @internal */
export function signalQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (error) {
    if (errnoCode(error) !== 'ESRCH') {
      throw error;
    }
  }
}
