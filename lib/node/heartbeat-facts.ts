/**
 * The facts a node adds to its heartbeat (see `lib/cluster/node-facts.ts`): its sandbox mode,
 * fixed once the sandbox is prepared, its cache's summary, read from the cache's in-memory
 * index at each beat, and whether it holds a secret key.
 */
import type { CgroupSupport } from '../../sandbox/launcher/cgroup/support.js';
import type { NodeFacts, SandboxMode } from '../cluster/node-facts.js';
import type { PackageCache } from '../packages/cache/package-cache.js';

/** How the node confines sandboxes: no sandbox, or bubblewrap with cgroups v2 / v1, else rlimits only. */
export function sandboxMode(unsafeNoSandbox: boolean, cgroups: CgroupSupport | undefined): SandboxMode {
  if (unsafeNoSandbox) {
    return 'unsandboxed';
  }
  if (cgroups?.mode === 'v2') {
    return 'cgroup-v2';
  }
  return cgroups?.mode === 'v1' ? 'cgroup-v1' : 'rlimits';
}

export function heartbeatFacts(
  sandbox: SandboxMode,
  cache: Pick<PackageCache, 'summary'>,
  secretKey: boolean,
): NodeFacts {
  const { versions, bytes } = cache.summary();
  return { sandbox, cachedVersions: versions, cachedBytes: bytes, secretKey };
}
