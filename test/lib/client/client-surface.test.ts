import assert from 'node:assert/strict';

import { setSubmitHooks, submitHooksOf } from '../../../lib/client/submit-hooks.js';
import { TaskRun } from '../../../lib/client/task-run.js';
import { CLIENT_DEFAULTS, compileTydraOptions } from '../../../lib/client/options.js';
import { PACKAGE_DEFAULTS } from '../../../lib/packages/defaults.js';
import { PACKAGE_LIMIT_DEFAULTS } from '../../../lib/packages/limits.js';
import { testClient } from '../../helpers.js';

// A Tydra client connects to Redis as it is built: these two need the suite's Redis.
describe('the client surface (@integration)', () => {
  it('keeps test seams and run internals off the public Tydra class', () => {
    const tydra = testClient();
    for (const name of ['hooks', 'tasksQueueForRun', 'cancelRecord']) {
      assert.equal(name in tydra, false, `Tydra must not expose ${name}`);
    }
    assert.deepEqual(submitHooksOf(tydra), {}, 'a client has no hooks unless a test installs them');
    const afterReference = (): Promise<void> => Promise.resolve();
    setSubmitHooks(tydra, { afterReference });
    assert.equal(submitHooksOf(tydra).afterReference, afterReference);
    assert.deepEqual(submitHooksOf(testClient()), {}, 'hooks belong to one client');
  });

  it('hands a TaskRun its context, not the client', () => {
    const run = testClient().run('some-id');
    assert.ok(run instanceof TaskRun);
    assert.equal(run.id, 'some-id');
    assert.equal(run.ref, undefined);
  });
});

describe('the client defaults', () => {
  it('compiles its defaults from CLIENT_DEFAULTS, which reuse the package defaults', () => {
    const compiled = compileTydraOptions();
    assert.equal(compiled.redisUrl, CLIENT_DEFAULTS.redis);
    assert.equal(compiled.maxInputBytes, CLIENT_DEFAULTS.maxInputBytes);
    assert.equal(compiled.deployLeaseMs, PACKAGE_DEFAULTS.deployLeaseMs);
    assert.deepEqual(compiled.limits, { ...PACKAGE_LIMIT_DEFAULTS });
    assert.equal(CLIENT_DEFAULTS.limits, PACKAGE_LIMIT_DEFAULTS);
  });
});
