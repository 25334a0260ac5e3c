/**
 * Workunit benchmark (`npm run bench` runs it after `run.js`; alone: `node dist/bench/parallel.js`).
 *
 *  1. throughput: one parallel TaskInstance of BENCH_UNITS (default 20,000) no-op workunits on
 *     one node at concurrency 2, vs raw BullMQ processing as many no-op jobs with one Worker at
 *     concurrency 2 on the same private Redis, in the same run. The ratio is the headline.
 *  2. scale: one TaskInstance of BENCH_BIG_UNITS (default 100,000; 0 skips it) on two nodes.
 *     The master and the nodes run as their own processes (`tydra master`, `tydra node`), so each
 *     one's peak RSS (VmHWM) is its own; the client's is this process's (this part runs first, so
 *     nothing else has run in it yet); Redis's is its `used_memory_peak`.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { Queue, QueueEvents, Worker } from 'bullmq';
import { execa, type ResultPromise } from 'execa';
import { Redis } from 'ioredis';

import { Master, startRedisServer, Tydra, TydraNode } from '../lib/index.js';
import { envInt } from './env.js';

const CLI = fileURLToPath(new URL('../bin/tydra.js', import.meta.url));
const CONCURRENCY = 2;
const MODULE = `
export function* split(input) { for (let i = 0; i < input.n; i += 1) yield i; }
export function work(i) { return i; }
export async function reduce(results) { let n = 0; let sum = 0; for await (const r of results) { n += 1; sum += r; } return { n, sum }; }
`;

function progress(line: string): void {
  process.stderr.write(`[bench:parallel] ${line}\n`);
}

async function rawBullmq(url: string, jobs: number): Promise<number> {
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue('bench-raw-units', { connection });
  const events = new QueueEvents('bench-raw-units', { connection: { url } });
  await events.waitUntilReady();
  let done = 0;
  const finished = new Promise<void>((resolve) => {
    events.on('completed', () => {
      done += 1;
      if (done === jobs) {
        resolve();
      }
    });
  });
  const started = performance.now();
  const worker = new Worker('bench-raw-units', () => Promise.resolve(1), { connection, concurrency: CONCURRENCY });
  for (let first = 0; first < jobs; first += 500) {
    const count = Math.min(500, jobs - first);
    await queue.addBulk(
      Array.from({ length: count }, (_, i) => ({
        name: 'noop',
        data: { i: first + i },
        opts: { removeOnComplete: true },
      })),
    );
  }
  await finished;
  const wallMs = performance.now() - started;
  await worker.close();
  await events.close();
  await queue.obliterate({ force: true });
  await queue.close();
  await connection.quit();
  return wallMs;
}

async function tydraUnits(url: string, packageDir: string, cacheDir: string, units: number): Promise<number> {
  const master = new Master({ redis: url });
  const node = new TydraNode({ redis: url, id: 'bench-units', concurrency: CONCURRENCY, cacheDir });
  const tydra = new Tydra({ redis: url });
  await master.start();
  await node.start();
  try {
    await tydra.deploy(packageDir);
    await (await tydra.submit('benchpar/noop', { n: 200 })).result(); // warm-up: package synced, code paths hot
    const started = performance.now();
    const result = (await (await tydra.submit('benchpar/noop', { n: units })).result()) as { n: number };
    const wallMs = performance.now() - started;
    if (result.n !== units) {
      throw new Error(`Expected reduce to see ${units} results, got ${result.n}`);
    }
    return wallMs;
  } finally {
    await tydra.close();
    await node.close();
    await master.close();
  }
}

/** Peak resident set of a process in bytes (VmHWM), or 0 once it is gone. */
async function peakRss(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

async function scale(url: string, packageDir: string, root: string, units: number) {
  const env = { PATH: process.env.PATH ?? '', TYDRA_LOG_LEVEL: 'warn' };
  const spawn = (args: string[]): ResultPromise =>
    execa(process.execPath, [CLI, ...args, '--redis', url], { env, extendEnv: false, reject: false, stdio: 'ignore' });
  const master = spawn(['master']);
  const nodes = [0, 1].map((i) =>
    spawn(['node', '--id', `bench-big-${i}`, '--concurrency', String(CONCURRENCY), '--cache-dir', join(root, `c${i}`)]),
  );
  const tydra = new Tydra({ redis: url });
  const redis = new Redis(url);
  try {
    // This part runs first: the package is not deployed yet.
    await tydra.deploy(packageDir);
    for (;;) {
      if ((await tydra.nodes()).filter((node) => node.alive).length === 2) {
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await redis.config('RESETSTAT');
    await redis.memory('PURGE').catch(() => undefined);
    const started = performance.now();
    const result = (await (await tydra.submit('benchpar/noop', { n: units })).result({ timeoutMs: 1_800_000 })) as {
      n: number;
    };
    const wallMs = performance.now() - started;
    const info = await redis.info('memory');
    const redisPeak = Number(/used_memory_peak:(\d+)/.exec(info)?.[1] ?? 0);
    const peaks = {
      masterRss: await peakRss(master.pid),
      nodeRss: Math.max(...(await Promise.all(nodes.map((node) => peakRss(node.pid))))),
      clientRss: process.resourceUsage().maxRSS * 1024,
      redisUsedMemoryPeak: redisPeak,
    };
    return { units, n: result.n, wallMs, unitsPerSec: (units * 1000) / wallMs, peaks };
  } finally {
    await tydra.close();
    await redis.quit();
    for (const child of [master, ...nodes]) {
      child.kill('SIGTERM');
      await child;
    }
  }
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const units = envInt('BENCH_UNITS', 20_000);
  const bigUnits = envInt('BENCH_BIG_UNITS', 100_000);
  const root = await mkdtemp(join(tmpdir(), 'tydra-bench-par-'));
  await chmod(root, 0o755);
  const packageDir = join(root, 'package');
  await execa('mkdir', ['-p', packageDir]);
  await writeFile(
    join(packageDir, 'tydra.json'),
    JSON.stringify({ name: 'benchpar', tasks: { noop: { kind: 'parallel', module: 'noop.js' } } }),
  );
  await writeFile(join(packageDir, 'noop.js'), MODULE);
  const server = await startRedisServer({ dir: join(root, 'redis'), persist: false });
  try {
    let big: Awaited<ReturnType<typeof scale>> | undefined;
    if (bigUnits > 0) {
      progress(`scale: one TaskInstance of ${bigUnits} workunits on two node processes`);
      big = await scale(server.url, packageDir, root, bigUnits);
      process.stdout.write(
        `scale: ${bigUnits} workunits in ${(big.wallMs / 1000).toFixed(1)} s (${Math.round(big.unitsPerSec)}/s); peaks: master ${mib(big.peaks.masterRss)}, node ${mib(big.peaks.nodeRss)}, client ${mib(big.peaks.clientRss)}, Redis used_memory ${mib(big.peaks.redisUsedMemoryPeak)}\n`,
      );
    }
    progress(`raw BullMQ: ${units} no-op jobs, concurrency ${CONCURRENCY}`);
    const rawMs = await rawBullmq(server.url, units);
    progress(`tydra: one TaskInstance of ${units} no-op workunits, one node at concurrency ${CONCURRENCY}`);
    const oursMs = await tydraUnits(server.url, packageDir, join(root, 'cache'), units);
    const throughput = {
      units,
      baselineJobsPerSec: Math.round((units * 1000) / rawMs),
      tydraUnitsPerSec: Math.round((units * 1000) / oursMs),
      ratio: Math.round((rawMs / oursMs) * 100) / 100,
    };
    process.stdout.write(
      `\nworkunit throughput (${units}, concurrency ${CONCURRENCY}): tydra ${throughput.tydraUnitsPerSec}/s vs raw BullMQ ${throughput.baselineJobsPerSec}/s: ratio ${throughput.ratio}x\n`,
    );
    process.stdout.write(`BENCH_PARALLEL_JSON ${JSON.stringify({ throughput, scale: big })}\n`);
  } finally {
    await server.stop();
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
