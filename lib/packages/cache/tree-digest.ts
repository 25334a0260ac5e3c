/**
 * A content digest of an extracted package tree, so a node can tell whether a cached version is
 * still exactly what it extracted. The digest is sha256 over one line per entry, sorted by path
 * bytes: `path NUL type NUL mode NUL sha256(file)` (folders have no content hash). Any change,
 * deletion or addition of a file or folder, or a change of mode, changes the digest.
 *
 * The walk never follows a link: entries are read with `lstat`, files are opened with
 * `O_NOFOLLOW`, and a link, FIFO, socket or device anywhere in the tree is itself a sign of
 * tampering (extraction only ever creates regular files and folders).
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { CacheCorruptError } from '../../core/errors.js';

/** What {@link digestTree} measures. */
export interface TreeDigest {
  /** sha256 hex of the sorted entry lines. */
  digest: string;
  /** Sum of the sizes of all regular files (what the cache budget counts). */
  bytes: number;
  /** Files and folders below the root. */
  entries: number;
}

// O_NONBLOCK: if a file is swapped for a FIFO between lstat and open, open must not hang.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const READ_CHUNK = 64 * 1024;

/**
 * Walks `root` once and digests it. `written` holds the SHA-256 of files whose bytes the caller
 * just wrote and hashed itself (extraction): such a file is not read back when its size on disk
 * matches; every entry is still `lstat`ed, so anything else in the tree still shows.
 * Throws `CacheCorruptError` if `root` is not a real folder, if the tree holds anything but regular files and folders, or more than `maxEntries` entries;
 * file-system errors (ENOENT when a file vanishes mid-walk) propagate as they are.
 */
export async function digestTree(
  root: string,
  maxEntries: number,
  written?: ReadonlyMap<string, { sha256: string; size: number }>,
): Promise<TreeDigest> {
  const rootStats = await lstat(root);
  if (!rootStats.isDirectory()) {
    throw new CacheCorruptError(`Expected ${root} to be a folder, got ${describeType(rootStats)}`, root);
  }
  const lines: Array<{ path: Buffer; line: string }> = [];
  let bytes = 0;

  const walk = async (relative: string): Promise<void> => {
    const folder = relative ? join(root, relative) : root;
    const names = await readdir(folder);
    const over = names[maxEntries - lines.length];
    if (over !== undefined) {
      const path = relative ? `${relative}/${over}` : over;
      throw new CacheCorruptError(`Expected at most ${maxEntries} entries in ${root}, got more`, join(root, path));
    }
    // One folder's lstats at once: a sequential walk waits a thread-pool round trip per entry.
    const found = await Promise.all(names.map(async (name) => ({ name, entry: await lstat(join(folder, name)) })));
    for (const { name, entry } of found) {
      const path = relative ? `${relative}/${name}` : name;
      if (lines.length >= maxEntries) {
        throw new CacheCorruptError(`Expected at most ${maxEntries} entries in ${root}, got more`, join(root, path));
      }
      const mode = (entry.mode & 0o7777).toString(8);
      if (entry.isDirectory()) {
        lines.push({ path: Buffer.from(path), line: `${path}\0d\0${mode}\0\n` });
        await walk(path);
      } else if (entry.isFile()) {
        const known = written?.get(path);
        const { sha256, size } =
          known !== undefined && known.size === entry.size ? known : await hashFile(join(root, path));
        bytes += size;
        lines.push({ path: Buffer.from(path), line: `${path}\0f\0${mode}\0${sha256}\n` });
      } else {
        throw new CacheCorruptError(
          `Expected only regular files and folders in ${root}, got ${describeType(entry)} at ${JSON.stringify(path)}`,
          join(root, path),
        );
      }
    }
  };
  await walk('');

  const hash = createHash('sha256');
  for (const { line } of lines.sort((a, b) => Buffer.compare(a.path, b.path))) {
    hash.update(line);
  }
  return { digest: hash.digest('hex'), bytes, entries: lines.length };
}

async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const handle = await open(path, OPEN_FLAGS);
  try {
    // The path may have been swapped between lstat and open: trust only what we opened.
    if (!(await handle.stat()).isFile()) {
      throw new CacheCorruptError(`Expected a regular file at ${path}, got something else`, path);
    }
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(READ_CHUNK);
    let size = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, READ_CHUNK, null);
      if (bytesRead === 0) {
        break;
      }
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { sha256: hash.digest('hex'), size };
  } finally {
    await handle.close();
  }
}

function describeType(stats: { isSymbolicLink(): boolean; isFile(): boolean; isDirectory(): boolean }): string {
  if (stats.isSymbolicLink()) {
    return 'a symbolic link';
  }
  return stats.isFile() ? 'a file' : stats.isDirectory() ? 'a folder' : 'a special file';
}
