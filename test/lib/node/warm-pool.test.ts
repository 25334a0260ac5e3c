/**
 * The warm pool's choice for a TaskInstance, on real bwrap: its combination's readiest sandbox,
 * even one still being spawned, before a cold start beside it; a cold start when that one ends
 * before its runner is ready, or is not ready in time.
 * The pool's `runCold` is the node's own seam for a cold sandbox: here it says what ran cold.
 */
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { execa } from 'execa';

import { DEFAULT_TASK_LIMITS } from '../../../lib/core/limits.js';
import { silentLogger } from '../../../lib/core/logger.js';
import { WarmPool, type WarmPoolStats, type WarmSpec } from '../../../lib/node/warm-pool.js';
import { detectCgroups, removeCgroupParent } from '../../../sandbox/launcher/cgroup/support.js';
import { sandboxBase } from '../../sandbox/launcher/sandbox-base.js';
import { defer, tempDir } from '../../helpers.js';

const WHO = 'export default () => process.env.TYDRA_INSTANCE_ID;\n';

const counts = ({ hits, misses }: WarmPoolStats) => ({ hits, misses });

describe('warm pool: what a TaskInstance takes (@integration)', function () {
  this.timeout(60_000);

  let spec: WarmSpec;
  let base: Awaited<ReturnType<typeof sandboxBase>>;

  beforeEach(async () => {
    const root = await tempDir();
    await chmod(root, 0o755);
    await writeFile(join(root, 'who.mjs'), WHO, { mode: 0o644 });
    const cgroups = await detectCgroups({ parentName: `tydra-test-warm-pool-${process.pid}` });
    defer(() => removeCgroupParent(cgroups));
    base = await sandboxBase(root, cgroups);
    spec = {
      package: { name: 'who', sha1: 'a'.repeat(40) },
      packageDir: root,
      module: 'who.mjs',
      limits: DEFAULT_TASK_LIMITS,
    };
  });

  function pool(prlimit = base.prlimit, readyWaitMs?: number): WarmPool {
    const { bwrap, cgroups, runtimeDir, sandboxUser } = base;
    const made = new WarmPool({
      max: 2,
      idleMs: 60_000,
      sandbox: { bwrap, prlimit, cgroups, runtimeDir, sandboxUser },
      logger: silentLogger(),
      ...(readyWaitMs !== undefined ? { readyWaitMs } : {}),
    });
    defer(() => made.close());
    return made;
  }

  /**
   * Runs a first TaskInstance of `spec` cold; the moment its sandbox is let go, the pool starts a
   * replacement, and a second TaskInstance arrives while that replacement is still being spawned.
   */
  async function secondDuringRefill(
    warm: WarmPool,
    of: WarmSpec = spec,
    signal?: AbortSignal,
  ): Promise<{ first: unknown; second: unknown; cold: string[] }> {
    const cold: string[] = [];
    let second: Promise<unknown> | undefined;
    const first = await warm.run(of, { instanceId: 'first', attempt: 1, input: null }, (onStarted) => {
      cold.push('first');
      onStarted();
      assert.deepEqual({ size: warm.stats.size, ready: warm.stats.ready }, { size: 1, ready: 0 });
      second = warm.run(of, { instanceId: 'second', attempt: 1, input: null, signal }, () => {
        cold.push('second');
        return Promise.resolve('second, cold');
      });
      return Promise.resolve('first, cold');
    });
    // A rejection is the outcome too: it comes back as the error.
    return { first, second: await second?.catch((error: unknown) => error), cold };
  }

  it('takes its combination sandbox while it is still being spawned, and starts none beside it', async () => {
    const warm = pool();
    const { first, second, cold } = await secondDuringRefill(warm);
    assert.equal(first, 'first, cold');
    assert.equal(second, 'second', 'the second TaskInstance ran in the pooled sandbox, with its own id');
    assert.deepEqual(cold, ['first']);
    assert.deepEqual(counts(warm.stats), { hits: 1, misses: 1 });
  });

  it('settles as cancelled when cancelled while it waits, and starts nothing cold', async () => {
    const warm = pool();
    const cancel = new AbortController();
    const reason = new Error('cancelled while it waited');
    // Aborted before the sandbox it took was even spawned: the wait ends at once.
    const spawning = secondDuringRefill(warm, spec, cancel.signal);
    cancel.abort(reason);
    const { second, cold } = await spawning;
    assert.equal(second, reason);
    assert.deepEqual(cold, ['first']);
  });

  it('starts cold when the sandbox it waited for ended before it was ready', async () => {
    const warm = pool(join(base.packageDir, 'no-such-prlimit'));
    const { second, cold } = await secondDuringRefill(warm);
    assert.equal(second, 'second, cold');
    assert.deepEqual(cold, ['first', 'second']);
    assert.deepEqual(counts(warm.stats), { hits: 0, misses: 2 });
  });

  it('stops a sandbox whose runner is not ready in time, and starts cold', async () => {
    // The runner reads the package.json of a `.js` task before it says ready; a FIFO nobody writes
    // holds it there for good. (A deployed package cannot hold a FIFO: this stands for a runner
    // stuck for any reason.)
    await writeFile(join(base.packageDir, 'stuck.js'), 'module.exports = () => 1;\n', { mode: 0o644 });
    await execa('mkfifo', ['-m', '644', join(base.packageDir, 'package.json')]);
    const warm = pool(base.prlimit, 300);
    const { second, cold } = await secondDuringRefill(warm, { ...spec, module: 'stuck.js' });
    assert.equal(second, 'second, cold');
    assert.deepEqual(cold, ['first', 'second']);
    assert.deepEqual(counts(warm.stats), { hits: 0, misses: 2 });
    assert.ok(
      warm.stats.discarded >= 1,
      `expected the stuck sandbox counted as discarded, got ${warm.stats.discarded}`,
    );
  });
});
