/**
 * Reading, writing, emptying and removing cgroup folders, shared by detection (`cgroup.ts`) and
 * the per-TaskInstance cgroup (`task-cgroup.ts`). cgroupfs files are tiny and the kernel answers
 * each write(2) with an errno, so every write is one `writeFile` and every refusal becomes a
 * `CgroupError` naming the file. No shell, no cgroup tools: `node:fs` and `process.kill` only.
 * @internal
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { readdir, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { CgroupError } from '../../../lib/core/errors.js';

/** SIGKILL rounds before `killCgroupProcesses` gives up (about 1.8 s in all). */
const KILL_ROUNDS = 100;
/** rmdir attempts while the kernel still holds exiting tasks (EBUSY), 20 ms apart. */
const RMDIR_ATTEMPTS = 100;

export function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The file's text, or undefined when it does not exist (an older kernel, or a removed cgroup).
 * Read synchronously: cgroupfs makes the text in memory when read, so the read(2) takes
 * microseconds, where `fs/promises` spends five threadpool round trips and their callbacks on
 * the node's main thread, for every counter of every sandbox, every 100 ms. Writes stay
 * asynchronous: a move into a cgroup-v1 memory cgroup waits for an RCU grace period.
 */
export function readCgroupFile(path: string): Promise<string | undefined> {
  try {
    return Promise.resolve(readFileSync(path, 'utf8'));
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENODEV') {
      return Promise.resolve(undefined);
    }
    return Promise.reject(
      new CgroupError(`Expected to read ${path}, got ${errnoCode(error) ?? String(error)}`, path, errnoCode(error), {
        cause: error,
      }),
    );
  }
}

/**
 * One write(2) of `value`; the kernel's refusal is thrown as a CgroupError with its errno. Opened
 * with `r+`, never created: on a hybrid host `/sys/fs/cgroup` itself is a tmpfs, where a missing
 * control file would otherwise silently become a regular file.
 */
export async function writeCgroupFile(path: string, value: string): Promise<void> {
  try {
    await writeFile(path, value, { flag: 'r+' });
  } catch (error) {
    throw writeRefused(path, value, error);
  }
}

/**
 * {@link writeCgroupFile}, synchronously: for a new cgroup's limit files, whose writes the kernel
 * answers at once (unlike a move into a v1 memory cgroup). Measured here, making a TaskInstance's
 * cgroup this way costs 0.12–0.16 ms of CPU against 0.57–0.78 ms through `fs/promises` (each file
 * an open, a write and a close on the threadpool, with their callbacks), on every cold start.
 */
export function writeCgroupFileSync(path: string, value: string): void {
  try {
    writeFileSync(path, value, { flag: 'r+' });
  } catch (error) {
    throw writeRefused(path, value, error);
  }
}

function writeRefused(path: string, value: string, error: unknown): CgroupError {
  const code = errnoCode(error);
  return new CgroupError(`Expected to write \`${value.trim()}\` to ${path}, got ${code ?? String(error)}`, path, code, {
    cause: error,
  });
}

/** Parses `key value` lines (memory.events, pids.events, cpu.stat, memory.oom_control). */
export async function readKeyedCounts(path: string): Promise<Map<string, number> | undefined> {
  const text = await readCgroupFile(path);
  if (text === undefined) {
    return undefined;
  }
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^\d+$/.test(value)) {
      counts.set(key, Number(value));
    }
  }
  return counts;
}

export async function readNumber(path: string): Promise<number | undefined> {
  const text = (await readCgroupFile(path))?.trim();
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

/** Process ids in the cgroup (`cgroup.procs`); empty when the folder is gone. */
export async function listCgroupPids(dir: string): Promise<number[]> {
  const text = (await readCgroupFile(join(dir, 'cgroup.procs'))) ?? '';
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map(Number);
}

/** Child cgroups (sub-folders) of `dir`; empty when `dir` does not exist. */
export async function listChildCgroups(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') {
      return [];
    }
    throw new CgroupError(`Expected to list ${dir}, got ${errnoCode(error) ?? String(error)}`, dir, errnoCode(error), {
      cause: error,
    });
  }
}

/**
 * SIGKILLs every process listed in the `cgroup.procs` of `dirs` (v1: the same cgroup in each
 * hierarchy) until all are empty. Rounds repeat because a fork loop can add a child between the
 * read and the kill; the pids controller bounds how many. With `useCgroupKill` (v2, kernel 5.14+)
 * the kernel kills the whole subtree atomically instead and we only wait for it to empty.
 *
 * Hazard: between reading a pid and signalling it the process may exit and its pid be reused
 * by an unrelated process. The window is microseconds and pids are not reused at once (the
 * kernel allocates them cyclically), but only `cgroup.kill` closes it; there is no pidfd API
 * in Node. Pid 0 (a process outside our pid namespace), 1 and our own pid are never signalled:
 * `kill(0)` would hit our own process group.
 */
export async function killCgroupProcesses(dirs: readonly string[], useCgroupKill = false): Promise<void> {
  if (useCgroupKill) {
    await Promise.all(dirs.map((dir) => writeCgroupFile(join(dir, 'cgroup.kill'), '1').catch(ignoreEnoent)));
  }
  let pids: number[] = [];
  for (let round = 0; round < KILL_ROUNDS; round += 1) {
    pids = [...new Set((await Promise.all(dirs.map(listCgroupPids))).flat())];
    if (pids.length === 0) {
      return;
    }
    if (!useCgroupKill) {
      for (const pid of pids) {
        signalProcess(pid);
      }
    }
    // Short waits first: the sandbox's processes usually die within a millisecond of bwrap, and
    // this wait is on the path of every TaskInstance's end.
    await sleep(round < 5 ? 1 : round < 15 ? 5 : 20);
  }
  const dir = dirs[0] ?? '';
  throw new CgroupError(
    `Expected ${dir} to be empty after ${KILL_ROUNDS} rounds of SIGKILL, got processes ${pids.join(', ')} (stuck in uninterruptible sleep?)`,
    dir,
  );
}

/**
 * Removes an (emptied) cgroup folder. rmdir answers EBUSY for a short while after the last
 * process was killed, until the kernel finishes tearing down exiting tasks, so it is retried,
 * `beforeRetry` first. A missing folder counts as removed.
 */
export async function removeCgroupDir(dir: string, beforeRetry?: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await rmdir(dir);
      return;
    } catch (error) {
      const code = errnoCode(error);
      if (code === 'ENOENT') {
        return;
      }
      if (code !== 'EBUSY' || attempt >= RMDIR_ATTEMPTS) {
        throw new CgroupError(`Expected to remove the cgroup ${dir}, got ${code ?? String(error)}`, dir, code, {
          cause: error,
        });
      }
      await sleep(20);
      await beforeRetry?.();
    }
  }
}

/** Kills everything in `dir` and its child cgroups, deepest first, then removes them all. */
export async function removeCgroupTree(dir: string, useCgroupKill = false): Promise<void> {
  const empty = async (): Promise<void> => {
    for (const child of await listChildCgroups(dir)) {
      await removeCgroupTree(join(dir, child), useCgroupKill);
    }
    await killCgroupProcesses([dir], useCgroupKill);
  };
  await empty();
  // rmdir also answers EBUSY for a child cgroup made after the listing, or a process moved in
  // after the kill (a sandbox still starting while its node closes): a retry that only waited
  // would wait for nothing, so each one empties the folder again.
  await removeCgroupDir(dir, empty);
}

function signalProcess(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) {
    return;
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch (error) {
    if (errnoCode(error) !== 'ESRCH') {
      throw error;
    }
  }
}

function ignoreEnoent(error: unknown): void {
  if (!(error instanceof CgroupError && error.code === 'ENOENT')) {
    throw error;
  }
}
