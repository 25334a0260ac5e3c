/**
 * `node -e 0` spawned exactly as tydra spawns a JavaScript task's sandbox (prlimit, bwrap with
 * every isolation flag and mount, the sync pipes, Node as the sandbox's pid 1), let go at once,
 * with no cgroup and no runner: what no change in tydra's own code can go under. `cold-start.ts`
 * times it against a bare `node -e 0`; `run.ts` puts it behind a raw BullMQ worker, the
 * throughput any sandboxed design would start from.
 */
import { realpathSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { Writable } from 'node:stream';

import { DEFAULT_TASK_LIMITS } from '../lib/core/limits.js';
import { defaultSandboxUser } from '../lib/node/options.js';
import { checkBwrap } from '../sandbox/launcher/bwrap.js';
import { RUNNER_AS_PID_1_ARGS, sandboxNodePath } from '../sandbox/launcher/bwrap-args.js';
import { SANDBOX_SYNC_FDS } from '../sandbox/launcher/cgroup/attach.js';
import { prepareLaunch } from '../sandbox/launcher/launch.js';
import { findPrlimit } from '../sandbox/launcher/rlimits.js';
import { installRuntime } from '../sandbox/launcher/runtime-dir.js';
import { spawnSandbox } from '../sandbox/launcher/spawn-sandbox.js';

/** A function that runs one floor sandbox to its end, for package folder `packageDir`. */
export async function sandboxFloor(packageDir: string, runtimeParent: string): Promise<() => Promise<void>> {
  const sandbox = {
    packageDir,
    // No cgroup: a command's memory limit is then an address-space rlimit, under which V8
    // cannot reserve its code range. Set out of reach here; the other rlimits stay.
    limits: { ...DEFAULT_TASK_LIMITS, memoryBytes: 2 ** 45 },
    bwrap: await checkBwrap(),
    prlimit: findPrlimit(),
    runtimeDir: await installRuntime(runtimeParent),
    sandboxUser: defaultSandboxUser(),
  };
  const node = sandboxNodePath(realpathSync(process.execPath));
  return async () => {
    const launch = await prepareLaunch(
      { ...sandbox, instanceId: randomUUID(), attempt: 1 },
      { command: [node, '-e', '0'] },
    );
    // As a runner with a cgroup is started (`RUNNER_AS_PID_1_ARGS`): no bwrap init around Node.
    const args = [...launch.args];
    args.splice(args.lastIndexOf('--'), 0, ...RUNNER_AS_PID_1_ARGS);
    const child = spawnSandbox({ ...launch, args, timeoutMs: 10_000, user: sandbox.sandboxUser });
    // Let go at once: the byte the node writes once the sandbox is in its cgroup (`attach.ts`).
    (child.stdio[SANDBOX_SYNC_FDS.blockFd] as Writable).end(Buffer.of(1));
    const { exitCode } = await child;
    if (exitCode !== 0) {
      throw new Error(`Expected node -e 0 in the sandbox to exit 0, got ${String(exitCode)}`);
    }
  };
}
