import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

import { copyFixture, redisUrl, SANDBOX_ENV_NAMES, startCluster, testClient, waitFor } from '../helpers.js';
import { pidsWithEnv } from '../processes.js';

interface Attempt {
  ok: boolean;
  value?: unknown;
  code?: string;
}
interface Walls {
  uid: number;
  gid: number;
  env: Record<string, string>;
  writePackage: Attempt;
  writeUsr: Attempt;
  writeTmp: Attempt;
  shadow: Attempt;
  passwd: Attempt;
  root: Attempt;
  topLevel: string[];
  pids: number;
}

describe('the sandbox, seen from inside (@integration)', function () {
  this.timeout(30_000);

  async function run(ref: string, input: unknown = null): Promise<unknown> {
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    return (await tydra.submit(ref, input)).result();
  }

  it('cannot write to the package folder or the system, only to its own /tmp', async () => {
    await startCluster(1);
    const walls = (await run('probe/walls')) as Walls;
    assert.deepEqual(walls.writePackage, { ok: false, code: 'EROFS' });
    assert.deepEqual(walls.writeUsr, { ok: false, code: 'EROFS' });
    assert.deepEqual(walls.writeTmp, { ok: true, value: 'x' });
  });

  it('sees no host files: no /root, no /etc/shadow, no /etc/passwd, only the documented folders', async () => {
    await startCluster(1);
    const walls = (await run('probe/walls')) as Walls;
    assert.deepEqual(walls.shadow, { ok: false, code: 'ENOENT' });
    assert.deepEqual(walls.passwd, { ok: false, code: 'ENOENT' });
    assert.deepEqual(walls.root, { ok: false, code: 'ENOENT' });
    // Exactly the sandbox's own folders, plus those of /bin, /lib… that exist on this host.
    const always = ['dev', 'etc', 'opt', 'proc', 'task', 'tmp', 'usr'];
    const hostDependent = ['bin', 'lib', 'lib32', 'lib64', 'libx32', 'sbin'].filter((dir) => existsSync(`/${dir}`));
    assert.deepEqual(walls.topLevel, [...always, ...hostDependent].sort());
  });

  it('runs as nobody with a cleared environment and its own pid namespace', async () => {
    await startCluster(1);
    const walls = (await run('probe/walls')) as Walls;
    assert.equal(walls.uid, 65534);
    assert.equal(walls.gid, 65534);
    assert.deepEqual(Object.keys(walls.env).sort(), SANDBOX_ENV_NAMES);
    assert.ok(walls.pids <= 3, `expected only the sandbox's own processes, saw ${walls.pids}`);
  });

  it("is an unprivileged user on the host too: every sandbox process has one host uid of the node's range, never root", async () => {
    await startCluster(1);
    const tydra = testClient();
    await tydra.deploy(await copyFixture('probe'));
    const napping = await tydra.submit('probe/nap', { ms: 1500 });
    const pids = await waitFor('the sandbox to start', async () => {
      const found = await pidsWithEnv('TYDRA_INSTANCE_ID', napping.id);
      return found.length > 0 ? found : undefined;
    });
    // Seen from the host (this test runs as root, like the node): bwrap maps a task's uid to the
    // user that started bwrap, so this is what the kernel checks on sysctls and mounted files. A
    // node running as root gives each sandbox one of 256 users from 60000 (sandbox-users.ts).
    const seen = new Set<string>();
    for (const pid of pids) {
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/);
      if (uids !== undefined) {
        assert.equal(new Set(uids).size, 1, `real, effective, saved and fs uids of ${pid} are one: ${uids.join(' ')}`);
        seen.add(uids[0] ?? '');
      }
    }
    assert.equal(seen.size, 1, `one host uid for the whole sandbox, saw ${[...seen].join(', ')}`);
    const [uid] = [...seen].map(Number);
    if (process.getuid?.() === 0) {
      assert.ok(uid !== undefined && uid >= 60_000 && uid < 60_256, `host uid ${uid} in 60000-60255`);
    } else {
      assert.equal(uid, process.getuid?.());
    }
    await napping.result();
  });

  it('cannot open a network connection, not even to the test Redis on loopback', async () => {
    await startCluster(1);
    const port = Number(new URL(redisUrl()).port);
    assert.deepEqual(await run('probe/connect', { host: '127.0.0.1', port }), {
      connected: false,
      error: 'ECONNREFUSED',
    });
    const outside = (await run('probe/connect', { host: '192.0.2.1', port: 80 })) as {
      connected: boolean;
      error: string;
    };
    assert.equal(outside.connected, false);
    assert.equal(outside.error, 'ENETUNREACH');
  });
});
