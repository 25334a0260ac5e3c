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
import { readdir, readFile } from 'node:fs/promises';

import { isMarkAlive } from './process-mark.js';

/** The variable every tydra sandbox is started with (`launch.ts`): it marks our command lines. */
const INSTANCE_MARK = 'TYDRA_INSTANCE_ID';

/** In bwrap's own environment: the mark (`process-mark.ts`) of the node process that spawned it. */
export const NODE_MARK_VARIABLE = 'TYDRA_NODE';

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
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    if (args[0] !== bwrap || !args.includes(INSTANCE_MARK)) {
      return false;
    }
    const environ = await readFile(`/proc/${pid}/environ`, 'utf8');
    const prefix = `${NODE_MARK_VARIABLE}=`;
    const mark = environ.split('\0').find((entry) => entry.startsWith(prefix));
    // No mark: not started by a node of this version; leave it to whoever started it.
    return mark !== undefined && !(await isMarkAlive(mark.slice(prefix.length)));
  } catch {
    return false; // exited while we looked
  }
}
