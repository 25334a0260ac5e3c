/**
 * A parallel task's network: split, each work sandbox and reduce get the endpoints the task
 * declares and the node that runs them allows, from a module and from commands; a declared
 * endpoint the node does not allow is refused in work, said in the unit's log; every network
 * folder goes with its sandbox; each node judges by its own `--allow-connect`. Only loopback
 * servers of the test's own.
 */
import assert from 'node:assert/strict';

import { Registry } from 'prom-client';

import { makePackage, recordingLogger, startCluster, startNode, testClient, waitFor } from '../helpers.js';
import { type Arena, expectNothingLeft, LIMITS } from './harness.js';
import { loopbackServer, networkFolders, ROUND_TRIP_JS } from './network-harness.js';

/** Each phase sends its own payload to `echo`; work also tries `refused`. Outcomes: data or an error code. */
const PARALLEL_JS = `${ROUND_TRIP_JS}export async function* split({ echo, refused, units = 2 }) {
  const got = await roundTrip(echo, 'split');
  for (let unit = 0; unit < units; unit += 1) yield { unit, split: got, echo, refused };
}
export const work = async ({ unit, split, echo, refused }) => ({
  unit,
  split,
  work: await roundTrip(echo, 'work ' + unit),
  refused: refused === null ? null : await roundTrip(refused, 'x'),
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

  it('each node applies its own --allow-connect: work on a node that does not allow the endpoint is refused', async () => {
    const echo = await loopbackServer('echo');
    const endpoint = `127.0.0.1:${echo.port}`;
    const { nodes } = await startCluster(1, { allowConnect: [endpoint] });
    const allowing = nodes[0];
    const denying = await startNode({ allowConnect: [] });
    assert.ok(allowing !== undefined);
    const client = testClient();
    await client.deploy(await parallelNetPackage([endpoint]));
    const units = 60;
    const run = await client.submit('parnet/js', {
      echo: { host: '127.0.0.1', port: echo.port },
      refused: null,
      units,
    });
    type Unit = { unit: number; split: unknown; work: unknown };
    const { results, reduce } = (await run.result()) as { results: Unit[]; reduce: unknown };
    const { logs } = await run.status();
    const coordinator = logs.some((line) => line.startsWith('coordinating') && line.includes(`on node ${allowing.id}`))
      ? allowing
      : denying;
    // Split and reduce ran on the coordinating node (no node was lost): its policy decided for them.
    const phaseOutcome = (payload: string) => (coordinator === allowing ? { data: payload } : { data: '' });
    assert.deepEqual(reduce, phaseOutcome('reduce'));
    const reached = results.filter(
      (result) => JSON.stringify(result.work) === JSON.stringify({ data: `work ${result.unit}` }),
    );
    const refused = results.filter((result) => JSON.stringify(result.work) === '{"data":""}');
    assert.equal(reached.length + refused.length, units, JSON.stringify(results));
    // Each unit ran once (no retries): one node's units reached the endpoint, the other's were refused.
    assert.equal(reached.length, allowing.workunitStats.units, 'units on the allowing node reached it');
    assert.equal(refused.length, denying.workunitStats.units, 'units on the denying node were refused');
    assert.ok(reached.length > 0 && refused.length > 0, `both nodes ran units: ${reached.length}/${refused.length}`);
    assert.deepEqual(results[0]?.split, phaseOutcome('split'));
    const notAllowed = (node: { id: string }) => `[work] network: ${endpoint} is not allowed on node ${node.id}`;
    assert.ok(
      logs.some((line) => line.startsWith(notAllowed(denying))),
      JSON.stringify(logs),
    );
    assert.ok(!logs.some((line) => line.startsWith(notAllowed(allowing))), JSON.stringify(logs));
    assert.equal(echo.connections(), reached.length + (coordinator === allowing ? 2 : 0));
  });
});
