import assert from 'node:assert/strict';

import { Dashboard } from '../../lib/ops/dashboard.js';
import { defer, redisUrl, startCluster, waitFor } from '../helpers.js';

async function queueNames(url: string, headers: Record<string, string> = {}): Promise<string[]> {
  const response = await fetch(`${url}api/queues?activeQueue=&page=1&jobsPerPage=10`, { headers });
  assert.equal(response.status, 200);
  const body = (await response.json()) as { queues: Array<{ name: string }> };
  return body.queues.map((queue) => queue.name).sort();
}

describe('the dashboard (@integration)', function () {
  this.timeout(30_000);

  it('shows the tasks and maintenance queues and every node queue, following nodes as they come', async () => {
    const { nodes } = await startCluster(1);
    const dashboard = new Dashboard({ redis: redisUrl(), port: 0, refreshMs: 100 });
    defer(() => dashboard.close());
    const url = await dashboard.start();
    assert.deepEqual(await queueNames(url), ['maintenance', 'node.' + nodes[0]?.id, 'tasks'].sort());
    const { nodes: more } = await startCluster(1);
    // The dashboard refreshes its list every 100 ms; wait for it rather than sleep a fixed time.
    const expected = ['maintenance', 'node.' + nodes[0]?.id, 'node.' + more[0]?.id, 'tasks'].sort();
    await waitFor('the dashboard to list the second node', async () =>
      JSON.stringify(await queueNames(url)) === JSON.stringify(expected) ? true : undefined,
    );
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
      ['maintenance', 'tasks'],
    );
  });
});
