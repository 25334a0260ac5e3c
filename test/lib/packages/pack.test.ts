import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { ManifestError, PackageRejectedError } from '../../../lib/core/errors.js';
import { compilePackageLimits } from '../../../lib/packages/limits.js';
import { packDirectory } from '../../../lib/packages/pack.js';
import { extractPackage } from '../../../lib/packages/extract.js';
import { makePackage, tempDir } from '../../helpers.js';

const limits = compilePackageLimits();
const manifest = JSON.stringify({ name: 'det', tasks: { run: { module: 'src/run.js' } } });

describe('packDirectory', () => {
  it('gives the same bytes and sha1 for the same tree whatever the file times and creation order', async () => {
    const a = await makePackage({
      'tydra.json': manifest,
      'src/run.js': 'export default () => 1;\n',
      'b.txt': 'b',
      'a.txt': 'a',
    });
    // Same content, files created in another order and with other mtimes.
    const b = await makePackage({
      'a.txt': 'a',
      'src/run.js': 'export default () => 1;\n',
      'b.txt': 'b',
      'tydra.json': manifest,
    });
    await utimes(join(b, 'a.txt'), new Date('2001-02-03'), new Date('2001-02-03'));
    await utimes(join(b, 'src/run.js'), new Date('2011-12-13'), new Date('2011-12-13'));
    await utimes(join(b, 'src'), new Date('1999-01-01'), new Date('1999-01-01'));
    const [packedA, packedB] = await Promise.all([packDirectory(a, limits), packDirectory(b, limits)]);
    assert.equal(packedA.sha1, packedB.sha1);
    assert.ok(packedA.tarball.equals(packedB.tarball));
    assert.match(packedA.sha1, /^[0-9a-f]{40}$/);
  });

  it('gives a new sha1 when one byte of a file changes', async () => {
    const a = await makePackage({ 'tydra.json': manifest, 'src/run.js': 'export default () => 1;\n' });
    const before = await packDirectory(a, limits);
    await writeFile(join(a, 'src/run.js'), 'export default () => 2;\n');
    const after = await packDirectory(a, limits);
    assert.notEqual(before.sha1, after.sha1);
  });

  it('normalises modes: executable bit kept, other bits dropped', async () => {
    const a = await makePackage({ 'tydra.json': manifest, 'src/run.js': 'x', 'tool.sh': 'echo' });
    const first = await packDirectory(a, limits);
    await chmod(join(a, 'src/run.js'), 0o600);
    assert.equal((await packDirectory(a, limits)).sha1, first.sha1, 'read/write bits must not change the version');
    await chmod(join(a, 'tool.sh'), 0o755);
    assert.notEqual((await packDirectory(a, limits)).sha1, first.sha1, 'the executable bit is content');
  });

  it('round-trips through extractPackage', async () => {
    const a = await makePackage({
      'tydra.json': manifest,
      'src/run.js': 'export default () => 1;\n',
      'deep/er/file.txt': 'deep',
    });
    const packed = await packDirectory(a, limits);
    const out = await tempDir();
    await extractPackage(packed.tarball, join(out, 'x'), limits);
    const again = await packDirectory(join(out, 'x'), limits);
    assert.equal(again.sha1, packed.sha1);
  });

  describe('rejections', () => {
    it('rejects a folder without tydra.json', async () => {
      const dir = await makePackage({ 'run.js': 'x' });
      await assert.rejects(
        packDirectory(dir, limits),
        (error: Error) =>
          error instanceof ManifestError && /Expected a tydra\.json in .*, found none/.test(error.message),
      );
    });

    it('says when the folder itself is missing, or a file', async () => {
      const missing = join(await tempDir(), 'missing', 'dir');
      await assert.rejects(packDirectory(missing, limits), {
        name: 'ManifestError',
        message: `Expected a package folder at ${missing}, found nothing there (no such folder)`,
      });
      const file = join(await makePackage({ 'run.js': 'x' }), 'run.js');
      await assert.rejects(packDirectory(file, limits), {
        name: 'ManifestError',
        message: `Expected a package folder at ${file}, got a file`,
      });
    });

    it('rejects tydra.json that is not JSON', async () => {
      const dir = await makePackage({ 'tydra.json': '{"name": ' });
      await assert.rejects(
        packDirectory(dir, limits),
        (error: Error) => error instanceof ManifestError && /to be valid JSON/.test(error.message),
      );
    });

    it('names the bad field: an invalid package name', async () => {
      const dir = await makePackage({
        'tydra.json': JSON.stringify({ name: 'Bad Name!', tasks: { t: { module: 'a.js' } } }),
        'a.js': 'x',
      });
      await assert.rejects(
        packDirectory(dir, limits),
        (error: Error) =>
          error instanceof ManifestError && error.message.includes('`name`') && error.message.includes('"Bad Name!"'),
      );
    });

    it('names the bad field: a task with both module and command', async () => {
      const dir = await makePackage({
        'tydra.json': JSON.stringify({ name: 'ok', tasks: { t: { module: 'a.js', command: ['sh'] } } }),
        'a.js': 'x',
      });
      await assert.rejects(
        packDirectory(dir, limits),
        (error: Error) =>
          error instanceof ManifestError &&
          error.message.includes('`tasks.t`') &&
          error.message.includes('exactly one of'),
      );
    });

    it('names the bad field: missing tasks', async () => {
      const dir = await makePackage({ 'tydra.json': JSON.stringify({ name: 'ok' }) });
      await assert.rejects(
        packDirectory(dir, limits),
        (error: Error) => error instanceof ManifestError && error.message.includes('`tasks`'),
      );
    });

    it('rejects unknown manifest fields', async () => {
      const dir = await makePackage({
        'tydra.json': JSON.stringify({ name: 'ok', tasks: { t: { module: 'a.js' } }, surprise: 1 }),
        'a.js': 'x',
      });
      await assert.rejects(
        packDirectory(dir, limits),
        (error: Error) => error instanceof ManifestError && error.message.includes('`surprise`'),
      );
    });

    it('rejects a task whose module file is missing', async () => {
      const dir = await makePackage({
        'tydra.json': JSON.stringify({ name: 'ok', tasks: { t: { module: 'missing.js' } } }),
      });
      await assert.rejects(
        packDirectory(dir, limits),
        (error: Error) =>
          error instanceof ManifestError &&
          error.message ===
            'Expected the file missing.js named by `tasks.t.module` to exist in the package, found none',
      );
    });

    it('rejects a task whose command file is missing', async () => {
      const dir = await makePackage({
        'tydra.json': JSON.stringify({ name: 'ok', tasks: { t: { command: ['python3', 'shout.py'] } } }),
      });
      await assert.rejects(
        packDirectory(dir, limits),
        (error: Error) =>
          error instanceof ManifestError && error.message.includes('shout.py named by `tasks.t.command`'),
      );
    });

    it('rejects a module path that leaves the package', async () => {
      const dir = await makePackage({
        'tydra.json': JSON.stringify({ name: 'ok', tasks: { t: { module: '../x.js' } } }),
      });
      await assert.rejects(
        packDirectory(dir, limits),
        (error: Error) => error instanceof ManifestError && error.message.includes('`tasks.t.module`'),
      );
    });

    it('rejects a package over the compressed size cap', async () => {
      const random = Array.from({ length: 4096 }, (_, i) => ((i * 2654435761) % 2 ** 32).toString(36)).join('');
      const dir = await makePackage({ 'tydra.json': manifest, 'src/run.js': random });
      const small = compilePackageLimits({ maxPackageBytes: 1000 });
      await assert.rejects(
        packDirectory(dir, small),
        (error: Error) =>
          error instanceof PackageRejectedError &&
          /^Expected a package of at most 1000 bytes compressed, got more \(packing stopped at \d+ bytes\)$/.test(
            error.message,
          ),
      );
    });

    it('stops reading as soon as the compressed limit is crossed, long before the input ends', async () => {
      // 32 MiB of random bytes cannot compress below a 64 KiB limit. What the process read is
      // counted by the kernel (/proc/self/io rchar): the old pack read every file whole first.
      const dir = await makePackage({ 'tydra.json': manifest, 'src/run.js': 'x' });
      await writeFile(join(dir, 'random.bin'), randomBytes(32 * 1024 * 1024));
      const small = compilePackageLimits({ maxPackageBytes: 64 * 1024 });
      const before = await bytesRead();
      await assert.rejects(
        packDirectory(dir, small),
        (error: Error) =>
          error instanceof PackageRejectedError &&
          error.message.startsWith('Expected a package of at most 65536 bytes compressed, got more'),
      );
      const read = (await bytesRead()) - before;
      assert.ok(read < 8 * 1024 * 1024, `expected packing to stop after a few MiB of input, read ${read} bytes`);
    });

    it('refuses a tree over the uncompressed limit before opening any file', async () => {
      const dir = await makePackage({ 'tydra.json': manifest, 'src/run.js': 'x' });
      await writeFile(join(dir, 'big.bin'), Buffer.alloc(4 * 1024 * 1024));
      const before = await bytesRead();
      await assert.rejects(
        packDirectory(dir, compilePackageLimits({ maxUnpackedBytes: 1024 * 1024 })),
        (error: Error) =>
          error instanceof PackageRejectedError &&
          error.message === 'Expected at most 1048576 uncompressed bytes in the package, got more',
      );
      assert.ok((await bytesRead()) - before < 1024 * 1024, 'the sizes alone decide: no file content is read');
    });

    it('rejects symbolic links', async () => {
      const dir = await makePackage({ 'tydra.json': manifest, 'src/run.js': 'x' });
      await symlink('/etc/passwd', join(dir, 'src/link'));
      await assert.rejects(
        packDirectory(dir, limits),
        (error: Error) =>
          error instanceof PackageRejectedError && error.message.includes('a symbolic link at src/link'),
      );
    });

    it('rejects too many entries and too deep paths', async () => {
      const dir = await makePackage({ 'tydra.json': manifest, 'src/run.js': 'x' });
      await mkdir(join(dir, 'a/b/c/d'), { recursive: true });
      await assert.rejects(packDirectory(dir, compilePackageLimits({ maxPathDepth: 3 })), PackageRejectedError);
      await assert.rejects(packDirectory(dir, compilePackageLimits({ maxEntries: 3 })), PackageRejectedError);
    });
  });
});

/** Bytes this process has read through read(2) and friends, as the kernel counts them. */
async function bytesRead(): Promise<number> {
  const io = await readFile('/proc/self/io', 'utf8');
  const match = /^rchar: (\d+)$/m.exec(io);
  if (match?.[1] === undefined) {
    throw new Error(`expected an rchar line in /proc/self/io, got ${io}`);
  }
  return Number(match[1]);
}
