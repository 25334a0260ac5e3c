import { execa } from 'execa';

import { CLI } from '../helpers.js';

/** Runs the compiled CLI with a clean environment (no TYDRA_REDIS_URL leaking in) and waits for it to exit. */
export function tydra(args: string[], options: { cwd?: string; env?: Record<string, string>; input?: string } = {}) {
  return execa(process.execPath, [CLI, ...args], {
    reject: false,
    cwd: options.cwd,
    extendEnv: false,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...options.env },
    timeout: 60_000,
    ...(options.input !== undefined ? { input: options.input } : {}),
  });
}

/**
 * Runs the CLI with raw argument bytes: Node encodes string arguments as UTF-8, so invalid UTF-8
 * can only reach a process through something like `xargs -0`, which reads them from stdin.
 * xargs exits 123 when the command exits 1-125.
 */
export function tydraWithRawArgs(args: Buffer[]) {
  return execa('xargs', ['-0', process.execPath, CLI], {
    reject: false,
    input: Buffer.concat(args.flatMap((arg) => [arg, Buffer.from([0])])),
    extendEnv: false,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root' },
    timeout: 60_000,
  });
}
