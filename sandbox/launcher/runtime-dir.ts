/**
 * What tydra puts into every sandbox, read-only at `/opt/tydra`: two self-contained CommonJS
 * files that `npm run build` bundles from `sandbox/runner/` (`scripts/bundle-runtime.mjs`), the
 * runner of a JavaScript task and a command task's network forwarder, and an empty ES module a
 * pooled runner loads to warm up Node's ES module loader. They import nothing but Node's own
 * modules.
 *
 * A node installs them next to its package cache: bubblewrap, running as the unprivileged
 * sandbox user, must be able to reach the folder it mounts, and tydra's own install folder may
 * sit under `/root` or another private folder (the cache folder is checked to be reachable). The
 * copy is replaced at every node start (written into a temporary folder, then renamed).
 */
import { copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { LOADER_WARMUP_FILE } from '../protocol.js';

/** The bundles of this install (`dist/sandbox/runtime`). */
export const RUNTIME_DIR = fileURLToPath(new URL('../runtime', import.meta.url));
/** The runner of a JavaScript task: `node runner.cjs [network.json]` (`sandbox/runner/main.ts`). */
export const RUNNER_FILE = 'runner.cjs';
/** A command task's network forwarder: `node forwarder.cjs <config.json> <command…>` (`sandbox/runner/forwarder.ts`). */
export const FORWARDER_FILE = 'forwarder.cjs';

/** Copies the runtime into `<cacheDir>/.runtime` and returns that folder. */
export async function installRuntime(cacheDir: string): Promise<string> {
  const target = join(cacheDir, '.runtime');
  const temporary = join(cacheDir, `.runtime-new-${process.pid}`);
  await rm(temporary, { recursive: true, force: true });
  await mkdir(temporary, { recursive: true, mode: 0o755 });
  for (const file of [RUNNER_FILE, FORWARDER_FILE, LOADER_WARMUP_FILE]) {
    await copyFile(join(RUNTIME_DIR, file), join(temporary, file));
  }
  await rm(target, { recursive: true, force: true });
  await rename(temporary, target);
  return target;
}
