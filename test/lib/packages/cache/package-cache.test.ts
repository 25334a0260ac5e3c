import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, readdir, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { pino } from 'pino';

import { PackageRejectedError } from '../../../../lib/core/errors.js';
import type { Logger } from '../../../../lib/core/logger.js';
import { silentLogger } from '../../../../lib/core/logger.js';
import { compilePackageLimits } from '../../../../lib/packages/limits.js';
import { packDirectory } from '../../../../lib/packages/pack.js';
import { blobExists, type CacheLease, PackageCache } from '../../../../lib/packages/cache/package-cache.js';
import { PackageStore } from '../../../../lib/packages/store.js';
import { defer, makePackage, sleep, tempDir, testRedis } from '../../../helpers.js';
import { createKeys } from '../../../../lib/redis/keys.js';

const keys = createKeys();

const limits = compilePackageLimits();
const GiB = 1024 * 1024 * 1024;
const SHA1 = /^[0-9a-f]{40}$/;

interface Deployed {
  name: string;
  sha1: string;
  /** Bytes of its files once extracted: what the budget counts. */
  bytes: number;
  /** The source tree, to compare the cached copy against. */
  source: string;
}

/** Deploys a package whose files are `files` plus a manifest and its task module. */
async function deploy(name: string, files: Record<string, string> = {}): Promise<Deployed> {
  const source = await makePackage({
    'tydra.json': JSON.stringify({ name, tasks: { t: { module: 't.mjs' } } }),
    't.mjs': 'export default () => 1;\n',
    ...files,
  });
  const packed = await packDirectory(source, limits);
  await new PackageStore(testRedis(), keys).deploy(packed);
  return { name, sha1: packed.sha1, bytes: packed.unpackedBytes, source };
}

/** Versions of one package that differ in content but not in size. */
async function deployVersions(name: string, count: number): Promise<Deployed[]> {
  const versions: Deployed[] = [];
  for (let i = 0; i < count; i += 1) {
    versions.push(await deploy(name, { 'data.txt': `version ${i}\n${'x'.repeat(10_000)}` }));
  }
  return versions;
}

/** A cache on `dir` (a fresh temp folder by default), as a node builds it; `init` already run. */
async function openCache(
  options: { dir?: string; maxBytes?: number; logger?: Logger; limits?: typeof limits } = {},
): Promise<PackageCache> {
  const cache = new PackageCache(
    options.dir ?? (await tempDir('tydra-cache-')),
    new PackageStore(testRedis(), keys),
    options.limits ?? limits,
    options.logger ?? silentLogger(),
    options.maxBytes ?? 10 * GiB,
  );
  defer(() => cache.idle());
  await cache.init();
  return cache;
}

async function use(cache: PackageCache, version: Deployed): Promise<void> {
  (await cache.acquire(version.name, version.sha1)).release();
}

/** sha1s of the version folders on disk for `name`. */
async function onDisk(cache: PackageCache, name: string): Promise<string[]> {
  return (await readdir(join(cache.dir, name)).catch(() => [])).filter((entry) => SHA1.test(entry)).sort();
}

function sorted(...versions: Deployed[]): string[] {
  return versions.map((v) => v.sha1).sort();
}

/** Asserts that `dir` holds exactly the files of `source`, as regular files with the same bytes. */
async function assertSameTree(dir: string, source: string): Promise<void> {
  const list = async (root: string, relative = ''): Promise<string[]> => {
    const out: string[] = [];
    for (const name of (await readdir(join(root, relative))).sort()) {
      const path = relative ? `${relative}/${name}` : name;
      const stats = await lstat(join(root, path));
      assert.ok(stats.isFile() || stats.isDirectory(), `${path} must be a regular file or folder`);
      out.push(...(stats.isDirectory() ? await list(root, path) : [path]));
    }
    return out;
  };
  const files = await list(source);
  assert.deepEqual(await list(dir), files);
  for (const file of files) {
    assert.deepEqual(await readFile(join(dir, file)), await readFile(join(source, file)), file);
  }
}

/** A logger that keeps its lines, so tests can check what the cache warned about. */
function recordingLogger(): { logger: Logger; lines: Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => lines.push(JSON.parse(line) as { level: number; msg: string }) },
  );
  return { logger, lines };
}

describe('package cache (@integration)', () => {
  describe('budget', () => {
    it('evicts the least recently used version when a new one does not fit', async () => {
      const [v1, v2, v3, v4] = (await deployVersions('lru', 4)) as [Deployed, Deployed, Deployed, Deployed];
      const cache = await openCache({ maxBytes: 3 * v1.bytes + Math.floor(v1.bytes / 2) });
      await use(cache, v1);
      await use(cache, v2);
      await use(cache, v3);
      await use(cache, v1); // v2 is now the least recently used
      assert.deepEqual(await onDisk(cache, 'lru'), sorted(v1, v2, v3));
      assert.equal(cache.evictions, 0);
      // The summary the heartbeat publishes follows the index as versions come and go.
      assert.deepEqual(cache.summary(), { versions: 3, bytes: 3 * v1.bytes });

      await use(cache, v4);
      assert.deepEqual(await onDisk(cache, 'lru'), sorted(v1, v3, v4));
      assert.equal(cache.evictions, 1);
      assert.equal(cache.totalBytes, 3 * v1.bytes);
      assert.deepEqual(cache.summary(), { versions: 3, bytes: 3 * v1.bytes });
      const children = await readdir(join(cache.dir, 'lru'));
      assert.ok(!children.includes(`${v2.sha1}.json`), 'the evicted version loses its marker too');
      assert.deepEqual(
        children.filter((c) => c.startsWith('.tmp-')),
        [],
      );
    });

    it('never evicts a version in use: the next least recently used one goes instead', async () => {
      const [v1, v2, v3, v4] = (await deployVersions('busy', 4)) as [Deployed, Deployed, Deployed, Deployed];
      const cache = await openCache({ maxBytes: 3 * v1.bytes + Math.floor(v1.bytes / 2) });
      const held = await cache.acquire(v1.name, v1.sha1); // least recently used, but in use
      await use(cache, v2);
      await use(cache, v3);
      await use(cache, v4);
      assert.deepEqual(await onDisk(cache, 'busy'), sorted(v1, v3, v4));
      assert.equal(cache.evictions, 1);
      assert.deepEqual(await readFile(join(held.dir, 'data.txt')), await readFile(join(v1.source, 'data.txt')));
      held.release();
      held.release(); // idempotent: a second release must not free someone else's lease
      assert.deepEqual(
        cache.versions().map((v) => v.leases),
        [0, 0, 0],
      );
    });

    it('keeps a version larger than the whole budget while it is in use, then evicts it', async () => {
      const [big] = (await deployVersions('big', 1)) as [Deployed];
      const { logger, lines } = recordingLogger();
      const cache = await openCache({ maxBytes: Math.floor(big.bytes / 2), logger });
      const lease = await cache.acquire(big.name, big.sha1);
      assert.deepEqual(await onDisk(cache, 'big'), [big.sha1]);
      assert.ok(
        lines.some((l) => l.level === 40 && /over budget/.test(l.msg)),
        'running over budget is logged',
      );
      lease.release();
      await cache.idle();
      assert.deepEqual(await onDisk(cache, 'big'), []);
      assert.equal(cache.evictions, 1);
    });

    it('keeps the LRU order across a restart (marker mtimes)', async () => {
      const [v1, v2, v3, v4] = (await deployVersions('order', 4)) as [Deployed, Deployed, Deployed, Deployed];
      const maxBytes = 3 * v1.bytes + Math.floor(v1.bytes / 2);
      const first = await openCache({ maxBytes });
      for (const version of [v2, v1, v3]) {
        await use(first, version);
        await sleep(20); // distinct mtimes
      }
      await first.idle();
      const second = await openCache({ dir: first.dir, maxBytes });
      assert.deepEqual(
        second.versions().map((v) => v.sha1),
        [v2.sha1, v1.sha1, v3.sha1],
      );
      await use(second, v4);
      assert.deepEqual(await onDisk(second, 'order'), sorted(v1, v3, v4));
      assert.equal(second.downloads, 1, 'only v4 is downloaded');
    });
  });

  describe('crash recovery', () => {
    it('removes half-extracted folders and versions without a marker at start, then fetches again', async () => {
      const kept = await deploy('crash', { 'a.txt': 'kept' });
      const half = await deploy('crash', { 'a.txt': 'half' });
      const first = await openCache();
      await use(first, kept);
      await first.idle();
      // What a node killed mid-extraction leaves: a temporary folder with part of the files, and
      // (killed between the rename and the marker) a version folder without its marker.
      const packageDir = join(first.dir, 'crash');
      await mkdir(join(packageDir, `.tmp-${half.sha1}-dead`));
      await writeFile(join(packageDir, `.tmp-${half.sha1}-dead`, 'a.txt'), 'ha');
      await mkdir(join(packageDir, half.sha1));
      await writeFile(join(packageDir, half.sha1, 'tydra.json'), '{"name":');
      await mkdir(join(first.dir, '.tmp-stray'));
      await writeFile(join(packageDir, `${'0'.repeat(40)}.json`), '{}'); // a marker without a folder

      const second = await openCache({ dir: first.dir });
      assert.deepEqual((await readdir(packageDir)).sort(), [kept.sha1, `${kept.sha1}.json`].sort());
      assert.deepEqual((await readdir(first.dir)).sort(), ['crash']);
      assert.deepEqual(
        second.versions().map((v) => v.sha1),
        [kept.sha1],
      );

      const lease = await second.acquire(half.name, half.sha1);
      assert.equal(second.downloads, 1);
      await assertSameTree(lease.dir, half.source);
      lease.release();
      await use(second, kept);
      assert.equal(second.downloads, 1, 'the intact version is not downloaded again');
    });

    it('leaves nothing behind when extraction fails part-way', async () => {
      const version = await deploy('partial', { 'a.txt': 'a', 'b.txt': 'b', 'c.txt': 'c' });
      const cache = await openCache({ limits: compilePackageLimits({ maxEntries: 3 }) });
      await assert.rejects(cache.acquire(version.name, version.sha1), PackageRejectedError);
      assert.deepEqual(await readdir(join(cache.dir, 'partial')), []);
      assert.deepEqual(cache.versions(), []);
    });
  });

  describe('tampering', () => {
    const cases: Array<{ what: string; tamper: (dir: string, outside: string) => Promise<void> }> = [
      { what: 'a changed file', tamper: (dir) => writeFile(join(dir, 'lib/data.txt'), 'poisoned') },
      { what: 'a deleted file', tamper: (dir) => unlink(join(dir, 'lib/data.txt')) },
      { what: 'an added file', tamper: (dir) => writeFile(join(dir, 'lib/extra.mjs'), 'export default 1;') },
      { what: 'a changed mode', tamper: (dir) => chmod(join(dir, 't.mjs'), 0o777) },
      {
        what: 'a file replaced by a symbolic link',
        tamper: async (dir, outside) => {
          await unlink(join(dir, 'lib/data.txt'));
          await symlink(outside, join(dir, 'lib/data.txt'));
        },
      },
      { what: 'a deleted version folder', tamper: (dir) => rm(dir, { recursive: true }) },
    ];
    for (const { what, tamper } of cases) {
      it(`fetches again a cached version with ${what}, detected on first use after a restart`, async () => {
        const version = await deploy('tamper', { 'lib/data.txt': 'genuine data\n' });
        const first = await openCache();
        const dir = (await first.acquire(version.name, version.sha1)).dir;
        await first.idle();
        const outside = join(await tempDir(), 'secret.txt');
        await writeFile(outside, 'not the package');
        await tamper(dir, outside);

        const { logger, lines } = recordingLogger();
        const second = await openCache({ dir: first.dir, logger });
        const lease = await second.acquire(version.name, version.sha1);
        assert.equal(second.downloads, 1);
        await assertSameTree(lease.dir, version.source);
        assert.equal(await readFile(outside, 'utf8'), 'not the package', 'removal never follows a link');
        if (what !== 'a deleted version folder') {
          assert.equal(second.refetches, 1);
          assert.ok(
            lines.some((l) => l.level === 40 && /changed behind the node/.test(l.msg)),
            'tampering is logged as a warning',
          );
        }
        lease.release();
        await use(second, version);
        assert.equal(second.downloads, 1, 'the fetched copy is trusted afterwards');
      });
    }

    it('does not fetch an untouched version again after a restart, and verifies it once', async () => {
      const version = await deploy('intact', { 'lib/data.txt': 'genuine data\n' });
      const first = await openCache();
      await use(first, version);
      await first.idle();
      const second = await openCache({ dir: first.dir });
      await use(second, version);
      await use(second, version);
      assert.equal(second.downloads, 0);
      assert.equal(second.verifications, 1);
      assert.equal(second.refetches, 0);
    });

    it('fetches again a verified version whose folder is deleted while the node runs', async () => {
      const version = await deploy('vanish');
      const cache = await openCache();
      const dir = (await cache.acquire(version.name, version.sha1)).dir;
      await rm(dir, { recursive: true });
      const lease = await cache.acquire(version.name, version.sha1);
      assert.equal(cache.downloads, 2);
      await assertSameTree(lease.dir, version.source);
    });
  });

  describe('versions removed from Redis', () => {
    it('removes an unused cached copy whose bytes are gone and keeps one in use', async () => {
      const [unused, busy, deployed] = (await deployVersions('gone', 3)) as [Deployed, Deployed, Deployed];
      const cache = await openCache();
      await use(cache, unused);
      const lease = await cache.acquire(busy.name, busy.sha1);
      await use(cache, deployed);
      const r = testRedis();
      await r.del(`{tydra}:pkg:gone:${unused.sha1}`, `{tydra}:pkg:gone:${busy.sha1}`);

      const summary = await cache.pruneRemoved((name, sha1) => blobExists(r, keys, name, sha1));
      assert.deepEqual(
        summary.removed.map((v) => v.sha1),
        [unused.sha1],
      );
      assert.deepEqual(
        summary.keptInUse.map((v) => v.sha1),
        [busy.sha1],
      );
      assert.equal(summary.freedBytes, unused.bytes);
      assert.deepEqual(await onDisk(cache, 'gone'), sorted(busy, deployed));
      assert.ok(!(await readdir(join(cache.dir, 'gone'))).includes(`${unused.sha1}.json`));

      lease.release();
      const later = await cache.pruneRemoved((name, sha1) => blobExists(r, keys, name, sha1));
      assert.deepEqual(
        later.removed.map((v) => v.sha1),
        [busy.sha1],
      );
      assert.deepEqual(await onDisk(cache, 'gone'), [deployed.sha1]);
    });
  });

  describe('concurrency and input', () => {
    it('downloads an uncached version once for concurrent acquires', async () => {
      const version = await deploy('together', { 'lib/data.txt': 'shared' });
      const cache = await openCache();
      const leases: CacheLease[] = await Promise.all(
        [1, 2, 3, 4, 5].map(() => cache.acquire(version.name, version.sha1)),
      );
      assert.equal(cache.downloads, 1);
      assert.equal(new Set(leases.map((l) => l.dir)).size, 1);
      assert.deepEqual(
        cache.versions().map((v) => v.leases),
        [5],
      );
      leases.forEach((l) => l.release());
      assert.deepEqual(
        cache.versions().map((v) => v.leases),
        [0],
      );
    });

    it('refuses a name or sha1 that could leave the cache folder', async () => {
      const cache = await openCache();
      await assert.rejects(cache.acquire('../etc', 'a'.repeat(40)), PackageRejectedError);
      await assert.rejects(cache.acquire('ok', '../../x'), PackageRejectedError);
    });
  });
});
