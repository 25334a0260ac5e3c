/**
 * The escape suite's harness: a master and a node on the test Redis with the `attacks` fixture
 * deployed, and the checks every attack ends with: the exact final state and error, one attempt
 * only, no process of the task left, no TaskInstance cgroup left, the host unchanged.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { SubmitOptions, TaskRun, TaskStatus, Tydra } from '../../lib/client/client.js';
import { TaskFailedError } from '../../lib/core/errors.js';
import type { TydraNode } from '../../lib/node/node.js';
import type { NodeOptions } from '../../lib/node/options.js';
import { digestTree } from '../../lib/packages/cache/tree-digest.js';
import { copyFixture, startCluster, testClient, waitFor } from '../helpers.js';
import { pidsWithEnv } from '../processes.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/**
 * A secret only the test process (and so the in-process node) has in its environment: no
 * sandbox may ever see it. Set at load time, before any node starts.
 */
export const CANARY = `secret-${randomUUID()}`;
process.env.TYDRA_ESCAPE_CANARY = CANARY;

/** The small limits the attacks run under (each test names the one it expects to trip). */
export const LIMITS = {
  cpuMs: 1000,
  memoryBytes: 64 * MiB,
  pids: 16,
  fileSizeBytes: MiB,
  scratchBytes: 4 * MiB,
  outputBytes: 64 * KiB,
  // Generous: on a busy machine a task may wait seconds for a core; the attacks that should time
  // out set their own short timeout.
  timeoutMs: 20_000,
} as const;

export interface Arena {
  tydra: Tydra;
  node: TydraNode;
  /** The deployed version of `attacks`. */
  sha1: string;
  /** Submits `attacks/<task>` under {@link LIMITS} (merged with `limits`), with 3 attempts allowed. */
  attack(task: string, input?: unknown, limits?: SubmitOptions['limits']): Promise<TaskRun>;
}

/** A master, one node and the `attacks` package, all closed after the test. */
export async function arena(nodeOptions: NodeOptions = {}): Promise<Arena> {
  const { nodes } = await startCluster(1, nodeOptions);
  const node = nodes[0];
  assert.ok(node !== undefined);
  assert.ok(
    node.cgroups !== undefined && node.cgroups.mode !== 'none',
    'the escape suite needs cgroups (run as root on a host with the memory and pids controllers)',
  );
  const tydra = testClient();
  const { sha1 } = await tydra.deploy(await copyFixture('attacks'));
  return {
    tydra,
    node,
    sha1,
    // Attempts to spare: the tests assert a limit violation is never retried.
    attack: (task, input = null, limits = {}) =>
      tydra.submit(`attacks/${task}`, input, { limits: { ...LIMITS, ...limits }, attempts: 3 }),
  };
}

/** Runs of the TaskInstance so far, from the node's `running …` log lines. */
export function runsOf(status: TaskStatus): number {
  return status.logs.filter((line) => line.startsWith('running ')).length;
}

/** What {@link expectNothingLeft} checks; `cgroups: false` while other TaskInstances still run on the node. */
export interface LeftoverChecks {
  cgroups?: boolean;
}

/** Asserts that `run` fails with exactly `message`, ran once, and left nothing behind. */
export async function expectFailure(
  arena: Arena,
  run: TaskRun,
  message: string,
  checks: LeftoverChecks = {},
): Promise<TaskStatus> {
  await assert.rejects(run.result(), (error: unknown) => {
    assert.ok(error instanceof TaskFailedError, `expected a TaskFailedError, got ${String(error)}`);
    assert.equal(error.message, message);
    return true;
  });
  const status = await run.status();
  assert.equal(status.state, 'failed');
  assert.equal(status.error, message);
  assert.equal(runsOf(status), 1, `a broken limit is never retried; logs: ${status.logs.join(' | ')}`);
  await expectNothingLeft(arena, run, checks);
  return status;
}

/** Asserts that `run` completes, ran once, and left nothing behind; returns its result. */
export async function expectResult(arena: Arena, run: TaskRun, checks: LeftoverChecks = {}): Promise<unknown> {
  const result = await run.result();
  const status = await run.status();
  assert.equal(status.state, 'completed');
  assert.equal(runsOf(status), 1);
  await expectNothingLeft(arena, run, checks);
  return result;
}

/** No process with the TaskInstance's id in its environment, and no TaskInstance cgroup on the node. */
export async function expectNothingLeft(arena: Arena, run: TaskRun, checks: LeftoverChecks = {}): Promise<void> {
  await waitFor(`every process of ${run.id} to be gone`, async () =>
    (await pidsWithEnv('TYDRA_INSTANCE_ID', run.id)).length === 0 ? true : undefined,
  );
  if (checks.cgroups ?? true) {
    // Removed after the result: a JavaScript task settles at its runner's last message.
    await waitFor('the TaskInstance cgroup to be removed', async () =>
      (await taskCgroups(arena.node)).length === 0 ? true : undefined,
    );
  }
}

/** `task-*` cgroups under the node's parent cgroup(s). */
export async function taskCgroups(node: TydraNode): Promise<string[]> {
  const support = node.cgroups;
  const parents =
    support?.mode === 'v2'
      ? [support.parent]
      : support?.mode === 'v1'
        ? [support.memory, support.pids, support.cpuacct]
        : [];
  const found: string[] = [];
  for (const parent of parents) {
    if (parent !== undefined) {
      found.push(
        ...(await readdir(parent)).filter((name) => name.startsWith('task-')).map((name) => join(parent, name)),
      );
    }
  }
  return found;
}

export async function sha256File(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** What an attack could change on the host, reduced to something to compare before and after. */
export interface HostState {
  shadow: string;
  rootListing: string[];
  usrListing: string[];
  usrBinListing: string[];
  /** Digest of the node's extracted copy of the package (undefined before the first run). */
  packageDigest: string | undefined;
}

export async function hostState(arena: Arena): Promise<HostState> {
  const cached = join(arena.node.cache.dir, 'attacks', arena.sha1);
  return {
    shadow: await sha256File('/etc/shadow'),
    rootListing: (await readdir('/')).sort(),
    usrListing: (await readdir('/usr')).sort(),
    usrBinListing: (await readdir('/usr/bin')).sort(),
    packageDigest: await digestTree(cached, 10_000).then(
      (tree) => tree.digest,
      () => undefined,
    ),
  };
}

/** The digest the node recorded when it extracted the package: the cached copy must still match it. */
export async function extractedDigest(arena: Arena): Promise<string> {
  const marker = JSON.parse(await readFile(join(arena.node.cache.dir, 'attacks', `${arena.sha1}.json`), 'utf8')) as {
    digest: string;
  };
  return marker.digest;
}

/** Asserts the host is as `before`, and the package's cached copy is exactly what the node extracted. */
export async function expectHostUnchanged(arena: Arena, before: HostState): Promise<void> {
  const after = await hostState(arena);
  assert.equal(after.shadow, before.shadow, '/etc/shadow changed');
  assert.deepEqual(after.rootListing, before.rootListing, '/ changed');
  assert.deepEqual(after.usrListing, before.usrListing, '/usr changed');
  assert.deepEqual(after.usrBinListing, before.usrBinListing, '/usr/bin changed');
  assert.equal(after.packageDigest, await extractedDigest(arena), 'the cached package changed');
}
