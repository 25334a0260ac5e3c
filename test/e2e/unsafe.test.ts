import assert from 'node:assert/strict';
import { Writable } from 'node:stream';

import { pino } from 'pino';

import { copyFixture, startCluster, testClient } from '../helpers.js';

describe('the development-only --unsafe-no-sandbox mode (@integration)', function () {
  this.timeout(30_000);

  it('runs tasks without bubblewrap, and says so loudly at start, for every task and in the node registry', async () => {
    const lines: Array<{ level: number; msg: string }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
        callback();
      },
    });
    await startCluster(1, { unsafeNoSandbox: true, logger: pino({ level: 'info' }, sink) });
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const result = (await (await tydra.submit('probe/echo', 'x')).result()) as { uid: number; cwd: string };
    assert.equal(result.uid, process.getuid?.(), 'without the sandbox the task runs as the node user');
    assert.notEqual(result.cwd, '/task');
    const warnings = lines.filter((line) => line.level === 40).map((line) => line.msg);
    assert.ok(
      warnings.some((msg) => msg.startsWith('UNSAFE: --unsafe-no-sandbox is set: task code runs WITHOUT bubblewrap')),
      warnings.join(' | '),
    );
    assert.ok(warnings.includes('UNSAFE: running a task without a sandbox'));
    // And to operators: `tydra nodes` and the Nodes page read its sandbox mode from the registry.
    const [node] = await tydra.nodes();
    assert.equal(node?.sandbox, 'unsandboxed');
  });
});
