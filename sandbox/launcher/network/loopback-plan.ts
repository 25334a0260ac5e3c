/**
 * Where each endpoint of a task lives inside its sandbox, as pure data: the loopback address the
 * in-sandbox forwarder listens on, the `/etc/hosts` that makes the task's host names resolve
 * there, and the forwarder's config.
 *
 * - `localhost` is 127.0.0.1, and a loopback IPv4 literal is itself: the sandbox's loopback is
 *   its own, so the task's `127.0.0.1:5432` is tydra's forwarder, never the host's.
 * - Every other host name gets an address of its own in 127.1.0.0/16 (127.1.0.1, 127.1.0.2, …,
 *   skipping any the task wrote as a literal), so two names on the same port stay apart.
 */
import { isIpv4 } from '../../../lib/core/network-endpoint.js';

/** The Unix sockets and files of a sandbox's network, as seen inside it. */
export const NETWORK_MOUNT = '/run/tydra-net';

/** One endpoint of a TaskInstance and whether the node allows it. */
export interface EndpointAccess {
  host: string;
  port: number;
  /** false: declared but not allowed by the node; connections to it are accepted, logged and closed. */
  allowed: boolean;
}

/**
 * One listener on the sandbox's loopback. Endpoints that land on the same address and port
 * (`localhost:5432` and `127.0.0.1:5432`) share it: it forwards to the first of them the node
 * allows, or is refused when it allows none.
 */
export interface PlacedEndpoint extends EndpointAccess {
  address: string;
  /** File name of its Unix socket, in the network folder. */
  socket: string;
}

/** What `sandbox/runner/loopback-forwarder.ts` reads. */
export interface ForwarderConfig {
  listen: Array<{ address: string; port: number; socket: string }>;
  /** Variables set for the forwarder process alone, removed from the command's environment. */
  unsetEnv?: string[];
  /** argv put before the command (its rlimits). */
  commandPrefix?: string[];
}

export interface LoopbackPlan {
  endpoints: PlacedEndpoint[];
  hosts: string;
  /** For the forwarder; socket paths as seen inside the sandbox. */
  forwarder: ForwarderConfig;
}

/** Places `endpoints` (distinct, checked by the manifest schema) on the sandbox's loopback. */
export function loopbackPlan(endpoints: readonly EndpointAccess[]): LoopbackPlan {
  const literals = new Set(endpoints.filter((endpoint) => isIpv4(endpoint.host)).map((endpoint) => endpoint.host));
  const named = new Map<string, string>([['localhost', '127.0.0.1']]);
  let next = 0;
  const addressOf = (host: string): string => {
    if (isIpv4(host)) {
      return host;
    }
    let address = named.get(host);
    while (address === undefined) {
      // Last octets 1 to 254: neither a network nor a broadcast-looking address.
      const candidate = `127.1.${Math.floor(next / 254)}.${(next % 254) + 1}`;
      next += 1;
      if (!literals.has(candidate)) {
        address = candidate;
        named.set(host, candidate);
      }
    }
    return address;
  };
  const listeners = new Map<string, PlacedEndpoint>();
  for (const endpoint of endpoints) {
    const address = addressOf(endpoint.host);
    const key = `${address}:${endpoint.port}`;
    const known = listeners.get(key);
    if (known === undefined) {
      listeners.set(key, { ...endpoint, address, socket: `${listeners.size}.sock` });
    } else if (!known.allowed && endpoint.allowed) {
      listeners.set(key, { ...endpoint, address, socket: known.socket });
    }
  }
  const placed = [...listeners.values()];
  const hosts = [...named].map(([name, address]) => `${address}\t${name}\n`).join('');
  const listen = placed.map(({ address, port, socket }) => ({ address, port, socket: `${NETWORK_MOUNT}/${socket}` }));
  return { endpoints: placed, hosts, forwarder: { listen } };
}
