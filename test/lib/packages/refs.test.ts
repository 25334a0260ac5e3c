import assert from 'node:assert/strict';

import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

import { setSubmitHooks } from '../../../lib/client/submit-hooks.js';
import type { TaskRun } from '../../../lib/client/task-run.js';
import { UnknownTaskError } from '../../../lib/core/errors.js';
import { Master } from '../../../lib/master/master.js';
import { prunePackages } from '../../../lib/packages/pruner.js';
import { PackageStore } from '../../../lib/packages/store.js';
import { MAINTENANCE_QUEUE } from '../../../queues/maintenance.js';
import { TASKS_QUEUE } from '../../../queues/tasks.js';
import {
  failure,
  makePackage,
  defer,
  sleep,
  startCluster,
  startNode,
  testClient as client,
  testRedis as redis,
  waitFor,
} from '../../helpers.js';
import { createKeys } from '../../../lib/redis/keys.js';
import { startRedisProxy } from '../../redis-proxy.js';

const keys = createKeys();

/** A package `pin` whose task `which` returns `label` after `input.ms` ms, and `boom` throws. */
function pinPackage(label: string): Promise<string> {
  return makePackage({
    'tydra.json': JSON.stringify({
      name: 'pin',
      tasks: { which: { module: 'which.mjs' }, boom: { module: 'boom.mjs' }, hang: { module: 'hang.mjs' } },
    }),
    'package.json': '{"type":"module"}',
    'which.mjs': `export default async (input) => { await new Promise((r) => setTimeout(r, input?.ms ?? 0)); return ${JSON.stringify(label)}; };`,
    'boom.mjs': `export default () => { throw new Error('boom ${label}'); };`,
    'hang.mjs': 'export default () => new Promise(() => setInterval(() => {}, 1000));',
  });
}

async function holders(r: Redis, sha1: string): Promise<string[]> {
  return r.zrange(`{tydra}:package:pin:holders:${sha1}`, 0, -1);
}

async function waitReleased(r: Redis, sha1: string): Promise<void> {
  await waitFor(`pin@${sha1} to have no holders`, async () =>
    (await holders(r, sha1)).length === 0 ? true : undefined,
  );
}

/**
 * Runs `task` of pin v1 through a master that talks to Redis through a proxy losing the reply to
 * its end of the TaskInstance (BullMQ's moveToFinished: job id, timestamp, then `returnvalue` or
 * `failedReason`), as a Redis restart or a master killed just then does: ended in Redis, no
 * `completed` or `failed` event in the master. Resolves once Redis holds the end.
 */
async function endWithLostReply(task: string, state: 'completed' | 'failed'): Promise<{ run: TaskRun; sha1: string }> {
  const tydra = client();
  const { sha1 } = await tydra.deploy(await pinPackage('v1'));
  const run = await tydra.submit(task);
  const proxy = await startRedisProxy();
  const id = run.id.replace(/[^A-Za-z0-9-]/g, (c) => `\\${c}`);
  const field = state === 'completed' ? 'returnvalue' : 'failedReason';
  const ending = proxy.holdRepliesAfter(
    new RegExp(`\\$${run.id.length}\\r\\n${id}\\r\\n\\$\\d+\\r\\n\\d+\\r\\n\\$${field.length}\\r\\n${field}\\r\\n`),
  );
  const master = new Master({ redis: proxy.url });
  defer(() => master.close());
  await master.start();
  await startNode();
  await ending;
  await waitFor(`the TaskInstance to be ${state} in Redis`, async () =>
    (await run.status()).state === state ? true : undefined,
  );
  proxy.dropHeld();
  return { run, sha1 };
}

describe('package versions, references and pruning (@integration)', function () {
  this.timeout(30_000);

  it('pins each TaskInstance to its version: v1 instances finish on v1 after v2 is deployed', async () => {
    await startCluster(1, { concurrency: 1 });
    const tydra = client();
    const v1 = await tydra.deploy(await pinPackage('v1'));
    // One runs, two wait behind it on the single slot.
    const old = await Promise.all([0, 1, 2].map(() => tydra.submit('pin/which', { ms: 400 })));
    const v2 = await tydra.deploy(await pinPackage('v2'));
    assert.notEqual(v1.sha1, v2.sha1);
    const fresh = await tydra.submit('pin/which', { ms: 0 });
    assert.ok(old.every((run) => run.ref === `pin@${v1.sha1}/which`));
    assert.equal(fresh.ref, `pin@${v2.sha1}/which`);
    assert.deepEqual(await Promise.all(old.map((run) => run.result())), ['v1', 'v1', 'v1']);
    assert.equal(await fresh.result(), 'v2');
    const { latest, versions } = await tydra.packageVersions('pin');
    assert.equal(latest, v2.sha1);
    assert.deepEqual(versions.map((v) => v.sha1).sort(), [v1.sha1, v2.sha1].sort());
  });

  it('takes the reference at submit and releases it exactly once on success, failure after retries and timeout', async () => {
    await startCluster(1);
    const tydra = client();
    const r = redis();
    const { sha1 } = await tydra.deploy(await pinPackage('v1'));
    const ok = await tydra.submit('pin/which');
    const failing = await tydra.submit('pin/boom', null, { attempts: 2 });
    const slow = await tydra.submit('pin/hang', null, { timeoutMs: 500 });
    // All three hold the version while they live.
    assert.deepEqual((await holders(r, sha1)).sort(), [ok.id, failing.id, slow.id].sort());
    assert.equal(await ok.result(), 'v1');
    await assert.rejects(failing.result(), /boom v1/);
    await assert.rejects(slow.result(), /timed out after 0.5 s/);
    await waitReleased(r, sha1);
    assert.equal(await r.hlen('{tydra}:refs'), 0);
    // The node ran the failing task twice, and it was released once: a second release is a no-op.
    const store = new PackageStore(r, keys);
    assert.equal(await store.releaseRef(failing.id), false);
    assert.equal(await store.releaseRef(failing.id, { name: 'pin', sha1 }), false);
    assert.equal(await r.zcard(`{tydra}:package:pin:holders:${sha1}`), 0);
    const { versions } = await tydra.packageVersions('pin');
    assert.equal(versions[0]?.references, 0);
    assert.ok(versions[0]?.idleSince !== undefined);
  });

  it('releases the reference before the TaskInstance completes: a completion whose reply the master never gets leaks none', async () => {
    const r = redis();
    const { run, sha1 } = await endWithLostReply('pin/which', 'completed');
    assert.equal(await run.result(), 'v1');
    // Released before the completion, so already now, with no event and no prune pass.
    assert.deepEqual(await holders(r, sha1), []);
    assert.equal(await r.hexists(keys.refs, run.id), 0);
  });

  it('releases the reference before the TaskInstance fails for good: a failure whose reply the master never gets leaks none', async () => {
    const r = redis();
    const { run, sha1 } = await endWithLostReply('pin/boom', 'failed');
    assert.match((await failure(run.result())).message, /boom v1/);
    assert.deepEqual(await holders(r, sha1), []);
    assert.equal(await r.hexists(keys.refs, run.id), 0);
  });

  it('a TaskInstance added to tasks without a reference gets one at dispatch; one on a version that is gone fails unsent', async () => {
    await startCluster(1);
    const tydra = client();
    const r = redis();
    const { sha1 } = await tydra.deploy(await pinPackage('v1'));
    const queue = new Queue(TASKS_QUEUE, { prefix: '{tydra}:bull', connection: redis({ maxRetriesPerRequest: null }) });
    const data = (version: string) => ({
      ref: `pin@${version}/which`,
      package: { name: 'pin', sha1: version },
      task: 'which',
      input: { ms: 300 },
      attempts: 1,
      submittedAt: 0,
    });
    try {
      await queue.add('task-instance', data(sha1), { jobId: 'by-hand' });
      // Held while it runs, though no client took a reference for it.
      await waitFor('the dispatch to hold the reference', async () =>
        (await holders(r, sha1)).includes('by-hand') ? true : undefined,
      );
      assert.equal(await tydra.run('by-hand').result(), 'v1');
      await waitReleased(r, sha1);
      const gone = 'f'.repeat(40);
      await queue.add('task-instance', data(gone), { jobId: 'gone' });
      const error = await failure(tydra.run('gone').result());
      assert.match(error.message, /to be stored, found none \(never deployed, or pruned\)/);
      assert.equal((await tydra.run('gone').status()).nodeId, undefined);
      assert.equal(await r.hexists(keys.refs, 'gone'), 0);
    } finally {
      await queue.close();
    }
  });

  it('lists references and the states of their holders', async () => {
    const tydra = client();
    const { sha1 } = await tydra.deploy(await pinPackage('v1'));
    // No node and no master: the submissions wait in `tasks`.
    await tydra.submit('pin/which');
    await tydra.submit('pin/which');
    const { versions } = await tydra.packageVersions('pin');
    assert.equal(versions[0]?.sha1, sha1);
    assert.equal(versions[0]?.references, 2);
    assert.deepEqual(versions[0]?.holderStates, { waiting: 2 });
    assert.equal(versions[0]?.latest, true);
    assert.ok((versions[0]?.leaseMs ?? 0) > 0);
  });

  it('a prune between the existence check and the enqueue cannot win: the reference keeps the version', async () => {
    const tydra = client({ deployLeaseMs: 1 });
    const r = redis();
    const v1 = await tydra.deploy(await pinPackage('v1'));
    await tydra.deploy(await pinPackage('v2'));
    await sleep(5); // v1: not latest, lease gone, idle since its deploy
    let verdict: string | undefined;
    setSubmitHooks(tydra, {
      afterReference: async () => {
        const report = await prunePackages(r, keys, { graceMs: 0 });
        verdict = report.kept.find((d) => d.sha1 === v1.sha1)?.verdict;
      },
    });
    const run = await tydra.submit(`pin@${v1.sha1.slice(0, 10)}/which`);
    assert.equal(verdict, 'held');
    assert.equal(await r.exists(`{tydra}:pkg:pin:${v1.sha1}`), 1);
    await startCluster(1);
    assert.equal(await run.result(), 'v1');
  });

  it('a submit that does not enqueue lets go of the reference it took with the resolve', async () => {
    const tydra = client();
    const r = redis();
    const { sha1 } = await tydra.deploy(await pinPackage('v1'));
    let heldMidSubmit: string[] | undefined;
    setSubmitHooks(tydra, {
      afterReference: async () => {
        heldMidSubmit = await r.hkeys('{tydra}:refs');
      },
    });
    await assert.rejects(
      tydra.submit('pin/missing'),
      (error: unknown) => error instanceof UnknownTaskError && /to define task missing/.test(error.message),
    );
    assert.equal(heldMidSubmit?.length, 1, 'the resolve took the reference');
    assert.deepEqual(await holders(r, sha1), [], 'the unknown task let go of it');
    const first = await tydra.submit('pin/which', null, { key: 'once' });
    const second = await tydra.submit('pin/which', null, { key: 'once' });
    assert.equal(second.id, first.id, 'the second submit found the first TaskInstance');
    assert.deepEqual(await holders(r, sha1), [first.id], 'only the enqueued TaskInstance holds a reference');
    assert.deepEqual(await r.hkeys('{tydra}:refs'), [first.id]);
    assert.deepEqual(await new Queue(TASKS_QUEUE, { prefix: '{tydra}:bull', connection: r }).getJobCounts('waiting'), {
      waiting: 1,
    });
  });

  it('keeps latest, leased, held and in-grace versions, removes only the eligible one; dry-run changes nothing', async () => {
    const short = client({ deployLeaseMs: 1 });
    const long = client({ deployLeaseMs: 60_000 });
    const r = redis();
    const a = await short.deploy(await pinPackage('a'));
    const b = await short.deploy(await pinPackage('b'));
    const d = await short.deploy(await pinPackage('d'));
    const c = await long.deploy(await pinPackage('c'));
    const e = await short.deploy(await pinPackage('e'));
    await new PackageStore(r, keys).takeRef('pin', b.sha1, 'holder-of-b');
    // a idle for a minute, the others just deployed: far from the 30 s grace whatever the machine's load.
    await r.hset('{tydra}:package:pin:idle', a.sha1, String(Date.now() - 60_000));
    await sleep(5); // every 1 ms lease is over
    const sorted = (hash: Record<string, string>): string[][] => Object.entries(hash).sort();
    const snapshot = async (): Promise<string> =>
      JSON.stringify([
        (await r.keys('*')).sort(),
        sorted(await r.hgetall('{tydra}:package:pin:versions')),
        sorted(await r.hgetall('{tydra}:package:pin:idle')),
      ]);
    const before = await snapshot();
    const dry = await prunePackages(r, keys, { graceMs: 30_000, dryRun: true });
    assert.equal(await snapshot(), before);
    const verdicts = Object.fromEntries(
      [...dry.removed, ...dry.kept].map((decision) => [decision.sha1, decision.verdict]),
    );
    assert.deepEqual(verdicts, {
      [a.sha1]: 'eligible',
      [b.sha1]: 'held',
      [c.sha1]: 'leased',
      [d.sha1]: 'grace',
      [e.sha1]: 'latest',
    });
    const real = await prunePackages(r, keys, { graceMs: 30_000 });
    assert.deepEqual(
      real.removed.map((decision) => [decision.sha1, decision.verdict]),
      [[a.sha1, 'removed']],
    );
    assert.equal(await r.exists(`{tydra}:pkg:pin:${a.sha1}`), 0);
    assert.equal(await r.hexists('{tydra}:package:pin:versions', a.sha1), 0);
    for (const kept of [b, c, d, e]) {
      assert.equal(await r.exists(`{tydra}:pkg:pin:${kept.sha1}`), 1, `{tydra}:pkg:pin:${kept.sha1} must remain`);
    }
  });

  it('heals references left by crashed processes: a removed job and a finished job that was never released', async () => {
    const tydra = client({ deployLeaseMs: 1 });
    const r = redis();
    const store = new PackageStore(r, keys);
    const { sha1 } = await tydra.deploy(await pinPackage('v1'));
    // An operator removes a waiting TaskInstance in Bull Board (no master runs yet, so it waits).
    const waiting = await tydra.submit('pin/which');
    assert.equal(await new Queue(TASKS_QUEUE, { prefix: '{tydra}:bull', connection: r }).remove(waiting.id), 1);
    await startCluster(1);
    const done = await tydra.submit('pin/which');
    await done.result();
    await waitFor('done to be released', async () => ((await holders(r, sha1)).includes(done.id) ? undefined : true));
    // A master that crashed after completing the job but before releasing it:
    await store.takeRef('pin', sha1, done.id, { alreadyHeld: true });
    // A submit that crashed between its reference and its enqueue:
    await store.takeRef('pin', sha1, 'never-enqueued');
    assert.equal((await holders(r, sha1)).length, 3);
    // Young holders are never audited (their submit may still be enqueuing):
    const young = await prunePackages(r, keys, { graceMs: 0 });
    assert.equal(young.healed.length, 0);
    const report = await prunePackages(r, keys, { graceMs: 60_000, auditAfterMs: 0 });
    assert.deepEqual(
      report.healed.map((h) => [h.instanceId, h.why]).sort(),
      [
        [done.id, 'finished'],
        ['never-enqueued', 'missing'],
        [waiting.id, 'missing'],
      ].sort(),
    );
    assert.deepEqual(await holders(r, sha1), []);
    assert.equal(await r.hlen('{tydra}:refs'), 0);
    // Healing starts the grace period; the latest version is kept anyway.
    assert.deepEqual(
      report.kept.map((d) => d.verdict),
      ['latest'],
    );
  });

  it('a deploy lease keeps a non-latest version across prune periods until it is submitted', async () => {
    const { master } = await startCluster(1, {}, { pruneEveryMs: 150, pruneGraceMs: 0 });
    assert.equal(master.options.pruneEveryMs, 150);
    const leased = client({ deployLeaseMs: 5000 });
    const r = redis();
    const maintenance = new Queue(MAINTENANCE_QUEUE, { prefix: '{tydra}:bull', connection: r });
    const v1 = await leased.deploy(await pinPackage('v1'));
    await client({ deployLeaseMs: 1 }).deploy(await pinPackage('v2'));
    // Several prune passes, counted rather than slept through (a busy machine runs fewer per second).
    const passes = (await maintenance.getJobCounts('completed')).completed ?? 0;
    await waitFor('three prune passes', async () =>
      ((await maintenance.getJobCounts('completed')).completed ?? 0) >= passes + 3 ? true : undefined,
    );
    const run = await leased.submit(`pin@${v1.sha1}/which`);
    assert.equal(await run.result(), 'v1');
    // Released, lease over, not latest, grace 0: the scheduled prune job removes it.
    await waitFor(
      'the prune job to remove v1',
      async () => ((await r.exists(`{tydra}:pkg:pin:${v1.sha1}`)) === 0 ? true : undefined),
      15_000,
    );
    // The job that removed it may still be active, its log written but not yet moved to completed:
    // looked for in both, until it is seen (a CI run read `completed` too early once).
    await waitFor('a prune job to log the removal', async () => {
      const jobs = await maintenance.getJobs(['active', 'completed'], 0, 100);
      const logs = await Promise.all(jobs.map(async (job) => (await maintenance.getJobLogs(job.id ?? '')).logs));
      return logs.some((lines) => lines.some((line) => line.startsWith(`removed pin@${v1.sha1}: no holders since`)))
        ? true
        : undefined;
    });
  });

  it('many masters starting at once upsert one prune scheduler', async () => {
    await Promise.all([startCluster(0), startCluster(0), startCluster(0)]);
    const r = redis();
    const schedulers = await new Queue(MAINTENANCE_QUEUE, { prefix: '{tydra}:bull', connection: r }).getJobSchedulers();
    assert.deepEqual(
      schedulers.map((s) => [s.key, s.every]),
      [['prune-packages', 60_000]],
    );
  });

  it('undeploy takes a version out of use; its bytes stay while held and go at the next prune after', async () => {
    const tydra = client({ deployLeaseMs: 1 });
    const r = redis();
    const v1 = await tydra.deploy(await pinPackage('v1'));
    const v2 = await tydra.deploy(await pinPackage('v2'));
    const held = await tydra.submit('pin/which'); // holds v2, waiting (no cluster yet)
    const result = await tydra.undeploy('pin', v2.sha1.slice(0, 8));
    assert.deepEqual(result, { undeployed: [v2.sha1], latest: v1.sha1 });
    await assert.rejects(tydra.submit(`pin@${v2.sha1}/which`), /which was undeployed/);
    assert.equal((await tydra.submit('pin/which')).ref, `pin@${v1.sha1}/which`);
    // Held: kept even though undeployed.
    assert.deepEqual(
      (await prunePackages(r, keys, { graceMs: 60_000 })).kept.find((d) => d.sha1 === v2.sha1)?.verdict,
      'held',
    );
    await startCluster(1);
    assert.equal(await held.result(), 'v2');
    await waitReleased(r, v2.sha1);
    // Undeployed and free: removed at once, grace or not.
    const report = await prunePackages(r, keys, { graceMs: 60_000 });
    assert.deepEqual(
      report.removed.map((d) => d.sha1),
      [v2.sha1],
    );
    assert.equal(await r.exists(`{tydra}:pkg:pin:${v2.sha1}`), 0);
    await assert.rejects(tydra.undeploy('pin', 'ffff'), UnknownTaskError);
  });
});

describe('the prune pass at scale (@integration)', function () {
  this.timeout(60_000);

  it('removes the last version of a package along with the package entry', async () => {
    const tydra = client({ deployLeaseMs: 1 });
    const r = redis();
    await tydra.deploy(await pinPackage('only'));
    await tydra.undeploy('pin');
    await sleep(5);
    const report = await prunePackages(r, keys, { graceMs: 0, batch: 2 });
    assert.equal(report.removed.length, 1);
    assert.deepEqual(await tydra.packageNames(), []);
    assert.deepEqual((await r.keys('{tydra}:package:*')).concat(await r.keys('{tydra}:pkg:*')), []);
  });

  it('walks every package and version in bounded batches', async () => {
    const r = redis();
    // 30 packages × 3 versions written directly (what a deploy stores), prune in batches of 4.
    const pipeline = r.pipeline();
    const now = Date.now() - 10_000;
    for (let p = 0; p < 30; p += 1) {
      for (let v = 0; v < 3; v += 1) {
        const sha1 = `${String(p).padStart(2, '0')}${String(v).padStart(38, '0')}`;
        pipeline.set(`{tydra}:pkg:p${p}:${sha1}`, 'x');
        pipeline.hset(
          `{tydra}:package:p${p}:versions`,
          sha1,
          JSON.stringify({ name: `p${p}`, sha1, size: 1, deployedAt: now + v, manifest: { name: `p${p}`, tasks: {} } }),
        );
        if (v === 2) {
          pipeline.set(`{tydra}:package:p${p}:latest`, sha1);
        }
      }
      pipeline.zadd('{tydra}:packages', now, `p${p}`);
    }
    await pipeline.exec();
    const report = await prunePackages(r, keys, { graceMs: 1000, batch: 4 });
    assert.equal(report.packages, 30);
    assert.equal(report.versions, 90);
    assert.equal(report.removed.length, 60);
    assert.equal(report.kept.filter((d) => d.verdict === 'latest').length, 30);
    assert.equal((await r.keys('{tydra}:pkg:*')).length, 30);
  });
});
