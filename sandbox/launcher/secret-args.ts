/**
 * Secrets into a sandboxed COMMAND without putting them on a command line (a module's runner
 * gets them in its start message instead: see `run-task.ts`). Any user of the host can read
 * `/proc/PID/cmdline` of prlimit and bwrap, so a secret may never be an argument. bwrap's
 * `--args FD` reads more arguments from a descriptor (NUL-separated) while it parses its argv:
 * the node writes `--setenv NAME VALUE` for each secret into a pipe at `SECRET_ARGS_FD` and
 * closes it; bwrap sets them in the environment it execs the task with, after its
 * `--clearenv`. bwrap 0.8 closes the descriptor once read, so the task never sees the pipe
 * (proven in test/sandbox/secret-args.test.ts, with cmdline and environ of bwrap read back).
 *
 * bwrap's `setenv` writes to its heap, not to the environment block `/proc/PID/environ` shows,
 * which stays the empty one the node spawned it with. The command itself is exec'd with them, as
 * any environment variable: its own `/proc/PID/environ` holds them, readable only by root and by
 * its host user (the node's `sandboxUser`), which is why a module gets them after it started.
 */
import type { Writable } from 'node:stream';

import { SecretUnavailableError } from '../../lib/core/errors.js';
import type { StdioArray } from './cgroup/attach.js';

/** fd 3 is the runner's protocol pipe, 4 and 5 the cgroup sync pipes (`cgroup/attach.ts`); 6 follows. */
export const SECRET_ARGS_FD = 6;

/** The bwrap flags that read the secrets' `--setenv` arguments from `fd`. */
export function secretArgsFlags(fd: number = SECRET_ARGS_FD): string[] {
  return ['--args', String(fd)];
}

/**
 * `--setenv NAME VALUE` for each secret, NUL-separated as `--args` reads them. A NUL inside a
 * name or value would shift every argument after it (a value could then pass bwrap a flag of its
 * own), so it is refused; the error names the variable, never the value.
 */
export function encodeSecretArgs(secrets: Readonly<Record<string, string>>): Buffer {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(secrets)) {
    if (name.includes('\0') || value.includes('\0')) {
      throw new SecretUnavailableError(
        `Expected the secret for ${name.replaceAll('\0', '\\0')} to hold no NUL character, got one (value not shown)`,
      );
    }
    parts.push('--setenv', name, value);
  }
  return Buffer.from(parts.map((part) => `${part}\0`).join(''), 'utf8');
}

/** `stdio` with a pipe at `fd`; fds in between that are not there yet stay closed (`'ignore'`). */
export function withSecretArgsStdio(stdio: Readonly<StdioArray>, fd: number = SECRET_ARGS_FD): StdioArray {
  const result: StdioArray = [...stdio];
  while (result.length <= fd) {
    result.push('ignore');
  }
  result[fd] = 'pipe';
  return result;
}

/** Writes the encoded arguments into bwrap's pipe and closes it (bwrap reads up to end-of-file). */
export function feedSecretArgs(pipe: unknown, data: Uint8Array): void {
  const writable = pipe as Writable | undefined;
  if (writable === undefined || typeof writable.end !== 'function') {
    return; // spawn failed: execa reports why
  }
  writable.on('error', () => undefined); // EPIPE when bwrap died before reading
  writable.end(data);
}
