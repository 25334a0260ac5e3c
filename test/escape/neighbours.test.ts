/**
 * TaskInstances sharing one node: none sees another's files, processes or environment, and
 * hostile ones cannot stop a well-behaved one from finishing with the right result.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import { TaskCancelledError } from '../../lib/core/errors.js';
import { defer, waitFor } from '../helpers.js';
import { pidsWithEnv } from '../processes.js';
import { arena, expectFailure, expectNothingLeft, expectResult, taskCgroups } from './harness.js';

describe('escape suite: neighbours (@integration)', function () {
  this.timeout(30_000);

  it('a task sees neither the /tmp files nor the processes of another task running beside it', async () => {
    const a = await arena({ concurrency: 2 });
    const secret = `neighbour-${randomUUID()}`;
    // It holds far longer than the spy needs, whatever the machine's load, and is cancelled once the spy is done.
    const planter = await a.attack('plant-secret', { secret, holdMs: 600_000 }, { timeoutMs: 600_000 });
    await waitFor(
      'the secret to be planted',
      async () => ((await planter.status()).logs.includes('secret planted') ? true : undefined),
      5000,
    );
    assert.ok((await pidsWithEnv('TYDRA_INSTANCE_ID', planter.id)).length > 0, 'the planter must still be running');
    const spy = await a.attack('spy', { secret });
    const report = (await expectResult(a, spy, { cgroups: false })) as {
      tmp: string[];
      secretFile: string;
      secretSeen: boolean;
      instanceIds: string[];
      pids: number[];
    };
    assert.equal((await planter.status()).state, 'running', 'the spy must have run while the planter held its secret');
    assert.deepEqual(report.tmp, []);
    assert.equal(report.secretFile, '');
    assert.equal(report.secretSeen, false);
    assert.deepEqual(report.instanceIds, [spy.id], 'only its own processes are visible');
    assert.deepEqual(report.pids, [1], "the task's runner alone, as pid 1 (no bwrap init around it)");
    await planter.cancel();
    await assert.rejects(planter.result(), TaskCancelledError);
    await expectNothingLeft(a, planter);
  });

  it('each sandbox is a host user of its own: a task holding all the inotify instances a user may have leaves its neighbour its own', async () => {
    // The kernel counts inotify instances per host user, whatever the namespaces: were both
    // sandboxes one user (as before sandbox-users.ts), the neighbour would get EMFILE.
    const perUser = Number(await readFile('/proc/sys/fs/inotify/max_user_instances', 'utf8'));
    const a = await arena({ concurrency: 2 });
    const hog = await a.attack('inotify', { take: perUser + 10, holdMs: 600_000 }, { timeoutMs: 600_000 });
    defer(() => hog.cancel()); // should an assertion below fail first
    const holding = await waitFor('the hog to hold its instances', async () =>
      (await hog.status()).logs.find((line) => line.startsWith('[stderr] holding ')),
    );
    assert.equal(
      holding,
      `[stderr] holding ${perUser} inotify instances`,
      'the hog got every instance its user may have',
    );
    const neighbour = await a.attack('inotify', { take: 1 });
    assert.deepEqual(await expectResult(a, neighbour, { cgroups: false }), { got: 1, error: null });
    assert.equal((await hog.status()).state, 'running', 'the neighbour ran while the hog held them');
    await hog.cancel();
    await assert.rejects(hog.result(), TaskCancelledError);
    await expectNothingLeft(a, hog);
  });

  it('a fork bomb and a memory hog beside a well-behaved task: the hostile ones fail, the good one completes correctly', async () => {
    const a = await arena({ concurrency: 3 });
    const [bomb, hog, good] = await Promise.all([
      a.attack('fork-bomb'),
      a.attack('memory-hog'),
      // About 6 s of wall time but little CPU: still at work when the hostile ones have been stopped.
      a.attack('steady', { below: 2_000_000, rounds: 15, pauseMs: 400 }),
    ]);
    assert.ok(bomb !== undefined && hog !== undefined && good !== undefined);
    await Promise.all([
      expectFailure(a, bomb, 'process limit exceeded (16 processes and threads)', { cgroups: false }),
      expectFailure(a, hog, 'memory limit exceeded (64 MiB)', { cgroups: false }),
    ]);
    // The hostile ones ended while the good one was still at work.
    assert.equal((await good.status()).state, 'running');
    assert.deepEqual(await good.result(), { primes: 148_933, rounds: 15, consistent: true });
    for (const run of [bomb, hog, good]) {
      await expectNothingLeft(a, run);
    }
    assert.deepEqual(await taskCgroups(a.node), []);
  });
});
