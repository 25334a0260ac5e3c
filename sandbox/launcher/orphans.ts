/**
 * bwrap processes a crashed node left stuck, which no cgroup sweep can see.
 *
 * bwrap's child waits on an eventfd for its parent to write the sandbox's uid map, and sets its
 * own parent-death signal only after that. A node SIGKILLed in that window takes the parent
 * bwrap with it (`--die-with-parent`), and the child waits for ever, in no task cgroup (the node
 * had not learnt its pid yet). Seen after chaos runs.
 *
 * Such a process is reparented to init, or to the nearest subreaper (a CI runner, a process
 * supervisor), so its parent pid says nothing reliable. Its environment does: every sandbox's
 * bwrap starts with {@link NODE_MARK_VARIABLE} naming the node process that spawned it, by pid
 * and start time (a pid alone may have been reused). bwrap's `--clearenv` keeps it out of the
 * task's environment; `/proc/PID/environ` still shows what bwrap was started with, in the child too.
 */
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';

/** The variable every tydra sandbox is started with (`launch.ts`): it marks our command lines. */
const INSTANCE_MARK = 'TYDRA_INSTANCE_ID';

/** In bwrap's own environment: `<pid>:<start time>` of the node process that spawned it. */
export const NODE_MARK_VARIABLE = 'TYDRA_NODE';

let ownMark: string | undefined;

/** The {@link NODE_MARK_VARIABLE} of this process, the node's. */
export function nodeMark(): string {
  ownMark ??= processMark(process.pid);
  return ownMark;
}

/** `<pid>:<start time in clock ticks since boot>` of a running process; throws if there is none. */
export function processMark(pid: number): string {
  return `${pid}:${startTimeOf(readFileSync(`/proc/${pid}/stat`, 'utf8'))}`;
}

/**
 * SIGKILLs every process whose command line starts with `bwrap` (the absolute path the node
 * starts) and sets `TYDRA_INSTANCE_ID`, and whose node process is gone. Sandboxes of live nodes,
 * this one's and other nodes' on the same host, are left alone. Returns the pids it signalled.
 */
export async function killOrphanedSandboxes(bwrap: string): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  const orphans = await Promise.all(pids.map(async (pid) => ((await isOrphan(pid, bwrap)) ? Number(pid) : 0)));
  const killed: number[] = [];
  for (const pid of orphans.filter((candidate) => candidate > 0)) {
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // Gone meanwhile, or not ours to kill (another user's): either way nothing to do.
    }
  }
  return killed;
}

async function isOrphan(pid: string, bwrap: string): Promise<boolean> {
  try {
    const [cmdline, environ] = await Promise.all([
      readFile(`/proc/${pid}/cmdline`, 'utf8'),
      readFile(`/proc/${pid}/environ`, 'utf8'),
    ]);
    const args = cmdline.split('\0');
    if (args[0] !== bwrap || !args.includes(INSTANCE_MARK)) {
      return false;
    }
    const prefix = `${NODE_MARK_VARIABLE}=`;
    const mark = environ.split('\0').find((entry) => entry.startsWith(prefix));
    // No mark: not started by a node of this version; leave it to whoever started it.
    return mark !== undefined && !(await isAlive(mark.slice(prefix.length)));
  } catch {
    return false; // exited while we looked
  }
}

/** Whether the process a mark names still runs: same pid, same start time. */
async function isAlive(mark: string): Promise<boolean> {
  const [pid = '', startTime] = mark.split(':');
  if (!/^\d+$/.test(pid)) {
    return true; // not a mark we wrote: never a reason to kill
  }
  try {
    return startTimeOf(await readFile(`/proc/${pid}/stat`, 'utf8')) === startTime;
  } catch {
    return false; // no such process
  }
}

/** Field 22 of `/proc/PID/stat`; comm (field 2) may hold spaces and parentheses, so count after the last ')'. */
function startTimeOf(stat: string): string {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
}
