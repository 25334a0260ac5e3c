/**
 * killOrphanedSandboxes: a bwrap with a tydra sandbox's command line that was left to init dies;
 * one whose parent lives is left alone. (How a node leaves one: `sandbox/launcher/orphans.ts`.)
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';

import { execa } from 'execa';

import { checkBwrap } from '../../../sandbox/launcher/bwrap.js';
import { killOrphanedSandboxes } from '../../../sandbox/launcher/orphans.js';
import { waitFor } from '../../helpers.js';

/** The processes whose command line holds `tag`, with their parent's pid. */
async function processesWith(tag: string): Promise<Array<{ pid: number; ppid: string }>> {
  const found: Array<{ pid: number; ppid: string }> = [];
  for (const name of (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry))) {
    const [cmdline, stat] = await Promise.all([
      readFile(`/proc/${name}/cmdline`, 'utf8'),
      readFile(`/proc/${name}/stat`, 'utf8'),
    ]).catch(() => ['', '']);
    if (cmdline.split('\0').includes(tag)) {
      found.push({ pid: Number(name), ppid: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? '' });
    }
  }
  return found;
}

describe('orphaned sandboxes (@integration)', function () {
  this.timeout(30_000);

  it('kills a tydra bwrap left to init, and leaves one whose parent lives', async () => {
    const bwrap = await checkBwrap();
    const id = `orphan-test-${process.pid}-${randomUUID()}`;
    const args = (tag: string) => ['--ro-bind', '/', '/', '--die-with-parent', '--setenv', 'TYDRA_INSTANCE_ID', tag];
    // `setsid --fork` exits at once after forking: its child, bwrap, is reparented to init.
    // No pipes: execa would wait for the orphan to close them.
    await execa('setsid', ['--fork', bwrap, ...args(`${id}-orphan`), 'sleep', '600'], { stdio: 'ignore' });
    const kept = execa(bwrap, [...args(`${id}-kept`), 'sleep', '600'], { reject: false });
    try {
      const orphan = await waitFor('the orphan, reparented to init', async () =>
        (await processesWith(`${id}-orphan`)).find((process) => process.ppid === '1'),
      );
      await waitFor('the kept sandbox to start', async () =>
        (await processesWith(`${id}-kept`)).length > 0 ? true : undefined,
      );
      const killed = await killOrphanedSandboxes(bwrap);
      assert.ok(killed.includes(orphan.pid), `expected ${orphan.pid} among the killed ${killed.join(', ')}`);
      // bwrap's own child (`sleep`) dies with it (`--die-with-parent`).
      await waitFor('every process of the orphan to be gone', async () =>
        (await processesWith(`${id}-orphan`)).length === 0 ? true : undefined,
      );
      assert.ok((await processesWith(`${id}-kept`)).length > 0, 'a bwrap whose parent lives is left alone');
    } finally {
      kept.kill('SIGKILL');
      await kept;
    }
  });
});
