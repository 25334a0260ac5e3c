import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { InvalidOptionError } from '../../../lib/core/errors.js';
import { createKeys, Keyspace } from '../../../lib/redis/keys.js';
import { REPO_ROOT } from '../../helpers.js';

/** CRC16/XMODEM, as Redis Cluster hashes a key to one of its 16384 slots. */
function crc16(bytes: Buffer): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit += 1) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc;
}

/** The hash slot of `key`: only the part inside the first non-empty `{…}` counts when there is one. */
function keySlot(key: string): number {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return crc16(Buffer.from(close > open + 1 ? key.slice(open + 1, close) : key)) % 16384;
}

/** The README's placeholder for a parameter of a key method (`<id>` for an instanceId, …). */
const PLACEHOLDERS: Record<string, string> = { instanceId: 'id', uploadId: 'uuid' };

/** Every key and channel of `keys`: its fields, and each method called with `<param>` placeholders. */
function everyKey(keys: Keyspace): Map<string, string> {
  const all = new Map<string, string>();
  for (const [field, value] of Object.entries(keys)) {
    if (field !== 'namespace' && typeof value === 'string') {
      all.set(field, value);
    }
  }
  for (const name of Object.getOwnPropertyNames(Keyspace.prototype)) {
    const method = (keys as unknown as Record<string, (...args: string[]) => string>)[name];
    if (name === 'constructor' || typeof method !== 'function') {
      continue;
    }
    const params = /^[^(]*\(([^)]*)\)/.exec(method.toString())?.[1]?.split(',') ?? [];
    const args = params.map((param) => param.trim()).map((param) => `<${PLACEHOLDERS[param] ?? param}>`);
    all.set(name, method.apply(keys, args));
  }
  return all;
}

describe('the key layout of a namespace', () => {
  it('hashes slots as Redis Cluster does', () => {
    // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
    assert.equal(keySlot('123456789'), 12739);
    assert.equal(keySlot('foo'), 12182);
    assert.equal(keySlot('{user1000}.following'), keySlot('{user1000}.followers'));
  });

  it('puts every key and channel of a namespace under its hash tag, so in one slot', () => {
    for (const namespace of ['tydra', 'a', 'team-2_prod']) {
      const keys = createKeys(namespace);
      const slot = keySlot(keys.tag);
      for (const [name, key] of everyKey(keys)) {
        assert.ok(key.startsWith(`{${namespace}}`), `${name}: ${key}`);
        assert.equal(keySlot(key), slot, `${name}: ${key}`);
      }
    }
    assert.ok(everyKey(createKeys()).size >= 25);
  });

  it('keeps namespaces apart: no key of one is a key of another', () => {
    const a = new Set(everyKey(createKeys('a')).values());
    const ab = [...everyKey(createKeys('ab')).values()];
    assert.deepEqual(
      ab.filter((key) => a.has(key)),
      [],
    );
    assert.equal(createKeys().namespace, 'tydra');
    assert.equal(createKeys('x').bullPrefix, '{x}:bull');
    assert.equal(createKeys('x').taskJob('tasks', 'id-1'), '{x}:bull:tasks:id-1');
  });

  it('refuses a namespace that is empty, too long or could change the tag', () => {
    for (const namespace of ['', 'A', 'a}', '{a', 'a:b', 'a b', 'x'.repeat(33)]) {
      assert.throws(() => createKeys(namespace), InvalidOptionError, namespace);
    }
    assert.equal(createKeys('x'.repeat(32)).tag, `{${'x'.repeat(32)}}`);
  });

  it('is what the README key schema table lists, key by key', () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const bullMq = new Set(['tag', 'bullPrefix', 'queueKey', 'taskJob']);
    const missing = [...everyKey(createKeys())]
      .filter(([name]) => !bullMq.has(name))
      .map(([, key]) => `\`${key.replace('{tydra}', '{NAME}')}\``)
      .filter((cell) => !readme.includes(`| ${cell} |`));
    assert.deepEqual(missing, []);
  });
});
