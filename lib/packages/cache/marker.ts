/**
 * The marker of a cached package version: `<cacheDir>/<name>/<sha1>.json`, beside the version
 * folder and not inside it, so a task (which sees only the folder) never sees it. It is written
 * after the folder is renamed into place, so a version folder without a valid marker is a crash
 * leftover. Its mtime is the version's last use, which orders LRU eviction across restarts.
 * @internal
 */
import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { z } from 'zod';

import { CacheCorruptError } from '../../core/errors.js';

/** Prefix of every temporary name in the cache; anything so named is removed at start. */
export const TMP_PREFIX = '.tmp-';
export const MARKER_SUFFIX = '.json';
const MAX_MARKER_BYTES = 4096;
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

const markerSchema = z.strictObject({
  /** Format version; a marker of another version is treated as missing. */
  version: z.literal(1),
  name: z.string(),
  sha1: z.string(),
  /** Bytes of all extracted files (what the cache budget counts). */
  bytes: z.number().int().nonnegative(),
  /** Files and folders in the version folder. */
  entries: z.number().int().nonnegative(),
  /** {@link digestTree} of the folder right after extraction. */
  digest: z.string().regex(/^[0-9a-f]{64}$/),
  /** When the version was extracted (ms since the epoch). */
  extractedAt: z.number().int().nonnegative(),
});

/** What a marker holds. */
export type CacheMarker = z.output<typeof markerSchema>;

export function markerPath(cacheDir: string, name: string, sha1: string): string {
  return join(cacheDir, name, `${sha1}${MARKER_SUFFIX}`);
}

/** Writes the marker atomically: a temporary file renamed into place. */
export async function writeMarker(path: string, marker: CacheMarker): Promise<void> {
  const temporary = join(dirname(path), `${TMP_PREFIX}${marker.sha1}-${randomUUID()}${MARKER_SUFFIX}`);
  try {
    await writeFile(temporary, `${JSON.stringify(marker)}\n`, { flag: 'wx', mode: 0o644 });
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/**
 * Reads and checks the marker of `name@sha1` without following a link. Throws
 * `CacheCorruptError` when it is not a small regular file holding a marker for exactly this
 * version; file-system errors (ENOENT) propagate.
 */
export async function readMarker(
  path: string,
  name: string,
  sha1: string,
): Promise<{ marker: CacheMarker; mtimeMs: number }> {
  const handle = await open(path, OPEN_FLAGS);
  let text: string;
  let mtimeMs: number;
  try {
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size > MAX_MARKER_BYTES) {
      throw new CacheCorruptError(
        `Expected the marker ${path} to be a regular file of at most ${MAX_MARKER_BYTES} bytes, got something else`,
        path,
      );
    }
    text = await handle.readFile('utf8');
    mtimeMs = stats.mtimeMs;
  } finally {
    await handle.close();
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new CacheCorruptError(`Expected the marker ${path} to hold JSON, got unparsable text`, path);
  }
  const parsed = markerSchema.safeParse(raw);
  if (!parsed.success || parsed.data.name !== name || parsed.data.sha1 !== sha1) {
    throw new CacheCorruptError(
      `Expected the marker ${path} to describe ${name}@${sha1}, got another or an invalid marker`,
      path,
    );
  }
  return { marker: parsed.data, mtimeMs };
}
