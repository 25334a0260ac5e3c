/**
 * The package the Redis and pool benchmarks run: task `noop`, a JavaScript module that returns 1,
 * so what is measured is tydra's own cost per TaskInstance; `noop-cjs`, the same as CommonJS
 * (which the runner loads without Node's ES module loader).
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes package `name` (tasks `noop` and `noop-cjs`) into `dir`, readable by the sandbox user. */
export async function makeNoopPackage(dir: string, name: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'noop.mjs'), 'export default async () => 1;\n');
  await writeFile(join(dir, 'noop.cjs'), 'module.exports = async () => 1;\n');
  const tasks = { noop: { module: 'noop.mjs' }, 'noop-cjs': { module: 'noop.cjs' } };
  await writeFile(join(dir, 'tydra.json'), `${JSON.stringify({ name, tasks })}\n`);
  await chmod(dir, 0o755);
}
