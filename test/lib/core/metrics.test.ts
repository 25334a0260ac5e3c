import assert from 'node:assert/strict';

import { Registry } from 'prom-client';

import { InvalidOptionError } from '../../../lib/core/errors.js';
import { tydraMetrics } from '../../../lib/core/metrics.js';
import { startMetricsServer } from '../../../lib/core/metrics-server.js';
import { silentLogger } from '../../../lib/core/logger.js';
import { compileMasterOptions } from '../../../lib/master/options.js';
import { compileNodeOptions } from '../../../lib/node/options.js';
import { mergeExpositions } from '../../../lib/ops/metrics-text.js';
import { defer } from '../../helpers.js';

/** What `Queue.exportPrometheusMetrics` writes for one queue (BullMQ 6). */
const bullmqText = (queue: string, waiting: number): string =>
  [
    '# HELP bullmq_job_count Number of jobs in the queue by state',
    '# TYPE bullmq_job_count gauge',
    `bullmq_job_count{queue="${queue}", state="waiting"} ${waiting}`,
    '# HELP bullmq_job_completed_total Total number of completed jobs',
    '# TYPE bullmq_job_completed_total counter',
    `bullmq_job_completed_total{queue="${queue}"} 0`,
  ].join('\n');

describe('metrics', () => {
  it('creates the metrics once per registry and never shares them between registries', async () => {
    const shared = new Registry();
    const metrics = tydraMetrics(shared);
    assert.equal(tydraMetrics(shared), metrics);
    const other = tydraMetrics(new Registry());
    assert.notEqual(other, metrics);
    metrics.taskInstances.inc({ package: 'p', task: 't', state: 'completed' });
    assert.match(await shared.metrics(), /^tydra_task_instances_total\{package="p",task="t",state="completed"\} 1$/m);
    assert.equal((await other.taskInstances.get()).values.length, 0);
  });

  it('reads tydra_nodes_alive from the first source at scrape time, NaN when it fails; none without a source', async () => {
    const registry = new Registry();
    const metrics = tydraMetrics(registry);
    metrics.runSeconds.observe({ package: 'p', task: 't', node: 'n1', outcome: 'completed' }, 1);
    assert.doesNotMatch(await registry.metrics(), /tydra_nodes_alive/, "a lone node's registry has no such gauge");
    const unwatch = metrics.watchAliveNodes(() => Promise.resolve(3));
    metrics.watchAliveNodes(() => Promise.resolve(99));
    assert.match(await registry.metrics(), /^tydra_nodes_alive 3$/m);
    unwatch();
    assert.match(await registry.metrics(), /^tydra_nodes_alive 99$/m);
    const failingRegistry = new Registry();
    const failing = tydraMetrics(failingRegistry);
    failing.watchAliveNodes(() => Promise.reject(new Error('Redis is down')));
    assert.match(await failingRegistry.metrics(), /^tydra_nodes_alive nan$/im); // prom-client prints "Nan"
  });

  it("merges BullMQ's per-queue expositions into one family per metric name", () => {
    assert.equal(
      mergeExpositions([bullmqText('tasks', 2), bullmqText('node.a', 0), '']),
      [
        '# HELP bullmq_job_count Number of jobs in the queue by state',
        '# TYPE bullmq_job_count gauge',
        'bullmq_job_count{queue="tasks", state="waiting"} 2',
        'bullmq_job_count{queue="node.a", state="waiting"} 0',
        '# HELP bullmq_job_completed_total Total number of completed jobs',
        '# TYPE bullmq_job_completed_total counter',
        'bullmq_job_completed_total{queue="tasks"} 0',
        'bullmq_job_completed_total{queue="node.a"} 0',
        '',
      ].join('\n'),
    );
    assert.equal(mergeExpositions([]), '');
  });

  it('keeps the samples of a histogram in its family', () => {
    const histogram = ['# TYPE h histogram', 'h_bucket{le="1"} 1', 'h_bucket{le="+Inf"} 1', 'h_sum 0.5', 'h_count 1'];
    assert.equal(mergeExpositions([histogram.join('\n'), histogram.slice(1).join('\n')]).split('\n')[0], histogram[0]);
    assert.equal(mergeExpositions([histogram.join('\n'), histogram.join('\n')]).split('\n').length, 1 + 8 + 1);
  });

  it('serves GET and HEAD /metrics with the Prometheus content type, and 404 elsewhere', async () => {
    const registry = new Registry();
    tydraMetrics(registry).packageSyncBytes.inc({ node: 'n1' }, 42);
    const server = await startMetricsServer({ registry, port: 0, host: '127.0.0.1', logger: silentLogger() });
    defer(() => server.close());
    const response = await fetch(server.url);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.match(await response.text(), /^tydra_package_sync_bytes_total\{node="n1"\} 42$/m);
    const head = await fetch(server.url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    const elsewhere = await fetch(server.url.replace(/\/metrics$/, '/'));
    assert.equal(elsewhere.status, 404);
    await elsewhere.text();
    const post = await fetch(server.url, { method: 'POST' });
    assert.equal(post.status, 404);
    await post.text();
  });

  it('checks the metrics options of the master and the node', () => {
    const compiled = compileNodeOptions({ metricsPort: 9100 });
    assert.equal(compiled.metricsPort, 9100);
    assert.equal(compiled.metricsHost, '127.0.0.1');
    assert.ok(compiled.metrics instanceof Registry);
    assert.notEqual(compileNodeOptions().metrics, compiled.metrics);
    assert.equal(compileMasterOptions().metricsPort, undefined);
    const registry = new Registry();
    assert.equal(compileMasterOptions({ metrics: registry }).metrics, registry);
    assert.throws(() => compileMasterOptions({ metricsPort: 70_000 }), InvalidOptionError);
    assert.throws(
      () => compileNodeOptions({ metrics: {} as Registry }),
      (error: Error) => error instanceof InvalidOptionError && /metrics/.test(error.message),
    );
  });
});
