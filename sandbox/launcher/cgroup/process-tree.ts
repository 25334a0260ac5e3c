/**
 * Child and descendant processes of a pid, read from /proc. `/proc/<pid>/task/<tid>/children`
 * is cheap but only exists with CONFIG_PROC_CHILDREN (absent on some kernels, this CI host's
 * included), so the fallback scans the PPid field of every `/proc/<pid>/stat`.
 */
import { readdir, readFile } from 'node:fs/promises';

/** Direct children of `pid` (empty when it is gone). Each call reads /proc afresh. */
export async function childPids(pid: number): Promise<number[]> {
  const fromChildrenFiles = await readChildrenFiles(pid);
  return fromChildrenFiles ?? (await scanForChildren(pid));
}

/**
 * Children of any of `parents` that are not in it themselves, all in one pass: the children files
 * of each parent where the kernel has them, else ONE scan of /proc for the whole set (not one per
 * parent), its stat files read in parallel.
 */
export async function childrenOfAny(parents: ReadonlySet<number>): Promise<number[]> {
  const found = new Set<number>();
  let perParent = true;
  for (const parent of parents) {
    const children = await readChildrenFiles(parent);
    if (children === undefined) {
      perParent = false;
      break;
    }
    children.forEach((child) => found.add(child));
  }
  if (!perParent) {
    const entries = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry));
    const ppids = await Promise.all(entries.map((entry) => parentPid(Number(entry))));
    entries.forEach((entry, i) => {
      if (parents.has(ppids[i] ?? 0)) {
        found.add(Number(entry));
      }
    });
  }
  return [...found].filter((pid) => !parents.has(pid));
}

/** Every descendant of `pid`, parents before their children, each read after its parent. */
export async function descendantPids(pid: number): Promise<number[]> {
  const found: number[] = [];
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const child of await childPids(next)) {
      if (!found.includes(child)) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

/** Parent pid from `/proc/<pid>/stat`, or undefined when the process is gone. */
export async function parentPid(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so cut at the last ")".
    const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
    return ppid === undefined ? undefined : Number(ppid);
  } catch {
    return undefined;
  }
}

async function readChildrenFiles(pid: number): Promise<number[] | undefined> {
  let threads: string[];
  try {
    threads = await readdir(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const children = new Set<number>();
  for (const tid of threads) {
    let text: string;
    try {
      text = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8');
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

function scanForChildren(pid: number): Promise<number[]> {
  return childrenOfAny(new Set([pid]));
}
