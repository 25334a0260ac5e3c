/**
 * The parsed manifests of package versions this process ran, by `name@sha1`. A version's content
 * never changes (its sha1 names it), so its manifest is read and validated once rather than for
 * every TaskInstance: a file open, read and close and a zod parse fewer on each start. Bounded, the
 * least recently used going first; a failed read is not kept. Shared by the nodes of one process:
 * whichever cache folder a version was read from, its manifest is the same.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { type Manifest, MANIFEST_FILE, parseManifest } from '../packages/manifest.js';

const MAX_ENTRIES = 64;

const entries = new Map<string, Promise<Manifest>>();

/** The manifest of `name@sha1`, whose files are in `packageDir` (a lease must hold it). */
export function cachedManifest(name: string, sha1: string, packageDir: string): Promise<Manifest> {
  const key = `${name}@${sha1}`;
  const known = entries.get(key);
  if (known !== undefined) {
    // Most recently used last: Map keeps insertion order.
    entries.delete(key);
    entries.set(key, known);
    return known;
  }
  const read = readFile(join(packageDir, MANIFEST_FILE), 'utf8').then(parseManifest);
  entries.set(key, read);
  read.catch(() => {
    if (entries.get(key) === read) {
      entries.delete(key);
    }
  });
  for (const oldest of entries.keys()) {
    if (entries.size <= MAX_ENTRIES) {
      break;
    }
    entries.delete(oldest);
  }
  return read;
}
