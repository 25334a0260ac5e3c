/**
 * killOrphanedSandboxes: a bwrap with a tydra sandbox's command line whose node process is gone
 * dies; those of live nodes, and unmarked ones, are left alone. Whatever their parent is: a
 * subreaper may have adopted the orphan instead of init. (How a node leaves one: `sandbox/launcher/orphans.ts`.)
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';

import { execa } from 'execa';

import { checkBwrap } from '../../../sandbox/launcher/bwrap.js';
import { killOrphanedSandboxes, NODE_MARK_VARIABLE } from '../../../sandbox/launcher/orphans.js';
import { nodeMark, processMark } from '../../../sandbox/launcher/process-mark.js';
import { waitFor } from '../../helpers.js';

/** The pids of the processes whose command line holds `tag`. */
async function processesWith(tag: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry))) {
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').includes(tag)) {
      found.push(Number(name));
    }
  }
  return found;
}

const started = (tag: string) => async () => ((await processesWith(tag)).length > 0 ? true : undefined);

describe('orphaned sandboxes (@integration)', function () {
  this.timeout(30_000);

  it('kills a tydra bwrap whose node process is gone, and leaves those of live nodes and unmarked ones', async () => {
    const bwrap = await checkBwrap();
    const id = `orphan-test-${process.pid}-${randomUUID()}`;
    const args = (tag: string) => ['--ro-bind', '/', '/', '--setenv', 'TYDRA_INSTANCE_ID', tag];
    // `setsid --fork` exits at once after forking: its child, bwrap, goes to init or a subreaper,
    // as the stuck child of a crashed node's bwrap does. No pipes: execa would wait for it to close them.
    // Without --die-with-parent: on a busy machine setsid's parent may exit only after bwrap armed
    // its parent-death signal, which then kills it (CI once saw a sandbox never start). What the
    // sweep goes by is the command line's instance mark and the environment's node mark.
    const detached = (tag: string, env: Record<string, string>) =>
      execa('setsid', ['--fork', bwrap, ...args(tag), 'sleep', '600'], {
        stdio: 'ignore',
        extendEnv: false,
        env: { PATH: process.env.PATH ?? '', ...env },
      });
    const crashedNode = execa('sleep', ['600'], { reject: false }); // stands for a node process
    const live = { [NODE_MARK_VARIABLE]: nodeMark() };
    await detached(`${id}-crashed`, { [NODE_MARK_VARIABLE]: processMark(crashedNode.pid ?? 0) });
    await detached(`${id}-live`, live);
    await detached(`${id}-unmarked`, {});
    const attached = execa(bwrap, ['--die-with-parent', ...args(`${id}-attached`), 'sleep', '600'], {
      reject: false,
      env: live,
    });
    const pidsOf = async (...which: string[]) =>
      (await Promise.all(which.map((name) => processesWith(`${id}-${name}`)))).flat();
    try {
      for (const which of ['crashed', 'live', 'unmarked', 'attached']) {
        await waitFor(`the ${which} sandbox to start`, started(`${id}-${which}`));
      }
      const all = await pidsOf('crashed', 'live', 'unmarked', 'attached');
      const whileAlive = await killOrphanedSandboxes(bwrap);
      assert.deepEqual(
        whileAlive.filter((pid) => all.includes(pid)),
        [],
        'nothing of ours dies while every node lives',
      );

      crashedNode.kill('SIGKILL');
      await crashedNode; // reaped: its pid is free, no zombie answers for it
      const crashed = await pidsOf('crashed');
      const killed = await killOrphanedSandboxes(bwrap);
      assert.deepEqual(
        killed.filter((pid) => all.includes(pid)).sort(),
        [...crashed].sort(),
        'every process of the crashed node’s sandbox, and nothing else',
      );
      await waitFor('the crashed node’s sandbox to be gone', async () =>
        (await pidsOf('crashed')).length === 0 ? true : undefined,
      );
      for (const which of ['live', 'unmarked', 'attached']) {
        assert.ok((await pidsOf(which)).length > 0, `the ${which} sandbox is left alone`);
      }
    } finally {
      crashedNode.kill('SIGKILL');
      attached.kill('SIGKILL');
      await attached;
      for (const pid of await pidsOf('crashed', 'live', 'unmarked')) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone since it was listed
        }
      }
    }
  });
});
