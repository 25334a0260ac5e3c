/**
 * Finds bubblewrap and proves it can build a sandbox here before a node takes any job: a node
 * that cannot sandbox must refuse to start, not fail every task.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

import { execa, type Options } from 'execa';

import { SandboxUnavailableError } from '../../lib/core/errors.js';
import { isolationArgs, systemMountArgs } from './bwrap-args.js';
import { seccompFlags, spawnWithSeccomp, WITH_SECCOMP } from './seccomp.js';

export const INSTALL_HINT = 'install it with: apt-get install -y bubblewrap';

/** Absolute path of `bwrap` on PATH, or undefined. */
export function findBwrap(path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) {
      continue;
    }
    const candidate = join(dir, 'bwrap');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Returns the bwrap path after running `true` in a sandbox like the real one, as `user` when
 * given (the sandbox user of a node running as root); throws otherwise.
 */
export async function checkBwrap(path?: string, user?: { uid: number; gid: number }): Promise<string> {
  const bwrap = findBwrap(path);
  if (bwrap === undefined) {
    throw new SandboxUnavailableError(`bubblewrap (bwrap) was not found on PATH; ${INSTALL_HINT}`);
  }
  // With the seccomp filter every sandbox gets: a kernel that refuses it fails here, not each task.
  const probeWith = (stdio: Options['stdio']) =>
    execa(bwrap, [...isolationArgs(), ...systemMountArgs(), ...(WITH_SECCOMP ? seccompFlags() : []), '--', 'true'], {
      stdio,
      reject: false,
      timeout: 10_000,
      extendEnv: false,
      env: {},
      ...user,
    });
  const probe = WITH_SECCOMP
    ? // execa types a descriptor as 3 to 9 only; any open one works.
      spawnWithSeccomp(['ignore', 'pipe', 'pipe'], (stdio) => probeWith(stdio as Options['stdio']))
    : probeWith('pipe');
  const { exitCode, stderr } = await probe;
  if (exitCode !== 0) {
    const reason = String(stderr).trim().split('\n').pop() ?? '';
    if (user !== undefined && user.uid !== 0) {
      throw new SandboxUnavailableError(
        `bubblewrap at ${bwrap} cannot create a sandbox as the sandbox user ${user.uid}:${user.gid} (${reason || `exit code ${exitCode}`}); ` +
          'it needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0, and on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0)',
      );
    }
    throw new SandboxUnavailableError(
      `bubblewrap at ${bwrap} cannot create a sandbox on this host (${reason || `exit code ${exitCode}`}); ` +
        'it needs unprivileged user namespaces, or root, and in a container a seccomp/AppArmor profile that allows them',
    );
  }
  return bwrap;
}
