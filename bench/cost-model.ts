/**
 * The inputs of the README's cost model ("Scaling out"): `npm run bench` runs it after
 * `round-trips.ts` (alone: `npm run build && node dist/bench/cost-model.js`).
 *
 * A separate run from `round-trips.ts` because it must have no MONITOR open (Redis counts what it
 * streams to a monitor as output bytes and spends CPU on it), and because the memory figure needs
 * TaskInstances submitted before any master or node runs, while `round-trips.ts` tells processes
 * apart by starting them one by one. Same cluster: one Master and one TydraNode (concurrency 2,
 * warm pool on as by default) and a client on a private redis-server, no-op TaskInstances.
 *
 * - Redis memory (`INFO memory` `used_memory`) per waiting TaskInstance: W submitted before the
 *   master and node start, so they all wait in the `tasks` queue; and per finished one, once they
 *   have all run (what retention keeps: job, result, logs, events);
 * - bytes (`INFO stats` `total_net_input_bytes` / `total_net_output_bytes`), Redis CPU (`INFO cpu`
 *   `used_cpu_user` + `used_cpu_sys`), commands (`INFO commandstats`) and round trips
 *   (`total_reads_processed`) per TaskInstance over M one after the other after warm-up, minus an
 *   idle window as long; then the same over W submitted at once (a backlog: Redis then reads
 *   several clients' commands per event-loop pass). 1 s of one core divided by the CPU per
 *   TaskInstance bounds what one Redis primary sustains.
 *
 * Environment: BENCH_TRIPS_TASKS (M, default 30, as in `round-trips.ts`), BENCH_TRIPS_WAITING (W,
 * default 200). Progress goes to stderr; the table and, as the very last line,
 * `BENCH_COST_JSON {...}` go to stdout.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

import { Master, startRedisServer, type TaskRun, Tydra, TydraNode } from '../lib/index.js';
import { memoryCost, type MemoryCost, wireCost, type WireCost } from './redis-cost.js';
import { makeNoopPackage } from './noop-package.js';

const WARMUP = 5;
const NODE_CONCURRENCY = 2;
const RESULT_TIMEOUT_MS = 60_000;

function progress(message: string): void {
  process.stderr.write(`[bench:cost] ${message}\n`);
}

function countFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`Expected ${name} to be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** A cluster on a private Redis, the package deployed; the master and node start when told. */
interface Bench {
  url: string;
  tydra: Tydra;
  node: TydraNode;
  start: () => Promise<void>;
}

/** Sets the cluster up; pushes onto `closers` what to undo, as it goes (so a failure half-way cleans up too). */
async function setUp(closers: Array<() => Promise<unknown>>): Promise<Bench> {
  const root = await mkdtemp(join(tmpdir(), 'tydra-bench-cost-'));
  closers.push(() => rm(root, { recursive: true, force: true }));
  await chmod(root, 0o755);
  await makeNoopPackage(join(root, 'package'), 'cost');
  const redis = await startRedisServer({ dir: join(root, 'redis'), persist: false });
  closers.push(() => redis.stop());
  const master = new Master({ redis: redis.url });
  closers.push(() => master.close());
  const node = new TydraNode({
    redis: redis.url,
    id: `cost-${randomUUID().slice(0, 8)}`,
    concurrency: NODE_CONCURRENCY,
    cacheDir: join(root, 'cache'),
  });
  closers.push(() => node.close());
  const tydra = new Tydra({ redis: redis.url });
  closers.push(() => tydra.close());
  await tydra.deploy(join(root, 'package'));
  const start = async (): Promise<void> => {
    await Promise.all([master.start(), node.start()]);
  };
  return { url: redis.url, tydra, node, start };
}

async function checkedResult(run: TaskRun): Promise<void> {
  try {
    if ((await run.result({ timeoutMs: RESULT_TIMEOUT_MS })) !== 1) {
      throw new Error('Expected the no-op task to return 1');
    }
  } finally {
    run.close();
  }
}

const submitAll = (tydra: Tydra, count: number): Promise<TaskRun[]> =>
  Promise.all(Array.from({ length: count }, () => tydra.submit('cost/noop', null)));

/** W TaskInstances submitted while nothing runs them, then run: Redis memory per waiting and finished one. */
async function measureMemory(bench: Bench, waiting: number): Promise<MemoryCost> {
  let runs: TaskRun[] = [];
  progress(`${waiting} TaskInstances submitted before the master and node start (memory)`);
  return memoryCost(
    bench.url,
    waiting,
    async () => {
      runs = await submitAll(bench.tydra, waiting);
    },
    async () => {
      await bench.start();
      await Promise.all(runs.map(checkedResult));
    },
  );
}

interface PoolUse {
  hits: number;
  misses: number;
}

/** `fn`'s warm pool hits and misses on the node. */
async function poolUse(node: TydraNode, fn: () => Promise<WireCost>): Promise<[WireCost, PoolUse]> {
  const before = node.warmPoolStats;
  const cost = await fn();
  const after = node.warmPoolStats;
  return [cost, { hits: after.hits - before.hits, misses: after.misses - before.misses }];
}

function formatCost(memory: MemoryCost, wire: WireCost, backlog: WireCost, pool: PoolUse, tasks: number): string {
  const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;
  const window = (w: WireCost): string =>
    `${w.commands} commands, ${w.roundTrips} round trips, ${w.netInputBytes} B in, ${w.netOutputBytes} B out, ` +
    `${w.cpuMs} ms Redis CPU (at most ${w.tasksPerCoreSecond}/s on one core)`;
  const idle = wire.idlePerSecond;
  return [
    `Redis cost per TaskInstance (master + 1 node, concurrency 2; no MONITOR; idle activity subtracted)`,
    `  one after the other (M=${tasks}; warm pool ${pool.hits} hits, ${pool.misses} misses): ${window(wire)}`,
    `  with a backlog (W=${memory.tasks} submitted at once): ${window(backlog)}`,
    `  memory: ${kib(memory.waitingBytes)} per waiting TaskInstance, ${kib(memory.finishedBytes)} per finished one ` +
      `kept by retention (W=${memory.tasks})`,
    `  idle cluster, per second: ${idle.commands} commands, ${idle.roundTrips} round trips, ` +
      `${idle.netInputBytes} B in, ${idle.netOutputBytes} B out, ${idle.cpuMs} ms Redis CPU`,
    `  load average at the end: ${loadavg()
      .map((value) => value.toFixed(2))
      .join(', ')}`,
  ].join('\n');
}

async function main(): Promise<void> {
  const tasks = countFromEnv('BENCH_TRIPS_TASKS', 30);
  const waiting = countFromEnv('BENCH_TRIPS_WAITING', 200);
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const bench = await setUp(closers);
    const memory = await measureMemory(bench, waiting);
    const once = async (): Promise<void> => checkedResult(await bench.tydra.submit('cost/noop', null));
    for (let i = 0; i < WARMUP; i += 1) {
      await once();
    }
    progress(`${tasks} TaskInstances one after the other, then an idle window as long`);
    const [wire, pool] = await poolUse(bench.node, () =>
      wireCost(bench.url, tasks, async () => {
        for (let i = 0; i < tasks; i += 1) {
          await once();
        }
      }),
    );
    progress(`${waiting} submitted at once (a backlog), then an idle window as long`);
    const backlog = await wireCost(bench.url, waiting, async () => {
      await Promise.all((await submitAll(bench.tydra, waiting)).map(checkedResult));
    });
    const result = { tasks, memory, wire, backlog, pool, loadAverage: loadavg() };
    process.stdout.write(`\n${formatCost(memory, wire, backlog, pool, tasks)}\n\n`);
    process.stdout.write(`BENCH_COST_JSON ${JSON.stringify(result)}\n`);
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
