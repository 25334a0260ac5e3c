/** What the phase tests share: the options of a sandbox on this host, and a package of phase fixtures. */
import { type CompiledTaskLimits, DEFAULT_TASK_LIMITS } from '../../../lib/core/limits.js';
import { checkBwrap } from '../../../sandbox/launcher/bwrap.js';
import { type CgroupSupport, detectCgroups, removeCgroupParent } from '../../../sandbox/launcher/cgroup/support.js';
import type { PhaseEntry, PhaseOptions } from '../../../sandbox/launcher/phases/index.js';
import { findPrlimit } from '../../../sandbox/launcher/rlimits.js';
import { installRuntime } from '../../../sandbox/launcher/runtime-dir.js';
import { copyFixture, defer } from '../../helpers.js';

export const MiB = 1024 * 1024;
export const PYTHON = '/usr/bin/python3';

export type PhaseBase = Omit<PhaseOptions, 'entry' | 'limits'>;

/** Detects cgroups once for the file (`before`) and removes its parent cgroup (`after`). */
export function cgroupsForFile(name: string): () => CgroupSupport {
  let cgroups: CgroupSupport | undefined;
  before(async () => {
    cgroups = await detectCgroups({ parentName: `tydra-test-${name}-${process.pid}` });
  });
  after(() => (cgroups === undefined ? undefined : removeCgroupParent(cgroups)));
  return () => {
    if (cgroups === undefined) {
      throw new Error('cgroups are detected in before()');
    }
    return cgroups;
  };
}

/** A fresh copy of test/fixtures/parallel and the sandbox options to run its phases under bwrap. */
export async function phaseBase(cgroups: CgroupSupport): Promise<PhaseBase> {
  const packageDir = await copyFixture('parallel');
  return {
    packageDir,
    instanceId: `phases-${process.pid}-${Math.random().toString(16).slice(2)}`,
    attempt: 1,
    bwrap: await checkBwrap(),
    prlimit: findPrlimit(),
    cgroups,
    sandboxUser: process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined,
    runtimeDir: await installRuntime(packageDir),
  };
}

export function phaseOptions(
  base: PhaseBase,
  entry: PhaseEntry,
  limits: Partial<CompiledTaskLimits> = {},
  extra: Partial<PhaseOptions> = {},
): PhaseOptions {
  return { ...base, entry, limits: { ...DEFAULT_TASK_LIMITS, ...limits }, ...extra };
}

/** Closes `closeable` after the test, whatever happens. */
export function closeAfter<T extends { close(): Promise<void> }>(closeable: T): T {
  defer(() => closeable.close());
  return closeable;
}
