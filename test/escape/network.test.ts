/**
 * A task's network: what its task declares (`network.connect`) and its node allows
 * (`--allow-connect`) is reachable exactly as written, from JavaScript and from a command; every
 * other address and port, the host's loopback included, is not. Only loopback servers of the
 * test's own.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';

import { execa } from 'execa';
import { Registry } from 'prom-client';

import { InvalidOptionError, ManifestError } from '../../lib/core/errors.js';
import { LOGGED_CONNECTIONS } from '../../lib/node/network/connection-reporter.js';
import { TydraNode } from '../../lib/node/node.js';
import { tydra } from '../bin/run-cli.js';
import {
  CLI,
  defer,
  makePackage,
  recordingLogger,
  redisUrl,
  startCluster,
  tempDir,
  testClient,
  waitFor,
} from '../helpers.js';
import { type Arena, arena, expectNothingLeft, LIMITS } from './harness.js';
import { loopbackServer, networkFolders, ROUND_TRIP_JS } from './network-harness.js';

/** Sends `payload` to each {host, port}, reads until the peer ends; reports data or the error code. */
const ECHO_JS = `${ROUND_TRIP_JS}export default async ({ targets, payload }) => {
  const outcomes = [];
  for (const target of targets) outcomes.push(await roundTrip(target, payload));
  return outcomes;
};
`;

const ECHO_PY = `import json, socket, sys
job = json.load(sys.stdin)
outcomes = []
for target in job["targets"]:
    try:
        s = socket.create_connection((target["host"], target["port"]), timeout=3)
        s.sendall(job["payload"].encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        outcomes.append({"data": data.decode()})
    except OSError as error:
        outcomes.append(error.__class__.__name__)
print(json.dumps(outcomes))
`;

/** A package whose tasks declare `connect`, from JavaScript, from Python, and one declaring nothing. */
async function netPackage(connect: string[]): Promise<string> {
  const network = { connect };
  const manifest = {
    name: 'net',
    limits: LIMITS,
    tasks: {
      js: { module: 'echo.mjs', network },
      py: { command: ['python3', 'echo.py'], network },
      undeclared: { module: 'echo.mjs' },
    },
  };
  return makePackage({ 'tydra.json': JSON.stringify(manifest), 'echo.mjs': ECHO_JS, 'echo.py': ECHO_PY });
}

describe('escape: network, opened per task where the node allows it @integration', function () {
  this.timeout(90_000);

  it('reaches an allowed endpoint as written (IP and host name, JS and a command), and nothing else', async () => {
    const foldersBefore = await networkFolders();
    const echo = await loopbackServer('echo');
    const declaredOnly = await loopbackServer('silent');
    const other = await loopbackServer('silent');
    const { logger, entries } = recordingLogger('info');
    const allowConnect = [`127.0.0.1:${echo.port}`, `localhost:${echo.port}`];
    const { nodes } = await startCluster(1, { allowConnect, logger });
    const client = testClient();
    await client.deploy(await netPackage([...allowConnect, `127.0.0.1:${declaredOnly.port}`]));
    const payload = 'ping \u00e9 '.repeat(2000);
    const reached = [
      { host: '127.0.0.1', port: echo.port },
      { host: 'localhost', port: echo.port },
    ];
    const walled = [
      { host: '127.0.0.1', port: declaredOnly.port }, // declared, not allowed by the node
      { host: '127.0.0.1', port: other.port }, // another port of the host's loopback
      { host: '127.0.0.2', port: echo.port }, // another loopback address
      { host: '127.1.0.1', port: echo.port }, // where tydra places names, on no declared port
      { host: '10.0.0.1', port: echo.port }, // no route
    ];
    for (const task of ['js', 'py']) {
      const run = await client.submit(`net/${task}`, { targets: [...reached, ...walled], payload });
      const outcomes = (await run.result()) as unknown[];
      assert.deepEqual(outcomes.slice(0, 2), [{ data: payload }, { data: payload }], `${task}: round trips`);
      // Declared but refused: tydra accepts in the sandbox, the node closes at once (no data).
      assert.deepEqual(outcomes[2], { data: '' }, `${task}: declared, not allowed`);
      for (const [index, outcome] of outcomes.slice(3).entries()) {
        assert.ok(
          typeof outcome === 'string',
          `${task}: ${JSON.stringify(walled[index + 1])} unreachable, got ${JSON.stringify(outcome)}`,
        );
      }
      const status = await run.status();
      assert.ok(status.logs.some((line) => line.includes(`127.0.0.1:${declaredOnly.port} is not allowed on node`)));
      // The harness's leftover checks read only the arena's node.
      await expectNothingLeft({ node: nodes[0] } as Arena, run);
    }
    const undeclared = await client.submit('net/undeclared', { targets: reached, payload });
    // Without a network: nothing listens on the sandbox's loopback, and no name resolves.
    assert.deepEqual(await undeclared.result(), ['ECONNREFUSED', 'EAI_AGAIN'], 'not declared: not reachable');
    assert.equal(echo.connections(), 4, 'the echo server saw the two round trips of each task, no more');
    assert.equal(declaredOnly.connections(), 0, 'the refused endpoint never saw a connection');
    assert.equal(other.connections(), 0, 'the other server never saw a connection');
    const connections = entries.filter((entry) => entry.msg.startsWith('sandbox connection '));
    const count = (msg: string, port: number) =>
      connections.filter((entry) => entry.msg === msg && (entry as unknown as { port: number }).port === port).length;
    assert.equal(count('sandbox connection opened', echo.port), 4, 'two per task, both logged');
    assert.equal(count('sandbox connection refused', declaredOnly.port), 2, 'one per task, logged');
    const left = (await networkFolders()).filter((name) => !foldersBefore.includes(name));
    assert.deepEqual(left, [], "every sandbox's network folder is removed");
  });

  it('an allowed endpoint that does not answer: the connection closes, logged as failed, in the log too', async () => {
    const gone = await loopbackServer('silent');
    const port = gone.port;
    await gone.close();
    const { logger, entries } = recordingLogger('info');
    await startCluster(1, { allowConnect: [`127.0.0.1:${port}`], logger });
    const client = testClient();
    await client.deploy(await netPackage([`127.0.0.1:${port}`]));
    const run = await client.submit('net/js', { targets: [{ host: '127.0.0.1', port }], payload: 'x' });
    const [outcome] = (await run.result()) as unknown[];
    assert.ok(outcome === 'ECONNRESET' || JSON.stringify(outcome) === '{"data":""}', JSON.stringify(outcome));
    const failed = entries.filter((entry) => entry.msg === 'sandbox connection failed');
    assert.deepEqual(
      failed.map((entry) => {
        const { host, port: at, reason } = entry as unknown as { host: string; port: number; reason: string };
        return [host, at, reason];
      }),
      [['127.0.0.1', port, 'ECONNREFUSED']],
    );
    const { logs } = await run.status();
    assert.ok(logs.includes(`network: connection to 127.0.0.1:${port} failed (ECONNREFUSED)`), logs.join(' | '));
  });

  it('a flood of refused and failed connections: a few logged, the rest counted and summed up once', async () => {
    // `connect-flood` declares both; the host has nothing on port 1, so the node's connections fail.
    const probe = connect({ host: '127.0.0.1', port: 1 });
    const [code] = await new Promise<[string]>((resolve) => {
      probe.on('connect', () => resolve(['connected']));
      probe.on('error', (error: NodeJS.ErrnoException) => resolve([error.code ?? error.message]));
    });
    probe.destroy();
    assert.equal(code, 'ECONNREFUSED', 'nothing may listen on 127.0.0.1:1 of the host');
    const { logger, entries } = recordingLogger('info');
    const registry = new Registry();
    const a = await arena({ allowConnect: ['127.0.0.1:1'], logger, metrics: registry });
    const count = 300;
    const targets = [
      { host: 'blocked.example', port: 5432 }, // declared, not allowed by the node: refused
      { host: '127.0.0.1', port: 1 }, // allowed, nothing listens: failed
    ];
    const run = await a.attack('connect-flood', { targets, count });
    // Accepted in the sandbox, closed at once by the node: each one, none lost.
    assert.deepEqual(await run.result(), [{ closed: count }, { closed: count }]);
    // Each connection is reported before the node closes it: every one is in by the result.
    const logged = (msg: string) => entries.filter((entry) => entry.msg === msg);
    assert.equal(logged('sandbox connection refused').length, LOGGED_CONNECTIONS);
    assert.equal(logged('sandbox connection failed').length, LOGGED_CONNECTIONS);
    const metric = (await registry.getSingleMetric('tydra_sandbox_connections_total')?.get())?.values ?? [];
    const counted = Object.fromEntries(metric.map((value) => [value.labels.outcome, value.value]));
    assert.deepEqual(counted, { refused: count, failed: count }, 'the metric counts every one');
    const unlogged = count - LOGGED_CONNECTIONS;
    const summary =
      `network: not logged: ${unlogged} more connections to blocked.example:5432 refused (${count} in all); ` +
      `${unlogged} more connections to 127.0.0.1:1 failed (${count} in all)`;
    // Said when the sandbox's network closes, once the sandbox is gone: after the result.
    const logs = await waitFor('the summary in the log', async () => {
      const { logs: lines } = await run.status();
      return lines.includes(summary) ? lines : undefined;
    });
    const network = logs.filter((line) => line.startsWith('network: '));
    const refused = 'network: connection to blocked.example:5432 refused (not allowed by the node (--allow-connect))';
    const failed = 'network: connection to 127.0.0.1:1 failed (ECONNREFUSED)';
    assert.deepEqual(
      network.filter((line) => line.startsWith('network: connection to ')),
      [
        ...Array.from({ length: LOGGED_CONNECTIONS - 1 }, () => refused),
        `${refused}; more refused connections to blocked.example:5432 are counted, not logged`,
        ...Array.from({ length: LOGGED_CONNECTIONS - 1 }, () => failed),
        `${failed}; more failed connections to 127.0.0.1:1 are counted, not logged`,
      ],
    );
    assert.equal(network.filter((line) => line === summary).length, 1, 'one summary');
    assert.deepEqual(
      logged('sandbox connections not logged').map(
        (entry) => (entry as unknown as { connections: unknown }).connections,
      ),
      [
        [
          { endpoint: 'blocked.example:5432', outcome: 'refused', unlogged, total: count },
          { endpoint: '127.0.0.1:1', outcome: 'failed', unlogged, total: count },
        ],
      ],
    );
    await expectNothingLeft(a, run);
  });

  it('serves a port below 1024 (its own namespace lets the sandbox bind it): JS and a command', async () => {
    assert.equal(process.getuid?.(), 0, 'the escape suite runs as root');
    // A privileged port, as https or postgres-on-a-low-port would be; the first free one.
    const echo = await loopbackServer(
      'echo',
      Array.from({ length: 64 }, (_, i) => 990 - i),
    );
    const endpoint = `127.0.0.1:${echo.port}`;
    await startCluster(1, { allowConnect: ['127.0.0.1:*'] });
    const client = testClient();
    await client.deploy(await netPackage([endpoint]));
    for (const task of ['js', 'py']) {
      const run = await client.submit(`net/${task}`, {
        targets: [{ host: '127.0.0.1', port: echo.port }],
        payload: task,
      });
      assert.deepEqual(await run.result(), [{ data: task }]);
    }
    assert.equal(echo.connections(), 2);
  });

  it('the warm pool never serves a task with a network: it starts cold, its endpoint reachable', async () => {
    const echo = await loopbackServer('echo');
    const allowConnect = [`127.0.0.1:${echo.port}`];
    const [node] = (await startCluster(1, { allowConnect, warmMax: 1 })).nodes;
    assert.ok(node !== undefined);
    const client = testClient();
    await client.deploy(await netPackage(allowConnect));
    // Same version, module and limits: a miss of `undeclared` pools a sandbox `js` could claim.
    assert.deepEqual(await (await client.submit('net/undeclared', { targets: [], payload: '' })).result(), []);
    await waitFor('a pooled sandbox', () => (node.warmPoolStats.ready >= 1 ? true : undefined));
    const before = node.warmPoolStats;
    const run = await client.submit('net/js', { targets: [{ host: '127.0.0.1', port: echo.port }], payload: 'cold' });
    assert.deepEqual(await run.result(), [{ data: 'cold' }]);
    const after = node.warmPoolStats;
    assert.deepEqual([after.hits, after.misses], [before.hits, before.misses], 'the pool was not even asked');
    assert.ok(after.ready >= 1, 'the pooled sandbox is still there, unused');
  });

  it('deploy refuses a malformed network.connect; a node refuses a malformed --allow-connect', async () => {
    await startCluster(0);
    const client = testClient();
    for (const bad of ['db.internal', 'db.internal:0', 'db.internal:65536', 'DB:5432', '10.0.0.1:5432', 'a b:1']) {
      const dir = await netPackage([bad]);
      await assert.rejects(client.deploy(dir), (error: unknown) => {
        assert.ok(error instanceof ManifestError, String(error));
        assert.match(error.message, /`tasks\.js\.network\.connect\[0\]` field of tydra\.json/);
        return true;
      });
    }
    for (const bad of ['*', 'db.*:5432', '*.:1', 'db:port', 'db:08', '']) {
      assert.throws(() => new TydraNode({ redis: redisUrl(), allowConnect: [bad] }), InvalidOptionError);
    }
  });

  it('end to end through the CLI: tydra node --allow-connect, tydra deploy, tydra run', async () => {
    const echo = await loopbackServer('echo');
    await startCluster(0);
    const endpoint = `127.0.0.1:${echo.port}`;
    const node = execa(
      process.execPath,
      [CLI, 'node', '--id', `net-${process.pid}`, '--redis', redisUrl(), '--cache-dir', await tempDir()].concat([
        '--allow-connect',
        endpoint,
        '--log-format',
        'json',
      ]),
      { reject: false, extendEnv: false, env: { PATH: process.env.PATH ?? '' } },
    );
    defer(() => Promise.resolve(node.kill('SIGKILL')));
    const deployed = await tydra(['deploy', await netPackage([endpoint]), '--redis', redisUrl()]);
    assert.equal(deployed.exitCode, 0, deployed.stderr);
    const input = JSON.stringify({ targets: [{ host: '127.0.0.1', port: echo.port }], payload: 'over the CLI' });
    const run = await tydra(['run', 'net/py', '--input', input, '--redis', redisUrl()]);
    assert.equal(run.exitCode, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), [{ data: 'over the CLI' }]);
    node.kill('SIGTERM');
    const exit = await node;
    assert.match(String(exit.stderr), new RegExp(`"port":${echo.port}.*"msg":"sandbox connection opened"`));
  });

  it('a node refuses a malformed --allow-connect at start', async () => {
    const result = await tydra(['node', '--redis', redisUrl(), '--allow-connect', 'db.*:5432']);
    assert.equal(result.exitCode, 1);
    assert.match(
      result.stderr,
      /Expected each `allowConnect` pattern \(--allow-connect\) to be HOST:PORT with a host that is/,
    );
  });
});
