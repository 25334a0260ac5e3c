/**
 * Secrets reach a sandboxed command through bwrap's `--args` pipe: the task sees them, bwrap's
 * command line and launch environment never hold them, and the pipe is closed in the sandbox.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { chmod, readdir, readFile } from 'node:fs/promises';

import { SecretUnavailableError, TaskCancelledError } from '../../../lib/core/errors.js';
import { DEFAULT_TASK_LIMITS } from '../../../lib/core/limits.js';
import { prepareLaunch } from '../../../sandbox/launcher/launch.js';
import { NODE_MARK_VARIABLE } from '../../../sandbox/launcher/orphans.js';
import { nodeMark } from '../../../sandbox/launcher/process-mark.js';
import { runTask, type RunTaskOptions } from '../../../sandbox/launcher/run-task.js';
import {
  encodeSecretArgs,
  SECRET_ARGS_FD,
  secretArgsFlags,
  withSecretArgsStdio,
} from '../../../sandbox/launcher/secret-args.js';
import { sandboxBase } from './sandbox-base.js';
import { tempDir, waitFor } from '../../helpers.js';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Every running process whose command line holds `marker`, with its command line and environment. */
async function processesWith(marker: string): Promise<Array<{ pid: string; cmdline: string; environ: string }>> {
  const found = [];
  for (const pid of await readdir('/proc')) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'latin1').catch(() => '');
    if (/^\d+$/.test(pid) && cmdline.includes(marker)) {
      found.push({ pid, cmdline, environ: await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '') });
    }
  }
  return found;
}

describe('secret args', () => {
  it('encodes each secret as a NUL-separated --setenv NAME VALUE', () => {
    assert.deepEqual(secretArgsFlags(), ['--args', String(SECRET_ARGS_FD)]);
    assert.equal(
      encodeSecretArgs({ A: 'x y', B: '--bind / /' }).toString('utf8'),
      '--setenv\0A\0x y\0--setenv\0B\0--bind / /\0',
    );
    assert.equal(encodeSecretArgs({}).length, 0);
  });

  it('refuses a NUL in a value (it would shift the arguments after it), naming the variable, not the value', () => {
    assert.throws(
      () => encodeSecretArgs({ TOKEN: 'abc\0--bind\0/\0/' }),
      (error: Error) =>
        error instanceof SecretUnavailableError && /for TOKEN/.test(error.message) && !error.message.includes('abc'),
    );
  });

  it('prepareLaunch gives a command --args and the encoded secrets apart from argv; a module gets neither', async () => {
    const options = {
      packageDir: '/nonexistent',
      instanceId: 'i',
      attempt: 1,
      limits: DEFAULT_TASK_LIMITS,
      bwrap: '/usr/bin/bwrap',
      prlimit: '/usr/bin/prlimit',
      secrets: { DB_PASSWORD: 'hunter2' },
    };
    const command = await prepareLaunch(options, { command: ['/bin/true'] });
    assert.ok(!command.args.some((arg) => arg.includes('hunter2')));
    const at = command.args.indexOf('--args');
    assert.equal(command.args[at + 1], String(SECRET_ARGS_FD));
    assert.ok(at > command.args.indexOf('--clearenv'), '--args after --clearenv, or bwrap would clear them');
    assert.ok(at < command.args.lastIndexOf('--'), 'before the command');
    assert.deepEqual(command.secretArgs, encodeSecretArgs({ DB_PASSWORD: 'hunter2' }));
    // bwrap's own environment: the node's mark alone (`orphans.ts`), never a secret.
    assert.deepEqual(command.env, { [NODE_MARK_VARIABLE]: nodeMark() });
    const module = await prepareLaunch(options, { module: 'task.mjs' });
    assert.ok(!module.args.includes('--args') && module.secretArgs === undefined);
    assert.ok(!module.args.some((arg) => arg.includes('hunter2')));
    const unsandboxed = await prepareLaunch({ ...options, bwrap: undefined }, { command: ['/bin/true'] });
    assert.equal(unsandboxed.env.DB_PASSWORD, 'hunter2');
    assert.ok(!unsandboxed.args.some((arg) => arg.includes('hunter2')));
  });

  it('adds a pipe at its fd, leaving the fds in between closed', () => {
    assert.deepEqual(withSecretArgsStdio(['pipe', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe']), [
      ...['pipe', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
    ]);
    assert.deepEqual(withSecretArgsStdio(['pipe', 'pipe', 'pipe'], 4), ['pipe', 'pipe', 'pipe', 'ignore', 'pipe']);
  });
});

describe('secrets of a sandboxed command (@integration)', function () {
  this.timeout(60_000);
  let base: Omit<RunTaskOptions, 'task' | 'instanceId'>;

  beforeEach(async () => {
    const root = await tempDir();
    await chmod(root, 0o755);
    base = { ...(await sandboxBase(root)), limits: DEFAULT_TASK_LIMITS };
  });

  it('the task sees the value; bwrap has it neither in /proc/PID/cmdline nor environ; fd 6 is closed', async () => {
    // Quotes, spaces and a bwrap flag: the value is one argument, never parsed as more.
    const value = `pw ${randomUUID()} '"$(id)" --bind / /`;
    const instanceId = `secret-args-${randomUUID()}`;
    const lines: string[] = [];
    const abort = new AbortController();
    const script = [
      'printf %s "$DB_PASSWORD" | sha256sum >&2',
      `if [ -e /proc/self/fd/${SECRET_ARGS_FD} ]; then echo fd-open >&2; else echo fd-closed >&2; fi`,
      'echo ready >&2',
      'exec sleep 120',
    ].join('\n');
    const running = runTask({
      ...base,
      instanceId,
      task: { command: ['/bin/sh', '-c', script] },
      secrets: { DB_PASSWORD: value },
      signal: abort.signal,
      onLog: (line) => lines.push(line),
    });
    await waitFor('the task to start', () => lines.includes('[stderr] ready') || undefined);
    assert.ok(lines.includes(`[stderr] ${sha256(value)}  -`), JSON.stringify(lines));
    assert.ok(lines.includes('[stderr] fd-closed'), JSON.stringify(lines));
    // bwrap (prlimit execs it: one pid) has the instance id on its command line.
    const bwraps = await processesWith(instanceId);
    assert.ok(bwraps.length >= 1, 'found bwrap by its command line');
    assert.ok(bwraps.some((bwrap) => bwrap.cmdline.includes(`--args\0${SECRET_ARGS_FD}\0`)));
    for (const bwrap of bwraps) {
      assert.ok(!bwrap.cmdline.includes(value), `the secret is on the command line of ${bwrap.pid}`);
      assert.ok(!bwrap.environ.includes(value), `the secret is in the environ of ${bwrap.pid}`);
    }
    const secretPart = value.split(' ')[1] ?? '';
    for (const pid of await readdir('/proc')) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'latin1').catch(() => '');
      assert.ok(!cmdline.includes(secretPart), `the secret is on the command line of ${pid}`);
    }
    abort.abort(new TaskCancelledError(instanceId));
    await assert.rejects(running, TaskCancelledError);
  });

  it('a command with no secrets gets no --args and runs as before', async () => {
    const result = await runTask({
      ...base,
      instanceId: `secret-args-${randomUUID()}`,
      task: { command: ['/bin/sh', '-c', 'cat >/dev/null; printf "{\\"set\\":\\"%s\\"}" "${DB_PASSWORD-unset}"'] },
    });
    assert.deepEqual(result, { set: 'unset' });
  });
});
