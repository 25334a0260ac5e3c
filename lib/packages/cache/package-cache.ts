/**
 * A node's on-disk cache of extracted package versions: `<cacheDir>/<name>/<sha1>`, each with
 * its marker `<cacheDir>/<name>/<sha1>.json` (see `cache-marker.ts`).
 *
 * - A version is fetched once: concurrent TaskInstances needing the same uncached version share
 *   one download, and later ones run from disk without reading Redis.
 * - A folder only ever appears at its final path by `rename` of a completely extracted temporary
 *   folder, and its marker is written after that rename. A crash leaves a `.tmp-*` folder or a
 *   folder without a marker; `init` removes both and rebuilds the index from disk.
 * - Each use holds a lease (`acquire` → `release`). A leased version is never evicted or removed.
 * - The first use of a version after start walks its folder once and compares the tree digest
 *   with the marker; a copy changed behind the node's back is removed and fetched again. Later
 *   uses in the same process only check that the folder is still there: re-hashing the tree for
 *   every TaskInstance would cost more than a task run, and whoever can write to the cache folder
 *   runs as the node's user and could change the node itself. Tasks cannot: they get the folder
 *   bind-mounted read-only.
 * - Above `maxBytes` of extracted files, unused versions are evicted least recently used first.
 *
 * One node process owns a cache folder: leases live in memory, and `init` deletes temporary
 * folders it did not create.
 */
import { randomUUID } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { lstat, lutimes, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

import type { Redis } from 'ioredis';

import { type CacheMarker, MARKER_SUFFIX, markerPath, readMarker, TMP_PREFIX, writeMarker } from './marker.js';
import { describe, PackageRejectedError } from '../../core/errors.js';
import { extractPackage } from '../extract.js';
import type { Keyspace } from '../../redis/keys.js';
import type { Logger } from '../../core/logger.js';
import { PACKAGE_NAME_PATTERN } from '../manifest.js';
import type { CompiledPackageLimits } from '../limits.js';
import type { PackageStore } from '../store.js';
import { digestTree } from './tree-digest.js';

const SHA1_PATTERN = /^[0-9a-f]{40}$/;

/** One use of a cached version: its folder stays on disk, unchanged by the node, until `release()`. */
export interface CacheLease {
  /** `<cacheDir>/<name>/<sha1>`, complete and verified. Bind it read-only into the sandbox. */
  readonly dir: string;
  /** Ends this use; the version may then be evicted. Calling it again does nothing. */
  release(): void;
}

/** A cached version, as listed or reported removed. */
export interface CachedVersion {
  name: string;
  sha1: string;
  /** Bytes of its extracted files. */
  bytes: number;
  /** Leases held on it now. */
  leases: number;
}

/** What {@link PackageCache.pruneRemoved} did. */
export interface PruneSummary {
  /** Unused versions whose bytes were gone from Redis: removed from disk. */
  removed: CachedVersion[];
  /** Versions gone from Redis but kept because a running TaskInstance uses them. */
  keptInUse: CachedVersion[];
  freedBytes: number;
}

interface Entry {
  key: string;
  name: string;
  sha1: string;
  dir: string;
  bytes: number;
  /** Files and folders the extracted tree had; a walk stops one past it. */
  entries: number;
  digest: string;
  leases: number;
  /** The tree was digested (or extracted) by this process. */
  verified: boolean;
}

/** Told of what the cache does, for metrics (the node's `tydra_package_*` counters). */
export interface CacheObserver {
  /** A version was downloaded (`bytes` of tarball) and extracted in `seconds`. */
  synced(bytes: number, seconds: number): void;
  /** A lease was asked for: `hit` when the version was on disk, else it had to be downloaded. */
  looked(hit: boolean): void;
}

export class PackageCache {
  /** Versions complete on disk, least recently used first: a use moves an entry to the end. */
  private readonly entries = new Map<string, Entry>();
  /** The one fetch, verification or removal running per version; other callers wait for it. */
  private readonly inflight = new Map<string, Promise<void>>();
  /** Marker touches and budget runs started by `release`, which cannot wait for them. */
  private readonly background = new Set<Promise<void>>();
  private budgetRun: Promise<unknown> = Promise.resolve();
  private readonly removalListeners = new Set<(name: string, sha1: string) => void>();
  /** Versions downloaded from Redis by this process (a cache hit does not count). */
  downloads = 0;
  /** Versions removed to stay under `maxBytes`. */
  evictions = 0;
  /** Tree digests checked on a first use after start. */
  verifications = 0;
  /** Versions removed and fetched again because their folder no longer matched the marker. */
  refetches = 0;

  constructor(
    readonly dir: string,
    private readonly store: PackageStore,
    private readonly limits: CompiledPackageLimits,
    private readonly logger: Logger,
    /** Bytes of extracted files kept before unused versions are evicted (`cacheMaxBytes`). */
    readonly maxBytes: number,
    private readonly observer?: CacheObserver,
  ) {}

  /** Bytes of extracted files of every cached version, in use or not. */
  get totalBytes(): number {
    let total = 0;
    for (const entry of this.entries.values()) {
      total += entry.bytes;
    }
    return total;
  }

  /**
   * How many versions are cached and their bytes, from the index the cache keeps in memory as it
   * changes (what the node's heartbeat publishes): no disk walk, cheap enough for every beat.
   */
  summary(): { versions: number; bytes: number } {
    return { versions: this.entries.size, bytes: this.totalBytes };
  }

  /**
   * Calls `listener(name, sha1)` right before a version's folder is removed (evicted, pruned,
   * or found changed); returns the undo.
   */
  onRemove(listener: (name: string, sha1: string) => void): () => void {
    this.removalListeners.add(listener);
    return () => this.removalListeners.delete(listener);
  }

  /** Cached versions, least recently used first. */
  versions(): CachedVersion[] {
    return [...this.entries.values()].map(describeEntry);
  }

  /**
   * Creates the cache folder and rebuilds the index from disk: removes temporary folders a crash
   * left behind, version folders without a valid marker and markers without a folder, then
   * evicts down to the budget. Names that are not a package name or a sha1 are left alone.
   */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    const found: Array<{ entry: Entry; mtimeMs: number }> = [];
    for (const name of await readdir(this.dir)) {
      if (name.startsWith(TMP_PREFIX)) {
        await rm(join(this.dir, name), { recursive: true, force: true });
      } else if (PACKAGE_NAME_PATTERN.test(name) && isRealFolder(join(this.dir, name))) {
        found.push(...(await this.scanPackage(name)));
      }
    }
    // Marker mtimes are the last uses before the restart: keep that order.
    for (const { entry } of found.sort((a, b) => a.mtimeMs - b.mtimeMs)) {
      this.entries.set(entry.key, entry);
    }
    this.logger.info(
      { cacheDir: this.dir, versions: this.entries.size, bytes: this.totalBytes, maxBytes: this.maxBytes },
      'package cache index rebuilt from disk',
    );
    await this.enforceBudget();
  }

  /**
   * Leases `name@sha1`, downloading and extracting it on first use, or verifying it on its first
   * use after start. Release the lease when the TaskInstance is done with the folder.
   * Throws `PackageIntegrityError` if the bytes are gone from Redis or corrupt, and
   * `PackageRejectedError` if the package fails extraction or the name or sha1 is malformed.
   */
  async acquire(name: string, sha1: string): Promise<CacheLease> {
    checkVersion(name, sha1);
    const key = `${name}@${sha1}`;
    // On disk (indexed, perhaps still being verified): a hit; anything else waits for a download.
    this.observer?.looked(this.entries.has(key));
    for (;;) {
      const pending = this.inflight.get(key);
      if (pending !== undefined) {
        await pending;
        continue;
      }
      const entry = this.entries.get(key);
      if (entry === undefined || !entry.verified) {
        await this.track(key, this.prepare(name, sha1, entry));
        continue;
      }
      // Deleting a verified folder is the common accident (Ray #49254); one lstat catches it.
      // Synchronous: this is every TaskInstance's path to its sandbox, and an lstat of a cached
      // local folder takes microseconds where `fs/promises` waits a threadpool round trip and an
      // event-loop turn (0.5-1 ms on a busy node). It also leaves no await for an eviction to
      // slip into between the look and the lease.
      if (!isRealFolder(entry.dir)) {
        entry.verified = false;
        continue;
      }
      const lease = this.lease(entry);
      if (this.totalBytes > this.maxBytes) {
        await this.enforceBudget();
      }
      return lease;
    }
  }

  /**
   * Evicts unused versions, least recently used first, until the cache is within `maxBytes`.
   * Runs after each extraction, at start and when a lease ends over budget; runs never overlap.
   * If every remaining version is in use the cache stays over budget until they are released.
   */
  async enforceBudget(): Promise<CachedVersion[]> {
    const run = this.budgetRun.then(() => this.evictOverBudget());
    this.budgetRun = run.catch(() => undefined);
    return run;
  }

  /**
   * Removes every unused cached version for which `exists` says its bytes are gone from Redis
   * (pass `(name, sha1) => blobExists(redis, keys, name, sha1)`). A version in use is kept and
   * reported; the node calls this periodically.
   */
  async pruneRemoved(exists: (name: string, sha1: string) => Promise<boolean>): Promise<PruneSummary> {
    const summary: PruneSummary = { removed: [], keptInUse: [], freedBytes: 0 };
    for (const entry of [...this.entries.values()]) {
      if (this.inflight.has(entry.key) || (await exists(entry.name, entry.sha1))) {
        continue;
      }
      // Checked again after the await: a TaskInstance may have leased it meanwhile.
      if (this.entries.get(entry.key) !== entry || this.inflight.has(entry.key)) {
        continue;
      }
      if (entry.leases > 0) {
        summary.keptInUse.push(describeEntry(entry));
        continue;
      }
      summary.removed.push(describeEntry(entry));
      summary.freedBytes += entry.bytes;
      await this.remove(entry);
    }
    if (summary.removed.length > 0 || summary.keptInUse.length > 0) {
      this.logger.info(
        { removed: summary.removed.map(ref), keptInUse: summary.keptInUse.map(ref), freedBytes: summary.freedBytes },
        'pruned cached versions no longer in Redis',
      );
    }
    return summary;
  }

  /** Resolves once every download, removal, marker touch and budget run started so far is done. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.inflight.values(), ...this.background, this.budgetRun]);
  }

  /** Registers `work` as the one operation on `key` until it settles. */
  private track(key: string, work: Promise<void>): Promise<void> {
    const tracked = work.finally(() => {
      if (this.inflight.get(key) === tracked) {
        this.inflight.delete(key);
      }
    });
    this.inflight.set(key, tracked);
    return tracked;
  }

  /** Verifies a version indexed at start (if any) and fetches it when missing or changed. */
  private async prepare(name: string, sha1: string, entry: Entry | undefined): Promise<void> {
    if (entry !== undefined) {
      const problem = await this.verify(entry);
      if (problem === undefined) {
        entry.verified = true;
        return;
      }
      this.logger.warn(
        { package: entry.key, reason: problem },
        'cached package changed behind the node: removing it and fetching it again',
      );
      if (this.entries.get(entry.key) === entry) {
        this.entries.delete(entry.key);
      }
      await this.removeFromDisk(name, sha1);
      this.refetches += 1;
    }
    await this.fetch(name, sha1);
  }

  /** Undefined if the folder still matches its marker, else what differs. */
  private async verify(entry: Entry): Promise<string | undefined> {
    this.verifications += 1;
    try {
      // An untouched tree has exactly `entries` entries: a walk past that is tampering, not work.
      const tree = await digestTree(entry.dir, entry.entries);
      return tree.digest === entry.digest
        ? undefined
        : `Expected the tree digest ${entry.digest}, got ${tree.digest} (a file was changed, added or deleted)`;
    } catch (error) {
      return (error as Error).message;
    }
  }

  private async fetch(name: string, sha1: string): Promise<void> {
    const started = Date.now();
    const chunks = await this.store.download(name, sha1);
    const tarballBytes = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    this.downloads += 1;
    const packageDir = await this.packageDir(name);
    const target = join(packageDir, sha1);
    const temporary = join(packageDir, `${TMP_PREFIX}${sha1}-${randomUUID()}`);
    await mkdir(temporary, { mode: 0o755 });
    let marker: CacheMarker;
    try {
      const written = await extractPackage(chunks, temporary, this.limits);
      // Digest what is on disk (modes after umask), exactly as a later verification will see it;
      // file contents come from the hashes taken while extraction wrote them, not a second read.
      // Extraction also creates the folders a tarball leaves implicit: bound the walk accordingly.
      const tree = await digestTree(temporary, this.limits.maxEntries * this.limits.maxPathDepth, written);
      marker = {
        version: 1,
        name,
        sha1,
        bytes: tree.bytes,
        entries: tree.entries,
        digest: tree.digest,
        extractedAt: Date.now(),
      };
      await this.renameIntoPlace(temporary, target);
    } catch (error) {
      await rm(temporary, { recursive: true, force: true });
      throw error;
    }
    try {
      await writeMarker(markerPath(this.dir, name, sha1), marker);
    } catch (error) {
      await this.removeFromDisk(name, sha1);
      throw error;
    }
    const key = `${name}@${sha1}`;
    this.entries.set(key, {
      key,
      name,
      sha1,
      dir: target,
      bytes: marker.bytes,
      entries: marker.entries,
      digest: marker.digest,
      leases: 0,
      verified: true,
    });
    this.observer?.synced(tarballBytes, (Date.now() - started) / 1000);
    this.logger.info(
      { package: key, bytes: tarballBytes, unpackedBytes: marker.bytes, ms: Date.now() - started },
      'package synced into the cache',
    );
  }

  /** `<cacheDir>/<name>`, created if missing; anything else at that path (a link) is replaced. */
  private async packageDir(name: string): Promise<string> {
    const path = join(this.dir, name);
    const stats = await lstat(path).catch(() => undefined);
    if (stats !== undefined && !stats.isDirectory()) {
      this.logger.warn({ path }, 'replacing a non-folder found where a package folder belongs');
      await rm(path, { recursive: true, force: true });
    }
    await mkdir(path, { recursive: true, mode: 0o755 });
    return path;
  }

  private async renameIntoPlace(temporary: string, target: string): Promise<void> {
    try {
      await rename(temporary, target);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR') {
        throw error;
      }
      // Not in our index, so not ours to trust (this process owns the cache): our fresh copy wins.
      this.logger.warn({ path: target }, 'replacing an unindexed folder found at a cache path');
      await discard(target);
      await rename(temporary, target);
    }
  }

  private lease(entry: Entry): CacheLease {
    entry.leases += 1;
    this.touch(entry);
    let released = false;
    return {
      dir: entry.dir,
      release: () => {
        if (released) {
          return;
        }
        released = true;
        entry.leases -= 1;
        if (this.entries.get(entry.key) !== entry) {
          return; // replaced after a tamper check while in use
        }
        this.touch(entry);
        // The marker's mtime carries the LRU order across restarts.
        const now = new Date();
        this.inBackground(lutimes(markerPath(this.dir, entry.name, entry.sha1), now, now));
        if (this.totalBytes > this.maxBytes) {
          this.inBackground(this.enforceBudget());
        }
      },
    };
  }

  /** Moves `entry` to the most recently used end. */
  private touch(entry: Entry): void {
    this.entries.delete(entry.key);
    this.entries.set(entry.key, entry);
  }

  private inBackground(work: Promise<unknown>): void {
    const tracked: Promise<void> = work.then(
      () => undefined,
      (error: Error) => this.logger.warn({ err: error.message }, 'package cache background work failed'),
    );
    this.background.add(tracked);
    void tracked.finally(() => this.background.delete(tracked));
  }

  private async evictOverBudget(): Promise<CachedVersion[]> {
    const evicted: CachedVersion[] = [];
    for (const entry of [...this.entries.values()]) {
      if (this.totalBytes <= this.maxBytes) {
        break;
      }
      if (entry.leases > 0 || this.inflight.has(entry.key) || this.entries.get(entry.key) !== entry) {
        continue;
      }
      evicted.push(describeEntry(entry));
      this.evictions += 1;
      await this.remove(entry);
    }
    if (evicted.length > 0) {
      this.logger.info(
        { evicted: evicted.map(ref), bytes: this.totalBytes, maxBytes: this.maxBytes },
        'evicted least recently used package versions',
      );
    }
    if (this.totalBytes > this.maxBytes) {
      this.logger.warn(
        { bytes: this.totalBytes, maxBytes: this.maxBytes },
        'package cache over budget: every remaining version is in use',
      );
    }
    return evicted;
  }

  /** Drops an unused entry from the index at once, then from disk (callers wait on `inflight`). */
  private remove(entry: Entry): Promise<void> {
    this.entries.delete(entry.key);
    const removal = this.removeFromDisk(entry.name, entry.sha1).catch((error: Error) => {
      this.logger.warn({ package: entry.key, err: error.message }, 'could not remove a cached package version');
    });
    return this.track(entry.key, removal);
  }

  /**
   * Removes a version's folder and marker. The name and sha1 were validated, so both paths are
   * direct children of `<cacheDir>/<name>`, which must be a real folder; `rename` and `rm` act on
   * the entries themselves and never follow a link inside them.
   */
  private async removeFromDisk(name: string, sha1: string): Promise<void> {
    // First, and synchronously: whatever holds the folder without a lease (the node's warm
    // pool) lets go of it before it goes.
    this.removalListeners.forEach((listener) => listener(name, sha1));
    const packageDir = join(this.dir, name);
    if (!isRealFolder(packageDir)) {
      return;
    }
    await discard(join(packageDir, sha1));
    await rm(markerPath(this.dir, name, sha1), { force: true });
  }

  /** Indexes the versions in `<cacheDir>/<name>` and removes what a crash or a tamperer left. */
  private async scanPackage(name: string): Promise<Array<{ entry: Entry; mtimeMs: number }>> {
    const packageDir = join(this.dir, name);
    const folders: string[] = [];
    const markers = new Set<string>();
    for (const child of await readdir(packageDir)) {
      if (child.startsWith(TMP_PREFIX)) {
        this.logger.info({ path: join(packageDir, child) }, 'removing a half-extracted package left by a crash');
        await rm(join(packageDir, child), { recursive: true, force: true });
      } else if (SHA1_PATTERN.test(child)) {
        folders.push(child);
      } else if (child.endsWith(MARKER_SUFFIX) && SHA1_PATTERN.test(child.slice(0, -MARKER_SUFFIX.length))) {
        markers.add(child.slice(0, -MARKER_SUFFIX.length));
      }
    }
    const found: Array<{ entry: Entry; mtimeMs: number }> = [];
    for (const sha1 of folders) {
      const key = `${name}@${sha1}`;
      const dir = join(packageDir, sha1);
      try {
        if (!isRealFolder(dir)) {
          throw new Error(`Expected ${dir} to be a folder, got something else`);
        }
        const { marker, mtimeMs } = await readMarker(markerPath(this.dir, name, sha1), name, sha1);
        found.push({
          entry: {
            key,
            name,
            sha1,
            dir,
            bytes: marker.bytes,
            entries: marker.entries,
            digest: marker.digest,
            leases: 0,
            verified: false,
          },
          mtimeMs,
        });
      } catch (error) {
        this.logger.warn(
          { package: key, reason: (error as Error).message },
          'removing a cached version without a valid marker (left by a crash or changed behind the node)',
        );
        await this.removeFromDisk(name, sha1);
      }
      markers.delete(sha1);
    }
    for (const sha1 of markers) {
      await rm(markerPath(this.dir, name, sha1), { force: true });
    }
    return found;
  }
}

/**
 * Whether `{NAME}:pkg:<name>:<sha1>` still holds bytes: the `exists` test for
 * {@link PackageCache.pruneRemoved}. Read-only.
 */
export async function blobExists(redis: Redis, keys: Keyspace, name: string, sha1: string): Promise<boolean> {
  return (await redis.exists(keys.packageBlob(name, sha1))) === 1;
}

/** Paths derive from the name and sha1: refuse anything that could leave `<cacheDir>/<name>`. */
function checkVersion(name: string, sha1: string): void {
  if (!PACKAGE_NAME_PATTERN.test(name) || !SHA1_PATTERN.test(sha1)) {
    throw new PackageRejectedError(
      `Expected a package name matching ${PACKAGE_NAME_PATTERN} and a 40-digit hex sha1, got ${describe(`${name}@${sha1}`)}`,
    );
  }
}

/** Moves `path` aside under a `.tmp-*` name, so it vanishes at once and a crash mid-delete leaves only what `init` removes, then deletes it. */
async function discard(path: string): Promise<void> {
  const aside = join(path, '..', `${TMP_PREFIX}rm-${randomUUID()}`);
  try {
    await rename(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return;
    }
    throw error;
  }
  await rm(aside, { recursive: true, force: true });
}

/** Whether `path` is a folder itself, not a link to one; synchronous: see `acquire`. */
function isRealFolder(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

function describeEntry(entry: Entry): CachedVersion {
  return { name: entry.name, sha1: entry.sha1, bytes: entry.bytes, leases: entry.leases };
}

function ref(version: CachedVersion): string {
  return `${version.name}@${version.sha1}`;
}
