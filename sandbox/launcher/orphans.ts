/**
 * bwrap processes a crashed node left stuck, which no cgroup sweep can see.
 *
 * bwrap's child waits on an eventfd for its parent to write the sandbox's uid map, and sets its
 * own parent-death signal only after that. A node SIGKILLed in that window takes the parent
 * bwrap with it (`--die-with-parent`), and the child waits for ever: reparented to init, and in
 * no task cgroup (the node had not learnt its pid yet). Seen after chaos runs. A live sandbox's
 * processes never have ppid 1: their parent is a bwrap or the node that spawned it.
 */
import { readdir, readFile } from 'node:fs/promises';

/** The variable every tydra sandbox is started with (`launch.ts`): it marks our command lines. */
const MARK = 'TYDRA_INSTANCE_ID';

/**
 * SIGKILLs every process whose parent is init, whose command line starts with `bwrap` (the
 * absolute path the node starts) and sets {@link MARK}. Returns the pids it signalled.
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
    const [stat, cmdline] = await Promise.all([
      readFile(`/proc/${pid}/stat`, 'utf8'),
      readFile(`/proc/${pid}/cmdline`, 'utf8'),
    ]);
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so split after the last ')'.
    const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
    const args = cmdline.split('\0');
    return ppid === '1' && args[0] === bwrap && args.includes(MARK);
  } catch {
    return false; // exited while we looked
  }
}
