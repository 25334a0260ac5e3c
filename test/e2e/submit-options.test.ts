import assert from 'node:assert/strict';

import type { Tydra } from '../../lib/client/client.js';
import { InvalidOptionError, TaskUnrecoverableError } from '../../lib/core/errors.js';
import { Queue } from 'bullmq';

import { nodeQueueName } from '../../queues/node.js';
import { defer, makePackage, redisUrl, startCluster, testClient, testRedis, waitFor, failure } from '../helpers.js';
import { tydra as cli } from '../bin/run-cli.js';

/** A package with one task per submit option under test; every task says when it ran. */
async function deployOptionsPackage(): Promise<Tydra> {
  const client = testClient();
  const dir = await makePackage({
    'package.json': '{ "type": "module", "private": true }',
    'tydra.json': JSON.stringify({
      name: 'subopts',
      tasks: {
        stamp: { module: 'stamp.mjs' },
        block: { module: 'block.mjs' },
        flaky: { module: 'flaky.mjs' },
        give_up: { module: 'give-up.mjs' },
        // Commands: units 0..n-1; unit 2's worker exits 3, declared final; reduce joins what it gets.
        units_cmd: {
          kind: 'parallel',
          attempts: 3,
          maxFailedWorkunits: 1,
          split: { command: ['/bin/sh', '-c', 'read n; i=0; while [ $i -lt "$n" ]; do echo $i; i=$((i+1)); done'] },
          work: {
            command: [
              '/bin/sh',
              '-c',
              'while read u; do [ "$u" = 2 ] && { echo "unit 2 gives up" >&2; exit 3; }; echo "$u"; done',
            ],
            unrecoverableExitCodes: [3],
          },
          reduce: {
            command: ['/bin/sh', '-c', 'read spec; out=; while read r; do out="$out$r,"; done; echo "\\"$out\\""'],
          },
        },
        // Exits with the code it is given; 3 is declared final.
        exits: {
          command: ['/bin/sh', '-c', 'echo "attempt $TYDRA_ATTEMPT" >&2; exit "$(cat)"'],
          unrecoverableExitCodes: [3],
        },
        env: { module: 'env.mjs' },
        pair: { kind: 'sequence', steps: ['stamp', 'stamp'] },
        units: { kind: 'parallel', module: 'units.mjs', attempts: 3, maxFailedWorkunits: 1 },
      },
    }),
    // When it ran (ms), so the tests read the order of runs from the results, never from timing.
    'stamp.mjs': 'export default (input, ctx) => ({ input, at: Date.now(), attempt: ctx.attempt });\n',
    // Runs until it is cancelled (the node kills its sandbox).
    'block.mjs': 'export default () => new Promise(() => setInterval(() => {}, 1000));\n',
    // Logs when each attempt started, and fails until its third.
    'flaky.mjs': [
      'export default (input, ctx) => {',
      '  ctx.log(`attempt ${ctx.attempt} at ${Date.now()}`);',
      '  if (ctx.attempt < 3) throw new Error(`flaky attempt ${ctx.attempt}`);',
      '  return { attempt: ctx.attempt };',
      '};',
      '',
    ].join('\n'),
    // Fails for good: ctx.fail, or an error class of its own named TydraUnrecoverable.
    'give-up.mjs': [
      "class Bad extends Error { name = 'TydraUnrecoverable'; }",
      'export default (input, ctx) => {',
      '  ctx.log(`attempt ${ctx.attempt}`);',
      "  if (input === 'throw') throw new Bad('own class gives up');",
      "  ctx.fail('bad input, no retry');",
      '};',
      '',
    ].join('\n'),
    // Unit 2 gives up for good; the others return their index.
    'units.mjs': [
      'export const split = () => [0, 1, 2, 3];',
      "export const work = (unit, ctx) => (unit === 2 ? ctx.fail('unit 2 gives up') : unit);",
      'export const reduce = async (results) => { const all = []; for await (const r of results) all.push(r); return all; };',
      '',
    ].join('\n'),
    'env.mjs': [
      'export default () => ({',
      '  greeting: process.env.GREETING ?? null,',
      '  other: process.env.OTHER ?? null,',
      "  names: Object.keys(process.env).filter((name) => !name.startsWith('TYDRA_')).sort(),",
      '});',
      '',
    ].join('\n'),
  });
  await client.deploy(dir);
  return client;
}

/** The `attempt N at MS` lines of a TaskInstance's logs, as [attempt, ms]. */
function attemptTimes(logs: string[]): Array<[number, number]> {
  return logs.flatMap((line) => {
    const match = /^attempt (\d+) at (\d+)$/.exec(line);
    return match ? [[Number(match[1]), Number(match[2])] as [number, number]] : [];
  });
}

describe('submit options: priority, delay, idempotency, backoff, env (@integration)', function () {
  this.timeout(60_000);

  it('a high-priority TaskInstance overtakes queued low-priority ones on a busy node (client and CLI)', async () => {
    await startCluster(1, { concurrency: 1 });
    const client = await deployOptionsPackage();
    const blocker = await client.submit('subopts/block');
    await waitFor('the blocker to run', async () => ((await blocker.status()).state === 'running' ? true : undefined));
    const low = [];
    for (let n = 0; n < 3; n += 1) {
      low.push(await client.submit('subopts/stamp', `low-${n}`, { priority: 10 }));
    }
    const submitted = await cli([
      ...['run', 'subopts/stamp', '--input', '"high"', '--priority', '1', '--detach', '--redis', redisUrl()],
    ]);
    assert.equal(submitted.exitCode, 0, submitted.stderr);
    const high = client.run(submitted.stdout.trim());
    // Every one is on the node's queue behind the blocker before the blocker goes.
    for (const run of [...low, high]) {
      await waitFor(`${run.id} on the node`, async () =>
        (await run.status()).state === 'dispatched' ? true : undefined,
      );
    }
    await blocker.cancel();
    const lowAt = await Promise.all(low.map(async (run) => ((await run.result()) as { at: number }).at));
    const highAt = ((await high.result()) as { at: number }).at;
    assert.ok(
      lowAt.every((at) => highAt < at),
      `high ran at ${highAt}, lows at ${lowAt.join(', ')}`,
    );
    assert.deepEqual(
      [...lowAt].sort((a, b) => a - b),
      lowAt,
      'equal priorities run in submission order',
    );
  });

  it('a delayed TaskInstance waits as delayed, then runs no earlier than asked (client and CLI)', async () => {
    await startCluster(1);
    const client = await deployOptionsPackage();
    const later = await client.submit('subopts/stamp', 'later', { at: new Date(Date.now() + 3_600_000) });
    const status = await later.status();
    assert.equal(status.state, 'delayed');
    assert.ok(status.runAt !== undefined && status.runAt > Date.now());
    assert.deepEqual(await later.cancel(), { id: later.id, outcome: 'removed' });
    const at = new Date(Date.now() + 3_600_000).toISOString();
    const detached = await cli(['run', 'subopts/stamp', '--at', at, '--detach', '--redis', redisUrl()]);
    assert.equal(detached.exitCode, 0, detached.stderr);
    const shown = await cli(['status', detached.stdout.trim(), '--redis', redisUrl()]);
    assert.match(shown.stdout, new RegExp(`^${detached.stdout.trim()}  delayed\nref: subopts@[0-9a-f]{40}/stamp\n`));
    assert.ok(shown.stdout.includes(`runs at: ${at}`), shown.stdout);
    await client.run(detached.stdout.trim()).cancel();

    const soon = await client.submit('subopts/stamp', 'soon', { delayMs: 800 });
    const runAt = (await soon.status()).runAt ?? 0;
    assert.ok(((await soon.result()) as { at: number }).at >= runAt, 'it ran before its delay was over');

    const ran = await cli([
      'run',
      'subopts/stamp',
      '--input',
      '"cli"',
      '--delay',
      '500',
      '--json',
      '--redis',
      redisUrl(),
    ]);
    assert.equal(ran.exitCode, 0, ran.stderr);
    const printed = JSON.parse(ran.stdout) as { id: string; result: { at: number } };
    const { submittedAt } = await client.run(printed.id).status();
    assert.ok(submittedAt !== undefined);
    assert.ok(printed.result.at >= submittedAt + 500, 'the CLI delay was not applied');
  });

  it('refuses an `at` in the past, `at` with `delayMs`, and bad priorities, naming the option', async () => {
    const client = await deployOptionsPackage();
    await assert.rejects(client.submit('subopts/stamp', null, { at: '2001-01-01T00:00:00Z' }), {
      name: 'InvalidOptionError',
      message: /^Expected the `at` submit option to be in the future, got 2001-01-01T00:00:00.000Z \(now is /,
    });
    await assert.rejects(client.submit('subopts/stamp', null, { at: new Date(Date.now() + 1000), delayMs: 5 }), {
      name: 'InvalidOptionError',
      message: 'Expected either the `delayMs` or the `at` submit option, got both',
    });
    await assert.rejects(client.submit('subopts/stamp', null, { priority: 0 }), (error: Error) => {
      assert.ok(error instanceof InvalidOptionError);
      assert.match(error.message, /^Expected the `priority` submit option to be valid \(an integer from 1 \(highest\)/);
      return true;
    });
    // With no master to take it, a prioritised TaskInstance waits in BullMQ's prioritised set.
    const queued = await client.submit('subopts/stamp', null, { priority: 3 });
    const tasks = new Queue('tasks', { prefix: '{tydra}:bull', connection: testRedis({ maxRetriesPerRequest: null }) });
    defer(() => tasks.close());
    assert.equal(await tasks.getJobState(queued.id), 'prioritized');
    assert.equal((await queued.status()).state, 'queued');
    await queued.cancel();
    const past = await cli(['run', 'subopts/stamp', '--at', '2001-01-01T00:00:00Z', '--redis', redisUrl()]);
    assert.equal(past.exitCode, 1);
    assert.match(past.stderr, /Expected the `at` submit option to be in the future/);
    const both = await cli(['run', 'subopts/stamp', '--at', '2099-01-01T00:00:00Z', '--delay', '5']);
    assert.equal(both.exitCode, 1);
    assert.match(both.stderr, /option '--delay <ms>' cannot be used with option '--at <iso-date>'/);
  });

  it('refuses an input over maxInputBytes (1 MiB by default) before it enqueues anything', async () => {
    const client = await deployOptionsPackage();
    const tasks = new Queue('tasks', { prefix: '{tydra}:bull', connection: testRedis({ maxRetriesPerRequest: null }) });
    defer(() => tasks.close());
    const before = await tasks.getJobCountByTypes('waiting', 'prioritized', 'delayed');
    // A JSON string of 1 MiB of letters is 1 MiB + 2 bytes (its quotes).
    const input = 'x'.repeat(1024 * 1024);
    await assert.rejects(client.submit('subopts/stamp', input), {
      name: 'InvalidOptionError',
      message: `Expected the input to be JSON of at most 1048576 bytes, got 1048578 bytes`,
    });
    assert.equal(await tasks.getJobCountByTypes('waiting', 'prioritized', 'delayed'), before);
    const fits = await client.submit('subopts/stamp', input.slice(2));
    assert.equal(await tasks.getJobState(fits.id), 'waiting', 'exactly 1 MiB of JSON is taken');
    await fits.cancel();
  });

  it('a second submit with the same key returns the first TaskInstance, queued or finished (client and CLI)', async () => {
    await startCluster(1);
    const client = await deployOptionsPackage();
    // Racing: both claim the key at once; one TaskInstance comes of it.
    const [first, second] = await Promise.all([
      client.submit('subopts/stamp', 'one', { key: 'order-1234' }),
      client.submit('subopts/stamp', 'two', { key: 'order-1234' }),
    ]);
    assert.equal(second?.id, first?.id);
    const result = (await first?.result()) as { input: string };
    const again = await cli(['run', 'subopts/stamp', '--key', 'order-1234', '--detach', '--redis', redisUrl()]);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.equal(again.stdout.trim(), first?.id);
    const finished = await client.submit('subopts/stamp', 'three', { key: 'order-1234' });
    assert.equal(finished.id, first?.id);
    assert.equal(finished.ref, first?.ref);
    assert.deepEqual(await finished.result(), result);
    const { logs } = await finished.status();
    assert.equal(logs.filter((line) => line.startsWith('running ')).length, 1, 'it ran once');
    // Scoped by task: the same key on another task is another TaskInstance.
    const other = await client.submit('subopts/env', null, { key: 'order-1234' });
    assert.notEqual(other.id, first?.id);
    await other.result();
    const redis = testRedis();
    assert.equal(await redis.get('{tydra}:idem:subopts:stamp:order-1234'), first?.id);
    const ttl = await redis.pttl('{tydra}:idem:subopts:stamp:order-1234');
    assert.ok(ttl > 0 && ttl <= 24 * 3600 * 1000, `ttl ${ttl}`);
  });

  it('retries with a fixed or exponential backoff between attempts (client and CLI)', async () => {
    await startCluster(1);
    const client = await deployOptionsPackage();
    const fixed = await client.submit('subopts/flaky', null, { attempts: 3, backoff: { type: 'fixed', delayMs: 400 } });
    assert.deepEqual(await fixed.result(), { attempt: 3 });
    const fixedTimes = attemptTimes((await fixed.status()).logs);
    assert.deepEqual(
      fixedTimes.map(([attempt]) => attempt),
      [1, 2, 3],
    );
    for (let n = 1; n < fixedTimes.length; n += 1) {
      const gap = (fixedTimes[n]?.[1] ?? 0) - (fixedTimes[n - 1]?.[1] ?? 0);
      assert.ok(gap >= 400, `attempt ${n + 1} came ${gap} ms after the one before, less than the 400 ms backoff`);
    }
    const ran = await cli([
      ...['run', 'subopts/flaky', '--attempts', '3', '--backoff', 'exponential:300', '--json', '--redis', redisUrl()],
    ]);
    assert.equal(ran.exitCode, 0, ran.stderr);
    const { id } = JSON.parse(ran.stdout) as { id: string };
    const times = attemptTimes((await client.run(id).status()).logs).map(([, at]) => at);
    assert.equal(times.length, 3);
    assert.ok((times[1] ?? 0) - (times[0] ?? 0) >= 300, `first gap ${(times[1] ?? 0) - (times[0] ?? 0)} ms`);
    assert.ok((times[2] ?? 0) - (times[1] ?? 0) >= 600, `second gap ${(times[2] ?? 0) - (times[1] ?? 0)} ms`);
  });

  it('a command exiting with a code its manifest declares unrecoverable is not retried; another code is', async () => {
    await startCluster(1);
    const client = await deployOptionsPackage();
    const final = await client.submit('subopts/exits', 3, { attempts: 3 });
    const given = await failure(final.result());
    assert.ok(given instanceof TaskUnrecoverableError, `got ${given.name}`);
    assert.equal(given.message, 'command exited with code 3: attempt 1');
    const retried = await client.submit('subopts/exits', 4, { attempts: 3 });
    const error = await failure(retried.result());
    assert.ok(!(error instanceof TaskUnrecoverableError), `got ${error.name}`);
    assert.equal(error.message, 'command exited with code 4: attempt 3');
    const attempts = async (run: typeof final) =>
      (await run.status()).logs.filter((line) => line.startsWith('[stderr] attempt '));
    assert.deepEqual(await attempts(final), ['[stderr] attempt 1']);
    assert.deepEqual(await attempts(retried), ['[stderr] attempt 1', '[stderr] attempt 2', '[stderr] attempt 3']);

    // A parallel task's work command: the unit whose worker exited 3 is not tried again.
    const units = await client.submit('subopts/units_cmd', 4);
    assert.equal(await units.result(), '0,1,null,3,');
    const unitLogs = (await units.status()).logs.filter((line) => line.startsWith('[workunit 2] attempt'));
    assert.deepEqual(unitLogs, ['[workunit 2] attempt 1 failed: command exited with code 3: unit 2 gives up']);
  });

  it('a task that calls ctx.fail or throws a TydraUnrecoverable error is not retried', async () => {
    await startCluster(1);
    const client = await deployOptionsPackage();
    const failed = await client.submit('subopts/give_up', null, { attempts: 3 });
    const given = await failure(failed.result());
    assert.ok(given instanceof TaskUnrecoverableError, `got ${given.name}`);
    assert.equal(given.message, 'bad input, no retry');
    const thrown = await client.submit('subopts/give_up', 'throw', { attempts: 3 });
    const error = await failure(thrown.result());
    assert.equal(error.message, 'own class gives up');
    assert.match(error.remoteStack ?? '', /^TydraUnrecoverable: own class gives up\n/);
    const units = await client.submit('subopts/units');
    assert.deepEqual(await units.result(), [0, 1, null, 3]);
    const unitLogs = (await units.status()).logs.filter((line) => line.startsWith('[workunit 2] attempt'));
    assert.deepEqual(
      unitLogs,
      ['[workunit 2] attempt 1 failed: unit 2 gives up'],
      'a unit that gave up is not retried',
    );
    for (const run of [failed, thrown]) {
      const { logs, state } = await run.status();
      assert.equal(state, 'failed');
      assert.deepEqual(
        logs.filter((line) => line.startsWith('attempt ')),
        ['attempt 1'],
      );
    }
  });

  it('sets env in its own TaskInstance sandbox only (client and CLI), and refuses names tydra sets', async () => {
    await startCluster(1);
    const client = await deployOptionsPackage();
    const withEnv = await client.submit('subopts/env', null, { env: { GREETING: 'hello there', OTHER: 'a=b' } });
    const without = await client.submit('subopts/env');
    assert.deepEqual(await withEnv.result(), {
      greeting: 'hello there',
      other: 'a=b',
      names: ['GREETING', 'HOME', 'LANG', 'OTHER', 'PATH', 'PWD', 'TMPDIR'],
    });
    assert.deepEqual(await without.result(), {
      greeting: null,
      other: null,
      names: ['HOME', 'LANG', 'PATH', 'PWD', 'TMPDIR'],
    });
    const ran = await cli([
      ...['run', 'subopts/env', '--env', 'GREETING=from the CLI', '--env', 'OTHER=x=y', '--redis', redisUrl()],
    ]);
    assert.equal(ran.exitCode, 0, ran.stderr);
    assert.deepEqual(JSON.parse(ran.stdout), {
      greeting: 'from the CLI',
      other: 'x=y',
      names: ['GREETING', 'HOME', 'LANG', 'OTHER', 'PATH', 'PWD', 'TMPDIR'],
    });
    await assert.rejects(client.submit('subopts/env', null, { env: { PATH: '/evil' } }), {
      name: 'InvalidOptionError',
      message:
        'Expected the `env.PATH` submit option to be a name tydra does not set itself (not PATH, HOME, TMPDIR, LANG, PWD, NODE_OPTIONS, NODE_PATH, TYDRA_*, LD_*), got the name `PATH`',
    });
    await assert.rejects(client.submit('subopts/env', null, { env: { TYDRA_INSTANCE_ID: 'x' } }), {
      message: /^Expected the `env.TYDRA_INSTANCE_ID` submit option to be a name tydra does not set itself/,
    });
    await assert.rejects(client.submit('subopts/env', null, { env: { lower: 'x' } }), {
      message:
        'Expected the `env.lower` submit option to be a name matching ^[A-Z][A-Z0-9_]{0,63}$, got the name `lower`',
    });
    await assert.rejects(client.submit('subopts/env', null, { env: { BIG: 'x'.repeat(4097) } }), {
      message:
        'Expected the `env.BIG` submit option to be a string of at most 4096 bytes, got a string of 4097 bytes (not shown)',
    });
    await assert.rejects(client.submit('subopts/pair', null, { backoff: { type: 'fixed', delayMs: 1 } }), {
      message: 'Expected the `backoff` submit option only for a simple task, got it for task pair, a sequence task',
    });
    const bad = await cli(['run', 'subopts/env', '--env', 'HOME=/root', '--redis', redisUrl()]);
    assert.equal(bad.exitCode, 1);
    assert.match(bad.stderr, /Expected the `env.HOME` submit option to be a name tydra does not set itself/);
  });

  it('a node refuses job data whose env was not checked by a client (a reserved name), running nothing', async () => {
    const { nodes } = await startCluster(1);
    const client = await deployOptionsPackage();
    const run = await client.submit('subopts/env');
    await run.result();
    const data = await testRedis().hgetall(`{tydra}:bull:tasks:${run.id}`);
    const queue = new Queue(nodeQueueName(nodes[0]?.id ?? ''), {
      prefix: '{tydra}:bull',
      connection: testRedis({ maxRetriesPerRequest: null }),
    });
    defer(() => queue.close());
    const pinned = JSON.parse(data.data ?? '{}') as { ref: string; package: unknown; task: string };
    const forged = await queue.add(
      'run',
      { ...pinned, instanceId: 'forged-env', input: null, env: { LD_PRELOAD: '/task/evil.so' } },
      { jobId: 'forged-env' },
    );
    const reason = await waitFor('the forged job to fail', async () =>
      (await forged.getState()) === 'failed' ? (await queue.getJob('forged-env'))?.failedReason : undefined,
    );
    assert.match(
      reason,
      /^Expected node job data \{instanceId, package, task, input\}, got invalid data: a name tydra does not set itself/,
    );
  });

  it("gives a sequence's steps, and their node jobs, the sequence's priority", async () => {
    const { nodes } = await startCluster(1);
    const client = await deployOptionsPackage();
    const run = await client.submit('subopts/pair', 'seq', { priority: 7 });
    await run.result();
    const connection = testRedis({ maxRetriesPerRequest: null });
    const tasks = new Queue('tasks', { prefix: '{tydra}:bull', connection });
    const nodeQueue = new Queue(nodeQueueName(nodes[0]?.id ?? ''), { prefix: '{tydra}:bull', connection });
    defer(() => Promise.all([tasks.close(), nodeQueue.close()]));
    const steps = (await tasks.getCompleted()).filter((job) => job.data.parentSequence?.id === run.id);
    assert.equal(steps.length, 2);
    for (const step of steps) {
      assert.equal(step.opts.priority, 7);
      assert.equal((await nodeQueue.getJob(step.id ?? ''))?.opts.priority, 7);
    }
  });
});
