import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Tydra } from '../../lib/client/client.js';
import { InvalidOptionError, SecretKeyError, UnknownSecretError } from '../../lib/core/errors.js';
import { openSecret } from '../../lib/core/secret-box.js';
import { makePackage, redisUrl, startCluster, startNode, tempDir, testClient, testRedis, waitFor } from '../helpers.js';
import { tydra as cli } from '../bin/run-cli.js';
import { everyRedisString } from './redis-strings.js';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** A package whose tasks need secrets: one returns a hash of its secret, one prints it every way it can. */
async function deploySecretsPackage(client: Tydra): Promise<void> {
  const dir = await makePackage({
    'package.json': '{ "type": "module", "private": true }',
    'tydra.json': JSON.stringify({
      name: 'secretive',
      tasks: {
        digest: { module: 'digest.mjs', secrets: ['DB_PASSWORD'] },
        leak: { module: 'leak.mjs', secrets: ['DB_PASSWORD'] },
        hold: { module: 'hold.mjs', secrets: ['DB_PASSWORD'] },
        plain: { module: 'digest.mjs' },
        parts: { kind: 'sequence', steps: ['plain'] },
      },
    }),
    'digest.mjs': [
      "import { createHash } from 'node:crypto';",
      "const hash = (text) => (text === undefined ? null : createHash('sha256').update(text).digest('hex'));",
      'export default () => ({ db: hash(process.env.DB_PASSWORD), api: hash(process.env.API_TOKEN) });',
      '',
    ].join('\n'),
    // Says whether it has its secret, then runs until cancelled.
    'hold.mjs': [
      'export default async (input, ctx) => {',
      "  ctx.log(process.env.DB_PASSWORD ? 'ready' : 'missing');",
      "  await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));",
      '};',
      '',
    ].join('\n'),
    // Prints its secret on stdout, stderr and ctx.log, then fails with it in the message.
    'leak.mjs': [
      'export default (input, ctx) => {',
      '  console.log(`stdout: ${process.env.DB_PASSWORD}`);',
      '  console.error(`stderr: ${process.env.DB_PASSWORD}`);',
      '  ctx.log(`ctx: ${process.env.DB_PASSWORD}!`);',
      "  if (input === 'throw') throw new Error(`bad password ${process.env.DB_PASSWORD}`);",
      '  ctx.progress({ note: `at ${process.env.DB_PASSWORD}` });',
      '  return { echoed: [process.env.DB_PASSWORD], [process.env.DB_PASSWORD]: 1 };',
      '};',
      '',
    ].join('\n'),
  });
  await client.deploy(dir);
}

describe('secrets @integration', () => {
  const key = randomBytes(32).toString('base64');
  const value = `pw-${randomUUID()}`;

  it('sets, lists and removes secrets through the client, sealed in Redis', async () => {
    const client = testClient({ secretKey: key });
    await client.setSecret('DB_PASSWORD', value);
    await client.setSecret('API_TOKEN', 'token');
    const listed = await client.listSecrets();
    assert.deepEqual(
      listed.map((secret) => secret.name),
      ['API_TOKEN', 'DB_PASSWORD'],
    );
    assert.ok(listed.every((secret) => secret.setAt > Date.now() - 60_000 && !('value' in secret)));
    const sealed = await testRedis().hget('{tydra}:secrets', 'DB_PASSWORD');
    assert.ok(sealed !== null && !sealed.includes(value));
    assert.equal(await client.removeSecret('API_TOKEN'), true);
    assert.equal(await client.removeSecret('API_TOKEN'), false);
    assert.deepEqual(
      (await client.listSecrets()).map((secret) => secret.name),
      ['DB_PASSWORD'],
    );
    // Listing and removing need no key; setting does, and checks the name and the size.
    const keyless = testClient();
    assert.equal((await keyless.listSecrets()).length, 1);
    await assert.rejects(keyless.setSecret('X', 'v'), /Expected a secret key to set secret X/);
    await assert.rejects(client.setSecret('lower', 'v'), InvalidOptionError);
    await assert.rejects(client.setSecret('BIG', 'x'.repeat(64 * 1024 + 1)), /got 65537 bytes \(not shown\)/);
    assert.throws(() => testClient({ secretKey: 'c2hvcnQ=' }), SecretKeyError);
  });

  it('sets, lists and removes secrets through the CLI; a wrong-length key is refused without echoing it', async () => {
    const redis = ['--redis', redisUrl()];
    const set = await cli(['secret', 'set', 'DB_PASSWORD', ...redis], {
      env: { TYDRA_SECRET_KEY: key },
      ...{ input: `${value}\n` },
    });
    assert.equal(set.exitCode, 0, set.stderr);
    assert.equal(set.stdout, 'set secret DB_PASSWORD');
    // stdin without its trailing newline, sealed under the name.
    const sealed = (await testRedis().hget('{tydra}:secrets', 'DB_PASSWORD')) ?? '';
    assert.equal(openSecret(Buffer.from(key, 'base64'), 'DB_PASSWORD', sealed), value);
    const file = join(await tempDir(), 'key');
    await writeFile(file, key);
    const valueFile = join(await tempDir(), 'value');
    await writeFile(valueFile, 'from a file');
    const fromFile = await cli([
      'secret',
      'set',
      'OTHER',
      '--from-file',
      valueFile,
      '--secret-key-file',
      file,
      ...redis,
    ]);
    assert.equal(fromFile.exitCode, 0, fromFile.stderr);
    const ls = await cli(['secret', 'ls', '--json', ...redis]);
    assert.deepEqual(
      (JSON.parse(ls.stdout) as Array<{ name: string }>).map((secret) => secret.name),
      ['DB_PASSWORD', 'OTHER'],
    );
    const client = testClient({ secretKey: key });
    await client.setSecret('CHECK', 'x');
    assert.equal((await cli(['secret', 'rm', 'OTHER', ...redis])).exitCode, 0);
    const again = await cli(['secret', 'rm', 'OTHER', ...redis]);
    assert.equal(again.exitCode, 1);
    assert.match(again.stderr, /no secret named OTHER/);
    const badKey = randomBytes(31).toString('hex');
    const bad = await cli(['secret', 'set', 'X', ...redis], { env: { TYDRA_SECRET_KEY: badKey }, input: 'v' });
    assert.equal(bad.exitCode, 1);
    assert.match(bad.stderr, /Expected the secret key .* to hold 32 random bytes in base64 or hex.*got 31 bytes/);
    assert.ok(!bad.stderr.includes(badKey) && !bad.stdout.includes(badKey));
  });

  it('gives a task its secrets in process.env (declared and mapped), never in clear in Redis', async () => {
    await startCluster(1, { secretKey: key });
    const client = testClient({ secretKey: key });
    await deploySecretsPackage(client);
    await client.setSecret('DB_PASSWORD', value);
    await client.setSecret('PROD_TOKEN', `${value}-token`);
    const run = await client.submit('secretive/digest', null, { secrets: { API_TOKEN: 'PROD_TOKEN' } });
    assert.deepEqual(await run.result(), { db: sha256(value), api: sha256(`${value}-token`) });
    const viaCli = await cli(['run', 'secretive/plain', '--secret', 'DB_PASSWORD=PROD_TOKEN', '--redis', redisUrl()]);
    assert.equal(viaCli.exitCode, 0, viaCli.stderr);
    assert.deepEqual(JSON.parse(viaCli.stdout), { db: sha256(`${value}-token`), api: null });
    const data = JSON.parse((await testRedis().hget(`{tydra}:bull:tasks:${run.id}`, 'data')) ?? '{}') as {
      secrets?: unknown;
    };
    assert.deepEqual(data.secrets, { DB_PASSWORD: 'DB_PASSWORD', API_TOKEN: 'PROD_TOKEN' });
    const status = await cli(['status', run.id, '--json', '--redis', redisUrl()]);
    assert.ok(!status.stdout.includes(value));
    for (const text of await everyRedisString(testRedis())) {
      assert.ok(!text.includes(value), 'a secret value is in Redis in clear');
    }
  });

  it('puts a secret on no command line nor launch environment of any process while its task runs', async () => {
    await startCluster(1, { secretKey: key });
    const client = testClient({ secretKey: key });
    await deploySecretsPackage(client);
    await client.setSecret('DB_PASSWORD', value);
    const run = await client.submit('secretive/hold');
    await waitFor('the task to hold its secret', async () => (await run.status()).logs.includes('ready') || undefined);
    let scanned = 0;
    for (const pid of await readdir('/proc')) {
      for (const file of ['cmdline', 'environ']) {
        const text = await readFile(`/proc/${pid}/${file}`, 'latin1').catch(() => undefined);
        if (text !== undefined) {
          scanned += 1;
          assert.ok(!text.includes(value), `the secret is in /proc/${pid}/${file}`);
        }
      }
    }
    assert.ok(scanned > 2);
    await client.cancel(run.id);
    await assert.rejects(run.result(), { name: 'TaskCancelledError' });
  });

  it('masks a secret the task prints, in its logs, error, progress and result', async () => {
    await startCluster(1, { secretKey: key });
    const client = testClient({ secretKey: key });
    await deploySecretsPackage(client);
    await client.setSecret('DB_PASSWORD', value);
    const run = await client.submit('secretive/leak');
    assert.deepEqual(await run.result(), { echoed: ['***'], '***': 1 });
    const { logs, progress } = await run.status();
    assert.deepEqual(progress !== undefined && 'value' in progress ? progress.value : undefined, { note: 'at ***' });
    for (const line of ['[stdout] stdout: ***', '[stderr] stderr: ***', 'ctx: ***!']) {
      assert.ok(logs.includes(line), `${line} in ${JSON.stringify(logs)}`);
    }
    const failing = await client.submit('secretive/leak', 'throw');
    await assert.rejects(failing.result(), (error: Error) => error.message === 'bad password ***');
    const status = await failing.status();
    assert.equal(status.error, 'bad password ***');
    for (const text of await everyRedisString(testRedis())) {
      assert.ok(!text.includes(value), 'a secret value is in Redis in clear');
    }
  });

  it('a node without the key refuses a TaskInstance that needs secrets, once, saying so', async () => {
    await startCluster(1);
    const client = testClient({ secretKey: key });
    await deploySecretsPackage(client);
    await client.setSecret('DB_PASSWORD', value);
    const run = await client.submit('secretive/digest', null, { attempts: 3 });
    await assert.rejects(
      run.result(),
      /Expected node .* to have a secret key \(TYDRA_SECRET_KEY or --secret-key-file\)/,
    );
    const data = JSON.parse((await testRedis().hget(`{tydra}:bull:tasks:${run.id}`, 'data')) ?? '{}') as {
      ending?: { kind: string };
    };
    assert.equal(data.ending?.kind, 'rejected');
    // A task without secrets still runs there.
    assert.deepEqual(await (await client.submit('secretive/plain')).result(), { db: null, api: null });
  });

  it('sends a TaskInstance that needs secrets only to a node holding the key, while one is live', async () => {
    await startCluster(0);
    const keyless = await startNode();
    const holder = await startNode({ secretKey: key });
    const client = testClient({ secretKey: key });
    await deploySecretsPackage(client);
    await client.setSecret('DB_PASSWORD', value);
    // Both heartbeats have said whether their node holds a key.
    await waitFor('both nodes to publish whether they hold a key', async () => {
      const nodes = await client.nodes();
      const said = (id: string) => nodes.find((node) => node.id === id)?.secretKey;
      return said(keyless.id) === false && said(holder.id) === true ? true : undefined;
    });
    const listed = await cli(['nodes', '--redis', redisUrl()]);
    assert.match(listed.stdout, new RegExp(`${keyless.id} .* secret key no`));
    assert.match(listed.stdout, new RegExp(`${holder.id} .* secret key yes`));

    // attempts: 1, so a TaskInstance sent to the keyless node would fail ('rejected') instead of moving on.
    const secretive = await Promise.all(
      Array.from({ length: 6 }, () => client.submit('secretive/digest', null, { attempts: 1 })),
    );
    for (const run of secretive) {
      assert.deepEqual(await run.result(), { db: sha256(value), api: null });
      assert.equal((await run.status()).nodeId, holder.id);
    }
    // With the key holder gone, a task without secrets runs on the keyless node, and one that needs
    // them goes there too, to be refused saying why, rather than wait for a holder that may never come.
    await holder.close();
    const plain = await client.submit('secretive/plain');
    assert.deepEqual(await plain.result(), { db: null, api: null });
    assert.equal((await plain.status()).nodeId, keyless.id);
    const stranded = await client.submit('secretive/digest', null, { attempts: 1 });
    await assert.rejects(stranded.result(), /Expected node .* to have a secret key/);
    assert.equal((await stranded.status()).nodeId, keyless.id);
  });

  it('a submit naming a missing secret fails naming it, nothing enqueued (a sequence too)', async () => {
    const client = testClient({ secretKey: key });
    await deploySecretsPackage(client);
    await assert.rejects(
      client.submit('secretive/digest'),
      (error: Error) =>
        error instanceof UnknownSecretError && /Expected secret DB_PASSWORD to be stored/.test(error.message),
    );
    await client.setSecret('DB_PASSWORD', value);
    await assert.rejects(client.submit('secretive/digest', null, { secrets: { API_TOKEN: 'NOPE' } }), {
      name: 'UnknownSecretError',
      secret: 'NOPE',
    });
    const viaCli = await cli(['run', 'secretive/plain', '--secret', 'X=GONE', '--redis', redisUrl()]);
    assert.equal(viaCli.exitCode, 1);
    assert.match(viaCli.stderr, /Expected secret GONE to be stored/);
    // A sequence's mapping goes to its steps: each stored secret is checked at its submit.
    await assert.rejects(client.submit('secretive/parts', null, { secrets: { X: 'ABSENT' } }), {
      name: 'UnknownSecretError',
      secret: 'ABSENT',
    });
    assert.equal(await testRedis().llen('{tydra}:bull:tasks:wait'), 0);
  });
});
