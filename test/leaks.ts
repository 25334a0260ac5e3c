/**
 * The leak check behind the root `afterEach`: what a test left running once its deferred
 * cleanups ran. Three kinds of leftovers are looked for, each compared with a snapshot taken
 * before the test: connections to the suite's Redis (a Queue, Worker or client never closed),
 * child processes of this mocha process (a node, a redis-server, a sandbox's bwrap), and cgroups
 * named for this process (`tydra.<node>.<pid>` parents, `tydra-test-…-<pid>`, and any `task-*`
 * inside them). Other processes on the host (another suite, a real node) are never counted: their
 * cgroups carry their own pid, their connections were there before the test or belong to another
 * Redis.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Redis } from 'ioredis';

/** What a test may leave behind, each entry a line of the failure message. */
export interface Snapshot {
  redisClients: Map<string, string>;
  children: Map<string, string>;
  cgroups: Set<string>;
}

/** The cgroup hierarchies a node may create its cgroups in (v1 controllers, the hybrid v2 mount, pure v2). */
const CGROUP_ROOTS = [
  '/sys/fs/cgroup/memory',
  '/sys/fs/cgroup/pids',
  '/sys/fs/cgroup/cpuacct',
  '/sys/fs/cgroup/unified',
  '/sys/fs/cgroup',
];

/** How long asynchronous closes (a BullMQ `disconnect()`, a killed child being reaped) may take. */
export const LEAK_GRACE_MS = 3000;

export class LeakCheck {
  /** The check's own connection (undefined in the unit run, which has no Redis). */
  private readonly redis: Redis | undefined;
  private readonly graceMs: number;
  private ownId: string | undefined;

  constructor(redis?: Redis, graceMs = LEAK_GRACE_MS) {
    this.redis = redis;
    this.graceMs = graceMs;
  }

  async snapshot(): Promise<Snapshot> {
    return {
      redisClients: await this.redisClients(),
      children: await childProcesses(),
      cgroups: await ownCgroups(),
    };
  }

  /**
   * Polls until nothing new since `before` is left, for at most the grace; returns
   * what is still there (empty when the test cleaned up after itself).
   */
  async leftovers(before: Snapshot): Promise<string[]> {
    const deadline = Date.now() + this.graceMs;
    for (;;) {
      const found = describeNew(before, await this.snapshot());
      if (found.length === 0 || Date.now() > deadline) {
        return found;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private async redisClients(): Promise<Map<string, string>> {
    const clients = new Map<string, string>();
    if (this.redis === undefined) {
      return clients;
    }
    this.ownId ??= String(await this.redis.client('ID'));
    const list = (await this.redis.client('LIST')) as string;
    for (const line of list.split('\n')) {
      const fields = new Map(line.split(' ').map((pair) => pair.split('=', 2) as [string, string]));
      const id = fields.get('id');
      if (id !== undefined && id !== this.ownId) {
        const name = fields.get('name') ? ` name=${fields.get('name')}` : '';
        clients.set(id, `a Redis connection (id=${id}${name} last command: ${fields.get('cmd') ?? '?'})`);
      }
    }
    return clients;
  }
}

function describeNew(before: Snapshot, after: Snapshot): string[] {
  const fresh = <T>(items: Iterable<T>, seen: { has(item: T): boolean }): T[] =>
    [...items].filter((item) => !seen.has(item));
  return [
    ...fresh(after.redisClients.keys(), before.redisClients).map((id) => after.redisClients.get(id) ?? id),
    ...fresh(after.children.keys(), before.children).map((key) => after.children.get(key) ?? key),
    ...fresh(after.cgroups, before.cgroups).map((path) => `the cgroup ${path}`),
  ];
}

/**
 * Children of this process, keyed by pid and start time (so a pid reused between the
 * snapshots is a different child), from `/proc/<pid>/stat`.
 */
async function childProcesses(): Promise<Map<string, string>> {
  const children = new Map<string, string>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // The command name is in parentheses and may hold spaces; the fields after it are fixed.
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    if (close < 0 || Number(fields[1]) !== process.pid) {
      continue;
    }
    const command = stat.slice(stat.indexOf('(') + 1, close);
    const startTime = fields[19] ?? '?';
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const shown = cmdline.split('\0').filter(Boolean).slice(0, 6).join(' ') || command;
    children.set(`${entry}:${startTime}`, `a child process (pid ${entry}, state ${fields[0] ?? '?'}: ${shown})`);
  }
  return children;
}

/** cgroups whose name carries this process's pid, with every cgroup inside them, in every hierarchy. */
async function ownCgroups(): Promise<Set<string>> {
  const found = new Set<string>();
  const pid = String(process.pid);
  for (const root of CGROUP_ROOTS) {
    for (const name of await subfolders(root)) {
      if (name.startsWith('tydra') && name.split(/[.-]/).includes(pid)) {
        await addTree(join(root, name), found);
      }
    }
  }
  return found;
}

async function addTree(dir: string, found: Set<string>): Promise<void> {
  found.add(dir);
  for (const name of await subfolders(dir)) {
    await addTree(join(dir, name), found);
  }
}

async function subfolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name);
}

/** A test left something running: its message lists every leftover. */
export class LeakError extends Error {
  override name = 'LeakError';
}

/**
 * Fails the current test (not the hook: a failing root hook would stop the whole run) when
 * something new since `before` outlives the grace.
 */
export async function failOnLeaks(
  context: Mocha.Context,
  check: LeakCheck,
  before: Snapshot | undefined,
): Promise<void> {
  if (before === undefined) {
    return;
  }
  const left = await check.leftovers(before);
  if (left.length > 0) {
    (context.test as Mocha.Hook).error(
      new LeakError(`the test left behind, after its deferred cleanups and ${LEAK_GRACE_MS} ms: ${left.join('; ')}`),
    );
  }
}
