/**
 * Limits of one TaskInstance sandbox, against the real kernel and real bwrap: detection, the
 * race-free attach, OOM, the pids limit, kill/remove, CPU accounting, and prlimit's CPU, file
 * size and open-file limits. Every test uses its own parent cgroup (`tydra-test-<pid>`), never
 * the node's `tydra`, and removes it afterwards.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { execa, type ResultPromise } from 'execa';

import { CgroupError } from '../../../../lib/core/errors.js';
import { environmentArgs, isolationArgs, systemMountArgs } from '../../../../sandbox/launcher/bwrap-args.js';
import { findBwrap } from '../../../../sandbox/launcher/bwrap.js';
import type { AttachedSandbox } from '../../../../sandbox/launcher/cgroup/attach.js';
import {
  attachSandbox,
  SANDBOX_SYNC_FDS,
  sandboxSyncArgs,
  sandboxSyncStdio,
} from '../../../../sandbox/launcher/cgroup/attach.js';
import { removeCgroupDir, removeCgroupTree } from '../../../../sandbox/launcher/cgroup/fs.js';
import type { AvailableCgroupSupport, CgroupSupport } from '../../../../sandbox/launcher/cgroup/support.js';
import { cleanStaleCgroups, detectCgroups } from '../../../../sandbox/launcher/cgroup/support.js';
import { signalFromExit } from '../../../../sandbox/launcher/exit-signal.js';
import { descendantPids } from '../../../../sandbox/launcher/cgroup/process-tree.js';
import type { ProcessLimits } from '../../../../sandbox/launcher/rlimits.js';
import { findPrlimit, prlimitArgs } from '../../../../sandbox/launcher/rlimits.js';
import type { TaskCgroup } from '../../../../sandbox/launcher/cgroup/task-cgroup.js';
import { createTaskCgroup } from '../../../../sandbox/launcher/cgroup/task-cgroup.js';
import { defer, sleep, tempDir, waitFor } from '../../../helpers.js';

const PARENT = `tydra-test-${process.pid}`;
const MiB = 1024 * 1024;
const PYTHON = '/usr/bin/python3';

interface Sandbox {
  attached: AttachedSandbox | undefined;
  /** Resolves with bwrap's exit. */
  done: Promise<{ exitCode: number | undefined; signal: NodeJS.Signals | undefined; stdout: string; stderr: string }>;
  /** Resolves with the first stdout line that contains `text`. */
  line(text: string): Promise<string>;
}

type Spawned = Omit<Sandbox, 'attached'> & { subprocess: ResultPromise };

/** Spawns `command` in a bwrap sandbox like the node's (optionally under prlimit), still blocked on fd 5. */
function spawnSandbox(command: string[], limits?: ProcessLimits): Spawned {
  const bwrap = findBwrap();
  assert.ok(bwrap, 'bwrap must be on PATH');
  const bwrapArgv = [
    bwrap,
    ...isolationArgs(),
    ...environmentArgs({}),
    ...systemMountArgs(),
    '--size',
    String(16 * MiB),
    '--tmpfs',
    '/tmp',
    ...sandboxSyncArgs(),
    '--',
    ...command,
  ];
  const [file, ...args] = limits === undefined ? bwrapArgv : [findPrlimit(), ...prlimitArgs(limits), ...bwrapArgv];
  const subprocess = execa(file ?? '', args, {
    stdio: sandboxSyncStdio(['ignore', 'pipe', 'pipe']),
    buffer: false,
    reject: false,
    extendEnv: false,
    env: {},
    forceKillAfterDelay: false,
  });
  defer(async () => {
    subprocess.kill('SIGKILL');
    await subprocess;
  });
  let stdout = '';
  let stderr = '';
  let exited = false;
  const waiters: Array<() => void> = [];
  const wakeAll = (): void => waiters.splice(0).forEach((wake) => wake());
  const { stdout: out, stderr: err } = subprocess;
  assert.ok(out !== null && err !== null);
  out.setEncoding('utf8');
  out.on('data', (chunk: string) => {
    stdout += chunk;
    wakeAll();
  });
  err.setEncoding('utf8');
  err.on('data', (chunk: string) => (stderr += chunk));
  const done = subprocess.then((result) => {
    exited = true;
    wakeAll();
    return { exitCode: result.exitCode, signal: result.signal, stdout, stderr };
  });
  const line = async (text: string): Promise<string> => {
    for (;;) {
      const found = stdout.split('\n').find((candidate) => candidate.includes(text));
      if (found !== undefined) {
        return found;
      }
      if (exited) {
        throw new Error(
          `the sandbox exited before printing ${JSON.stringify(text)}; stdout ${JSON.stringify(stdout)}, stderr ${JSON.stringify(stderr)}`,
        );
      }
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  return { subprocess, done, line };
}

/** Spawns the sandbox and attaches it to `cgroup` (none: just unblocks it). */
async function startSandbox(
  cgroup: TaskCgroup | undefined,
  command: string[],
  limits?: ProcessLimits,
): Promise<Sandbox> {
  const spawned = spawnSandbox(command, limits);
  return { ...spawned, attached: await attachSandbox(spawned.subprocess, SANDBOX_SYNC_FDS, cgroup) };
}

function python(code: string): string[] {
  return [PYTHON, '-c', code];
}

/** What the host's cgroup mounts say detection must find. */
function expectedMode(): 'v1' | 'v2' {
  for (const file of ['/sys/fs/cgroup/cgroup.controllers', '/sys/fs/cgroup/unified/cgroup.controllers']) {
    const offered = existsSync(file) ? readFileSync(file, 'utf8').trim().split(/\s+/) : [];
    if (offered.includes('memory') && offered.includes('pids')) {
      return 'v2';
    }
  }
  return 'v1';
}

/** A process named by pid AND start time, so a pid the kernel gave to another process meanwhile is not it. */
interface ProcessIdentity {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks after boot; never the same for two processes with one pid. */
  startTime: string;
}

/** The fields of /proc/<pid>/stat from field 3 (state) on; comm may hold spaces, so cut at the last ")". */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * The identities of `pids`, read while they are in `cgroup` (checked after the start time was
 * read, so each identity is certainly of the cgroup's process, not of a later owner of its pid).
 */
function identify(pids: readonly number[], cgroup: TaskCgroup): ProcessIdentity[] {
  return pids.flatMap((pid) => {
    const startTime = statFields(pid)?.[19];
    let inCgroup = false;
    try {
      inCgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`/${cgroup.name}\n`);
    } catch {
      inCgroup = false;
    }
    return startTime !== undefined && inCgroup ? [{ pid, startTime }] : [];
  });
}

/**
 * Whether the identified process still runs. A zombie counts as dead: it holds nothing but its
 * pid, and a sandbox process orphaned by the end of its pid namespace is reparented to the
 * host's init, which is the one to reap it (on some CI hosts pid 1 never does).
 */
function isAlive(identity: ProcessIdentity): boolean {
  const fields = statFields(identity.pid);
  return fields !== undefined && fields[19] === identity.startTime && fields[0] !== 'Z';
}

function supportPaths(support: CgroupSupport): string[] {
  if (support.mode === 'v2') {
    return [support.parent];
  }
  return support.mode === 'v1'
    ? [support.memory, support.pids, ...(support.cpuacct === undefined ? [] : [support.cpuacct])]
    : [];
}

describe('per-TaskInstance cgroups and rlimits (@integration)', function () {
  this.timeout(15_000);
  let support: AvailableCgroupSupport;
  let counter = 0;

  before(async () => {
    const detected = await detectCgroups({ parentName: PARENT });
    assert.notEqual(
      detected.mode,
      'none',
      `the tests need cgroups (root, writable /sys/fs/cgroup): ${detected.mode === 'none' ? detected.reason : ''}`,
    );
    support = detected as AvailableCgroupSupport;
  });

  after(async () => {
    await cleanStaleCgroups(support);
    for (const dir of supportPaths(support)) {
      await removeCgroupDir(dir);
    }
  });

  async function newCgroup(memoryBytes = 256 * MiB, pids = 64): Promise<TaskCgroup> {
    counter += 1;
    const cgroup = await createTaskCgroup(support, `task-${counter}`, { memoryBytes, pids });
    defer(() => cgroup.remove());
    return cgroup;
  }

  describe('detectCgroups', () => {
    it('finds the hierarchy the host offers (v2 only with memory and pids), and a second call agrees', async () => {
      const first = await detectCgroups({ parentName: PARENT });
      assert.equal(first.mode, expectedMode());
      for (const dir of supportPaths(first)) {
        assert.ok(existsSync(dir), `${dir} should exist`);
      }
      if (first.mode === 'v1') {
        assert.equal(first.memory, `/sys/fs/cgroup/memory/${PARENT}`);
        assert.equal(first.pids, `/sys/fs/cgroup/pids/${PARENT}`);
        assert.equal(
          first.cpuacct,
          existsSync('/sys/fs/cgroup/cpuacct/cpuacct.usage') ? `/sys/fs/cgroup/cpuacct/${PARENT}` : undefined,
        );
      }
      assert.deepEqual(await detectCgroups({ parentName: PARENT }), first);
    });

    it('says why there are no cgroups when the mount root has none', async () => {
      const empty = await tempDir('tydra-no-cgroups-');
      assert.deepEqual(await detectCgroups({ mountRoot: empty, parentName: PARENT }), {
        mode: 'none',
        reason: `no memory controller: no cgroup v1 memory hierarchy at ${join(empty, 'memory')}`,
      });
    });

    it('refuses a parent name that is not one path segment', async () => {
      await assert.rejects(detectCgroups({ parentName: '../escape' }), {
        name: 'InvalidOptionError',
        message:
          'Expected the `parentName` option to be a cgroup name (letters, digits, `_`, `.`, `-`; at most 128; not starting with `.`), got `"../escape"` (string)',
      });
    });

    it('cleanStaleCgroups kills what a crashed node left behind and removes its cgroups', async () => {
      const cgroup = await createTaskCgroup(support, 'stale', { memoryBytes: 64 * MiB, pids: 16 });
      const sandbox = await startSandbox(cgroup, ['/bin/sleep', '30']);
      const pids = await waitFor("bwrap's pid 1 and sleep", async () => {
        const found = await cgroup.pids();
        return found.length === 2 ? identify(found, cgroup) : undefined;
      });
      assert.equal(pids.length, 2);
      assert.deepEqual(await cleanStaleCgroups(support), ['stale']);
      // Out of the cgroup is not yet gone: the kernel leaves cgroup.procs early in exit.
      await waitFor('every process of the sandbox to be gone', () =>
        pids.filter(isAlive).length === 0 ? true : undefined,
      );
      assert.ok(cgroup.paths.every((dir) => !existsSync(dir)));
      assert.equal((await sandbox.done).exitCode, 137);
    });
  });

  describe('createTaskCgroup', () => {
    it('sets the memory limit with no swap on top, socket buffers capped too, and the pids limit', async () => {
      const cgroup = await newCgroup(64 * MiB, 16);
      if (support.mode === 'v1') {
        const [memory, pids] = cgroup.paths as [string, string];
        assert.equal(readFileSync(join(memory, 'memory.limit_in_bytes'), 'utf8').trim(), String(64 * MiB));
        for (const file of ['memory.memsw.limit_in_bytes', 'memory.kmem.tcp.limit_in_bytes']) {
          if (existsSync(join(memory, file))) {
            assert.equal(readFileSync(join(memory, file), 'utf8').trim(), String(64 * MiB), file);
          }
        }
        assert.equal(readFileSync(join(pids, 'pids.max'), 'utf8').trim(), '16');
      } else {
        const [dir] = cgroup.paths as [string];
        assert.equal(readFileSync(join(dir, 'memory.max'), 'utf8').trim(), String(64 * MiB));
        assert.equal(readFileSync(join(dir, 'pids.max'), 'utf8').trim(), '16');
      }
    });

    it('refuses a name used twice', async () => {
      const cgroup = await newCgroup();
      await assert.rejects(createTaskCgroup(support, cgroup.name, { memoryBytes: MiB, pids: 4 }), (error: unknown) => {
        assert.ok(error instanceof CgroupError);
        assert.equal(error.code, 'EEXIST');
        assert.equal(
          error.message,
          `Expected to create a new cgroup at ${cgroup.paths[0]}, got an existing one (a name used twice, or a stale cgroup left for cleanStaleCgroups)`,
        );
        return true;
      });
    });

    it('remove() is idempotent and never fails for a cgroup already gone', async () => {
      const cgroup = await newCgroup();
      await Promise.all([cgroup.remove(), cgroup.remove()]);
      await cgroup.remove();
      assert.ok(cgroup.paths.every((dir) => !existsSync(dir)));
    });
  });

  describe('removeCgroupTree', () => {
    /**
     * Makes `<dir>/late` once `<dir>/early` is gone, that is once the removal has listed the
     * children of `dir` and is killing `dir`'s own process: false if `dir` went first.
     */
    async function makeLateChild(dir: string): Promise<boolean> {
      while (existsSync(join(dir, 'early'))) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      try {
        mkdirSync(join(dir, 'late'));
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          return false;
        }
        throw error;
      }
    }

    it('removes a child cgroup made after it listed the children (rmdir says EBUSY for it)', async () => {
      const [root = ''] = supportPaths(support);
      let lateMade = false;
      // The late child loses the race only if `dir` is gone first; a few tries make it near sure.
      for (let attempt = 1; attempt <= 5 && !lateMade; attempt += 1) {
        const dir = join(root, `tree-${attempt}`);
        mkdirSync(join(dir, 'early'), { recursive: true });
        const sleeper = execa('sleep', ['60'], { reject: false });
        writeFileSync(join(dir, 'cgroup.procs'), String(sleeper.pid));
        const late = makeLateChild(dir);
        await removeCgroupTree(dir);
        lateMade = await late;
        assert.equal(existsSync(dir), false, `${dir} should be gone`);
        assert.equal((await sleeper).signal, 'SIGKILL');
      }
      assert.ok(lateMade, 'the late child was never made before its parent went: the case was not tested');
    });
  });

  describe('attachSandbox', () => {
    it('has every process of the sandbox in the cgroup from its first instruction', async () => {
      const cgroup = await newCgroup();
      // The task's first action is to read its own cgroup; then it starts two children.
      const sandbox = await startSandbox(cgroup, [
        '/bin/sh',
        '-c',
        'cat /proc/self/cgroup; sleep 30 & sleep 30 & echo ready; wait',
      ]);
      await sandbox.line('ready');
      const attached = sandbox.attached;
      assert.ok(attached !== undefined);
      // Inside, paths are relative to the sandbox's cgroup namespace root (the node's cgroup at
      // clone time, e.g. memory `/../../tydra-test-1/task-3`), so only the end is comparable.
      for (const controller of [':pids:', ':memory:']) {
        const inside = (await sandbox.line(controller)).trim();
        assert.ok(inside.endsWith(`/${PARENT}/${cgroup.name}`), `inside the sandbox: ${inside}`);
      }
      // From the host: bwrap's child and all its descendants are exactly the cgroup's processes.
      const tree = [attached.childPid, ...descendantPids(attached.childPid)].sort((a, b) => a - b);
      assert.equal(tree.length, 4, `expected pid 1, sh and two sleeps, got ${tree.join(', ')}`);
      assert.deepEqual(await cgroup.pids(), tree);
      for (const pid of tree) {
        const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
        assert.match(lines, new RegExp(`:pids:/${PARENT}/${cgroup.name}\\n`));
        assert.match(lines, new RegExp(`:memory:/${PARENT}/${cgroup.name}\\n`));
      }
    });

    it('leaves neither the info fd nor the block fd open inside the sandbox', async () => {
      const cgroup = await newCgroup();
      const sandbox = await startSandbox(
        cgroup,
        python(`
import os
for fd in (3, 4, 5):
    try:
        os.fstat(fd)
        print(fd, 'open')
    except OSError as e:
        print(fd, 'closed')
`),
      );
      const result = await sandbox.done;
      assert.equal(result.exitCode, 0, result.stderr);
      assert.deepEqual(result.stdout.trim().split('\n'), ['3 closed', '4 closed', '5 closed']);
    });

    it('kills the waiting sandbox, so the task never runs, when the cgroup refuses it', async () => {
      const cgroup = await newCgroup();
      await cgroup.remove();
      const sandbox = spawnSandbox(['/bin/sh', '-c', 'echo ran']);
      await assert.rejects(
        attachSandbox(sandbox.subprocess, SANDBOX_SYNC_FDS, cgroup),
        (error: unknown) => error instanceof CgroupError && error.code === 'ENOENT',
      );
      const result = await sandbox.done;
      assert.equal(result.stdout, '');
      assert.equal(result.signal, 'SIGKILL');
    });

    it('starts the task at once without a cgroup (mode none)', async () => {
      const sandbox = await startSandbox(undefined, ['/bin/sh', '-c', 'echo ran']);
      assert.deepEqual(sandbox.attached?.movedPids, []);
      const result = await sandbox.done;
      assert.equal(result.exitCode, 0);
      assert.equal(result.stdout, 'ran\n');
    });
  });

  describe('limits', () => {
    it('OOM-kills a task that allocates 200 MiB under a 64 MiB limit: exit code 137 (SIGKILL)', async () => {
      const cgroup = await newCgroup(64 * MiB, 64);
      const sandbox = await startSandbox(
        cgroup,
        python(`
chunks = []
for i in range(200):
    chunks.append(b'x' * (1024 * 1024))
print('survived', flush=True)
`),
      );
      const result = await sandbox.done;
      assert.equal(result.stdout, '');
      assert.equal(result.exitCode, 137);
      assert.equal(result.signal, undefined);
      assert.equal(signalFromExit(result.exitCode, result.signal), 'SIGKILL');
      const stats = await cgroup.stats();
      assert.ok(stats.oomKills >= 1, `oomKills ${stats.oomKills}`);
      assert.ok(
        stats.memoryPeakBytes === undefined || stats.memoryPeakBytes <= 64 * MiB,
        `peak ${stats.memoryPeakBytes}`,
      );
    });

    it('refuses forks beyond pids.max 16, and kill()+remove() leave no process and no cgroup', async () => {
      const cgroup = await newCgroup(256 * MiB, 16);
      const sandbox = await startSandbox(
        cgroup,
        python(`
import os, time
children, refused = 0, 0
for i in range(40):
    try:
        pid = os.fork()
    except OSError:
        refused += 1
        continue
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children += 1
print('forked', children, 'refused', refused, flush=True)
time.sleep(30)
`),
      );
      const seen = new Map<number, ProcessIdentity>();
      let most = 0;
      const watching = (async () => {
        for (let i = 0; i < 200; i += 1) {
          const pids = await cgroup.pids();
          identify(pids, cgroup).forEach((identity) => seen.set(identity.pid, identity));
          most = Math.max(most, pids.length);
          await sleep(5);
        }
      })();
      const line = await sandbox.line('forked');
      await watching;
      // 16 = bwrap's pid 1 + python + 14 children.
      assert.equal(line, 'forked 14 refused 26');
      assert.ok(most <= 16, `saw ${most} processes in the cgroup`);
      assert.equal(seen.size, 16);
      const stats = await cgroup.stats();
      assert.ok(stats.pidsLimitHits >= 1, `pidsLimitHits ${stats.pidsLimitHits}`);
      await cgroup.kill();
      await cgroup.remove();
      // Out of the cgroup is not yet gone: the kernel leaves cgroup.procs early in exit.
      await waitFor('every process of the sandbox to be gone', () =>
        [...seen.values()].filter(isAlive).length === 0 ? true : undefined,
      );
      assert.ok(cgroup.paths.every((dir) => !existsSync(dir)));
      assert.equal((await sandbox.done).exitCode, 137);
    });

    it('a setsid double-fork daemon dies with kill()', async () => {
      const cgroup = await newCgroup();
      const sandbox = await startSandbox(cgroup, python(DAEMON + 'time.sleep(30)\n'));
      await sandbox.line('daemon');
      const pids = identify(await cgroup.pids(), cgroup);
      assert.equal(pids.length, 3, 'pid 1, the task and the daemon');
      await cgroup.kill();
      // Out of the cgroup is not yet gone: the kernel leaves cgroup.procs early in exit.
      await waitFor('every process of the sandbox to be gone', () =>
        pids.filter(isAlive).length === 0 ? true : undefined,
      );
      assert.deepEqual(await cgroup.pids(), []);
      await sandbox.done;
    });

    it('a setsid double-fork daemon dies when the task ends and bwrap exits', async () => {
      const cgroup = await newCgroup();
      const sandbox = await startSandbox(cgroup, python(DAEMON + 'time.sleep(0.3)\n'));
      await sandbox.line('daemon');
      // Identified by start time too: once the cgroup is empty, a pid may already be another process's.
      const pids = identify(await cgroup.pids(), cgroup);
      assert.equal(pids.length, 3, 'pid 1, the task and the daemon');
      assert.equal((await sandbox.done).exitCode, 0);
      await waitFor('the cgroup to empty', async () => ((await cgroup.pids()).length === 0 ? true : undefined), 2000);
      // Out of the cgroup is not yet gone: the kernel leaves cgroup.procs early in exit.
      await waitFor('every process of the sandbox to be gone', () =>
        pids.filter(isAlive).length === 0 ? true : undefined,
      );
    });

    it("accounts CPU time: at least what the task's own process reports for a fixed amount of work", async () => {
      const cgroup = await newCgroup();
      // Fixed work, not fixed wall time: on a busy machine a timed loop gets less CPU, this does not.
      const sandbox = await startSandbox(
        cgroup,
        python(`
import os
total = 0
for i in range(3_000_000):
    total += i * i
t = os.times()
print(int((t.user + t.system) * 1000), flush=True)
`),
      );
      const result = await sandbox.done;
      assert.equal(result.exitCode, 0, result.stderr);
      const selfMs = Number(result.stdout.trim());
      const { cpuUsageMs } = await cgroup.stats();
      assert.ok(selfMs > 0, `the task reports ${selfMs} ms`);
      // The cgroup counts that process and every other one in it (bwrap's pid 1) up to its exit.
      assert.ok(cpuUsageMs !== undefined && cpuUsageMs >= selfMs, `cpuUsageMs ${cpuUsageMs}, task ${selfMs} ms`);
    });

    it('prlimit --cpu=1:2 stops a busy loop with SIGXCPU: exit code 152', async function () {
      const sandbox = await startSandbox(await newCgroup(), python('while True: pass'), { cpuSeconds: 1 });
      const result = await sandbox.done;
      assert.equal(result.exitCode, 152);
      assert.equal(signalFromExit(result.exitCode, result.signal), 'SIGXCPU');
    });

    it('prlimit --fsize=1048576: Python (SIGXFSZ ignored) gets EFBIG; a default process dies of SIGXFSZ (153)', async () => {
      const limits = { fileSizeBytes: MiB };
      const py = await startSandbox(
        await newCgroup(),
        python(`
import errno
try:
    with open('/tmp/big', 'wb') as f:
        f.write(b'x' * (2 * 1024 * 1024))
    print('wrote')
except OSError as e:
    print(errno.errorcode[e.errno])
`),
        limits,
      );
      assert.equal((await py.done).stdout, 'EFBIG\n');
      const head = await startSandbox(
        await newCgroup(),
        ['/bin/sh', '-c', 'exec head -c 2097152 /dev/zero > /tmp/big'],
        limits,
      );
      const result = await head.done;
      assert.equal(result.exitCode, 153);
      assert.equal(signalFromExit(result.exitCode, result.signal), 'SIGXFSZ');
    });

    it('prlimit --nofile=32: opening 100 files fails with EMFILE', async () => {
      const sandbox = await startSandbox(
        await newCgroup(),
        python(`
import errno
files = []
try:
    for i in range(100):
        files.append(open('/dev/null'))
    print('opened all')
except OSError as e:
    print(errno.errorcode[e.errno], len(files))
`),
        { openFiles: 32 },
      );
      const [code, opened] = (await sandbox.done).stdout.trim().split(' ');
      assert.equal(code, 'EMFILE');
      assert.ok(Number(opened) < 32);
    });
  });
});

describe('sandbox limit argv', () => {
  it('prlimitArgs: CPU soft = limit and hard = limit + 1 s, the rest soft = hard, core and message queues always 0, then --', () => {
    assert.deepEqual(
      prlimitArgs({ cpuSeconds: 30, openFiles: 256, fileSizeBytes: MiB, addressSpaceBytes: 4096 * MiB }, 0),
      [
        '--cpu=30:31',
        '--nofile=256:256',
        `--fsize=${MiB}:${MiB}`,
        `--as=${4096 * MiB}:${4096 * MiB}`,
        '--core=0:0',
        '--msgqueue=0:0',
        '--',
      ],
    );
    assert.deepEqual(prlimitArgs({}, 0), ['--core=0:0', '--msgqueue=0:0', '--']);
  });

  it('prlimitArgs: --nproc only for a non-root node, and limits must be integers', () => {
    assert.deepEqual(prlimitArgs({ nproc: 200 }, 1000), ['--nproc=200:200', '--core=0:0', '--msgqueue=0:0', '--']);
    assert.throws(() => prlimitArgs({ nproc: 200 }, 0), {
      name: 'InvalidOptionError',
      message:
        'Expected no `nproc` limit when the node runs as root (RLIMIT_NPROC is per real uid and not enforced for root; the pids cgroup limits a sandbox), got 200',
    });
    assert.throws(() => prlimitArgs({ cpuSeconds: 1.5 }), {
      name: 'InvalidOptionError',
      message: 'Expected the `cpuSeconds` limit to be an integer of at least 1, got `1.5` (number)',
    });
  });

  it('sandboxSyncArgs and sandboxSyncStdio: fds 4 and 5 after the protocol fd 3', () => {
    assert.deepEqual(sandboxSyncArgs(), ['--info-fd', '4', '--block-fd', '5']);
    assert.deepEqual(sandboxSyncStdio(['pipe', 'pipe', 'pipe', 'pipe']), [
      'pipe',
      'pipe',
      'pipe',
      'pipe',
      'pipe',
      'pipe',
    ]);
    assert.deepEqual(sandboxSyncStdio(['pipe', 'pipe', 'pipe']), ['pipe', 'pipe', 'pipe', 'ignore', 'pipe', 'pipe']);
    assert.throws(() => sandboxSyncStdio(['pipe', 'pipe', 'pipe', 'pipe', 'pipe']), { name: 'IllegalStateError' });
  });

  it('signalFromExit reads 128 + N from bwrap and prefers a reported signal', () => {
    assert.equal(signalFromExit(137, undefined), 'SIGKILL');
    assert.equal(signalFromExit(152, undefined), 'SIGXCPU');
    assert.equal(signalFromExit(153, undefined), 'SIGXFSZ');
    assert.equal(signalFromExit(1, undefined), undefined);
    assert.equal(signalFromExit(undefined, 'SIGTERM'), 'SIGTERM');
  });
});

/** Python: fork, setsid, fork again; the grandchild prints "daemon" and sleeps; the first child exits. */
const DAEMON = `
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        print('daemon', flush=True)
        time.sleep(30)
    os._exit(0)
`;
