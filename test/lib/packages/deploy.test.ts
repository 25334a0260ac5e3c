import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Redis } from 'ioredis';

import {
  InvalidOptionError,
  InvalidTaskRefError,
  ManifestError,
  PackageRejectedError,
  UnknownTaskError,
} from '../../../lib/core/errors.js';
import { copyFixture, makePackage, testClient as client, testRedis as redis } from '../../helpers.js';

describe('deploy and submit (@integration)', () => {
  it('stores the tarball at exactly pkg:<name>:<sha1>, with versions and latest', async () => {
    const tydra = client();
    const dir = await copyFixture('probe');
    const result = await tydra.deploy(dir);
    assert.equal(result.stored, true);
    assert.equal(result.ref, `probe@${result.sha1}`);
    const r = redis();
    const blob = await r.getBuffer(`{tydra}:pkg:probe:${result.sha1}`);
    assert.ok(blob !== null && blob.length === result.size);
    assert.deepEqual(await r.keys('{tydra}:pkg:*'), [`{tydra}:pkg:probe:${result.sha1}`]);
    const { latest, versions } = await tydra.packageVersions('probe');
    assert.equal(latest, result.sha1);
    assert.deepEqual(
      versions.map((v) => v.sha1),
      [result.sha1],
    );
    assert.deepEqual(Object.keys(versions[0]?.manifest.tasks ?? {}).includes('echo'), true);
    assert.deepEqual(await tydra.packageNames(), ['probe']);
  });

  it('deploying the same tree again stores nothing new and returns the same sha1', async () => {
    const tydra = client();
    const dir = await copyFixture('probe');
    const first = await tydra.deploy(dir);
    const r = redis();
    const appendsBefore = await appendCalls(r);
    const second = await tydra.deploy(dir);
    assert.equal(second.sha1, first.sha1);
    assert.equal(second.stored, false);
    assert.equal(await appendCalls(r), appendsBefore, 'no byte may be uploaded again');
    assert.equal((await r.keys('{tydra}:pkg:*')).length, 1);
    assert.equal((await tydra.packageVersions('probe')).versions.length, 1);
  });

  it('concurrent deploys of the same tree store one value', async () => {
    const tydra = client();
    const dir = await copyFixture('probe');
    const results = await Promise.all([tydra.deploy(dir), tydra.deploy(dir), tydra.deploy(dir)]);
    assert.equal(new Set(results.map((r) => r.sha1)).size, 1);
    const r = redis();
    assert.equal((await r.keys('{tydra}:pkg:*')).length, 1);
    assert.deepEqual(await r.keys('{tydra}:upload:*'), [], 'no upload may be left behind');
  });

  it('a changed tree becomes a new latest version beside the old one', async () => {
    const tydra = client();
    const dir = await copyFixture('probe');
    const v1 = await tydra.deploy(dir);
    await writeFile(join(dir, 'extra.txt'), 'v2');
    const v2 = await tydra.deploy(dir);
    assert.notEqual(v1.sha1, v2.sha1);
    const { latest, versions } = await tydra.packageVersions('probe');
    assert.equal(latest, v2.sha1);
    assert.deepEqual(new Set(versions.map((v) => v.sha1)), new Set([v1.sha1, v2.sha1]));
    assert.equal((await redis().keys('{tydra}:pkg:probe:*')).length, 2);
  });

  it('stores nothing for a rejected package', async () => {
    const tydra = client({ limits: { maxPackageBytes: 200 } });
    const bad = [
      await makePackage({ 'a.js': 'x' }),
      await makePackage({
        'tydra.json': JSON.stringify({ name: 'UPPER', tasks: { t: { module: 'a.js' } } }),
        'a.js': 'x',
      }),
      await makePackage({ 'tydra.json': JSON.stringify({ name: 'ok', tasks: { t: { module: 'gone.js' } } }) }),
      await makePackage({
        'tydra.json': JSON.stringify({ name: 'big', tasks: { t: { module: 'a.js' } } }),
        'a.js': Math.random().toString(36).repeat(2000) + Math.random().toString(36).repeat(3000),
      }),
    ];
    for (const dir of bad) {
      await assert.rejects(
        tydra.deploy(dir),
        (error: Error) => error instanceof ManifestError || error instanceof PackageRejectedError,
      );
    }
    const r = redis();
    assert.deepEqual(
      (await r.keys('{tydra}:*')).filter((key) => !key.startsWith('{tydra}:bull:')),
      [],
      'a rejected deploy must not write any package key',
    );
  });

  it('refuses a package over the client `limits.maxPackageBytes` with the pack error, storing nothing', async () => {
    const tydra = client({ limits: { maxPackageBytes: 16 * 1024 } });
    const dir = await copyFixture('probe');
    await writeFile(join(dir, 'noise.bin'), randomBytes(256 * 1024));
    await assert.rejects(
      tydra.deploy(dir),
      (error: Error) =>
        error instanceof PackageRejectedError &&
        /^Expected a package of at most 16384 bytes compressed, got more \(packing stopped at \d+ bytes\)$/.test(
          error.message,
        ),
    );
    const r = redis();
    assert.deepEqual(
      (await r.keys('{tydra}:*')).filter((key) => !key.startsWith('{tydra}:bull:')),
      [],
      'a refused deploy writes nothing',
    );
  });

  it('refuses an input JSON cannot represent (BigInt, circular, function) with InvalidOptionError', async () => {
    const tydra = client();
    await tydra.deploy(await copyFixture('probe'));
    const circular: Record<string, unknown> = { a: 1 };
    circular.self = circular;
    const expectations: Array<[unknown, RegExp]> = [
      [{ n: 10n }, /^Expected the input to be JSON-serialisable, got .*: Do not know how to serialize a BigInt$/],
      [circular, /^Expected the input to be JSON-serialisable, got .*: Converting circular structure to JSON/],
      [() => 1, /^Expected the input to be JSON-serialisable, got `\(\) => 1` \(function\)$/],
    ];
    for (const [input, message] of expectations) {
      await assert.rejects(
        tydra.submit('probe/echo', input),
        (error: Error) => error instanceof InvalidOptionError && message.test(error.message),
      );
    }
    assert.equal(await redis().hlen('{tydra}:refs'), 0, 'nothing was referenced or enqueued');
  });

  it('fails at submit time for an unknown package, version or task, and for a bad reference', async () => {
    const tydra = client();
    const { sha1 } = await tydra.deploy(await copyFixture('probe'));
    await assert.rejects(tydra.submit('nope/echo'), {
      name: 'UnknownTaskError',
      message: 'Expected a deployed package named nope, found none',
    });
    await assert.rejects(
      tydra.submit('probe/nope'),
      (error: Error) =>
        error instanceof UnknownTaskError &&
        error.message.startsWith(`Expected package probe@${sha1.slice(0, 12)} to define task nope, got only: `),
    );
    await assert.rejects(tydra.submit('probe@0000000/echo'), {
      name: 'UnknownTaskError',
      message: 'Expected a deployed version probe@0000000, found none',
    });
    await assert.rejects(tydra.submit('probe@abc/echo'), InvalidTaskRefError);
    await assert.rejects(tydra.submit('probe'), InvalidTaskRefError);
    await assert.rejects(
      tydra.submit('probe/echo', { big: 'x'.repeat(2 * 1024 * 1024) }),
      /Expected the input to be JSON of at most 1048576 bytes/,
    );
    await assert.rejects(
      tydra.submit('probe/echo', null, { attempts: 0 }),
      /Expected the `attempts` submit option to be valid \(a positive integer\), got `0` \(number\)/,
    );
    const pinned = await tydra.submit(`probe@${sha1.slice(0, 7)}/echo`, { a: 1 });
    assert.equal(pinned.ref, `probe@${sha1}/echo`);
  });
});

async function appendCalls(r: Redis): Promise<number> {
  const info = await r.info('commandstats');
  const match = /cmdstat_append:calls=(\d+)/.exec(info);
  return match ? Number(match[1]) : 0;
}
