/**
 * Puts a started sandbox into its TaskInstance cgroup, lets it run, then reads the cgroup's
 * counters every 100 ms: an OOM kill, a refused fork or CPU time past the limit stops the
 * sandbox at once instead of at the wall-clock limit. Whatever is left in the cgroup dies when
 * bwrap exits.
 */
import type { CompiledTaskLimits } from '../../lib/core/limits.js';
import { attachSandbox, SANDBOX_SYNC_FDS, type SandboxSubprocess } from './cgroup/attach.js';
import { attachOverlapped } from './cgroup/attach-overlapped.js';
import type { TaskCgroup, TaskCgroupStats } from './cgroup/task-cgroup.js';
import type { LimitHit } from './outcome.js';

/** How often a running sandbox's cgroup counters are read. */
const MONITOR_MS = 100;

export interface MonitoredSubprocess extends SandboxSubprocess {
  once(event: 'exit', listener: () => void): unknown;
}

export interface SandboxMonitor {
  /** Why the sandbox could not be attached to its cgroup; it was SIGKILLed. */
  setupError?: Error;
  /** Stops the periodic reads; resolves with a limit the final counters show broken. */
  stop(): Promise<LimitHit | undefined>;
}

/**
 * Attaches the sandbox bwrap is holding on its block fd, releases it when `shouldStart` still
 * says yes, and watches its cgroup (when there is one), calling `onLimit` at the first broken limit.
 */
export async function monitorSandbox(
  subprocess: MonitoredSubprocess,
  cgroup: TaskCgroup | undefined,
  limits: CompiledTaskLimits,
  shouldStart: () => boolean,
  onLimit: (hit: LimitHit) => void,
  /** Set-up of the sandbox's namespaces by the node before its task starts (its network's). */
  beforeStart?: (sandboxPid: number) => Promise<void>,
  /**
   * A pooled sandbox (`warm-sandbox.ts`): the counters are read only once this resolves, at the
   * claim, with the CPU time the sandbox used before it (Node's start-up), which is not the
   * TaskInstance's. @defaultValue read from the start, no CPU time before it
   */
  watchFrom?: Promise<number>,
  /**
   * `overlapped`: let the sandbox boot while it is moved (`cgroup/attach-overlapped.ts`), for a
   * runner that waits for `start` and has no `beforeStart`; the caller sends `start` only once
   * this resolved. @defaultValue `blocking` (`cgroup/attach.ts`)
   */
  attach: 'blocking' | 'overlapped' = 'blocking',
): Promise<SandboxMonitor> {
  // If bwrap ends (killed on cancel or timeout) while its sandbox is still being set up, the
  // sandbox may live on: whatever is in the TaskInstance's cgroup dies with it.
  subprocess.once('exit', () => void cgroup?.kill().catch(() => undefined));
  try {
    await attachBy(attach, subprocess, cgroup, shouldStart, beforeStart);
  } catch (error) {
    // Never leave a sandbox blocked on its start signal until the wall-clock limit.
    subprocess.kill('SIGKILL');
    return {
      setupError: error instanceof Error ? error : new Error(String(error)),
      stop: () => Promise.resolve(undefined),
    };
  }
  if (cgroup === undefined) {
    return { stop: () => Promise.resolve(undefined) };
  }
  let cpuBeforeMs = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const watch = (): void => {
    timer = setInterval(() => {
      void cgroup.stats().then(
        (stats) => {
          const hit = brokenLimit(stats, limits, cpuBeforeMs);
          if (hit !== undefined) {
            onLimit(hit);
            void cgroup.kill().catch(() => undefined);
          }
        },
        () => undefined,
      );
    }, MONITOR_MS);
  };
  if (watchFrom === undefined) {
    watch();
  } else {
    void watchFrom.then((before) => {
      cpuBeforeMs = before;
      if (!stopped) {
        watch();
      }
    });
  }
  return {
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      // The final counters: an OOM kill or a fork refused in the last moments counts too.
      const stats = await cgroup.stats().catch(() => undefined);
      return stats === undefined ? undefined : brokenLimit(stats, limits, cpuBeforeMs);
    },
  };
}

/** The overlapped recipe when asked for and possible (a cgroup, no `beforeStart`), else the blocking one. */
function attachBy(
  attach: 'blocking' | 'overlapped',
  subprocess: SandboxSubprocess,
  cgroup: TaskCgroup | undefined,
  shouldStart: () => boolean,
  beforeStart: ((sandboxPid: number) => Promise<void>) | undefined,
): Promise<unknown> {
  return attach === 'overlapped' && cgroup !== undefined && beforeStart === undefined
    ? attachOverlapped(subprocess, SANDBOX_SYNC_FDS, cgroup, shouldStart)
    : attachSandbox(subprocess, SANDBOX_SYNC_FDS, cgroup, shouldStart, beforeStart);
}

/** A limit the cgroup's counters show broken, or undefined. */
export function brokenLimit(stats: TaskCgroupStats, limits: CompiledTaskLimits, cpuBeforeMs = 0): LimitHit | undefined {
  if (stats.oomKills > 0) {
    return { limit: 'memoryBytes' };
  }
  if (stats.pidsLimitHits > 0) {
    // Killed at the first refused fork: a task at its process limit is a fork bomb or a bug,
    // and letting it spin until the wall-clock limit only burns the node's CPU.
    return { limit: 'pids' };
  }
  if (stats.cpuUsageMs !== undefined && stats.cpuUsageMs - cpuBeforeMs > limits.cpuMs) {
    return { limit: 'cpuMs' };
  }
  return undefined;
}
