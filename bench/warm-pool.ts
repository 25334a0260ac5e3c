/**
 * The warm pool (`lib/node/warm-pool.ts`): `npm run bench` runs it after `run.ts` (alone:
 * `npm run build && node dist/bench/warm-pool.js`).
 *
 * 1. Idle submit → result latency, one TaskInstance at a time, of a no-op JavaScript task through
 *    a Master and one node (concurrency 2): COLD (a node with `warmMax: 0`) and WARM (a node with
 *    the pool on, each sample submitted once a pooled sandbox is ready), each interleaved one to
 *    one with the baseline: a raw BullMQ Queue + Worker (concurrency 2) on the same Redis whose
 *    processor spawns a bare `node -e 0` with an empty environment. Ratios are of medians. COLD
 *    has two series, the task as an ES module (`noop`) and as CommonJS (`noop-cjs`), taking turns.
 *    BACK TO BACK: pool on, 2 × that many samples, each submitted as soon as the one before
 *    returned (a service awaiting each result), with no pause and no wait for a pooled sandbox,
 *    in blocks of ten taking turns with the baseline's; it says how many came from the pool.
 * 2. Throughput of M no-op TaskInstances submitted at once, pool on, against the same baseline,
 *    and the pool's hit rate over them.
 * 3. Memory: a node started as its own process (`tydra node`, pool on) on the same Redis; its RSS
 *    idle (sampled for 30 s after it registered: see {@link idleRss}), then with its pool filled, and the cost of one pooled sandbox: the summed PSS and RSS
 *    of its processes, and its cgroup's memory use.
 *
 * Environment: BENCH_POOL_LATENCY (samples per series, default 15), BENCH_POOL_TASKS (M, default
 * 60). Progress goes to stderr; the table and, as the very last line, `BENCH_POOL_JSON {...}` go
 * to stdout.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { type Job, Queue, QueueEvents, Worker } from 'bullmq';
import { execa, type ResultPromise } from 'execa';

import { NodeRegistry } from '../lib/cluster/node-registry.js';
import { createKeys, Master, startRedisServer, Tydra, TydraNode } from '../lib/index.js';
import { createRedis } from '../lib/redis/connection.js';
import { detectCgroups } from '../sandbox/launcher/cgroup/support.js';
import { makeNoopPackage } from './noop-package.js';
import { envInt } from './env.js';

const NODE_CONCURRENCY = 2;
const RESULT_TIMEOUT_MS = 60_000;
const WARMUP = 3;
const CLI = fileURLToPath(new URL('../bin/tydra.js', import.meta.url));

interface Summary {
  n: number;
  medianMs: number;
  p95Ms: number;
}

const cleanups: Array<() => Promise<unknown>> = [];

function progress(message: string): void {
  process.stderr.write(`[bench:pool] ${message}\n`);
}

function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
  const mid = sorted.length % 2 === 1 ? at(0.5) : ((sorted[sorted.length / 2 - 1] ?? 0) + at(0.5)) / 2;
  return { n: sorted.length, medianMs: round(mid), p95Ms: round(at(0.95)) };
}

const round = (value: number, digits = 2): number => Number(value.toFixed(digits));

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The baseline: raw BullMQ, concurrency 2, each job a bare `node -e 0` with an empty environment. */
async function rawBullmq(redisUrl: string): Promise<() => Promise<void>> {
  const name = `bench-pool-raw-${randomUUID().slice(0, 8)}`;
  const connection = { url: redisUrl, maxRetriesPerRequest: null };
  const queue = new Queue(name, { connection, defaultJobOptions: { removeOnComplete: true, removeOnFail: true } });
  const events = new QueueEvents(name, { connection });
  const worker = new Worker(
    name,
    async () => {
      await execa(process.execPath, ['-e', '0'], { extendEnv: false, env: {} });
      return 1;
    },
    { connection, concurrency: NODE_CONCURRENCY },
  );
  cleanups.push(() => Promise.all([worker.close(), events.close(), queue.close()]));
  queue.setMaxListeners(1000);
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady(), worker.waitUntilReady()]);
  return async () => {
    const job: Job = await queue.add('noop', null);
    if ((await job.waitUntilFinished(events, RESULT_TIMEOUT_MS)) !== 1) {
      throw new Error('Expected the raw BullMQ job to return 1');
    }
  };
}

async function startNode(redisUrl: string, cacheDir: string, warmMax: number): Promise<TydraNode> {
  const node = new TydraNode({
    redis: redisUrl,
    id: `bench-pool-${warmMax}-${process.pid}`,
    concurrency: NODE_CONCURRENCY,
    cacheDir,
    warmMax,
  });
  await node.start();
  return node;
}

interface LatencySeries {
  baseline: Summary;
  tydra: Summary;
  ratioMedian: number;
}

/**
 * The pause before each idle sample. A sample ends at its result, while its process or sandbox
 * may still be exiting (a tydra sandbox exits once its node job's ending is recorded, after the
 * result is on its way: `sandbox/launcher/exit-hold.ts`). Without a pause, that teardown would
 * land in the next sample, the other system's: idle means nothing is left of the sample before.
 */
const IDLE_GAP_MS = 50;

const idleGap = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, IDLE_GAP_MS));

/**
 * Idle latency samples of each of `series` interleaved with the baseline's, one to one, the series
 * taking turns (raw, first, raw, second, …) so that none gets the slower early rounds of a fresh
 * node alone; `before` runs ahead of each tydra sample, untimed, and {@link IDLE_GAP_MS} ahead of
 * every sample.
 */
async function interleaved(
  samples: number,
  raw: () => Promise<void>,
  series: ReadonlyArray<() => Promise<void>>,
  before: () => Promise<void>,
): Promise<LatencySeries[]> {
  for (let i = 0; i < WARMUP; i += 1) {
    for (const tydra of series) {
      await raw();
      await before();
      await tydra();
    }
  }
  const runs = series.map((tydra) => ({ tydra, baselineMs: [] as number[], tydraMs: [] as number[] }));
  for (let i = 0; i < samples; i += 1) {
    for (const run of runs) {
      await idleGap();
      run.baselineMs.push(await timed(raw));
      await before();
      await idleGap();
      run.tydraMs.push(await timed(run.tydra));
    }
  }
  return runs.map((run) => {
    const baseline = summarize(run.baselineMs);
    const ours = summarize(run.tydraMs);
    return { baseline, tydra: ours, ratioMedian: round(ours.medianMs / baseline.medianMs) };
  });
}

/** Samples per block of {@link backToBack}. */
const BLOCK = 10;

/**
 * Submit → result with each sample submitted as soon as the one before returned, as a service that
 * awaits each result does: no pause, no wait for a ready pooled sandbox, so the pool's refills
 * race the next TaskInstance. In blocks of {@link BLOCK}, the baseline's and tydra's in turn.
 */
async function backToBack(
  samples: number,
  raw: () => Promise<void>,
  tydra: () => Promise<void>,
): Promise<LatencySeries> {
  const baselineMs: number[] = [];
  const tydraMs: number[] = [];
  while (tydraMs.length < samples) {
    const block = Math.min(BLOCK, samples - tydraMs.length);
    for (let i = 0; i < block; i += 1) {
      baselineMs.push(await timed(raw));
    }
    for (let i = 0; i < block; i += 1) {
      tydraMs.push(await timed(tydra));
    }
  }
  const baseline = summarize(baselineMs);
  const ours = summarize(tydraMs);
  return { baseline, tydra: ours, ratioMedian: round(ours.medianMs / baseline.medianMs) };
}

/** kB of a /proc/<pid>/ file's `field:` line (VmRSS in status, Pss in smaps_rollup). */
async function procKb(pid: number, file: string, field: string): Promise<number> {
  const text = await readFile(`/proc/${pid}/${file}`, 'utf8').catch(() => '');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return match === null ? 0 : Number(match[1]);
}

/** PSS and RSS (MiB) of each pooled sandbox of node `id` (pid `pid`), and its cgroup's memory use. */
async function pooledCost(
  id: string,
  pid: number,
): Promise<Array<{ pssMiB: number; rssMiB: number; cgroupMiB: number }>> {
  const support = await detectCgroups({ parentName: `tydra.${id}.${pid}` });
  const parent = support.mode === 'v2' ? support.parent : support.mode === 'v1' ? support.memory : undefined;
  if (parent === undefined) {
    return [];
  }
  const costs = [];
  for (const name of (await readdir(parent)).filter((entry) => entry.startsWith('task-'))) {
    const dir = join(parent, name);
    const pids = (await readFile(join(dir, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean).map(Number);
    let pss = 0;
    let rss = 0;
    for (const member of pids) {
      pss += await procKb(member, 'smaps_rollup', 'Pss');
      rss += await procKb(member, 'status', 'VmRSS');
    }
    const usage = await readFile(join(dir, support.mode === 'v2' ? 'memory.current' : 'memory.usage_in_bytes'), 'utf8');
    costs.push({
      pssMiB: round(pss / 1024, 1),
      rssMiB: round(rss / 1024, 1),
      cgroupMiB: round(Number(usage) / 2 ** 20, 1),
    });
  }
  return costs;
}

/** Seconds an idle node's RSS is sampled (once a second) after it registered. */
const IDLE_SAMPLE_S = 30;

/**
 * RSS (MiB) of the idle node `pid`: 2 s and 10 s after it registered, and the lowest over
 * {@link IDLE_SAMPLE_S} s; plus the start-up peak (VmHWM). Start-up (module loading, BullMQ's
 * scripts) grows V8's young generation to about 20 MiB more than the node keeps; V8 gives it back
 * only when its memory reducer runs, which an idle process's timers (the heartbeat, BullMQ's
 * blocking calls) can put off from about 6 s to more than 30 s. A single reading at 2 s (what this
 * bench took before) measured start-up garbage, not the idle node.
 */
async function idleRss(pid: number) {
  const samples: number[] = [];
  for (let second = 1; second <= IDLE_SAMPLE_S; second += 1) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    samples.push(round((await procKb(pid, 'status', 'VmRSS')) / 1024, 1));
  }
  return {
    idleRssAt2sMiB: samples[1] ?? 0,
    idleRssAt10sMiB: samples[9] ?? 0,
    idleRssMiB: Math.min(...samples),
    startPeakRssMiB: round((await procKb(pid, 'status', 'VmHWM')) / 1024, 1),
  };
}

/** A `tydra node` process with the pool on: its RSS idle and with a full pool, and what one pooled sandbox costs. */
async function measureMemory(redisUrl: string, root: string, tydra: Tydra, ref: string) {
  const id = `bench-pool-rss-${process.pid}`;
  const connection = createRedis(redisUrl);
  cleanups.push(() => connection.quit());
  const registry = new NodeRegistry(connection, createKeys());
  const args = ['node', '--redis', redisUrl, '--id', id, '--concurrency', String(NODE_CONCURRENCY)];
  // The bin file itself, as an operator starts it: its shebang's V8 flags count (bin/tydra.ts).
  const child: ResultPromise = execa(
    CLI,
    [...args, '--cache-dir', join(root, 'rss-cache'), '--heartbeat', '500', '--log-format', 'json'],
    { reject: false, stdio: 'ignore', env: { TYDRA_LOG_LEVEL: 'warn' } },
  );
  cleanups.push(async () => {
    child.kill('SIGTERM');
    await child;
  });
  const info = async () => (await registry.list()).find((node) => node.id === id && node.alive);
  await waitUntil('the node process to register', async () => (await info()) !== undefined);
  const pid = child.pid ?? 0;
  const idle = await idleRss(pid);
  // Two at once, twice: the pool learns that two run together and keeps two.
  for (let pair = 0; pair < 2; pair += 1) {
    await Promise.all([0, 1].map(async () => (await tydra.submit(ref, null)).result({ timeoutMs: RESULT_TIMEOUT_MS })));
  }
  await waitUntil('two pooled sandboxes', async () => (await info())?.pool?.size === 2);
  await new Promise((resolve) => setTimeout(resolve, 2000)); // runners loaded
  const pooledRssMiB = round((await procKb(pid, 'status', 'VmRSS')) / 1024, 1);
  const sandboxes = await pooledCost(id, pid);
  return { ...idle, pooledRssMiB, sandboxes };
}

async function main(): Promise<void> {
  const samples = envInt('BENCH_POOL_LATENCY', 15);
  const tasks = envInt('BENCH_POOL_TASKS', 60);
  const root = await mkdtemp(join(tmpdir(), 'tydra-bench-pool-'));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  await chmod(root, 0o755);
  await makeNoopPackage(join(root, 'package'), 'benchpool');
  const redis = await startRedisServer({ dir: join(root, 'redis'), persist: false });
  cleanups.push(() => redis.stop());
  const master = new Master({ redis: redis.url });
  cleanups.push(() => master.close());
  const tydra = new Tydra({ redis: redis.url });
  cleanups.push(() => tydra.close());
  await master.start();
  await tydra.deploy(join(root, 'package'));
  const ref = 'benchpool/noop';
  const raw = await rawBullmq(redis.url);
  const onceOf = (task: string) => async (): Promise<void> => {
    if ((await (await tydra.submit(task, null)).result({ timeoutMs: RESULT_TIMEOUT_MS })) !== 1) {
      throw new Error(`Expected the no-op task ${task} to return 1`);
    }
  };
  const once = onceOf(ref);

  progress(
    `cold: a node without a pool, ${samples} idle samples of each interleaved with raw BullMQ, ES module and CommonJS in turn`,
  );
  const coldNode = await startNode(redis.url, join(root, 'cache-cold'), 0);
  const [cold, coldCommonJs] = await interleaved(samples, raw, [once, onceOf('benchpool/noop-cjs')], () =>
    Promise.resolve(),
  );
  await coldNode.close();
  if (cold === undefined || coldCommonJs === undefined) {
    throw new Error('Expected two cold series');
  }

  progress(`warm: a node with the pool on, ${samples} idle samples, each once a pooled sandbox is ready`);
  const node = await startNode(redis.url, join(root, 'cache-warm'), NODE_CONCURRENCY);
  cleanups.push(() => node.close());
  // The node's first TaskInstance is cold (nothing ran yet to pool for); every later one finds one.
  const ready = (): Promise<void> =>
    waitUntil('a ready pooled sandbox', () => node.warmPoolStats.misses === 0 || node.warmPoolStats.ready >= 1);
  const [warm] = await interleaved(samples, raw, [once], ready);
  if (warm === undefined) {
    throw new Error('Expected a warm series');
  }
  const warmHits = node.warmPoolStats.hits;

  progress(
    `back to back: ${samples * 2} TaskInstances each right after the last, pool on, in blocks with raw BullMQ's`,
  );
  const hitsBefore = node.warmPoolStats.hits;
  const backToBackSeries = await backToBack(samples * 2, raw, once);
  const backToBackHits = node.warmPoolStats.hits - hitsBefore;

  progress(`throughput: ${tasks} at once, pool on, against raw BullMQ`);
  const rawWallMs = await timed(() => Promise.all(Array.from({ length: tasks }, raw)));
  const before = node.warmPoolStats;
  const tydraWallMs = await timed(() => Promise.all(Array.from({ length: tasks }, once)));
  const after = node.warmPoolStats;
  const hits = after.hits - before.hits;
  const misses = after.misses - before.misses;
  await node.close();

  progress('memory: a `tydra node` process, idle and with two pooled sandboxes');
  const memory = await measureMemory(redis.url, root, tydra, ref);

  const cpu = cpus()[0];
  const results = {
    date: new Date().toISOString(),
    host: { node: process.version, cpus: availableParallelism(), cpuModel: cpu?.model.trim() ?? 'unknown' },
    latency: {
      cold,
      coldCommonJs,
      warm,
      warmSampleHits: `${warmHits - (WARMUP - 1)}/${samples}`,
      backToBack: backToBackSeries,
      backToBackHits: `${backToBackHits}/${samples * 2}`,
    },
    throughput: {
      tasks,
      baselineTasksPerSec: round((tasks * 1000) / rawWallMs),
      tydraTasksPerSec: round((tasks * 1000) / tydraWallMs),
      ratio: round(rawWallMs / tydraWallMs),
      hitRate: round(hits / Math.max(1, hits + misses)),
      hits,
      misses,
    },
    memory,
  };
  process.stdout.write(`\n${formatTable(results)}\n\nBENCH_POOL_JSON ${JSON.stringify(results)}\n`);
}

function formatTable(r: {
  latency: Record<'cold' | 'coldCommonJs' | 'warm' | 'backToBack', LatencySeries> & { backToBackHits: string };
  throughput: { tasks: number; baselineTasksPerSec: number; tydraTasksPerSec: number; ratio: number; hitRate: number };
  memory: Awaited<ReturnType<typeof measureMemory>>;
}): string {
  const { cold, coldCommonJs, warm, backToBack: b2b } = r.latency;
  const t = r.throughput;
  const m = r.memory;
  const first = m.sandboxes[0];
  return [
    'warm pool bench (baseline: raw BullMQ, concurrency 2, spawning `node -e 0` per job, same Redis, same process)',
    `idle submit→result, cold : ${cold.tydra.medianMs} ms vs ${cold.baseline.medianMs} ms  = ${cold.ratioMedian}x (p95 ${cold.tydra.p95Ms} vs ${cold.baseline.p95Ms})`,
    `idle submit→result, cold, CommonJS task : ${coldCommonJs.tydra.medianMs} ms vs ${coldCommonJs.baseline.medianMs} ms  = ${coldCommonJs.ratioMedian}x (p95 ${coldCommonJs.tydra.p95Ms} vs ${coldCommonJs.baseline.p95Ms})`,
    `idle submit→result, warm : ${warm.tydra.medianMs} ms vs ${warm.baseline.medianMs} ms  = ${warm.ratioMedian}x (p95 ${warm.tydra.p95Ms} vs ${warm.baseline.p95Ms})`,
    `submit→result back to back, pool on : ${b2b.tydra.medianMs} ms vs ${b2b.baseline.medianMs} ms  = ${b2b.ratioMedian}x (p95 ${b2b.tydra.p95Ms} vs ${b2b.baseline.p95Ms}), ${r.latency.backToBackHits} from the pool`,
    `throughput, ${t.tasks} at once : ${t.tydraTasksPerSec}/s vs ${t.baselineTasksPerSec}/s = ${t.ratio}x, pool hit rate ${Math.round(t.hitRate * 100)}%`,
    `node RSS: idle ${m.idleRssMiB} MiB (lowest over ${IDLE_SAMPLE_S} s; at 2 s ${m.idleRssAt2sMiB}, at 10 s ${m.idleRssAt10sMiB}, start-up peak ${m.startPeakRssMiB}), with ${m.sandboxes.length} pooled sandboxes ${m.pooledRssMiB} MiB`,
    first === undefined
      ? 'pooled sandbox: none found'
      : `per pooled sandbox: PSS ${first.pssMiB} MiB, RSS ${first.rssMiB} MiB, cgroup memory ${first.cgroupMiB} MiB`,
  ].join('\n');
}

try {
  await main();
} catch (error) {
  progress(`FAILED: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
} finally {
  for (const cleanup of cleanups.reverse()) {
    await cleanup().catch((error: Error) => progress(`cleanup failed: ${error.message}`));
  }
  setTimeout(() => process.exit(), 10_000).unref();
}
