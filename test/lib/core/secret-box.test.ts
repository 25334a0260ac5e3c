import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { SecretKeyError, SecretUnavailableError } from '../../../lib/core/errors.js';
import {
  loadSecretKey,
  maskSecrets,
  maskSecretsIn,
  openSecret,
  parseSecretKey,
  sealSecret,
  secretMappingOf,
} from '../../../lib/core/secret-box.js';
import { tempDir } from '../../helpers.js';

describe('secret box', () => {
  const key = randomBytes(32);

  it('reads a 32-byte key in base64 or hex, surrounding white space ignored', () => {
    assert.deepEqual(parseSecretKey(` ${key.toString('base64')}\n`, 'k'), key);
    assert.deepEqual(parseSecretKey(key.toString('hex'), 'k'), key);
  });

  it('refuses a key of another length, or neither base64 nor hex, without echoing it', () => {
    const short = randomBytes(16).toString('base64');
    assert.throws(
      () => parseSecretKey(short, 'TYDRA_SECRET_KEY'),
      (error: Error) =>
        error instanceof SecretKeyError &&
        /^Expected TYDRA_SECRET_KEY to hold 32 random bytes in base64 or hex .*, got 16 bytes \(not shown\)$/.test(
          error.message,
        ) &&
        !error.message.includes(short),
    );
    assert.throws(
      () => parseSecretKey('not a key!', 'k'),
      (error: Error) => error instanceof SecretKeyError && !error.message.includes('not a key'),
    );
    assert.throws(() => loadSecretKey({ secretKey: 'a', secretKeyFile: '/x' }), /got both/);
    assert.equal(loadSecretKey({}), undefined);
  });

  it('reads the key from a file', async () => {
    const file = join(await tempDir(), 'key');
    await writeFile(file, `${key.toString('base64')}\n`);
    assert.deepEqual(loadSecretKey({ secretKeyFile: file }), key);
    assert.throws(() => loadSecretKey({ secretKeyFile: join(file, 'none') }), /readable secret key file/);
  });

  it('seals with a fresh IV each time and opens only with the same key and name', () => {
    const a = sealSecret(key, 'DB_PASSWORD', 'hunter2');
    const b = sealSecret(key, 'DB_PASSWORD', 'hunter2');
    assert.notEqual(a, b);
    assert.equal(Buffer.from(a, 'base64')[0], 1);
    assert.ok(!Buffer.from(a, 'base64').toString('latin1').includes('hunter2'));
    assert.equal(openSecret(key, 'DB_PASSWORD', a), 'hunter2');
    // Moved to another name: the name is authenticated data.
    assert.throws(() => openSecret(key, 'OTHER', a), SecretUnavailableError);
    assert.throws(() => openSecret(randomBytes(32), 'DB_PASSWORD', a), /wrong key or an altered value/);
  });

  it('masks every value, the longest first', () => {
    assert.equal(maskSecrets('pw=abc and abcdef', ['abc', 'abcdef', '']), 'pw=*** and ***');
    assert.deepEqual(maskSecretsIn({ abc: ['x abc', 1, null, { k: 'abc' }] }, ['abc']), {
      '***': ['x ***', 1, null, { k: '***' }],
    });
  });

  it('maps declared names to themselves, under the submission', () => {
    assert.deepEqual(secretMappingOf(['A', 'B'], { B: 'PROD_B', C: 'C' }), { A: 'A', B: 'PROD_B', C: 'C' });
  });
});
