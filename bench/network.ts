/**
 * What a task's network costs at start: `runTask()` of a noop JS module and of a noop command,
 * each without a network and with one allowed endpoint (a loopback server of this script's own),
 * interleaved one to one (none, with, none, with, …) so a burst of load hits both alike. The
 * headline figures are the RATIOS with / without, per kind: a JavaScript task's runner serves the
 * endpoints in its own process, a command runs under a second Node process (the forwarder).
 * Plus the memory and threads of that forwarder, read from inside a sandbox.
 *
 * `node dist/bench/network.js` (after `npm run build`); run as root on a host with bwrap and
 * cgroups, as a node runs. Environment: BENCH_SPAWNS (default 20). The table goes to stdout,
 * then `BENCH_JSON {...}` as the last line.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { DEFAULT_TASK_LIMITS } from '../lib/core/limits.js';
import { defaultSandboxUser } from '../lib/node/options.js';
import { checkBwrap } from '../sandbox/launcher/bwrap.js';
import { detectCgroups, removeCgroupParent } from '../sandbox/launcher/cgroup/support.js';
import { findPrlimit } from '../sandbox/launcher/rlimits.js';
import { installRuntime } from '../sandbox/launcher/runtime-dir.js';
import { runTask, type TaskEntry } from '../sandbox/launcher/run-task.js';

const WARMUP = 3;
const SPAWNS = Number(process.env.BENCH_SPAWNS ?? 20);
/** Reports the forwarder's (its parent's) threads and resident memory, as the command's result. */
const PROBE = `import json, os
status = dict(line.split(":", 1) for line in open("/proc/%d/status" % os.getppid()).read().splitlines())
print(json.dumps({"threads": int(status["Threads"]), "rssKiB": int(status["VmRSS"].split()[0])}))
`;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tydra-bench-net-'));
  await chmod(dir, 0o755);
  const packageDir = join(dir, 'pkg');
  await mkdir(packageDir, { mode: 0o755 });
  await writeFile(join(packageDir, 'noop.mjs'), 'export default async () => 1;\n', { mode: 0o644 });
  await writeFile(join(packageDir, 'probe.py'), PROBE, { mode: 0o644 });
  const server = createServer((socket) => socket.end()).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const port = (server.address() as { port: number }).port;
  const cgroups = await detectCgroups({ parentName: `tydra-bench-net-${process.pid}` });
  try {
    const base = {
      packageDir,
      input: null,
      attempt: 1,
      limits: { ...DEFAULT_TASK_LIMITS, timeoutMs: 30_000, scratchBytes: 16 * 1024 * 1024 },
      bwrap: await checkBwrap(),
      prlimit: findPrlimit(),
      runtimeDir: await installRuntime(dirname(packageDir)),
      cgroups,
      sandboxUser: defaultSandboxUser(),
    };
    const network = { endpoints: [{ host: '127.0.0.1', port, allowed: true }] };
    let counter = 0;
    const time = async (task: TaskEntry, withNetwork: boolean): Promise<number> => {
      counter += 1;
      const started = performance.now();
      const instanceId = `bench-net-${counter}`;
      await runTask({ ...base, task, instanceId, ...(withNetwork ? { network } : {}) });
      return performance.now() - started;
    };
    const rows: Record<string, { withoutMs: number; withMs: number; ratio: number }> = {};
    const kinds: Record<string, TaskEntry> = {
      module: { module: 'noop.mjs' },
      command: { command: ['sh', '-c', 'echo 1'] },
    };
    for (const [kind, task] of Object.entries(kinds)) {
      const without: number[] = [];
      const withNet: number[] = [];
      for (let i = 0; i < WARMUP + SPAWNS; i += 1) {
        const a = await time(task, false);
        const b = await time(task, true);
        if (i >= WARMUP) {
          without.push(a);
          withNet.push(b);
        }
      }
      const row = { withoutMs: median(without), withMs: median(withNet), ratio: median(withNet) / median(without) };
      rows[kind] = row;
      process.stderr.write(`${kind}: ${JSON.stringify(row)}\n`);
    }
    const forwarder = await runTask({
      ...base,
      task: { command: ['python3', 'probe.py'] },
      instanceId: 'bench-net-probe',
      network,
    });
    console.log('| task kind | start without network (median) | with one endpoint | ratio |');
    console.log('| --- | --- | --- | --- |');
    for (const [kind, row] of Object.entries(rows)) {
      console.log(
        `| ${kind} | ${row.withoutMs.toFixed(1)} ms | ${row.withMs.toFixed(1)} ms | ${row.ratio.toFixed(2)}x |`,
      );
    }
    console.log(`command forwarder: ${JSON.stringify(forwarder)}`);
    console.log(`BENCH_JSON ${JSON.stringify({ spawns: SPAWNS, rows, forwarder })}`);
  } finally {
    server.close();
    await removeCgroupParent(cgroups).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
