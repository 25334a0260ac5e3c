import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

import { REPO_ROOT } from '../helpers.js';

/**
 * Modules a CLI file may not import at its top (bin/README.md): each loads Redis, BullMQ, Express,
 * pino or zod, and `tydra --help` would take half a second again. Commands import them inside their
 * actions (`await import(...)`); type-only imports cost nothing.
 */
const HEAVY = /^(bullmq|ioredis|express|pino|zod|@bull-board\/.*|\.\.\/\.\.\/lib\/index\.js)$/;

async function sources(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files = await Promise.all(
    entries.map((entry) =>
      entry.isDirectory()
        ? sources(join(dir, entry.name))
        : Promise.resolve(entry.name.endsWith('.ts') ? [join(dir, entry.name)] : []),
    ),
  );
  return files.flat();
}

describe('the CLI loads its heavy modules only when a command runs', () => {
  it('no file in bin/ imports Redis, BullMQ, Express, pino, zod or lib/index.js at its top', async () => {
    const offending: string[] = [];
    for (const file of await sources(join(REPO_ROOT, 'bin'))) {
      const text = await readFile(file, 'utf8');
      for (const match of text.matchAll(/^import (?!type )[^;]*? from '([^']+)';/gms)) {
        if (HEAVY.test(match[1] ?? '')) {
          offending.push(`${relative(REPO_ROOT, file)}: ${match[1] ?? ''}`);
        }
      }
    }
    assert.deepEqual(offending, []);
  });
});
