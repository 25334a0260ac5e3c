import assert from 'node:assert/strict';

import { TaskFailedError } from '../../lib/core/errors.js';
import { makePackage, startCluster, testClient } from '../helpers.js';

const MiB = 1024 * 1024;

/** Tasks that print N bytes on stdout, to observe which output limit applies. */
function loudPackage(limits: { package?: object; task?: object }): Promise<string> {
  return makePackage({
    'tydra.json': JSON.stringify({
      name: 'loud',
      ...(limits.package ? { limits: limits.package } : {}),
      tasks: {
        shout: { module: 'shout.mjs', ...(limits.task ? { limits: limits.task } : {}) },
        plain: { module: 'shout.mjs' },
      },
    }),
    'shout.mjs': `export default async (input) => { process.stdout.write('x'.repeat(input.bytes) + '\\n'); await new Promise((r) => setTimeout(r, 50)); return input.bytes; };`,
  });
}

async function failure(promise: Promise<unknown>): Promise<TaskFailedError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof TaskFailedError, String(error));
    return error;
  }
  assert.fail('expected the TaskInstance to fail');
}

describe('task limits from tydra.json, the submission and the node (@integration)', function () {
  this.timeout(30_000);

  it('a task limit overrides the package limit, a submission overrides both, the node maximum caps all', async () => {
    await startCluster(1, { maxTaskLimits: { outputBytes: 64 * 1024 } });
    const tydra = testClient();
    await tydra.deploy(await loudPackage({ package: { outputBytes: 4096 }, task: { outputBytes: 16 * 1024 } }));
    // Task limit 16 KiB: 8 KiB passes, 20 KiB breaks it.
    assert.equal(await (await tydra.submit('loud/shout', { bytes: 8 * 1024 })).result(), 8 * 1024);
    const task = await failure((await tydra.submit('loud/shout', { bytes: 20 * 1024 })).result());
    assert.equal(task.message, 'output limit exceeded (16 KiB on stdout)');
    // Package limit 4 KiB for the task without its own.
    const pkg = await failure((await tydra.submit('loud/plain', { bytes: 8 * 1024 })).result());
    assert.equal(pkg.message, 'output limit exceeded (4 KiB on stdout)');
    // The submission asks for 32 KiB: allowed (node maximum 64 KiB).
    assert.equal(
      await (await tydra.submit('loud/plain', { bytes: 20 * 1024 }, { limits: { outputBytes: 32 * 1024 } })).result(),
      20 * 1024,
    );
    // It asks for 1 MiB: lowered to the node's 64 KiB, and the log says so.
    const capped = await tydra.submit('loud/plain', { bytes: 100 * 1024 }, { limits: { outputBytes: MiB } });
    const error = await failure(capped.result());
    assert.equal(error.message, 'output limit exceeded (64 KiB on stdout)');
    const status = await capped.status();
    assert.ok(
      status.logs.includes(
        'asked for a output limit (1 MiB per stream); this node allows at most output limit (64 KiB per stream)',
      ),
      status.logs.join('\n'),
    );
  });

  it('a limit violation is not retried unless the submission asks for it', async () => {
    await startCluster(1);
    const tydra = testClient();
    await tydra.deploy(await loudPackage({}));
    const once = await tydra.submit('loud/plain', { bytes: 4096 }, { attempts: 3, limits: { outputBytes: 1024 } });
    assert.equal((await failure(once.result())).message, 'output limit exceeded (1 KiB on stdout)');
    assert.equal((await once.status()).logs.filter((line) => line.startsWith('running ')).length, 1);
    const retried = await tydra.submit(
      'loud/plain',
      { bytes: 4096 },
      { attempts: 2, limits: { outputBytes: 1024 }, retryOnLimit: true },
    );
    assert.equal((await failure(retried.result())).message, 'output limit exceeded (1 KiB on stdout)');
    assert.equal((await retried.status()).logs.filter((line) => line.startsWith('running ')).length, 2);
  });

  it('rejects bad limits at submit, naming the field', async () => {
    const tydra = testClient();
    await tydra.deploy(await loudPackage({}));
    await assert.rejects(
      tydra.submit('loud/plain', null, { limits: { memoryBytes: 1024 } }),
      /`limits\.memoryBytes` submit option/,
    );
    await assert.rejects(
      tydra.submit('loud/plain', null, { limits: { memory: 5 } as never }),
      /unknown key\(s\) `memory`/,
    );
    await assert.rejects(tydra.deploy(await loudPackage({ task: { pids: 0 } })), /tasks\.shout\.limits\.pids/);
  });
});
