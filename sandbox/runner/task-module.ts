/**
 * Loads a task's module the way Node would import it, but with `require()` where that gives the
 * same exports: `import()` starts the whole of Node's ES module loader (resolution, formats, an
 * asynchronous module job), 5 to 9 ms of CPU in a fresh runner (docs/benchmarks.md, 2026-12-01).
 *
 * - A CommonJS module (on grounds Node states: a `.cjs` file, or a `.js` file whose nearest
 *   package.json, up to the package's root, says `"type": "commonjs"`) is required: no ES module
 *   machinery loads at all. Its default export is its `module.exports`, as `import()` gives it.
 * - Any other module is required too where Node can require an ES module (`process.features
 *   .require_module`: Node 20.19, 22.12 and later), which links and evaluates it synchronously and
 *   loads a third of the loader; a graph with top-level await cannot be required (Node says so
 *   before evaluating any of it) and is imported instead. On older Node it is imported.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { types } from 'node:util';

import { LOADER_WARMUP_FILE } from '../protocol.js';

/** A module's exports by name, as `import()` gives them. */
export type ModuleExports = Record<string, unknown>;

/** Whether Node reads `file` (absolute, under `root`) as CommonJS by its extension or its package.json. */
export function isCommonJs(file: string, root: string): boolean {
  const extension = extname(file);
  if (extension === '.cjs') {
    return true;
  }
  if (extension !== '.js') {
    return false;
  }
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const type = packageType(join(dir, 'package.json'));
    if (type !== undefined) {
      return type === 'commonjs';
    }
    if (dir === root || relative(root, dir).startsWith('..') || dir === dirname(dir)) {
      return false;
    }
  }
}

/**
 * The `type` of a package.json: a string (`''` when it has none), or undefined when there is no
 * such file. A package.json that cannot be read as JSON counts as "not CommonJS" (`'unreadable'`),
 * so Node's own loading of the module reports it.
 */
function packageType(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    const type = typeof parsed === 'object' && parsed !== null ? (parsed as { type?: unknown }).type : undefined;
    return typeof type === 'string' ? type : '';
  } catch {
    return 'unreadable';
  }
}

/** The exports of the task module at `file` (absolute, under the package's `root`). */
export async function loadTaskModule(
  file: string,
  root: string,
  requireEsm = process.features.require_module,
): Promise<ModuleExports> {
  // Where Node requires ES modules too, which format it is does not matter: no package.json is read.
  if (requireEsm || isCommonJs(file, root)) {
    try {
      return exportsOf(createRequire(file)(file));
    } catch (error) {
      // Only an ES module graph with top-level await, which Node refused before evaluating any of it.
      if ((error as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ASYNC_MODULE') {
        throw error;
      }
    }
  }
  return (await import(pathToFileURL(file).href)) as ModuleExports;
}

/**
 * In a pooled runner, before its claim: when the task module at `file` is not CommonJS and Node
 * requires ES modules, requires tydra's own empty ES module from `runtimeDir`. That loads the
 * part of Node's ES module loader the task's `require()` needs (about 2.5 ms of a claim on the
 * 2-core benchmark machine), while the runner waits anyway. No task code runs: the task module is
 * loaded only at the claim. Returns whether it warmed up; a failure only leaves the loader cold.
 */
export function warmUpLoader(
  file: string,
  root: string,
  runtimeDir: string,
  requireEsm = process.features.require_module,
): boolean {
  if (!requireEsm || isCommonJs(file, root)) {
    return false;
  }
  const warmup = join(runtimeDir, LOADER_WARMUP_FILE);
  try {
    createRequire(warmup)(warmup);
    return true;
  } catch {
    return false;
  }
}

/** What `require()` gave, as `import()` gives it: an ES module's namespace, or a CommonJS module's exports. */
function exportsOf(value: unknown): ModuleExports {
  if (types.isModuleNamespaceObject(value)) {
    return value as ModuleExports;
  }
  // As `import()` of a CommonJS module: `default` is `module.exports`, the rest its properties.
  const named = (typeof value === 'object' || typeof value === 'function') && value !== null ? value : {};
  return { ...(named as ModuleExports), default: value };
}
