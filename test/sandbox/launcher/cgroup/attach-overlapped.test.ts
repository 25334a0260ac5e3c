/**
 * The overlapped start of a JavaScript sandbox (`sandbox/launcher/cgroup/attach-overlapped.ts`),
 * against real bwrap and the real kernel: the runner boots while it is moved into its cgroup,
 * yet everything the task does (its first instruction, a fork at import, a fork bomb at import)
 * happens inside the cgroup, and a move the kernel refuses fails the TaskInstance before its
 * task ran.
 */
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { CgroupError, InfrastructureError, LimitExceededError } from '../../../../lib/core/errors.js';
import { type CompiledTaskLimits, DEFAULT_TASK_LIMITS } from '../../../../lib/core/limits.js';
import { type CgroupSupport, detectCgroups, removeCgroupParent } from '../../../../sandbox/launcher/cgroup/support.js';
import { prepareLaunch } from '../../../../sandbox/launcher/launch.js';
import { outcome } from '../../../../sandbox/launcher/outcome.js';
import { runTask, type RunTaskOptions } from '../../../../sandbox/launcher/run-task.js';
import { startSandbox } from '../../../../sandbox/launcher/sandbox-process.js';
import { startRunner } from '../../../../sandbox/launcher/stream-capture.js';
import { WarmSandbox } from '../../../../sandbox/launcher/warm-sandbox.js';
import { sandboxBase } from '../sandbox-base.js';
import { tempDir } from '../../../helpers.js';

const PARENT = `tydra-test-overlap-${process.pid}`;

/** The memory and pids lines of /proc/self/cgroup, read by the module's first instruction. */
const CGROUP_AT_IMPORT = `import { readFileSync } from 'node:fs';
const lines = readFileSync('/proc/self/cgroup', 'utf8').split('\\n').filter((line) => /:(memory|pids):/.test(line));
export default () => lines;
`;

/** Forks at import: the child reports its own cgroup lines. */
const FORK_AT_IMPORT = `import { execFileSync } from 'node:child_process';
const script = "process.stdout.write(require('fs').readFileSync('/proc/self/cgroup', 'utf8'))";
const text = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
const lines = text.split('\\n').filter((line) => /:(memory|pids):/.test(line));
export default () => lines;
`;

/** Forks until the kernel refuses, at import, then waits for ever. */
const FORK_BOMB_AT_IMPORT = `import { spawn } from 'node:child_process';
for (let i = 0; i < 200; i += 1) {
  try {
    spawn('/bin/sleep', ['60'], { stdio: 'ignore' }).on('error', () => undefined);
  } catch {}
}
export default () => new Promise(() => setInterval(() => undefined, 1000));
`;

/** The task's own pid and every process its sandbox's /proc shows, read at import. */
const PROCESSES_AT_IMPORT = `import { readdirSync } from 'node:fs';
const processes = readdirSync('/proc').filter((name) => /^[0-9]+$/.test(name)).map(Number);
export default () => ({ pid: process.pid, processes });
`;

/** Prints a line at import: its absence shows the task never ran. */
const MARKER = `console.log('task code ran');
export default () => 'ran';
`;

/** Every line names the TaskInstance's cgroup under the test's parent (inside: a relative path). */
function assertInTaskCgroup(lines: unknown): void {
  assert.ok(Array.isArray(lines) && lines.length === 2, `memory and pids lines, got ${JSON.stringify(lines)}`);
  for (const line of lines as string[]) {
    assert.match(line, new RegExp(`/${PARENT}/task-[0-9a-f-]+$`), line);
  }
}

describe('overlapped cgroup attach (@integration)', function () {
  this.timeout(60_000);
  let cgroups: CgroupSupport;
  let base: Omit<RunTaskOptions, 'task' | 'instanceId'>;

  before(async () => {
    cgroups = await detectCgroups({ parentName: PARENT });
    assert.notEqual(cgroups.mode, 'none', 'these tests need cgroups');
  });

  beforeEach(async () => {
    const root = await tempDir();
    await chmod(root, 0o755);
    const modules = {
      'cgroup-at-import.mjs': CGROUP_AT_IMPORT,
      'fork-at-import.mjs': FORK_AT_IMPORT,
      'fork-bomb-at-import.mjs': FORK_BOMB_AT_IMPORT,
      'marker.mjs': MARKER,
      'processes-at-import.mjs': PROCESSES_AT_IMPORT,
    };
    for (const [name, text] of Object.entries(modules)) {
      await writeFile(join(root, name), text, { mode: 0o644 });
    }
    base = { ...(await sandboxBase(root, cgroups)), limits: DEFAULT_TASK_LIMITS };
  });

  after(() => removeCgroupParent(cgroups));

  function run(module: string, limits: Partial<CompiledTaskLimits> = {}): Promise<unknown> {
    return runTask({
      ...base,
      task: { module },
      instanceId: `overlap-${Math.random().toString(16).slice(2)}`,
      limits: { ...DEFAULT_TASK_LIMITS, ...limits },
    });
  }

  it('runs a task in its cgroup from its first instruction', async () => {
    assertInTaskCgroup(await run('cgroup-at-import.mjs'));
  });

  it('runs a pooled task, and a process it forks at import, in its cgroup too', async () => {
    for (const module of ['cgroup-at-import.mjs', 'fork-at-import.mjs']) {
      const warm = await WarmSandbox.start({ ...base, module });
      assert.equal(await warm.ready, true);
      assertInTaskCgroup(await warm.claim({ instanceId: 'overlap-warm', attempt: 1, input: null }));
    }
  });

  it('has a process the task forks at import in the cgroup', async () => {
    assertInTaskCgroup(await run('fork-at-import.mjs'));
  });

  it('holds a fork bomb at import to the pids limit', async () => {
    await assert.rejects(run('fork-bomb-at-import.mjs', { pids: 24 }), (error: unknown) => {
      assert.ok(error instanceof LimitExceededError, String(error));
      assert.equal(error.limit, 'pids');
      return true;
    });
  });

  it("runs the runner as the sandbox's pid 1, alone: no bwrap init around it, cold or pooled", async () => {
    assert.deepEqual(await run('processes-at-import.mjs'), { pid: 1, processes: [1] });
    const warm = await WarmSandbox.start({ ...base, module: 'processes-at-import.mjs' });
    assert.equal(await warm.ready, true);
    const pooled = await warm.claim({ instanceId: 'overlap-pid-1', attempt: 1, input: null });
    assert.deepEqual(pooled, { pid: 1, processes: [1] });
  });

  it("keeps bwrap's init around a runner without a cgroup, whose CPU rlimit must be able to signal it", async () => {
    const bare = { ...base };
    delete bare.cgroups;
    const result = await runTask({
      ...bare,
      task: { module: 'processes-at-import.mjs' },
      instanceId: 'overlap-no-cgroup',
    });
    assert.deepEqual(result, { pid: 2, processes: [1, 2] });
  });

  it('fails the TaskInstance with the CgroupError, its task never run, when the move is refused', async () => {
    const options = { ...base, instanceId: 'overlap-refused' };
    const launch = await prepareLaunch(options, { module: 'marker.mjs' });
    assert.ok(launch.cgroup !== undefined);
    await launch.cgroup.remove(); // the move now gets ENOENT
    const lines: string[] = [];
    const sandbox = await startSandbox(options, launch, {
      timeoutMs: options.limits.timeoutMs,
      onLog: (line) => lines.push(line),
      feed: (stdin) =>
        startRunner(stdin, { instanceId: 'overlap-refused', attempt: 1, module: 'marker.mjs', input: null }, undefined),
    });
    const ending = await sandbox.ending;
    const result = outcome(ending);
    assert.ok('error' in result);
    assert.ok(result.error instanceof CgroupError, String(result.error));
    assert.ok(result.error instanceof InfrastructureError);
    assert.equal(result.error.code, 'ENOENT');
    assert.deepEqual(lines, []);
    assert.equal(ending.final, undefined, 'the runner sent no result');
  });
});
