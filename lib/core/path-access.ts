/**
 * Whether another user can reach a folder: bubblewrap, run as the sandbox user, resolves every
 * bind source itself, so the folder and each of its parents must be searchable (x) by that
 * user. (What the node creates inside, package and runner folders, is 0755.) The node runs as
 * root and cannot ask `access()` for another user, so the mode bits are read and checked here.
 */
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * The first folder on the way to `path` that `uid`/`gid` cannot pass, or undefined if none. The
 * walk stops at the first folder that does not exist yet: the caller creates the rest (0755), and
 * can ask before it creates anything.
 */
export async function unreachableFolder(
  path: string,
  uid: number,
  gid: number,
): Promise<{ path: string; mode: string } | undefined> {
  const target = resolve(path);
  const folders: string[] = [];
  for (let dir = target; ; dir = dirname(dir)) {
    folders.unshift(dir);
    if (dir === dirname(dir)) {
      break;
    }
  }
  for (const dir of folders) {
    const info = await stat(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') {
        return undefined;
      }
      throw error;
    });
    if (info === undefined) {
      break;
    }
    const need = 0o1;
    const bits =
      info.uid === uid ? (info.mode >> 6) & 0o7 : info.gid === gid ? (info.mode >> 3) & 0o7 : info.mode & 0o7;
    if (uid !== 0 && (bits & need) !== need) {
      return { path: dir, mode: (info.mode & 0o7777).toString(8).padStart(4, '0') };
    }
  }
  return undefined;
}
