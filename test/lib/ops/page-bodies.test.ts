import assert from 'node:assert/strict';

import type { NodeInfo } from '../../../lib/cluster/node-registry.js';
import { progressInWords } from '../../../lib/ops/instance-page.js';
import { nodeState } from '../../../lib/ops/nodes-page.js';

const node = (fields: Partial<NodeInfo>): NodeInfo => ({
  id: 'n1',
  concurrency: 1,
  hostname: 'h',
  pid: 1,
  startedAt: 0,
  heartbeatMs: 1000,
  lockDurationMs: 30_000,
  lastSeen: 0,
  state: 'running',
  alive: true,
  draining: false,
  lost: false,
  warm: [],
  cached: [],
  ...fields,
});

describe('what the tydra pages say', () => {
  it('reads a node as alive, late, dead or stopped', () => {
    assert.equal(nodeState(node({})), 'alive');
    assert.equal(nodeState(node({ alive: false })), 'late');
    assert.equal(nodeState(node({ alive: false, lost: true })), 'dead');
    assert.equal(nodeState(node({ state: 'stopped', alive: false, lost: true })), 'stopped');
  });

  it('puts progress in words, as tydra status does', () => {
    assert.equal(progressInWords({ percent: 42.7, value: 42.7 }), '42%');
    assert.equal(
      progressInWords({ percent: 42, workunits: { total: 1000, done: 420, failed: 3, running: 8 }, splitDone: false }),
      '42% · workunits 420/1000 done, 3 failed, 8 running (split still running)',
    );
    assert.equal(
      progressInWords({ percent: 33, step: { index: 1, name: 'count' }, steps: 3 }),
      '33% · step 2/3 (count)',
    );
  });
});
