/**
 * The package-sync benchmark (part of `npm run bench`; alone: `node dist/bench/package-sync.js`).
 *
 * Builds a package of about 50 MiB compressed (BENCH_SYNC_FILES files, default 2,000: half
 * incompressible random bytes, half source-like text), deploys it to a private redis-server,
 * then interleaves BENCH_SYNC_RUNS rounds (default 5) of:
 *  - tydra: a node's first sync, `PackageCache.acquire` into an empty cache folder (download,
 *    SHA-1 check, checked extraction, tree digest, marker), exactly what a TaskInstance runs;
 *  - baseline, same process (the two alternate which goes first): GETRANGE of the same blob in the same chunk size, gunzip and
 *    tar-stream extraction writing every file, with no checks at all.
 * The headline is the ratio of the medians. Then the cache hit: `acquire` + `release` of the
 * synced version, BENCH_SYNC_HITS times (default 200), what every TaskInstance pays.
 * Progress goes to stderr; the table and `BENCH_SYNC_JSON {...}` go to stdout.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

import { Redis } from 'ioredis';
import { extract as tarExtract, type Header } from 'tar-stream';

import { startRedisServer } from '../lib/index.js';
import { silentLogger } from '../lib/core/logger.js';
import { PackageCache } from '../lib/packages/cache/package-cache.js';
import { compilePackageLimits } from '../lib/packages/limits.js';
import { packDirectory } from '../lib/packages/pack.js';
import { CHUNK_BYTES, PackageStore } from '../lib/packages/store.js';
import { createKeys } from '../lib/redis/keys.js';
import { envInt } from './env.js';

const MiB = 1024 * 1024;
const PACKAGE_NAME = 'syncbench';

function progress(message: string): void {
  process.stderr.write(`[bench:sync] ${message}\n`);
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const round = (value: number, digits = 1): number => Number(value.toFixed(digits));

/** Source-like text: compresses about 4:1 with gzip, like real code. */
function textFile(index: number, bytes: number): string {
  const words = ['const', 'return', 'function', 'await', 'value', 'index', 'result', 'export', 'import', 'error'];
  const lines: string[] = [];
  let size = 0;
  for (let line = 0; size < bytes; line += 1) {
    const text = `  ${words[(index + line) % 10]} item${line}_${(index * 7919 + line * 104729) % 100_003} = ${words[(line * 3) % 10]}(${line});\n`;
    lines.push(text);
    size += text.length;
  }
  return lines.join('').slice(0, bytes);
}

/** Writes the package tree: `files` files in 40 folders, 44 MiB random + 16 MiB text at 2,000 files. */
async function writePackage(dir: string, files: number): Promise<void> {
  await writeFile(
    join(dir, 'tydra.json'),
    JSON.stringify({ name: PACKAGE_NAME, tasks: { run: { module: 'run.mjs' } } }),
  );
  await writeFile(join(dir, 'run.mjs'), 'export default () => 1;\n');
  for (let i = 0; i < files; i += 1) {
    const folder = join(dir, `d${i % 40}`, `s${i % 7}`);
    await mkdir(folder, { recursive: true });
    if (i % 2 === 0) {
      await writeFile(join(folder, `blob${i}.bin`), randomBytes(Math.round((44 * MiB) / (files / 2))));
    } else {
      await writeFile(join(folder, `mod${i}.js`), textFile(i, Math.round((16 * MiB) / (files / 2))));
    }
  }
}

/** The baseline: GETRANGE in CHUNK_BYTES, gunzip, untar writing each file; no checks, no hashes. */
async function rawSync(redis: Redis, key: string, destination: string): Promise<void> {
  const length = await redis.strlen(key);
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < length; offset += CHUNK_BYTES) {
    chunks.push(await redis.getrangeBuffer(key, offset, Math.min(offset + CHUNK_BYTES, length) - 1));
  }
  const extractor = tarExtract();
  const consume = async (): Promise<void> => {
    for await (const entry of extractor) {
      const { header } = entry as { header: Header };
      const target = join(destination, header.name);
      if (header.type === 'directory') {
        await mkdir(target, { recursive: true });
        entry.resume();
        continue;
      }
      await mkdir(dirname(target), { recursive: true });
      const handle = await open(target, 'w', header.mode);
      for await (const chunk of entry) {
        await handle.write(chunk as Buffer);
      }
      await handle.close();
    }
  };
  await Promise.all([pipeline(Readable.from(chunks), createGunzip(), extractor), consume()]);
}

interface Measured {
  tydraMs: number[];
  rawMs: number[];
  hitMs: number[];
}

/**
 * One round: tydra's first sync into an empty cache folder and the baseline into an empty folder,
 * alternating which goes first (the second pays for writing back the first one's dirty pages).
 */
async function firstSyncs(root: string, redis: Redis, store: PackageStore, sha1: string, run: number) {
  const cache = new PackageCache(join(root, `cache${run}`), store, compilePackageLimits(), silentLogger(), 1024 * MiB);
  await cache.init();
  const rawDir = join(root, `raw${run}`);
  await mkdir(rawDir);
  const timed = { tydraMs: 0, rawMs: 0 };
  const tydraSync = async (): Promise<void> => {
    const started = performance.now();
    (await cache.acquire(PACKAGE_NAME, sha1)).release();
    timed.tydraMs = performance.now() - started;
  };
  const rawRun = async (): Promise<void> => {
    const started = performance.now();
    await rawSync(redis, createKeys().packageBlob(PACKAGE_NAME, sha1), rawDir);
    timed.rawMs = performance.now() - started;
  };
  for (const side of run % 2 === 0 ? [tydraSync, rawRun] : [rawRun, tydraSync]) {
    await side();
  }
  if (cache.downloads !== 1) {
    throw new Error(`Expected one download per first sync, got ${cache.downloads}`);
  }
  await rm(rawDir, { recursive: true, force: true });
  return { cache, ...timed };
}

/** Interleaved first syncs, then the hits on the last round's cache. */
async function measure(root: string, redis: Redis, store: PackageStore, sha1: string, runs: number, hits: number) {
  const measured: Measured = { tydraMs: [], rawMs: [], hitMs: [] };
  let cache: PackageCache | undefined;
  for (let run = 0; run < runs; run += 1) {
    if (cache !== undefined) {
      await rm(cache.dir, { recursive: true, force: true });
    }
    const result = await firstSyncs(root, redis, store, sha1, run);
    cache = result.cache;
    measured.tydraMs.push(result.tydraMs);
    measured.rawMs.push(result.rawMs);
    progress(`run ${run + 1}/${runs}: tydra ${Math.round(result.tydraMs)} ms, raw ${Math.round(result.rawMs)} ms`);
  }
  if (cache === undefined) {
    throw new Error('Expected at least one run');
  }
  for (let hit = 0; hit < hits + 10; hit += 1) {
    const started = performance.now();
    const lease = await cache.acquire(PACKAGE_NAME, sha1);
    lease.release();
    if (hit >= 10) {
      measured.hitMs.push(performance.now() - started); // the first 10 are warm-up
    }
  }
  await cache.idle();
  if (cache.downloads !== 1) {
    throw new Error(`Expected cache hits to download nothing, got ${cache.downloads - 1} more downloads`);
  }
  return measured;
}

async function main(): Promise<void> {
  const files = envInt('BENCH_SYNC_FILES', 2000);
  const runs = envInt('BENCH_SYNC_RUNS', 5);
  const hits = envInt('BENCH_SYNC_HITS', 200);
  const root = await mkdtemp(join(tmpdir(), 'tydra-bench-sync-'));
  const server = await startRedisServer({ dir: join(root, 'redis'), persist: false });
  const redis = new Redis(server.url);
  try {
    const source = join(root, 'source');
    await mkdir(source);
    await writePackage(source, files);
    const packed = await packDirectory(source, compilePackageLimits());
    const store = new PackageStore(redis, createKeys());
    await store.deploy(packed);
    progress(
      `deployed ${packed.entries} entries: ${round(packed.tarball.length / MiB)} MiB compressed, ${round(packed.unpackedBytes / MiB)} MiB unpacked`,
    );
    const loadBefore = loadavg();
    const measured = await measure(root, redis, store, packed.sha1, runs, hits);
    const results = {
      files,
      runs,
      hits,
      compressedMiB: round(packed.tarball.length / MiB),
      unpackedMiB: round(packed.unpackedBytes / MiB),
      chunkBytes: CHUNK_BYTES,
      tydraMs: Math.round(median(measured.tydraMs)),
      rawMs: Math.round(median(measured.rawMs)),
      ratio: round(median(measured.tydraMs) / median(measured.rawMs), 2),
      // Disk write-back makes both sides swing by seconds; what tydra adds per round swings less.
      overheadMs: Math.round(median(measured.tydraMs.map((ms, index) => ms - (measured.rawMs[index] ?? 0)))),
      hitMedianMs: round(median(measured.hitMs), 3),
      hitP95Ms: round([...measured.hitMs].sort((a, b) => a - b)[Math.floor(measured.hitMs.length * 0.95)] ?? 0, 3),
      loadavg: [...loadBefore, ...loadavg()].map((value) => round(value, 2)),
    };
    process.stdout.write(
      [
        '',
        `tydra bench:sync: ${results.compressedMiB} MiB package (${results.unpackedMiB} MiB unpacked, ${packed.entries} entries)`,
        '| | tydra | raw GETRANGE + gunzip + untar | ratio | tydra − raw, median per round |',
        '|---|---|---|---|---|',
        `| first sync, median of ${runs} interleaved | ${results.tydraMs} ms | ${results.rawMs} ms | ${results.ratio}x | ${results.overheadMs} ms |`,
        `| cache hit (acquire + release), median / p95 of ${hits} | ${results.hitMedianMs} / ${results.hitP95Ms} ms | | | |`,
        `load average before ${results.loadavg.slice(0, 3).join(' ')}, after ${results.loadavg.slice(3).join(' ')}`,
        '',
        `BENCH_SYNC_JSON ${JSON.stringify(results)}`,
        '',
      ].join('\n'),
    );
  } finally {
    redis.disconnect();
    await server.stop();
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  progress(`FAILED: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
});
