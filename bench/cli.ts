/**
 * How fast the `tydra` CLI starts: `npm run bench` runs it after `run.js` and `parallel.js`
 * (alone: `npm run build && node dist/bench/cli.js`).
 *
 * Each command's time is from spawn to exit of `node dist/bin/tydra.js <args>`, against two
 * baselines run in the same rounds: `node -e "require('bullmq')"` (what any BullMQ tool pays to
 * start; the goal is every command ≤ 1.3× of it) and a bare `node -e 0`. The series are
 * interleaved (one run of each per round, the order rotating every round) so a burst of load on
 * a shared machine hits them all alike; the headline figure is the ratio of medians.
 *
 * Every process gets an empty environment, like the `node -e 0` baseline of `run.ts`: an inherited
 * NODE_OPTIONS or NODE_EXTRA_CA_CERTS would add the same tens of ms to every series.
 *
 * Environment: BENCH_CLI_RUNS (rounds, default 15); BENCH_CLI_COMPARE, the path of another build's
 * `dist/bin/tydra.js` (say main's, before a change), adds its `--help` and `node --help` to the rounds. Progress goes to stderr; the table and, as the
 * very last line, `BENCH_CLI_JSON {...}` go to stdout.
 */
import { spawn } from 'node:child_process';
import { availableParallelism, cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const WARMUP = 2;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = fileURLToPath(new URL('../bin/tydra.js', import.meta.url));

interface Series {
  label: string;
  args: string[];
  baseline?: boolean;
}

const SERIES: Series[] = [
  { label: 'node -e "require(\'bullmq\')"', args: ['-e', "require('bullmq')"], baseline: true },
  { label: 'node -e 0', args: ['-e', '0'], baseline: true },
  { label: 'tydra --help', args: [CLI, '--help'] },
  { label: 'tydra status --help', args: [CLI, 'status', '--help'] },
  { label: 'tydra node --help', args: [CLI, 'node', '--help'] },
  { label: 'tydra --version', args: [CLI, '--version'] },
];
// Another build of the CLI (say main's, before a change), measured in the same rounds.
const COMPARE = process.env.BENCH_CLI_COMPARE;
if (COMPARE !== undefined && COMPARE !== '') {
  SERIES.push(
    { label: 'compared: tydra --help', args: [COMPARE, '--help'] },
    { label: 'compared: tydra node --help', args: [COMPARE, 'node', '--help'] },
  );
}

interface Row {
  label: string;
  medianMs: number;
  minMs: number;
  vsBullmq: number;
  vsBareNode: number;
}

function progress(message: string): void {
  process.stderr.write(`[bench:cli] ${message}\n`);
}

function runsFromEnv(): number {
  const raw = process.env.BENCH_CLI_RUNS;
  const value = raw === undefined || raw === '' ? 15 : Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`Expected BENCH_CLI_RUNS to be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** Spawn to exit, in ms; a non-zero exit fails the bench (a command that errors is not "fast"). */
function timeRun(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { cwd: ROOT, env: {}, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - started;
      if (code !== 0) {
        reject(new Error(`Expected \`node ${args.join(' ')}\` to exit 0, got ${code}: ${stderr.trim()}`));
        return;
      }
      resolve(ms);
    });
  });
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

const round = (value: number, digits = 2): number => Math.round(value * 10 ** digits) / 10 ** digits;

async function measure(runs: number): Promise<Map<string, number[]>> {
  const samples = new Map(SERIES.map((s) => [s.label, [] as number[]]));
  for (let r = -WARMUP; r < runs; r += 1) {
    // Rotate the order, so no series always runs right after the same one.
    const shift = ((r % SERIES.length) + SERIES.length) % SERIES.length;
    const order = [...SERIES.slice(shift), ...SERIES.slice(0, shift)];
    for (const series of order) {
      const ms = await timeRun(series.args);
      if (r >= 0) {
        samples.get(series.label)?.push(ms);
      }
    }
  }
  return samples;
}

function table(rows: Row[]): string {
  const header = ['command', 'median ms', 'min ms', 'vs bullmq', 'vs node -e 0'];
  const body = rows.map((r) => [
    r.label,
    r.medianMs.toFixed(1),
    r.minMs.toFixed(1),
    `${r.vsBullmq.toFixed(2)}x`,
    `${r.vsBareNode.toFixed(2)}x`,
  ]);
  const all = [header, ...body];
  const widths = header.map((_, col) => Math.max(...all.map((row) => (row[col] ?? '').length)));
  const line = (row: string[]): string =>
    row.map((cell, col) => (col === 0 ? cell.padEnd(widths[col] ?? 0) : cell.padStart(widths[col] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

async function main(): Promise<void> {
  const runs = runsFromEnv();
  progress(`${SERIES.length} series, ${runs} interleaved rounds after ${WARMUP} warm-up rounds`);
  const samples = await measure(runs);
  const medianOf = (label: string): number => median(samples.get(label) ?? []);
  const bullmq = medianOf(SERIES[0]?.label ?? '');
  const bare = medianOf(SERIES[1]?.label ?? '');
  const rows: Row[] = SERIES.map((s) => {
    const values = samples.get(s.label) ?? [];
    const med = median(values);
    return {
      label: s.label,
      medianMs: round(med, 1),
      minMs: round(Math.min(...values), 1),
      vsBullmq: round(med / bullmq),
      vsBareNode: round(med / bare),
    };
  });
  const commands = rows.filter(
    (r) => !SERIES.find((s) => s.label === r.label)?.baseline && !r.label.startsWith('compared'),
  );
  const worst = Math.max(...commands.map((r) => r.vsBullmq));
  const cpu = cpus()[0];
  const host = { node: process.version, cpus: availableParallelism(), cpuModel: cpu?.model.trim() ?? 'unknown' };
  process.stdout.write(
    `\ntydra CLI start: node ${host.node}, ${host.cpus} CPUs (${host.cpuModel}); n=${runs} per series, empty env\n` +
      `${table(rows)}\n` +
      `slowest command: ${worst.toFixed(2)}x the bullmq baseline (goal <= 1.3x)\n\n`,
  );
  process.stdout.write(
    `BENCH_CLI_JSON ${JSON.stringify({ runs, warmup: WARMUP, host, rows, worstVsBullmq: worst })}\n`,
  );
}

try {
  await main();
} catch (error) {
  progress(`FAILED: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
}
