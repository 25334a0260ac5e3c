/**
 * Extracts a package tarball into a fresh folder, trusting nothing in it. Only regular files and
 * folders are accepted; anything else (links, devices, FIFOs, `..`, absolute or duplicate
 * paths) rejects the whole package. Sizes are counted from the headers before any byte is
 * written, so a decompression bomb stops at the limit. Modes are normalised (no setuid, setgid
 * or sticky bits) and files belong to the node's user. Files are created with O_EXCL, so nothing
 * is ever written through a link.
 *
 * Each file's SHA-256 is computed from the bytes as they are written, so the cache's tree digest
 * (`cache/tree-digest.ts`) need not read the tree back.
 *
 * tar-stream is imported on the first extraction: an idle node that has synced nothing does not
 * hold it.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';

import type { Header } from 'tar-stream';

import { PackageRejectedError } from '../core/errors.js';
import { isPackageRelativePath } from './manifest.js';
import type { CompiledPackageLimits } from './limits.js';

/** A file as extraction wrote it. */
export interface WrittenFile {
  sha256: string;
  size: number;
}

/** Bytes buffered per file before one `writev`: fewer trips to the thread pool than one write per 16 KiB. */
const WRITE_BATCH_BYTES = 1024 * 1024;

/**
 * Extracts `tarball` (one buffer, or its chunks in order) into `destination`; returns each
 * written file's SHA-256 and size by its normalised path.
 */
export async function extractPackage(
  tarball: Buffer | readonly Buffer[],
  destination: string,
  limits: CompiledPackageLimits,
): Promise<Map<string, WrittenFile>> {
  const { extract: tarExtract } = await import('tar-stream');
  const extractor = tarExtract();
  const state: ExtractState = { seen: new Set<string>(), unpackedBytes: 0, written: new Map() };
  const consume = async (): Promise<void> => {
    for await (const entry of extractor) {
      await extractEntry(entry, destination, limits, state);
    }
  };
  // Chunks of at most 1 MiB keep gunzip's output paced by the extractor instead of inflating
  // the whole package into memory at once.
  const input = Buffer.isBuffer(tarball) ? [tarball] : tarball;
  await Promise.all([pipeline(Readable.from(input), createGunzip(), extractor), consume()]).catch((error: unknown) => {
    extractor.destroy();
    if (error instanceof PackageRejectedError) {
      throw error;
    }
    throw new PackageRejectedError(
      `Expected a valid gzipped tarball, got an error while reading it: ${(error as Error).message}`,
      { cause: error },
    );
  });
  return state.written;
}

/** What the entries seen so far add up to. */
interface ExtractState {
  seen: Set<string>;
  unpackedBytes: number;
  written: Map<string, WrittenFile>;
}

type TarEntry = AsyncIterable<unknown> & { header: Header; resume(): void };

/** Checks one entry against the limits and what came before, then writes it (a folder or a file). */
async function extractEntry(
  entry: TarEntry,
  destination: string,
  limits: CompiledPackageLimits,
  state: ExtractState,
): Promise<void> {
  const { header } = entry;
  const normalised = checkEntryPath(header.name, limits, state.seen);
  const target = join(destination, normalised);
  if (header.type === 'directory') {
    await mkdir(target, { recursive: true, mode: 0o755 });
    entry.resume();
    return;
  }
  if (header.type !== 'file') {
    throw new PackageRejectedError(
      `Expected only regular files and folders in the package, got a ${header.type ?? 'unknown'} entry at ${JSON.stringify(normalised)}`,
    );
  }
  // Counted from the header, before a byte is written: a decompression bomb stops here.
  state.unpackedBytes += header.size ?? 0;
  if (state.unpackedBytes > limits.maxUnpackedBytes) {
    throw new PackageRejectedError(
      `Expected at most ${limits.maxUnpackedBytes} uncompressed bytes in the package, got more`,
    );
  }
  await mkdir(join(target, '..'), { recursive: true, mode: 0o755 });
  const mode = (header.mode ?? 0) & 0o100 ? 0o755 : 0o644;
  const handle = await open(target, 'wx', mode);
  const hash = createHash('sha256');
  let size = 0;
  try {
    let batch: Buffer[] = [];
    let batchBytes = 0;
    for await (const chunk of entry) {
      const bytes = chunk as Buffer;
      hash.update(bytes);
      size += bytes.length;
      batch.push(bytes);
      batchBytes += bytes.length;
      if (batchBytes >= WRITE_BATCH_BYTES) {
        await writeAll(handle, batch);
        batch = [];
        batchBytes = 0;
      }
    }
    await writeAll(handle, batch);
  } finally {
    await handle.close();
  }
  state.written.set(normalised, { sha256: hash.digest('hex'), size });
}

/** Writes `chunks` in order; `writev` may write less than asked, so the rest is written again. */
async function writeAll(handle: FileHandle, chunks: Buffer[]): Promise<void> {
  let rest = chunks;
  while (rest.length > 0) {
    let { bytesWritten } = await handle.writev(rest);
    while (rest.length > 0 && bytesWritten >= (rest[0]?.length ?? 0)) {
      bytesWritten -= rest[0]?.length ?? 0;
      rest = rest.slice(1);
    }
    if (bytesWritten > 0 && rest[0] !== undefined) {
      rest = [rest[0].subarray(bytesWritten), ...rest.slice(1)];
    }
  }
}

/** The entry's path, normalised, once it is known to be inside the package, within limits and new. */
function checkEntryPath(name: string, limits: CompiledPackageLimits, seen: Set<string>): string {
  const path = name.replace(/\/+$/, '');
  if (seen.size >= limits.maxEntries) {
    throw new PackageRejectedError(`Expected at most ${limits.maxEntries} entries in the package, got more`);
  }
  if (!isPackageRelativePath(path)) {
    throw new PackageRejectedError(
      `Expected package paths to be relative and inside the package, got ${JSON.stringify(name)}`,
    );
  }
  const depth = path.split('/').length;
  if (depth > limits.maxPathDepth || Buffer.byteLength(path) > limits.maxPathLength) {
    throw new PackageRejectedError(
      `Expected package paths at most ${limits.maxPathDepth} deep and ${limits.maxPathLength} bytes long, got ${JSON.stringify(path.slice(0, 100))}`,
    );
  }
  const normalised = path.replace(/^\.\//, '');
  if (seen.has(normalised)) {
    throw new PackageRejectedError(`Expected each path once in the package, got ${JSON.stringify(normalised)} twice`);
  }
  seen.add(normalised);
  return normalised;
}
