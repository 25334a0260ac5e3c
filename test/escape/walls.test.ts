/**
 * Attacks on the sandbox's walls: secrets, the network, the file system, privileges and the
 * node's output channels. Each runs as a real TaskInstance through master and node; the attacks
 * the sandbox blocks by design return a report of errno codes, asserted exactly.
 */
import assert from 'node:assert/strict';
import { existsSync, readlinkSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';

import { RUNTIME_MOUNT, SYSTEM_ETC_FILES } from '../../sandbox/launcher/bwrap-args.js';
import { nodeMark } from '../../sandbox/launcher/process-mark.js';
import { RUNNER_FILE } from '../../sandbox/launcher/runtime-dir.js';
import { defer, redisUrl, SANDBOX_ENV_NAMES, tempDir } from '../helpers.js';
import { arena, CANARY, expectFailure, expectHostUnchanged, expectResult, hostState, sha256File } from './harness.js';

interface Attempt {
  ok: boolean;
  value?: unknown;
  code?: string;
}

interface SecretsReport {
  shadow: Attempt;
  root: Attempt;
  pid1Environ: Attempt;
  pid1Cmdline: Attempt;
  nodeEnviron: Attempt;
  nodeCacheDir: Attempt;
  nodeCwd: Attempt;
  canary: Attempt;
  canaryWrite: Attempt;
  envKeys: string[];
  secretsSeen: string[];
}

/** A TCP server on all addresses that counts the connections it accepts. */
async function countingServer(): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  defer(() => new Promise((resolve) => server.close(resolve)));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { port: address.port, connections: () => connections };
}

/** An IPv4 address of this host other than loopback, if it has one. */
function externalAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((info) => info !== undefined && info.family === 'IPv4' && !info.internal)?.address;
}

describe('escape suite: walls (@integration)', function () {
  this.timeout(30_000);

  it("reads no secret: /etc/shadow, /root, pid 1, the node's /proc entry, its cache folder, a host canary, its environment", async () => {
    const a = await arena();
    const canaryDir = await tempDir('tydra-canary-');
    const canaryFile = join(canaryDir, 'canary.txt');
    await writeFile(canaryFile, CANARY);
    const before = await hostState(a);
    const secrets = [CANARY, redisUrl(), 'TYDRA_TEST_REDIS_URL', 'TYDRA_ESCAPE_CANARY', 'HOME=/root'];
    const run = await a.attack('read-secrets', {
      nodePid: process.pid,
      cacheDir: a.node.cache.dir,
      nodeCwd: process.cwd(),
      canaryFile,
      secrets,
    });
    const report = (await expectResult(a, run)) as SecretsReport;
    assert.deepEqual(report.shadow, { ok: false, code: 'ENOENT' });
    assert.deepEqual(report.root, { ok: false, code: 'ENOENT' });
    // Pid 1 of the sandbox's pid namespace is the task's own runner (`--as-pid-1`, with a
    // cgroup). Its launch environment is the task's, set by bwrap after it cleared its own (which
    // held the node's mark, `sandbox/launcher/orphans.ts`): no secret, no Redis address, no mark.
    assert.equal(report.pid1Environ.ok, true);
    const pid1Names = String(report.pid1Environ.value)
      .split('\0')
      .filter(Boolean)
      .map((entry) => entry.slice(0, entry.indexOf('=')));
    assert.deepEqual(pid1Names.sort(), report.envKeys);
    assert.ok(!String(report.pid1Environ.value).includes(nodeMark()), 'the node mark is not in pid 1');
    assert.equal(report.pid1Cmdline.ok, true);
    assert.equal((report.pid1Cmdline.value as string[]).at(-1), `${RUNTIME_MOUNT}/${RUNNER_FILE}`);
    assert.deepEqual(report.nodeEnviron, { ok: false, code: 'ENOENT' });
    assert.deepEqual(report.nodeCacheDir, { ok: false, code: 'ENOENT' });
    assert.deepEqual(report.nodeCwd, { ok: false, code: 'ENOENT' });
    assert.deepEqual(report.canary, { ok: false, code: 'ENOENT' });
    // The write lands in the sandbox's own /tmp; the host's file is untouched.
    assert.deepEqual(report.canaryWrite, { ok: true });
    assert.equal(await readFile(canaryFile, 'utf8'), CANARY);
    assert.deepEqual(report.envKeys, SANDBOX_ENV_NAMES);
    assert.deepEqual(report.secretsSeen, []);
    await expectHostUnchanged(a, before);
  });

  it("connects nowhere: not the test Redis, not a loopback server, not this host's address, not the outside", async () => {
    const a = await arena();
    const server = await countingServer();
    const redisPort = Number(new URL(redisUrl()).port);
    const host = externalAddress();
    const targets = [
      { host: '127.0.0.1', port: redisPort },
      { host: '::1', port: redisPort },
      { host: '127.0.0.1', port: server.port },
      ...(host !== undefined ? [{ host, port: server.port }] : []),
      { host: '192.0.2.1', port: 80 },
    ];
    const outcomes = await expectResult(a, await a.attack('connect', targets));
    assert.deepEqual(outcomes, [
      'ECONNREFUSED',
      'ECONNREFUSED',
      'ECONNREFUSED',
      ...(host !== undefined ? ['ENETUNREACH'] : []),
      'ENETUNREACH',
    ]);
    assert.equal(server.connections(), 0, 'the host server must see no connection');
  });

  it('writes nothing outside its own /tmp and /dev/shm: not /usr, /, /etc, /dev, the package, the runner, /proc', async () => {
    const a = await arena();
    const before = await hostState(a);
    const report = await expectResult(a, await a.attack('write-system'));
    assert.deepEqual(report, {
      usr: 'EROFS',
      usrBin: 'EROFS',
      root: 'EROFS',
      rootDir: 'EROFS',
      etc: 'EROFS',
      dev: 'EROFS',
      devDir: 'EROFS',
      package: 'EROFS',
      packageManifest: 'EROFS',
      packageLink: 'EROFS',
      runtime: 'EROFS',
      hostname: 'EROFS',
      sysctl: 'EROFS',
      irq: 'EROFS',
      tmp: 'ok',
      devShm: 'ok',
      devNull: 'ok',
    });
    assert.equal(existsSync('/usr/planted'), false);
    assert.equal(existsSync('/planted'), false);
    await expectHostUnchanged(a, before);
  });

  it('gains no privilege and no terminal: no capabilities, no_new_privs, no user namespace, no setuid root, no /dev/tty', async () => {
    const a = await arena();
    const report = (await expectResult(a, await a.attack('privileges'))) as Record<string, unknown>;
    assert.deepEqual(report.status, {
      Uid: '65534\t65534\t65534\t65534',
      Gid: '65534\t65534\t65534\t65534',
      CapInh: '0000000000000000',
      CapPrm: '0000000000000000',
      CapEff: '0000000000000000',
      CapBnd: '0000000000000000',
      CapAmb: '0000000000000000',
      NoNewPrivs: '1',
    });
    assert.equal(report.ttyNr, 0, 'no controlling terminal');
    assert.deepEqual(report.tty, { ok: false, code: 'ENXIO' });
    // uid 0 does not exist in the sandbox's user namespace.
    assert.deepEqual(report.setuidRoot, { ok: false, code: 'EINVAL' });
    assert.deepEqual(report.unshareUser, {
      status: 1,
      stdout: '',
      stderr: 'unshare: unshare failed: No space left on device',
    });
    assert.deepEqual(report.unshareMount, {
      status: 1,
      stdout: '',
      stderr: 'unshare: unshare failed: Operation not permitted',
    });
    assert.deepEqual((report.su as { stdout: string }).stdout, '', 'su must not run a command as root');
    assert.notEqual((report.su as { status: number }).status, 0);
    assert.match(String(report.usrMount), /(^|,)ro(,|$)/);
    assert.match(String(report.usrMount), /(^|,)nosuid(,|$)/);
  });

  it("cannot use the kernel's key calls: no key planted in, read from or requested of the node's keyring", async () => {
    // bwrap gives a sandbox no session keyring: without the seccomp filter, a task under a node
    // that has one (systemd, containers) shares it with every other task, and it outlives them.
    const a = await arena();
    assert.deepEqual(await expectResult(a, await a.attack('keys')), {
      add_key: 'EPERM',
      keyctl_read: 'EPERM',
      request_key: 'EPERM',
    });
  });

  it("lives in namespaces of its own, named tydra-sandbox, with a fresh /dev, the loader's /etc, no core dumps or message queues; its cgroup paths name only its node", async () => {
    const a = await arena();
    const report = (await expectResult(a, await a.attack('look-around'))) as {
      namespaces: Record<string, string>;
      hostname: string;
      dev: string[];
      etc: string[];
      cgroups: string[];
      core: string[];
      msgqueue: string[];
    };
    // The cgroup namespace is bwrap's, made before the node moved the sandbox into its
    // TaskInstance cgroup: paths read from the node's own cgroup, naming only the node's parent
    // cgroup and the task's.
    const parent = `tydra.${a.node.id}.${process.pid}`.replaceAll('.', '\\.');
    for (const line of report.cgroups) {
      const path = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
      assert.ok(path === '/' || new RegExp(`^/(\\.\\./)*${parent}/task-[0-9a-f-]+$`).test(path), line);
    }
    assert.deepEqual(Object.keys(report.namespaces), ['cgroup', 'ipc', 'mnt', 'net', 'pid', 'user', 'uts']);
    for (const [name, link] of Object.entries(report.namespaces)) {
      assert.notEqual(link, readlinkSync(`/proc/self/ns/${name}`), `the ${name} namespace is the host's`);
    }
    assert.equal(report.hostname, 'tydra-sandbox');
    // bwrap's --dev: the harmless devices, a private pts and shm; no disk, memory or kernel log.
    assert.deepEqual(report.dev, [
      ...['core', 'fd', 'full', 'null', 'ptmx', 'pts', 'random', 'shm'],
      ...['stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero'],
    ]);
    const allowedEtc = SYSTEM_ETC_FILES.map((file) => file.slice('/etc/'.length));
    assert.ok(report.etc.includes('ld.so.cache'), `etc: ${report.etc.join(' ')}`);
    assert.deepEqual(
      report.etc.filter((name) => !allowedEtc.includes(name)),
      [],
      'only the files bwrap-args.ts binds',
    );
    assert.deepEqual(report.core, ['0', '0'], 'RLIMIT_CORE soft and hard');
    assert.deepEqual(report.msgqueue, ['0', '0'], 'RLIMIT_MSGQUEUE soft and hard: no POSIX message queue');
  });

  it('an orphan of the task is re-parented to the runner, pid 1, and stays a zombie until the sandbox ends', async () => {
    const a = await arena();
    const report = (await expectResult(a, await a.attack('orphan'))) as {
      self: number;
      others: Array<{ pid: number; ppid: number; state: string; name: string }>;
    };
    assert.equal(report.self, 1, 'the runner is pid 1 (--as-pid-1, with a cgroup)');
    assert.deepEqual(
      report.others.map(({ ppid, state, name }) => ({ ppid, state, name })),
      [{ ppid: 1, state: 'Z', name: 'sleep' }],
    );
  });

  it('a command task gets the same environment as a JavaScript one, and nothing else', async () => {
    const a = await arena();
    assert.deepEqual(await expectResult(a, await a.attack('env-names')), SANDBOX_ENV_NAMES);
  });

  it('symlinks planted in /tmp to host files change nothing: the result is only what the task printed', async () => {
    const a = await arena();
    const before = await hostState(a);
    const run = await a.attack('plant-symlink');
    assert.deepEqual(await expectResult(a, run), { planted: ['/tmp/result.json', '/tmp/output.json', '/tmp/root'] });
    assert.ok((await run.status()).logs.includes('[stderr] package link refused'));
    assert.equal(existsSync(join(a.node.cache.dir, 'attacks', a.sha1, 'result.json')), false);
    assert.equal(await sha256File('/etc/shadow'), before.shadow);
    await expectHostUnchanged(a, before);
  });

  it('a command that swaps its stdout for a FIFO it holds does not hang the node: it times out', async () => {
    const a = await arena();
    await expectFailure(a, await a.attack('fifo-stdout', null, { timeoutMs: 1000 }), 'timed out after 1 s');
  });

  it('a task that closes stdin, stdout, stderr and its result channel does not hang the node: it times out', async () => {
    const a = await arena();
    await expectFailure(a, await a.attack('close-fds', null, { timeoutMs: 1000 }), 'timed out after 1 s');
  });
});
