/**
 * Where a sandbox's start goes, step by step, and what a pooled sandbox leaves of it:
 * `npm run build && node dist/bench/cold-start.js` (not part of `npm run bench`: it measures
 * pieces, for choosing what to take off the critical path).
 *
 * Interleaved rounds, each timing:
 * - `node -e 0` with an empty environment (the baseline);
 * - `node -e 0` in a sandbox as tydra spawns one (prlimit → bwrap with every isolation flag and
 *   mount, `spawnSandbox`), let go at once, with no cgroup and no runner: the floor of a cold
 *   start to its end (`sandboxFloor`);
 * - the runner alone, outside any sandbox: spawn → its `ready` message (Node's start-up plus the
 *   runner's modules, before any task; what a cold sandbox pays on top of bwrap and the cgroup);
 * - making one TaskInstance cgroup with its limits (what a pool of pre-made cgroups would save);
 * - moving a live process into it (the migration a cgroup-v1 host pays on every start);
 * - a whole cold sandbox: `runTask()` of a no-op module (prlimit → bwrap → cgroup → runner → task),
 *   to its result as a node gets it (`cold`: at the runner's final message) and to its end
 *   (`coldGone`: exited, cgroup removed); the same with the task as CommonJS (`coldCommonJs`,
 *   `coldCommonJsGone`: loaded with `require()`, no ES module loader);
 * - a pooled sandbox's share: `WarmSandbox.claim()` of a sandbox started and ready beforehand
 *   (the `start` message, the task's import and run, the exit and the clean-up).
 *
 * Environment: BENCH_COLD_ROUNDS (default 15). The table and `BENCH_COLD_JSON {...}` go to stdout.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { execa } from 'execa';

import { DEFAULT_TASK_LIMITS } from '../lib/core/limits.js';
import { defaultSandboxUser } from '../lib/node/options.js';
import { checkBwrap } from '../sandbox/launcher/bwrap.js';
import { detectCgroups, removeCgroupParent } from '../sandbox/launcher/cgroup/support.js';
import { createTaskCgroup } from '../sandbox/launcher/cgroup/task-cgroup.js';
import { findPrlimit } from '../sandbox/launcher/rlimits.js';
import { runTask } from '../sandbox/launcher/run-task.js';
import { installRuntime, RUNNER_FILE, RUNTIME_DIR } from '../sandbox/launcher/runtime-dir.js';
import { WarmSandbox } from '../sandbox/launcher/warm-sandbox.js';
import { sandboxFloor } from './sandbox-floor.js';

const WARMUP = 2;

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return Number(
    (sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2).toFixed(2),
  );
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

async function main(): Promise<void> {
  const rounds = Number(process.env.BENCH_COLD_ROUNDS ?? 15);
  const root = await mkdtemp(join(tmpdir(), 'tydra-bench-cold-'));
  await chmod(root, 0o755);
  const packageDir = join(root, 'package');
  await execa('mkdir', ['-p', packageDir]);
  await writeFile(join(packageDir, 'noop.mjs'), 'export default async () => 1;\n');
  await writeFile(join(packageDir, 'noop.cjs'), 'module.exports = async () => 1;\n');
  await chmod(packageDir, 0o755);
  const cgroups = await detectCgroups({ parentName: `tydra-bench-cold-${process.pid}` });
  try {
    if (cgroups.mode === 'none') {
      throw new Error(`this bench needs cgroups: ${cgroups.reason}`);
    }
    const sandbox = {
      packageDir,
      limits: DEFAULT_TASK_LIMITS,
      bwrap: await checkBwrap(),
      prlimit: findPrlimit(),
      runtimeDir: await installRuntime(dirname(packageDir)),
      cgroups,
      sandboxUser: defaultSandboxUser(),
    };
    const bare = (): Promise<unknown> => execa(process.execPath, ['-e', '0'], { extendEnv: false, env: {} });
    const floorOnce = await sandboxFloor(packageDir, dirname(packageDir));
    const sandboxFloorMs = (): Promise<number> => timed(floorOnce);
    const runner = async (): Promise<number> => {
      const start = performance.now();
      const child = execa(process.execPath, ['--disable-proto=delete', join(RUNTIME_DIR, RUNNER_FILE)], {
        stdio: ['pipe', 'ignore', 'ignore', 'pipe'],
        extendEnv: false,
        env: { TYDRA_WARM: '1' },
        reject: false,
      });
      await new Promise((resolve) => child.stdio[3].once('data', resolve));
      const ms = performance.now() - start;
      child.kill('SIGKILL');
      await child;
      return ms;
    };
    const makeCgroup = async (): Promise<number> => {
      const start = performance.now();
      const cgroup = await createTaskCgroup(cgroups, `task-${randomUUID()}`, { memoryBytes: 2 ** 28, pids: 64 });
      const ms = performance.now() - start;
      await cgroup.remove();
      return ms;
    };
    const migrate = async (): Promise<number> => {
      const cgroup = await createTaskCgroup(cgroups, `task-${randomUUID()}`, { memoryBytes: 2 ** 28, pids: 64 });
      const child = execa('sleep', ['30'], { reject: false });
      const ms = await timed(() => cgroup.addProcess(child.pid ?? 0));
      await cgroup.remove();
      await child;
      return ms;
    };
    // As a node runs it: the result counts at the runner's final message (`onTeardown`); `gone`
    // is when nothing of the sandbox is left (its exit, its cgroup's removal).
    const cold = async (module = 'noop.mjs'): Promise<{ result: number; gone: number }> => {
      let ended: Promise<void> = Promise.resolve();
      const start = performance.now();
      const task = { module };
      await runTask({
        ...sandbox,
        task,
        input: null,
        instanceId: randomUUID(),
        attempt: 1,
        onTeardown: (e) => {
          ended = e;
        },
      });
      const result = performance.now() - start;
      await ended;
      return { result, gone: performance.now() - start };
    };
    const claim = async (): Promise<number> => {
      const warm = await WarmSandbox.start({ ...sandbox, module: 'noop.mjs' });
      await warm.ready;
      const ms = await timed(() => warm.claim({ instanceId: randomUUID(), attempt: 1, input: null }));
      // Its teardown must not overlap the next round's samples (`bare` first).
      await warm.ended;
      return ms;
    };
    const series: Record<string, number[]> = {
      ...{ bare: [], sandboxFloor: [], runner: [], cgroup: [], migrate: [], cold: [], coldGone: [] },
      ...{ coldCommonJs: [], coldCommonJsGone: [], claim: [] },
    };
    for (let round = 0; round < WARMUP + rounds; round += 1) {
      const sample = {
        bare: await timed(bare),
        sandboxFloor: await sandboxFloorMs(),
        runner: await runner(),
        cgroup: await makeCgroup(),
        migrate: await migrate(),
        ...(await cold().then(({ result, gone }) => ({ cold: result, coldGone: gone }))),
        ...(await cold('noop.cjs').then(({ result, gone }) => ({ coldCommonJs: result, coldCommonJsGone: gone }))),
        claim: await claim(),
      };
      if (round >= WARMUP) {
        Object.entries(sample).forEach(([name, ms]) => series[name]?.push(ms));
      }
    }
    const medians = Object.fromEntries(Object.entries(series).map(([name, samples]) => [name, median(samples)]));
    const base = medians.bare ?? 1;
    const lines = Object.entries(medians).map(
      ([name, ms]) => `${name.padEnd(16)} ${ms.toFixed(1).padStart(7)} ms  ${(ms / base).toFixed(2)}x node -e 0`,
    );
    process.stdout.write(
      `cold start pieces (cgroup ${cgroups.mode}, ${rounds} rounds, medians)\n${lines.join('\n')}\n`,
    );
    process.stdout.write(`BENCH_COLD_JSON ${JSON.stringify({ cgroups: cgroups.mode, rounds, medians })}\n`);
  } finally {
    await removeCgroupParent(cgroups).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  }
}

await main();
