import assert from 'node:assert/strict';
import { request } from 'node:http';

import { Dashboard } from '../../../lib/ops/dashboard.js';
import type { DashboardOptions } from '../../../lib/ops/dashboard-options.js';
import { defer, recordingLogger, redisUrl } from '../../helpers.js';

const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});
const ADMIN = basic('ops', 's3cret-admin');
const VIEWER = basic('viewer', 's3cret-viewer');
const USERS: DashboardOptions['auth'] = [
  { user: 'ops', password: 's3cret-admin' },
  { user: 'viewer', password: 's3cret-viewer', role: 'read-only' },
];

async function startDashboard(options: DashboardOptions = {}): Promise<string> {
  const dashboard = new Dashboard({ redis: redisUrl(), port: 0, ...options });
  defer(() => dashboard.close());
  return dashboard.start();
}

interface BoardQueue {
  name: string;
  readOnlyMode: boolean;
  isPaused: boolean;
}

async function boardQueues(url: string, headers: Record<string, string>): Promise<BoardQueue[]> {
  const response = await fetch(`${url}api/queues?activeQueue=&page=1&jobsPerPage=10`, { headers });
  assert.equal(response.status, 200);
  return ((await response.json()) as { queues: BoardQueue[] }).queues;
}

/** A state-changing request as the board's own page sends it: same origin. */
function put(url: string, path: string, headers: Record<string, string>): Promise<Response> {
  return fetch(`${url}${path}`, { method: 'PUT', headers: { origin: new URL(url).origin, ...headers } });
}

/** A GET with a chosen Host header (fetch will not send one it did not derive from the URL). */
function getWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}api/queues`, { headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the dashboard gate: users, roles and same-origin checks (@integration)', function () {
  this.timeout(20_000);

  it('gives the read-only user Bull Board read-only mode on every queue, and the admin the tasks buttons', async () => {
    const url = await startDashboard({ auth: USERS });
    const viewed = await boardQueues(url, VIEWER);
    assert.deepEqual(
      viewed.map((queue) => [queue.name, queue.readOnlyMode]),
      [
        ['tasks', true],
        ['workunits', true],
        ['workunits.secrets', true],
        ['schedules', true],
        ['maintenance', true],
      ],
    );
    assert.equal((await put(url, 'api/queues/tasks/pause', VIEWER)).status, 405);
    assert.equal((await boardQueues(url, ADMIN)).find((queue) => queue.name === 'tasks')?.isPaused, false);

    const admin = await boardQueues(url, ADMIN);
    assert.deepEqual(
      admin.map((queue) => [queue.name, queue.readOnlyMode]),
      [
        ['tasks', false],
        ['workunits', true],
        ['workunits.secrets', true],
        ['schedules', true],
        ['maintenance', true],
      ],
    );
    assert.equal((await put(url, 'api/queues/tasks/pause', ADMIN)).status, 200);
    assert.equal((await boardQueues(url, ADMIN)).find((queue) => queue.name === 'tasks')?.isPaused, true);
    assert.equal((await put(url, 'api/queues/tasks/resume', ADMIN)).status, 200);
  });

  it('refuses unknown users and wrong passwords, and logs neither a password nor a tried one', async () => {
    const { logger, entries } = recordingLogger();
    const url = await startDashboard({ auth: USERS, logger });
    for (const headers of [{}, basic('ops', 'guess-one'), basic('nobody', 's3cret-admin'), basic('ops', '')]) {
      const response = await fetch(`${url}api/queues`, { headers });
      assert.equal(response.status, 401);
      assert.match(response.headers.get('www-authenticate') ?? '', /^Basic realm="tydra"/);
    }
    assert.equal((await fetch(`${url}api/queues`, { headers: ADMIN })).status, 200);
    const logged = JSON.stringify(entries);
    assert.ok(entries.some((entry) => entry.msg === 'dashboard started'));
    for (const secret of ['s3cret-admin', 's3cret-viewer', 'guess-one']) {
      assert.ok(!logged.includes(secret), `a log line holds ${secret}`);
    }
  });

  it('refuses a state-changing request from another origin or naming none (CSRF), with or without auth', async () => {
    for (const [url, headers] of [
      [await startDashboard({ auth: USERS }), ADMIN],
      [await startDashboard(), {}],
    ] as const) {
      const host = new URL(url).host;
      const refused: Array<Record<string, string>> = [
        {},
        { origin: 'http://evil.example' },
        { origin: 'null' },
        { referer: `http://evil.example/${host}/` },
        { origin: `http://${host}.evil.example` },
      ];
      for (const extra of refused) {
        const response = await fetch(`${url}api/queues/tasks/pause`, {
          method: 'PUT',
          headers: { ...headers, ...extra },
        });
        assert.equal(response.status, 403, `PUT with ${JSON.stringify(extra)}`);
        assert.equal(((await response.json()) as { error: string }).error, 'cross-origin request refused');
      }
      assert.equal((await boardQueues(url, headers)).find((queue) => queue.name === 'tasks')?.isPaused, false);
      const fromReferer = await fetch(`${url}api/queues/tasks/pause`, {
        method: 'PUT',
        headers: { ...headers, referer: `${url}queue/tasks` },
      });
      assert.equal(fromReferer.status, 200);
      assert.equal((await put(url, 'api/queues/tasks/resume', headers)).status, 200);
    }
  });

  it('refuses to start beyond loopback without users, and starts open there with insecureNoAuth (logged loudly)', async () => {
    assert.throws(() => new Dashboard({ redis: redisUrl(), host: '0.0.0.0', port: 0 }), /--insecure-no-auth/);
    const { logger, entries } = recordingLogger();
    const url = await startDashboard({ host: '0.0.0.0', insecureNoAuth: true, logger });
    assert.ok(entries.some((entry) => entry.level === 40 && /WITHOUT authentication/.test(entry.msg)));
    const port = new URL(url).port;
    assert.equal((await fetch(`http://127.0.0.1:${port}/api/queues`)).status, 200);
  });

  it('an open loopback dashboard answers only to loopback host names (DNS rebinding)', async () => {
    const url = await startDashboard();
    const port = new URL(url).port;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost']) {
      assert.equal(await getWithHost(url, host), 200, host);
    }
    for (const host of [`evil.example:${port}`, `127.0.0.1.evil.example:${port}`, 'evil.example']) {
      assert.equal(await getWithHost(url, host), 403, host);
    }
    const guarded = await startDashboard({ auth: USERS });
    assert.equal(await getWithHost(guarded, 'dashboard.example.com'), 401, 'with users, any name asks for them');
  });
});
