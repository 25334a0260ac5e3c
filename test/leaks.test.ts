/** The root hooks' leak check (`leaks.ts`) sees each kind of leftover, and stops seeing it once it is gone. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';

import { Redis } from 'ioredis';

import { redisUrl, testRedis } from './helpers.js';
import { LeakCheck } from './leaks.js';

/** Makes cgroup `name` in the first hierarchy that takes it: v1 pids, the hybrid v2 mount, or pure v2. */
async function makeCgroup(name: string): Promise<string> {
  for (const hierarchy of ['/sys/fs/cgroup/pids', '/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
    const dir = join(hierarchy, name);
    if (
      await mkdir(dir).then(
        () => true,
        () => false,
      )
    ) {
      return dir;
    }
  }
  throw new Error('found no cgroup hierarchy to make a cgroup in (the tests run as root on a host with cgroups)');
}

describe('the leak check (@integration)', () => {
  // A short grace: each leftover below is reported only after the grace ran out.
  const check = (redis = testRedis()): LeakCheck => new LeakCheck(redis, 200);

  it('reports a connection to the test Redis opened and not closed by the test', async () => {
    const redis = testRedis();
    const leaks = check(redis);
    const before = await leaks.snapshot();
    // Deliberately not testRedis(): this connection is the leak under test.
    const leaked = new Redis(redisUrl(), { connectionName: 'leaked-by-test' });
    await leaked.ping();
    const found = await leaks.leftovers(before);
    assert.equal(found.length, 1, found.join('; '));
    assert.match(found[0] ?? '', /^a Redis connection \(id=\d+ name=leaked-by-test last command: ping\)$/);
    leaked.disconnect();
    // Redis drops the client when it reads the close: the suite's own grace, not the short one,
    // so a busy machine does not make the closed connection look open.
    assert.deepEqual(await new LeakCheck(redis).leftovers(before), []);
  });

  it('reports a child process still running, by pid and command line', async () => {
    const leaks = check();
    const before = await leaks.snapshot();
    const child = spawn('sleep', ['600'], { stdio: 'ignore' });
    const exited = once(child, 'exit');
    try {
      assert.deepEqual(await leaks.leftovers(before), [`a child process (pid ${child.pid}, state S: sleep 600)`]);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    assert.deepEqual(await leaks.leftovers(before), []);
  });

  it('reports a cgroup named for this process, in whichever hierarchy it was made', async () => {
    const leaks = check();
    const before = await leaks.snapshot();
    const dir = await makeCgroup(`tydra-leak-check-${process.pid}`);
    try {
      assert.deepEqual(await leaks.leftovers(before), [`the cgroup ${dir}`]);
    } finally {
      await rmdir(dir);
    }
    assert.deepEqual(await leaks.leftovers(before), []);
  });
});
