import assert from 'node:assert/strict';

import { tydra as cli } from '../bin/run-cli.js';
import { makePackage, redisUrl, rejection, startCluster, testClient, waitFor } from '../helpers.js';

describe('tydra logs ID [--follow] (@integration)', function () {
  this.timeout(60_000);

  it("prints a TaskInstance's lines and how it ended, and with --follow new ones until it has ended", async () => {
    const { nodes } = await startCluster(1);
    const tydra = testClient();
    await tydra.deploy(
      await makePackage({
        'package.json': JSON.stringify({ type: 'module', private: true }),
        'tydra.json': JSON.stringify({ name: 'ticks', tasks: { tick: { module: 'tick.mjs' } } }),
        'tick.mjs': `export default async (input, ctx) => {
          if (input.fail) throw new Error('no more ticks');
          for (let i = 1; i <= input.n; i += 1) {
            ctx.log('tick ' + i);
            await new Promise((resolve) => setTimeout(resolve, input.ms));
          }
          return input.n;
        };\n`,
      }),
    );
    const run = await tydra.submit('ticks/tick', { n: 6, ms: 150 });
    const followed = await cli(['logs', run.id, '--follow', '--redis', redisUrl()]);
    assert.equal(followed.exitCode, 0, followed.stderr);
    assert.equal((await run.status()).state, 'completed', 'the follow ended with the TaskInstance');
    const lines = followed.stdout.trim().split('\n');
    assert.equal(lines[0], `dispatched to node ${nodes[0]?.id ?? ''}`);
    assert.equal(lines.at(-1), 'ended: completed');
    const ticks = lines.filter((line) => /tick \d$/.test(line));
    assert.deepEqual(
      ticks.map((line) => line.replace(/^.*(tick \d)$/, '$1')),
      ['tick 1', 'tick 2', 'tick 3', 'tick 4', 'tick 5', 'tick 6'],
    );

    const again = await cli(['logs', run.id, '--redis', redisUrl()]);
    assert.equal(again.stdout, followed.stdout, 'without --follow: the same lines, at once');
    const json = await cli(['logs', run.id, '--json', '--redis', redisUrl()]);
    assert.deepEqual(
      json.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as string),
      lines,
    );

    const failed = await tydra.submit('ticks/tick', { fail: true });
    await rejection(failed.result());
    const failedLogs = await cli(['logs', failed.id, '--redis', redisUrl()]);
    assert.equal(failedLogs.stdout.trim().split('\n').at(-1), 'ended: failed: no more ticks');
    const cancelled = await tydra.submit('ticks/tick', { n: 1000, ms: 100 });
    const following = cli(['logs', cancelled.id, '--follow', '--redis', redisUrl()]);
    await waitFor('the first tick', async () =>
      (await cancelled.status()).logs.some((line) => line.endsWith('tick 1')) ? true : undefined,
    );
    await cancelled.cancel();
    const cancelledLogs = await following;
    assert.equal(cancelledLogs.exitCode, 0, cancelledLogs.stderr);
    assert.equal(cancelledLogs.stdout.trim().split('\n').at(-1), 'ended: cancelled');

    const unknown = await cli(['logs', 'no-such-id', '--redis', redisUrl()]);
    assert.equal(unknown.exitCode, 1);
    assert.match(unknown.stderr, /no-such-id/);
  });
});
