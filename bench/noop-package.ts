/**
 * The package the Redis and pool benchmarks run: one task `noop`, a JavaScript module that
 * returns 1, so what is measured is tydra's own cost per TaskInstance.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes package `name` (task `noop`) into `dir`, readable by the sandbox user. */
export async function makeNoopPackage(dir: string, name: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'noop.mjs'), 'export default async () => 1;\n');
  await writeFile(join(dir, 'tydra.json'), `${JSON.stringify({ name, tasks: { noop: { module: 'noop.mjs' } } })}\n`);
  await chmod(dir, 0o755);
}
