/**
 * The signal that ended a sandboxed task. bwrap's pid 1 exits with the task's status, turning
 * death by signal N into exit code 128 + N, so execa sees bwrap exit normally with, say, 137
 * (SIGKILL: OOM kill, cgroup kill) or 152 (SIGXCPU) and reports no `signal`. Only when bwrap
 * itself is signalled (timeout, abort) does execa report `signal`.
 */
import { constants } from 'node:os';

/**
 * `signal` when execa reports one, else the signal encoded in a 129–192 exit code. A task that
 * calls `exit(137)` on its own looks the same; use the cgroup's counters to tell an OOM kill.
 */
export function signalFromExit(
  exitCode: number | undefined,
  signal: NodeJS.Signals | undefined,
): NodeJS.Signals | undefined {
  if (signal !== undefined) {
    return signal;
  }
  if (exitCode === undefined || exitCode <= 128 || exitCode > 128 + 64) {
    return undefined;
  }
  const number = exitCode - 128;
  return (Object.keys(constants.signals) as NodeJS.Signals[]).find((name) => constants.signals[name] === number);
}
