import assert from 'node:assert/strict';

import { formatNode } from '../../bin/cli/format.js';
import type { NodeInfo } from '../../lib/index.js';

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
  pool: { size: 1, max: 1, hits: 2, misses: 0 },
  ...fields,
});

describe('how tydra nodes prints a node', () => {
  it("shows an alive node's warm pool, and - for a stopped, dead or late one", () => {
    assert.match(formatNode(node({})), /^n1 {2}alive .* warm pool 1\/1, 2 hits, 0 misses \(100% hits\) {2}host /);
    assert.match(
      formatNode(node({ state: 'stopped', alive: false, lost: true })),
      /^n1 {2}stopped .* warm pool - {2}host /,
    );
    assert.match(formatNode(node({ alive: false, lost: true })), /^n1 {2}dead .* warm pool - {2}host /);
    assert.match(formatNode(node({ alive: false })), /^n1 {2}late .* warm pool - {2}host /);
  });
});
