/**
 * A pooled runner loads Node's ES module loader before its claim when its task is an ES module
 * (`warmUpLoader`, `LOADER_WARMUP_FILE`), with tydra's own empty module, and nothing of the task.
 */
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { DEFAULT_TASK_LIMITS } from '../../../lib/core/limits.js';
import { detectCgroups, removeCgroupParent } from '../../../sandbox/launcher/cgroup/support.js';
import { runTask } from '../../../sandbox/launcher/run-task.js';
import { WarmSandbox } from '../../../sandbox/launcher/warm-sandbox.js';
import { LOADER_WARMUP_FILE } from '../../../sandbox/protocol.js';
import { sandboxBase } from './sandbox-base.js';
import { defer, tempDir } from '../../helpers.js';

/** What the task sees of what was loaded before it: the warm-up module, and whether it ran first. */
const SEEN = (format: 'esm' | 'cjs'): string => {
  const body = `(input) => {
  const cache = Object.keys(require.cache);
  return {
    warmedUp: cache.some((key) => key.endsWith('/${LOADER_WARMUP_FILE}')),
    envLeft: Object.keys(process.env).filter((name) => name.startsWith('TYDRA_WARM')),
  };
}`;
  return format === 'esm'
    ? `import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nexport default ${body};\n`
    : `module.exports = ${body};\n`;
};

describe('a pooled runner warms up the ES module loader (@integration)', function () {
  this.timeout(60_000);

  let base: Awaited<ReturnType<typeof sandboxBase>>;

  beforeEach(async () => {
    const root = await tempDir();
    await chmod(root, 0o755);
    await writeFile(join(root, 'seen.mjs'), SEEN('esm'), { mode: 0o644 });
    await writeFile(join(root, 'seen.cjs'), SEEN('cjs'), { mode: 0o644 });
    const cgroups = await detectCgroups({ parentName: `tydra-test-warm-loader-${process.pid}` });
    defer(() => removeCgroupParent(cgroups));
    base = await sandboxBase(root, cgroups);
  });

  async function claimed(module: string): Promise<unknown> {
    const warm = await WarmSandbox.start({ ...base, limits: DEFAULT_TASK_LIMITS, module });
    assert.equal(await warm.ready, true);
    return warm.claim({ instanceId: `warm-loader-${process.pid}`, attempt: 1, input: null });
  }

  it('before the claim of an ES module task, with its own empty module; the variables are gone', async () => {
    assert.deepEqual(await claimed('seen.mjs'), { warmedUp: true, envLeft: [] });
  });

  it('not for a CommonJS task, which never needs that loader', async () => {
    assert.deepEqual(await claimed('seen.cjs'), { warmedUp: false, envLeft: [] });
  });

  it('not in a cold sandbox, where nothing waits to hide it behind', async () => {
    const result = await runTask({
      ...base,
      task: { module: 'seen.mjs' },
      instanceId: `warm-loader-cold-${process.pid}`,
      limits: DEFAULT_TASK_LIMITS,
    });
    assert.deepEqual(result, { warmedUp: false, envLeft: [] });
  });
});
