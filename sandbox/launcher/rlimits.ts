/**
 * Per-process resource limits, applied by running util-linux `prlimit` as an exec wrapper:
 * `prlimit --cpu=… -- bwrap …`. prlimit sets the limits on itself, then execs bwrap, so bwrap,
 * its pid 1 and the task inherit them. Argv only, never a shell.
 *
 * rlimits bound each process, not the sandbox: a task that forks gets a fresh CPU allowance per
 * child. The per-sandbox bounds are the cgroup (`task-cgroup.ts`) and the wall-clock timeout.
 *
 * How a limit shows up through bwrap (its pid 1 exits with the task's status, a signal
 * becoming 128 + signal number; execa then reports that exit code and no `signal`):
 * - CPU: SIGXCPU at the soft limit, SIGKILL at the hard one. Observed: exit code 152
 *   (128 + SIGXCPU 24) for a busy loop.
 * - File size: SIGXFSZ (exit code 153) for a process with the default action, but Python and
 *   Node ignore SIGXFSZ, so for them write() fails with EFBIG and the task handles (or not) the error.
 * - Open files: open() fails with EMFILE.
 * - POSIX message queues: none (RLIMIT_MSGQUEUE 0), mq_open() fails with EMFILE.
 * - Memory (cgroup OOM kill): SIGKILL, exit code 137; `stats().oomKills` tells it from a kill by
 *   another cause.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

import { describe, InvalidOptionError, SandboxUnavailableError } from '../../lib/core/errors.js';

export const PRLIMIT_PATH = '/usr/bin/prlimit';

export interface ProcessLimits {
  /** CPU seconds per process: SIGXCPU at this many, SIGKILL one second later (`--cpu=S:S+1`). */
  cpuSeconds?: number;
  /** Open file descriptors per process (`--nofile`). */
  openFiles?: number;
  /** Largest file a process may write, in bytes (`--fsize`). */
  fileSizeBytes?: number;
  /** Core dump size. Always 0: a core dump would write task memory outside the sandbox's control. */
  core?: 0;
  /**
   * Address space per process, in bytes (`--as`): the memory fallback when there is no cgroup.
   * It limits reserved virtual memory, not use: V8 and the JVM reserve far more than they touch,
   * so set it generously and also pass Node's `--max-old-space-size` to JavaScript tasks.
   */
  addressSpaceBytes?: number;
  /**
   * Processes per real uid (`--nproc`). RLIMIT_NPROC counts every process of the *real* uid on
   * the host, not of the sandbox: the sandbox's uid 65534 maps to the node's real uid. For root
   * the kernel does not enforce it at all (root's user is exempt), and for a shared uid it would
   * count unrelated processes. So it is refused when the node runs as root; the per-sandbox
   * process limit is the pids cgroup. Without cgroups use it only when the node runs as a
   * dedicated non-root user, as `tasks per node × processes per task`.
   */
  nproc?: number;
}

/** Absolute path of `prlimit`: `/usr/bin/prlimit`, else the first on PATH. */
export function findPrlimit(path = process.env.PATH ?? ''): string {
  for (const candidate of [
    PRLIMIT_PATH,
    ...path
      .split(delimiter)
      .filter((dir) => dir !== '')
      .map((dir) => join(dir, 'prlimit')),
  ]) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new SandboxUnavailableError(
    `Expected util-linux prlimit at ${PRLIMIT_PATH} or on PATH, found none; install it with: apt-get install -y util-linux`,
  );
}

/** The prlimit options for `limits`, ending with `--`; append the bwrap command after them. */
export function prlimitArgs(limits: ProcessLimits, uid = process.getuid?.()): string[] {
  const args: string[] = [];
  if (limits.cpuSeconds !== undefined) {
    const soft = checkLimit('cpuSeconds', limits.cpuSeconds, 1);
    args.push(`--cpu=${soft}:${soft + 1}`);
  }
  if (limits.openFiles !== undefined) {
    const files = checkLimit('openFiles', limits.openFiles, 1);
    args.push(`--nofile=${files}:${files}`);
  }
  if (limits.fileSizeBytes !== undefined) {
    const bytes = checkLimit('fileSizeBytes', limits.fileSizeBytes, 0);
    args.push(`--fsize=${bytes}:${bytes}`);
  }
  if (limits.addressSpaceBytes !== undefined) {
    const bytes = checkLimit('addressSpaceBytes', limits.addressSpaceBytes, 1);
    args.push(`--as=${bytes}:${bytes}`);
  }
  if (limits.nproc !== undefined) {
    const count = checkLimit('nproc', limits.nproc, 1);
    if (uid === 0) {
      throw new InvalidOptionError(
        `Expected no \`nproc\` limit when the node runs as root (RLIMIT_NPROC is per real uid and not enforced for root; the pids cgroup limits a sandbox), got ${count}`,
      );
    }
    args.push(`--nproc=${count}:${count}`);
  }
  if (limits.core !== undefined && limits.core !== 0) {
    throw new InvalidOptionError(`Expected the \`core\` limit to be 0, got ${describe(limits.core)}`);
  }
  // No POSIX message queues: their bytes are counted per host user, one budget that sandboxes
  // sharing a host user (`sandbox-users.ts`: when there are more than users) would share.
  args.push('--core=0:0', '--msgqueue=0:0', '--');
  return args;
}

function checkLimit(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new InvalidOptionError(
      `Expected the \`${name}\` limit to be an integer of at least ${min}, got ${describe(value)}`,
    );
  }
  return value;
}
