import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { PackageRejectedError } from '../../../lib/core/errors.js';
import { extractPackage } from '../../../lib/packages/extract.js';
import { compilePackageLimits } from '../../../lib/packages/limits.js';
import { tempDir } from '../../helpers.js';
import { craft, file } from '../../tarballs.js';

const limits = compilePackageLimits();

describe('extractPackage against crafted tarballs', () => {
  async function rejects(tarball: Buffer, message: RegExp, custom = limits): Promise<void> {
    const out = join(await tempDir(), 'pkg');
    await assert.rejects(
      extractPackage(tarball, out, custom),
      (error: Error) => error instanceof PackageRejectedError && message.test(error.message),
    );
  }

  it('extracts regular files and folders with normalised modes (no setuid, setgid or sticky bits)', async () => {
    const out = join(await tempDir(), 'pkg');
    await extractPackage(
      await craft([
        { header: { name: 'bin', type: 'directory', mode: 0o1777 } },
        { header: { name: 'bin/tool', type: 'file', mode: 0o6755 }, body: '#!/bin/sh' },
        file('a.txt'),
      ]),
      out,
      limits,
    );
    assert.equal((await lstat(join(out, 'bin/tool'))).mode & 0o7777, 0o755);
    assert.equal((await lstat(join(out, 'a.txt'))).mode & 0o7777, 0o644);
    assert.equal((await lstat(join(out, 'bin'))).mode & 0o7000, 0);
  });

  it('takes tarball chunks in order and returns the SHA-256 and size of each file it wrote', async () => {
    const out = join(await tempDir(), 'pkg');
    const big = randomBytes(1024 * 1024 + 17).toString('hex'); // 2 MiB: more than one batched write
    const tarball = await craft([
      { header: { name: 'd/big.bin', type: 'file', mode: 0o644 }, body: big },
      file('a.txt'),
    ]);
    const chunks = [tarball.subarray(0, 1000), tarball.subarray(1000, 70_000), tarball.subarray(70_000)];
    const written = await extractPackage(chunks, out, limits);
    assert.deepEqual([...written.keys()].sort(), ['a.txt', 'd/big.bin']);
    for (const [path, { sha256, size }] of written) {
      const onDisk = await readFile(join(out, path));
      assert.equal(size, onDisk.length);
      assert.equal(sha256, createHash('sha256').update(onDisk).digest('hex'));
    }
    assert.equal(await readFile(join(out, 'd/big.bin'), 'utf8'), big);
  });

  it('rejects `..` and absolute paths', async () => {
    await rejects(await craft([file('../escape.txt')]), /relative and inside the package, got "\.\.\/escape\.txt"/);
    await rejects(await craft([file('a/../../escape.txt')]), /relative and inside the package/);
    await rejects(
      await craft([file('/etc/cron.d/evil')]),
      /relative and inside the package, got "\/etc\/cron\.d\/evil"/,
    );
  });

  it('rejects symlinks, hardlinks, devices and FIFOs', async () => {
    await rejects(
      await craft([{ header: { name: 'link', type: 'symlink', linkname: '/etc/shadow' } }]),
      /got a symlink entry at "link"/,
    );
    await rejects(
      await craft([file('a'), { header: { name: 'hard', type: 'link', linkname: 'a' } }]),
      /got a link entry at "hard"/,
    );
    await rejects(
      await craft([{ header: { name: 'dev', type: 'character-device', devmajor: 1, devminor: 3 } }]),
      /got a character-device entry/,
    );
    await rejects(await craft([{ header: { name: 'pipe', type: 'fifo' } }]), /got a fifo entry/);
  });

  it('rejects duplicate paths', async () => {
    await rejects(
      await craft([file('a.txt', 'one'), file('a.txt', 'two')]),
      /each path once in the package, got "a\.txt" twice/,
    );
  });

  it('stops a decompression bomb at the byte limit and leaves nothing behind in the target', async () => {
    const bomb = await craft([file('zeros', '\0'.repeat(4 * 1024 * 1024))]);
    assert.ok(bomb.length < 64 * 1024, 'the crafted bomb compresses well');
    const out = join(await tempDir(), 'pkg');
    await assert.rejects(
      extractPackage(bomb, out, compilePackageLimits({ maxUnpackedBytes: 1024 * 1024 })),
      /Expected at most 1048576 uncompressed bytes/,
    );
    assert.deepEqual(await readdir(out).catch(() => []), [], 'no byte of the oversized file may be written');
  });

  it('enforces the entry count and path depth limits', async () => {
    await rejects(
      await craft([file('a'), file('b'), file('c')]),
      /at most 2 entries/,
      compilePackageLimits({ maxEntries: 2 }),
    );
    await rejects(await craft([file('a/b/c/d.txt')]), /at most 3 deep/, compilePackageLimits({ maxPathDepth: 3 }));
  });

  it('rejects bytes that are not a gzipped tarball', async () => {
    await rejects(Buffer.from('definitely not gzip'), /Expected a valid gzipped tarball/);
  });
});
