import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { readEnvConfig } from '../../../lib/core/config.js';
import { InvalidOptionError } from '../../../lib/core/errors.js';
import { dashboardUsersFromEnv } from '../../../lib/ops/dashboard-credentials.js';
import { tempDir } from '../../helpers.js';

const usersOf = (env: Record<string, string>) => dashboardUsersFromEnv(readEnvConfig(env));

async function refusal(env: Record<string, string>): Promise<string> {
  try {
    await usersOf(env);
  } catch (error) {
    assert.ok(error instanceof InvalidOptionError, `expected an InvalidOptionError, got ${String(error)}`);
    return error.message;
  }
  assert.fail('expected the environment to be refused');
}

describe('dashboard users from the environment', () => {
  it('defines none when no variable is set', async () => {
    assert.deepEqual(await usersOf({}), []);
  });

  it('reads an admin and a read-only user', async () => {
    assert.deepEqual(
      await usersOf({
        TYDRA_DASHBOARD_USER: 'ops',
        TYDRA_DASHBOARD_PASSWORD: 's3cret',
        TYDRA_DASHBOARD_READONLY_USER: 'viewer',
        TYDRA_DASHBOARD_READONLY_PASSWORD: 'look',
      }),
      [
        { user: 'ops', password: 's3cret', role: 'admin' },
        { user: 'viewer', password: 'look', role: 'read-only' },
      ],
    );
  });

  it('reads a password from a file, without its trailing newline', async () => {
    const file = join(await tempDir(), 'password');
    await writeFile(file, 'from-a-file\n');
    assert.deepEqual(await usersOf({ TYDRA_DASHBOARD_USER: 'ops', TYDRA_DASHBOARD_PASSWORD_FILE: file }), [
      { user: 'ops', password: 'from-a-file', role: 'admin' },
    ]);
    await writeFile(file, '\n');
    assert.equal(
      await refusal({ TYDRA_DASHBOARD_USER: 'ops', TYDRA_DASHBOARD_PASSWORD_FILE: file }),
      `Expected TYDRA_DASHBOARD_PASSWORD_FILE to name a file holding a password, got an empty \`${file}\``,
    );
    const missing = join(file, 'nope');
    assert.equal(
      await refusal({ TYDRA_DASHBOARD_READONLY_USER: 'v', TYDRA_DASHBOARD_READONLY_PASSWORD_FILE: missing }),
      `Expected TYDRA_DASHBOARD_READONLY_PASSWORD_FILE to name a readable file, got \`${missing}\` (ENOTDIR)`,
    );
  });

  it('refuses half a pair, naming the missing variable, and never shows the password', async () => {
    assert.equal(
      await refusal({ TYDRA_DASHBOARD_USER: 'ops' }),
      'Expected TYDRA_DASHBOARD_PASSWORD (or TYDRA_DASHBOARD_PASSWORD_FILE) with TYDRA_DASHBOARD_USER, got TYDRA_DASHBOARD_USER alone: set TYDRA_DASHBOARD_PASSWORD',
    );
    const message = await refusal({ TYDRA_DASHBOARD_PASSWORD: 'hunter2' });
    assert.equal(
      message,
      'Expected TYDRA_DASHBOARD_USER with TYDRA_DASHBOARD_PASSWORD, got TYDRA_DASHBOARD_PASSWORD alone: set TYDRA_DASHBOARD_USER',
    );
    assert.match(
      await refusal({ TYDRA_DASHBOARD_READONLY_USER: 'viewer' }),
      /got TYDRA_DASHBOARD_READONLY_USER alone: set TYDRA_DASHBOARD_READONLY_PASSWORD$/,
    );
    assert.equal(
      await refusal({
        TYDRA_DASHBOARD_USER: 'ops',
        TYDRA_DASHBOARD_PASSWORD: 'a',
        TYDRA_DASHBOARD_PASSWORD_FILE: '/x',
      }),
      'Expected one of TYDRA_DASHBOARD_PASSWORD and TYDRA_DASHBOARD_PASSWORD_FILE, got both',
    );
  });
});
