import assert from 'node:assert/strict';

import { chooseNode } from '../../../lib/master/choose-node.js';
import { InvalidTaskRefError } from '../../../lib/core/errors.js';
import { parseTaskRef } from '../../../lib/packages/task-ref.js';

describe('parseTaskRef', () => {
  it('parses name/task and name@version/task', () => {
    assert.deepEqual(parseTaskRef('hello/greet'), { name: 'hello', version: undefined, task: 'greet' });
    assert.deepEqual(parseTaskRef('hello@1A2b3c4/greet'), { name: 'hello', version: '1a2b3c4', task: 'greet' });
  });

  for (const bad of [
    'hello',
    'hello/',
    '/greet',
    'Hello/greet',
    'hello@123/greet',
    'hello@zzzzzzz/greet',
    'hel lo/greet',
    'hello/gr/eet',
    `${'a'.repeat(65)}/t`,
  ]) {
    it(`rejects ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseTaskRef(bad), InvalidTaskRefError);
    });
  }
});

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

  it('returns undefined when no node is alive', () => {
    assert.equal(chooseNode([], 3), undefined);
  });
});
