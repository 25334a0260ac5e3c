/**
 * cgroup v2 on a fake tree: this machine (and CI's) has cgroup v1 only, so the v2 code paths are
 * checked against plain files in a temporary folder laid out as cgroupfs would be. What a fake
 * tree cannot show: that the kernel accepts these writes, enforces the limits and moves
 * processes. The README ("cgroups") says what has only been tested this way.
 */
import assert from 'node:assert/strict';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { detectCgroups, removeCgroupParent } from '../../../../sandbox/launcher/cgroup/support.js';
import { limitWrites, TaskCgroup } from '../../../../sandbox/launcher/cgroup/task-cgroup.js';
import { tempDir } from '../../../helpers.js';

const MiB = 1024 * 1024;

/** Control files a cgroup folder has, with their contents. */
async function cgroupFolder(dir: string, files: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    await writeFile(join(dir, name), text);
  }
}

describe('cgroup v2 on a fake tree', () => {
  it('detects a v2 root that offers memory and pids, enables them for its parent and takes cpu and cgroup.kill', async () => {
    const root = await tempDir('tydra-fake-v2-');
    await cgroupFolder(root, { 'cgroup.controllers': 'cpuset cpu io memory pids\n', 'cgroup.subtree_control': '' });
    // The parent already there (a restarted node's), as cgroupfs would show it.
    await cgroupFolder(join(root, 'tydra-fake'), { 'cgroup.subtree_control': '', 'cgroup.kill': '' });
    const support = await detectCgroups({ mountRoot: root, parentName: 'tydra-fake' });
    assert.deepEqual(support, {
      mode: 'v2',
      parent: join(root, 'tydra-fake'),
      controllers: ['memory', 'pids', 'cpu'],
      cgroupKill: true,
    });
    // Each write goes over the start of a plain file (opened `r+`, never truncated), where cgroupfs
    // takes each as an addition: what is left shows `+memory +pids`, then `+cpu`, in that order.
    for (const dir of [root, join(root, 'tydra-fake')]) {
      assert.equal(await readFile(join(dir, 'cgroup.subtree_control'), 'utf8'), '+cpuory +pids');
    }
  });

  it('detects a hybrid host (v2 at unified) without pids as no v2, saying what it offers', async () => {
    const root = await tempDir('tydra-fake-hybrid-');
    await cgroupFolder(join(root, 'unified'), { 'cgroup.controllers': 'memory\n', 'cgroup.subtree_control': '' });
    const support = await detectCgroups({ mountRoot: root, parentName: 'tydra-fake' });
    assert.equal(support.mode, 'none');
    assert.match(
      support.mode === 'none' ? support.reason : '',
      new RegExp(`the cgroup v2 hierarchy at ${join(root, 'unified')} offers memory, not pids$`),
    );
  });

  it("writes a TaskInstance's limits to memory.max, memory.swap.max, memory.oom.group and pids.max", () => {
    const support = { mode: 'v2' as const, parent: '/cg/p', controllers: ['memory', 'pids'], cgroupKill: true };
    const dirs = { memory: '/cg/p/t', pids: '/cg/p/t' };
    const limits = { memoryBytes: 64 * MiB, pids: 16 };
    assert.deepEqual(
      limitWrites(support, dirs, limits, () => true),
      [
        ['/cg/p/t/memory.max', String(64 * MiB)],
        ['/cg/p/t/memory.swap.max', '0'],
        ['/cg/p/t/memory.oom.group', '1'],
        ['/cg/p/t/pids.max', '16'],
      ],
    );
    // An older kernel without swap accounting or oom.group: the limits that exist still apply.
    assert.deepEqual(
      limitWrites(support, dirs, limits, () => false),
      [
        ['/cg/p/t/memory.max', String(64 * MiB)],
        ['/cg/p/t/pids.max', '16'],
      ],
    );
  });

  it("reads a v2 cgroup's counters (memory.events, pids.events, cpu.stat, memory.peak) and moves a process by cgroup.procs", async () => {
    const parent = await tempDir('tydra-fake-v2-task-');
    const dir = join(parent, 'task-1');
    await cgroupFolder(dir, {
      'memory.events': 'low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n',
      'pids.events': 'max 3\n',
      'cpu.stat': 'usage_usec 1500400\nuser_usec 1000000\nsystem_usec 500400\n',
      'memory.peak': `${5 * MiB}\n`,
      'cgroup.procs': '',
    });
    const support = { mode: 'v2' as const, parent, controllers: ['memory', 'pids'], cgroupKill: true };
    const cgroup = new TaskCgroup(support, 'task-1', { memory: dir, pids: dir, cpu: dir });
    assert.deepEqual(cgroup.paths, [dir]);
    assert.deepEqual(await cgroup.stats(), {
      oomKills: 1,
      pidsLimitHits: 3,
      cpuUsageMs: 1500,
      memoryPeakBytes: 5 * MiB,
    });
    await cgroup.addProcess(4242);
    assert.equal(await readFile(join(dir, 'cgroup.procs'), 'utf8'), '4242');
  });
});

/** v1 parents on a fake tree: plain folders stand in for the three hierarchies. */
describe('cgroup parents on a fake tree', () => {
  it('removes the v1 parents it can when one of them cannot be removed, then throws that failure', async () => {
    const root = await tempDir('tydra-fake-v1-');
    const memory = join(root, 'memory', 'tydra.x.1');
    const pids = join(root, 'pids', 'tydra.x.1');
    const cpuacct = join(root, 'cpuacct', 'tydra.x.1');
    for (const dir of [memory, pids, cpuacct]) {
      await cgroupFolder(join(dir, 'task-a'), {});
    }
    // A regular file in the first hierarchy's parent: its rmdir fails (ENOTEMPTY; cgroupfs would
    // answer EBUSY for a child cgroup made after the parent was listed).
    await writeFile(join(memory, 'stuck'), '');
    await assert.rejects(
      removeCgroupParent({ mode: 'v1', memory, pids, cpuacct }),
      (error: unknown) => error instanceof Error && error.message.includes(memory),
    );
    for (const gone of [pids, cpuacct, join(memory, 'task-a')]) {
      await assert.rejects(access(gone), { code: 'ENOENT' }, `${gone} should be removed`);
    }
    await access(join(memory, 'stuck'));
  });
});
