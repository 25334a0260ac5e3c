/** Finds processes by an environment variable, through /proc (the tests run as root). */
import { readdir, readFile } from 'node:fs/promises';

/**
 * PIDs of live processes with `value` among their arguments. A sandbox that bwrap cloned but has
 * not started yet still has bwrap's argv (which names the TaskInstance), not the task's environment.
 */
export async function pidsWithArg(value: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) {
      continue;
    }
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').includes(value)) {
      pids.push(Number(entry));
    }
  }
  return pids;
}

/**
 * PIDs of live processes whose environment holds `name=value`, or whose title is `name=value`:
 * a pooled runner gets its TaskInstance's variables after it started, so its environment block
 * does not show them, and it takes `TYDRA_INSTANCE_ID=<id>` as its title instead (`task-runner.ts`).
 */
export async function pidsWithEnv(name: string, value: string): Promise<number[]> {
  const needle = `${name}=${value}`;
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const environ = await readFile(`/proc/${entry}/environ`, 'utf8');
      const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8');
      if (environ.split('\0').includes(needle) || cmdline.split('\0')[0] === needle) {
        pids.push(Number(entry));
      }
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids;
}
