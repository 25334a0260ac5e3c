/**
 * Installs the in-sandbox runner next to a node's package cache. The runner is mounted
 * read-only into every sandbox, and bubblewrap, running as the unprivileged sandbox user, must
 * be able to reach its folder: tydra's own install folder may sit under `/root` or another
 * private folder, the cache folder is checked to be reachable. The copy is a few small files,
 * replaced at every node start (write into a temporary folder, then rename).
 */
import { copyFile, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The compiled `sandbox/` folder of this install. */
const SOURCE = fileURLToPath(new URL('..', import.meta.url));

/** Copies the runner into `<cacheDir>/.runtime` and returns that folder. */
export async function installRuntime(cacheDir: string): Promise<string> {
  const target = join(cacheDir, '.runtime');
  const temporary = join(cacheDir, `.runtime-new-${process.pid}`);
  await rm(temporary, { recursive: true, force: true });
  await mkdir(join(temporary, 'runner'), { recursive: true, mode: 0o755 });
  // What the runner needs: the protocol and the runner's own modules, nothing of the launcher.
  const runnerFiles = (await readdir(join(SOURCE, 'runner'))).filter((name) => name.endsWith('.js'));
  for (const file of ['protocol.js', ...runnerFiles.map((name) => `runner/${name}`)]) {
    await copyFile(join(SOURCE, file), join(temporary, file));
  }
  // ES modules: the repository's package.json with "type": "module" is not in the sandbox.
  await writeFile(join(temporary, 'package.json'), '{ "type": "module" }\n', { mode: 0o644 });
  await rm(target, { recursive: true, force: true });
  await rename(temporary, target);
  return target;
}
