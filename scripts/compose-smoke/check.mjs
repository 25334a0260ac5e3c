// Run by compose-smoke.sh inside a one-off container of tydra's image on the compose network
// (`node /smoke/check.mjs HOST...`, workdir /app): checks that the nodes HOST... (the node
// replicas' hostnames, i.e. their container ids) are alive with distinct ids, deploys the probe
// package, runs RUNS TaskInstances of probe/where and checks that each ran in a bubblewrap
// sandbox on one of those nodes. Prints one line per TaskInstance; exits 1 on any mismatch.
import { Tydra } from '/app/dist/lib/index.js';

const RUNS = 6;
const hosts = process.argv.slice(2);
const failures = [];
const expect = (ok, message) => {
  if (!ok) {
    failures.push(message);
  }
};

const tydra = new Tydra({ redis: process.env.TYDRA_REDIS_URL });
try {
  const alive = (await tydra.nodes()).filter((n) => n.alive && hosts.includes(n.hostname));
  const ids = new Set(alive.map((n) => n.id));
  console.log(`nodes alive on the ${hosts.length} node containers: ${[...ids].join(', ')}`);
  expect(ids.size === hosts.length, `expected ${hosts.length} distinct alive node ids, got ${ids.size}`);

  const { ref } = await tydra.deploy('/smoke/probe');
  console.log(`deployed ${ref}`);
  const runs = await Promise.all(Array.from({ length: RUNS }, () => tydra.submit('probe/where', null)));
  const seen = new Set();
  for (const run of runs) {
    const r = await run.result({ timeoutMs: 60_000 });
    const { nodeId } = await run.status();
    run.close();
    seen.add(nodeId);
    console.log(
      `${run.id.slice(0, 8)} on ${nodeId}: uid ${r.uid}, uid_map "${r.uidMap}", CapEff ${r.capEff}, ` +
        `NoNewPrivs ${r.noNewPrivs}, pid ${r.pid}, hostname ${r.hostname}`,
    );
    expect(ids.has(nodeId), `${run.id} ran on ${nodeId}, not on one of the node containers`);
    // The sandbox: uid 65534 in its own user namespace, no capabilities, no_new_privs, a low pid
    // in its own pid namespace, and bwrap's hostname in its own UTS namespace.
    expect(r.uid === 65534, `${run.id}: expected uid 65534 in the sandbox, got ${r.uid}`);
    expect(r.capEff === '0000000000000000', `${run.id}: expected no capabilities, got CapEff ${r.capEff}`);
    expect(r.noNewPrivs === '1', `${run.id}: expected NoNewPrivs 1, got ${r.noNewPrivs}`);
    expect(r.pid < 10, `${run.id}: expected a pid below 10 in the sandbox's pid namespace, got ${r.pid}`);
    expect(r.hostname === 'tydra-sandbox', `${run.id}: expected hostname tydra-sandbox, got ${r.hostname}`);
  }
  console.log(`${RUNS} TaskInstances ran on ${seen.size} of the ${ids.size} nodes`);
} catch (error) {
  failures.push(error.stack ?? String(error));
} finally {
  await tydra.close();
}
for (const failure of failures) {
  console.error(`FAIL: ${failure}`);
}
process.exit(failures.length === 0 ? 0 : 1);
