/**
 * Secrets and env beyond a JavaScript simple task: a command task, every phase of a parallel
 * task (as a module and as commands), the steps of a sequence, and the firings of a schedule.
 * Each task prints its secret every way it can: the logs show `***`, Redis never holds the value.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';

import { type Job, Queue } from 'bullmq';

import type { Tydra } from '../../lib/client/client.js';
import { TaskCancelledError, UnknownSecretError } from '../../lib/core/errors.js';
import { SECRETS_WORKUNITS_QUEUE, WORKUNITS_QUEUE } from '../../queues/workunits.js';
import { TASKS_QUEUE, type TaskInstanceData } from '../../queues/tasks.js';
import { tydra as cli } from '../bin/run-cli.js';
import { defer, makePackage, redisUrl, startCluster, startNode, testClient, testRedis, waitFor } from '../helpers.js';
import { everyRedisString } from './redis-strings.js';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** `sh -c` of a line that prints the hash of `$NAME` (empty when unset) into `$var`. */
const hashOf = (name: string, variable: string): string =>
  `${variable}=$(printf %s "\${${name}-}" | sha256sum | cut -c1-64)`;

const SPLIT = ['read -r input', 'echo "split sees $DB_PASSWORD" >&2', 'echo 1', 'echo 2'].join('\n');
const WORK = [
  'while read -r unit; do',
  '  echo "work sees $DB_PASSWORD" >&2',
  `  ${hashOf('DB_PASSWORD', 'h')}`,
  '  echo "{\\"unit\\":$unit,\\"db\\":\\"$h\\",\\"greeting\\":\\"${GREETING-}\\"}"',
  'done',
].join('\n');
const REDUCE = [
  'read -r input',
  'results=""',
  'while read -r r; do results="$results${results:+,}$r"; done',
  'echo "reduce sees $DB_PASSWORD" >&2',
  `${hashOf('DB_PASSWORD', 'h')}`,
  'echo "{\\"results\\":[$results],\\"db\\":\\"$h\\",\\"greeting\\":\\"${GREETING-}\\",\\"echo\\":\\"$DB_PASSWORD\\"}"',
].join('\n');
/** A command task: logs its secret on stderr, returns hashes of both secrets, its env and the secret itself. */
const COMMAND = [
  'cat >/dev/null',
  'echo "command sees $DB_PASSWORD" >&2',
  hashOf('DB_PASSWORD', 'db'),
  hashOf('API_TOKEN', 'api'),
  'echo "{\\"db\\":\\"$db\\",\\"api\\":\\"$api\\",\\"greeting\\":\\"${GREETING-}\\",\\"echo\\":\\"$DB_PASSWORD\\"}"',
].join('\n');

const PARALLEL_MODULE = [
  "import { createHash } from 'node:crypto';",
  "const hash = (text) => createHash('sha256').update(text ?? '').digest('hex');",
  'const seen = (phase) => ({ phase, db: hash(process.env.DB_PASSWORD), greeting: process.env.GREETING ?? null });',
  'export function* split(input, ctx) { ctx.log(`split sees ${process.env.DB_PASSWORD}`); yield 1; yield 2; }',
  'export const work = (unit, ctx) => { ctx.log(`work sees ${process.env.DB_PASSWORD}`); return seen(`work ${unit}`); };',
  'export const reduce = async (results, input, ctx) => {',
  '  const all = []; for await (const r of results) all.push(r);',
  '  ctx.log(`reduce sees ${process.env.DB_PASSWORD}`);',
  '  return { results: all, reduce: seen("reduce"), echo: process.env.DB_PASSWORD };',
  '};',
  '',
].join('\n');

/** `input.units` units that each take `input.ms`; reduce counts them and the secret hashes work saw. */
const PARALLEL_MANY = [
  "import { createHash } from 'node:crypto';",
  "const hash = (text) => createHash('sha256').update(text ?? '').digest('hex');",
  'export function* split(input) { for (let i = 0; i < input.units; i += 1) yield { ms: input.ms }; }',
  'export const work = async (unit) => {',
  '  await new Promise((resolve) => setTimeout(resolve, unit.ms));',
  '  return hash(process.env.DB_PASSWORD);',
  '};',
  'export const reduce = async (results) => {',
  '  const seen = new Set(); let units = 0;',
  '  for await (const r of results) { units += 1; seen.add(r); }',
  '  return { units, hashes: [...seen] };',
  '};',
  '',
].join('\n');

/** Returns hashes of both secrets, its env, and the input it got (the first step's output). */
const STEP_MODULE = [
  "import { createHash } from 'node:crypto';",
  "const hash = (text) => createHash('sha256').update(text ?? '').digest('hex');",
  'export default (input) => ({',
  '  first: input,',
  '  db: hash(process.env.DB_PASSWORD),',
  '  api: hash(process.env.API_TOKEN),',
  '  greeting: process.env.GREETING ?? null,',
  '});',
  '',
].join('\n');

async function deployKinds(client: Tydra): Promise<void> {
  const sh = (script: string) => ({ command: ['/bin/sh', '-c', script] });
  const dir = await makePackage({
    'package.json': '{ "type": "module", "private": true }',
    'tydra.json': JSON.stringify({
      name: 'kinds',
      tasks: {
        cmd: { ...sh(COMMAND), secrets: ['DB_PASSWORD'] },
        par: { kind: 'parallel', module: 'par.mjs', secrets: ['DB_PASSWORD'] },
        parcmd: {
          kind: 'parallel',
          split: sh(SPLIT),
          work: sh(WORK),
          reduce: sh(REDUCE),
          secrets: ['DB_PASSWORD'],
        },
        step: { module: 'step.mjs', secrets: ['DB_PASSWORD'] },
        cmdfail: { ...sh('cat >/dev/null; echo "bad $DB_PASSWORD" >&2; exit 3'), secrets: ['DB_PASSWORD'] },
        parfail: { kind: 'parallel', module: 'parfail.mjs', secrets: ['DB_PASSWORD'] },
        seq: { kind: 'sequence', steps: ['cmd', 'step'] },
        many: { kind: 'parallel', module: 'many.mjs', secrets: ['DB_PASSWORD'] },
        manyplain: { kind: 'parallel', module: 'many.mjs' },
      },
    }),
    'many.mjs': PARALLEL_MANY,
    'par.mjs': PARALLEL_MODULE,
    'step.mjs': STEP_MODULE,
    'parfail.mjs': [
      'export const split = () => [0];',
      'export const work = () => { throw new Error(`unit bad ${process.env.DB_PASSWORD}`); };',
      'export const reduce = () => null;',
      '',
    ].join('\n'),
  });
  await client.deploy(dir);
}

/** The sizes of a parallel TaskInstance's first batches (`<id>.b<first>`), from its workunits queue's `added` events. */
async function batchSizes(queue: string, instanceId: string, units: number): Promise<number[]> {
  const entries = await testRedis().xrange(`{tydra}:bull:${queue}:events`, '-', '+');
  const firsts = entries
    .map(([, fields]) => (fields[fields.indexOf('event') + 1] === 'added' ? fields[fields.indexOf('jobId') + 1] : ''))
    .map((jobId) => /^(.+)\.b(\d+)$/.exec(jobId ?? ''))
    .filter((match) => match?.[1] === instanceId)
    .map((match) => Number(match?.[2]))
    .sort((a, b) => a - b);
  return firsts.map((first, i) => (firsts[i + 1] ?? units) - first);
}

async function assertNotInRedis(value: string): Promise<void> {
  for (const text of await everyRedisString(testRedis())) {
    assert.ok(!text.includes(value), 'a secret value is in Redis in clear');
  }
}

describe('secrets and env of commands, parallel phases, sequence steps and schedules (@integration)', function () {
  this.timeout(90_000);
  const key = randomBytes(32).toString('base64');
  const value = `pw-${randomUUID()}`;
  const token = `tok-${randomUUID()}`;

  async function setUp(withKey = true): Promise<Tydra> {
    await startCluster(1, withKey ? { secretKey: key } : {});
    const client = testClient({ secretKey: key });
    await deployKinds(client);
    await client.setSecret('DB_PASSWORD', value);
    await client.setSecret('PROD_TOKEN', token);
    return client;
  }

  it('a command task gets its secrets (declared and mapped) and env; printed, they are masked (client and CLI)', async () => {
    const client = await setUp();
    const run = await client.submit('kinds/cmd', null, {
      secrets: { API_TOKEN: 'PROD_TOKEN' },
      env: { GREETING: 'hi' },
    });
    assert.deepEqual(await run.result(), { db: sha256(value), api: sha256(token), greeting: 'hi', echo: '***' });
    assert.ok((await run.status()).logs.includes('[stderr] command sees ***'));
    const viaCli = await cli([
      ...['run', 'kinds/cmd', '--secret', 'DB_PASSWORD=PROD_TOKEN', '--env', 'GREETING=cli', '--redis', redisUrl()],
    ]);
    assert.equal(viaCli.exitCode, 0, viaCli.stderr);
    assert.deepEqual(JSON.parse(viaCli.stdout), { db: sha256(token), api: sha256(''), greeting: 'cli', echo: '***' });
    await assertNotInRedis(value);
    await assertNotInRedis(token);
  });

  it('every phase of a parallel module task sees the secrets and env; its logs and result mask them', async () => {
    const client = await setUp();
    const run = await client.submit('kinds/par', null, { env: { GREETING: 'par' } });
    const seen = (phase: string) => ({ phase, db: sha256(value), greeting: 'par' });
    assert.deepEqual(await run.result(), {
      results: [seen('work 1'), seen('work 2')],
      reduce: seen('reduce'),
      echo: '***',
    });
    const { logs } = await run.status();
    for (const line of ['[split] split sees ***', '[workunit 0] work sees ***', '[reduce] reduce sees ***']) {
      assert.ok(logs.includes(line), `${line} in ${JSON.stringify(logs)}`);
    }
    const viaCli = await cli(['run', 'kinds/par', '--env', 'GREETING=cli', '--redis', redisUrl()]);
    assert.equal(viaCli.exitCode, 0, viaCli.stderr);
    assert.equal((JSON.parse(viaCli.stdout) as { reduce: { greeting: string } }).reduce.greeting, 'cli');
    await assertNotInRedis(value);
  });

  it('every phase of a parallel task written as commands sees the secrets and env, masked in logs', async () => {
    const client = await setUp();
    const run = await client.submit('kinds/parcmd', null, { env: { GREETING: 'cmds' } });
    const work = (unit: number) => ({ unit, db: sha256(value), greeting: 'cmds' });
    assert.deepEqual(await run.result(), {
      results: [work(1), work(2)],
      db: sha256(value),
      greeting: 'cmds',
      echo: '***',
    });
    const { logs } = await run.status();
    for (const line of ['[split] [stderr] split sees ***', '[reduce] [stderr] reduce sees ***']) {
      assert.ok(logs.includes(line), `${line} in ${JSON.stringify(logs)}`);
    }
    assert.ok(
      logs.some((line) => /^\[workunit \d\] \[stderr\] work sees \*\*\*$/.test(line)),
      JSON.stringify(logs),
    );
    await assertNotInRedis(value);
  });

  it("each step of a sequence gets the submission's secret mapping and env, over its own declared secrets", async () => {
    const client = await setUp();
    const run = await client.submit('kinds/seq', null, {
      secrets: { API_TOKEN: 'PROD_TOKEN' },
      env: { GREETING: 'seq' },
    });
    assert.deepEqual(await run.result(), {
      first: { db: sha256(value), api: sha256(token), greeting: 'seq', echo: '***' },
      db: sha256(value),
      api: sha256(token),
      greeting: 'seq',
    });
    const viaCli = await cli([
      ...['run', 'kinds/seq', '--secret', 'API_TOKEN=PROD_TOKEN', '--env', 'GREETING=cli', '--redis', redisUrl()],
    ]);
    assert.equal(viaCli.exitCode, 0, viaCli.stderr);
    assert.equal((JSON.parse(viaCli.stdout) as { greeting: string }).greeting, 'cli');
    assert.equal((JSON.parse(viaCli.stdout) as { api: string }).api, sha256(token));
    await assertNotInRedis(value);
    await assertNotInRedis(token);
  });

  it("a failing command's or workunit's error masks the secret it printed", async () => {
    const client = await setUp();
    const command = await client.submit('kinds/cmdfail');
    await assert.rejects(command.result(), (error: Error) => error.message.includes('bad ***'));
    const { error: commandError, logs } = await command.status();
    assert.ok(commandError?.includes('bad ***') && logs.includes('[stderr] bad ***'), commandError);
    const parallel = await client.submit('kinds/parfail');
    await assert.rejects(parallel.result(), (error: Error) => /workunit 0 failed: unit bad \*\*\*/.test(error.message));
    await assertNotInRedis(value);
  });

  it('a node without the key refuses a command, a parallel task and a step that need secrets, saying so', async () => {
    const client = await setUp(false);
    const refusal = /Expected node .* to have a secret key \(TYDRA_SECRET_KEY or --secret-key-file\)/;
    for (const ref of ['kinds/cmd', 'kinds/par', 'kinds/parcmd', 'kinds/seq']) {
      await assert.rejects((await client.submit(ref)).result(), refusal, ref);
    }
  });

  it('the workunits of a parallel task that needs secrets run only on nodes holding the key, plain ones anywhere', async () => {
    // The keyless node first, idle and large: it pulls every batch it can.
    const { nodes } = await startCluster(1, { concurrency: 8 });
    const keyless = nodes[0];
    assert.ok(keyless !== undefined);
    const holder = await startNode({ secretKey: key, concurrency: 1 });
    const client = testClient({ secretKey: key });
    await deployKinds(client);
    await client.setSecret('DB_PASSWORD', value);
    await waitFor('both nodes to publish whether they hold a key', async () => {
      const listed = await client.nodes();
      return listed.filter((node) => node.secretKey !== undefined).length === 2 ? true : undefined;
    });
    const input = { units: 24, ms: 40 };
    const run = await client.submit('kinds/many', input);
    assert.deepEqual(await run.result(), { units: 24, hashes: [sha256(value)] });
    assert.equal(keyless.workunitStats.units, 0, 'the keyless node ran none of them');
    assert.equal(holder.workunitStats.units, 24);
    // Its batches were sized for the key holder's one slot, not the cluster's nine: n units split
    // handed over at once make batches of ceil(n / (2 × slots)), 12 here, at most 2 for nine slots.
    const sizes = await batchSizes(SECRETS_WORKUNITS_QUEUE, run.id, 24);
    assert.ok(Math.max(...sizes) >= 3, `batch sizes ${sizes.join(', ')}`);
    // The same units without secrets: the keyless node takes its share (so it could have above).
    const plain = await (await client.submit('kinds/manyplain', input)).result();
    assert.deepEqual(plain, { units: 24, hashes: [sha256('')] });
    assert.ok(keyless.workunitStats.units > 0, 'the keyless node ran some plain units');
    assert.equal(keyless.workunitStats.units + holder.workunitStats.units, 48);
  });

  it('a cancel of a parallel task that needs secrets removes its batches waiting in workunits.secrets', async () => {
    const client = await setUp();
    const secretsQueue = new Queue(SECRETS_WORKUNITS_QUEUE, { prefix: '{tydra}:bull', connection: testRedis() });
    const plainQueue = new Queue(WORKUNITS_QUEUE, { prefix: '{tydra}:bull', connection: testRedis() });
    defer(() => Promise.all([secretsQueue.close(), plainQueue.close()]));
    const run = await client.submit('kinds/many', { units: 60, ms: 500 });
    const waiting = async () =>
      (await secretsQueue.getJobs(['waiting', 'prioritized'])).filter((job) => job.data.instanceId === run.id);
    await waitFor('batches waiting in workunits.secrets', async () =>
      (await waiting()).length > 0 ? true : undefined,
    );
    assert.equal(await plainQueue.count(), 0, 'none in the plain workunits queue');
    await run.cancel();
    await assert.rejects(run.result(), TaskCancelledError);
    assert.deepEqual(await waiting(), []);
  });

  it('a schedule carries its env and secret mapping to every firing (CLI --every 1s, fires twice)', async () => {
    await setUp();
    const tasks = new Queue<TaskInstanceData>(TASKS_QUEUE, { prefix: '{tydra}:bull', connection: testRedis() });
    defer(() => tasks.close());
    const missing = await cli([
      ...['schedule', 'add', 'nope', 'kinds/cmd', '--every', '1s', '--secret', 'API_TOKEN=ABSENT'],
      ...['--redis', redisUrl()],
    ]);
    assert.equal(missing.exitCode, 1);
    assert.match(missing.stderr, /Expected secret ABSENT to be stored/);
    const add = await cli([
      ...['schedule', 'add', 'tick', 'kinds/cmd', '--every', '1s', '--secret', 'API_TOKEN=PROD_TOKEN'],
      ...['--env', 'GREETING=tick', '--redis', redisUrl()],
    ]);
    assert.equal(add.exitCode, 0, add.stderr);
    assert.match(add.stdout, / {2}env GREETING {2}secrets API_TOKEN$/);
    const ls = JSON.parse((await cli(['schedule', 'ls', '--json', '--redis', redisUrl()])).stdout) as unknown[];
    assert.deepEqual(ls, [
      {
        ...(ls[0] as object),
        name: 'tick',
        env: { GREETING: 'tick' },
        secrets: { API_TOKEN: 'PROD_TOKEN' },
      },
    ]);
    const fired = await waitFor(
      'two firings',
      async () => {
        const done = (await tasks.getJobs(['completed'], 0, -1, true)).filter((job) => job.data.schedule === 'tick');
        return done.length >= 2 ? done : undefined;
      },
      30_000,
    );
    assert.equal((await cli(['schedule', 'rm', 'tick', '--redis', redisUrl()])).exitCode, 0);
    for (const job of fired.slice(0, 2) as Array<Job<TaskInstanceData>>) {
      assert.deepEqual(job.returnvalue, { db: sha256(value), api: sha256(token), greeting: 'tick', echo: '***' });
      assert.deepEqual(job.data.secrets, { DB_PASSWORD: 'DB_PASSWORD', API_TOKEN: 'PROD_TOKEN' });
    }
    await assertNotInRedis(value);
    await assertNotInRedis(token);
  });

  it('a cron schedule (seconds field) fires twice through the client; a missing secret fails the add', async () => {
    const client = await setUp();
    await assert.rejects(
      client.addSchedule('bad', 'kinds/step', { every: '1s', secrets: { API_TOKEN: 'ABSENT' } }),
      (error: Error) =>
        error instanceof UnknownSecretError && /Expected secret ABSENT to be stored/.test(error.message),
    );
    const tasks = new Queue<TaskInstanceData>(TASKS_QUEUE, { prefix: '{tydra}:bull', connection: testRedis() });
    defer(() => tasks.close());
    const added = await client.addSchedule('cron', 'kinds/step', {
      cron: '* * * * * *',
      input: 'in',
      env: { GREETING: 'cron' },
      secrets: { API_TOKEN: 'PROD_TOKEN' },
    });
    assert.deepEqual([added.env, added.secrets], [{ GREETING: 'cron' }, { API_TOKEN: 'PROD_TOKEN' }]);
    const fired = await waitFor(
      'two cron firings',
      async () => {
        const done = (await tasks.getJobs(['completed'], 0, -1, true)).filter((job) => job.data.schedule === 'cron');
        return done.length >= 2 ? done : undefined;
      },
      30_000,
    );
    await client.removeSchedule('cron');
    for (const job of fired.slice(0, 2)) {
      assert.deepEqual(job.returnvalue, { first: 'in', db: sha256(value), api: sha256(token), greeting: 'cron' });
    }
  });
});
