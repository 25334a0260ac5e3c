/**
 * A mark naming one process for its whole life: `<pid>:<start time>`. A pid alone may have been
 * reused by the time someone reads it; with its start time (clock ticks since boot, from
 * `/proc/PID/stat`) it names one process only. Left behind by a node process (in a bwrap's
 * environment, in a folder's name), it tells a later node whether that process is gone.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

let ownMark: string | undefined;

/** The mark of this process. */
export function nodeMark(): string {
  ownMark ??= processMark(process.pid);
  return ownMark;
}

/** The mark of a running process; throws if there is none. */
export function processMark(pid: number): string {
  return `${pid}:${startTimeOf(readFileSync(`/proc/${pid}/stat`, 'utf8'))}`;
}

/**
 * Whether the process a mark names still runs: same pid, same start time. A zombie still
 * counts: its parent has not reaped it yet. Anything that is not a mark counts as alive, so
 * that it is never a reason to remove or kill anything.
 */
export async function isMarkAlive(mark: string): Promise<boolean> {
  const match = /^(\d+):(\d+)$/.exec(mark);
  if (match === null) {
    return true;
  }
  try {
    return startTimeOf(await readFile(`/proc/${match[1]}/stat`, 'utf8')) === match[2];
  } catch {
    return false; // no such process
  }
}

/**
 * The fields of a `/proc/PID/stat` text after `pid (comm)`, so field N of proc(5) is at N - 3:
 * comm may hold spaces and parentheses, so the text is cut at its last ')'.
 */
export function statFieldsAfterComm(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Field 22 of `/proc/PID/stat`: the start time, in clock ticks since boot. */
function startTimeOf(stat: string): string {
  return statFieldsAfterComm(stat)[19] ?? '';
}
