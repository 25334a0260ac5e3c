/**
 * What the sandbox tests' `runTask` calls share: real bwrap and prlimit, the runner copied next
 * to the package, the unprivileged sandbox user when the suite runs as root.
 */
import { checkBwrap } from '../../../sandbox/launcher/bwrap.js';
import type { CgroupSupport } from '../../../sandbox/launcher/cgroup/support.js';
import { findPrlimit } from '../../../sandbox/launcher/rlimits.js';
import { installRuntime } from '../../../sandbox/launcher/runtime-dir.js';

export async function sandboxBase(packageDir: string, cgroups?: CgroupSupport) {
  return {
    packageDir,
    input: null,
    attempt: 1,
    bwrap: await checkBwrap(),
    prlimit: findPrlimit(),
    ...(cgroups !== undefined ? { cgroups } : {}),
    sandboxUser: process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined,
    runtimeDir: await installRuntime(packageDir),
  };
}
