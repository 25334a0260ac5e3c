import assert from 'node:assert/strict';

import { Job, Queue } from 'bullmq';
import { execa } from 'execa';

import type { Tydra } from '../../lib/client/client.js';
import {
  LimitExceededError,
  ParallelResultMissingError,
  TaskCancelledError,
  TaskFailedError,
  TaskTimeoutError,
  TaskUnrecoverableError,
} from '../../lib/core/errors.js';
import { createKeys } from '../../lib/redis/keys.js';
import { nodeQueueName } from '../../queues/node.js';
import { WORKUNITS_QUEUE } from '../../queues/workunits.js';
import {
  CLI,
  defer,
  makePackage,
  redisUrl,
  removeNodeCgroups,
  startCluster,
  startNode,
  tempDir,
  testClient,
  testRedis,
  waitFor,
  rejection,
} from '../helpers.js';
import { pidsWithEnv } from '../processes.js';

const keys = createKeys();

/**
 * One package, several parallel tasks. Every work sandbox draws a random id when it loads, and
 * every unit returns it: the tests count sandboxes and see which units shared one.
 */
const PARALLEL_PACKAGE = {
  'tydra.json': JSON.stringify({
    name: 'par',
    tasks: {
      count: { kind: 'parallel', module: 'count.js' },
      order: { kind: 'parallel', module: 'order.js' },
      flaky: { kind: 'parallel', module: 'flaky.js', attempts: 2 },
      ends: { kind: 'parallel', module: 'ends.js', attempts: 3 },
      pi: {
        kind: 'parallel',
        split: { command: ['python3', 'split.py'] },
        work: { command: ['python3', 'work.py'] },
        reduce: { command: ['python3', 'reduce.py'] },
      },
    },
  }),
  'count.js': `
    const worker = Math.random().toString(36).slice(2);
    export function* split(input) { for (const line of input.lines) yield line; }
    export function work(line, ctx) {
      ctx.log('counting', line.length, 'chars');
      const counts = {};
      for (const word of line.split(/\\s+/).filter(Boolean)) counts[word] = (counts[word] ?? 0) + 1;
      return { counts, worker };
    }
    export async function reduce(results) {
      const counts = {}; const workers = {};
      for await (const r of results) {
        for (const [w, n] of Object.entries(r.counts)) counts[w] = (counts[w] ?? 0) + n;
        workers[r.worker] = (workers[r.worker] ?? 0) + 1;
      }
      return { counts, workers };
    }`,
  'order.js': `
    const worker = Math.random().toString(36).slice(2);
    export async function* split(input) { for (let i = 0; i < input.n; i += 1) yield { i, ms: input.ms ?? 0, fail: input.fail ?? [] }; }
    export async function work(unit, ctx) {
      if (unit.ms > 0) await new Promise((r) => setTimeout(r, Math.floor(Math.random() * unit.ms)));
      if (unit.fail.includes(unit.i)) throw new Error('boom ' + unit.i);
      return { i: unit.i, worker, attempt: ctx.attempt };
    }
    export async function reduce(results, input, ctx) {
      const order = []; const workers = new Set();
      for await (const r of results) { order.push(r === null ? null : r.i); if (r) workers.add(r.worker); }
      return { order, workers: [...workers], failures: ctx.failures };
    }`,
  'flaky.js': `
    export function split(input) { return Array.from({ length: input.n }, (_, i) => i); }
    export function work(i, ctx) {
      if (i === input_crash && ctx.attempt === 1) process.exit(3);
      return i * 2;
    }
    const input_crash = 4;
    export async function reduce(results) { let sum = 0; for await (const r of results) sum += r; return sum; }`,
  'ends.js': `
    export function split(input) {
      if (input.how === 'split-hog') { const hog = []; for (;;) hog.push(Buffer.alloc(1 << 20, 1)); }
      return [1, 2];
    }
    export function work(unit) { return unit; }
    export async function reduce(results, input, ctx) {
      if (input.how === 'reduce-fail') ctx.fail('no good, said reduce');
      if (input.how === 'reduce-sleep') await new Promise((resolve) => setTimeout(resolve, 60_000));
      return 'reduced';
    }`,
  'split.py': `
import json, sys
spec = json.loads(sys.stdin.readline())
for i in range(spec["units"]):
    print(json.dumps({"seed": i, "n": spec["n"]}), flush=True)
`,
  'work.py': `
import json, random, sys
for line in sys.stdin:
    unit = json.loads(line)
    rng = random.Random(unit["seed"])
    inside = sum(1 for _ in range(unit["n"]) if rng.random() ** 2 + rng.random() ** 2 <= 1)
    print(json.dumps({"inside": inside, "n": unit["n"]}), flush=True)
`,
  'reduce.py': `
import json, sys
spec = json.loads(sys.stdin.readline())
inside = total = 0
for line in sys.stdin:
    r = json.loads(line)
    inside += r["inside"]; total += r["n"]
print(json.dumps({"pi": 4 * inside / total, "samples": total}))
`,
};

async function deployed(): Promise<Tydra> {
  const tydra = testClient();
  await tydra.deploy(await makePackage(PARALLEL_PACKAGE));
  return tydra;
}

describe('ParallelTask (@integration)', function () {
  this.timeout(120_000);

  it('counts words across two nodes, reusing each work sandbox, never sharing one between instances', async () => {
    const { nodes } = await startCluster(2);
    const tydra = await deployed();
    const lines = Array.from({ length: 200 }, (_, i) => `tydra runs ${i % 7 === 0 ? 'parallel ' : ''}tasks`);
    const [a, b] = await Promise.all([
      tydra.submit('par/count', { lines }),
      tydra.submit('par/count', { lines: lines.slice(0, 100) }),
    ]);
    type Counted = { counts: Record<string, number>; workers: Record<string, number> };
    const [resultA, resultB] = (await Promise.all([a.result(), b.result()])) as [Counted, Counted];
    assert.deepEqual(resultA.counts, { tydra: 200, runs: 200, tasks: 200, parallel: 29 });
    assert.deepEqual(resultB.counts, { tydra: 100, runs: 100, tasks: 100, parallel: 15 });
    // Both nodes ran units; sandboxes ran many units each; no sandbox served both instances.
    for (const node of nodes) {
      assert.ok(node.workunitStats.units > 0, `node ${node.id} ran no workunit`);
    }
    const workersA = Object.keys(resultA.workers);
    const workersB = Object.keys(resultB.workers);
    assert.ok(workersA.length < 50, `200 units used ${workersA.length} sandboxes`);
    assert.deepEqual(
      workersA.filter((id) => workersB.includes(id)),
      [],
    );
    const status = await a.status();
    assert.deepEqual(status.progress, {
      percent: 100,
      workunits: { total: 200, done: 200, failed: 0, running: 0 },
      splitDone: true,
    });
    assert.ok(
      status.logs.some((line) => /^\[workunit \d+\] counting \d+ chars$/.test(line)),
      status.logs.join('\n'),
    );
    assert.ok(status.logs.includes('[split] ended: 200 workunits'), status.logs.join('\n'));
  });

  it('gives reduce the results in split order whatever order the units end in', async () => {
    await startCluster(2);
    const tydra = await deployed();
    const run = await tydra.submit('par/order', { n: 300, ms: 15 });
    const result = (await run.result()) as { order: number[] };
    assert.deepEqual(
      result.order,
      Array.from({ length: 300 }, (_, i) => i),
    );
  });

  it('fails fast naming the unit, and stops every outstanding unit', async () => {
    await startCluster(2);
    const tydra = await deployed();
    const redis = testRedis();
    const run = await tydra.submit('par/order', { n: 400, ms: 30, fail: [17] });
    const error = await rejection(run.result());
    assert.ok(error instanceof TaskFailedError, String(error));
    assert.equal(error.message, 'workunit 17 failed: boom 17');
    assert.match(error.remoteStack ?? '', /boom 17/);
    // Nothing of it waits in `workunits`, and no sandbox of it is left.
    const workunits = new Queue(WORKUNITS_QUEUE, { prefix: '{tydra}:bull', connection: redis });
    defer(() => workunits.close());
    await waitFor('no batch of the instance left', async () => {
      const jobs = await workunits.getJobs(['waiting', 'active', 'delayed', 'prioritized']);
      return jobs.some((job) => job.id?.startsWith(run.id)) ? undefined : true;
    });
    await waitFor('no sandbox of the instance left', async () =>
      (await pidsWithEnv('TYDRA_INSTANCE_ID', run.id)).length === 0 ? true : undefined,
    );
    assert.equal(await redis.hget(keys.parallelState(run.id), 'ended'), '1');
  });

  it('tolerates maxFailedWorkunits failures: reduce gets null in their slots and ctx.failures', async () => {
    await startCluster(1);
    const tydra = await deployed();
    const run = await tydra.submit('par/order', { n: 20, fail: [3, 5] }, { maxFailedWorkunits: 2 });
    const result = (await run.result()) as { order: Array<number | null>; failures: unknown[] };
    const expected = Array.from({ length: 20 }, (_, i) => (i === 3 || i === 5 ? null : i));
    assert.deepEqual(result.order, expected);
    assert.deepEqual(result.failures, [
      { index: 3, message: 'boom 3' },
      { index: 5, message: 'boom 5' },
    ]);
  });

  it('a coordinator run again after its TaskInstance ended answers with the stored value, not a reduce over deleted results', async () => {
    const { nodes } = await startCluster(1);
    const tydra = await deployed();
    const redis = testRedis();
    const run = await tydra.submit('par/order', { n: 6 });
    const first = (await run.result()) as { order: number[] };
    assert.deepEqual(
      first.order,
      Array.from({ length: 6 }, (_, i) => i),
    );
    // The results went at the end; the ended state keeps reduce's value and its expiry.
    assert.equal(await redis.exists(keys.parallelResults(run.id)), 0);
    const ttl = await redis.ttl(keys.parallelState(run.id));
    // What a lost lock or a node killed before the job completed does: BullMQ runs the
    // coordinator's node job again. Here it is moved back to wait, and the node takes it.
    const nodeQueue = new Queue(nodeQueueName(nodes[0]?.id ?? ''), { prefix: '{tydra}:bull', connection: redis });
    defer(() => nodeQueue.close());
    const job = await Job.fromId(nodeQueue, run.id);
    assert.ok(job !== undefined, 'the coordinator node job is kept');
    assert.deepEqual(job.returnvalue, first);
    await job.retry('completed');
    const again = await waitFor('the coordinator node job to complete again', async () => {
      const current = await Job.fromId(nodeQueue, run.id);
      return (await current?.getState()) === 'completed' ? current : undefined;
    });
    assert.equal(again?.attemptsStarted, (job.attemptsStarted ?? 0) + 1, 'the node job ran again');
    assert.deepEqual(again?.returnvalue, first);
    assert.deepEqual(await run.result(), first);
    // Not made persistent by the second run: the ended state still expires.
    const after = await redis.ttl(keys.parallelState(run.id));
    assert.ok(after > 0 && after <= ttl, `the ended state keeps its expiry (ttl ${after} s)`);
  });

  it('fails with ParallelResultMissingError when a unit recorded as done has no result, rather than reducing a null', async () => {
    const tydra = await deployed();
    const redis = testRedis();
    // Submitted before any master or node runs, then given the state a Redis restart can leave:
    // split done, 3 units done, the result of unit 1 lost.
    const run = await tydra.submit('par/order', { n: 3 });
    const result = (i: number) => JSON.stringify({ i, worker: 'w', attempt: 1 });
    await redis
      .multi()
      .hset(keys.parallelState(run.id), { splitDone: '1', total: '3', enqueued: '3', done: '3', failed: '0' })
      .hset(keys.parallelResults(run.id), { 0: result(0), 2: result(2) })
      .exec();
    await startCluster(1);
    const error = await rejection(run.result());
    assert.equal(
      error.message,
      `Expected the result of workunit 1 of parallel TaskInstance ${run.id} (recorded as done), got no result: it was deleted or lost (a Redis restart?)`,
    );
    assert.equal(error.message, new ParallelResultMissingError(run.id, 1).message);
  });

  it('replaces a crashed work sandbox; the crashed unit runs again on its second attempt', async () => {
    const { nodes } = await startCluster(1, { concurrency: 1 });
    const tydra = await deployed();
    const run = await tydra.submit('par/flaky', { n: 10 });
    assert.equal(await run.result(), 90);
    assert.ok((nodes[0]?.workunitStats.sandboxes ?? 0) >= 2, 'the crash started a second sandbox');
    assert.ok((await run.status()).logs.some((line) => line.startsWith('[workunit 4] attempt 1 failed')));
  });

  it('loses nothing when the node running split and units is SIGKILLed mid-run', async () => {
    await startCluster(0, {}, { sweepIntervalMs: 200 });
    const tydra = await deployed();
    const doomedId = `doomed-par-${process.pid}`;
    const doomed = execa(
      process.execPath,
      [CLI, 'node', '--id', doomedId, '--concurrency', '1', '--heartbeat', '200', '--lock-duration', '1000'].concat([
        '--redis',
        redisUrl(),
        '--cache-dir',
        await tempDir(),
      ]),
      { reject: false, extendEnv: false, env: { PATH: process.env.PATH ?? '' } },
    );
    defer(async () => {
      doomed.kill('SIGKILL');
      await doomed;
      await removeNodeCgroups(doomedId, doomed.pid);
    });
    await waitFor(
      'the doomed node',
      async () => ((await tydra.nodes()).some((n) => n.id === doomedId && n.alive) ? true : undefined),
      20_000,
    );
    // The coordinator lands on the doomed node (the only one): its split is held back by the
    // waiting bound (512 units, plus a buffer of 256) when the node dies, so split runs again
    // elsewhere and must skip what it enqueued.
    const run = await tydra.submit('par/order', { n: 1500, ms: 8 });
    await waitFor(
      'the split under way on the doomed node',
      async () => {
        const progress = (await run.status()).progress as { workunits?: { done: number } } | undefined;
        return (progress?.workunits?.done ?? 0) >= 5 ? true : undefined;
      },
      30_000,
    );
    await startNode({ lockDurationMs: 1000 });
    doomed.kill('SIGKILL');
    await doomed;
    const result = (await run.result()) as { order: number[] };
    assert.deepEqual(
      result.order,
      Array.from({ length: 1500 }, (_, i) => i),
    );
  });

  it('gives work to a node that joins mid-run', async () => {
    await startCluster(1, { concurrency: 1 });
    const tydra = await deployed();
    const run = await tydra.submit('par/order', { n: 200, ms: 40 });
    await waitFor('units under way', async () => {
      const progress = (await run.status()).progress as { workunits?: { done: number } } | undefined;
      return (progress?.workunits?.done ?? 0) > 0 ? true : undefined;
    });
    const late = await startNode({ concurrency: 2 });
    const result = (await run.result()) as { order: number[] };
    assert.equal(result.order.length, 200);
    assert.ok(late.workunitStats.units > 0, 'the node that joined ran no unit');
  });

  it('cancels every unit on every node; the slots take new work at once', async () => {
    await startCluster(2, { concurrency: 1 });
    const tydra = await deployed();
    const run = await tydra.submit('par/order', { n: 2000, ms: 200 });
    await waitFor('units under way', async () => {
      const progress = (await run.status()).progress as { workunits?: { done: number } } | undefined;
      return (progress?.workunits?.done ?? 0) >= 2 ? true : undefined;
    });
    // Its rejection may come while cancel() still runs: caught from the start.
    const waiting = rejection(run.result());
    await run.cancel();
    assert.ok((await waiting) instanceof TaskCancelledError);
    await waitFor('no sandbox of the instance left', async () =>
      (await pidsWithEnv('TYDRA_INSTANCE_ID', run.id)).length === 0 ? true : undefined,
    );
    const next = await tydra.submit('par/order', { n: 4 });
    assert.deepEqual(((await next.result()) as { order: number[] }).order, [0, 1, 2, 3]);
  });

  it('fails with the ending split or reduce met: a broken limit, a timeout, ctx.fail; none is retried', async () => {
    await startCluster(1);
    const tydra = await deployed();
    const memoryBytes = 64 * 1024 * 1024;
    const hog = await tydra.submit('par/ends', { how: 'split-hog' }, { limits: { memoryBytes } });
    const limit = await rejection(hog.result());
    assert.ok(limit instanceof LimitExceededError, String(limit));
    assert.equal(limit.limit, 'memoryBytes');
    assert.equal(limit.instanceId, hog.id);
    assert.match(limit.message, /^split failed: /);

    const sleeper = await tydra.submit('par/ends', { how: 'reduce-sleep' }, { timeoutMs: 2000 });
    const timeout = await rejection(sleeper.result());
    assert.ok(timeout instanceof TaskTimeoutError, String(timeout));
    assert.equal(timeout.timeoutMs, 2000);
    assert.equal(timeout.instanceId, sleeper.id);

    const failing = await tydra.submit('par/ends', { how: 'reduce-fail' });
    const unrecoverable = await rejection(failing.result());
    assert.ok(unrecoverable instanceof TaskUnrecoverableError, String(unrecoverable));
    assert.equal(unrecoverable.message, 'reduce failed: no good, said reduce');
    for (const run of [hog, sleeper, failing]) {
      const { logs } = await run.status();
      assert.equal(
        logs.filter((line) => line.startsWith('coordinating ')).length,
        1,
        `${run.id} ran once: ${logs.join(' | ')}`,
      );
    }
  });

  it('runs a parallel task written as commands (Python split, work and reduce)', async () => {
    await startCluster(2);
    const tydra = await deployed();
    const run = await tydra.submit('par/pi', { units: 20, n: 2000 });
    const result = (await run.result()) as { pi: number; samples: number };
    assert.equal(result.samples, 40_000);
    assert.ok(Math.abs(result.pi - Math.PI) < 0.1, `pi ≈ ${result.pi}`);
  });

  it('reports progress events rising to 100', async () => {
    await startCluster(2);
    const tydra = await deployed();
    const run = await tydra.submit('par/order', { n: 300, ms: 10 });
    const seen: number[] = [];
    (run as unknown as { on(event: string, fn: (p: { percent: number }) => void): void }).on('progress', (p) =>
      seen.push(p.percent),
    );
    await run.result();
    await waitFor('the final progress event', () => (seen.at(-1) === 100 ? true : undefined));
    // Several nodes report: an update may overtake another, but the run is seen part-way and whole.
    assert.ok(
      seen.some((percent) => percent > 0 && percent < 100),
      `progress events: ${seen.join(', ')}`,
    );
  });

  it('runs 10,000 workunits in one TaskInstance', async () => {
    await startCluster(2);
    const tydra = await deployed();
    const run = await tydra.submit('par/order', { n: 10_000 });
    const result = (await run.result()) as { order: number[] };
    assert.equal(result.order.length, 10_000);
    assert.ok(result.order.every((value, index) => value === index));
  });
});
