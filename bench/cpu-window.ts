/**
 * Where the CPU went during a timed window of `bench/run.ts`: this process (client, master and
 * node share it in the benchmark), the processes it started (the sandboxes, or the baseline's bare
 * `node -e 0`), the redis-server, and the rest of the machine (other jobs on a shared host).
 * Linux only: it reads `/proc` and cgroup v1's `cpuacct`.
 *
 * A sandbox is not counted in its parent's `cutime` (the node kills the sandbox's process group,
 * so parts of it are reaped by init), and it is moved into its TaskInstance's cgroup. So the
 * benchmark moves itself into a `cpuacct` cgroup of its own at start (its children are born
 * there), and the processes it started are: that cgroup's usage, minus this process and the
 * redis-server (also a child), plus the node's parent cgroup in `cpuacct` (every sandbox's cgroup
 * is a child of it, and v1 charges a child's CPU to its ancestors). Without `cpuacct` (cgroup v2,
 * no root) it falls back to the reaped children's `cutime`, which misses most of a sandbox.
 *
 * Shares are in cores (1.0 = one core busy for the whole window), next to the machine's cores.
 */
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const CPUACCT = '/sys/fs/cgroup/cpuacct';

/**
 * Moves this process into a `cpuacct` cgroup of its own (children started later are born in it).
 * Returns its folder and an undo step, or undefined where that is not possible.
 */
export async function ownCpuCgroup(): Promise<{ dir: string; remove: () => Promise<void> } | undefined> {
  const dir = join(CPUACCT, `tydra-bench-cpu-${process.pid}`);
  try {
    await mkdir(dir);
    await writeFile(join(dir, 'cgroup.procs'), String(process.pid));
  } catch {
    await rmdir(dir).catch(() => undefined);
    return undefined;
  }
  return {
    dir,
    remove: async () => {
      await writeFile(join(CPUACCT, 'cgroup.procs'), String(process.pid)).catch(() => undefined);
      await rmdir(dir).catch(() => undefined);
    },
  };
}

/** The node's parent cgroup in `cpuacct` (`lib/node/node.ts`, `cgroupParentName`). */
export function nodeCpuCgroup(cgroupName: string, nodeId: string): string {
  return join(CPUACCT, `${cgroupName}.${nodeId}.${process.pid}`);
}

async function cgroupUsageMs(dir: string): Promise<number | undefined> {
  const text = await readFile(join(dir, 'cpuacct.usage'), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : Number(text) / 1e6;
}

/** `getconf CLK_TCK` on every Linux this runs on: /proc's CPU times count 1/100 s. */
const TICK_MS = 10;

interface Snapshot {
  wallMs: number;
  selfMs: number;
  /** Reaped children (`cutime`), used without a cgroup of our own. */
  reapedMs: number;
  /** This process and everything it started (`ownCgroup`, plus the node's cgroup). */
  cgroupsMs: number | undefined;
  redisMs: number;
  machineBusyMs: number;
}

/** Where to read CPU time: the redis-server's pid and the cgroups that hold our processes. */
export interface CpuSources {
  redisPid: number | undefined;
  /** The benchmark's own `cpuacct` cgroup (`ownCpuCgroup`). */
  ownCgroup: string | undefined;
  /** Other cgroups our processes move to: the node's parent cgroup. */
  otherCgroups: readonly string[];
}

export interface CpuShares {
  wallMs: number;
  cores: number;
  /** This process: client, master and node (and the benchmark's own bookkeeping). */
  process: number;
  /** Processes it started: sandboxes (bwrap and the runner), or bare `node -e 0`. */
  children: number;
  redis: number;
  /** Everything else the machine ran: other jobs on a shared host. */
  rest: number;
  idle: number;
}

/** utime + stime (and the reaped children's cutime + cstime) of a process, from `/proc/<pid>/stat`, in ms. */
export async function processTimes(pid: number | 'self'): Promise<{ own: number; children: number }> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: the fields start after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const tick = (index: number): number => Number(fields[index - 3] ?? 0) * TICK_MS;
  return { own: tick(14) + tick(15), children: tick(16) + tick(17) };
}

/** The machine's busy time (all cores, idle and iowait left out), from `/proc/stat`, in ms. */
export async function machineBusyMs(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '';
  const [, ...values] = line.trim().split(/\s+/).map(Number);
  const total = values.slice(0, 8).reduce((sum, value) => sum + value, 0);
  return (total - (values[3] ?? 0) - (values[4] ?? 0)) * TICK_MS;
}

async function snapshot(sources: CpuSources): Promise<Snapshot> {
  const [self, redis, busy, cgroups] = await Promise.all([
    processTimes('self'),
    sources.redisPid === undefined ? { own: 0, children: 0 } : processTimes(sources.redisPid),
    machineBusyMs(),
    sources.ownCgroup === undefined
      ? undefined
      : Promise.all([sources.ownCgroup, ...sources.otherCgroups].map(cgroupUsageMs)).then((usages) =>
          usages.reduce<number>((sum, usage) => sum + (usage ?? 0), 0),
        ),
  ]);
  const usage = process.cpuUsage();
  return {
    wallMs: performance.now(),
    // process.cpuUsage() is finer than /proc's ticks for ourselves.
    selfMs: (usage.user + usage.system) / 1000,
    reapedMs: self.children,
    cgroupsMs: cgroups,
    redisMs: redis.own,
    machineBusyMs: busy,
  };
}

/** Runs `fn` and says where the CPU went meanwhile. */
export async function measureCpu<T>(sources: CpuSources, fn: () => Promise<T>): Promise<{ value: T; cpu: CpuShares }> {
  const before = await snapshot(sources);
  const value = await fn();
  const after = await snapshot(sources);
  const wallMs = after.wallMs - before.wallMs;
  const share = (ms: number): number => Math.round((ms / wallMs) * 100) / 100;
  const processMs = after.selfMs - before.selfMs;
  const redisMs = after.redisMs - before.redisMs;
  const childrenMs =
    after.cgroupsMs !== undefined && before.cgroupsMs !== undefined
      ? Math.max(0, after.cgroupsMs - before.cgroupsMs - processMs - redisMs)
      : after.reapedMs - before.reapedMs;
  const busyMs = after.machineBusyMs - before.machineBusyMs;
  const cores = availableParallelism();
  return {
    value,
    cpu: {
      wallMs: Math.round(wallMs),
      cores,
      process: share(processMs),
      children: share(childrenMs),
      redis: share(redisMs),
      rest: share(Math.max(0, busyMs - processMs - childrenMs - redisMs)),
      idle: share(Math.max(0, cores * wallMs - busyMs)),
    },
  };
}

/** CPU of this process, its children and Redis per task, in ms (other jobs' share left out). */
export function cpuPerTaskMs(cpu: CpuShares, tasks: number): number {
  return ((cpu.process + cpu.children + cpu.redis) * cpu.wallMs) / tasks;
}

/** The throughput `cpu` allows at most: every core busy with nothing but these tasks. */
export function cpuCeiling(cpu: CpuShares, tasks: number): number {
  return (cpu.cores * 1000) / cpuPerTaskMs(cpu, tasks);
}

/**
 * `process 0.62, children 0.70, redis 0.08, rest of machine 0.40, idle 0.20 (cores busy, of 2);
 * per task: process 9.1 ms, children 10.2 ms, redis 1.2 ms`
 */
export function formatCpu(cpu: CpuShares, tasks: number): string {
  const perTask = (share: number): string => `${((share * cpu.wallMs) / tasks).toFixed(1)} ms`;
  return [
    `process ${cpu.process.toFixed(2)}, children ${cpu.children.toFixed(2)}, redis ${cpu.redis.toFixed(2)},`,
    `rest of machine ${cpu.rest.toFixed(2)}, idle ${cpu.idle.toFixed(2)} (cores busy, of ${cpu.cores});`,
    `per task: process ${perTask(cpu.process)}, children ${perTask(cpu.children)}, redis ${perTask(cpu.redis)}`,
  ].join(' ');
}
