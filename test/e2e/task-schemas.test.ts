import assert from 'node:assert/strict';

import { Queue } from 'bullmq';

import type { Tydra } from '../../lib/client/client.js';
import { InputSchemaError, ManifestError, TaskUnrecoverableError } from '../../lib/core/errors.js';
import { TASKS_QUEUE } from '../../queues/tasks.js';
import { tydra as cli } from '../bin/run-cli.js';
import { defer, makePackage, redisUrl, rejection, startCluster, testClient, testRedis } from '../helpers.js';

const GREET_INPUT = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] };
const GREETING = { type: 'object', properties: { greeting: { type: 'string' } }, required: ['greeting'] };

/** `greet` keeps its schemas; `liar` and `sum` return what breaks their `output`. */
async function deploySchemaPackage(client: Tydra): Promise<void> {
  const dir = await makePackage({
    'package.json': '{ "type": "module", "private": true }',
    'tydra.json': JSON.stringify({
      name: 'schemas',
      tasks: {
        greet: { module: 'greet.mjs', input: GREET_INPUT, output: GREETING },
        liar: { module: 'liar.mjs', output: GREETING },
        sum: { kind: 'parallel', module: 'sum.mjs', input: { type: 'array' }, output: { type: 'integer' } },
      },
    }),
    'greet.mjs': 'export default (input) => ({ greeting: `hello ${input.name}` });\n',
    'liar.mjs': [
      'export default (input, ctx) => {',
      '  ctx.log(`attempt ${ctx.attempt}`);',
      '  return { greeting: 42 };',
      '};',
      '',
    ].join('\n'),
    // Its reduce returns a string where the schema asks for an integer.
    'sum.mjs': [
      'export const split = (input) => input;',
      'export const work = (unit) => unit;',
      'export const reduce = async (results) => { let n = 0; for await (const r of results) n += r; return `${n}`; };',
      '',
    ].join('\n'),
  });
  await client.deploy(dir);
}

async function taskCounts(): Promise<Record<string, number>> {
  const tasks = new Queue(TASKS_QUEUE, {
    prefix: '{tydra}:bull',
    connection: testRedis({ maxRetriesPerRequest: null }),
  });
  defer(() => tasks.close());
  return tasks.getJobCounts();
}

describe('task input and output schemas (@integration)', function () {
  this.timeout(60_000);

  it('refuses a submit whose input breaks the schema, with its path, enqueueing nothing', async () => {
    const client = testClient();
    await deploySchemaPackage(client);
    const before = await taskCounts();
    const error = await rejection(client.submit('schemas/greet', { name: 3 }, { key: 'once' }));
    assert.ok(error instanceof InputSchemaError, `got ${String(error)}`);
    assert.equal(error.message, 'Expected the input to match tasks.greet.input: /name must be string');
    assert.equal(error.path, '/name');
    await assert.rejects(client.submit('schemas/greet', {}), {
      name: 'InputSchemaError',
      message: "Expected the input to match tasks.greet.input: (root) must have required property 'name'",
    });
    await assert.rejects(client.submit('schemas/sum', 'not an array'), {
      message: 'Expected the input to match tasks.sum.input: (root) must be array',
    });
    assert.deepEqual(await taskCounts(), before, 'nothing was enqueued');

    const ran = await cli(['run', 'schemas/greet', '--input', '{"name":[1]}', '--redis', redisUrl()]);
    assert.equal(ran.exitCode, 1);
    assert.match(ran.stderr, /Expected the input to match tasks\.greet\.input: \/name must be string/);
    assert.deepEqual(await taskCounts(), before, 'nothing was enqueued by the CLI either');
  });

  it('runs a TaskInstance whose input and output match', async () => {
    await startCluster(1);
    const client = testClient();
    await deploySchemaPackage(client);
    // The key was not claimed by the refused submit: this one runs.
    await assert.rejects(client.submit('schemas/greet', { name: 3 }, { key: 'k' }), InputSchemaError);
    const run = await client.submit('schemas/greet', { name: 'Ada' }, { key: 'k' });
    assert.deepEqual(await run.result(), { greeting: 'hello Ada' });
  });

  it('fails a TaskInstance whose output breaks the schema, with its path, without retrying', async () => {
    await startCluster(1);
    const client = testClient();
    await deploySchemaPackage(client);
    const liar = await client.submit('schemas/liar', null, { attempts: 3 });
    const error = await rejection(liar.result());
    assert.ok(error instanceof TaskUnrecoverableError, `got ${String(error)}`);
    assert.equal(error.message, 'Expected the output to match tasks.liar.output: /greeting must be string');
    const { state, logs } = await liar.status();
    assert.equal(state, 'failed');
    assert.deepEqual(
      logs.filter((line) => line.startsWith('attempt ')),
      ['attempt 1'],
    );

    const sum = await client.submit('schemas/sum', [1, 2, 3]);
    await assert.rejects(sum.result(), {
      message: 'Expected the output to match tasks.sum.output: (root) must be integer',
    });

    const ran = await cli(['run', 'schemas/liar', '--redis', redisUrl()]);
    assert.equal(ran.exitCode, 1);
    assert.match(ran.stderr, /Expected the output to match tasks\.liar\.output: \/greeting must be string/);
  });

  it('refuses to deploy a package whose schema does not compile, naming the field', async () => {
    const client = testClient();
    const dir = await makePackage({
      'tydra.json': JSON.stringify({
        name: 'badschema',
        tasks: { greet: { module: 'greet.mjs', input: { type: 'object', propertys: {} } } },
      }),
      'greet.mjs': 'export default () => null;\n',
    });
    const error = await rejection(client.deploy(dir));
    assert.ok(error instanceof ManifestError, `got ${String(error)}`);
    assert.equal(error.field, 'tasks.greet.input');
    assert.match(error.message, /`tasks\.greet\.input`.*unknown keyword: "propertys"/);
    const deployed = await cli(['deploy', dir, '--redis', redisUrl()]);
    assert.equal(deployed.exitCode, 1);
    assert.match(deployed.stderr, /tasks\.greet\.input/);
  });
});
