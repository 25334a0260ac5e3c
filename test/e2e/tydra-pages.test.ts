import assert from 'node:assert/strict';

import { Queue } from 'bullmq';

import { sandboxMode } from '../../lib/node/heartbeat-facts.js';
import { Dashboard } from '../../lib/ops/dashboard.js';
import { FAILURES_PER_PAGE } from '../../lib/ops/instance-parts.js';
import { tydra as cli } from '../bin/run-cli.js';
import {
  copyFixture,
  defer,
  makePackage,
  redisUrl,
  rejection,
  startCluster,
  testClient,
  testRedis,
  waitFor,
} from '../helpers.js';

const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});
const ADMIN = basic('ops', 's3cret-admin');
const VIEWER = basic('viewer', 's3cret-viewer');

async function startDashboard(): Promise<string> {
  const dashboard = new Dashboard({
    redis: redisUrl(),
    port: 0,
    refreshMs: 100,
    auth: [
      { user: 'ops', password: 's3cret-admin' },
      { user: 'viewer', password: 's3cret-viewer', role: 'read-only' },
    ],
  });
  defer(() => dashboard.close());
  return dashboard.start();
}

async function get(url: string, path: string, headers: Record<string, string>): Promise<string> {
  const response = await fetch(`${url}${path}`, { headers });
  assert.equal(response.status, 200, `GET ${path}`);
  assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
  return response.text();
}

/** A form POST as the page's own button sends it (same origin), unless `headers` say otherwise. */
function post(url: string, path: string, headers: Record<string, string>, form: Record<string, string> = {}) {
  return fetch(`${url}${path}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { origin: new URL(url).origin, 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
}

const HOSTILE = '<script>alert(1)</script>';

/** A parallel task whose units fail unless their index divides by 3, and a sequence of small steps. */
const PARTS_PACKAGE = {
  'package.json': JSON.stringify({ type: 'module', private: true }),
  'tydra.json': JSON.stringify({
    name: 'parts',
    tasks: {
      many: { kind: 'parallel', module: 'many.mjs' },
      calc: { kind: 'sequence', steps: ['double', { all: ['inc', 'square'] }, 'join'] },
      broken: { kind: 'sequence', steps: ['double', 'fail', 'inc'] },
      double: { module: 'double.mjs' },
      inc: { module: 'inc.mjs' },
      square: { module: 'square.mjs' },
      join: { module: 'join.mjs' },
      fail: { module: 'fail.mjs' },
    },
  }),
  'many.mjs': `
    export function split(input) { return Array.from({ length: input.n }, (_, i) => i); }
    export function work(i) { if (i % 3 !== 0) throw new Error('unit ' + i + ' <failed>'); return i; }
    export async function reduce(results) { let ok = 0; for await (const r of results) if (r !== null) ok += 1; return ok; }
  `,
  'double.mjs': 'export default (n) => n * 2;\n',
  'inc.mjs': 'export default (n) => n + 1;\n',
  'square.mjs': 'export default (n) => n * n;\n',
  'join.mjs': "export default (values) => values.join('-');\n",
  'fail.mjs': 'export default (n) => { throw new Error(`no step past ${n}`); };\n',
};

describe('the tydra pages: nodes, TaskInstances, packages (@integration)', function () {
  this.timeout(60_000);

  it('list every node with its state, concurrency, running jobs and last heartbeat, behind auth', async () => {
    const { nodes } = await startCluster(2);
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    // `sleep` never returns: it runs until it is cancelled below.
    const run = await tydra.submit('probe/sleep', null, { timeoutMs: 60_000 });
    defer(async () => {
      await tydra.cancel(run.id);
      await run.result().catch(() => undefined);
    });
    const { nodeId } = await waitFor('the TaskInstance to run', async () => {
      const status = await run.status();
      return status.state === 'running' ? status : undefined;
    });
    const url = await startDashboard();
    assert.equal((await fetch(`${url}tydra/nodes`)).status, 401);
    const text = await get(url, 'tydra/nodes', VIEWER);
    for (const node of nodes) {
      const running = node.id === nodeId ? 1 : 0;
      const row = new RegExp(
        `${node.id}</a></td>\\s*<td>[^<]+\\(pid \\d+\\)</td>\\s*<td class="state-alive">alive</td>\\s*<td>2</td>\\s*<td>${running}</td>\\s*<td class="sandbox">[^<]+</td>\\s*<td class="cache">[^<]+</td>\\s*<td class="secret-key">no</td>\\s*<td class="pool">off</td>\\s*<td>\\d{4}-[^<]+ \\(\\d+ s ago\\)</td>`,
      );
      assert.match(text, row);
    }
    assert.match(text, /draining: alive, sent no new work \(tydra node drain ID; tydra node\s+resume ID undoes it\)/);
  });

  it("show each node's sandbox mode and package cache, published with its heartbeat, as tydra nodes does", async () => {
    const { nodes } = await startCluster(1);
    const node = nodes[0];
    assert.ok(node);
    const mode = sandboxMode(false, node.cgroups);
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const empty = await waitFor('the first heartbeat', async () => (await tydra.nodes()).find((n) => n.id === node.id));
    assert.deepEqual([empty.sandbox, empty.cachedVersions, empty.cachedBytes], [mode, 0, 0]);
    await (await tydra.submit('probe/echo', {})).result();
    const { bytes } = node.cache.summary();
    assert.ok(bytes > 0);
    // The next heartbeat after the version was extracted publishes it.
    await waitFor('a heartbeat with the cached version', async () =>
      (await tydra.nodes()).find((n) => n.id === node.id && n.cachedVersions === 1 && n.cachedBytes === bytes),
    );
    const url = await startDashboard();
    const text = await get(url, 'tydra/nodes', VIEWER);
    assert.match(
      text,
      new RegExp(`<td class="sandbox">${mode}</td>\\s*<td class="cache">1 version, [0-9.]+ (KiB|bytes)</td>`),
    );
    const listed = await cli(['nodes', '--redis', redisUrl()]);
    assert.match(listed.stdout, new RegExp(`${node.id} .* sandbox ${mode}  cache 1 version, `));
    const json = JSON.parse((await cli(['nodes', '--json', '--redis', redisUrl()])).stdout) as Array<
      Record<string, unknown>
    >;
    assert.deepEqual(
      json.map((n) => [n.id, n.sandbox, n.cachedVersions, n.cachedBytes]),
      [[node.id, mode, 1, bytes]],
    );
  });

  it('drain and resume a node from its page (admin only); a read-only user sees no button and is refused', async () => {
    const { nodes } = await startCluster(1);
    const nodeId = nodes[0]?.id ?? '';
    const tydra = testClient();
    const url = await startDashboard();
    const viewed = await get(url, 'tydra/nodes', VIEWER);
    assert.doesNotMatch(viewed, /<button/);
    assert.equal((await post(url, `tydra/nodes/${nodeId}/drain`, VIEWER)).status, 403);
    assert.match(await get(url, 'tydra/nodes', ADMIN), new RegExp(`/tydra/nodes/${nodeId}/drain"`));
    const drained = await post(url, `tydra/nodes/${nodeId}/drain`, ADMIN);
    assert.equal(drained.status, 303);
    assert.equal(drained.headers.get('location'), '/tydra/nodes');
    assert.equal((await tydra.nodes()).find((node) => node.id === nodeId)?.draining, true);
    const draining = await get(url, 'tydra/nodes', ADMIN);
    assert.match(draining, /<td class="state-draining">draining<\/td>/);
    assert.match(draining, new RegExp(`/tydra/nodes/${nodeId}/resume"`));
    // Another site's form is refused like any state-changing request from elsewhere.
    assert.equal(
      (await post(url, `tydra/nodes/${nodeId}/resume`, { ...ADMIN, origin: 'http://evil.example' })).status,
      403,
    );
    assert.equal((await post(url, `tydra/nodes/${nodeId}/resume`, ADMIN)).status, 303);
    assert.equal((await tydra.nodes()).find((node) => node.id === nodeId)?.draining, false);
    assert.match(await get(url, 'tydra/nodes', ADMIN), /<td class="state-alive">alive<\/td>/);
  });

  it('read a node whose queue was paused by something else than a drain as paused; Resume gives it work again', async () => {
    const { nodes } = await startCluster(1);
    const nodeId = nodes[0]?.id ?? '';
    const queue = new Queue(`node.${nodeId}`, {
      prefix: '{tydra}:bull',
      connection: testRedis({ maxRetriesPerRequest: null }),
    });
    defer(() => queue.close());
    await queue.pause();
    const url = await startDashboard();
    const text = await waitFor('the board to list the node queue', async () => {
      const page = await get(url, 'tydra/nodes', ADMIN);
      return page.includes('<td class="state-paused">paused</td>') ? page : undefined;
    });
    assert.match(text, new RegExp(`/tydra/nodes/${nodeId}/resume"`));
    assert.equal((await post(url, `tydra/nodes/${nodeId}/resume`, ADMIN)).status, 303);
    assert.equal(await queue.isPaused(), false);
    assert.match(await get(url, 'tydra/nodes', ADMIN), /<td class="state-alive">alive<\/td>/);
  });

  it('show a completed TaskInstance with its result and logs, and a failed one with its error, escaped', async () => {
    await startCluster(1);
    const tydra = testClient();
    const { sha1 } = await tydra.deploy(await copyFixture('probe'));
    const done = await tydra.submit('probe/echo', { x: HOSTILE });
    await done.result();
    const failed = await tydra.submit('probe/throw-message', { message: HOSTILE });
    await rejection(failed.result());
    const url = await startDashboard();
    assert.equal((await fetch(`${url}tydra/instances/${done.id}`)).status, 401);

    const text = await get(url, `tydra/instances/${done.id}`, ADMIN);
    assert.match(text, /<td class="state-completed" id="state">completed<\/td>/);
    assert.ok(text.includes(`probe@${sha1}/echo`));
    assert.ok(text.includes('42%'), 'progress in words');
    assert.match(text, /<pre id="logs">[^]*echo log line[^]*<\/pre>/);
    assert.ok(text.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), 'the result, escaped');
    assert.ok(!text.includes(HOSTILE) && !/<script/i.test(text));
    assert.ok(!text.includes('>Cancel</button>'), 'no Cancel for an ended TaskInstance');

    const failedText = await get(url, `tydra/instances/${failed.id}`, ADMIN);
    assert.match(failedText, /id="state">failed</);
    assert.match(failedText, /<pre id="error">[^<]*&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    assert.ok(!/<script/i.test(failedText));

    const missing = await fetch(`${url}tydra/instances/${encodeURIComponent(HOSTILE)}`, { headers: ADMIN });
    assert.equal(missing.status, 404);
    const missingText = await missing.text();
    assert.ok(!/<script/i.test(missingText));
    assert.match(missingText, /<h1>Not found<\/h1>/);
    const badQuery = await fetch(`${url}tydra/instances/${done.id}?cancel=${encodeURIComponent(HOSTILE)}`, {
      headers: ADMIN,
    });
    assert.equal(badQuery.status, 400);
    const badQueryText = await badQuery.text();
    assert.ok(!/<script/i.test(badQueryText));
    assert.match(badQueryText, /<h1>Not done<\/h1>/);
  });

  it("show a parallel TaskInstance's workunits with its failures a page at a time", async () => {
    await startCluster(1);
    const tydra = testClient();
    await tydra.deploy(await makePackage(PARTS_PACKAGE));
    // 36 units, 24 of which fail (every index not divisible by 3): more than one page of failures.
    const run = await tydra.submit('parts/many', { n: 36 }, { maxFailedWorkunits: 100 });
    assert.equal(await run.result(), 12);
    const url = await startDashboard();
    const first = await get(url, `tydra/instances/${run.id}`, VIEWER);
    // A row of the failures table (the logs name the failed units too).
    const failedRow = (index: number) => new RegExp(`<td>${index}</td>\\s*<td><pre>[^<]*unit ${index} &lt;failed&gt;`);
    assert.match(first, /<th>total<\/th>\s*<td>36<\/td>/);
    assert.match(first, /<th>done<\/th>\s*<td>12<\/td>/);
    assert.match(first, /<th>failed<\/th>\s*<td>24<\/td>/);
    assert.match(first, /<th>running<\/th>\s*<td>0<\/td>/);
    assert.ok(first.includes(`Failed workunits (1–${FAILURES_PER_PAGE} of 24)`));
    assert.match(first, /<td>1<\/td>\s*<td><pre>[^<]*unit 1 &lt;failed&gt;<\/pre><\/td>/);
    assert.match(first, failedRow(29));
    assert.doesNotMatch(first, failedRow(34), 'the last failures are on the next page');
    const next = `/tydra/instances/${run.id}?failures=${FAILURES_PER_PAGE}#failures`;
    assert.ok(first.includes(`href="${next}" rel="next"`));
    const second = await get(url, next.slice(1).replace('#failures', ''), VIEWER);
    assert.ok(second.includes(`Failed workunits (${FAILURES_PER_PAGE + 1}–24 of 24)`));
    assert.match(second, failedRow(34));
    assert.doesNotMatch(second, failedRow(29));
    assert.ok(second.includes('rel="prev"') && !second.includes('rel="next"'));
    const bad = await fetch(`${url}tydra/instances/${run.id}?failures=-1`, { headers: VIEWER });
    assert.equal(bad.status, 400);
  });

  it("show a sequence's steps, each child TaskInstance with its state and a link, branch ids of an all step included", async () => {
    await startCluster(1);
    const tydra = testClient();
    await tydra.deploy(await makePackage(PARTS_PACKAGE));
    const calc = await tydra.submit('parts/calc', 3);
    assert.equal(await calc.result(), '7-36');
    const broken = await tydra.submit('parts/broken', 1);
    await rejection(broken.result());
    const url = await startDashboard();

    const text = await get(url, `tydra/instances/${calc.id}`, VIEWER);
    const row = (id: string, task: string, state: string) =>
      new RegExp(
        `<a href="/tydra/instances/${id}">${id}</a></td>\\s*<td>${task}</td>\\s*<td class="state-${state}">${state}</td>`,
      );
    assert.match(text, row(`${calc.id}.s0`, 'double', 'completed'));
    assert.match(text, row(`${calc.id}.s1.0`, 'inc', 'completed'));
    assert.match(text, row(`${calc.id}.s1.1`, 'square', 'completed'));
    assert.match(text, row(`${calc.id}.s2`, 'join', 'completed'));
    assert.match(text, /<td rowspan="2">2<\/td>\s*<td rowspan="2">all\(inc, square\)<\/td>/);
    assert.match(text, /<td rowspan="1">3 \(current\)<\/td>/);
    // A step's page is a TaskInstance page like any other.
    assert.match(await get(url, `tydra/instances/${calc.id}.s1.1`, VIEWER), /<pre id="result">36<\/pre>/);

    const failed = await get(url, `tydra/instances/${broken.id}`, VIEWER);
    assert.match(failed, row(`${broken.id}.s1`, 'fail', 'failed'));
    assert.match(
      failed,
      new RegExp(`<td>${broken.id}\\.s2</td>\\s*<td>inc</td>\\s*<td class="state-not-started">not started</td>`),
    );
  });

  it('escape a log line a task wrote, and forbid scripts and framing on every page', async () => {
    await startCluster(1);
    const tydra = testClient();
    const dir = await makePackage({
      'tydra.json': JSON.stringify({ name: 'hostile', tasks: { say: { module: 'say.mjs' } } }),
      'say.mjs': 'export default async (input, ctx) => { ctx.log(input.line); return "said"; };',
    });
    await tydra.deploy(dir);
    const run = await tydra.submit('hostile/say', { line: HOSTILE });
    assert.equal(await run.result(), 'said');
    const url = await startDashboard();
    const response = await fetch(`${url}tydra/instances/${run.id}`, { headers: VIEWER });
    const text = await response.text();
    assert.match(text, /<pre id="logs">[^]*&lt;script&gt;alert\(1\)&lt;\/script&gt;[^]*<\/pre>/);
    assert.ok(!/<script/i.test(text));
    for (const path of [`tydra/instances/${run.id}`, 'tydra/nodes', 'tydra/packages']) {
      const page = await fetch(`${url}${path}`, { headers: VIEWER });
      assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'.*frame-ancestors 'none'/);
      assert.equal(page.headers.get('x-frame-options'), 'DENY');
    }
  });

  it('cancel a running TaskInstance for an admin; the read-only user gets no button and 403, another origin 403', async () => {
    await startCluster(1);
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    // `sleep` ignores SIGTERM and never returns: only a cancel ends it.
    const run = await tydra.submit('probe/sleep', null, { timeoutMs: 60_000 });
    await waitFor('the TaskInstance to run', async () => ((await run.status()).state === 'running' ? true : undefined));
    const url = await startDashboard();
    const path = `tydra/instances/${run.id}`;

    assert.ok(!(await get(url, path, VIEWER)).includes('Cancel'), 'no button for the read-only user');
    assert.equal((await post(url, `${path}/cancel`, VIEWER)).status, 403);
    assert.equal((await post(url, `${path}/cancel`, { ...ADMIN, origin: 'http://evil.example' })).status, 403);
    assert.equal((await post(url, `${path}/cancel`, { ...ADMIN, origin: '' })).status, 403);
    assert.equal((await run.status()).state, 'running');

    const adminPage = await get(url, path, ADMIN);
    assert.ok(adminPage.includes(`<form method="post" action="/tydra/instances/${run.id}/cancel">`));
    const response = await post(url, `${path}/cancel`, ADMIN);
    assert.equal(response.status, 303);
    assert.equal(response.headers.get('location'), `/${path}?cancel=cancelling`);
    await rejection(run.result());
    assert.equal((await run.status()).state, 'cancelled');
    assert.match(await get(url, path, ADMIN), /id="state">cancelled</);
  });

  it('list packages with their versions; an admin undeploys and prunes after a dry run, a read-only user cannot', async () => {
    const tydra = testClient();
    const first = await tydra.deploy(await copyFixture('probe'));
    const url = await startDashboard();
    const viewed = await get(url, 'tydra/packages', VIEWER);
    assert.match(viewed, /<h2 id="package-probe">probe<\/h2>/);
    assert.ok(viewed.includes(first.sha1.slice(0, 12)));
    assert.match(viewed, /<td>latest<\/td>/);
    assert.match(viewed, /<td>\d+ s left<\/td>/, 'the deploy lease');
    assert.ok(!viewed.includes('<form'), 'no actions for the read-only user');
    assert.equal((await post(url, 'tydra/packages/probe/undeploy', VIEWER)).status, 403);
    assert.equal((await post(url, 'tydra/packages/prune', VIEWER, { mode: 'dry-run' })).status, 403);
    assert.equal(
      (await post(url, 'tydra/packages/prune', { ...ADMIN, origin: 'http://evil.example' }, { mode: 'prune' })).status,
      403,
    );

    const admin = await get(url, 'tydra/packages', ADMIN);
    assert.ok(admin.includes('action="/tydra/packages/probe/undeploy"'));
    assert.ok(admin.includes('Undeploy every version of probe'));
    const dryRun = await post(url, 'tydra/packages/prune', ADMIN, { mode: 'dry-run' });
    assert.equal(dryRun.status, 200);
    const dryText = await dryRun.text();
    assert.match(dryText, /Dry run: nothing was changed/);
    assert.match(dryText, /<input type="hidden" name="mode" value="prune" \/>/);
    assert.equal((await post(url, 'tydra/packages/prune', ADMIN, { mode: 'everything' })).status, 400);

    const undeploy = await post(url, 'tydra/packages/probe/undeploy', ADMIN, { version: first.sha1.slice(0, 12) });
    assert.equal(undeploy.status, 303);
    const { versions } = await tydra.packageVersions('probe');
    assert.equal(versions[0]?.undeployed, true);
    assert.match(await get(url, 'tydra/packages', ADMIN), /<td>undeployed<\/td>/);
    const pruned = await post(url, 'tydra/packages/prune', ADMIN, { mode: 'prune' });
    assert.equal(pruned.status, 200);
    assert.match(await pruned.text(), /Pruned\./);
  });
});

describe('the tydra pages from the board (@integration)', function () {
  this.timeout(30_000);

  it('are in the board header menu, and a TaskInstance not dispatched links to its page, where an admin cancels it', async () => {
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const run = await tydra.submit('probe/echo', {}, { delayMs: 600_000 });
    const url = await startDashboard();
    const board = await get(url, '', VIEWER);
    assert.ok(board.includes('/tydra/nodes') && board.includes('/tydra/packages'), 'the header links');

    const response = await fetch(`${url}api/queues?activeQueue=tasks&status=delayed&page=1&jobsPerPage=10`, {
      headers: VIEWER,
    });
    const { queues } = (await response.json()) as {
      queues: Array<{ name: string; jobs: Array<{ id: string; externalUrl?: { href: string } }> }>;
    };
    const card = queues.find((queue) => queue.name === 'tasks')?.jobs.find((job) => job.id === run.id);
    assert.equal(card?.externalUrl?.href, `/tydra/instances/${run.id}`);

    const text = await get(url, `tydra/instances/${run.id}`, ADMIN);
    assert.match(text, /id="state">delayed</);
    const cancelled = await post(url, `tydra/instances/${run.id}/cancel`, ADMIN);
    assert.equal(cancelled.status, 303);
    const after = await get(url, (cancelled.headers.get('location') ?? '').slice(1), ADMIN);
    assert.match(after, /id="notice">Cancelled before it started: removed.</);
    assert.match(after, /id="state">cancelled</);
  });
});
