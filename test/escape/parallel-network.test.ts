/**
 * A parallel task's network: split, each work sandbox and reduce get the endpoints the task
 * declares and the node that runs them allows, from a module and from commands; a declared
 * endpoint the node does not allow is refused in work, said in the unit's log; every network
 * folder goes with its sandbox. Only loopback servers of the test's own.
 */
import assert from 'node:assert/strict';

import { Registry } from 'prom-client';

import { makePackage, recordingLogger, startCluster, testClient, waitFor } from '../helpers.js';
import { type Arena, expectNothingLeft, LIMITS } from './harness.js';
import { loopbackServer, networkFolders } from './network-harness.js';

/** Each phase sends its own payload to `echo`; work also tries `refused`. Outcomes: data or an error code. */
const PARALLEL_JS = `import { connect } from 'node:net';
const roundTrip = ({ host, port }, payload) =>
  new Promise((resolve) => {
    const socket = connect({ host, port });
    let data = '';
    const done = (outcome) => { socket.destroy(); resolve(outcome); };
    socket.setTimeout(3000, () => done('timeout'));
    socket.on('connect', () => socket.end(payload));
    socket.on('data', (chunk) => { data += chunk; });
    socket.on('end', () => done({ data }));
    socket.on('error', (error) => done(error.code ?? error.message));
  });
export async function* split({ echo, refused }) {
  const got = await roundTrip(echo, 'split');
  for (const unit of [0, 1]) yield { unit, split: got, echo, refused };
}
export const work = async ({ unit, split, echo, refused }) => ({
  unit,
  split,
  work: await roundTrip(echo, 'work ' + unit),
  refused: await roundTrip(refused, 'x'),
});
export async function reduce(results, { echo }) {
  const all = [];
  for await (const result of results) all.push(result);
  return { results: all, reduce: await roundTrip(echo, 'reduce') };
}
`;

/** The same as commands: `phase.py split|work|reduce` (one JSON line per unit and result). */
const PARALLEL_PY = `import json, socket, sys
def round_trip(target, payload):
    try:
        s = socket.create_connection((target["host"], target["port"]), timeout=3)
        s.sendall(payload.encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        return {"data": data.decode()}
    except OSError as error:
        return error.__class__.__name__
mode = sys.argv[1]
if mode == "split":
    job = json.loads(sys.stdin.readline())
    got = round_trip(job["echo"], "split")
    for unit in (0, 1):
        print(json.dumps({"unit": unit, "split": got, "echo": job["echo"], "refused": job["refused"]}), flush=True)
elif mode == "work":
    for line in sys.stdin:
        if line.strip():
            u = json.loads(line)
            work = round_trip(u["echo"], "work %d" % u["unit"])
            refused = round_trip(u["refused"], "x")
            print(json.dumps({"unit": u["unit"], "split": u["split"], "work": work, "refused": refused}), flush=True)
else:
    job = json.loads(sys.stdin.readline())
    results = [json.loads(line) for line in sys.stdin if line.strip()]
    print(json.dumps({"results": results, "reduce": round_trip(job["echo"], "reduce")}))
`;

async function parallelNetPackage(connect: string[]): Promise<string> {
  const network = { connect };
  const phase = (mode: string) => ({ command: ['python3', 'phase.py', mode] });
  const manifest = {
    name: 'parnet',
    limits: LIMITS,
    tasks: {
      js: { kind: 'parallel', module: 'phases.mjs', network },
      py: { kind: 'parallel', split: phase('split'), work: phase('work'), reduce: phase('reduce'), network },
    },
  };
  return makePackage({ 'tydra.json': JSON.stringify(manifest), 'phases.mjs': PARALLEL_JS, 'phase.py': PARALLEL_PY });
}

/** `tydra_sandbox_connections_total` of `outcome` in `registry` (0 when not counted yet). */
async function connectionCount(registry: Registry, outcome: string): Promise<number> {
  const metric = (await registry.getSingleMetric('tydra_sandbox_connections_total')?.get())?.values ?? [];
  return metric.filter((value) => value.labels.outcome === outcome).reduce((sum, value) => sum + value.value, 0);
}

describe('escape: network of a parallel task, in split, work and reduce @integration', function () {
  this.timeout(120_000);

  it('each phase reaches an allowed endpoint; a declared, not allowed one is refused in work, in its unit log', async () => {
    const foldersBefore = await networkFolders();
    const echo = await loopbackServer('echo');
    const declaredOnly = await loopbackServer('silent');
    const { logger, entries } = recordingLogger('info');
    const registry = new Registry();
    const { nodes } = await startCluster(1, { allowConnect: [`127.0.0.1:${echo.port}`], logger, metrics: registry });
    const client = testClient();
    const refusedAt = `127.0.0.1:${declaredOnly.port}`;
    await client.deploy(await parallelNetPackage([`127.0.0.1:${echo.port}`, refusedAt]));
    const input = {
      echo: { host: '127.0.0.1', port: echo.port },
      refused: { host: '127.0.0.1', port: declaredOnly.port },
    };
    const unit = (index: number) => ({
      unit: index,
      split: { data: 'split' },
      work: { data: `work ${index}` },
      // Declared but refused: tydra accepts in the sandbox, the node closes at once (no data).
      refused: { data: '' },
    });
    for (const task of ['js', 'py']) {
      const run = await client.submit(`parnet/${task}`, input);
      assert.deepEqual(await run.result(), { results: [unit(0), unit(1)], reduce: { data: 'reduce' } }, task);
      const { logs } = await run.status();
      const notAllowed = `network: ${refusedAt} is not allowed on node ${nodes[0]?.id}`;
      for (const phase of ['[split]', '[work]', '[reduce]']) {
        assert.ok(
          logs.some((line) => line.startsWith(`${phase} ${notAllowed}`)),
          `${task}: ${phase} says ${refusedAt} is not allowed, in ${JSON.stringify(logs)}`,
        );
      }
      for (const index of [0, 1]) {
        const refusedLine = `[workunit ${index}] network: connection to ${refusedAt} refused`;
        assert.ok(
          logs.some((line) => line.startsWith(refusedLine)),
          `${task}: ${refusedLine} in ${JSON.stringify(logs)}`,
        );
      }
      await expectNothingLeft({ node: nodes[0] } as Arena, run);
    }
    // Per task: split, two units and reduce, one connection each.
    assert.equal(echo.connections(), 8, 'the echo server saw every round trip of each phase, no more');
    assert.equal(declaredOnly.connections(), 0, 'the refused endpoint never saw a connection');
    const logged = (msg: string, port: number) =>
      entries.filter((entry) => entry.msg === msg && (entry as unknown as { port: number }).port === port).length;
    assert.equal(logged('sandbox connection opened', echo.port), 8, 'every connection opened is logged');
    assert.equal(logged('sandbox connection refused', declaredOnly.port), 4, 'every refusal is logged');
    assert.equal(await connectionCount(registry, 'opened'), 8);
    assert.equal(await connectionCount(registry, 'refused'), 4);
    // Work sandboxes outlive their units; they close, with their networks, when the instance ends.
    await waitFor("every phase sandbox's network folder to be removed", async () => {
      const left = (await networkFolders()).filter((name) => !foldersBefore.includes(name));
      return left.length === 0 ? true : undefined;
    });
  });
});
