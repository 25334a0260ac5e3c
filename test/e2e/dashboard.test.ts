import assert from 'node:assert/strict';

import { Queue } from 'bullmq';

import { TaskNotFoundError } from '../../lib/core/errors.js';
import { Dashboard } from '../../lib/ops/dashboard.js';
import { copyFixture, defer, redisUrl, startCluster, testClient, testRedis, waitFor } from '../helpers.js';

async function queueNames(url: string, headers: Record<string, string> = {}): Promise<string[]> {
  const response = await fetch(`${url}api/queues?activeQueue=&page=1&jobsPerPage=10`, { headers });
  assert.equal(response.status, 200);
  const body = (await response.json()) as { queues: Array<{ name: string }> };
  return body.queues.map((queue) => queue.name).sort();
}

/** The queues every board lists, whatever the nodes. */
const SHARED_QUEUES = ['tasks', 'workunits', 'workunits.secrets', 'schedules', 'maintenance'];

describe('the dashboard (@integration)', function () {
  this.timeout(30_000);

  it('shows the tasks, workunits (both), schedules and maintenance queues and every node queue, following nodes as they come', async () => {
    const { nodes } = await startCluster(1);
    const dashboard = new Dashboard({ redis: redisUrl(), port: 0, refreshMs: 100 });
    defer(() => dashboard.close());
    const url = await dashboard.start();
    assert.deepEqual(await queueNames(url), [...SHARED_QUEUES, 'node.' + nodes[0]?.id].sort());
    const { nodes: more } = await startCluster(1);
    // The dashboard refreshes its list every 100 ms; wait for it rather than sleep a fixed time.
    const expected = [...SHARED_QUEUES, 'node.' + nodes[0]?.id, 'node.' + more[0]?.id].sort();
    await waitFor('the dashboard to list the second node', async () =>
      JSON.stringify(await queueNames(url)) === JSON.stringify(expected) ? true : undefined,
    );
  });

  it('refuses to start on a port another server holds, naming the address, and leaves nothing open', async () => {
    const first = new Dashboard({ redis: redisUrl(), port: 0 });
    defer(() => first.close());
    const port = Number(new URL(await first.start()).port);
    const second = new Dashboard({ redis: redisUrl(), port });
    defer(() => second.close());
    await assert.rejects(second.start(), {
      code: 'EADDRINUSE',
      message: `listen EADDRINUSE: address already in use 127.0.0.1:${port}`,
    });
    assert.equal(second.url, '', 'no URL for a dashboard that does not serve');
  });

  it('asks for basic auth when credentials are set', async () => {
    const dashboard = new Dashboard({ redis: redisUrl(), port: 0, auth: { user: 'ops', password: 's3cret' } });
    defer(() => dashboard.close());
    const url = await dashboard.start();
    const denied = await fetch(`${url}api/queues`);
    assert.equal(denied.status, 401);
    const wrong = await fetch(`${url}api/queues`, {
      headers: { authorization: `Basic ${Buffer.from('ops:nope').toString('base64')}` },
    });
    assert.equal(wrong.status, 401);
    assert.deepEqual(
      await queueNames(url, { authorization: `Basic ${Buffer.from('ops:s3cret').toString('base64')}` }),
      [...SHARED_QUEUES].sort(),
    );
  });
});

interface BoardJob {
  id: string;
  name: string;
  data: Record<string, unknown>;
  externalUrl?: { displayText?: string; href: string };
}
interface BoardQueue {
  name: string;
  description?: string;
  readOnlyMode: boolean;
  jobs: BoardJob[];
}

async function boardQueue(url: string, name: string, status: string): Promise<BoardQueue> {
  const response = await fetch(
    `${url}api/queues?activeQueue=${encodeURIComponent(name)}&status=${status}&page=1&jobsPerPage=10`,
  );
  assert.equal(response.status, 200);
  const queue = ((await response.json()) as { queues: BoardQueue[] }).queues.find((q) => q.name === name);
  assert.ok(queue, `the board lists ${name}`);
  return queue;
}

describe('what the board shows and allows on tydra queues (@integration)', function () {
  this.timeout(60_000);

  it('lists tasks first, titles cards by package, sha1, task and node, shows ISO times and links the two halves', async () => {
    const { nodes } = await startCluster(1);
    const nodeId = nodes[0]?.id ?? '';
    const tydra = testClient();
    const { sha1 } = await tydra.deploy(await copyFixture('probe'));
    const run = await tydra.submit('probe/echo', { at: 1_800_000_000_000 });
    await run.result();
    const dashboard = new Dashboard({ redis: redisUrl(), port: 0 });
    defer(() => dashboard.close());
    const url = await dashboard.start();

    const tasks = await boardQueue(url, 'tasks', 'completed');
    const response = await fetch(`${url}api/queues?activeQueue=&page=1&jobsPerPage=10`);
    const order = ((await response.json()) as { queues: BoardQueue[] }).queues.map((queue) => queue.name);
    assert.deepEqual(order, ['tasks', `node.${nodeId}`, 'workunits', 'workunits.secrets', 'schedules', 'maintenance']);
    assert.match(tasks.description ?? '', /waits in waiting-children while its node job is active/);
    const card = tasks.jobs.find((job) => job.id === run.id);
    assert.equal(card?.name, `probe@${sha1.slice(0, 7)}/echo · ${nodeId}`);
    assert.match(String(card?.data.submittedAt), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(card?.data.input, { at: 1_800_000_000_000 }, 'the task input is shown as submitted');
    assert.equal(card?.externalUrl?.href, `/queue/node.${encodeURIComponent(nodeId)}/${run.id}`);

    const nodeQueue = await boardQueue(url, `node.${nodeId}`, 'completed');
    assert.equal(nodeQueue.readOnlyMode, true);
    const nodeCard = nodeQueue.jobs.find((job) => job.id === run.id);
    assert.equal(nodeCard?.name, `probe@${sha1.slice(0, 7)}/echo · ${nodeId}`);
    assert.equal(nodeCard?.externalUrl?.href, `/queue/tasks/${run.id}`);
  });

  it('refuses to retry, add, clean or edit node jobs and to pause maintenance, even for an admin', async () => {
    const { nodes } = await startCluster(1);
    const nodeQueue = `node.${nodes[0]?.id ?? ''}`;
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const run = await tydra.submit('probe/echo', {});
    await run.result();
    const dashboard = new Dashboard({ redis: redisUrl(), port: 0 });
    defer(() => dashboard.close());
    const url = await dashboard.start();
    const origin = new URL(url).origin;
    const attempts: Array<[string, string, string?]> = [
      ['PUT', `api/queues/${nodeQueue}/${run.id}/retry`],
      ['PUT', `api/queues/${nodeQueue}/retry/completed`],
      ['POST', `api/queues/${nodeQueue}/add`, JSON.stringify({ name: 'run', data: {} })],
      ['PUT', `api/queues/${nodeQueue}/${run.id}/clean`],
      ['PATCH', `api/queues/${nodeQueue}/${run.id}/update-data`, JSON.stringify({ jobData: {} })],
      ['PUT', 'api/queues/maintenance/pause'],
      ['PUT', 'api/queues/maintenance/clean/completed'],
    ];
    for (const [method, path, body] of attempts) {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: { origin, 'content-type': 'application/json' },
        body,
      });
      assert.equal(response.status, 405, `${method} ${path}`);
    }
    const status = await run.status();
    assert.equal(status.state, 'completed');
    assert.equal((await boardQueue(url, nodeQueue, 'completed')).jobs.length, 1);
  });

  it("answers the board's Delete of a TaskInstance that has not ended, and its removal of children, with where to cancel it", async () => {
    await startCluster(1);
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const done = await tydra.submit('probe/echo', {});
    await done.result();
    // `sleep` never returns: it runs until it is cancelled below.
    const running = await tydra.submit('probe/sleep', null, { timeoutMs: 60_000 });
    defer(async () => {
      await tydra.cancel(running.id);
      await running.result().catch(() => undefined);
    });
    await waitFor('the sleep to run', async () => ((await running.status()).state === 'running' ? true : undefined));
    const dashboard = new Dashboard({ redis: redisUrl(), port: 0 });
    defer(() => dashboard.close());
    const url = await dashboard.start();
    const remove = (id: string) =>
      fetch(`${url}api/queues/tasks/${id}/clean`, { method: 'PUT', headers: { origin: new URL(url).origin } });

    const refused = await remove(running.id);
    assert.equal(refused.status, 409);
    const body = (await refused.json()) as { error: string; message: string };
    assert.equal(body.error, 'cancel it instead');
    assert.equal(
      body.message,
      `TaskInstance ${running.id} has not ended (BullMQ state waiting-children): it is cancelled, not deleted. ` +
        `Cancel it on /tydra/instances/${running.id} (the link on its card) or with tydra cancel ${running.id}.`,
    );
    const orphaning = await fetch(`${url}api/queues/tasks/${running.id}/remove-unprocessed-children`, {
      method: 'PUT',
      headers: { origin: new URL(url).origin },
    });
    assert.equal(orphaning.status, 405);
    assert.match(((await orphaning.json()) as { message: string }).message, /are its node job or its steps/);
    assert.equal((await running.status()).state, 'running', 'untouched');

    assert.equal((await remove(done.id)).status, 204);
    await assert.rejects(done.status(), TaskNotFoundError);
  });

  it("refuses the tasks queue's Clean of unended states, its Empty while TaskInstances wait, and Obliterate", async () => {
    // No master: what is submitted stays waiting in tasks.
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const dashboard = new Dashboard({ redis: redisUrl(), port: 0 });
    defer(() => dashboard.close());
    const url = await dashboard.start();
    const put = (path: string) =>
      fetch(`${url}api/queues/tasks/${path}`, { method: 'PUT', headers: { origin: new URL(url).origin } });
    assert.equal((await put('empty')).status, 200, 'nothing waits: Empty goes on to the board');

    const waiting = await tydra.submit('probe/echo', { left: 'alone' });
    const emptied = await put('empty');
    assert.equal(emptied.status, 409);
    assert.deepEqual(await emptied.json(), {
      error: 'cancel them instead',
      message:
        '1 TaskInstance waits in tasks: Empty would remove them without cancelling them. A TaskInstance that has ' +
        'not ended is cancelled, not removed: removed, it keeps its package version held, its node job or steps ' +
        'run on, and its client waits for ever. Cancel each with tydra cancel ID.',
    });
    for (const state of ['waiting', 'wait', 'delayed', 'prioritized', 'active', 'waiting-children', 'paused']) {
      const cleaned = await put(`clean/${state}`);
      assert.equal(cleaned.status, 409, state);
      assert.match(
        ((await cleaned.json()) as { message: string }).message,
        new RegExp(`^Clean of ${state} TaskInstances is refused: only completed and failed ones may be cleaned\\.`),
      );
    }
    const obliterated = await put('obliterate');
    assert.equal(obliterated.status, 405);
    assert.match(((await obliterated.json()) as { message: string }).message, /^Obliterate would delete every/);
    assert.equal((await put('clean/completed')).status, 200, 'ended states go on to the board');
    assert.equal((await put('clean/failed')).status, 200);
    assert.equal((await waiting.status()).state, 'queued', 'untouched');
  });

  it('lets an admin run the prune now on the read-only maintenance queue, and no one anything else there', async () => {
    await startCluster(1);
    const dashboard = new Dashboard({
      redis: redisUrl(),
      port: 0,
      auth: [
        { user: 'ops', password: 'a' },
        { user: 'viewer', password: 'b', role: 'read-only' },
      ],
    });
    defer(() => dashboard.close());
    const url = await dashboard.start();
    const as = (user: string, password: string) => ({
      origin: new URL(url).origin,
      authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
    });
    const run = (id: string, headers: Record<string, string>) =>
      fetch(`${url}api/queues/maintenance/job-schedulers/${id}/run`, { method: 'PUT', headers });
    assert.equal((await run('prune-packages', as('viewer', 'b'))).status, 403);
    assert.equal((await run('other', as('ops', 'a'))).status, 405);
    const { origin: _origin, ...noOrigin } = as('ops', 'a');
    assert.equal((await run('prune-packages', noOrigin)).status, 403);
    const response = await run('prune-packages', as('ops', 'a'));
    assert.equal(response.status, 200);
    const { job } = (await response.json()) as { job: { id: string; name: string } };
    assert.equal(job.name, 'prune');
    const maintenance = new Queue('maintenance', {
      prefix: '{tydra}:bull',
      connection: testRedis({ maxRetriesPerRequest: null }),
    });
    defer(() => maintenance.close());
    await waitFor('the prune run to complete', async () =>
      (await maintenance.getJobState(job.id)) === 'completed' ? true : undefined,
    );
  });
});
