/**
 * Network folders of node processes that died without running their exit handler (SIGKILL, the
 * OOM killer). Each node process makes one parent folder in the temp folder for its sandboxes'
 * sockets (`sandbox-network.ts`), named with the process's mark (`process-mark.ts`), so a later
 * node can tell whose it is and whether its owner is gone.
 */
import { lstat, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { isMarkAlive, nodeMark } from '../process-mark.js';

const PREFIX = 'tydra-net-';

/** The `mkdtemp` prefix of this process's network folder: `tydra-net-<pid>_<start time>-`. */
export function networkFolderPrefix(): string {
  return `${PREFIX}${nodeMark().replace(':', '_')}-`;
}

/**
 * Removes the network folders in `dir` whose node process is gone. Only directories this user
 * owns: the temp folder is everyone's, and a name there proves nothing. Returns their paths.
 */
export async function removeStaleNetworkFolders(dir = tmpdir()): Promise<string[]> {
  const pattern = new RegExp(`^${PREFIX}(\\d+)_(\\d+)-`);
  const uid = process.getuid?.();
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    const match = pattern.exec(name);
    if (match === null || (await isMarkAlive(`${match[1]}:${match[2]}`))) {
      continue;
    }
    const path = join(dir, name);
    const stat = await lstat(path).catch(() => undefined);
    if (stat?.isDirectory() === true && stat.uid === uid) {
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    }
  }
  return removed;
}
