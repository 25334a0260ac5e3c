/**
 * A command's network where the node has no cgroups: its memory limit is an address-space
 * rlimit, which a Node process cannot start under, so the forwarder puts it on the command alone.
 * The command still reaches its endpoint, and still cannot go past its memory limit.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmod, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { DEFAULT_TASK_LIMITS } from '../../../lib/core/limits.js';
import { checkBwrap } from '../../../sandbox/launcher/bwrap.js';
import { findPrlimit } from '../../../sandbox/launcher/rlimits.js';
import { runTask } from '../../../sandbox/launcher/run-task.js';
import { installRuntime } from '../../../sandbox/launcher/runtime-dir.js';
import { defer, tempDir } from '../../helpers.js';

const MiB = 1024 * 1024;

/** Reads one line from the endpoint, then tries to hold `mib` MiB; reports both. */
const PROBE = `import json, socket, sys
job = json.load(sys.stdin)
with socket.create_connection(("127.0.0.1", job["port"]), timeout=5) as s:
    greeting = s.makefile().readline().strip()
try:
    held = bytearray(job["mib"] * 1024 * 1024)
    memory = "held"
except MemoryError:
    memory = "MemoryError"
print(json.dumps({"greeting": greeting, "memory": memory}))
`;

describe('a command with a network, memory bounded by rlimits (no cgroup) (@integration)', function () {
  this.timeout(60_000);

  it('reaches its endpoint under its forwarder, and its own address-space limit still holds', async () => {
    const server = createServer((socket) => socket.end('hello from the host\n')).listen(0, '127.0.0.1');
    await once(server, 'listening');
    defer(() => new Promise((resolve) => server.close(resolve)));
    const { port } = server.address() as { port: number };
    const root = await tempDir();
    await chmod(root, 0o755);
    await writeFile(join(root, 'probe.py'), PROBE, { mode: 0o644 });
    const bwrap = await checkBwrap();
    const runtimeDir = await installRuntime(root);
    const run = (mib: number) =>
      runTask({
        packageDir: root,
        task: { command: ['python3', 'probe.py'] },
        input: { port, mib },
        instanceId: `net-rlimit-${process.pid}-${mib}`,
        attempt: 1,
        limits: { ...DEFAULT_TASK_LIMITS, memoryBytes: 64 * MiB },
        bwrap,
        prlimit: findPrlimit(),
        cgroups: undefined,
        sandboxUser: process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined,
        runtimeDir,
        network: { endpoints: [{ host: '127.0.0.1', port, allowed: true }] },
      });
    assert.deepEqual(await run(1), { greeting: 'hello from the host', memory: 'held' });
    assert.deepEqual(await run(128), { greeting: 'hello from the host', memory: 'MemoryError' });
  });
});
