/**
 * What starting a task costs in CPU on top of Node's own start, outside any sandbox, one process
 * at a time: `run.ts` sets it against the CPU per TaskInstance that its throughput target leaves
 * above the sandbox floor (bench/README.md, "What limits the throughput").
 *
 * Five kinds of process, in batches that take turns, so that a burst of load hits them alike:
 * - `bare`: `node -e 0` with an empty environment, the baseline's process;
 * - `loadModule` / `loadCommonJs`: Node that loads the no-op task the usual way (`import()`,
 *   `require()`) and calls it, and nothing else: what loading a task costs whoever runs it (the
 *   runner's `require()` of an ES module, `task-module.ts`, costs less than `import()`);
 * - `runnerModule` / `runnerCommonJs`: tydra's runner (`runner.cjs`) given the same task by its
 *   `start` message, to its result and its exit, let go as a node lets it go (`exit-hold.ts`).
 *
 * CPU is the processes' own (`measureCpu`'s children: the benchmark's cpuacct cgroup, else the
 * reaped children's times), in ms per process.
 */
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { execa } from 'execa';

import { RUNNER_FD, type RunnerMessage } from '../sandbox/protocol.js';
import { parseRunnerMessage } from '../sandbox/launcher/runner-message.js';
import { RUNNER_FILE, RUNTIME_DIR } from '../sandbox/launcher/runtime-dir.js';
import { startRunner } from '../sandbox/launcher/stream-capture.js';
import { type CpuSources, measureCpu } from './cpu-window.js';

export interface RunnerCpu {
  /** Processes per kind. */
  spawns: number;
  bareMs: number;
  loadModuleMs: number;
  loadCommonJsMs: number;
  runnerModuleMs: number;
  runnerCommonJsMs: number;
}

/** The task files `run.ts` writes into its package folder. */
export interface NoopTasks {
  packageDir: string;
  module: string;
  commonJs: string;
}

const ROUNDS = 3;

async function node(args: string[]): Promise<void> {
  await execa(process.execPath, args, { extendEnv: false, env: {} });
}

/** Runs tydra's runner on `module` to its result, then lets it go and waits for its exit. */
async function runner(packageDir: string, module: string): Promise<void> {
  const child = execa(process.execPath, ['--disable-proto=delete', join(RUNTIME_DIR, RUNNER_FILE)], {
    stdio: ['pipe', 'ignore', 'ignore', 'pipe'],
    extendEnv: false,
    env: { TYDRA_PACKAGE_DIR: packageDir },
  });
  const protocol = child.stdio[RUNNER_FD] as Duplex;
  // Read to the end (execa waits for every stream), answering at the final message.
  const final = new Promise<RunnerMessage | undefined>((resolve) => {
    let text = '';
    protocol.setEncoding('utf8');
    protocol.on('data', (chunk: string) => {
      text += chunk;
      const lines = text.split('\n');
      text = lines.pop() ?? '';
      const message = lines.map(parseRunnerMessage).find((m) => m?.type === 'result' || m?.type === 'error');
      if (message !== undefined) {
        resolve(message);
      }
    });
    protocol.once('end', () => resolve(undefined));
  });
  startRunner(child.stdin, { instanceId: 'bench-runner-cpu', attempt: 1, module, input: null }, undefined);
  const message = await final;
  protocol.end(); // let it go: it exits once fd 3 is half-closed
  await child;
  if (message?.type !== 'result' || message.value !== 1) {
    throw new Error(`Expected the no-op task's result 1 from the runner, got ${JSON.stringify(message)}`);
  }
}

/** CPU per process of each kind, over `ROUNDS` rounds of `spawns / ROUNDS` each, kinds taking turns. */
export async function measureRunnerCpu(sources: CpuSources, tasks: NoopTasks, spawns: number): Promise<RunnerCpu> {
  const moduleUrl = pathToFileURL(join(tasks.packageDir, tasks.module)).href;
  const commonJsPath = join(tasks.packageDir, tasks.commonJs);
  const kinds = {
    bareMs: () => node(['-e', '0']),
    loadModuleMs: () => node(['-e', `import(${JSON.stringify(moduleUrl)}).then((m) => m.default())`]),
    loadCommonJsMs: () => node(['-e', `require(${JSON.stringify(commonJsPath)})()`]),
    runnerModuleMs: () => runner(tasks.packageDir, tasks.module),
    runnerCommonJsMs: () => runner(tasks.packageDir, tasks.commonJs),
  };
  type Kind = keyof typeof kinds;
  const batch = Math.max(1, Math.round(spawns / ROUNDS));
  const totals = Object.fromEntries(Object.keys(kinds).map((kind) => [kind, 0])) as Record<Kind, number>;
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const [kind, once] of Object.entries(kinds) as Array<[Kind, () => Promise<void>]>) {
      const { cpu } = await measureCpu(sources, async () => {
        for (let i = 0; i < batch; i += 1) {
          await once();
        }
      });
      totals[kind] += cpu.children * cpu.wallMs;
    }
  }
  const perProcess = (total: number): number => Math.round((total / (batch * ROUNDS)) * 10) / 10;
  const result = { spawns: batch * ROUNDS } as RunnerCpu;
  for (const kind of Object.keys(totals) as Kind[]) {
    result[kind] = perProcess(totals[kind]);
  }
  return result;
}
