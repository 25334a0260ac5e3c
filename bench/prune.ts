/**
 * The prune benchmark: `npm run bench:prune` (build, then `node dist/bench/prune.js`).
 *
 * Deploys BENCH_PACKAGES packages (default 1,000) × BENCH_VERSIONS versions (default 5) through
 * the client, on a private redis-server, then times:
 *  - a steady-state prune pass (grace 10 minutes: every version is kept, nothing changes);
 *  - a removing pass (grace 0: every version but each package's latest is deleted);
 * each next to a baseline measured in the same process on the same data: a plain SCAN walk
 * over every key in Redis (what any pass over the keyspace must at least cost). The headline
 * is the ratio. Progress goes to stderr; the table and `BENCH_JSON {...}` go to stdout.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { Redis } from 'ioredis';

import { startRedisServer, Tydra } from '../lib/index.js';
import { prunePackages } from '../lib/packages/pruner.js';
import { createKeys } from '../lib/redis/keys.js';
import { envInt } from './env.js';

function progress(message: string): void {
  process.stderr.write(`[bench:prune] ${message}\n`);
}

async function scanAll(redis: Redis): Promise<number> {
  let cursor = '0';
  let keys = 0;
  do {
    const [next, batch] = await redis.scan(cursor, 'COUNT', 200);
    cursor = next;
    keys += batch.length;
  } while (cursor !== '0');
  return keys;
}

async function main(): Promise<void> {
  const packages = envInt('BENCH_PACKAGES', 1000);
  const versions = envInt('BENCH_VERSIONS', 5);
  const root = await mkdtemp(join(tmpdir(), 'tydra-bench-prune-'));
  const server = await startRedisServer({ dir: join(root, 'redis'), persist: false });
  const tydra = new Tydra({ redis: server.url, deployLeaseMs: 1 });
  const redis = new Redis(server.url);
  try {
    progress(`private redis-server on ${server.url}; deploying ${packages} packages × ${versions} versions`);
    const started = performance.now();
    const workers = 8;
    let next = 0;
    await Promise.all(
      Array.from({ length: workers }, async () => {
        for (let p = next++; p < packages; p = next++) {
          const dir = join(root, `p${p}`);
          await mkdir(dir, { recursive: true });
          await writeFile(
            join(dir, 'tydra.json'),
            JSON.stringify({ name: `p${p}`, tasks: { run: { module: 'run.mjs' } } }),
          );
          for (let v = 0; v < versions; v += 1) {
            await writeFile(join(dir, 'run.mjs'), `export default () => ${v};\n`);
            await tydra.deploy(dir);
          }
        }
      }),
    );
    progress(
      `deployed ${packages * versions} versions in ${Math.round(performance.now() - started)} ms; ${await redis.dbsize()} keys`,
    );
    await new Promise((resolve) => setTimeout(resolve, 20)); // every deploy lease (1 ms) is over

    const rounds = 3;
    const scanMs: number[] = [];
    const steadyMs: number[] = [];
    for (let i = 0; i < rounds; i += 1) {
      let t = performance.now();
      await scanAll(redis);
      scanMs.push(performance.now() - t);
      t = performance.now();
      const report = await prunePackages(redis, createKeys(), { graceMs: 10 * 60_000 });
      steadyMs.push(performance.now() - t);
      if (report.removed.length !== 0 || report.versions !== packages * versions) {
        throw new Error(
          `Expected a steady pass to keep all ${packages * versions} versions, got ${report.removed.length} removed of ${report.versions}`,
        );
      }
    }
    const keysBefore = await redis.dbsize();
    let t = performance.now();
    await scanAll(redis);
    const scanBeforeRemoval = performance.now() - t;
    t = performance.now();
    const removal = await prunePackages(redis, createKeys(), { graceMs: 0 });
    const removalMs = performance.now() - t;
    if (removal.removed.length !== packages * (versions - 1)) {
      throw new Error(
        `Expected the removing pass to delete ${packages * (versions - 1)} versions, got ${removal.removed.length}`,
      );
    }
    const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
    const results = {
      packages,
      versions,
      keys: keysBefore,
      steady: {
        pruneMs: Math.round(median(steadyMs)),
        scanMs: Math.round(median(scanMs)),
        ratio: Number((median(steadyMs) / median(scanMs)).toFixed(1)),
        perVersionUs: Math.round((median(steadyMs) * 1000) / (packages * versions)),
      },
      removing: {
        pruneMs: Math.round(removalMs),
        scanMs: Math.round(scanBeforeRemoval),
        ratio: Number((removalMs / scanBeforeRemoval).toFixed(1)),
        removed: removal.removed.length,
      },
      keysAfter: await redis.dbsize(),
    };
    process.stdout.write(
      [
        '',
        `tydra bench:prune: ${packages} packages × ${versions} versions (${keysBefore} keys)`,
        '| pass | prune | SCAN of every key (baseline) | ratio | per version |',
        '|---|---|---|---|---|',
        `| steady (nothing eligible), median of ${rounds} | ${results.steady.pruneMs} ms | ${results.steady.scanMs} ms | ${results.steady.ratio}x | ${results.steady.perVersionUs} µs |`,
        `| removing ${results.removing.removed} versions | ${results.removing.pruneMs} ms | ${results.removing.scanMs} ms | ${results.removing.ratio}x | ${Math.round((removalMs * 1000) / (packages * versions))} µs |`,
        '',
        `BENCH_JSON ${JSON.stringify(results)}`,
        '',
      ].join('\n'),
    );
  } finally {
    await tydra.close();
    redis.disconnect();
    await server.stop();
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  progress(`FAILED: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
});
