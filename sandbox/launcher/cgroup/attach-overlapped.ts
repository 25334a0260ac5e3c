/**
 * Puts a JavaScript sandbox without a network into its TaskInstance cgroup WHILE Node boots in
 * it, instead of before (`attach.ts`). On a cgroup-v1 host the move waits for an RCU grace period
 * (about 10 ms here, see bench/README.md); blocking the sandbox for it put the whole wait on
 * every cold start. Overlapped, it hides behind Node's own start-up (about 25 ms).
 *
 * Why this is safe for a module, and only for one: no task code runs before the runner gets its
 * `start` message. The runner imports the task module when `start` arrives (`runner/task-runner.ts`,
 * in a pooled sandbox too: `warm-sandbox.ts`), and the launcher sends `start` only once this
 * function resolved, i.e. once every process of the sandbox is in the cgroup. So everything the
 * task does, a fork at import included, happens inside the cgroup and under its limits. Before
 * `start` only tydra's code runs (bwrap's pid 1, Node's start-up, the runner), which forks nothing.
 * A command has no runner to hold it, and a network's set-up (`beforeStart`) must finish before
 * the runner serves the endpoints, so both keep the blocking recipe.
 *
 * The move: bwrap reports the sandbox's pid N (`--info-fd`) and is let go at once (`--block-fd`).
 * N is moved, then, in rounds, every process whose parent is one already moved (the task's Node
 * when N is bwrap's init and forked it before its own move; reparented orphans too, since N is
 * the namespace's init), each round read after the previous one's moves, until a round finds
 * none. With a cgroup the runner is N itself (`--as-pid-1`, `bwrap-args.ts`), so the first round
 * normally finds nothing: one scan, not two. A process forked after its parent's move is born in
 * the cgroup, one forked before is seen in the next round: nothing is missed. cgroup.procs moves
 * every thread of a process at once.
 *
 * What differs from the blocking recipe: on cgroup v1, memory pages Node touched before its move
 * stay charged to the node's cgroup (v1 does not move charges), so the task's cgroup does not
 * count Node's start-up memory (a few MiB); CPU time before the move is not counted either. Both
 * are the runner's, never the task's. A move that fails kills the sandbox and rejects: the
 * TaskInstance fails with the `CgroupError` (an `InfrastructureError`), its task never started.
 * Unlike a blocked sandbox, a running one may have exited by the time it is killed; its pid is
 * then signalled in vain (pids are allocated cyclically, so not reused within milliseconds).
 */
import {
  addIfAlive,
  type AttachedSandbox,
  readSandboxPid,
  type SandboxSubprocess,
  type SandboxSyncFds,
  signalQuietly,
} from './attach.js';
import { childrenOfAny } from './process-tree.js';
import type { TaskCgroup } from './task-cgroup.js';

/**
 * Lets the sandbox start, moves it (all its processes) into `cgroup` while it boots, and resolves
 * once every one is in; the caller sends `start` only then. Resolves undefined when bwrap exited
 * before making the sandbox. When the move fails, or `shouldStart` says no once it is done (the
 * run was cancelled meanwhile), the sandbox and bwrap are SIGKILLed first.
 */
export async function attachOverlapped(
  subprocess: SandboxSubprocess,
  fds: SandboxSyncFds,
  cgroup: TaskCgroup,
  shouldStart: () => boolean = () => true,
): Promise<AttachedSandbox | undefined> {
  const { block, childPid } = await readSandboxPid(subprocess, fds);
  if (childPid === undefined) {
    return undefined;
  }
  block.end(Buffer.of(1));
  const kill = (): void => {
    signalQuietly(childPid);
    subprocess.kill('SIGKILL');
  };
  const movedPids: number[] = [];
  try {
    await cgroup.addProcess(childPid);
    movedPids.push(childPid);
    // Tried once each: a zombie stays in /proc (with its parent) after its move was refused (ESRCH).
    const tried = new Set(movedPids);
    for (;;) {
      const found = childrenOfAny(new Set(movedPids)).filter((pid) => !tried.has(pid));
      if (found.length === 0) {
        break;
      }
      for (const pid of found) {
        tried.add(pid);
        await addIfAlive(cgroup, pid, movedPids);
      }
    }
  } catch (error) {
    kill();
    throw error;
  }
  if (!shouldStart()) {
    kill();
  }
  return { childPid, movedPids };
}
