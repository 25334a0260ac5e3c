import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';

import { pino } from 'pino';

import { copyFixture, makePackage, startCluster, testClient } from '../helpers.js';

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

  it('gives a command and a module their secrets and env without a sandbox too', async () => {
    const key = randomBytes(32).toString('base64');
    await startCluster(1, { unsafeNoSandbox: true, secretKey: key, logger: pino({ level: 'silent' }) });
    const tydra = testClient({ secretKey: key });
    await tydra.setSecret('DB_PASSWORD', 'dev-pw');
    const script = 'cat >/dev/null; printf "{\\"db\\":\\"%s\\",\\"g\\":\\"%s\\"}" "$DB_PASSWORD" "$GREETING"';
    await tydra.deploy(
      await makePackage({
        'package.json': '{ "type": "module", "private": true }',
        'tydra.json': JSON.stringify({
          name: 'devsecrets',
          tasks: {
            cmd: { command: ['/bin/sh', '-c', script], secrets: ['DB_PASSWORD'] },
            mod: { module: 'mod.mjs', secrets: ['DB_PASSWORD'] },
          },
        }),
        'mod.mjs': 'export default () => ({ db: process.env.DB_PASSWORD, g: process.env.GREETING });\n',
      }),
    );
    for (const task of ['cmd', 'mod']) {
      const run = await tydra.submit(`devsecrets/${task}`, null, { env: { GREETING: task } });
      // The result is masked like any output: the task saw the value, Redis holds `***`.
      assert.deepEqual(await run.result(), { db: '***', g: task }, task);
    }
  });
});
