/**
 * tydra's benchmark: `npm run bench` (build, then `node dist/bench/run.js`).
 *
 * Machines are shared and noisy, so absolute times mean little across runs. Every number is
 * reported next to a baseline measured in the same process, right before or interleaved with
 * it, and the headline figure is the RATIO between the two. See bench/README.md.
 *
 *  1. sandbox spawn: `runTask()` of a noop JS module in a fresh bubblewrap sandbox, vs a bare
 *     `node -e 0` spawn; both sequential and interleaved one to one.
 *  2. end to end: one Master and one TydraNode (concurrency 2) on a private redis-server; M
 *     TaskInstances submitted at once, vs the same M jobs through a raw BullMQ Queue + Worker
 *     (concurrency 2) that spawns `node -e 0` per job. Plus the idle submit→result latency, and
 *     the cancel latency: `run.cancel()` on a running TaskInstance until it is settled as cancelled.
 *     Between them, raw BullMQ once more, its processor spawning `node -e 0` in a bare tydra sandbox
 *     (`sandbox-floor.ts`): the throughput floor of any design with a fresh sandbox per job.
 *     tydra's runs go twice: the task as an ES module (`noop.mjs`), then as CommonJS (`noop.cjs`,
 *     which the runner loads without starting Node's ES module loader; `sandbox/runner/task-module.ts`).
 *  3. what starting the task costs in CPU on top of `node -e 0` (`runner-cpu.ts`), for the
 *     arithmetic of the throughput target below the table.
 *
 * Environment: BENCH_SPAWNS (default 30), BENCH_TASKS (default 40), BENCH_LATENCY (idle
 * latency samples, default 7), BENCH_RUNNER_CPU_SPAWNS (processes of each kind, default 15).
 * Progress goes to stderr; the table and, as the very last line, `BENCH_JSON {...}` go to stdout.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { type Job, Queue, QueueEvents, Worker } from 'bullmq';
import { execa } from 'execa';
import { Redis } from 'ioredis';

import { Master, startRedisServer, Tydra, TydraNode } from '../lib/index.js';
import type { RedisServer } from '../lib/index.js';
import { checkBwrap } from '../sandbox/launcher/bwrap.js';
import { NODE_DEFAULTS } from '../lib/node/defaults.js';
import { defaultSandboxUser } from '../lib/node/options.js';
import { DEFAULT_TASK_LIMITS } from '../lib/core/limits.js';
import { detectCgroups, removeCgroupParent } from '../sandbox/launcher/cgroup/support.js';
import { findPrlimit } from '../sandbox/launcher/rlimits.js';
import { installRuntime } from '../sandbox/launcher/runtime-dir.js';
import { runTask } from '../sandbox/launcher/run-task.js';
import {
  cpuCeiling,
  cpuPerTaskMs,
  type CpuShares,
  type CpuSources,
  formatCpu,
  measureCpu,
  nodeCpuCgroup,
  ownCpuCgroup,
} from './cpu-window.js';
import { envInt } from './env.js';
import { measureRunnerCpu, type RunnerCpu } from './runner-cpu.js';
import { sandboxFloor } from './sandbox-floor.js';

const MiB = 1024 * 1024;
const WARMUP = 3;
const TASK_TIMEOUT_MS = 30_000;
/** Hard limit on waiting for any one result, so a broken cluster fails the bench instead of hanging it. */
const RESULT_TIMEOUT_MS = 120_000;
const NODE_CONCURRENCY = 2;
const PACKAGE_NAME = 'bench';
const TASK_NAME = 'noop';
const NOOP_MODULE = 'export default async () => 1;\n';
/** The same task as CommonJS: the runner loads it with `require()` and never starts Node's ES module loader. */
const NOOP_COMMONJS_MODULE = 'module.exports = async () => 1;\n';
const COMMONJS_TASK_NAME = 'noop-cjs';
/** Never returns: cancelled by the cancel-latency benchmark. */
const HANG_MODULE = 'export default () => new Promise(() => setInterval(() => {}, 1000));\n';

interface Config {
  spawns: number;
  tasks: number;
  latencySamples: number;
  /** Processes of each kind `runner-cpu.ts` measures. */
  runnerCpuSpawns: number;
  /** Where to read CPU time (`cpu-window.ts`); the node's cgroup is added once it exists. */
  cpu: CpuSources;
}

interface Summary {
  n: number;
  medianMs: number;
  p95Ms: number;
  minMs: number;
  maxMs: number;
}

interface Results {
  config: Config & { warmup: number; nodeConcurrency: number };
  host: { node: string; platform: string; cpus: number; cpuModel: string };
  spawn: { baseline: Summary; tydra: Summary; ratioMedian: number; ratioP95: number };
  endToEnd: {
    throughput: {
      baselineTasksPerSec: number;
      tydraTasksPerSec: number;
      ratio: number;
      baselineWallMs: number;
      tydraWallMs: number;
      /** Where the CPU went during each throughput run (`cpu-window.ts`). */
      baselineCpu: CpuShares;
      tydraCpu: CpuShares;
    };
    /** `warm`: of the tydra samples, how many claimed a pooled sandbox (the rest started cold). */
    latency: { baseline: Summary; tydra: Summary; ratioMedian: number; warm: number };
    cancel: { baseline: Summary; tydra: Summary; ratioMedian: number };
    /**
     * Raw BullMQ again, its processor spawning `node -e 0` in a sandbox as tydra builds one, with
     * no cgroup and no runner (`sandbox-floor.ts`): the throughput any design that starts a fresh
     * bwrap sandbox per job starts from, before a master, a node or a runner costs anything.
     */
    sandboxFloor: {
      tasksPerSec: number;
      ratio: number;
      wallMs: number;
      cpu: CpuShares;
      /** tydra's throughput over the floor's, ES module and CommonJS task: what tydra's own parts keep. */
      tydraRatio: number;
      commonJsRatio: number;
    };
    /** The same runs with the task as a CommonJS module (`noop.cjs`), after the ES module's. */
    commonJs: {
      throughput: { tydraTasksPerSec: number; ratio: number; tydraWallMs: number; tydraCpu: CpuShares };
      latency: { tydra: Summary; ratioMedian: number; warm: number };
    };
  };
  /**
   * CPU per process of Node loading and calling the no-op task, and of tydra's runner doing it,
   * against `node -e 0`, outside any sandbox (`runner-cpu.ts`): what starting a task costs
   * whoever runs it, set against what the throughput target leaves above the sandbox floor.
   */
  runnerCpu: RunnerCpu;
}

// ---------------------------------------------------------------------------------------------
// Cleanup: every resource registers an undo step; they run in reverse order exactly once, on
// success, on error and on SIGINT/SIGTERM.

const cleanups: Array<{ label: string; run: () => Promise<unknown> }> = [];
let cleaning: Promise<void> | undefined;

function onCleanup(label: string, run: () => Promise<unknown>): void {
  cleanups.push({ label, run });
}

function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    let failed = 0;
    while (cleanups.length > 0) {
      const step = cleanups.pop();
      if (step === undefined) {
        break;
      }
      try {
        await withTimeout(step.run(), 15_000, `cleanup: ${step.label}`);
      } catch (error) {
        failed += 1;
        progress(`cleanup of ${step.label} failed: ${(error as Error).message}`);
      }
    }
    progress(
      failed === 0
        ? 'cleaned up: clients closed, redis-server stopped, temp dir removed'
        : `cleanup finished with ${failed} failed step(s)`,
    );
  })();
  return cleaning;
}

// `on`, not `once`: execa's `cleanup` option (used for redis-server) installs signal-exit, which
// re-raises the signal and kills us before cleanup when it sees itself as the only listener.
let signalled = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (signalled) {
      progress(`${signal} again; exiting without waiting for cleanup`);
      process.exit(130);
    }
    signalled = true;
    progress(`${signal} received; cleaning up`);
    void cleanupAll().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------

function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Nearest-rank percentile of already sorted values. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) {
    return Number.NaN;
  }
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? Number.NaN;
}

function median(sorted: readonly number[]): number {
  const n = sorted.length;
  if (n === 0) {
    return Number.NaN;
  }
  const mid = Math.floor(n / 2);
  return n % 2 === 1 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    medianMs: round(median(sorted)),
    p95Ms: round(percentile(sorted, 95)),
    minMs: round(sorted[0] ?? Number.NaN),
    maxMs: round(sorted.at(-1) ?? Number.NaN),
  };
}

function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

/**
 * The baseline process: `node -e 0` with an empty environment, like the sandbox's. An inherited
 * environment is not neutral: NODE_EXTRA_CA_CERTS or NODE_OPTIONS alone can add tens of ms to
 * every start, which would flatter tydra's ratios (its sandbox clears the environment).
 */
async function bareSpawn(): Promise<void> {
  await execa(process.execPath, ['-e', '0'], { extendEnv: false, env: {} });
}

/** A package folder with `noop.mjs`, `noop.cjs` (and a manifest, for deploying). World-readable for the sandbox user. */
async function makePackage(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'noop.mjs'), NOOP_MODULE);
  await writeFile(join(dir, 'noop.cjs'), NOOP_COMMONJS_MODULE);
  await writeFile(join(dir, 'hang.mjs'), HANG_MODULE);
  const tasks = {
    [TASK_NAME]: { module: 'noop.mjs' },
    [COMMONJS_TASK_NAME]: { module: 'noop.cjs' },
    hang: { module: 'hang.mjs' },
  };
  await writeFile(
    join(dir, 'tydra.json'),
    `${JSON.stringify({ name: PACKAGE_NAME, description: 'benchmark noop', tasks }, null, 2)}\n`,
  );
  await chmod(dir, 0o755);
}

// ---------------------------------------------------------------------------------------------
// Benchmark 1: sandbox spawn

async function benchSpawn(config: Config, packageDir: string): Promise<Results['spawn']> {
  const bwrap = await checkBwrap();
  const prlimit = findPrlimit();
  // The runner copied next to the package, as a node copies it next to its cache; a cgroup per
  // sandbox when the host has them, as a node does.
  const runtimeDir = await installRuntime(dirname(packageDir));
  const cgroups = await detectCgroups({ parentName: `tydra-bench-${process.pid}` });
  onCleanup('bench cgroups', () => removeCgroupParent(cgroups));
  progress(`sandbox spawn: cgroups ${cgroups.mode}${cgroups.mode === 'none' ? ` (${cgroups.reason})` : ''}`);
  progress(`sandbox spawn: bwrap at ${bwrap}; ${config.spawns} runs each, interleaved, after ${WARMUP} warm-up runs`);
  let counter = 0;
  const sandboxed = async (): Promise<void> => {
    counter += 1;
    const value = await runTask({
      packageDir,
      task: { module: 'noop.mjs' },
      input: null,
      instanceId: `bench-spawn-${counter}`,
      attempt: 1,
      limits: { ...DEFAULT_TASK_LIMITS, timeoutMs: TASK_TIMEOUT_MS, scratchBytes: 16 * MiB },
      bwrap,
      prlimit,
      runtimeDir,
      cgroups,
      // As a node does: an unprivileged sandbox user when root.
      sandboxUser: defaultSandboxUser(),
    });
    if (value !== 1) {
      throw new Error(`Expected the noop task to return 1, got ${JSON.stringify(value)}`);
    }
  };
  for (let i = 0; i < WARMUP; i += 1) {
    await bareSpawn();
    await sandboxed();
  }
  // Interleaved one to one, so a burst of load on a shared machine hits both series alike.
  const baseline: number[] = [];
  const tydra: number[] = [];
  for (let i = 0; i < config.spawns; i += 1) {
    baseline.push(await timed(bareSpawn));
    tydra.push(await timed(sandboxed));
  }
  const b = summarize(baseline);
  const t = summarize(tydra);
  return { baseline: b, tydra: t, ratioMedian: round(t.medianMs / b.medianMs), ratioP95: round(t.p95Ms / b.p95Ms) };
}

// ---------------------------------------------------------------------------------------------
// Benchmark 2, baseline: raw BullMQ, one Queue + one Worker (concurrency 2) spawning `node -e 0`.

/** The same measurement for both systems: warm-up, idle latency one at a time, then M at once. */
interface EndToEnd {
  wallMs: number;
  latency: number[];
  /** Of the idle samples, how many claimed a pooled sandbox (tydra only: `warmHits` given). */
  latencyWarm?: number;
  cpu: CpuShares;
}

async function measureEndToEnd(
  config: Config,
  label: string,
  once: () => Promise<void>,
  warmHits?: () => number,
): Promise<EndToEnd> {
  for (let i = 0; i < WARMUP; i += 1) {
    await once();
  }
  const latency: number[] = [];
  const hitsBefore = warmHits?.();
  for (let i = 0; i < config.latencySamples; i += 1) {
    latency.push(await timed(once));
  }
  // Samples one after the other find a pooled sandbox or not depending on whether its refill was
  // ready in time: the series mixes warm and cold starts, and says how many were warm.
  const latencyWarm = hitsBefore === undefined ? undefined : (warmHits?.() ?? hitsBefore) - hitsBefore;
  // The window on the monotonic clock a `--cpu-prof` profile uses, to cut the profile to it.
  const from = process.hrtime.bigint() / 1000n;
  const { value: wallMs, cpu } = await measureCpu(config.cpu, () =>
    timed(() => Promise.all(Array.from({ length: config.tasks }, once))),
  );
  progress(`${label} throughput window (µs, monotonic): ${from} ${process.hrtime.bigint() / 1000n}`);
  progress(`${label} throughput CPU: ${formatCpu(cpu, config.tasks)}`);
  return { wallMs, latency, latencyWarm, cpu };
}

async function benchRawBullmq(
  config: Config,
  redisUrl: string,
  label = 'raw BullMQ',
  spawnOne: () => Promise<void> = bareSpawn,
): Promise<EndToEnd> {
  const queueName = `bench-raw-${randomUUID().slice(0, 8)}`;
  const connection = { url: redisUrl, maxRetriesPerRequest: null };
  const queue = new Queue(queueName, { connection, defaultJobOptions: { removeOnComplete: true, removeOnFail: true } });
  onCleanup('raw BullMQ queue', () => queue.close());
  const events = new QueueEvents(queueName, { connection });
  onCleanup('raw BullMQ queue events', () => events.close());
  const worker = new Worker(
    queueName,
    async () => {
      await spawnOne();
      return 1;
    },
    { connection, concurrency: NODE_CONCURRENCY },
  );
  onCleanup('raw BullMQ worker', () => worker.close());
  const onError = (error: Error): void => progress(`raw BullMQ error: ${error.message}`);
  // Each pending waitUntilFinished adds a 'closing' listener to the queue.
  queue.setMaxListeners(config.tasks + 16);
  queue.on('error', onError);
  events.on('error', onError);
  worker.on('error', onError);
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady(), worker.waitUntilReady()]);

  const once = async (): Promise<void> => {
    const job: Job = await queue.add('noop', null);
    const value: unknown = await job.waitUntilFinished(events, RESULT_TIMEOUT_MS);
    if (value !== 1) {
      throw new Error(`Expected the raw BullMQ job to return 1, got ${JSON.stringify(value)}`);
    }
  };
  return measureEndToEnd(config, label, once);
}

// ---------------------------------------------------------------------------------------------
// Benchmark 2, tydra: Master + TydraNode (concurrency 2) + client.

async function benchTydra(
  config: Config,
  redisUrl: string,
  packageDir: string,
  cacheDir: string,
): Promise<{ esm: EndToEnd; commonJs: EndToEnd; cancel: number[] }> {
  const master = new Master({ redis: redisUrl });
  onCleanup('master', () => master.close());
  const node = new TydraNode({
    redis: redisUrl,
    id: `bench-${process.pid}-${randomUUID().slice(0, 8)}`,
    concurrency: NODE_CONCURRENCY,
    cacheDir,
  });
  onCleanup('node', () => node.close());
  const tydra = new Tydra({ redis: redisUrl });
  onCleanup('client', () => tydra.close());
  await Promise.all([master.start(), node.start()]);
  const deployed = await tydra.deploy(packageDir);
  progress(`end to end: deployed ${deployed.ref}; node ${node.id}`);

  const onceOf = (task: string) => async (): Promise<void> => {
    const run = await tydra.submit(`${PACKAGE_NAME}/${task}`, null, { timeoutMs: TASK_TIMEOUT_MS });
    const value = await run.result({ timeoutMs: RESULT_TIMEOUT_MS });
    if (value !== 1) {
      throw new Error(`Expected the tydra task to return 1, got ${JSON.stringify(value)}`);
    }
  };
  // Warm-up also pulls the package into the node's cache and opens the client's QueueEvents.
  // The sandboxes' CPU is charged to the node's parent cgroup once they are moved there.
  const cpu = { ...config.cpu, otherCgroups: [nodeCpuCgroup(NODE_DEFAULTS.cgroupName, node.id)] };
  const warmHits = (): number => node.warmPoolStats.hits;
  const esm = await measureEndToEnd({ ...config, cpu }, 'tydra', onceOf(TASK_NAME), warmHits);
  const commonJs = await measureEndToEnd(
    { ...config, cpu },
    'tydra (CommonJS task)',
    onceOf(COMMONJS_TASK_NAME),
    warmHits,
  );

  // Cancel latency: from `run.cancel()` on a running TaskInstance to `result()` rejecting as
  // cancelled (the node heard it over pub/sub, killed the sandbox, the master settled it).
  const cancel: number[] = [];
  for (let i = 0; i < config.latencySamples; i += 1) {
    const run = await tydra.submit(`${PACKAGE_NAME}/hang`, null, { timeoutMs: TASK_TIMEOUT_MS });
    const settled = run.result({ timeoutMs: RESULT_TIMEOUT_MS }).then(
      () => {
        throw new Error('Expected the hanging task to be cancelled, but it returned');
      },
      (error: Error) => error,
    );
    for (let polls = 0; (await run.status()).state !== 'running'; polls += 1) {
      if (polls > 2000) {
        throw new Error('the hanging task never started');
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const started = performance.now();
    await run.cancel();
    const error = await settled;
    cancel.push(performance.now() - started);
    if (error.name !== 'TaskCancelledError') {
      throw new Error(`Expected TaskCancelledError, got ${error.name}: ${error.message}`);
    }
  }
  return { esm, commonJs, cancel };
}

// ---------------------------------------------------------------------------------------------

function formatTable(results: Results): string {
  const rows: string[][] = [
    ['benchmark', 'metric', 'baseline', 'tydra', 'ratio', 'ratio means'],
    [
      'sandbox spawn',
      `median ms (n=${results.spawn.tydra.n})`,
      results.spawn.baseline.medianMs.toFixed(1),
      results.spawn.tydra.medianMs.toFixed(1),
      `${results.spawn.ratioMedian.toFixed(2)}x`,
      'tydra/baseline, lower is better',
    ],
    [
      'sandbox spawn',
      'p95 ms',
      results.spawn.baseline.p95Ms.toFixed(1),
      results.spawn.tydra.p95Ms.toFixed(1),
      `${results.spawn.ratioP95.toFixed(2)}x`,
      'tydra/baseline, lower is better',
    ],
    [
      'end to end',
      `throughput tasks/s (M=${results.config.tasks})`,
      results.endToEnd.throughput.baselineTasksPerSec.toFixed(1),
      results.endToEnd.throughput.tydraTasksPerSec.toFixed(1),
      `${results.endToEnd.throughput.ratio.toFixed(2)}x`,
      'tydra/baseline, higher is better',
    ],
    [
      'end to end',
      `idle latency median ms (n=${results.endToEnd.latency.tydra.n}, ${results.endToEnd.latency.warm} warm)`,
      results.endToEnd.latency.baseline.medianMs.toFixed(1),
      results.endToEnd.latency.tydra.medianMs.toFixed(1),
      `${results.endToEnd.latency.ratioMedian.toFixed(2)}x`,
      'tydra/baseline, lower is better',
    ],
    [
      'end to end',
      `throughput, raw BullMQ + sandbox floor (M=${results.config.tasks})`,
      results.endToEnd.throughput.baselineTasksPerSec.toFixed(1),
      results.endToEnd.sandboxFloor.tasksPerSec.toFixed(1),
      `${results.endToEnd.sandboxFloor.ratio.toFixed(2)}x`,
      'floor/baseline: a bwrap sandbox spawned per job, nothing else',
    ],
    [
      'end to end',
      `throughput against the floor (ES module task)`,
      results.endToEnd.sandboxFloor.tasksPerSec.toFixed(1),
      results.endToEnd.throughput.tydraTasksPerSec.toFixed(1),
      `${results.endToEnd.sandboxFloor.tydraRatio.toFixed(2)}x`,
      "tydra/floor: what tydra's own parts keep, higher is better",
    ],
    [
      'end to end',
      `throughput against the floor (CommonJS task)`,
      results.endToEnd.sandboxFloor.tasksPerSec.toFixed(1),
      results.endToEnd.commonJs.throughput.tydraTasksPerSec.toFixed(1),
      `${results.endToEnd.sandboxFloor.commonJsRatio.toFixed(2)}x`,
      "tydra/floor: what tydra's own parts keep, higher is better",
    ],
    [
      'end to end',
      `throughput, CommonJS task (M=${results.config.tasks})`,
      results.endToEnd.throughput.baselineTasksPerSec.toFixed(1),
      results.endToEnd.commonJs.throughput.tydraTasksPerSec.toFixed(1),
      `${results.endToEnd.commonJs.throughput.ratio.toFixed(2)}x`,
      'tydra/baseline, higher is better',
    ],
    [
      'end to end',
      `idle latency, CommonJS task (n=${results.endToEnd.commonJs.latency.tydra.n}, ${results.endToEnd.commonJs.latency.warm} warm)`,
      results.endToEnd.latency.baseline.medianMs.toFixed(1),
      results.endToEnd.commonJs.latency.tydra.medianMs.toFixed(1),
      `${results.endToEnd.commonJs.latency.ratioMedian.toFixed(2)}x`,
      'tydra/baseline, lower is better',
    ],
    [
      'cancel',
      `cancel() -> cancelled, median ms (n=${results.endToEnd.cancel.tydra.n})`,
      results.endToEnd.cancel.baseline.medianMs.toFixed(1),
      results.endToEnd.cancel.tydra.medianMs.toFixed(1),
      `${results.endToEnd.cancel.ratioMedian.toFixed(2)}x`,
      'in raw BullMQ job round trips (baseline = idle latency)',
    ],
  ];
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((row) => (row[col] ?? '').length))) ?? [];
  const line = (row: string[]): string =>
    row
      .map((cell, col) => (col >= 2 && col <= 4 ? cell.padStart(widths[col] ?? 0) : cell.padEnd(widths[col] ?? 0)))
      .join('  ');
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const [header, ...body] = rows;
  return [
    `tydra bench: node ${results.host.node}, ${results.host.cpus} CPUs (${results.host.cpuModel})`,
    'baselines: spawn = bare `node -e 0` (empty env), interleaved 1:1 with sandboxed runs;',
    `           end to end = raw BullMQ Queue + Worker (concurrency ${NODE_CONCURRENCY}) spawning the same \`node -e 0\` per job`,
    '',
    line(header ?? []),
    rule,
    ...body.map(line),
    '',
    'CPU during the throughput runs, in cores busy over the window:',
    `  baseline: ${formatCpu(results.endToEnd.throughput.baselineCpu, results.config.tasks)}`,
    `  tydra:    ${formatCpu(results.endToEnd.throughput.tydraCpu, results.config.tasks)}`,
    `  sandbox floor: ${formatCpu(results.endToEnd.sandboxFloor.cpu, results.config.tasks)}`,
    `  tydra, CommonJS task: ${formatCpu(results.endToEnd.commonJs.throughput.tydraCpu, results.config.tasks)}`,
    '',
    ...throughputLimits(results),
  ].join('\n');
}

/**
 * What limits each throughput, from the CPU figures: a run at its CPU ceiling (every core busy
 * with it) is CPU-bound; one well under it waits on something else, its slots on each job's round
 * trip. And how much CPU per TaskInstance tydra could use at 0.8x the baseline's throughput.
 */
function throughputLimits(results: Results): string[] {
  const { tasks } = results.config;
  const { throughput, sandboxFloor, commonJs } = results.endToEnd;
  const line = (label: string, tasksPerSec: number, cpu: CpuShares): string => {
    const ceiling = cpuCeiling(cpu, tasks);
    // Under a tenth of the cores idle: CPU-bound; more, and waits limit it too.
    const bound = cpu.idle / cpu.cores < 0.1 ? 'CPU-bound' : `${cpu.idle.toFixed(2)} cores idle: waits limit it too`;
    return (
      `  ${label}: ${cpuPerTaskMs(cpu, tasks).toFixed(1)} ms of CPU per task, at most ` +
      `${ceiling.toFixed(1)}/s on ${cpu.cores} cores; ran at ${tasksPerSec.toFixed(1)}/s ` +
      `(${(tasksPerSec / ceiling).toFixed(2)} of it, ${bound})`
    );
  };
  return [
    'What limits the throughput:',
    line('baseline', throughput.baselineTasksPerSec, throughput.baselineCpu),
    line('sandbox floor', sandboxFloor.tasksPerSec, sandboxFloor.cpu),
    line('tydra', throughput.tydraTasksPerSec, throughput.tydraCpu),
    line('tydra, CommonJS task', commonJs.throughput.tydraTasksPerSec, commonJs.throughput.tydraCpu),
    ...targetArithmetic(results),
  ];
}

/**
 * The CPU per TaskInstance that 0.8x the baseline's throughput allows, against what the sandbox
 * floor uses per job and what starting the task costs on top of `node -e 0` (`runner-cpu.ts`):
 * what is left for the master's hop, the TaskInstance's cgroup, the node and the client, and what
 * they used.
 */
function targetArithmetic(results: Results): string[] {
  const { tasks } = results.config;
  const { throughput, sandboxFloor, commonJs } = results.endToEnd;
  const { runnerCpu: r } = results;
  const budget = (throughput.tydraCpu.cores * 1000) / (0.8 * throughput.baselineTasksPerSec);
  const floor = cpuPerTaskMs(sandboxFloor.cpu, tasks);
  const runnerModule = r.runnerModuleMs - r.bareMs;
  const runnerCommonJs = r.runnerCommonJsMs - r.bareMs;
  const ms = (value: number): string => `${value.toFixed(1)} ms`;
  // What tydra's master, node, client and Redis used: its CPU per TaskInstance less the floor and the runner.
  const rest = (cpu: CpuShares, runner: number): number => cpuPerTaskMs(cpu, tasks) - floor - runner;
  const leftFor = (runner: number): number => budget - floor - runner;
  const left = leftFor(runnerModule);
  return [
    `  0.8x the baseline (${(0.8 * throughput.baselineTasksPerSec).toFixed(1)}/s) needs at most ${ms(budget)} of ` +
      `CPU per TaskInstance on ${throughput.tydraCpu.cores} cores, all busy. The sandbox floor used ${ms(floor)} ` +
      `per task (one raw BullMQ job, bwrap around \`node -e 0\`, nothing of tydra): ${ms(budget - floor)} is left ` +
      'for all a TaskInstance adds to that.',
    `  Starting the task uses more than \`node -e 0\` (outside a sandbox, ${r.spawns} of each, one at a time): ` +
      `tydra's runner, to its result and exit, ${ms(runnerModule)} for an ES module, ${ms(runnerCommonJs)} for ` +
      `CommonJS; Node doing nothing but load and call the task, ${ms(r.loadModuleMs - r.bareMs)} and ` +
      `${ms(r.loadCommonJsMs - r.bareMs)}.`,
    `  That leaves ${ms(left)} (ES module) and ${ms(leftFor(runnerCommonJs))} (CommonJS) for the master's ` +
      "hop, the TaskInstance's cgroup, the node, the client and Redis; they used " +
      `${ms(rest(throughput.tydraCpu, runnerModule))} and ${ms(rest(commonJs.throughput.tydraCpu, runnerCommonJs))}.`,
    left <= 0
      ? '  So 0.8x is out of reach here for an ES module task whatever the master, node and client cost: ' +
        'starting the task alone uses more than the floor leaves.'
      : `  So 0.8x would need them to cost ${ms(rest(throughput.tydraCpu, runnerModule) - left)} less per ` +
        'TaskInstance (ES module task).',
  ];
}

async function main(): Promise<void> {
  const config: Config = {
    spawns: envInt('BENCH_SPAWNS', 30),
    tasks: envInt('BENCH_TASKS', 40),
    latencySamples: envInt('BENCH_LATENCY', 7),
    runnerCpuSpawns: envInt('BENCH_RUNNER_CPU_SPAWNS', 15),
    cpu: { redisPid: undefined, ownCgroup: undefined, otherCgroups: [] },
  };
  // First, so that every process started later is born in it (and it is removed last).
  const cpuCgroup = await ownCpuCgroup();
  if (cpuCgroup !== undefined) {
    onCleanup('cpuacct cgroup', cpuCgroup.remove);
    config.cpu.ownCgroup = cpuCgroup.dir;
  }

  const root = await mkdtemp(join(tmpdir(), 'tydra-bench-'));
  onCleanup(`temp dir ${root}`, () => rm(root, { recursive: true, force: true }));
  await chmod(root, 0o755);
  const packageDir = join(root, 'package');
  await makePackage(packageDir);

  const redis: RedisServer = await startRedisServer({ dir: join(root, 'redis'), persist: false });
  onCleanup('redis-server', () => redis.stop());
  progress(`private redis-server on ${redis.url}`);
  await assertEmpty(redis.url);
  config.cpu.redisPid = await redisPid(redis.url);

  const spawn = await benchSpawn(config, packageDir);
  progress(`sandbox spawn: median ${spawn.tydra.medianMs} ms vs bare ${spawn.baseline.medianMs} ms`);

  progress(`end to end: raw BullMQ baseline, ${config.latencySamples} idle + ${config.tasks} concurrent jobs`);
  const raw = await benchRawBullmq(config, redis.url);
  progress(`end to end: raw BullMQ spawning node -e 0 in a bare tydra sandbox (the floor), ${config.tasks} at once`);
  const floor = await benchRawBullmq(
    { ...config, latencySamples: 0 },
    redis.url,
    'raw BullMQ + sandbox floor',
    await sandboxFloor(packageDir, dirname(packageDir)),
  );
  progress(`end to end: tydra, ${config.latencySamples} idle + ${config.tasks} concurrent TaskInstances`);
  const { esm: ours, commonJs, cancel } = await benchTydra(config, redis.url, packageDir, join(root, 'cache'));
  progress(`runner CPU: node -e 0, the task loaded and called, tydra's runner; ${config.runnerCpuSpawns} of each`);
  const runnerCpu = await measureRunnerCpu(
    config.cpu,
    { packageDir, module: 'noop.mjs', commonJs: 'noop.cjs' },
    config.runnerCpuSpawns,
  );

  const baselineTasksPerSec = (config.tasks * 1000) / raw.wallMs;
  const tydraTasksPerSec = (config.tasks * 1000) / ours.wallMs;
  const commonJsTasksPerSec = (config.tasks * 1000) / commonJs.wallMs;
  const floorTasksPerSec = (config.tasks * 1000) / floor.wallMs;
  const rawLatency = summarize(raw.latency);
  const tydraLatency = summarize(ours.latency);
  const commonJsLatency = summarize(commonJs.latency);
  const cpu = cpus()[0];
  const results: Results = {
    config: { ...config, warmup: WARMUP, nodeConcurrency: NODE_CONCURRENCY },
    host: {
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpus: availableParallelism(),
      cpuModel: cpu?.model.trim() ?? 'unknown',
    },
    spawn,
    endToEnd: {
      throughput: {
        baselineTasksPerSec: round(baselineTasksPerSec),
        tydraTasksPerSec: round(tydraTasksPerSec),
        ratio: round(tydraTasksPerSec / baselineTasksPerSec),
        baselineWallMs: round(raw.wallMs),
        tydraWallMs: round(ours.wallMs),
        baselineCpu: raw.cpu,
        tydraCpu: ours.cpu,
      },
      latency: {
        baseline: rawLatency,
        tydra: tydraLatency,
        ratioMedian: round(tydraLatency.medianMs / rawLatency.medianMs),
        warm: ours.latencyWarm ?? 0,
      },
      cancel: {
        baseline: rawLatency,
        tydra: summarize(cancel),
        ratioMedian: round(summarize(cancel).medianMs / rawLatency.medianMs),
      },
      sandboxFloor: {
        tydraRatio: round(tydraTasksPerSec / floorTasksPerSec),
        commonJsRatio: round(commonJsTasksPerSec / floorTasksPerSec),
        tasksPerSec: round(floorTasksPerSec),
        ratio: round(floorTasksPerSec / baselineTasksPerSec),
        wallMs: round(floor.wallMs),
        cpu: floor.cpu,
      },
      commonJs: {
        throughput: {
          tydraTasksPerSec: round(commonJsTasksPerSec),
          ratio: round(commonJsTasksPerSec / baselineTasksPerSec),
          tydraWallMs: round(commonJs.wallMs),
          tydraCpu: commonJs.cpu,
        },
        latency: {
          tydra: commonJsLatency,
          ratioMedian: round(commonJsLatency.medianMs / rawLatency.medianMs),
          warm: commonJs.latencyWarm ?? 0,
        },
      },
    },
    runnerCpu,
  };

  await cleanupAll();
  process.stdout.write(`\n${formatTable(results)}\n\n`);
  process.stdout.write(`BENCH_JSON ${JSON.stringify(results)}\n`);
}

/** The redis-server's pid, as it reports it (`INFO server`). */
async function redisPid(url: string): Promise<number | undefined> {
  const redis = new Redis(url);
  try {
    const pid = Number(/^process_id:(\d+)/m.exec(await redis.info('server'))?.[1]);
    return Number.isSafeInteger(pid) ? pid : undefined;
  } finally {
    redis.disconnect();
  }
}

/** Refuses to run against a Redis that already holds data: this must be our fresh private server. */
async function assertEmpty(url: string): Promise<void> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    const size = await client.dbsize();
    if (size !== 0) {
      throw new Error(`Expected the private redis-server at ${url} to be empty, got ${size} keys`);
    }
  } finally {
    await client.quit().catch(() => client.disconnect());
  }
}

/**
 * Everything is closed by now, so the event loop should drain and the process exit on its own.
 * If a handle leaked (a client that keeps reconnecting after its server is gone, say), say so
 * loudly and exit anyway: a benchmark must never hang a CI job. The timer is unref'd, so it
 * never delays a clean exit.
 */
function exitWatchdog(ms: number): void {
  setTimeout(() => {
    const counts = new Map<string, number>();
    const handles = (process as unknown as { _getActiveHandles?: () => object[] })._getActiveHandles?.() ?? [];
    for (const handle of handles) {
      const name = handle.constructor.name;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    const list = [...counts].map(([name, count]) => `${name} x${count}`).join(', ') || 'none visible (timers)';
    progress(`WARNING: still running ${ms} ms after cleanup; leaked handles: ${list}. Forcing exit.`);
    process.exit();
  }, ms).unref();
}

try {
  await main();
} catch (error) {
  progress(`FAILED: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
} finally {
  await cleanupAll();
  exitWatchdog(10_000);
}
