/**
 * Child and descendant processes of a pid, read from /proc. `/proc/<pid>/task/<tid>/children`
 * is cheap but only exists with CONFIG_PROC_CHILDREN (absent on some kernels, this CI host's
 * included), so the fallback scans the PPid field of every `/proc/<pid>/stat`.
 *
 * The reads are synchronous on purpose. procfs files are made in memory by the kernel when read
 * (no disk, nothing these files wait on), so one read(2) takes microseconds; the same read
 * through `fs/promises` is five threadpool round trips (open, fstat, two reads, close), each with
 * its callbacks on the main thread. A scan of /proc runs on every sandbox's start on hosts
 * without the children files, and measured async it cost the node more CPU than the reads.
 */
import { readdirSync, readFileSync } from 'node:fs';

import { statFieldsAfterComm } from '../process-mark.js';

/** Direct children of `pid` (empty when it is gone). Each call reads /proc afresh. */
export function childPids(pid: number): number[] {
  return readChildrenFiles(pid) ?? childrenOfAny(new Set([pid]));
}

/**
 * Children of any of `parents` that are not in it themselves, all in one pass: the children files
 * of each parent where the kernel has them, else ONE scan of /proc for the whole set (not one per
 * parent).
 */
export function childrenOfAny(parents: ReadonlySet<number>): number[] {
  const found = new Set<number>();
  let perParent = true;
  for (const parent of parents) {
    const children = readChildrenFiles(parent);
    if (children === undefined) {
      perParent = false;
      break;
    }
    children.forEach((child) => found.add(child));
  }
  if (!perParent) {
    for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
      if (parents.has(parentPidNow(Number(entry)) ?? 0)) {
        found.add(Number(entry));
      }
    }
  }
  return [...found].filter((pid) => !parents.has(pid));
}

/** Every descendant of `pid`, parents before their children, each read after its parent. */
export function descendantPids(pid: number): number[] {
  const found: number[] = [];
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const child of childPids(next)) {
      if (!found.includes(child)) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

/** Parent pid from `/proc/<pid>/stat`, or undefined when the process is gone. */
function parentPidNow(pid: number): number | undefined {
  try {
    // "pid (comm) state ppid …": the ppid is field 4.
    const ppid = statFieldsAfterComm(readFileSync(`/proc/${pid}/stat`, 'utf8'))[1];
    return ppid === undefined ? undefined : Number(ppid);
  } catch {
    return undefined;
  }
}

function readChildrenFiles(pid: number): number[] | undefined {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const children = new Set<number>();
  for (const tid of threads) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && tid === String(pid)) {
        return undefined; // the main thread exists, its children file does not: no CONFIG_PROC_CHILDREN
      }
      continue; // the thread exited meanwhile
    }
    for (const child of text.trim().split(' ')) {
      if (child !== '') {
        children.add(Number(child));
      }
    }
  }
  return [...children];
}
