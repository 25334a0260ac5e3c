import assert from 'node:assert/strict';

import { compileTydraOptions } from '../../../lib/client/options.js';
import { InvalidOptionError } from '../../../lib/core/errors.js';

describe('client options', () => {
  it('rejects unknown options by name', () => {
    assert.throws(() => compileTydraOptions({ redsi: 'redis://x' } as never), {
      message: /got unknown key\(s\) `redsi`/,
    });
  });

  it('never echoes a Redis URL, which may carry a password', () => {
    assert.throws(
      () => compileTydraOptions({ redis: 'http://user:hunter2@host:6379' }),
      (error: Error) =>
        error instanceof InvalidOptionError &&
        !error.message.includes('hunter2') &&
        error.message.includes('`redis` option'),
    );
  });
});
