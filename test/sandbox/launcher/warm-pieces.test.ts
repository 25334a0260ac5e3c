/** The pure pieces of a pooled sandbox: who may use one, CPU counted from the claim, the `ready` message. */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';

import { DEFAULT_TASK_LIMITS } from '../../../lib/core/limits.js';
import { brokenLimit } from '../../../sandbox/launcher/monitor.js';
import { parseRunnerMessage } from '../../../sandbox/launcher/runner-message.js';
import { captureStreams } from '../../../sandbox/launcher/stream-capture.js';
import { isWarmEligible } from '../../../sandbox/launcher/warm-sandbox.js';

const stats = { oomKills: 0, pidsLimitHits: 0, cpuUsageMs: 1200, memoryPeakBytes: undefined };

describe('warm sandbox pieces', () => {
  it('pools a submission env unless it sets a variable Node reads at its own start', () => {
    assert.equal(isWarmEligible(undefined), true);
    assert.equal(isWarmEligible({ COLOUR: 'blue', TZ: 'UTC' }), true);
    assert.equal(isWarmEligible({ COLOUR: 'blue', NODE_EXTRA_CA_CERTS: '/x' }), false);
    assert.equal(isWarmEligible({ UV_THREADPOOL_SIZE: '8' }), false);
  });

  it('counts CPU time from the claim: what the sandbox used before it is subtracted', () => {
    const limits = { ...DEFAULT_TASK_LIMITS, cpuMs: 1000 };
    assert.deepEqual(brokenLimit(stats, limits), { limit: 'cpuMs' });
    assert.equal(brokenLimit(stats, limits, 300), undefined);
    assert.deepEqual(brokenLimit({ ...stats, cpuUsageMs: 1301 }, limits, 300), { limit: 'cpuMs' });
  });

  it('reads `ready` as a runner message, and as a protocol error from a runner not pooled', async () => {
    assert.deepEqual(parseRunnerMessage('{"type":"ready"}'), { type: 'ready' });
    assert.equal(parseRunnerMessage('{"type":"ready","extra":1}'), undefined);
    const run = (onReady?: () => void) => {
      const streams = {
        stdin: new PassThrough(),
        stdout: new PassThrough(),
        stderr: new PassThrough(),
        protocol: new PassThrough(),
      };
      let stopped = 0;
      const capture = captureStreams(streams, {
        outputBytes: 1024,
        maxResultBytes: 1024,
        onLog: () => undefined,
        onStop: () => (stopped += 1),
        ...(onReady === undefined ? {} : { onReady }),
      });
      streams.protocol.end('{"type":"ready"}\n');
      streams.stdout.end();
      streams.stderr.end();
      return capture.ended(1000).then(() => ({ error: capture.output.protocolError, stopped }));
    };
    let ready = 0;
    assert.deepEqual(await run(() => (ready += 1)), { error: undefined, stopped: 0 });
    assert.equal(ready, 1);
    const cold = await run();
    assert.equal(cold.stopped, 1);
    assert.match(cold.error ?? '', /"ready" message from a runner not pooled/);
  });
});
