import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { cachedManifest } from '../../../lib/node/manifest-cache.js';

const manifestText = (task: string): string =>
  JSON.stringify({ name: 'mc', tasks: { [task]: { module: `${task}.mjs` } } });

describe('the node manifest cache', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tydra-manifest-cache-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a version once: later calls for the same name@sha1 do not read the folder again', async () => {
    const sha1 = `${Date.now().toString(16)}${'a'.repeat(30)}`.slice(0, 40);
    await writeFile(join(dir, 'tydra.json'), manifestText('first'));
    const first = await cachedManifest('mc', sha1, dir);
    assert.deepEqual(Object.keys(first.tasks), ['first']);
    await writeFile(join(dir, 'tydra.json'), manifestText('second'));
    assert.deepEqual(Object.keys((await cachedManifest('mc', sha1, dir)).tasks), ['first']);
    // Another version is its own entry, read from its folder.
    const other = `${sha1.slice(0, 39)}f`;
    assert.deepEqual(Object.keys((await cachedManifest('mc', other, dir)).tasks), ['second']);
  });

  it('keeps no failed read: a missing or invalid manifest is read again next time', async () => {
    const sha1 = `${Date.now().toString(16)}${'b'.repeat(30)}`.slice(0, 40);
    await assert.rejects(cachedManifest('mc', sha1, dir), { code: 'ENOENT' });
    await writeFile(join(dir, 'tydra.json'), '{ not json');
    await assert.rejects(cachedManifest('mc', sha1, dir), { name: 'ManifestError' });
    await writeFile(join(dir, 'tydra.json'), manifestText('late'));
    assert.deepEqual(Object.keys((await cachedManifest('mc', sha1, dir)).tasks), ['late']);
  });
});
