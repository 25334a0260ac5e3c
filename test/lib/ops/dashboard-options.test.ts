import assert from 'node:assert/strict';

import { InvalidOptionError } from '../../../lib/core/errors.js';
import { compileDashboardOptions } from '../../../lib/ops/dashboard-options.js';

describe('dashboard options', () => {
  it('serves loopback without users, everyone admin', () => {
    for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) {
      assert.deepEqual(compileDashboardOptions({ host }).users, []);
    }
  });

  it('refuses to serve beyond loopback without users, naming the variables and the way out', () => {
    assert.throws(
      () => compileDashboardOptions({ host: '0.0.0.0' }),
      (error: Error) =>
        error instanceof InvalidOptionError &&
        error.message ===
          'Expected dashboard credentials (TYDRA_DASHBOARD_USER and TYDRA_DASHBOARD_PASSWORD, or the `auth` option) ' +
            'to serve beyond loopback on `0.0.0.0`, got none; pass --insecure-no-auth (`insecureNoAuth`) to serve it open anyway',
    );
  });

  it('takes no name that merely starts like a loopback address for loopback', () => {
    assert.throws(() => compileDashboardOptions({ host: '127.0.0.1.example.com' }), /--insecure-no-auth/);
  });

  it('serves beyond loopback with users, or open with insecureNoAuth, but not both', () => {
    const users = compileDashboardOptions({ host: '0.0.0.0', auth: { user: 'ops', password: 'pw' } }).users;
    assert.deepEqual(users, [{ user: 'ops', password: 'pw', role: 'admin' }]);
    assert.equal(compileDashboardOptions({ host: '0.0.0.0', insecureNoAuth: true }).insecureNoAuth, true);
    assert.throws(
      () => compileDashboardOptions({ auth: { user: 'ops', password: 'pw' }, insecureNoAuth: true }),
      /^InvalidOptionError: Expected either `auth` or `insecureNoAuth`, got both$/,
    );
  });

  it('takes several users with roles, with distinct names, and never echoes a password', () => {
    const users = compileDashboardOptions({
      auth: [
        { user: 'ops', password: 'a' },
        { user: 'viewer', password: 'b', role: 'read-only' },
      ],
    }).users;
    assert.deepEqual(
      users.map((user) => user.role),
      ['admin', 'read-only'],
    );
    assert.throws(
      () =>
        compileDashboardOptions({
          auth: [
            { user: 'ops', password: 'a' },
            { user: 'ops', password: 'b', role: 'read-only' },
          ],
        }),
      /distinct names, got `ops` twice/,
    );
    assert.throws(
      () => compileDashboardOptions({ auth: { user: 'ops', password: 'hunter2', role: 'root' as 'admin' } }),
      (error: Error) => error instanceof InvalidOptionError && !error.message.includes('hunter2'),
    );
  });
});
