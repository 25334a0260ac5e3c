/**
 * Redis commands and round trips per TaskInstance: `npm run bench` runs it after the others
 * (alone: `npm run build && node dist/bench/round-trips.js`).
 *
 * One Master and one TydraNode (concurrency 2, as in `run.ts`) and a client on a private
 * redis-server. After warm-up (the package cached, the client's QueueEvents open), M no-op
 * TaskInstances run one after the other (submit → result), and the script reads what Redis
 * counted meanwhile:
 *
 * - `INFO commandstats` deltas: every command Redis executed, the calls a Lua script makes
 *   included (BullMQ moves jobs with scripts, so one EVALSHA may run twenty commands);
 * - a MONITOR connection splits them into commands sent by a client (each crossed the network)
 *   and commands run inside scripts, and names the queue or key family each one addressed;
 * - `INFO stats` `total_reads_processed`: the read events the server handled. A client's
 *   pipeline, or commands it wrote in one go, arrive in one read, so this is the count of round
 *   trips (an upper bound when a large request needs more than one read).
 *
 * The cluster is not silent when idle (BullMQ's blocking pops time out and are re-issued,
 * heartbeats, stalled-job checks), so an idle window of the same length as the measured one
 * comes first, and its counts are subtracted: the figures are what the TaskInstances added.
 *
 * Environment: BENCH_TRIPS_TASKS (M, default 30); BENCH_TRIPS_TIMELINE (N, default 0: the last N
 * TaskInstances' commands as sent, each with its time since `submit()`); BENCH_TRIPS_WARM_MAX (the
 * node's warm pool, default its concurrency; 0 makes every TaskInstance cold, for the cold path's timeline). Progress goes to stderr; the table and, as the
 * very last line, `BENCH_TRIPS_JSON {...}` go to stdout.
 */
import { createHash, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

import { Redis } from 'ioredis';

import { Master, startRedisServer, Tydra, TydraNode } from '../lib/index.js';
import { countPhases, type MonitorLine, type Phase, type PhaseCounts, PHASES, type Role } from './trip-phases.js';
import { makeNoopPackage } from './noop-package.js';
import { envInt } from './env.js';

const WARMUP = 5;
const NODE_CONCURRENCY = 2;
const RESULT_TIMEOUT_MS = 60_000;

/** Counts of one window: commands by name (client-sent and in-script), by area, and server reads. */
interface Counts {
  ms: number;
  sent: Map<string, number>;
  inScripts: Map<string, number>;
  sentByArea: Map<string, number>;
  /** `evalsha tasks:wait`, `hgetall tydra:package:*:latest`…: each command with the shape of its first key. */
  sentDetail: Map<string, number>;
  commandstats: Map<string, number>;
  reads: number;
  /** Every command MONITOR saw, in order, for the split by step (`trip-phases.ts`). */
  lines: MonitorLine[];
}

function progress(message: string): void {
  process.stderr.write(`[bench:trips] ${message}\n`);
}

const bump = (map: Map<string, number>, key: string, by = 1): void => {
  map.set(key, (map.get(key) ?? 0) + by);
};

/** The first argument that is a key (starts with a namespace's hash tag), without the tag: `bull:tasks:x`, `packages`. */
const firstKey = (args: readonly string[]): string | undefined =>
  args
    .slice(1)
    .find((arg) => /^\{[a-z0-9_-]+\}:/.test(arg))
    ?.replace(/^\{[a-z0-9_-]+\}:/, '');

/**
 * The queue or key family a command addresses: `tasks`, `node.*` (every node queue), `tydra:node`,
 * `pkg`… For EVALSHA/EVAL the first key of the script.
 */
function area(args: readonly string[]): string {
  const key = firstKey(args);
  if (key === undefined) {
    return '(no key)';
  }
  const parts = key.split(':');
  if (parts[0] === 'bull') {
    return `queue ${(parts[1] ?? '').startsWith('node.') ? 'node.<id>' : parts[1]}`;
  }
  return parts[0] === 'pkg' ? 'pkg' : `tydra:${parts[0] ?? ''}`;
}

/** SHA1 → name of BullMQ's scripts, so EVALSHA lines say which step they are (`moveToActive`…). */
async function bullmqScriptNames(): Promise<Map<string, string>> {
  const dir = join(dirname(createRequire(import.meta.url).resolve('bullmq/package.json')), 'dist/esm/scripts');
  const names = new Map<string, string>();
  for (const file of (await readdir(dir)).filter((f) => /^[A-Za-z]+-\d+\.js$/.test(f))) {
    const scripts = (await import(pathToFileURL(join(dir, file)).href)) as Record<
      string,
      { name?: string; content?: string }
    >;
    for (const script of Object.values(scripts)) {
      if (typeof script.content === 'string' && typeof script.name === 'string') {
        names.set(createHash('sha1').update(script.content).digest('hex'), script.name);
      }
    }
  }
  return names;
}

let SCRIPT_NAMES = new Map<string, string>();

/** A command and the shape of its first key, ids blanked: `evalsha bull:tasks:wait`, `hgetall tydra:package:*:latest`. */
function detail(args: readonly string[]): string {
  const key = firstKey(args) ?? '';
  const shape = key
    .split(':')
    .map((part, i) => (i === 0 || /^[a-z-]+$/.test(part) ? part : '*'))
    .join(':');
  const name = (args[0] ?? '').toLowerCase();
  const script =
    name === 'evalsha' ? ` ${SCRIPT_NAMES.get(args[1] ?? '') ?? `tydra-script-${(args[1] ?? '').slice(0, 7)}`}` : '';
  return `${name}${script} ${shape.replace(/^bull:\*/, 'bull:<queue>')}`.trim();
}

async function readStats(redis: Redis): Promise<{ commandstats: Map<string, number>; reads: number }> {
  const text = await redis.info('all');
  const commandstats = new Map<string, number>();
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    commandstats.set(match[1] ?? '', Number(match[2]));
  }
  const reads = Number(/^total_reads_processed:(\d+)/m.exec(text)?.[1] ?? NaN);
  return { commandstats, reads };
}

/** Runs `fn` and counts what Redis did meanwhile (the measuring connections' own commands left out). */
async function countDuring(url: string, fn: () => Promise<void>): Promise<Counts> {
  const stats = new Redis(url);
  // monitor() opens its own connection; the instance it is called on never connects.
  const monitor = await new Redis(url, { lazyConnect: true }).monitor();
  const counts: Counts = {
    ms: 0,
    sent: new Map(),
    inScripts: new Map(),
    sentByArea: new Map(),
    sentDetail: new Map(),
    commandstats: new Map(),
    reads: 0,
    lines: [],
  };
  const ownAddress = `${stats.options.host ?? '127.0.0.1'}:${await localPort(stats)}`;
  monitor.on('monitor', (time: string, args: string[], source: string) => {
    const name = (args[0] ?? '').toLowerCase();
    if (source === ownAddress) {
      return;
    }
    counts.lines.push({ us: monitorMicros(time), source, args });
    if (source === 'lua') {
      bump(counts.inScripts, name);
    } else {
      bump(counts.sent, name);
      bump(counts.sentByArea, area(args));
      bump(counts.sentDetail, detail(args));
    }
  });
  try {
    const before = await readStats(stats);
    const started = performance.now();
    await fn();
    counts.ms = performance.now() - started;
    // Let MONITOR's stream catch up with the last commands: a PING through it marks the end.
    await monitorCatchUp(url);
    const after = await readStats(stats);
    for (const [name, calls] of after.commandstats) {
      bump(counts.commandstats, name, calls - (before.commandstats.get(name) ?? 0));
    }
    // The one INFO in between is ours (the stats connection sends nothing else).
    bump(counts.commandstats, 'info', -1);
    // Our INFO and the marker's connection, PING and QUIT are reads too; a handful, subtracted.
    counts.reads = after.reads - before.reads - 4;
    return counts;
  } finally {
    stats.disconnect();
    monitor.disconnect();
  }
}

/** MONITOR's `1732990000.123456` as µs since the epoch. */
function monitorMicros(time: string): number {
  const [seconds = '0', fraction = '0'] = time.split('.');
  return Number(seconds) * 1e6 + Number(fraction.padEnd(6, '0').slice(0, 6));
}

/** Addresses (`ip:port`) of the connections open now. */
async function clientAddresses(url: string): Promise<Set<string>> {
  const redis = new Redis(url);
  try {
    const list = (await redis.client('LIST')) as string;
    return new Set([...list.matchAll(/addr=(\S+)/g)].map((match) => match[1] ?? ''));
  } finally {
    redis.disconnect();
  }
}

/** Records, as each role starts, which connections it opened. */
class RoleMap {
  readonly roles = new Map<string, Role>();
  private seen = new Set<string>();

  constructor(private readonly url: string) {}

  async mark(role: Role): Promise<void> {
    const now = await clientAddresses(this.url);
    for (const address of now) {
      if (!this.seen.has(address)) {
        this.roles.set(address, role);
      }
    }
    this.seen = now;
  }
}

async function localPort(redis: Redis): Promise<string> {
  const id = await redis.client('ID');
  const line = (await redis.client('LIST', 'ID', String(id))) as string;
  return /addr=[^ ]*:(\d+)/.exec(line)?.[1] ?? '?';
}

async function monitorCatchUp(url: string): Promise<void> {
  const marker = new Redis(url);
  try {
    await marker.ping();
    await new Promise((resolve) => setTimeout(resolve, 200));
  } finally {
    await marker.quit();
  }
}

/** `a` minus `b` scaled to `a`'s duration: what the measured window added to idle activity. */
function beyondIdle(a: Map<string, number>, b: Map<string, number>, scale: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    const value = (a.get(key) ?? 0) - (b.get(key) ?? 0) * scale;
    if (Math.abs(value) >= 0.5) {
      out.set(key, value);
    }
  }
  return out;
}

const sum = (map: Map<string, number>): number => [...map.values()].reduce((a, b) => a + b, 0);
const perTask = (value: number, tasks: number): number => Math.round((value / tasks) * 10) / 10;
const top = (map: Map<string, number>, tasks: number, n = 10): Array<[string, number]> =>
  [...map]
    .map(([k, v]): [string, number] => [k, perTask(v, tasks)])
    .filter(([, v]) => v !== 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, n);

interface Report {
  tasks: number;
  windowMs: number;
  perTaskInstance: {
    commands: number;
    sentByClients: number;
    inScripts: number;
    roundTrips: number;
    topCommands: Array<[string, number]>;
    topSent: Array<[string, number]>;
    sentByArea: Array<[string, number]>;
    sent: Array<[string, number]>;
  };
  idlePerSecond: { commands: number; roundTrips: number };
}

function report(tasks: number, idle: Counts, busy: Counts): Report {
  const scale = busy.ms / idle.ms;
  const commands = beyondIdle(busy.commandstats, idle.commandstats, scale);
  const sent = beyondIdle(busy.sent, idle.sent, scale);
  const inScripts = beyondIdle(busy.inScripts, idle.inScripts, scale);
  return {
    tasks,
    windowMs: Math.round(busy.ms),
    perTaskInstance: {
      commands: perTask(sum(commands), tasks),
      sentByClients: perTask(sum(sent), tasks),
      inScripts: perTask(sum(inScripts), tasks),
      roundTrips: perTask(busy.reads - idle.reads * scale, tasks),
      topCommands: top(commands, tasks),
      topSent: top(sent, tasks),
      sentByArea: top(beyondIdle(busy.sentByArea, idle.sentByArea, scale), tasks),
      sent: top(beyondIdle(busy.sentDetail, idle.sentDetail, scale), tasks, 100),
    },
    idlePerSecond: {
      commands: Math.round((sum(idle.commandstats) * 1000) / idle.ms),
      roundTrips: Math.round((idle.reads * 1000) / idle.ms),
    },
  };
}

function formatReport(r: Report): string {
  const p = r.perTaskInstance;
  const list = (rows: Array<[string, number]>): string => rows.map(([k, v]) => `${k} ${v}`).join(', ');
  return [
    `Redis per TaskInstance (M=${r.tasks} no-op TaskInstances one after the other, master + 1 node, idle activity subtracted)`,
    `  commands executed (INFO commandstats): ${p.commands}`,
    `    sent by clients: ${p.sentByClients}; run inside Lua scripts: ${p.inScripts}`,
    `  round trips (INFO stats total_reads_processed): ${p.roundTrips}`,
    `  top commands: ${list(p.topCommands)}`,
    `  top sent by clients: ${list(p.topSent)}`,
    `  sent, by queue or key family: ${list(p.sentByArea)}`,
    `  every command sent, with its first key:`,
    ...p.sent.map(([k, v]) => `    ${v.toFixed(1).padStart(5)}  ${k}`),
    `  idle cluster: ${r.idlePerSecond.commands} commands/s, ${r.idlePerSecond.roundTrips} reads/s`,
  ].join('\n');
}

const nowMicros = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000);

/** The node's `moveToFinished` on its node queue: the node job is done. */
const isNodeFinish = (args: readonly string[]): boolean =>
  detail(args).startsWith('evalsha moveToFinished bull:<queue>');

interface PhaseReport {
  phase: Phase;
  commands: number;
  sent: number;
  roundTrips: number;
  detail: Array<[string, number]>;
}

function phaseReport(phases: Map<Phase, PhaseCounts>, tasks: number): PhaseReport[] {
  return PHASES.map((phase) => {
    const c = phases.get(phase) ?? { commands: 0, sent: 0, roundTrips: 0, detail: new Map<string, number>() };
    return {
      phase,
      commands: perTask(c.commands, tasks),
      sent: perTask(c.sent, tasks),
      roundTrips: perTask(c.roundTrips, tasks),
      detail: top(c.detail, tasks, 100),
    };
  });
}

function formatPhases(phases: readonly PhaseReport[]): string {
  const total = (key: 'commands' | 'sent' | 'roundTrips'): number =>
    Math.round(phases.reduce((sum, p) => sum + p[key], 0) * 10) / 10;
  return [
    `By step (MONITOR, idle activity not subtracted; round trips estimated from back-to-back commands):`,
    `  ${'step'.padEnd(12)} ${'commands'.padStart(8)} ${'sent'.padStart(6)} ${'trips'.padStart(6)}`,
    ...phases.flatMap((p) => [
      `  ${p.phase.padEnd(12)} ${p.commands.toFixed(1).padStart(8)} ${p.sent.toFixed(1).padStart(6)} ${p.roundTrips.toFixed(1).padStart(6)}`,
      ...p.detail.map(([k, v]) => `      ${v.toFixed(1).padStart(5)}  ${k}`),
    ]),
    `  ${'all'.padEnd(12)} ${total('commands').toFixed(1).padStart(8)} ${total('sent').toFixed(1).padStart(6)} ${total('roundTrips').toFixed(1).padStart(6)}`,
  ].join('\n');
}

/**
 * One TaskInstance's commands as sent, each with its time (ms) since `submit()` was called and the
 * role that sent it: where the wall time of submit → result goes (BENCH_TRIPS_TIMELINE=N prints
 * the last N).
 */
function timeline(
  lines: readonly MonitorLine[],
  roles: ReadonlyMap<string, Role>,
  [start, submitted]: readonly [number, number],
  resolved: number,
): string {
  const ms = (us: number): string => ((us - start) / 1000).toFixed(2).padStart(7);
  const rows = lines
    .filter((line) => line.source !== 'lua' && line.us >= start && line.us <= resolved)
    .map((line) => `${ms(line.us)}  ${(roles.get(line.source) ?? 'other').padEnd(6)} ${detail(line.args)}`);
  return [`timeline: submitted at ${ms(submitted)} ms, result at ${ms(resolved)} ms`, ...rows].join('\n');
}

async function main(): Promise<void> {
  const tasks = envInt('BENCH_TRIPS_TASKS', 30);
  const shown = Math.min(tasks, envInt('BENCH_TRIPS_TIMELINE', 0, 0));
  SCRIPT_NAMES = await bullmqScriptNames();
  const root = await mkdtemp(join(tmpdir(), 'tydra-bench-trips-'));
  const closers: Array<() => Promise<unknown>> = [() => rm(root, { recursive: true, force: true })];
  try {
    await chmod(root, 0o755);
    await makeNoopPackage(join(root, 'package'), 'trips');
    const redis = await startRedisServer({ dir: join(root, 'redis'), persist: false });
    closers.push(() => redis.stop());
    // Each role starts alone, so the connections that appear meanwhile are its own.
    const roleMap = new RoleMap(redis.url);
    await roleMap.mark('other');
    const master = new Master({ redis: redis.url });
    closers.push(() => master.close());
    await master.start();
    await roleMap.mark('master');
    const node = new TydraNode({
      redis: redis.url,
      id: `trips-${randomUUID().slice(0, 8)}`,
      concurrency: NODE_CONCURRENCY,
      cacheDir: join(root, 'cache'),
      warmMax: envInt('BENCH_TRIPS_WARM_MAX', NODE_CONCURRENCY, 0),
    });
    closers.push(() => node.close());
    await node.start();
    await roleMap.mark('node');
    const tydra = new Tydra({ redis: redis.url });
    closers.push(() => tydra.close());
    await tydra.deploy(join(root, 'package'));
    const submits: Array<[number, number]> = [];
    const results: number[] = [];
    const once = async (): Promise<void> => {
      const started = nowMicros();
      const run = await tydra.submit('trips/noop', null);
      submits.push([started, nowMicros()]);
      try {
        if ((await run.result({ timeoutMs: RESULT_TIMEOUT_MS })) !== 1) {
          throw new Error('Expected the no-op task to return 1');
        }
        results.push(nowMicros());
      } finally {
        run.close();
      }
    };
    for (let i = 0; i < WARMUP; i += 1) {
      await once();
    }
    await roleMap.mark('client');
    submits.length = 0;
    results.length = 0;
    progress(`${tasks} TaskInstances, one after the other`);
    const busy = await countDuring(redis.url, async () => {
      for (let i = 0; i < tasks; i += 1) {
        await once();
      }
    });
    progress(`idle window of ${Math.round(busy.ms)} ms`);
    const idle = await countDuring(redis.url, () => new Promise((resolve) => setTimeout(resolve, busy.ms)));
    const phases = countPhases(busy.lines, roleMap.roles, submits, isNodeFinish, detail);
    const result = { ...report(tasks, idle, busy), phases: phaseReport(phases, tasks) };
    process.stdout.write(`\n${formatReport(result)}\n${formatPhases(result.phases)}\n\n`);
    for (let i = Math.max(0, tasks - shown); i < tasks; i += 1) {
      process.stdout.write(`${timeline(busy.lines, roleMap.roles, submits[i] ?? [0, 0], results[i] ?? 0)}\n\n`);
    }
    process.stdout.write(`BENCH_TRIPS_JSON ${JSON.stringify(result)}\n`);
  } finally {
    for (const close of closers.reverse()) {
      await close().catch((error: Error) => progress(`cleanup failed: ${error.message}`));
    }
  }
}

try {
  await main();
} catch (error) {
  progress(`FAILED: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
}
