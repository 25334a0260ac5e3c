import assert from 'node:assert/strict';

import { chooseNode } from '../../../lib/master/choose-node.js';

describe('chooseNode', () => {
  it('picks the node with the lowest load per slot', () => {
    const picked = chooseNode(
      [
        { id: 'a', concurrency: 1, pending: 1 },
        { id: 'b', concurrency: 4, pending: 2 },
      ],
      0,
    );
    assert.equal(picked?.id, 'b');
  });

  it('rotates between equally loaded nodes', () => {
    const nodes = [
      { id: 'a', concurrency: 2, pending: 0 },
      { id: 'b', concurrency: 2, pending: 0 },
    ];
    assert.deepEqual(
      [0, 1, 2, 3].map((turn) => chooseNode(nodes, turn)?.id),
      ['a', 'b', 'a', 'b'],
    );
  });

  it('rotates in id order whatever order the nodes come in, and only among the least loaded', () => {
    const nodes = [
      { id: 'c', concurrency: 1, pending: 0 },
      { id: 'busy', concurrency: 1, pending: 1 },
      { id: 'a', concurrency: 3, pending: 0 },
    ];
    assert.deepEqual(
      [0, 1, 2].map((turn) => chooseNode(nodes, turn)?.id),
      ['a', 'c', 'a'],
    );
  });

  it('treats a node without slots like a node with one, and leaves its input untouched', () => {
    const nodes = [
      { id: 'zero', concurrency: 0, pending: 1 },
      { id: 'two', concurrency: 2, pending: 3 },
    ];
    assert.equal(chooseNode(nodes, 0)?.id, 'zero');
    assert.deepEqual(
      nodes.map((node) => node.id),
      ['zero', 'two'],
    );
  });

  it('returns undefined when no node is alive', () => {
    assert.equal(chooseNode([], 3), undefined);
  });

  it('prefers, among equally loaded nodes, one with the version warm, then one with it cached', () => {
    const nodes = [
      { id: 'a', concurrency: 2, pending: 0 },
      { id: 'b', concurrency: 2, pending: 0, affinity: 'cached' as const },
      { id: 'c', concurrency: 2, pending: 0, affinity: 'warm' as const },
      { id: 'd', concurrency: 2, pending: 1, affinity: 'warm' as const },
    ];
    assert.deepEqual(
      [0, 1].map((turn) => chooseNode(nodes, turn)?.id),
      ['c', 'c'],
    );
    assert.equal(chooseNode(nodes.slice(0, 2), 1)?.id, 'b', 'cached beats nothing');
    assert.equal(chooseNode([nodes[0]!, nodes[3]!], 0)?.id, 'a', 'affinity never beats a lower load');
  });
});
