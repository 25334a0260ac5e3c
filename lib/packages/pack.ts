/**
 * Deterministic package tarballs: the same tree gives the same bytes whatever the file times,
 * owners or directory order, so the SHA-1 of the bytes is a content version and identical trees
 * deduplicate. We drive tar-stream directly (not tar-fs's `pack`) because tar-fs walks in
 * readdir order and copies times and owners from the file system.
 */
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { pack as tarPack } from 'tar-stream';

import { ManifestError, PackageRejectedError } from '../core/errors.js';
import { MANIFEST_FILE, type Manifest, parseManifest, requiredFiles } from './manifest.js';
import type { CompiledPackageLimits } from './limits.js';

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

interface TreeEntry {
  path: string;
  type: 'file' | 'directory';
  mode: number;
  data?: Buffer;
}

export async function packDirectory(dir: string, limits: CompiledPackageLimits): Promise<PackedPackage> {
  const manifest = await readManifest(dir);
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
        entries.push({ path, type: 'directory', mode: 0o755 });
        await walk(path, depth + 1);
      } else if (stats.isFile()) {
        unpackedBytes += stats.size;
        if (unpackedBytes > limits.maxUnpackedBytes) {
          throw new PackageRejectedError(
            `Expected at most ${limits.maxUnpackedBytes} uncompressed bytes in the package, got more`,
          );
        }
        const data = await readFile(join(dir, path));
        entries.push({ path, type: 'file', mode: stats.mode & 0o100 ? 0o755 : 0o644, data });
      } else {
        const kind = stats.isSymbolicLink() ? 'a symbolic link' : 'a special file';
        throw new PackageRejectedError(
          `Expected only regular files and folders in the package, got ${kind} at ${path}`,
        );
      }
    }
  };
  await walk('', 0);

  const files = new Map(entries.filter((e) => e.type === 'file').map((e) => [e.path, e]));
  for (const [taskName, task] of Object.entries(manifest.tasks)) {
    for (const file of requiredFiles(task)) {
      if (!files.has(file)) {
        const field = task.module !== undefined ? 'module' : 'command';
        throw new ManifestError(
          `Expected the file ${file} named by \`tasks.${taskName}.${field}\` to exist in the package, found none`,
          `tasks.${taskName}.${field}`,
        );
      }
    }
  }

  const tar = await toTar(entries);
  // level 9 and no file name: zlib's gzip header has mtime 0, so the bytes depend only on content.
  const tarball = gzipSync(tar, { level: 9 });
  if (tarball.length > limits.maxPackageBytes) {
    throw new PackageRejectedError(
      `Expected a package of at most ${limits.maxPackageBytes} bytes compressed, got ${tarball.length}`,
    );
  }
  return { manifest, tarball, sha1: sha1Hex(tarball), unpackedBytes, entries: entries.length };
}

export function sha1Hex(bytes: Buffer): string {
  return createHash('sha1').update(bytes).digest('hex');
}

async function readManifest(dir: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_FILE), 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
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

async function toTar(entries: TreeEntry[]): Promise<Buffer> {
  const archive = tarPack();
  const chunks: Buffer[] = [];
  archive.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    archive.on('end', resolve);
    archive.on('error', reject);
  });
  for (const entry of entries) {
    const header = { name: entry.path, mode: entry.mode, mtime: FIXED_MTIME, uid: 0, gid: 0, uname: '', gname: '' };
    if (entry.type === 'directory') {
      archive.entry({ ...header, type: 'directory' });
    } else {
      archive.entry({ ...header, type: 'file', size: entry.data?.length ?? 0 }, entry.data ?? Buffer.alloc(0));
    }
  }
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}
