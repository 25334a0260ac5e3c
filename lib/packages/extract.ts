/**
 * Extracts a package tarball into a fresh folder, trusting nothing in it. Only regular files and
 * folders are accepted; anything else (links, devices, FIFOs, `..`, absolute or duplicate
 * paths) rejects the whole package. Sizes are counted from the headers before any byte is
 * written, so a decompression bomb stops at the limit. Modes are normalised (no setuid, setgid
 * or sticky bits) and files belong to the node's user. Files are created with O_EXCL, so nothing
 * is ever written through a link.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';

import { extract as tarExtract, type Header } from 'tar-stream';

import { PackageRejectedError } from '../core/errors.js';
import { isPackageRelativePath } from './manifest.js';
import type { CompiledPackageLimits } from './limits.js';

export async function extractPackage(
  tarball: Buffer,
  destination: string,
  limits: CompiledPackageLimits,
): Promise<void> {
  const extractor = tarExtract();
  const state: ExtractState = { seen: new Set<string>(), unpackedBytes: 0 };
  const consume = async (): Promise<void> => {
    for await (const entry of extractor) {
      await extractEntry(entry, destination, limits, state);
    }
  };
  await Promise.all([pipeline(Readable.from([tarball]), createGunzip(), extractor), consume()]).catch(
    (error: unknown) => {
      extractor.destroy();
      if (error instanceof PackageRejectedError) {
        throw error;
      }
      throw new PackageRejectedError(
        `Expected a valid gzipped tarball, got an error while reading it: ${(error as Error).message}`,
        { cause: error },
      );
    },
  );
}

/** What the entries seen so far add up to. */
interface ExtractState {
  seen: Set<string>;
  unpackedBytes: number;
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
  try {
    for await (const chunk of entry) {
      await handle.write(chunk as Buffer);
    }
  } finally {
    await handle.close();
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
