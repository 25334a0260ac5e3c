/**
 * Throughput with each side deployed as its own processes, beside `run.js`, which runs the raw
 * baseline, a master, a node and the client in ONE process: there every sandbox's fork copies
 * that whole process's page tables and leaves every page of it to fault once on its next write
 * (docs/benchmarks.md, 2026-12-01 19:12–20:10), a cost a node process on its own pays on its own
 * memory only. Here:
 *
 * - tydra: `tydra master` and `tydra node --concurrency 2`, each its own process (started as
 *   `node dist/bin/tydra.js`, so without the bin's memory flags), the client in this process;
 * - baseline: `raw-worker.js`, one BullMQ Worker process (concurrency 2) spawning `node -e 0` per
 *   job, the Queue and QueueEvents in this process.
 *
 * Both on one private redis-server; `BENCH_TASKS` (default 100) at once, awaited, `BENCH_ROUNDS`
 * (default 3) rounds, the three series taking turns. CPU: the whole machine's busy time over each
 * batch (`/proc/stat`), per task. Not part of `npm run bench`: `node dist/bench/deployed.js`.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Queue, QueueEvents } from 'bullmq';
import { execa, type ResultPromise } from 'execa';

import { Tydra } from '../lib/client/client.js';
import { startRedisServer } from '../lib/ops/redis-server.js';
import { machineBusyMs, processTimes } from './cpu-window.js';
import { envInt } from './env.js';
import { makeNoopPackage } from './noop-package.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = join(HERE, '../bin/tydra.js');
const TASKS = envInt('BENCH_TASKS', 100);
const ROUNDS = envInt('BENCH_ROUNDS', 3);
const RESULT_TIMEOUT_MS = 300_000;

interface Batch {
  perSec: number;
  /** Machine CPU per task, ms. */
  cpuMs: number;
  /** CPU per task of each named process (and `<name> children`), ms. */
  processes: Record<string, number>;
}

async function batch(run: () => Promise<unknown>, pids: Record<string, number>): Promise<Batch> {
  const readAll = (): Promise<Array<{ own: number; children: number }>> =>
    Promise.all(Object.values(pids).map(processTimes));
  const [before, processesBefore] = await Promise.all([machineBusyMs(), readAll()]);
  const start = performance.now();
  await Promise.all(Array.from({ length: TASKS }, run));
  const seconds = (performance.now() - start) / 1000;
  const [after, processesAfter] = await Promise.all([machineBusyMs(), readAll()]);
  const processes: Record<string, number> = {};
  for (const [index, name] of Object.keys(pids).entries()) {
    const earlier = processesBefore[index] ?? { own: 0, children: 0 };
    const later = processesAfter[index] ?? earlier;
    processes[name] = (later.own - earlier.own) / TASKS;
    if (later.children > earlier.children) {
      processes[`${name} children`] = (later.children - earlier.children) / TASKS;
    }
  }
  return { perSec: TASKS / seconds, cpuMs: (after - before) / TASKS, processes };
}

/** A CLI or worker process that prints a line once it is up; its output is kept for errors. */
function startProcess(args: string[], cleanups: Array<() => Promise<unknown>>): ResultPromise {
  const child = execa(process.execPath, args, {
    reject: false,
    env: { PATH: process.env.PATH ?? '' },
    extendEnv: false,
  });
  let stopping = false;
  void child.then((result) => {
    if (!stopping) {
      process.stderr.write(`[bench:deployed] ${args.slice(0, 2).join(' ')} exited early:\n${result.stderr}\n`);
      process.exit(1);
    }
  });
  cleanups.push(async () => {
    stopping = true;
    child.kill('SIGTERM');
    await child;
  });
  return child;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const cleanups: Array<() => Promise<unknown>> = [];
  const dir = await mkdtemp(join(tmpdir(), 'tydra-bench-deployed-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o711); // the node's cache folder in it must be reachable by the sandbox user
  try {
    const redis = await startRedisServer({ dir: join(dir, 'redis'), persist: false });
    cleanups.push(() => redis.stop());
    const url = redis.url;
    const master = startProcess([CLI, 'master', '--redis', url], cleanups);
    const node = startProcess(
      [CLI, 'node', '--redis', url, '--concurrency', '2', '--cache-dir', join(dir, 'cache')],
      cleanups,
    );
    const tydra = new Tydra({ redis: url });
    cleanups.push(() => tydra.close());
    await makeNoopPackage(join(dir, 'pkg'), 'deployed');
    await tydra.deploy(join(dir, 'pkg'));
    const tydraOnce = (task: string) => async (): Promise<void> => {
      const value = await (await tydra.submit(`deployed/${task}`, null)).result({ timeoutMs: RESULT_TIMEOUT_MS });
      if (value !== 1) {
        throw new Error(`Expected the task to return 1, got ${JSON.stringify(value)}`);
      }
    };

    const queueName = `bench-deployed-${randomUUID().slice(0, 8)}`;
    const connection = { url, maxRetriesPerRequest: null };
    const queue = new Queue(queueName, { connection, defaultJobOptions: { removeOnComplete: true } });
    const events = new QueueEvents(queueName, { connection });
    cleanups.push(() => Promise.all([queue.close(), events.close()]));
    queue.setMaxListeners(TASKS + 16);
    const worker = startProcess([join(HERE, 'raw-worker.js'), url, queueName, '2'], cleanups);
    await new Promise<void>((resolve) => worker.stdout?.once('data', () => resolve()));
    const rawOnce = async (): Promise<void> => {
      const value: unknown = await (await queue.add('noop', null)).waitUntilFinished(events, RESULT_TIMEOUT_MS);
      if (value !== 1) {
        throw new Error(`Expected the raw job to return 1, got ${JSON.stringify(value)}`);
      }
    };

    const series = { raw: rawOnce, 'tydra, ES module': tydraOnce('noop'), 'tydra, CommonJS': tydraOnce('noop-cjs') };
    const tydraPids = { bench: process.pid, master: master.pid ?? 0, node: node.pid ?? 0 };
    const pidsOf = (name: string): Record<string, number> =>
      name === 'raw' ? { bench: process.pid, worker: worker.pid ?? 0 } : tydraPids;
    const results = new Map<string, Batch[]>(Object.keys(series).map((name) => [name, []]));
    for (const once of Object.values(series)) {
      await Promise.all(Array.from({ length: 10 }, once)); // warm-up: caches, connections, the pool
    }
    for (let round = 1; round <= ROUNDS; round += 1) {
      for (const [name, once] of Object.entries(series)) {
        const result = await batch(once, pidsOf(name));
        results.get(name)?.push(result);
        process.stderr.write(
          `[bench:deployed] round ${round} ${name}: ${result.perSec.toFixed(1)}/s, ${result.cpuMs.toFixed(1)} ms of machine CPU per task\n`,
        );
      }
    }
    const raw = median((results.get('raw') ?? []).map((r) => r.perSec));
    process.stdout.write(
      `deployed shape (each side its own processes), ${TASKS} at once, median of ${ROUNDS} rounds:\n`,
    );
    for (const [name, batches] of results) {
      const perSec = median(batches.map((r) => r.perSec));
      const cpuMs = median(batches.map((r) => r.cpuMs));
      const byProcess = Object.keys(batches[0]?.processes ?? {})
        .map((process) => `${process} ${median(batches.map((r) => r.processes[process] ?? 0)).toFixed(1)}`)
        .join(', ');
      process.stdout.write(
        `  ${name.padEnd(18)} ${perSec.toFixed(1).padStart(6)}/s  ${(perSec / raw).toFixed(2)}x  ${cpuMs.toFixed(1)} ms of machine CPU per task (${byProcess})\n`,
      );
    }
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch(() => undefined);
    }
  }
}

await main();
