import assert from 'node:assert/strict';

import { formatNode } from '../../bin/cli/format.js';
import type { NodeInfo } from '../../lib/index.js';
import { nodeInfo } from '../node-info.js';

const node = (fields: Partial<NodeInfo>): NodeInfo =>
  nodeInfo({ pool: { size: 1, max: 1, hits: 2, misses: 0 }, ...fields });

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
