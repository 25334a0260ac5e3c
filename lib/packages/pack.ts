/**
 * Deterministic package tarballs: the same tree gives the same bytes whatever the file times,
 * owners or directory order, so the SHA-1 of the bytes is a content version and identical trees
 * deduplicate. We drive tar-stream directly (not tar-fs's `pack`) because tar-fs walks in
 * readdir order and copies times and owners from the file system.
 *
 * Packing streams: the tree is walked for names and sizes only (the uncompressed limit is checked
 * from them before a byte is read), then each file is read in chunks through tar → gzip into a
 * sink that counts the compressed bytes as they are produced and stops everything the moment the
 * compressed limit is crossed. Memory stays bounded by the compressed limit, whatever the tree.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

import { pack as tarPack, type Pack } from 'tar-stream';

import { ManifestError, PackageRejectedError } from '../core/errors.js';
import { MANIFEST_FILE, type Manifest, parseManifest, requiredFileFields } from './manifest.js';
import type { CompiledPackageLimits } from './limits.js';

export { sha1Hex } from './sha1.js';

/** What `packDirectory` produces: the bytes to store and what they contain. */
export interface PackedPackage {
  manifest: Manifest;
  tarball: Buffer;
  sha1: string;
  /** Uncompressed bytes of all files. */
  unpackedBytes: number;
  entries: number;
}

/** Folders never packed: version-control metadata. */
const SKIPPED = new Set(['.git', '.hg', '.svn']);
const FIXED_MTIME = new Date(0);

/** One entry of the tree, as walked: no file content, only what the tar header needs. */
interface TreeEntry {
  path: string;
  type: 'file' | 'directory';
  mode: number;
  size: number;
}

export async function packDirectory(dir: string, limits: CompiledPackageLimits): Promise<PackedPackage> {
  const manifest = await readManifest(dir);
  const entries = await walkTree(dir, limits);
  checkRequiredFiles(manifest, entries);
  const unpackedBytes = entries.reduce((sum, entry) => sum + entry.size, 0);
  const { tarball, sha1 } = await writeTarball(dir, entries, limits.maxPackageBytes);
  return { manifest, tarball, sha1, unpackedBytes, entries: entries.length };
}

/**
 * The tree under `dir` in byte order of names, each folder before its contents. Checks every
 * limit that names and sizes decide (entries, depth, path length, uncompressed bytes), so a tree
 * over them is refused before any file is opened.
 */
async function walkTree(dir: string, limits: CompiledPackageLimits): Promise<TreeEntry[]> {
  const entries: TreeEntry[] = [];
  let unpackedBytes = 0;
  const walk = async (relative: string, depth: number): Promise<void> => {
    const names = (await readdir(join(dir, relative))).sort(compareBytes);
    for (const name of names) {
      if (SKIPPED.has(name)) {
        continue;
      }
      const path = relative ? `${relative}/${name}` : name;
      checkPathLimits(path, depth + 1, limits);
      const stats = await lstat(join(dir, path));
      if (entries.length >= limits.maxEntries) {
        throw new PackageRejectedError(
          `Expected at most ${limits.maxEntries} files and folders in the package, got more`,
        );
      }
      if (stats.isDirectory()) {
        entries.push({ path, type: 'directory', mode: 0o755, size: 0 });
        await walk(path, depth + 1);
      } else if (stats.isFile()) {
        unpackedBytes += stats.size;
        if (unpackedBytes > limits.maxUnpackedBytes) {
          throw new PackageRejectedError(
            `Expected at most ${limits.maxUnpackedBytes} uncompressed bytes in the package, got more`,
          );
        }
        entries.push({ path, type: 'file', mode: stats.mode & 0o100 ? 0o755 : 0o644, size: stats.size });
      } else {
        const kind = stats.isSymbolicLink() ? 'a symbolic link' : 'a special file';
        throw new PackageRejectedError(
          `Expected only regular files and folders in the package, got ${kind} at ${path}`,
        );
      }
    }
  };
  await walk('', 0);
  return entries;
}

/** Every file a task names (modules, the files in commands, parallel phases included) must ship. */
function checkRequiredFiles(manifest: Manifest, entries: readonly TreeEntry[]): void {
  const files = new Set(entries.filter((e) => e.type === 'file').map((e) => e.path));
  for (const [taskName, task] of Object.entries(manifest.tasks)) {
    for (const { file, field } of requiredFileFields(task)) {
      if (!files.has(file)) {
        throw new ManifestError(
          `Expected the file ${file} named by \`tasks.${taskName}.${field}\` to exist in the package, found none`,
          `tasks.${taskName}.${field}`,
        );
      }
    }
  }
}

/**
 * Streams the entries through tar and gzip into memory, hashing as it goes, and stops reading
 * the moment the compressed bytes pass `maxPackageBytes`. gzip at level 9 without a file name:
 * zlib's header then has mtime 0, and deflate's output does not depend on how its input was
 * chunked, so the bytes depend only on the tree.
 */
async function writeTarball(
  dir: string,
  entries: readonly TreeEntry[],
  maxPackageBytes: number,
): Promise<{ tarball: Buffer; sha1: string }> {
  const archive = tarPack();
  const hash = createHash('sha1');
  const chunks: Buffer[] = [];
  let size = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (size > maxPackageBytes) {
        callback(
          new PackageRejectedError(
            `Expected a package of at most ${maxPackageBytes} bytes compressed, got more (packing stopped at ${size} bytes)`,
          ),
        );
        return;
      }
      chunks.push(chunk);
      hash.update(chunk);
      callback();
    },
  });
  // Whichever side fails first stops the other: a refused sink aborts the file being read, and
  // a file that cannot be read destroys the archive (and so the pipeline).
  const stop = new AbortController();
  const piping = pipeline(archive, createGzip({ level: 9 }), sink).catch((error: unknown) => {
    stop.abort(error);
    throw error;
  });
  const feeding = feedArchive(archive, dir, entries, stop.signal).catch((error: unknown) => {
    archive.destroy(error as Error);
    throw error;
  });
  // The refusal is the answer when there is one; otherwise the feeding side's error is the cause
  // (the pipeline then only saw its archive destroyed).
  const failures = (await Promise.allSettled([piping, feeding]))
    .filter((settled) => settled.status === 'rejected')
    .map((settled) => settled.reason as Error);
  const failure = failures.find((error) => error instanceof PackageRejectedError) ?? failures.at(-1);
  if (failure !== undefined) {
    throw failure;
  }
  return { tarball: Buffer.concat(chunks, size), sha1: hash.digest('hex') };
}

/** Writes each entry into `archive`, reading files in chunks (tar-stream applies backpressure). */
async function feedArchive(
  archive: Pack,
  dir: string,
  entries: readonly TreeEntry[],
  signal: AbortSignal,
): Promise<void> {
  for (const entry of entries) {
    signal.throwIfAborted();
    const header = { name: entry.path, mode: entry.mode, mtime: FIXED_MTIME, uid: 0, gid: 0, uname: '', gname: '' };
    if (entry.type === 'directory') {
      archive.entry({ ...header, type: 'directory' });
      continue;
    }
    // tar-stream checks that the bytes written match `size`: a file changed since the walk fails.
    const writer = archive.entry({ ...header, type: 'file', size: entry.size });
    await pipeline(createReadStream(join(dir, entry.path)), writer, { signal });
  }
  archive.finalize();
}

async function readManifest(dir: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_FILE), 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      // Not finding the manifest of a folder that is not there is the wrong news: say the folder.
      const folder = await stat(dir).catch(() => undefined);
      if (folder === undefined) {
        throw new ManifestError(`Expected a package folder at ${dir}, found nothing there (no such folder)`);
      }
      if (!folder.isDirectory()) {
        throw new ManifestError(`Expected a package folder at ${dir}, got a file`);
      }
      throw new ManifestError(`Expected a ${MANIFEST_FILE} in ${dir}, found none`);
    }
    throw error;
  }
  return parseManifest(text);
}

function checkPathLimits(path: string, depth: number, limits: CompiledPackageLimits): void {
  if (depth > limits.maxPathDepth) {
    throw new PackageRejectedError(
      `Expected paths at most ${limits.maxPathDepth} folders deep, got ${depth} at ${path}`,
    );
  }
  if (Buffer.byteLength(path) > limits.maxPathLength) {
    throw new PackageRejectedError(
      `Expected paths of at most ${limits.maxPathLength} bytes, got ${Buffer.byteLength(path)}`,
    );
  }
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
