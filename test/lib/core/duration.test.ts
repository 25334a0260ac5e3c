import assert from 'node:assert/strict';

import { InvalidOptionError } from '../../../lib/core/errors.js';
import { parseDuration } from '../../../lib/core/duration.js';

describe('parseDuration', () => {
  it('reads a whole number and one unit', () => {
    assert.equal(parseDuration('30s', 'x'), 30_000);
    assert.equal(parseDuration('10m', 'x'), 600_000);
    assert.equal(parseDuration('1h', 'x'), 3_600_000);
    assert.equal(parseDuration('2d', 'x'), 172_800_000);
    assert.equal(parseDuration('250ms', 'x'), 250);
  });

  it('refuses anything else, naming what it got', () => {
    for (const text of ['', '1', '1.5h', '-1h', '1w', 'h']) {
      assert.throws(
        () => parseDuration(text, 'the `since` option'),
        (error: Error) => {
          assert.ok(error instanceof InvalidOptionError);
          assert.match(error.message, /^Expected the `since` option to be a duration such as 30s/);
          return true;
        },
      );
    }
  });
});
