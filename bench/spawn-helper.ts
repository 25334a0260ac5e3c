/**
 * Would a spawner process pay? A design probe, not run by `npm run bench` (alone: `npm run build
 * && node dist/bench/spawn-helper.js`).
 *
 * libuv forks on Linux, and a fork costs the parent time in proportion to its memory (docs/
 * benchmarks.md). A small helper process could do the node's forks and hand each sandbox's pipes
 * back as handles over Node's IPC channel. This measures that hand-back against a spawn in the
 * process itself, from a process grown to BENCH_SPAWN_RSS_MIB (default 120) of RSS. Each of
 * BENCH_SPAWN_ROUNDS (default 60) rounds spawns `/bin/cat` with six pipes, as a sandbox has, both
 * ways in turn. It reports, as medians:
 *
 * - in the process: how long `spawn()` blocks the main thread, the time until the child has
 *   exited, and the main thread's CPU;
 * - through the helper: how long the request blocks, when all six pipes are in hand, the time
 *   until the child has exited, and this process's CPU (the helper's own is not counted: it runs
 *   on the other core).
 *
 * `cat` exits when its stdin ends, which happens once all six pipes are in hand.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

import { envInt } from './env.js';

const PIPES = 6;
const STDIO = Array.from({ length: PIPES }, () => 'pipe' as const);
const FILE = '/bin/cat';

interface Request {
  id: number;
}
interface Reply {
  id: number;
  fd?: number;
  exited?: boolean;
}

/** The helper: spawns on request, sends each pipe back as a handle, then the exit. */
function serveAsHelper(): void {
  process.on('message', ({ id }: Request) => {
    const child = spawn(FILE, [], { stdio: STDIO, env: {}, detached: true });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let pending = PIPES;
    for (let fd = 0; fd < PIPES; fd += 1) {
      // Each handle waits for the parent's acknowledgement before the next goes (Node's protocol).
      process.send?.({ id, fd } satisfies Reply, child.stdio[fd] as Socket, {}, () => {
        pending -= 1;
        if (pending === 0) {
          void exited.then(() => process.send?.({ id, exited: true } satisfies Reply));
        }
      });
    }
  });
}

interface Sample {
  blockMs: number;
  readyMs: number;
  exitMs: number;
  cpuMs: number;
}

function cpuSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

async function inProcess(): Promise<Sample> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const child = spawn(FILE, [], { stdio: STDIO, env: {}, detached: true });
  const blockMs = performance.now() - start;
  for (const stream of child.stdio.slice(1)) {
    (stream as Socket).resume();
  }
  child.stdin?.end();
  await new Promise((resolve) => child.once('close', resolve));
  return { blockMs, readyMs: blockMs, exitMs: performance.now() - start, cpuMs: cpuSince(cpu) };
}

function viaHelper(helper: ChildProcess, id: number): Promise<Sample> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  let readyMs = 0;
  let received = 0;
  let stdin: Socket | undefined;
  const done = new Promise<void>((resolve, reject) => {
    const onMessage = (reply: Reply, handle?: Socket): void => {
      if (reply.id !== id) {
        return;
      }
      if (reply.exited === true) {
        helper.off('message', onMessage);
        resolve();
        return;
      }
      if (handle === undefined) {
        reject(new Error(`Expected a pipe handle for fd ${reply.fd}, got none`));
        return;
      }
      handle.on('error', () => undefined);
      if (reply.fd === 0) {
        stdin = handle;
      } else {
        handle.resume();
      }
      received += 1;
      if (received === PIPES) {
        readyMs = performance.now() - start;
        stdin?.end();
      }
    };
    helper.on('message', onMessage);
  });
  helper.send({ id } satisfies Request);
  const blockMs = performance.now() - start;
  return done.then(() => ({ blockMs, readyMs, exitMs: performance.now() - start, cpuMs: cpuSince(cpu) }));
}

function median(samples: Sample[], key: keyof Sample): string {
  const sorted = samples.map((sample) => sample[key]).sort((a, b) => a - b);
  return (sorted[Math.floor(sorted.length / 2)] ?? 0).toFixed(2);
}

async function main(): Promise<void> {
  const targetMiB = envInt('BENCH_SPAWN_RSS_MIB', 120);
  const rounds = envInt('BENCH_SPAWN_ROUNDS', 60);
  const ballast: object[][] = [];
  while (process.memoryUsage.rss() / 2 ** 20 < targetMiB) {
    ballast.push(Array.from({ length: 65_536 }, (_, index) => ({ index })));
  }
  const helper = fork(fileURLToPath(import.meta.url), ['helper'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const local: Sample[] = [];
  const remote: Sample[] = [];
  for (let round = 0; round < rounds; round += 1) {
    local.push(await inProcess());
    remote.push(await viaHelper(helper, round));
  }
  helper.kill();
  const rss = (process.memoryUsage.rss() / 2 ** 20).toFixed(0);
  process.stdout.write(
    [
      `spawn of ${FILE} with ${PIPES} pipes from a process of ${rss} MiB RSS (${ballast.length} ballast arrays), medians of ${rounds}:`,
      `  in the process: main thread blocked ${median(local, 'blockMs')} ms, exited after ${median(local, 'exitMs')} ms, CPU ${median(local, 'cpuMs')} ms`,
      `  via a helper:   main thread blocked ${median(remote, 'blockMs')} ms, pipes in hand after ${median(remote, 'readyMs')} ms, exited after ${median(remote, 'exitMs')} ms, CPU here ${median(remote, 'cpuMs')} ms`,
      '',
    ].join('\n'),
  );
}

if (process.argv[2] === 'helper') {
  serveAsHelper();
} else {
  try {
    await main();
  } catch (error) {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  }
}
