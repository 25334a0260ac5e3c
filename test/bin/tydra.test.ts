import assert from 'node:assert/strict';

import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { execa } from 'execa';

import {
  CLI,
  copyFixture,
  defer,
  redisUrl,
  removeNodeCgroups,
  startCluster,
  startNode,
  tempDir,
  testClient,
  waitFor,
} from '../helpers.js';

// Node ids carry this process's pid, so their parent cgroups (`tydra.<id>.<pid>`) fall under the leak check.
import { pidsWithEnv } from '../processes.js';
import { tydra } from './run-cli.js';

describe('the tydra CLI (@integration)', function () {
  this.timeout(60_000);

  it('deploy prints name@sha1, run prints the result, status and packages describe it', deployRunStatusPackages);
  it(
    'packages NAME shows references; undeploy takes a version out of use; prune --dry-run and prune report and remove',
    packagesUndeployPrune,
  );
  it('run exits non-zero and prints the task error when the task fails', runFailure);
  it('a node refuses to start without bubblewrap, with the install line', nodeWithoutBwrap);
  it(
    'a SIGKILLed node leaves no sandbox process behind, and the next node on the host removes its cgroups',
    killedNodeLeavesNothing,
  );
  it('a node stopped with SIGTERM finishes its running TaskInstance, then exits 0', sigtermDrains);
  it('a second SIGTERM forces a draining node out at once, and its sandbox dies with it', secondSigtermForces);
  it('tydra dev says how to install redis-server when it is missing', devWithoutRedis);
  it('tydra dev --demo starts a private Redis, master, nodes and dashboard, runs the examples and stops', devDemo);
});

async function deployRunStatusPackages(): Promise<void> {
  const { nodes } = await startCluster(1);
  const dir = await copyFixture('probe');
  const deployed = await tydra(['deploy', dir, '--redis', redisUrl()]);
  assert.equal(deployed.exitCode, 0, deployed.stderr);
  assert.match(deployed.stdout, /^probe@[0-9a-f]{40}$/);
  const sha1 = deployed.stdout.split('@')[1] ?? '';

  const again = await tydra(['deploy', dir, '--redis', redisUrl(), '--json']);
  assert.deepEqual(JSON.parse(again.stdout), {
    name: 'probe',
    sha1,
    size: JSON.parse(again.stdout).size,
    ref: `probe@${sha1}`,
    stored: false,
  });

  const ran = await tydra(['run', 'probe/sh-echo', '--input', '{"x":1}', '--redis', redisUrl()]);
  assert.equal(ran.exitCode, 0, ran.stderr);
  assert.deepEqual(JSON.parse(ran.stdout).stdin, { x: 1 });

  const detached = await tydra([
    'run',
    `probe@${sha1.slice(0, 8)}/echo`,
    '--input',
    '"d"',
    '--detach',
    '--redis',
    redisUrl(),
  ]);
  assert.equal(detached.exitCode, 0, detached.stderr);
  const id = detached.stdout.trim();
  assert.match(id, /^[0-9a-f-]{36}$/);
  const client = testClient();
  await client.run(id).result();
  const status = await tydra(['status', id, '--json', '--redis', redisUrl()]);
  const parsed = JSON.parse(status.stdout);
  assert.equal(parsed.state, 'completed');
  assert.equal(parsed.nodeId, nodes[0]?.id);
  assert.equal(parsed.result.input, 'd');

  const text = await tydra(['status', id, '--redis', redisUrl()]);
  assert.match(text.stdout, new RegExp(`^${id}  completed\\nref: probe@${sha1}/echo\\nnode: ${nodes[0]?.id}`));

  const packages = await tydra(['packages', 'probe', '--json', '--redis', redisUrl()]);
  assert.deepEqual(
    JSON.parse(packages.stdout).map((v: { sha1: string; latest: boolean }) => [v.sha1, v.latest]),
    [[sha1, true]],
  );
  const nodeList = await tydra(['nodes', '--json', '--redis', redisUrl()]);
  assert.deepEqual(
    JSON.parse(nodeList.stdout).map((n: { id: string; alive: boolean }) => [n.id, n.alive]),
    [[nodes[0]?.id, true]],
  );
}

async function packagesUndeployPrune(): Promise<void> {
  const probe = await copyFixture('probe');
  const v1 = (await tydra(['deploy', probe, '--redis', redisUrl()])).stdout.split('@')[1] ?? '';
  await writeFile(join(probe, 'extra.txt'), 'a second version');
  const v2 = (await tydra(['deploy', probe, '--redis', redisUrl()])).stdout.split('@')[1] ?? '';
  assert.match(v2, /^[0-9a-f]{40}$/);
  // No master yet: the submission waits and holds v2.
  const detached = await tydra(['run', 'probe/echo', '--detach', '--redis', redisUrl()]);
  assert.equal(detached.exitCode, 0, detached.stderr);

  const listed = await tydra(['packages', 'probe', '--redis', redisUrl()]);
  assert.equal(listed.exitCode, 0, listed.stderr);
  assert.match(listed.stdout, new RegExp(`^probe@${v2} .* refs 1 \\(waiting 1\\)  latest, lease \\d+ s`, 'm'));
  assert.match(listed.stdout, new RegExp(`^probe@${v1} .* refs 0  lease \\d+ s`, 'm'));

  const undeployed = await tydra(['undeploy', `probe@${v1.slice(0, 7)}`, '--redis', redisUrl()]);
  assert.equal(undeployed.exitCode, 0, undeployed.stderr);
  assert.equal(undeployed.stdout, `undeployed probe@${v1}\nlatest: probe@${v2}`);
  const refused = await tydra(['run', `probe@${v1}/echo`, '--detach', '--redis', redisUrl()]);
  assert.equal(refused.exitCode, 1);
  assert.match(refused.stderr, /which was undeployed/);
  const bad = await tydra(['undeploy', 'probe@xyz', '--redis', redisUrl()]);
  assert.equal(bad.exitCode, 1);
  assert.equal(
    bad.stderr,
    'tydra: Expected the version in "probe@xyz" to be a sha1 or a prefix of at least 7 hex digits, got `xyz`',
  );

  const dry = await tydra(['prune', '--dry-run', '--grace', '0', '--redis', redisUrl()]);
  assert.equal(dry.exitCode, 0, dry.stderr);
  assert.match(dry.stdout, new RegExp(`^would remove probe@${v1}: undeployed, no holders since`, 'm'));
  assert.match(dry.stdout, new RegExp(`^kept probe@${v2}: held by 1 TaskInstance\\(s\\)$`, 'm'));
  assert.match(dry.stdout, /dry run, nothing changed$/);
  const real = await tydra(['prune', '--grace', '0', '--json', '--redis', redisUrl()]);
  const report = JSON.parse(real.stdout);
  assert.deepEqual(
    report.removed.map((d: { sha1: string }) => d.sha1),
    [v1],
  );
  const after = await tydra(['packages', 'probe', '--json', '--redis', redisUrl()]);
  assert.deepEqual(
    JSON.parse(after.stdout).map((v: { sha1: string; references: number }) => [v.sha1, v.references]),
    [[v2, 1]],
  );
}

async function runFailure(): Promise<void> {
  await startCluster(1);
  await tydra(['deploy', await copyFixture('probe'), '--redis', redisUrl()]);
  const failed = await tydra(['run', 'probe/throw', '--input', '{"word":"cli"}', '--redis', redisUrl()]);
  assert.equal(failed.exitCode, 1);
  assert.match(failed.stderr, /^TaskInstance [0-9a-f-]{36} failed: probe said cli$/m);
  const badRef = await tydra(['run', 'nope/x', '--redis', redisUrl()]);
  assert.equal(badRef.exitCode, 1);
  assert.equal(badRef.stderr.trim(), 'tydra: Expected a deployed package named nope, found none');
  const badJson = await tydra(['run', 'probe/echo', '--input', '{oops', '--redis', redisUrl()]);
  assert.equal(badJson.exitCode, 1);
  assert.match(badJson.stderr, /Expected the input to be JSON/);
  const badDir = await tydra(['deploy', await tempDir(), '--redis', redisUrl()]);
  assert.equal(badDir.exitCode, 1);
  assert.match(badDir.stderr, /^tydra: Expected a tydra\.json in .*, found none$/);
}

async function nodeWithoutBwrap(): Promise<void> {
  const result = await tydra(['node', '--redis', redisUrl(), '--cache-dir', await tempDir()], {
    env: { PATH: '/nonexistent' },
  });
  assert.equal(result.exitCode, 1);
  assert.equal(
    result.stderr.trim().split('\n').at(-1),
    'tydra: bubblewrap (bwrap) was not found on PATH; install it with: apt-get install -y bubblewrap',
  );
}

async function killedNodeLeavesNothing(): Promise<void> {
  await startCluster(0);
  const client = testClient();
  await client.deploy(await copyFixture('probe'));
  const node = execa(
    process.execPath,
    [CLI, 'node', '--id', `doomed-${process.pid}`, '--redis', redisUrl(), '--cache-dir', await tempDir()],
    { reject: false, extendEnv: false, env: { PATH: process.env.PATH ?? '' } },
  );
  defer(() => Promise.resolve(node.kill('SIGKILL')));
  const run = await client.submit('probe/sleep');
  const pids = await waitFor(
    'the sandbox to start',
    async () => {
      const found = await pidsWithEnv('TYDRA_INSTANCE_ID', run.id);
      return found.length > 0 ? found : undefined;
    },
    20_000,
  );
  assert.ok(pids.length > 0);
  node.kill('SIGKILL');
  await node;
  await waitFor(
    'every sandbox process to die',
    async () => ((await pidsWithEnv('TYDRA_INSTANCE_ID', run.id)).length === 0 ? true : undefined),
    5000,
  );
  // Its parent cgroup (with the sandbox's cgroup inside) outlives it, until a node starts.
  const next = await startNode();
  const support = next.cgroups;
  assert.ok(support !== undefined && support.mode !== 'none', 'this host has cgroups');
  const hierarchy = dirname(support.mode === 'v2' ? support.parent : support.memory);
  assert.equal(
    existsSync(join(hierarchy, `tydra.doomed-${process.pid}.${node.pid ?? 0}`)),
    false,
    "the crashed node's parent cgroup is removed",
  );
  assert.equal(
    existsSync(support.mode === 'v2' ? support.parent : support.memory),
    true,
    'the live node keeps its own',
  );
}

async function sigtermDrains(): Promise<void> {
  await startCluster(0);
  const client = testClient();
  await client.deploy(await copyFixture('probe'));
  const node = execa(
    process.execPath,
    [CLI, 'node', '--id', `draining-${process.pid}`, '--redis', redisUrl(), '--cache-dir', await tempDir()],
    { reject: false, extendEnv: false, env: { PATH: process.env.PATH ?? '' } },
  );
  defer(() => Promise.resolve(node.kill('SIGKILL')));
  const run = await client.submit('probe/nap', { ms: 1500, tag: 'drained' });
  await waitFor(
    'the task to start',
    async () => ((await pidsWithEnv('TYDRA_INSTANCE_ID', run.id)).length > 0 ? true : undefined),
    20_000,
  );
  node.kill('SIGTERM');
  const exit = await node;
  assert.equal(exit.exitCode, 0, exit.stderr);
  assert.match(exit.stderr, /"msg":"SIGTERM received, stopping \(send it again to force\)"/);
  assert.deepEqual(await run.result({ timeoutMs: 5000 }), { rested: 'drained' });
  assert.deepEqual(
    (await client.nodes()).map((n) => [n.id, n.state, n.alive]),
    [[`draining-${process.pid}`, 'stopped', false]],
  );
}

async function secondSigtermForces(): Promise<void> {
  await startCluster(0);
  const client = testClient();
  await client.deploy(await copyFixture('probe'));
  const node = execa(
    process.execPath,
    [
      CLI,
      'node',
      '--id',
      `forced-${process.pid}`,
      '--redis',
      redisUrl(),
      '--cache-dir',
      await tempDir(),
      '--drain-timeout',
      '60000',
    ],
    { reject: false, extendEnv: false, env: { PATH: process.env.PATH ?? '' } },
  );
  defer(async () => {
    node.kill('SIGKILL');
    await node;
    // Forced out, the node exits without removing its cgroups.
    await removeNodeCgroups(`forced-${process.pid}`, node.pid);
  });
  const run = await client.submit('probe/sleep');
  await waitFor(
    'the task to start',
    async () => ((await pidsWithEnv('TYDRA_INSTANCE_ID', run.id)).length > 0 ? true : undefined),
    20_000,
  );
  node.kill('SIGTERM');
  await waitFor('the node to start draining', async () =>
    (await client.nodes()).some((n) => n.id === `forced-${process.pid}` && n.state === 'stopped') ? true : undefined,
  );
  node.kill('SIGTERM');
  const exit = await node;
  // 128 + SIGTERM's number, after a forced close.
  assert.equal(exit.exitCode, 143, exit.stderr);
  assert.match(exit.stderr, /"msg":"second SIGTERM, force-closing/);
  await waitFor(
    'every sandbox process to die',
    async () => ((await pidsWithEnv('TYDRA_INSTANCE_ID', run.id)).length === 0 ? true : undefined),
    5000,
  );
}

async function devWithoutRedis(): Promise<void> {
  const result = await tydra(['dev', '--port', '0'], { cwd: await tempDir(), env: { PATH: '/nonexistent' } });
  assert.equal(result.exitCode, 1);
  assert.equal(
    result.stderr.trim().split('\n').at(-1),
    'tydra: redis-server was not found on PATH; install it with: apt-get install -y redis-server',
  );
}

async function devDemo(): Promise<void> {
  const cwd = await tempDir();
  const result = await tydra(['dev', '--demo', '--exit', '--port', '0'], { cwd });
  assert.equal(result.exitCode, 0, result.stderr);
  const lines = result.stdout.split('\n');
  assert.match(lines[0] ?? '', /^tydra dev: 2 node\(s\) on redis:\/\/127\.0\.0\.1:\d+$/);
  assert.match(result.stdout, /^dashboard: http:\/\/127\.0\.0\.1:\d+\/$/m);
  assert.match(result.stdout, /^deployed hello@[0-9a-f]{40}$/m);
  assert.match(
    result.stdout,
    /^ran hello\/greet on dev-[12] \(TaskInstance [0-9a-f-]{36}\): \{"greeting":"Hello, tydra!"/m,
  );
  assert.match(
    result.stdout,
    /^ran shout\/shout on dev-[12] \(TaskInstance [0-9a-f-]{36}\): \{"shout":"HELLO FROM A SANDBOX!"\}$/m,
  );
  // A sequence (TaskContainer): its steps ran on nodes of their own, so the line names none.
  assert.match(result.stdout, /^ran report\/report \(TaskInstance [0-9a-f-]{36}\): \[\["a {8}#+ \d+"/m);
  assert.doesNotMatch(result.stderr, /open handles/);
}
