/**
 * A hostile package reaching the node: tarballs written straight into Redis, the way an attacker
 * with Redis access would, bypassing every deploy-time check. The node must reject each before
 * anything of it lands on disk, fail the TaskInstance for good with a clear message, and write
 * nothing outside (or inside) its cache folder.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { Queue } from 'bullmq';
import { TaskFailedError } from '../../lib/core/errors.js';
import { createKeys } from '../../lib/redis/keys.js';
import { sha1Hex } from '../../lib/packages/pack.js';
import type { PackageVersion } from '../../lib/packages/store.js';
import { defer, startCluster, tempDir, testClient, testRedis } from '../helpers.js';
import { craft, type CraftedEntry, file } from '../tarballs.js';

const keys = createKeys();

/** Stores `tarball` as the latest version of `name`, exactly as `PackageStore.deploy` would, and returns its sha1. */
async function plantPackage(name: string, tarball: Buffer): Promise<string> {
  const sha1 = sha1Hex(tarball);
  const version: PackageVersion = {
    name,
    sha1,
    size: tarball.length,
    deployedAt: Date.now(),
    manifest: { name, tasks: { run: { module: 'run.mjs' } } },
  };
  await testRedis()
    .multi()
    .set(keys.packageBlob(name, sha1), tarball)
    .hset(keys.packageVersions(name), sha1, JSON.stringify(version))
    .set(keys.packageLatest(name), sha1)
    .exec();
  return sha1;
}

/** Every path under `dir` but the node's copy of the runner (`.runtime`), relative, sorted (links are listed, never followed). */
async function listTree(dir: string): Promise<string[]> {
  const entries = (await readdir(dir, { recursive: true })).filter(
    (entry) => entry !== '.runtime' && !entry.startsWith('.runtime/'),
  );
  return entries.map(String).sort();
}

describe('escape suite: hostile package (@integration)', function () {
  this.timeout(30_000);

  it('a crafted tarball with a link, a `..` path or an absolute path fails its TaskInstance, and nothing is written anywhere', async () => {
    const { nodes } = await startCluster(1);
    const node = nodes[0];
    assert.ok(node !== undefined);
    const tydra = testClient();
    const target = await tempDir('tydra-target-');
    const manifest = file('tydra.json', JSON.stringify({ name: 'x', tasks: { run: { module: 'run.mjs' } } }));
    const cases: Array<{ name: string; entries: CraftedEntry[]; message: string }> = [
      {
        name: 'evil-symlink',
        entries: [manifest, { header: { name: 'run.mjs', type: 'symlink', linkname: '/etc/shadow' } }],
        message: 'Expected only regular files and folders in the package, got a symlink entry at "run.mjs"',
      },
      {
        name: 'evil-link-then-write',
        entries: [
          manifest,
          file('run.mjs'),
          { header: { name: 'out', type: 'symlink', linkname: target } },
          file('out/pwned.txt', 'pwned'),
        ],
        message: 'Expected only regular files and folders in the package, got a symlink entry at "out"',
      },
      {
        name: 'evil-hardlink',
        entries: [manifest, { header: { name: 'run.mjs', type: 'link', linkname: '/etc/shadow' } }],
        message: 'Expected only regular files and folders in the package, got a link entry at "run.mjs"',
      },
      {
        name: 'evil-dotdot',
        entries: [manifest, file('run.mjs'), file('../escape.mjs', 'pwned')],
        message: 'Expected package paths to be relative and inside the package, got "../escape.mjs"',
      },
      {
        name: 'evil-absolute',
        entries: [manifest, file('run.mjs'), file(join(target, 'pwned.txt'), 'pwned')],
        message: `Expected package paths to be relative and inside the package, got ${JSON.stringify(join(target, 'pwned.txt'))}`,
      },
    ];
    const nodeQueue = new Queue(node.queueName, {
      prefix: '{tydra}:bull',
      connection: testRedis({ maxRetriesPerRequest: null }),
    });
    defer(() => nodeQueue.close());

    for (const { name, entries, message } of cases) {
      await plantPackage(name, await craft(entries));
      const run = await tydra.submit(`${name}/run`, null, { attempts: 3 });
      await assert.rejects(
        run.result(),
        (error: unknown) => error instanceof TaskFailedError && error.message === message,
      );
      const status = await run.status();
      assert.equal(status.state, 'failed');
      assert.equal(status.error, message);
      assert.equal((await nodeQueue.getJob(run.id))?.attemptsMade, 1, `${name}: a rejected package is not retried`);
      // The version folder, its marker and the temporary extraction folder are all gone; only
      // the (empty) folder of the package name remains.
      assert.deepEqual(
        await listTree(node.cache.dir),
        cases
          .slice(0, cases.findIndex((c) => c.name === name) + 1)
          .map((c) => c.name)
          .sort(),
        name,
      );
    }
    assert.deepEqual(await readdir(target), [], 'nothing may be written through a link or an absolute path');
    for (const path of [
      join(node.cache.dir, 'escape.mjs'),
      join(node.cache.dir, 'evil-dotdot', 'escape.mjs'),
      join(dirname(node.cache.dir), 'escape.mjs'),
    ]) {
      assert.equal(existsSync(path), false, `${path} must not exist`);
    }
    assert.equal(node.cache.downloads, cases.length, 'each package was downloaded once');
    assert.deepEqual(node.cache.versions(), []);
  });
});
