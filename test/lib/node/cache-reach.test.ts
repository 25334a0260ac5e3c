/**
 * A node's start-up check that the sandbox user can reach the package cache (bwrap binds it, and
 * the runtime copied into it, as that user): a folder on the way that it cannot enter stops the
 * node at start, naming the folder and the fix, rather than failing every TaskInstance later.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';

import { SandboxUnavailableError } from '../../../lib/core/errors.js';
import { TydraNode } from '../../../lib/node/node.js';
import { defer, redisUrl, startNode, tempDir } from '../../helpers.js';

describe('the package cache, reachable by the sandbox user (@integration)', function () {
  this.timeout(20_000);

  it('refuses to start a node whose cache sits in a folder the sandbox user cannot enter', async () => {
    const parent = await tempDir('tydra-private-');
    await chmod(parent, 0o700);
    const cacheDir = join(parent, 'cache');
    const node = new TydraNode({ redis: redisUrl(), id: `test-reach-${process.pid}`, cacheDir, warmMax: 0 });
    defer(() => node.close());
    await assert.rejects(node.start(), (error: unknown) => {
      assert.ok(error instanceof SandboxUnavailableError, String(error));
      assert.equal(
        error.message,
        `Expected the package cache ${cacheDir} to be reachable by the sandbox user 60000:65534, but ${parent} has mode 0700; ` +
          `allow it with chmod o+x ${parent}, or choose another --cache-dir (default for root: /var/cache/tydra/packages)`,
      );
      return true;
    });
    assert.equal(existsSync(cacheDir), false, 'a refused cache folder is not created');
    await chmod(parent, 0o711);
    const started = await startNode({ cacheDir });
    assert.equal(started.state, 'running');
  });
});
