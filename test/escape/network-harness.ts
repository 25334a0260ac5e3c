/** Loopback servers of a test's own and the node's network folders, for the network tests. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { defer } from '../helpers.js';

/** A loopback TCP server that echoes, or with `silent` only counts; both count connections. */
export async function loopbackServer(
  mode: 'echo' | 'silent',
  ports: readonly number[] = [0],
): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections += 1;
    socket.on('error', () => undefined);
    if (mode === 'echo') {
      socket.pipe(socket);
    } else {
      socket.end();
    }
  });
  for (const port of ports) {
    server.listen(port, '127.0.0.1');
    const [error] = (await Promise.race([once(server, 'listening'), once(server, 'error')])) as [Error?];
    if (error === undefined) {
      break;
    }
  }
  assert.ok(server.listening, `no free port among ${ports.join(', ')}`);
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  defer(() => (server.listening ? close() : Promise.resolve()));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { port: address.port, connections: () => connections, close };
}

/** The per-sandbox folders of the node side of the network (`sandbox/launcher/network/`), in every parent. */
export async function networkFolders(): Promise<string[]> {
  const parents = (await readdir(tmpdir())).filter((name) => name.startsWith('tydra-net-'));
  const folders = await Promise.all(
    parents.map(async (parent) =>
      (await readdir(join(tmpdir(), parent)).catch(() => [])).map((name) => `${parent}/${name}`),
    ),
  );
  return folders.flat();
}

/**
 * The opening of a task module (JavaScript source) that defines `roundTrip({ host, port }, payload)`:
 * it sends `payload`, reads until the peer ends, and resolves with `{ data }` or the error code.
 */
export const ROUND_TRIP_JS = `import { connect } from 'node:net';
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
`;
