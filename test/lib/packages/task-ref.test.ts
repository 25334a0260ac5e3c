import assert from 'node:assert/strict';

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
