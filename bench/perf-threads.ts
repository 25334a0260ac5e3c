/**
 * Where one thread's time went, the kernel's share included, from `perf script` text: a V8 CPU
 * profile (`profile-summary.ts`) sees only JavaScript and native frames, so the fork of a sandbox
 * shows there as one long `ChildProcess.spawn`, and the page faults the fork causes afterwards
 * (a fork write-protects every page of the parent; its next write to each faults once) do not
 * show at all. Each sample goes to the first kernel entry on its stack: a system call, a page
 * fault, an interrupt's soft work; else user space. Also the first JavaScript frame of each.
 *
 *   perf record -F 499 -g -k CLOCK_MONOTONIC -o /tmp/perf.data -- node --perf-basic-prof dist/bench/run.js
 *   perf script -i /tmp/perf.data --tid <pid> --time <from>,<to> > /tmp/main.txt
 *   node dist/bench/perf-threads.js /tmp/main.txt <tasks>
 *
 * `<from>,<to>`: a throughput window as `run.js` prints it, in seconds (its µs / 1e6); `<tasks>`:
 * what ran in it (`BENCH_TASKS`), to print ms per task.
 */
import { readFile } from 'node:fs/promises';

interface Sample {
  /** The sample's period in ms (perf prints it in ns before the event name). */
  ms: number;
  /** Symbol names, leaf first. */
  frames: string[];
}

/** Kernel entries that name what the thread was doing, checked from the leaf up. */
function categoryOf(frames: readonly string[]): string {
  for (const frame of frames) {
    if (frame.startsWith('asm_exc_page_fault')) {
      return 'page fault';
    }
    if (frame.startsWith('handle_softirqs') || frame.startsWith('__irq_exit_rcu')) {
      return 'interrupts (soft work)';
    }
    const call = /^__(?:x64|do)_sys_(\w+)/.exec(frame);
    if (call !== null) {
      return `system call ${call[1] ?? ''}`;
    }
  }
  return 'user space';
}

/** The first JavaScript frame (`--perf-basic-prof` names them `JS:…`), without its offset. */
function firstJsFrame(frames: readonly string[]): string | undefined {
  const frame = frames.find((name) => name.startsWith('JS:'));
  return frame?.slice(3);
}

function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const [header, ...lines] = block.split('\n').filter((line) => line.trim() !== '');
    const period = /\s(\d+)\s+[\w-]+(?::\w+)?:\s*$/.exec(header ?? '');
    if (period === null) {
      continue;
    }
    const frames = lines.map((line) =>
      line
        .trim()
        .replace(/^[0-9a-f]+\s+/, '')
        .replace(/\+0x[0-9a-f]+\s.*$/, '')
        .replace(/\s\(.*\)$/, ''),
    );
    samples.push({ ms: Number(period[1]) / 1e6, frames });
  }
  return samples;
}

function table(title: string, totals: Map<string, number>, perTask: (ms: number) => string, limit = 15): string {
  const rows = [...totals].sort((a, b) => b[1] - a[1]).slice(0, limit);
  return [title, ...rows.map(([key, ms]) => `  ${perTask(ms).padStart(9)}  ${key}`)].join('\n');
}

async function main(): Promise<void> {
  const [file, tasksArg] = process.argv.slice(2);
  const tasks = Number(tasksArg ?? 1);
  if (file === undefined || !Number.isSafeInteger(tasks) || tasks <= 0) {
    throw new Error('Expected `perf-threads.js <perf script output> <tasks>`, with tasks a positive integer');
  }
  const samples = parseSamples(await readFile(file, 'utf8'));
  const byCategory = new Map<string, number>();
  const byJsFrame = new Map<string, number>();
  let total = 0;
  for (const { ms, frames } of samples) {
    total += ms;
    const category = categoryOf(frames);
    byCategory.set(category, (byCategory.get(category) ?? 0) + ms);
    const js = firstJsFrame(frames) ?? '(no JavaScript frame)';
    byJsFrame.set(js, (byJsFrame.get(js) ?? 0) + ms);
  }
  const perTask = (ms: number): string => `${(ms / tasks).toFixed(2)} ms`;
  process.stdout.write(
    [
      `${samples.length} samples, ${Math.round(total)} ms, ${perTask(total)} per task (${tasks} tasks)`,
      table('by the first kernel entry on the stack, per task:', byCategory, perTask),
      table('by the first JavaScript frame on the stack, per task:', byJsFrame, perTask),
    ].join('\n') + '\n',
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
