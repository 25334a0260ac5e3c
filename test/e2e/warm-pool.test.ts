/**
 * The node's warm pool through master and node, on real bwrap and Redis: a pooled sandbox serves
 * exactly one TaskInstance, with that TaskInstance's environment, and is replaced; a hit shows in
 * the node's stats and in its heartbeat; the timeout starts at the claim; the pool drains on
 * undeploy, on a node drain and on close, leaving no process and no cgroup.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Tydra } from '../../lib/client/client.js';
import { NodeRegistry } from '../../lib/cluster/node-registry.js';
import { createKeys } from '../../lib/redis/keys.js';
import type { TydraNode } from '../../lib/node/node.js';
import { taskCgroups } from '../escape/harness.js';
import { tydra as cli } from '../bin/run-cli.js';
import { makePackage, redisUrl, sleep, startCluster, testClient, testRedis, waitFor } from '../helpers.js';

/**
 * `once` tells whether its sandbox served anyone before (a file in the sandbox's own /tmp, a
 * global of its process) and leaves a fresh random token in both.
 */
const FILES = {
  'tydra.json': JSON.stringify({
    name: 'warm',
    tasks: {
      once: { module: 'once.mjs' },
      nap: { module: 'nap.mjs' },
      linger: { module: 'linger.mjs' },
      print: { module: 'print.mjs' },
    },
  }),
  'once.mjs': `import { randomUUID } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
export default () => {
  const reused = existsSync('/tmp/sandbox-token') || globalThis.sandboxToken !== undefined;
  const token = randomUUID();
  writeFileSync('/tmp/sandbox-token', token);
  globalThis.sandboxToken = token;
  return { reused, token, instance: process.env.TYDRA_INSTANCE_ID, attempt: process.env.TYDRA_ATTEMPT, colour: process.env.COLOUR ?? null };
};
`,
  'linger.mjs': `import { spawn } from 'node:child_process';
export default async () => {
  const child = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
  await new Promise((resolve, reject) => { child.once('spawn', resolve); child.once('error', reject); });
  child.unref();
  return 'left one behind';
};
`,
  'print.mjs': `export default () => {
  // A slow exit: the runner's last message is out long before the streams end.
  process.on('exit', () => { const until = Date.now() + 1500; while (Date.now() < until); });
  console.error('to stderr');
  process.stdout.write('printed, with no newline at the end');
  return 'printed';
};
`,
  'nap.mjs': `export default async (input) => { await new Promise((resolve) => setTimeout(resolve, input.ms)); return 'rested'; };\n`,
};

interface Once {
  reused: boolean;
  token: string;
  instance: string;
  attempt: string;
  colour: string | null;
}

async function pooledCluster(warmMax = 2): Promise<{ tydra: Tydra; node: TydraNode; sha1: string }> {
  const { nodes } = await startCluster(1, { warmMax });
  const node = nodes[0];
  assert.ok(node !== undefined);
  const tydra = testClient();
  const { sha1 } = await tydra.deploy(await makePackage(FILES));
  return { tydra, node, sha1 };
}

const readyIn = (node: TydraNode) => () => (node.warmPoolStats.ready >= 1 ? true : undefined);
const emptyPool = (node: TydraNode) => async () =>
  node.warmPoolStats.size === 0 && (await taskCgroups(node)).length === 0 ? true : undefined;

/** Host pids in the node's TaskInstance cgroups (pooled sandboxes included). */
async function sandboxPids(node: TydraNode): Promise<number[]> {
  const pids: number[] = [];
  for (const dir of await taskCgroups(node)) {
    const text = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
    pids.push(...text.split('\n').filter(Boolean).map(Number));
  }
  return pids;
}

/**
 * Whether a process runs: a zombie does not. One whose parent died waits for init or a
 * subreaper to reap it, and a subreaper that never does (a test runner's) would keep it listed.
 */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

describe('warm pool: pre-started single-use sandboxes (@integration)', function () {
  this.timeout(60_000);

  it('serves each TaskInstance from a fresh sandbox, hit after a first cold run, and replaces what it used', async () => {
    const { tydra, node } = await pooledCluster();
    const cold = (await (await tydra.submit('warm/once', null)).result()) as Once;
    assert.equal(node.warmPoolStats.misses, 1);
    await waitFor('a pooled sandbox', readyIn(node));
    const run = await tydra.submit('warm/once', null, { env: { COLOUR: 'blue' } });
    const warm = (await run.result()) as Once;
    assert.equal(node.warmPoolStats.hits, 1, 'the second TaskInstance claimed the pooled sandbox');
    assert.deepEqual(
      { ...warm, token: '' },
      { reused: false, token: '', instance: run.id, attempt: '1', colour: 'blue' },
      'its own environment, set before the task ran',
    );
    await waitFor('a replacement', readyIn(node));
    const third = (await (await tydra.submit('warm/once', null)).result()) as Once;
    assert.equal(node.warmPoolStats.hits, 2);
    assert.equal(third.reused, false);
    assert.equal(new Set([cold.token, warm.token, third.token]).size, 3, 'three sandboxes, never one twice');
    const registry = new NodeRegistry(testRedis(), createKeys());
    const published = await waitFor('the heartbeat to publish the pool', async () => {
      const info = (await registry.list()).find((candidate) => candidate.id === node.id);
      return info?.pool !== undefined && info.pool.hits === 2 ? info : undefined;
    });
    assert.equal(published.pool?.misses, 1);
    assert.equal(published.cached.length, 1);
    const listed = await cli(['nodes', '--redis', redisUrl()]);
    assert.match(listed.stdout, /warm pool [12]\/2, 2 hits, 1 misses \(67% hits\)/);
  });

  it('drains a version the cache evicts', async () => {
    // A budget of one byte: the version is evicted as soon as its TaskInstance lets go of it.
    const { nodes } = await startCluster(1, { warmMax: 2, cacheMaxBytes: 1 });
    const node = nodes[0];
    assert.ok(node !== undefined);
    const tydra = testClient();
    await tydra.deploy(await makePackage(FILES));
    await (await tydra.submit('warm/once', null)).result();
    await waitFor('the pooled sandbox started after the run to be stopped', async () =>
      node.warmPoolStats.started >= 1 && node.warmPoolStats.discarded >= 1 ? emptyPool(node)() : undefined,
    );
    assert.equal(node.cache.versions().length, 0, 'the version was evicted');
  });

  it('gives a pooled sandbox the secrets of the TaskInstance that claims it, on no command line nor environment block', async () => {
    const key = randomBytes(32).toString('base64');
    const secret = `pw-${randomUUID()}`;
    const { nodes } = await startCluster(1, { warmMax: 1, secretKey: key });
    const node = nodes[0];
    assert.ok(node !== undefined);
    const tydra = testClient({ secretKey: key });
    await tydra.setSecret('DB_PASSWORD', secret);
    await tydra.deploy(
      await makePackage({
        'tydra.json': JSON.stringify({
          name: 'sealed',
          tasks: { hold: { module: 'hold.mjs', secrets: ['DB_PASSWORD'] } },
        }),
        // Says whether it has its secret, then waits to be cancelled (or returns at once when asked).
        'hold.mjs': `export default async (input, ctx) => {
  ctx.log(process.env.DB_PASSWORD === input.expect ? 'has it' : 'lacks it');
  if (!input.wait) return 'done';
  await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
};
`,
      }),
    );
    assert.equal(await (await tydra.submit('sealed/hold', { expect: secret })).result(), 'done');
    await waitFor('a pooled sandbox', readyIn(node));
    const run = await tydra.submit('sealed/hold', { expect: secret, wait: true });
    await waitFor(
      'the pooled task to hold its secret',
      async () => (await run.status()).logs.includes('has it') || undefined,
    );
    assert.equal(node.warmPoolStats.hits, 1);
    for (const pid of await readdir('/proc')) {
      for (const file of ['cmdline', 'environ']) {
        const text = await readFile(`/proc/${pid}/${file}`, 'latin1').catch(() => '');
        assert.ok(!text.includes(secret), `the secret is in /proc/${pid}/${file}`);
      }
    }
    await tydra.cancel(run.id);
    await assert.rejects(run.result(), { name: 'TaskCancelledError' });
  });

  it('sends a TaskInstance, among equally idle nodes, to the one with its version warm (and cached)', async () => {
    const { nodes } = await startCluster(2, { warmMax: 1 });
    const tydra = testClient();
    const { sha1 } = await tydra.deploy(await makePackage(FILES));
    const first = await tydra.submit('warm/once', null);
    await first.result();
    const warmNode = nodes.find((node) => node.warmPoolStats.misses === 1);
    assert.ok(warmNode !== undefined);
    const registry = new NodeRegistry(testRedis(), createKeys());
    for (let i = 0; i < 3; i += 1) {
      // Published warm (a heartbeat after the replacement was ready): without the preference,
      // the master would rotate between the two idle nodes.
      await waitFor('the warm node to publish its pooled sandbox', async () => {
        const info = (await registry.list()).find((node) => node.id === warmNode.id);
        return warmNode.warmPoolStats.ready >= 1 && info?.warm.includes(`warm@${sha1}`) ? true : undefined;
      });
      const run = await tydra.submit('warm/once', null);
      await run.result();
      assert.equal((await run.status()).nodeId, warmNode.id);
    }
    assert.equal(warmNode.warmPoolStats.hits, 3);
  });

  it('starts the timeout at the claim: a pooled sandbox older than the timeout still runs its task', async () => {
    const { tydra, node } = await pooledCluster(1);
    const limits = { timeoutMs: 1500 };
    assert.equal(await (await tydra.submit('warm/nap', { ms: 10 }, { limits })).result(), 'rested');
    await waitFor('a pooled sandbox', readyIn(node));
    // Sitting in the pool for longer than the timeout (a wait, not a timing assertion).
    await sleep(2 * limits.timeoutMs);
    assert.equal(await (await tydra.submit('warm/nap', { ms: 200 }, { limits })).result(), 'rested');
    assert.equal(node.warmPoolStats.hits, 1, 'the nap ran in the sandbox pooled before the wait');
  });

  it('drains on undeploy, and on a node drain, leaving no sandbox and no cgroup', async () => {
    const { tydra, node } = await pooledCluster();
    await (await tydra.submit('warm/once', null)).result();
    await waitFor('a pooled sandbox', readyIn(node));
    assert.ok(node.warmPoolStats.size >= 1);
    await tydra.undeploy('warm');
    await waitFor('the pool to drain on undeploy', emptyPool(node));
    // Deployed again (a new version), used once, then the node is drained by an operator.
    FILES['nap.mjs'] += '// v2\n';
    await tydra.deploy(await makePackage(FILES));
    await (await tydra.submit('warm/once', null)).result();
    await waitFor('a pooled sandbox of the new version', readyIn(node));
    assert.ok(await new NodeRegistry(testRedis(), createKeys()).setDraining(node.id, true));
    await waitFor('the pool to drain with the node', emptyPool(node));
    assert.equal(node.warmPoolStats.size, 0);
  });

  it('replaces a pooled sandbox that dies unclaimed', async () => {
    const { tydra, node } = await pooledCluster(1);
    await (await tydra.submit('warm/once', null)).result();
    await waitFor('a pooled sandbox', readyIn(node));
    const { started } = node.warmPoolStats;
    const pids = await sandboxPids(node);
    assert.ok(pids.length > 0);
    // The cold run's sandbox may still be exiting beside the pooled one: its processes can be
    // gone by now (ESRCH). The replacement below proves the pooled one died.
    pids.forEach((pid) => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') {
          throw error;
        }
      }
    });
    await waitFor('a replacement', () =>
      node.warmPoolStats.started === started + 1 && node.warmPoolStats.ready === 1 ? true : undefined,
    );
    const next = (await (await tydra.submit('warm/once', null)).result()) as Once;
    assert.equal(next.reused, false);
    assert.equal(node.warmPoolStats.hits, 1, 'the replacement served it');
  });

  it('settles a claim before its teardown, and still kills what the task left and removes its cgroup', async () => {
    const { tydra, node } = await pooledCluster(1);
    await (await tydra.submit('warm/linger', null)).result();
    // The cold run's cgroups went before its result: what is left is the pooled sandbox's.
    await waitFor('a pooled sandbox', readyIn(node));
    const [claimed] = await taskCgroups(node);
    assert.ok(claimed !== undefined, 'the pooled sandbox has its cgroup');
    assert.equal(await (await tydra.submit('warm/linger', null)).result(), 'left one behind');
    assert.equal(node.warmPoolStats.hits, 1, 'the pooled sandbox ran it');
    // The result came at the runner's last message; the detached `sleep` lives on in the cgroup
    // until the teardown kills it: a cgroup directory cannot be removed while a process is in it.
    await waitFor('the claimed cgroup to be gone', async () =>
      (await taskCgroups(node)).includes(claimed) ? undefined : true,
    );
  });

  it("settled at the runner's last message, still logs everything the task printed before it", async () => {
    const { tydra, node } = await pooledCluster(1);
    await (await tydra.submit('warm/print', null)).result();
    await waitFor('a pooled sandbox', readyIn(node));
    const run = await tydra.submit('warm/print', null);
    assert.equal(await run.result(), 'printed');
    assert.equal(node.warmPoolStats.hits, 1, 'the pooled sandbox ran it');
    // Read at once: the log is complete when the result is (the node finishes it first).
    const { logs } = await run.status();
    assert.ok(logs.includes('[stderr] to stderr'), `stderr line missing from ${logs.length} log lines`);
    assert.ok(logs.includes('[stdout] printed, with no newline at the end'), 'the unterminated last line');
  });

  it('leaves no process of a pooled sandbox once the node closed', async () => {
    const { tydra, node } = await pooledCluster();
    await (await tydra.submit('warm/once', null)).result();
    await waitFor('a pooled sandbox', readyIn(node));
    const pids = await sandboxPids(node);
    assert.ok(pids.length > 0, 'the pooled sandbox runs in its own cgroup');
    await node.close();
    // Its cgroups went with the node's parent cgroup: the suite's leak check looks for them.
    await waitFor('every pooled process to be gone', async () =>
      (await Promise.all(pids.map(alive))).includes(true) ? undefined : true,
    );
  });
});
