import assert from 'node:assert/strict';

import { InvalidOptionError } from '../../../../lib/core/errors.js';
import { endpointProblem, parseEndpoint } from '../../../../lib/core/network-endpoint.js';
import { allowingPattern, compileConnectPolicy } from '../../../../lib/node/network/connect-policy.js';
import { loopbackPlan } from '../../../../sandbox/launcher/network/loopback-plan.js';

describe('network endpoints, --allow-connect patterns and the sandbox loopback plan', () => {
  it('accepts HOST:PORT with a lower-case name or a loopback IPv4 literal', () => {
    for (const text of ['db.internal:5432', 'localhost:1', 'api.example.com:443', '127.0.0.1:65535', 'a-b.c9:80']) {
      assert.equal(endpointProblem(text), undefined, text);
    }
    assert.deepEqual(parseEndpoint('db.internal:5432'), { host: 'db.internal', port: 5432 });
  });

  it('refuses anything else, saying what was expected', () => {
    const cases: Array<[string, RegExp]> = [
      ['db.internal', /`:` before the port/],
      ['db:0', /port from 1 to 65535/],
      ['db:65536', /port from 1 to 65535/],
      ['db:080', /port from 1 to 65535/],
      ['DB:5432', /lower-case host name/],
      ['-db:5432', /lower-case host name/],
      ['1.2.3:5432', /lower-case host name/],
      ['10.0.0.1:5432', /loopback IPv4 address/],
      ['256.0.0.1:5432', /lower-case host name/],
      ['[::1]:5432', /lower-case host name/],
      [':5432', /`:` before the port/],
    ];
    for (const [text, expected] of cases) {
      assert.match(endpointProblem(text) ?? 'accepted', expected, text);
    }
  });

  it('matches exact names, addresses, *.suffix (strictly below), * and any port', () => {
    const policy = compileConnectPolicy(['db.internal:5432', '*.corp:443', '127.0.0.1:*']);
    const allows = (host: string, port: number) => allowingPattern(policy, { host, port })?.text;
    assert.equal(allows('db.internal', 5432), 'db.internal:5432');
    assert.equal(allows('db.internal', 5433), undefined);
    assert.equal(allows('x.db.internal', 5432), undefined);
    assert.equal(allows('api.corp', 443), '*.corp:443');
    assert.equal(allows('a.b.corp', 443), '*.corp:443');
    assert.equal(allows('corp', 443), undefined);
    assert.equal(allows('xcorp', 443), undefined);
    assert.equal(allows('127.0.0.1', 6379), '127.0.0.1:*');
    assert.equal(allows('127.0.0.2', 6379), undefined);
    assert.equal(allowingPattern(compileConnectPolicy(['*:8080']), { host: 'any.where', port: 8080 })?.text, '*:8080');
    assert.equal(allowingPattern([], { host: 'db.internal', port: 5432 }), undefined, 'default: nothing');
  });

  it('refuses a malformed pattern, naming it', () => {
    for (const text of ['*', 'db.*:5432', '*.:1', 'db:port', 'db:08', '', '*db:1', 'db:**', 'Db:1']) {
      assert.throws(
        () => compileConnectPolicy([text]),
        (error: Error) => error instanceof InvalidOptionError && error.message.includes(`got \`${text}\``),
        text,
      );
    }
    assert.throws(
      () => compileConnectPolicy(['Bad Host']),
      /to be HOST:PORT with a `:` before the port, got `Bad Host`$/,
    );
  });

  it('places names on their own loopback addresses, literals on themselves, and shares a listener', () => {
    const plan = loopbackPlan([
      { host: 'db.internal', port: 5432, allowed: true },
      { host: '127.1.0.2', port: 80, allowed: true },
      { host: 'cache.internal', port: 6379, allowed: false },
      { host: 'db.internal', port: 6000, allowed: true },
      { host: 'localhost', port: 9000, allowed: false },
      { host: '127.0.0.1', port: 9000, allowed: true },
    ]);
    assert.deepEqual(
      plan.endpoints.map(({ host, address, port, allowed, socket }) => [host, address, port, allowed, socket]),
      [
        ['db.internal', '127.1.0.1', 5432, true, '0.sock'],
        ['127.1.0.2', '127.1.0.2', 80, true, '1.sock'],
        // 127.1.0.2 is the task's own literal: skipped.
        ['cache.internal', '127.1.0.3', 6379, false, '2.sock'],
        ['db.internal', '127.1.0.1', 6000, true, '3.sock'],
        // localhost:9000 and 127.0.0.1:9000 are one listener, forwarded to the allowed one.
        ['127.0.0.1', '127.0.0.1', 9000, true, '4.sock'],
      ],
    );
    assert.equal(plan.hosts, '127.0.0.1\tlocalhost\n127.1.0.1\tdb.internal\n127.1.0.3\tcache.internal\n');
    assert.deepEqual(plan.forwarder.listen[0], { address: '127.1.0.1', port: 5432, socket: '/run/tydra-net/0.sock' });
  });
});
