import assert from 'node:assert/strict';

import { Job, Queue } from 'bullmq';

import type { Tydra } from '../../lib/client/client.js';
import { TaskFailedError } from '../../lib/core/errors.js';
import { Dashboard } from '../../lib/ops/dashboard.js';
import { createKeys } from '../../lib/redis/keys.js';
import { TASKS_QUEUE } from '../../queues/tasks.js';
import { defer, makePackage, redisUrl, startCluster, testClient, testRedis, waitFor } from '../helpers.js';

const keys = createKeys();

/** Tasks whose every run differs (a nonce), and that fail when their input asks them to. */
const RETRY_PACKAGE = {
  'package.json': JSON.stringify({ type: 'module', private: true }),
  'tydra.json': JSON.stringify({
    name: 'again',
    tasks: {
      stamp: { module: 'stamp.mjs' },
      nap: { module: 'nap.mjs' },
      par: { kind: 'parallel', module: 'par.mjs' },
      seq: { kind: 'sequence', steps: ['stamp', { all: ['stamp', 'stamp'] }] },
    },
  }),
  'stamp.mjs': `export default (input) => {
    if (input?.fail) throw new Error('asked to fail: ' + input.fail);
    return { nonce: Math.random(), input };
  };\n`,
  'nap.mjs': `export default async (input) => {
    await new Promise((resolve) => setTimeout(resolve, input.ms));
    return { rested: input.ms };
  };\n`,
  'par.mjs': `
    export function split(input) { return Array.from({ length: input.n }, (_, i) => ({ i, fail: input.fail })); }
    export function work(unit) { if (unit.fail === unit.i) throw new Error('unit ' + unit.i + ' failed'); return unit.i; }
    export async function reduce(results) { let sum = 0; for await (const r of results) sum += r; return { sum, nonce: Math.random() }; }
  `,
};

async function deployed(): Promise<Tydra> {
  const tydra = testClient();
  await tydra.deploy(await makePackage(RETRY_PACKAGE));
  return tydra;
}

/** The board's own request: same origin, on the admin board of an open loopback dashboard. */
async function board(): Promise<(method: string, path: string, body?: unknown) => Promise<Response>> {
  const dashboard = new Dashboard({ redis: redisUrl(), port: 0 });
  defer(() => dashboard.close());
  const url = await dashboard.start();
  return (method, path, body) =>
    fetch(`${url}${path}`, {
      method,
      headers: { origin: new URL(url).origin, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
}

function tasksQueue(): Queue {
  const queue = new Queue(TASKS_QUEUE, {
    prefix: '{tydra}:bull',
    connection: testRedis({ maxRetriesPerRequest: null }),
  });
  defer(() => queue.close());
  return queue;
}

async function finalState(queue: Queue, id: string): Promise<string> {
  return waitFor(`TaskInstance ${id} to end`, async () => {
    const state = await queue.getJobState(id);
    return state === 'completed' || state === 'failed' ? state : undefined;
  });
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  assert.fail('expected a rejection');
}

describe("Bull Board's retry of an ended TaskInstance (@integration)", function () {
  this.timeout(60_000);

  it('runs a completed TaskInstance again: a new node job, a new result for status and result()', async () => {
    await startCluster(1);
    const tydra = await deployed();
    const run = await tydra.submit('again/stamp', { n: 1 });
    const first = (await run.result()) as { nonce: number };
    const send = await board();
    const queue = tasksQueue();

    assert.equal((await send('PUT', `api/queues/tasks/${run.id}/retry`)).status, 204);
    const second = (await tydra.run(run.id).result({ timeoutMs: 20_000 })) as { nonce: number };
    assert.notEqual(second.nonce, first.nonce, 'the task ran again');
    assert.equal(await finalState(queue, run.id), 'completed');
    const status = await tydra.run(run.id).status();
    assert.equal(status.state, 'completed');
    assert.deepEqual(status.result, second);
    const { logs } = await queue.getJobLogs(run.id);
    assert.equal(logs.filter((line) => line.startsWith('dispatched to node')).length, 2);
    assert.ok(logs.some((line) => line.startsWith('retried: run 2 starts afresh')));
  });

  it('runs a failed TaskInstance again after its input was fixed in the board, and it completes', async () => {
    await startCluster(1);
    const tydra = await deployed();
    const run = await tydra.submit('again/stamp', { fail: 'bad input' });
    const error = await rejection(run.result());
    assert.ok(error instanceof TaskFailedError);
    assert.match(error.message, /asked to fail: bad input/);
    const send = await board();

    // As the board's "edit data" does: what it shows (ISO times), with the input changed.
    const shown = (await (await send('GET', `api/queues/tasks/${run.id}`)).json()) as {
      job: { data: Record<string, unknown> };
    };
    assert.match(String(shown.job.data.submittedAt), /Z$/);
    const fixed = { ...shown.job.data, input: { fixed: true } };
    assert.equal((await send('PATCH', `api/queues/tasks/${run.id}/update-data`, { jobData: fixed })).status, 200);
    assert.equal((await send('PUT', `api/queues/tasks/${run.id}/retry`)).status, 204);
    const result = (await tydra.run(run.id).result({ timeoutMs: 20_000 })) as { input: unknown };
    assert.deepEqual(result.input, { fixed: true });
    const status = await tydra.run(run.id).status();
    assert.equal(status.state, 'completed');
    assert.equal(status.error, undefined);
    const stored = await Job.fromId(tasksQueue(), run.id);
    assert.equal(typeof stored?.data.submittedAt, 'number', 'the edit stored epoch times again');
  });

  it('runs a cancelled TaskInstance again: the old cancel does not stop the new run', async () => {
    await startCluster(1);
    const tydra = await deployed();
    const run = await tydra.submit('again/nap', { ms: 60_000 });
    await waitFor('the nap to run', async () => ((await run.status()).state === 'running' ? true : undefined));
    await tydra.cancel(run.id);
    await rejection(run.result());
    assert.equal((await run.status()).state, 'cancelled');
    const queue = tasksQueue();
    const job = await Job.fromId(queue, run.id);
    const send = await board();

    const short = { ...(job?.data as Record<string, unknown>), input: { ms: 10 } };
    assert.equal((await send('PATCH', `api/queues/tasks/${run.id}/update-data`, { jobData: short })).status, 200);
    assert.equal((await send('PUT', `api/queues/tasks/${run.id}/retry`)).status, 204);
    assert.deepEqual(await tydra.run(run.id).result({ timeoutMs: 20_000 }), { rested: 10 });
    assert.equal((await tydra.run(run.id).status()).state, 'completed');
  });

  it('runs a failed parallel TaskInstance again from a fresh split, and a sequence again from its first step', async () => {
    await startCluster(2);
    const tydra = await deployed();
    const queue = tasksQueue();
    const par = await tydra.submit('again/par', { n: 12, fail: 5 });
    assert.match((await rejection(par.result())).message, /unit 5 failed/);
    const seq = await tydra.submit('again/seq', { n: 1 });
    const before = (await seq.result()) as Array<{ nonce: number }>;
    const send = await board();
    const redis = testRedis();

    const job = await Job.fromId(queue, par.id);
    const fixed = { ...(job?.data as Record<string, unknown>), input: { n: 12 } };
    assert.equal((await send('PATCH', `api/queues/tasks/${par.id}/update-data`, { jobData: fixed })).status, 200);
    assert.equal((await send('PUT', `api/queues/tasks/${par.id}/retry`)).status, 204);
    assert.equal((await send('PUT', `api/queues/tasks/${seq.id}/retry`)).status, 204);
    const parResult = (await tydra.run(par.id).result({ timeoutMs: 30_000 })) as { sum: number };
    assert.equal(parResult.sum, 66, 'every unit ran in the new run');
    assert.equal(await redis.hget(keys.parallelState(par.id), 'failed'), '0');
    const after = (await tydra.run(seq.id).result({ timeoutMs: 30_000 })) as Array<{ nonce: number }>;
    assert.equal(after.length, 2);
    assert.notDeepEqual(
      after.map((branch) => branch.nonce),
      before.map((branch) => branch.nonce),
      'the steps ran again',
    );
    assert.equal(await finalState(queue, seq.id), 'completed');
  });
});
