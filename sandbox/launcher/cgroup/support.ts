/**
 * Which cgroup hierarchy this host offers for per-TaskInstance limits, and tydra's parent cgroup
 * in it. Detection prefers cgroup v2, but only when the v2 hierarchy really offers the `memory`
 * and `pids` controllers: a hybrid host (systemd's `/sys/fs/cgroup/unified`) mounts an empty v2
 * tree next to the v1 controllers, and that does not count. Then cgroup v1 (`memory` and `pids`
 * hierarchies, `cpuacct` for CPU time when mounted). Otherwise `none`, with a reason a person can
 * act on; the node then falls back to rlimits (see `rlimits.ts`).
 *
 * Detection creates the parent cgroup (idempotent) because only creating it proves it can be
 * created. It never removes anything: stale children of a crashed node are removed by
 * `cleanStaleCgroups`, which the node calls at start-up, before it runs any task.
 */
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { CgroupError, describe, InvalidOptionError } from '../../../lib/core/errors.js';
import { errnoCode, listChildCgroups, pathExists, readCgroupFile, removeCgroupTree, writeCgroupFile } from './fs.js';

/** Where cgroup hierarchies are mounted on every mainstream distribution. */
export const CGROUP_MOUNT = '/sys/fs/cgroup';
/** The parent cgroup every TaskInstance cgroup is created in (a sibling of the node's own). */
export const DEFAULT_CGROUP_PARENT = 'tydra';
/**
 * cgroup v2 only: the leaf the node moves itself into when its cgroup holds processes and so may
 * not delegate controllers ("no internal processes" rule), typically in a container whose cgroup
 * namespace root is the node's own cgroup.
 */
export const NODE_LEAF_CGROUP = 'tydra-node';

const REQUIRED_V2_CONTROLLERS = ['memory', 'pids'] as const;
const CGROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export interface DetectCgroupsOptions {
  /**
   * Where the cgroup hierarchies are mounted: the v2 root, or the folder holding one mount per
   * v1 controller.
   * @defaultValue `'/sys/fs/cgroup'`
   */
  mountRoot?: string;
  /**
   * Name of the parent cgroup created under the root (v2) or under each v1 hierarchy. Give each
   * node on a host its own: `cleanStaleCgroups` removes every child of it. Tests use their own
   * (`tydra-test-<pid>`) so they never touch a running node's sandboxes.
   * @defaultValue `'tydra'`
   */
  parentName?: string;
}

/** cgroup v2: one folder per TaskInstance under `parent`. */
export interface CgroupV2Support {
  mode: 'v2';
  /** Absolute path of the parent cgroup. */
  parent: string;
  /** Controllers enabled for the TaskInstance cgroups: `memory` and `pids`, plus `cpu` when offered. */
  controllers: readonly string[];
  /** The kernel has `cgroup.kill` (5.14+), which kills a whole cgroup atomically. */
  cgroupKill: boolean;
}

/** cgroup v1: one folder per TaskInstance in each hierarchy, same name. */
export interface CgroupV1Support {
  mode: 'v1';
  /** Parent cgroup in the `memory` hierarchy. */
  memory: string;
  /** Parent cgroup in the `pids` hierarchy. */
  pids: string;
  /** Parent cgroup in the `cpuacct` hierarchy; undefined when it is not mounted (CPU usage unknown). */
  cpuacct: string | undefined;
}

/** No usable cgroups; `reason` says why (not root, read-only mount, missing controller…). */
export interface NoCgroupSupport {
  mode: 'none';
  reason: string;
}

export type CgroupSupport = CgroupV2Support | CgroupV1Support | NoCgroupSupport;
/** Support a TaskInstance cgroup can be created with. */
export type AvailableCgroupSupport = CgroupV2Support | CgroupV1Support;

/** Detects cgroup support and creates the parent cgroup; never throws for an unsupported host. */
export async function detectCgroups(options: DetectCgroupsOptions = {}): Promise<CgroupSupport> {
  const root = options.mountRoot ?? CGROUP_MOUNT;
  const parentName = options.parentName ?? DEFAULT_CGROUP_PARENT;
  assertCgroupName(parentName, 'parentName');
  if (parentName === NODE_LEAF_CGROUP) {
    throw new InvalidOptionError(
      `Expected the \`parentName\` option to differ from \`${NODE_LEAF_CGROUP}\` (the node's own leaf cgroup), got ${describe(parentName)}`,
    );
  }

  let v2Reason: string | undefined;
  // A pure v2 host mounts it at the root; a hybrid one at `unified`.
  for (const dir of [root, join(root, 'unified')]) {
    const offered = await readControllers(dir);
    if (offered === undefined) {
      continue;
    }
    const missing = REQUIRED_V2_CONTROLLERS.filter((name) => !offered.includes(name));
    if (missing.length === 0) {
      return setUpV2(dir, parentName, offered);
    }
    v2Reason ??= `the cgroup v2 hierarchy at ${dir} offers ${offered.length > 0 ? offered.join(' ') : 'no controllers'}, not ${missing.join(' and ')}`;
  }
  const v1 = await setUpV1(root, parentName);
  if (v1.mode === 'none' && v2Reason !== undefined) {
    return { mode: 'none', reason: `${v1.reason}; ${v2Reason}` };
  }
  return v1;
}

/**
 * Kills the processes in every child cgroup of the parent, then removes those cgroups: the
 * sandboxes of a node that crashed. Call it once at start-up, before running any task, and only
 * on a parent this node owns. Returns the names removed.
 */
export async function cleanStaleCgroups(support: CgroupSupport): Promise<string[]> {
  if (support.mode === 'none') {
    return [];
  }
  const parents =
    support.mode === 'v2'
      ? [support.parent]
      : [support.memory, support.pids, support.cpuacct].filter((dir) => dir !== undefined);
  const removed = new Set<string>();
  for (const parent of parents) {
    for (const name of await listChildCgroups(parent)) {
      await removeCgroupTree(join(parent, name), support.mode === 'v2' && support.cgroupKill);
      removed.add(name);
    }
  }
  return [...removed].sort();
}

/** Throws unless `name` is a single safe path segment. @internal */
export function assertCgroupName(name: string, what: string): void {
  if (typeof name !== 'string' || !CGROUP_NAME.test(name)) {
    throw new InvalidOptionError(
      `Expected the \`${what}\` option to be a cgroup name (letters, digits, \`_\`, \`.\`, \`-\`; at most 128; not starting with \`.\`), got ${describe(name)}`,
    );
  }
}

async function readControllers(dir: string): Promise<string[] | undefined> {
  const text = await readCgroupFile(join(dir, 'cgroup.controllers')).catch(() => undefined);
  return text
    ?.trim()
    .split(/\s+/)
    .filter((name) => name !== '');
}

async function setUpV2(root: string, parentName: string, offered: readonly string[]): Promise<CgroupSupport> {
  const controllers = [...REQUIRED_V2_CONTROLLERS, ...(offered.includes('cpu') ? ['cpu'] : [])];
  try {
    await enableControllers(root, REQUIRED_V2_CONTROLLERS);
  } catch (error) {
    if (!(error instanceof CgroupError && error.code === 'EBUSY')) {
      return { mode: 'none', reason: reasonFor(error, root) };
    }
    // "No internal processes": a non-root cgroup holding processes cannot hand controllers to
    // children. In a container the namespace root holds the node itself; move it to a leaf.
    const leaf = join(root, NODE_LEAF_CGROUP);
    try {
      await makeCgroup(leaf);
      await writeCgroupFile(join(leaf, 'cgroup.procs'), String(process.pid));
      await enableControllers(root, REQUIRED_V2_CONTROLLERS);
    } catch (retryError) {
      if (retryError instanceof CgroupError && retryError.code === 'EBUSY') {
        const others =
          (await readCgroupFile(join(root, 'cgroup.procs')).catch(() => ''))?.split('\n').filter((line) => line !== '')
            .length ?? 0;
        return {
          mode: 'none',
          reason: `cannot enable memory and pids for child cgroups of ${root}: ${others} other process(es) still live in it after this node moved to ${leaf} (cgroup v2 "no internal processes" rule, EBUSY)`,
        };
      }
      return { mode: 'none', reason: reasonFor(retryError, root) };
    }
  }
  const parent = join(root, parentName);
  try {
    await makeCgroup(parent);
    await enableControllers(parent, REQUIRED_V2_CONTROLLERS);
  } catch (error) {
    return { mode: 'none', reason: reasonFor(error, root) };
  }
  // CPU accounting (cpu.stat usage_usec) needs no controller; `cpu` only adds cpu.max/weight.
  const cpu =
    controllers.includes('cpu') &&
    (await enableControllers(root, ['cpu'])
      .then(() => enableControllers(parent, ['cpu']))
      .then(
        () => true,
        () => false,
      ));
  return {
    mode: 'v2',
    parent,
    controllers: cpu ? controllers : [...REQUIRED_V2_CONTROLLERS],
    cgroupKill: await pathExists(join(parent, 'cgroup.kill')),
  };
}

/** Writes `+name` for each controller not yet in `cgroup.subtree_control`. */
async function enableControllers(dir: string, names: readonly string[]): Promise<void> {
  const file = join(dir, 'cgroup.subtree_control');
  const enabled = ((await readCgroupFile(file)) ?? '').trim().split(/\s+/);
  const missing = names.filter((name) => !enabled.includes(name));
  if (missing.length > 0) {
    await writeCgroupFile(file, missing.map((name) => `+${name}`).join(' '));
  }
}

async function setUpV1(root: string, parentName: string): Promise<CgroupSupport> {
  const hierarchies = { memory: join(root, 'memory'), pids: join(root, 'pids'), cpuacct: join(root, 'cpuacct') };
  if (!(await pathExists(join(hierarchies.memory, 'memory.limit_in_bytes')))) {
    return { mode: 'none', reason: `no memory controller: no cgroup v1 memory hierarchy at ${hierarchies.memory}` };
  }
  if (!(await pathExists(join(hierarchies.pids, 'cgroup.procs')))) {
    return { mode: 'none', reason: `no pids controller: no cgroup v1 pids hierarchy at ${hierarchies.pids}` };
  }
  const memory = join(hierarchies.memory, parentName);
  const pids = join(hierarchies.pids, parentName);
  try {
    await makeCgroup(memory);
    await makeCgroup(pids);
  } catch (error) {
    return { mode: 'none', reason: reasonFor(error, root) };
  }
  // The root of a pids hierarchy has no pids.* files; a child of it always has pids.max.
  if (!(await pathExists(join(pids, 'pids.max')))) {
    return {
      mode: 'none',
      reason: `no pids controller: ${hierarchies.pids} is not a cgroup v1 pids hierarchy (no pids.max in ${pids})`,
    };
  }
  let cpuacct: string | undefined;
  if (await pathExists(join(hierarchies.cpuacct, 'cpuacct.usage'))) {
    cpuacct = join(hierarchies.cpuacct, parentName);
    try {
      await makeCgroup(cpuacct);
    } catch (error) {
      return { mode: 'none', reason: reasonFor(error, root) };
    }
  }
  return { mode: 'v1', memory, pids, cpuacct };
}

/** mkdir that accepts an existing cgroup. */
async function makeCgroup(path: string): Promise<void> {
  try {
    await mkdir(path);
  } catch (error) {
    if (errnoCode(error) !== 'EEXIST') {
      throw new CgroupError(
        `Expected to create the cgroup ${path}, got ${errnoCode(error) ?? String(error)}`,
        path,
        errnoCode(error),
        { cause: error },
      );
    }
  }
}

/** A `none` reason from a refused mkdir or write. */
function reasonFor(error: unknown, root: string): string {
  const code = errnoCode(error) ?? (error instanceof CgroupError ? error.code : undefined);
  const detail = error instanceof Error ? error.message : String(error);
  switch (code) {
    case 'EROFS':
      return `read-only ${root} (mounted read-only, as in most containers): ${detail}`;
    case 'EACCES':
    case 'EPERM':
      return `${process.getuid?.() === 0 ? 'not permitted' : 'not root and no cgroup delegated to this user'}: ${detail}`;
    default:
      return detail;
  }
}

/**
 * Removes the parent cgroup and everything under it: called when a node closes, so a host that
 * runs many short-lived nodes (tests, autoscaling) does not collect empty cgroup folders. On v1
 * every hierarchy is tried even when one fails (what can go, goes); the first failure is thrown
 * once all were tried.
 */
export async function removeCgroupParent(support: CgroupSupport): Promise<void> {
  if (support.mode === 'none') {
    return;
  }
  const parents =
    support.mode === 'v2'
      ? [support.parent]
      : [support.memory, support.pids, support.cpuacct].filter((dir) => dir !== undefined);
  const failures: unknown[] = [];
  for (const parent of parents) {
    await removeCgroupTree(parent, support.mode === 'v2' && support.cgroupKill).catch((error: unknown) => {
      failures.push(error);
    });
  }
  if (failures.length > 0) {
    throw failures[0];
  }
}

/**
 * Removes the parent cgroups `<prefix>.<…>.<pid>` of node processes on this host that are gone
 * (a node killed with SIGKILL never removes its own, so every crash would leave one more).
 * Their sandboxes died with them (`--die-with-parent`); anything left is killed first. Returns
 * the names removed.
 */
export async function removeOrphanParents(support: CgroupSupport, prefix: string): Promise<string[]> {
  if (support.mode === 'none') {
    return [];
  }
  const own = support.mode === 'v2' ? support.parent : support.memory;
  const roots =
    support.mode === 'v2'
      ? [dirname(support.parent)]
      : [support.memory, support.pids, support.cpuacct].filter((dir) => dir !== undefined).map((dir) => dirname(dir));
  const cleaned: string[] = [];
  for (const name of await listChildCgroups(dirname(own))) {
    const pid = Number(/\.(\d+)$/.exec(name)?.[1]);
    if (!name.startsWith(`${prefix}.`) || name === basename(own) || !Number.isSafeInteger(pid) || processExists(pid)) {
      continue;
    }
    for (const root of roots) {
      await removeCgroupTree(join(root, name), support.mode === 'v2' && support.cgroupKill).catch(() => undefined);
    }
    cleaned.push(name);
  }
  return cleaned;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoCode(error) !== 'ESRCH';
  }
}
