#!/usr/bin/env node
/**
 * Bundles what runs inside a sandbox into two self-contained CommonJS files, after `tsc`:
 *
 *   dist/sandbox/runtime/runner.cjs     the runner of a JavaScript task (sandbox/runner/main.ts)
 *   dist/sandbox/runtime/forwarder.cjs  a command task's network forwarder (sandbox/runner/forwarder.ts)
 *
 * and writes next to them `loader-warmup.mjs`, an empty ES module a pooled runner requires to
 * load Node's ES module loader before its claim (`LOADER_WARMUP_FILE` in sandbox/protocol.ts).
 *
 * Why: every TaskInstance starts a fresh Node, so the runner's own start is paid once per task.
 * As ES modules (six files, plus a package.json to say so) Node starts its ES module loader,
 * resolves and reads each file: about 10 ms of CPU more than `node -e 0` (docs/benchmarks.md,
 * 2026-12-01). One CommonJS file is read and compiled at once, and a CommonJS task then never
 * starts the ES module loader at all (`sandbox/runner/context.ts`, `loadExport`). Modules the
 * runner imports lazily (a parallel task's modes, the loopback forwarder and `node:net`) stay lazy:
 * esbuild wraps each in a function run on first use.
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const dist = fileURLToPath(new URL('../dist/sandbox/', import.meta.url));

await build({
  entryPoints: { runner: `${dist}runner/main.js`, forwarder: `${dist}runner/forwarder.js` },
  outdir: `${dist}runtime`,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Node's own modules only; the runner imports nothing else (eslint and check:deps keep it so).
  external: ['node:*'],
  logLevel: 'warning',
});

await writeFile(
  `${dist}runtime/loader-warmup.mjs`,
  "// tydra's own: a pooled runner requires it to load Node's ES module loader before its claim.\nexport {};\n",
);
