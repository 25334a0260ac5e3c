/**
 * The resource attacks again, in pre-started sandboxes (the node's warm pool): each attack runs
 * once cold, then again in the pooled sandbox its first run made the node start, and must end the
 * same way. A pooled sandbox was started before its TaskInstance was known, under the limits of
 * its combination: this proves it still enforces every one of them, and times out from its claim.
 */
import assert from 'node:assert/strict';

import type { TaskRun } from '../../lib/client/client.js';
import { makePackage, waitFor } from '../helpers.js';
import { type Arena, arena, expectFailure } from './harness.js';

/** Starts processes that sleep until the process limit refuses one (the fixture's fork bomb is a command, and commands are never pooled). */
const SPAWN_BOMB = `import { spawn } from 'node:child_process';
export default async () => {
  for (let i = 0; i < 1000; i += 1) {
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    await new Promise((resolve) => { child.once('spawn', resolve); child.once('error', resolve); });
  }
  await new Promise(() => undefined);
};
`;

/** Runs `start()` cold, waits for the pooled sandbox it leaves, runs it again: the second run must be a pool hit. */
async function coldThenWarm(a: Arena, start: () => Promise<TaskRun>, message: string): Promise<void> {
  await expectFailure(a, await start(), message, { cgroups: false });
  await waitFor('a pooled sandbox for the attack', () => (a.node.warmPoolStats.ready >= 1 ? true : undefined));
  const hits = a.node.warmPoolStats.hits;
  await expectFailure(a, await start(), message, { cgroups: false });
  assert.equal(a.node.warmPoolStats.hits, hits + 1, 'the second run must have claimed the pooled sandbox');
}

describe('escape suite: resource attacks in pooled sandboxes (@integration)', function () {
  this.timeout(90_000);

  it('a JavaScript heap hog fails at the memory limit', async () => {
    const a = await arena({ warmMax: 1 });
    await coldThenWarm(a, () => a.attack('heap-hog'), 'memory limit exceeded (64 MiB)');
  });

  it('a process bomb from JavaScript is killed at the process limit', async () => {
    const a = await arena({ warmMax: 1 });
    await a.tydra.deploy(
      await makePackage({
        'tydra.json': JSON.stringify({ name: 'bomb', tasks: { spawn: { module: 'spawn.mjs' } } }),
        'spawn.mjs': SPAWN_BOMB,
      }),
    );
    await coldThenWarm(
      a,
      () => a.tydra.submit('bomb/spawn', null, { limits: { pids: 16, timeoutMs: 20_000 }, attempts: 3 }),
      'process limit exceeded (16 processes and threads)',
    );
  });

  it('a CPU loop is stopped at the CPU time limit (what Node used before the claim is not counted)', async () => {
    const a = await arena({ warmMax: 1 });
    await coldThenWarm(
      a,
      () => a.attack('cpu-loop', null, { cpuMs: 1000, timeoutMs: 60_000 }),
      'CPU time limit exceeded (1 s)',
    );
  });

  it('a task that sleeps for ever times out', async () => {
    const a = await arena({ warmMax: 1 });
    await coldThenWarm(a, () => a.attack('sleep-forever', null, { timeoutMs: 1000 }), 'timed out after 1 s');
  });
});
