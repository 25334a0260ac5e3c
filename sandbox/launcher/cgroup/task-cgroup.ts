/**
 * One cgroup per TaskInstance: a memory limit with no swap on top, a process limit, CPU time
 * accounting, and a way to kill everything in it. The sandbox is put in before any task code
 * runs (`cgroup-attach.ts`), so a task can neither escape the limits by forking nor outlive
 * `kill()` by daemonising: membership is inherited across fork, setsid and double-fork.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { CgroupError, describe, InvalidOptionError } from '../../../lib/core/errors.js';
import type { AvailableCgroupSupport } from './support.js';
import { assertCgroupName } from './support.js';
import {
  errnoCode,
  killCgroupProcesses,
  listCgroupPids,
  readKeyedCounts,
  readNumber,
  removeCgroupDir,
  writeCgroupFile,
  writeCgroupFileSync,
} from './fs.js';

export interface TaskCgroupLimits {
  /** Memory limit in bytes (anonymous memory, page cache and tmpfs pages alike); no swap is allowed on top. */
  memoryBytes: number;
  /** Most tasks (processes and threads) alive at once, bwrap's own pid 1 included. */
  pids: number;
}

/** What the kernel counted for one TaskInstance cgroup. Read it before `remove()`. */
export interface TaskCgroupStats {
  /** Processes the OOM killer killed because the memory limit was reached. */
  oomKills: number;
  /** Forks refused (EAGAIN) because `pids.max` was reached. */
  pidsLimitHits: number;
  /** CPU time used by every process that ever ran in the cgroup; undefined when not accounted (v1 without cpuacct). */
  cpuUsageMs: number | undefined;
  /** Highest memory usage; undefined when the kernel does not track it (v2 before 5.19). */
  memoryPeakBytes: number | undefined;
}

/** Creates the cgroup folder(s) for one TaskInstance and sets its limits; throws `CgroupError`. */
export async function createTaskCgroup(
  support: AvailableCgroupSupport,
  name: string,
  limits: TaskCgroupLimits,
): Promise<TaskCgroup> {
  assertCgroupName(name, 'name');
  for (const key of ['memoryBytes', 'pids'] as const) {
    if (!Number.isSafeInteger(limits[key]) || limits[key] <= 0) {
      throw new InvalidOptionError(
        `Expected the \`${key}\` limit to be a positive integer, got ${describe(limits[key])}`,
      );
    }
  }
  const dirs =
    support.mode === 'v2'
      ? { memory: join(support.parent, name), pids: join(support.parent, name), cpu: join(support.parent, name) }
      : {
          memory: join(support.memory, name),
          pids: join(support.pids, name),
          cpu: support.cpuacct === undefined ? undefined : join(support.cpuacct, name),
        };
  const cgroup = new TaskCgroup(support, name, dirs);
  // Synchronously, every folder then every limit: cgroupfs answers these at once, and they are
  // on the critical path of every cold start (see `writeCgroupFileSync`).
  const created: string[] = [];
  try {
    for (const dir of cgroup.paths) {
      makeNewCgroup(dir);
      created.push(dir);
    }
    applyLimits(support, dirs.memory, dirs.pids, limits);
  } catch (error) {
    await Promise.all(created.map((dir) => removeCgroupDir(dir).catch(() => undefined)));
    throw error;
  }
  return cgroup;
}

export class TaskCgroup {
  #removal: Promise<void> | undefined;

  /** @internal Use `createTaskCgroup`. */
  constructor(
    readonly support: AvailableCgroupSupport,
    readonly name: string,
    private readonly dirs: { memory: string; pids: string; cpu: string | undefined },
  ) {}

  /** The cgroup folders: one on v2; one per hierarchy (memory, pids, cpuacct) on v1. */
  get paths(): string[] {
    return [...new Set([this.dirs.memory, this.dirs.pids, ...(this.dirs.cpu === undefined ? [] : [this.dirs.cpu])])];
  }

  /** Moves process `pid` (all its threads) into the cgroup; its later children are born there. */
  async addProcess(pid: number): Promise<void> {
    if (!Number.isSafeInteger(pid) || pid <= 0) {
      throw new InvalidOptionError(`Expected a process id (positive integer), got ${describe(pid)}`);
    }
    // In parallel: on v1 the kernel serialises the moves anyway, and only the first waits for
    // its RCU grace period; the others follow within it.
    await Promise.all(this.paths.map((dir) => writeCgroupFile(join(dir, 'cgroup.procs'), String(pid))));
  }

  /** Process ids currently in the cgroup (the union over v1 hierarchies). */
  async pids(): Promise<number[]> {
    return [...new Set((await Promise.all(this.paths.map(listCgroupPids))).flat())].sort((a, b) => a - b);
  }

  async stats(): Promise<TaskCgroupStats> {
    const { memory, pids, cpu } = this.dirs;
    if (this.support.mode === 'v2') {
      const [pidsEvents, cpuStat, memoryEvents, memoryPeakBytes] = await Promise.all([
        readKeyedCounts(join(pids, 'pids.events')),
        readKeyedCounts(join(cpu ?? memory, 'cpu.stat')),
        readKeyedCounts(join(memory, 'memory.events')),
        readNumber(join(memory, 'memory.peak')),
      ]);
      const usageUsec = cpuStat?.get('usage_usec');
      return {
        oomKills: memoryEvents?.get('oom_kill') ?? 0,
        pidsLimitHits: pidsEvents?.get('max') ?? 0,
        cpuUsageMs: usageUsec === undefined ? undefined : Math.round(usageUsec / 1000),
        memoryPeakBytes,
      };
    }
    // v1: `oom_kill` is in memory.oom_control since Linux 4.13. Before that the best sign is
    // that the limit was hit at all (failcnt), which also counts reclaim that avoided an OOM.
    const [pidsEvents, oomControl, usageNs, memoryPeakBytes, failcnt] = await Promise.all([
      readKeyedCounts(join(pids, 'pids.events')),
      readKeyedCounts(join(memory, 'memory.oom_control')),
      cpu === undefined ? undefined : readNumber(join(cpu, 'cpuacct.usage')),
      readNumber(join(memory, 'memory.max_usage_in_bytes')),
      readNumber(join(memory, 'memory.failcnt')),
    ]);
    return {
      oomKills: oomControl?.get('oom_kill') ?? ((failcnt ?? 0) > 0 ? 1 : 0),
      pidsLimitHits: pidsEvents?.get('max') ?? 0,
      cpuUsageMs: usageNs === undefined ? undefined : Math.round(usageNs / 1e6),
      memoryPeakBytes,
    };
  }

  /** SIGKILLs every process in the cgroup and waits until it is empty; throws `CgroupError` if some survive. */
  async kill(): Promise<void> {
    await killCgroupProcesses(this.paths, this.support.mode === 'v2' && this.support.cgroupKill);
  }

  /** Kills, then removes the folder(s). Idempotent; a cgroup already gone counts as removed. */
  remove(): Promise<void> {
    this.#removal ??= (async () => {
      await this.kill();
      await Promise.all(this.paths.map((dir) => removeCgroupDir(dir)));
    })().catch((error: unknown) => {
      this.#removal = undefined; // let a later call retry
      throw error;
    });
    return this.#removal;
  }
}

function makeNewCgroup(dir: string): void {
  try {
    mkdirSync(dir);
  } catch (error) {
    const code = errnoCode(error);
    const received =
      code === 'EEXIST'
        ? 'an existing one (a name used twice, or a stale cgroup left for cleanStaleCgroups)'
        : (code ?? String(error));
    throw new CgroupError(`Expected to create a new cgroup at ${dir}, got ${received}`, dir, code, { cause: error });
  }
}

function applyLimits(support: AvailableCgroupSupport, memory: string, pids: string, limits: TaskCgroupLimits): void {
  for (const [file, value] of limitWrites(support, { memory, pids }, limits, existsSync)) {
    writeCgroupFileSync(file, value);
  }
}

/**
 * The files a new TaskInstance cgroup's limits are written to, with their values, in order;
 * `exists` says whether an optional file is there (the kernel's version decides). @internal
 */
export function limitWrites(
  support: AvailableCgroupSupport,
  dirs: { memory: string; pids: string },
  limits: TaskCgroupLimits,
  exists: (file: string) => boolean,
): Array<[file: string, value: string]> {
  const bytes = String(limits.memoryBytes);
  const at = (file: string): string => join(dirs.memory, file);
  const ifPresent = (file: string, value: string): Array<[string, string]> =>
    exists(at(file)) ? [[at(file), value]] : [];
  const pids: [string, string] = [join(dirs.pids, 'pids.max'), String(limits.pids)];
  if (support.mode === 'v2') {
    // No swap on top; one OOM kill takes the whole sandbox down instead of a half-dead tree.
    return [
      [at('memory.max'), bytes],
      ...ifPresent('memory.swap.max', '0'),
      ...ifPresent('memory.oom.group', '1'),
      pids,
    ];
  }
  // Order matters: memsw (memory + swap) may never be below the memory limit, so lower the
  // memory limit first, then memsw to the same value, leaving no room for swap. Without
  // memsw (swapaccount=0) swappiness 0 keeps this cgroup's own reclaim from swapping.
  // v1 counts socket buffers apart from memory, and only once their own limit is set: without
  // it a task's unread TCP or UDP data is kernel memory no limit holds (gigabytes, up to the
  // host-wide tcp_mem, where every connection on the host stalls). v2 counts them in memory.max.
  return [
    [at('memory.limit_in_bytes'), bytes],
    [at('memory.swappiness'), '0'],
    ...ifPresent('memory.memsw.limit_in_bytes', bytes),
    ...ifPresent('memory.kmem.tcp.limit_in_bytes', bytes),
    pids,
  ];
}
