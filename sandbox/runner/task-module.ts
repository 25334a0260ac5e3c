/**
 * Loads a task's module the way Node would import it, but a CommonJS module with `require()`:
 * `import()` starts Node's ES module loader, which costs a fresh runner about as much CPU again as
 * the rest of its start (docs/benchmarks.md, 2026-12-01), and a CommonJS module does not need it.
 *
 * Only modules Node reads as CommonJS on grounds it states go through `require()`: a `.cjs` file,
 * or a `.js` file whose nearest package.json (up to the package's root) says `"type": "commonjs"`.
 * Everything else (`.mjs`, `"type": "module"`, a package.json without `type`, where recent Node
 * versions guess from the syntax) is imported as before. What the task gets is the same either
 * way: the default export of a CommonJS module is its `module.exports`.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

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
 * so `import()` reports it as Node does.
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
export async function loadTaskModule(file: string, root: string): Promise<ModuleExports> {
  if (!isCommonJs(file, root)) {
    return (await import(pathToFileURL(file).href)) as ModuleExports;
  }
  const value = createRequire(file)(file) as unknown;
  // As `import()` of a CommonJS module: `default` is `module.exports`, the rest its properties.
  const named = (typeof value === 'object' || typeof value === 'function') && value !== null ? value : {};
  return { ...(named as ModuleExports), default: value };
}
