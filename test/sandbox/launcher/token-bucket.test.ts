/** TokenBucket on a clock the test moves. */
import assert from 'node:assert/strict';

import { TokenBucket } from '../../../sandbox/launcher/token-bucket.js';

describe('TokenBucket', () => {
  it('gives its burst, then owes one token and says how long until it is back', () => {
    let now = 0;
    const bucket = new TokenBucket(3, 20, () => now);
    assert.deepEqual([bucket.take(), bucket.take(), bucket.take()], [0, 0, 0]);
    assert.equal(bucket.available, false);
    assert.equal(bucket.take(), 50, 'one token owed, back in 1/20 s');
    now += 50;
    assert.equal(bucket.available, false, 'the token that came back repaid the debt');
    assert.equal(bucket.take(), 50);
    now += 25;
    assert.equal(bucket.take(), 75, 'half a token back, then one and a half owed');
  });

  it('refills at its rate up to its burst, no further', () => {
    let now = 0;
    const bucket = new TokenBucket(2, 10, () => now);
    bucket.take();
    bucket.take();
    now += 10_000;
    assert.deepEqual([bucket.take(), bucket.take(), bucket.take()], [0, 0, 100]);
  });
});
