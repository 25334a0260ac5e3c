/**
 * A node's on-disk cache of extracted package versions: `<cacheDir>/<name>/<sha1>`.
 *
 * A version is fetched once: concurrent TaskInstances needing the same uncached version share
 * one download, and later ones run from disk without reading Redis. A folder only ever appears
 * at its final path by `rename` of a completely extracted temporary folder, so its existence
 * means it is complete; a crash mid-extraction leaves a `.tmp-*` folder that `init` removes.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { extractPackage } from './extract.js';
import type { Logger } from './logger.js';
import type { CompiledPackageLimits } from './options.js';
import type { PackageStore } from './package-store.js';

const TMP_PREFIX = '.tmp-';

export class PackageCache {
  private readonly inflight = new Map<string, Promise<string>>();
  /** Versions downloaded from Redis by this process (a cache hit does not count). */
  downloads = 0;

  constructor(
    readonly dir: string,
    private readonly store: PackageStore,
    private readonly limits: CompiledPackageLimits,
    private readonly logger: Logger,
  ) {}

  /** Creates the cache folder and removes temporary folders a crash left behind. */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    for (const name of await readdir(this.dir)) {
      const packageDir = join(this.dir, name);
      if (name.startsWith(TMP_PREFIX)) {
        await rm(packageDir, { recursive: true, force: true });
        continue;
      }
      const entries = await readdir(packageDir).catch(() => [] as string[]);
      for (const entry of entries.filter((e) => e.startsWith(TMP_PREFIX))) {
        this.logger.info({ path: join(packageDir, entry) }, 'removing a half-extracted package left by a crash');
        await rm(join(packageDir, entry), { recursive: true, force: true });
      }
    }
  }

  /** The folder holding `name@sha1`, downloading and extracting it on first use. */
  async ensure(name: string, sha1: string): Promise<string> {
    const target = join(this.dir, name, sha1);
    if (await isDirectory(target)) {
      return target;
    }
    const key = `${name}@${sha1}`;
    let pending = this.inflight.get(key);
    if (pending === undefined) {
      pending = this.fetch(name, sha1, target).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  private async fetch(name: string, sha1: string, target: string): Promise<string> {
    const started = Date.now();
    const bytes = await this.store.download(name, sha1);
    this.downloads += 1;
    const temporary = join(this.dir, name, `${TMP_PREFIX}${sha1}-${randomUUID()}`);
    await mkdir(temporary, { recursive: true, mode: 0o755 });
    try {
      await extractPackage(bytes, temporary, this.limits);
      await rename(temporary, target);
    } catch (error) {
      await rm(temporary, { recursive: true, force: true });
      // Another process sharing this cache folder won the rename: its copy is just as good.
      const code = (error as NodeJS.ErrnoException).code;
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await isDirectory(target))) {
        return target;
      }
      throw error;
    }
    this.logger.info({ package: `${name}@${sha1}`, bytes: bytes.length, ms: Date.now() - started }, 'package synced into the cache');
    return target;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
