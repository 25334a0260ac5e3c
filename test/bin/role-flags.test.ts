import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { execa } from 'execa';

import { Dashboard } from '../../lib/ops/dashboard.js';
import { CLI, defer, redisUrl, tempDir, waitFor } from '../helpers.js';
import { tydra } from './run-cli.js';

const lastLine = (text: string) => text.trim().split('\n').at(-1);

describe('the roles refuse an unsafe dashboard before they start', function () {
  this.timeout(30_000);

  it('tydra dashboard beyond loopback without credentials exits 1, pointing at --insecure-no-auth', async () => {
    const result = await tydra(['dashboard', '--host', '0.0.0.0', '--port', '0']);
    assert.equal(result.exitCode, 1);
    assert.equal(
      lastLine(result.stderr),
      'tydra: Expected dashboard credentials (TYDRA_DASHBOARD_USER and TYDRA_DASHBOARD_PASSWORD, or the `auth` option) ' +
        'to serve beyond loopback on `0.0.0.0`, got none; pass --insecure-no-auth (`insecureNoAuth`) to serve it open anyway',
    );
  });

  it('half a credential pair is an error naming the missing variable, in tydra dashboard and tydra dev', async () => {
    const cwd = await tempDir();
    for (const command of [['dashboard'], ['dev']]) {
      const result = await tydra([...command, '--port', '0'], { cwd, env: { TYDRA_DASHBOARD_USER: 'ops' } });
      assert.equal(result.exitCode, 1);
      assert.match(lastLine(result.stderr) ?? '', /got TYDRA_DASHBOARD_USER alone: set TYDRA_DASHBOARD_PASSWORD$/);
      const readOnly = await tydra([...command, '--port', '0'], {
        cwd,
        env: { TYDRA_DASHBOARD_READONLY_PASSWORD: 'hunter2' },
      });
      assert.equal(readOnly.exitCode, 1);
      assert.match(lastLine(readOnly.stderr) ?? '', /alone: set TYDRA_DASHBOARD_READONLY_USER$/);
      assert.doesNotMatch(readOnly.stderr, /hunter2/);
    }
    // tydra dev refused before it started anything: no private Redis data was written.
    assert.equal(existsSync(join(cwd, '.tydra', 'redis')), false);
  });

  it('tydra dev beyond loopback without credentials refuses before starting redis-server', async () => {
    const cwd = await tempDir();
    const result = await tydra(['dev', '--host', '0.0.0.0', '--port', '0'], { cwd });
    assert.equal(result.exitCode, 1);
    assert.match(lastLine(result.stderr) ?? '', /pass --insecure-no-auth/);
    assert.equal(existsSync(join(cwd, '.tydra', 'redis')), false);
  });

  it('an unknown TYDRA_LOG_FORMAT is an error listing the formats', async () => {
    const result = await tydra(['dashboard', '--port', '0'], { env: { TYDRA_LOG_FORMAT: 'fancy' } });
    assert.equal(result.exitCode, 1);
    assert.equal(
      lastLine(result.stderr),
      'tydra: Expected TYDRA_LOG_FORMAT to be one of auto, pretty, json, got `fancy`',
    );
  });
});

describe('role log lines: JSON for services, readable on request (@integration)', function () {
  this.timeout(30_000);

  /**
   * Runs the CLI with `args` until `stream` shows `ready`, stops it with SIGTERM, asserts it exited
   * 0, and returns what it wrote to stderr.
   */
  async function stoppedStderr(
    args: string[],
    ready: { stream: 'stdout' | 'stderr'; text: string },
    env: Record<string, string> = {},
  ): Promise<string> {
    const child = execa(process.execPath, [CLI, ...args, '--redis', redisUrl()], {
      reject: false,
      extendEnv: false,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env },
    });
    defer(async () => {
      child.kill('SIGKILL');
      await child;
    });
    let seen = '';
    child[ready.stream]?.on('data', (chunk: Buffer) => (seen += chunk.toString()));
    await waitFor(`${args[0]} to say ${ready.text}`, () => (seen.includes(ready.text) ? true : undefined));
    child.kill('SIGTERM');
    const result = await child;
    assert.equal(result.exitCode, 0, result.stderr);
    return result.stderr;
  }

  /** Runs `tydra dashboard` until it serves, stops it with SIGTERM, and returns what it wrote to stderr. */
  const dashboardStderr = (args: string[], env: Record<string, string> = {}): Promise<string> =>
    stoppedStderr(['dashboard', '--port', '0', ...args], { stream: 'stdout', text: 'dashboard: http' }, env);

  it('tydra dashboard on a port in use exits 1 with the listen error, printing no URL', async () => {
    const first = new Dashboard({ redis: redisUrl(), port: 0 });
    defer(() => first.close());
    const port = Number(new URL(await first.start()).port);
    const result = await tydra(['dashboard', '--redis', redisUrl(), '--port', String(port)]);
    assert.equal(result.exitCode, 1);
    assert.equal(result.stdout, '');
    assert.equal(lastLine(result.stderr), `tydra: listen EADDRINUSE: address already in use 127.0.0.1:${port}`);
    assert.doesNotMatch(result.stderr, /dashboard started/);
  });

  it('writes JSON lines when stderr is not a terminal', async () => {
    const stderr = await dashboardStderr([]);
    const started = stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string; component: string; level: number })
      .find((entry) => entry.msg === 'dashboard started');
    assert.equal(started?.component, 'dashboard');
    assert.equal(started?.level, 30);
  });

  it('with --log-format json, what it says on stopping is JSON too, down to a final stopped record', async () => {
    const stderr = await stoppedStderr(['master', '--log-format', 'json'], {
      stream: 'stderr',
      text: '"master started"',
    });
    const entries = stderr
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { msg: string; component: string; signal?: string });
    assert.deepEqual(
      entries.filter((entry) => entry.component === 'cli').map(({ msg, signal }) => [msg, signal]),
      [
        ['SIGTERM received, stopping (send it again to force)', 'SIGTERM'],
        ['stopped', undefined],
      ],
    );
    assert.equal(entries.at(-1)?.msg, 'stopped');
  });

  it('writes readable lines with --log-format pretty (and TYDRA_LOG_FORMAT=pretty)', async () => {
    for (const [args, env] of [
      [['--log-format', 'pretty'], {}],
      [[], { TYDRA_LOG_FORMAT: 'pretty' }],
    ] as const) {
      const stderr = await dashboardStderr([...args], env);
      assert.match(
        stderr,
        /^\d\d:\d\d:\d\d\.\d{3} INFO {2}dashboard {2}dashboard started dashboardUrl=http:\/\/127\.0\.0\.1:\d+\/ roles="none \(open\)"$/m,
      );
      assert.doesNotMatch(stderr, /^\{/m);
    }
  });
});
