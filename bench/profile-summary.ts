/**
 * Reads a V8 CPU profile (`node --cpu-prof`) and says where the samples went, to find what limits
 * the end-to-end throughput (`bench/README.md`, "What limits the throughput"):
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/run.js
 *   node dist/bench/profile-summary.js /tmp/prof/CPU.*.cpuprofile [fromUs toUs [module]]
 *
 * `fromUs toUs` cut the profile to a window on the monotonic clock, as `run.ts` prints it for each
 * throughput run. Two tables: by the package of the function the sample was in (tydra, bullmq,
 * ioredis, node internals, GC, idle), and by the nearest tydra module on the stack (which role's
 * code led there: `lib/master`, `lib/node`, `lib/client`, `sandbox/launcher`…). Asynchronous
 * continuations start with a fresh stack, so a BullMQ worker loop's own work has no tydra caller.
 * With a `module` (`sandbox/launcher`), a third table: the functions on the stacks of that
 * module's samples, by inclusive time (each function counted once per sample), the top 30.
 */
import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** `bullmq`, `ioredis`, `tydra`, `node`, or V8's own `(garbage collector)`, `(idle)`, `(program)`. */
function packageOf(url: string, functionName: string): string {
  if (url === '') {
    return functionName.startsWith('(') ? functionName : '(native)';
  }
  const module = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (module !== undefined) {
    return module;
  }
  if (url.startsWith('node:')) {
    return 'node internals';
  }
  return url.includes('/dist/') ? 'tydra' : 'other';
}

/** `lib/master`, `lib/node`, `sandbox/launcher`, `bench`… for a file of tydra's build. */
function tydraModuleOf(url: string): string | undefined {
  const match = /\/dist\/((?:lib|sandbox|queues)\/[^/]+|bench)\//.exec(url);
  return match?.[1]?.replace(/\.js$/, '');
}

function table(title: string, counts: Map<string, number>, total: number): string {
  const rows = [...counts].sort((a, b) => b[1] - a[1]);
  return [
    title,
    ...rows.map(
      ([key, ms]) =>
        `  ${(Math.round(ms) + ' ms').padStart(9)}  ${((ms / total) * 100).toFixed(1).padStart(5)}%  ${key}`,
    ),
  ].join('\n');
}

/** `name file` of a frame, the file as its last two path parts. */
function frameName(node: ProfileNode): string {
  const { functionName, url } = node.callFrame;
  return `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}`;
}

/** Adds `ms` to every distinct function on the stack (leaf first) when one of its frames is in `module`. */
function addInclusive(stack: ProfileNode[], module: string, ms: number, into: Map<string, number>): void {
  if (!stack.some((node) => tydraModuleOf(node.callFrame.url) === module)) {
    return;
  }
  for (const name of new Set(stack.map(frameName))) {
    into.set(name, (into.get(name) ?? 0) + ms);
  }
}

async function main(): Promise<void> {
  const [file, fromArg, toArg, module] = process.argv.slice(2);
  if (file === undefined) {
    throw new Error('Expected a .cpuprofile path (and optionally fromUs toUs), got none');
  }
  const profile = JSON.parse(await readFile(file, 'utf8')) as Profile;
  const from = fromArg === undefined ? -Infinity : Number(fromArg);
  const to = toArg === undefined ? Infinity : Number(toArg);
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) {
      parent.set(child, node.id);
    }
  }
  const byPackage = new Map<string, number>();
  const byModule = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let at = profile.startTime;
  let total = 0;
  profile.samples.forEach((sample, index) => {
    const delta = profile.timeDeltas[index] ?? 0;
    at += delta;
    if (at < from || at > to) {
      return;
    }
    const ms = delta / 1000;
    total += ms;
    const leaf = byId.get(sample);
    const pkg = leaf === undefined ? '?' : packageOf(leaf.callFrame.url, leaf.callFrame.functionName);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + ms);
    const stack: ProfileNode[] = [];
    for (let id: number | undefined = sample; id !== undefined; id = parent.get(id)) {
      const node = byId.get(id);
      if (node !== undefined) {
        stack.push(node);
      }
    }
    const nearest = stack.map((node) => tydraModuleOf(node.callFrame.url)).find((name) => name !== undefined);
    const key = nearest ?? (pkg.startsWith('(') ? pkg : `no tydra caller (${pkg})`);
    byModule.set(key, (byModule.get(key) ?? 0) + ms);
    if (module !== undefined) {
      addInclusive(stack, module, ms, inclusive);
    }
  });
  const top = new Map([...inclusive].sort((a, b) => b[1] - a[1]).slice(0, 30));
  process.stdout.write(
    `${[
      `${Math.round(total)} ms of samples in the window`,
      table('by the package of the running function:', byPackage, total),
      table('by the nearest tydra module on the stack:', byModule, total),
      ...(module === undefined
        ? []
        : [table(`functions on the stacks of ${module}'s samples, inclusive:`, top, total)]),
    ].join('\n')}\n`,
  );
}

try {
  await main();
} catch (error) {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
}
