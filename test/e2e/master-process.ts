/** A master in its own process (`tydra master`), killed after the test. */
import { execa } from 'execa';

import { CLI, defer, redisUrl, waitFor } from '../helpers.js';

/** Starts `tydra master` with `flags` on the test Redis and waits until it says it started. */
export async function startMasterProcess(flags: string[]): Promise<void> {
  const master = execa(process.execPath, [CLI, 'master', '--redis', redisUrl(), ...flags], {
    reject: false,
    extendEnv: false,
    env: { PATH: process.env.PATH ?? '' },
  });
  defer(async () => {
    master.kill('SIGKILL');
    await master;
  });
  let stderr = '';
  master.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await waitFor('the master to start', () => (stderr.includes('master started') ? true : undefined), 20_000);
}
