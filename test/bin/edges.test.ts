import assert from 'node:assert/strict';

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { MASTER_DEFAULTS } from '../../lib/master/options.js';
import { NODE_DEFAULTS } from '../../lib/node/options.js';
import { formatBytes } from '../../lib/core/limits.js';
import { freePort } from '../../lib/ops/redis-server.js';
import { copyFixture, redisUrl, tempDir } from '../helpers.js';
import { tydra, tydraWithRawArgs } from './run-cli.js';

/** The help line of `flag` (commander may wrap its description onto the next line). */
function helpOf(help: string, flag: string): string {
  const at = help.indexOf(`${flag} `);
  assert.notEqual(at, -1, `${flag} is in the help`);
  const rest = help.slice(at);
  return rest.slice(0, rest.search(/\n {2}-/)).replace(/\s+/g, ' ');
}

describe('the tydra CLI: defaults and validation from the library (@integration)', function () {
  this.timeout(60_000);

  it('--help shows the defaults the options modules define', async () => {
    const master = await tydra(['master', '--help']);
    assert.equal(master.exitCode, 0, master.stderr);
    assert.match(helpOf(master.stdout, '--concurrency'), new RegExp(`\\(default: ${MASTER_DEFAULTS.concurrency}\\)$`));
    assert.match(helpOf(master.stdout, '--prune-grace'), new RegExp(`\\(default: ${MASTER_DEFAULTS.pruneGraceMs}\\)$`));
    const node = await tydra(['node', '--help']);
    assert.match(helpOf(node.stdout, '--heartbeat'), new RegExp(`\\(default: ${NODE_DEFAULTS.heartbeatMs}\\)$`));
    assert.ok(helpOf(node.stdout, '--cache-max').endsWith(`(default: ${formatBytes(NODE_DEFAULTS.cacheMaxBytes)})`));
  });

  it('--help shows no empty default for a repeatable flag, in any command', async () => {
    const commands = [
      ...['dev', 'master', 'node', 'dashboard', 'deploy', 'run', 'cancel', 'status', 'nodes', 'packages'],
      ...['undeploy', 'prune', 'runs', 'rerun', 'logs', 'node drain', 'node resume'],
      ...['schedule add', 'schedule ls', 'schedule rm', 'secret set', 'secret ls', 'secret rm'],
    ];
    const helps = await Promise.all(commands.map((command) => tydra([...command.split(' '), '--help'])));
    for (const [index, help] of helps.entries()) {
      assert.equal(help.exitCode, 0, `${commands[index]}: ${help.stderr}`);
      assert.doesNotMatch(help.stdout, /\(default: (\{\}|\[\])\)/, `${commands[index]} --help`);
    }
    const node = helps[commands.indexOf('node')]?.stdout ?? '';
    assert.match(helpOf(node, '--allow-connect'), /127\.0\.0\.1:\* \(default: none\)$/);
    for (const flag of ['--limit <name=value>', '--max-limit <name=value>']) {
      assert.doesNotMatch(helpOf(node, flag), /\(default:/, flag);
    }
  });

  it('the library validates flags: an option out of range is one line and exit 1', async () => {
    const result = await tydra(['master', '--concurrency', '0', '--redis', redisUrl()]);
    assert.equal(result.exitCode, 1);
    assert.equal(
      result.stderr,
      'tydra: Expected the `concurrency` option to be valid (too small: expected number to be >0), got `0` (number)',
    );
  });

  it('--input and --input-file together are refused by run and by schedule add, naming both', async () => {
    for (const command of [
      ['run', 'hello/greet'],
      ['schedule', 'add', 'tick', 'hello/greet', '--every', '1h'],
    ]) {
      const both = await tydra([...command, '--input', '{}', '--input-file', 'in.json', '--redis', redisUrl()]);
      assert.equal(both.exitCode, 1, command.join(' '));
      assert.match(both.stderr, /option '--input <json>' cannot be used with option '--input-file <file>'/);
    }
  });

  it('flag errors name the flag and what it expects, not the option of the library it feeds', async () => {
    const firstLine = async (args: string[], env: Record<string, string> = {}) => {
      const result = await tydra([...args, '--redis', redisUrl()], { env });
      assert.equal(result.exitCode, 1, `${args.join(' ')}: ${result.stdout}`);
      return result.stderr.split('\n')[0];
    };
    const invalid = (flag: string, value: string, expected: string) =>
      `error: option '${flag}' argument '${value}' is invalid. ${expected}`;
    assert.equal(
      await firstLine(['run', 'probe/echo', '--at', '2027-01-01T00:00:00']),
      invalid(
        '--at <iso-date>',
        '2027-01-01T00:00:00',
        'Expected an ISO 8601 date-time with Z or an offset, such as 2027-01-01T00:00:00Z or ' +
          '2027-01-01T00:00:00+01:00, got `2027-01-01T00:00:00`',
      ),
    );
    assert.equal(
      await firstLine(['schedule', 'add', 'x', 'probe/echo']),
      'tydra: Expected exactly one of --cron or --every, got neither',
    );
    assert.equal(
      await firstLine(['schedule', 'add', 'x', 'probe/echo', '--cron', '* * * * *', '--every', '5s']),
      'tydra: Expected exactly one of --cron or --every, got both',
    );
    assert.equal(
      await firstLine(['node', '--cache-max', '10XB']),
      invalid('--cache-max <bytes>', '10XB', 'Expected a unit for --cache-max (B, KiB, MiB or GiB), got `XB`'),
    );
    assert.equal(
      await firstLine(['node', '--max-limit', 'memory=1GiB', '--limit', 'memory=2GiB']),
      'tydra: Expected --limit memory to be at most --max-limit memory (1 GiB), got 2 GiB',
    );
    assert.equal(
      await firstLine(['node', '--limit', 'memory=200GiB']),
      "tydra: Expected --limit memory to be at most tydra's maximum without --max-limit (16 GiB), got 200 GiB",
    );
    for (const attempts of ['abc', '0']) {
      assert.equal(
        await firstLine(['run', 'probe/echo', '--attempts', attempts]),
        invalid('--attempts <n>', attempts, `Expected a positive integer, got \`${attempts}\``),
      );
    }
    const missing = join(await tempDir(), 'missing.json');
    assert.equal(
      await firstLine(['run', 'probe/echo', '--input-file', missing]),
      `tydra: Expected a readable --input-file, got \`${missing}\` (ENOENT: no such file or directory)`,
    );
    assert.equal(
      await firstLine(['master'], { TYDRA_LOG_LEVEL: 'bogus' }),
      'tydra: Expected TYDRA_LOG_LEVEL to be one of trace, debug, info, warn, error, fatal, silent, got `bogus`',
    );
    const folder = join(await tempDir(), 'missing');
    assert.equal(
      await firstLine(['deploy', folder]),
      `tydra: Expected a package folder at ${folder}, found nothing there (no such folder)`,
    );
  });

  it('a 4-hex version prefix and a package name that breaks the manifest rule are refused', async () => {
    const short = await tydra(['undeploy', 'probe@abcd', '--redis', redisUrl()]);
    assert.equal(short.exitCode, 1);
    assert.equal(
      short.stderr,
      'tydra: Expected the version in "probe@abcd" to be a sha1 or a prefix of at least 7 hex digits, got `abcd`',
    );
    const outside = await tydra(['packages', '../etc', '--redis', redisUrl()]);
    assert.equal(outside.exitCode, 1);
    assert.equal(
      outside.stderr,
      'tydra: Expected the package name in "../etc" to match /^[a-z0-9][a-z0-9._-]{0,63}$/, got `../etc`',
    );
  });
});

describe('the tydra CLI: --namespace (@integration)', function () {
  this.timeout(60_000);

  it('takes the namespace from --namespace or TYDRA_NAMESPACE and refuses a bad one before connecting', async () => {
    const dir = await copyFixture('probe');
    const deployed = await tydra(['deploy', dir, '--json', '--redis', redisUrl(), '--namespace', 'cli-ns']);
    assert.equal(deployed.exitCode, 0, deployed.stderr);
    const listed = async (env: Record<string, string>, ...flags: string[]) =>
      JSON.parse((await tydra(['packages', '--json', '--redis', redisUrl(), ...flags], { env })).stdout) as unknown[];
    assert.equal((await listed({}, '--namespace', 'cli-ns')).length, 1);
    assert.equal((await listed({ TYDRA_NAMESPACE: 'cli-ns' })).length, 1);
    assert.deepEqual(await listed({}), [], 'the default namespace has no packages');
    const bad = await tydra(['nodes', '--redis', `redis://127.0.0.1:${await freePort()}`, '--namespace', 'a}b']);
    assert.equal(bad.exitCode, 1);
    assert.match(bad.stderr, /--namespace <name>' argument 'a}b' is invalid\. expected 1 to 32 of a-z 0-9 _ -/);
  });
});

describe('the tydra CLI: bounded connects and input bytes (@integration)', function () {
  this.timeout(60_000);

  it('every client command against a closed port exits non-zero: could not reach Redis', async () => {
    const port = await freePort();
    const dir = await copyFixture('probe');
    const commands = [
      ['nodes'],
      ['deploy', dir],
      ['run', 'probe/echo'],
      ['status', 'some-id'],
      ['cancel', 'some-id'],
      ['packages'],
      ['undeploy', 'probe'],
      ['prune'],
      ['runs'],
      ['rerun', 'some-id'],
    ];
    const results = await Promise.all(
      commands.map((args) => tydra([...args, '--redis', `redis://127.0.0.1:${port}`, '--connect-timeout', '1000'])),
    );
    for (const [index, result] of results.entries()) {
      assert.equal(result.exitCode, 1, `${commands[index]?.[0]}: ${result.stderr}`);
      assert.equal(
        result.stderr,
        `tydra: could not reach Redis at 127.0.0.1:${port} (no password): connect ECONNREFUSED 127.0.0.1:${port}`,
      );
    }
    const secret = await tydra(['nodes', '--redis', `redis://:hunter2@127.0.0.1:${port}`, '--connect-timeout', '500']);
    assert.match(secret.stderr, /^tydra: could not reach Redis at 127\.0\.0\.1:\d+ \(with password\): /);
    assert.doesNotMatch(secret.stderr, /hunter2/);
  });

  it('invalid UTF-8 in --input or --input-file is refused, naming the byte offset', async () => {
    const bad = Buffer.from([0x22, 0x61, 0xff, 0x62, 0x22]); // "a\xffb"
    for (const args of [[Buffer.from('--input'), bad], [Buffer.concat([Buffer.from('--input='), bad])]]) {
      const result = await tydraWithRawArgs([Buffer.from('run'), Buffer.from('probe/echo'), ...args]);
      assert.notEqual(result.exitCode, 0);
      assert.equal(result.stderr, 'tydra: Expected --input to be UTF-8, got an invalid byte 0xff at byte offset 2');
    }
    const file = join(await tempDir(), 'input.json');
    // `é` is fine; the truncated `€` (e2 82, then `"`) starts at byte 8.
    await writeFile(file, Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0xa9, 0xe2, 0x82, 0x22, 0x7d]));
    const fromFile = await tydra(['run', 'probe/echo', '--input-file', file, '--redis', redisUrl()]);
    assert.equal(fromFile.exitCode, 1);
    assert.equal(
      fromFile.stderr,
      `tydra: Expected the file ${file} to be UTF-8, got an invalid byte 0xe2 at byte offset 8`,
    );
    // A real U+FFFD is text like any other: the command gets past the input, to Redis.
    const port = await freePort();
    const replacement = await tydra([
      'run',
      'x/y',
      '--input',
      '"\uFFFD"',
      '--redis',
      `redis://127.0.0.1:${port}`,
      '--connect-timeout',
      '500',
    ]);
    assert.match(replacement.stderr, /^tydra: could not reach Redis at /);
  });
});
