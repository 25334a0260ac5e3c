/**
 * The in-sandbox half of a task's network (`sandbox/launcher/network/`): listens on each
 * endpoint's loopback address and port inside the sandbox's own network namespace (the generated
 * `/etc/hosts` maps each declared host name to its address) and pipes every connection it
 * accepts to that endpoint's Unix socket, where the node forwards it to the real host or refuses
 * it. So a task connects exactly as written, in any language, with no proxy settings.
 *
 * A JavaScript task's runner runs it in its own process (`main.ts`: no second Node process, no
 * memory or threads taken from the task's limits); a command runs under `forwarder.ts`.
 */
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';

/** What the launcher writes (`ForwarderConfig` in `sandbox/launcher/network/loopback-plan.ts`). */
export interface ForwarderConfig {
  listen: Array<{ address: string; port: number; socket: string }>;
  /** Variables set for the forwarder process alone, removed from the command's environment. */
  unsetEnv?: string[];
  /** argv put before the command: `prlimit --as=N --`, limits the forwarder itself could not start under. */
  commandPrefix?: string[];
}

export function readForwarderConfig(path: string): ForwarderConfig {
  return JSON.parse(readFileSync(path, 'utf8')) as ForwarderConfig;
}

function pipeTo(socketPath: string, client: Socket): void {
  const upstream = connect({ path: socketPath, allowHalfOpen: true });
  const close = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
  client.on('close', close);
  upstream.on('close', close);
  client.pipe(upstream);
  upstream.pipe(client);
}

function listen(entry: ForwarderConfig['listen'][number]): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (client) => pipeTo(entry.socket, client));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: entry.address, port: entry.port, exclusive: true }, () => {
      // The servers must not keep a finished task's process alive.
      server.unref();
      resolve(server);
    });
  });
}

/** Resolves once every endpoint is listened on; rejects (EADDRINUSE…) when one cannot be. */
export async function forwardLoopback(config: ForwarderConfig): Promise<void> {
  await Promise.all(config.listen.map((entry) => listen(entry)));
}
