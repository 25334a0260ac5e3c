import assert from 'node:assert/strict';

import { Queue } from 'bullmq';
import { execa } from 'execa';

import { TaskUnrecoverableError } from '../../lib/core/errors.js';
import { Dashboard } from '../../lib/ops/dashboard.js';
import { nodeQueueName } from '../../queues/node.js';
import { startDevCluster } from '../../lib/ops/dev-cluster.js';
import {
  CLI,
  copyFixture,
  defer,
  makePackage,
  redisUrl,
  startCluster,
  tempDir,
  testClient,
  testRedis,
  waitFor,
} from '../helpers.js';

/** The value of the sample `name` whose labels include `labels`, or undefined if there is none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (match === null || match[1] !== name) {
      continue;
    }
    const found = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, key, value]) => [key, value]),
    );
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) {
      return Number(match[3]);
    }
  }
  return undefined;
}

async function scrape(url: string, headers: Record<string, string> = {}): Promise<string> {
  const response = await fetch(url, { headers });
  assert.equal(response.status, 200, `GET ${url}`);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return response.text();
}

/** Polls `url` until the sample reaches `value`; returns the whole text. */
function scrapeUntil(url: string, name: string, labels: Record<string, string>, value: number): Promise<string> {
  return waitFor(`${name} ${JSON.stringify(labels)} to be ${value} at ${url}`, async () => {
    const text = await scrape(url);
    return sample(text, name, labels) === value ? text : undefined;
  });
}

const PARALLEL_PACKAGE = {
  'tydra.json': JSON.stringify({ name: 'par', tasks: { count: { kind: 'parallel', module: 'count.js' } } }),
  'count.js': `
    export function* split(input) { for (const line of input.lines) yield line; }
    export function work(line) { return line.length; }
    export async function reduce(results) { let sum = 0; for await (const n of results) sum += n; return sum; }
  `,
};

/** `liar` returns what breaks its `output` schema. */
const LIAR_PACKAGE = {
  'package.json': '{ "type": "module", "private": true }',
  'tydra.json': JSON.stringify({
    name: 'schemas',
    tasks: { liar: { module: 'liar.mjs', output: { type: 'object', required: ['greeting'] } } },
  }),
  'liar.mjs': 'export default () => ({ greeting: undefined });\n',
};

const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});

describe('Prometheus metrics (@integration)', function () {
  this.timeout(60_000);

  it('counts runs on the master and times them on the node, each at its own /metrics', async () => {
    const { master, nodes } = await startCluster(1, { metricsPort: 0 }, { metricsPort: 0 });
    const node = nodes[0];
    assert.ok(node?.metricsUrl !== undefined && master.metricsUrl !== undefined);
    assert.match(node.metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const tydra = testClient();
    const { sha1 } = await tydra.deploy(await copyFixture('probe'));
    await (await tydra.submit('probe/echo', { hello: 'metrics' })).result();
    await assert.rejects((await tydra.submit('probe/throw', { word: 'no' })).result());
    await tydra.deploy(await makePackage(PARALLEL_PACKAGE));
    assert.equal(await (await tydra.submit('par/count', { lines: ['ab', 'cde'] })).result(), 5);

    const echo = { package: 'probe', task: 'echo' };
    const thrown = { package: 'probe', task: 'throw' };
    let text = await scrapeUntil(master.metricsUrl, 'tydra_task_instances_total', { ...thrown, state: 'failed' }, 1);
    text = await scrapeUntil(master.metricsUrl, 'tydra_task_instances_total', { ...echo, state: 'completed' }, 1);
    assert.equal(sample(text, 'tydra_task_instances_total', { package: 'par', state: 'completed' }), 1);
    assert.equal(sample(text, 'tydra_nodes_alive'), 1);
    // The master runs no task: it has no node metrics of its own.
    assert.equal(sample(text, 'tydra_run_duration_seconds_count'), undefined);

    const at = { node: node.id };
    text = await scrape(node.metricsUrl);
    assert.equal(sample(text, 'tydra_run_duration_seconds_count', { ...echo, ...at, outcome: 'completed' }), 1);
    assert.equal(sample(text, 'tydra_run_duration_seconds_count', { ...thrown, ...at, outcome: 'failed' }), 1);
    assert.equal(sample(text, 'tydra_queue_wait_seconds_count', { ...echo, ...at }), 1);
    assert.equal(sample(text, 'tydra_sandbox_start_seconds_count', { ...at, sandbox: 'task' }), 2);
    assert.ok((sample(text, 'tydra_sandbox_start_seconds_count', { ...at, sandbox: 'work' }) ?? 0) >= 1);
    assert.equal(sample(text, 'tydra_workunits_total', { package: 'par', task: 'count', ...at, outcome: 'ok' }), 2);
    // Two packages downloaded once each; every later lease (the probe's second run, the parallel
    // task's work sandboxes) found its version on disk.
    assert.equal(sample(text, 'tydra_package_cache_lookups_total', { ...at, result: 'miss' }), 2);
    assert.ok((sample(text, 'tydra_package_cache_lookups_total', { ...at, result: 'hit' }) ?? 0) >= 1);
    assert.equal(sample(text, 'tydra_package_sync_seconds_count', at), 2);
    assert.ok((sample(text, 'tydra_package_sync_bytes_total', at) ?? 0) > 0);
    // The two simple tasks' sandboxes were let go when BullMQ recorded their node jobs' endings,
    // not by the grace after their runs (a parallel task's coordinator has no sandbox to hold).
    text = await scrapeUntil(node.metricsUrl, 'tydra_node_job_handoffs_total', { ...at, by: 'event' }, 2);
    assert.equal(sample(text, 'tydra_node_job_handoffs_total', { ...at, by: 'grace' }), undefined);
    // Low cardinality: no instance ids, no package versions.
    assert.ok(!text.includes(sha1) && !/[{,]\s*instance/.test(text), text);

    const other = await fetch(node.metricsUrl.replace(/metrics$/, 'other'));
    assert.equal(other.status, 404);
    await other.text();
  });

  it("times a run whose result breaks its task's output schema as failed, as the master counts it", async () => {
    const { master, nodes } = await startCluster(1, { metricsPort: 0 }, { metricsPort: 0 });
    const node = nodes[0];
    assert.ok(node?.metricsUrl !== undefined && master.metricsUrl !== undefined);
    const tydra = testClient();
    await tydra.deploy(await makePackage(LIAR_PACKAGE));
    await assert.rejects((await tydra.submit('schemas/liar')).result(), TaskUnrecoverableError);
    const liar = { package: 'schemas', task: 'liar' };
    await scrapeUntil(master.metricsUrl, 'tydra_task_instances_total', { ...liar, state: 'failed' }, 1);
    const text = await scrape(node.metricsUrl);
    const at = { ...liar, node: node.id };
    assert.equal(sample(text, 'tydra_run_duration_seconds_count', { ...at, outcome: 'failed' }), 1);
    assert.equal(sample(text, 'tydra_run_duration_seconds_count', { ...at, outcome: 'completed' }), undefined);
  });

  it('measures nothing of a node job whose data is not an object, and still refuses it', async () => {
    const { nodes } = await startCluster(1, { metricsPort: 0 });
    const node = nodes[0];
    assert.ok(node?.metricsUrl !== undefined);
    const queue = new Queue(nodeQueueName(node.id), {
      prefix: '{tydra}:bull',
      connection: testRedis({ maxRetriesPerRequest: null }),
    });
    defer(() => queue.close());
    const forged = await queue.add('run', null, { jobId: 'forged-null' });
    const reason = await waitFor('the forged job to fail', async () =>
      (await forged.getState()) === 'failed' ? (await queue.getJob('forged-null'))?.failedReason : undefined,
    );
    assert.match(reason, /^Expected node job data \{instanceId, package, task, input\}, got invalid data/);
    const text = await scrape(node.metricsUrl);
    assert.equal(sample(text, 'tydra_queue_wait_seconds_count'), undefined);
    assert.equal(sample(text, 'tydra_run_duration_seconds_count'), undefined);
  });

  it('serves /metrics from `tydra master --metrics-port 0`, on the URL it logs', async () => {
    const master = execa(process.execPath, [CLI, 'master', '--redis', redisUrl(), '--metrics-port', '0'], {
      reject: false,
      extendEnv: false,
      env: { PATH: process.env.PATH ?? '', TYDRA_LOG_FORMAT: 'json' },
    });
    defer(async () => {
      master.kill('SIGKILL');
      await master;
    });
    let stderr = '';
    master.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const url = await waitFor(
      'the master to log its metrics URL',
      () => /"metricsUrl":"([^"]+)"/.exec(stderr)?.[1],
      20_000,
    );
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    assert.equal(sample(await scrape(url), 'tydra_nodes_alive'), 0);
  });

  it('counts the versions the prune job removes', async () => {
    const { master } = await startCluster(0, {}, { metricsPort: 0, pruneEveryMs: 150, pruneGraceMs: 0 });
    const tydra = testClient({ deployLeaseMs: 1 });
    const version = (which: string) =>
      makePackage({
        'tydra.json': JSON.stringify({ name: 'pin', tasks: { which: { module: 'which.mjs' } } }),
        'which.mjs': `export default () => '${which}';`,
      });
    await tydra.deploy(await version('v1'));
    await tydra.deploy(await version('v2'));
    // v1: not latest, no holder, lease over, grace 0: the scheduled prune removes it; v2 stays (latest).
    const text = await scrapeUntil(
      master.metricsUrl ?? '',
      'tydra_prune_removed_versions_total',
      { package: 'pin' },
      1,
    );
    assert.equal(sample(text, 'tydra_task_instances_total'), undefined);
  });

  it('serves /metrics on the dashboard behind its auth, with the queue depths BullMQ exports', async () => {
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
    const denied = await fetch(`${url}metrics`);
    assert.equal(denied.status, 401);
    await denied.text();
    const text = await scrape(`${url}metrics`, basic('viewer', 'b'));
    assert.equal(sample(text, 'tydra_nodes_alive'), 1);
    assert.equal(sample(text, 'bullmq_job_count', { queue: 'tasks', state: 'waiting' }), 0);
    assert.notEqual(sample(text, 'bullmq_job_count', { queue: 'maintenance' }), undefined);
    // One family per metric name, though BullMQ writes one exposition per queue.
    assert.equal(text.match(/^# TYPE bullmq_job_count gauge$/gm)?.length, 1);
    assert.equal(text.match(/^# HELP bullmq_job_count /gm)?.length, 1);
  });

  it('gives `tydra dev` one registry: its dashboard shows the master and both nodes', async () => {
    const cluster = await startDevCluster({ redis: redisUrl(), nodes: 2, dashboardPort: 0, dataDir: await tempDir() });
    defer(() => cluster.close());
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    await (await tydra.submit('probe/echo', {})).result();
    const metrics = `${cluster.dashboardUrl}metrics`;
    const text = await scrapeUntil(metrics, 'tydra_task_instances_total', { task: 'echo', state: 'completed' }, 1);
    assert.equal(sample(text, 'tydra_nodes_alive'), 2);
    assert.equal(sample(text, 'tydra_run_duration_seconds_count', { task: 'echo', outcome: 'completed' }), 1);
    assert.notEqual(sample(text, 'bullmq_job_count', { queue: 'node.dev-2', state: 'active' }), undefined);
  });
});
