/**
 * The host half of a task's network. The sandbox keeps `--unshare-net` (its own namespace with
 * only a loopback, no route anywhere); for each endpoint of the task the node listens on a Unix
 * socket in a private folder bound into the sandbox at `/run/tydra-net`, and forwards each
 * connection accepted there to the real `host:port` when the node allows it, or closes it when
 * not, reporting every one (`onConnection`). Inside, `forwarder.js` listens on the endpoint's
 * loopback address and pipes to that socket, and a generated `/etc/hosts` makes the task's host
 * names resolve to those addresses (`loopback-plan.ts`).
 *
 * Ports below 1024 (443…): a new network namespace only lets privileged processes bind them, and
 * the sandbox has no capability. Its namespace is its own, so before the task starts the node
 * (root) lowers `net.ipv4.ip_unprivileged_port_start` to 0 in that namespace alone, with
 * `nsenter --net=/proc/<sandbox>/ns/net sysctl` (`beforeStart`). A node that is not root cannot,
 * and serves no such endpoint (`lib/node/network/task-network.ts` says so in the TaskInstance's log).
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { FORWARDER_FILE } from '../runtime-dir.js';
import { type EndpointAccess, loopbackPlan, NETWORK_MOUNT, type PlacedEndpoint } from './loopback-plan.js';
import { networkFolderPrefix } from './stale-folders.js';

/** One connection the task made, as the node reports it. */
export interface ConnectionEvent {
  host: string;
  port: number;
  /** opened: forwarded; refused: the node does not allow the endpoint; failed: the host could not be reached. */
  outcome: 'opened' | 'refused' | 'failed';
  /** Why it failed (an errno code such as ECONNREFUSED), or why it was refused. */
  reason?: string;
}

export interface SandboxNetworkOptions {
  /** The task's endpoints (distinct), each allowed by the node or not. */
  endpoints: readonly EndpointAccess[];
  /** Each connection, as it is opened, refused or failed; a task controls how often: keep it cheap. */
  onConnection?: (event: ConnectionEvent) => void;
  /** Once, when the network is closed: no `onConnection` comes after. */
  onClose?: () => void;
}

/** What the launcher adds to a sandbox that has a network. */
export interface SandboxNetwork {
  /** bwrap mounts: the folder of Unix sockets and the generated `/etc/hosts`, read-only. */
  mountArgs: string[];
  /** The argv to start in the sandbox: the runner told where its network is, or the forwarder running `command`. */
  wrap: (command: readonly string[], nodePath: string, runtimeMount: string) => string[];
  /** Run once the sandbox exists and before its task starts (bwrap's block fd). */
  beforeStart: (sandboxPid: number) => Promise<void>;
  /** Stops listening, drops every live connection and removes the folder. Idempotent. */
  close: () => Promise<void>;
}

const PRIVILEGED_PORTS = 1024;
/** Connections one sandbox may have open through the node at once. */
const MAX_CONNECTIONS = 256;
const execFileAsync = promisify(execFile);

/** The sandbox a network is opened for. */
export interface NetworkSandbox {
  /** A JavaScript task: its runner serves the endpoints itself; a command runs under the forwarder. */
  isModule: boolean;
  sandboxUser: { uid: number; gid: number } | undefined;
  /** The submission's environment variables (one may set what the forwarder sets for itself). */
  env: Readonly<Record<string, string>> | undefined;
  /**
   * For a command: what the forwarder runs it under (`prlimit --as=N --`, the memory fallback
   * without a cgroup, which the forwarder itself could not start under). Must be a path the
   * sandbox sees (`/usr`, `/bin`…). @defaultValue none
   */
  commandRlimits?: readonly string[];
}

/**
 * A command's forwarder is a Node process of its own, in the task's cgroup: its threads count
 * toward the task's `pids` limit, its memory toward `memoryBytes`. One V8 worker and one libuv
 * worker (instead of 4 + 4) bring it from 11 threads to 5; a small heap, since it only pipes bytes.
 */
const FORWARDER_THREADS = 'UV_THREADPOOL_SIZE';

/** Creates the folder, the Unix sockets and the files of a sandbox's network. */
export async function openSandboxNetwork(
  options: SandboxNetworkOptions,
  sandbox: NetworkSandbox,
): Promise<SandboxNetwork> {
  const { isModule, sandboxUser } = sandbox;
  const ownThreads = !isModule && sandbox.env?.[FORWARDER_THREADS] === undefined;
  const report = options.onConnection ?? (() => undefined);
  const canLowerPorts = process.getuid?.() === 0;
  // Not root: no port below 1024 can be served in the sandbox, so none is listened on.
  const endpoints = options.endpoints.filter((endpoint) => canLowerPorts || endpoint.port >= PRIVILEGED_PORTS);
  const plan = loopbackPlan(endpoints);
  const forwarderConfig = {
    ...plan.forwarder,
    ...(ownThreads ? { unsetEnv: [FORWARDER_THREADS] } : {}),
    ...(!isModule && sandbox.commandRlimits?.length ? { commandPrefix: [...sandbox.commandRlimits] } : {}),
  };
  const dir = await privateFolder();
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      try {
        sockets.forEach((socket) => socket.destroy());
        await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
        await rm(dir, { recursive: true, force: true });
      } finally {
        options.onClose?.();
      }
    })();
    return closing;
  };
  try {
    for (const endpoint of plan.endpoints) {
      servers.push(await serveEndpoint(join(dir, endpoint.socket), endpoint, sockets, report, sandboxUser));
    }
    await writeFile(join(dir, 'hosts'), plan.hosts, { mode: 0o644 });
    await writeFile(join(dir, 'forwarder.json'), JSON.stringify(forwarderConfig), { mode: 0o644 });
  } catch (error) {
    await close();
    throw error;
  }
  const lowPorts = canLowerPorts && plan.endpoints.some((endpoint) => endpoint.port < PRIVILEGED_PORTS);
  return {
    mountArgs: ['--ro-bind', dir, NETWORK_MOUNT, '--ro-bind', join(dir, 'hosts'), '/etc/hosts'],
    wrap: (command, nodePath, runtimeMount) =>
      isModule
        ? [...command, `${NETWORK_MOUNT}/forwarder.json`]
        : [
            ...(ownThreads ? ['/usr/bin/env', `${FORWARDER_THREADS}=1`] : []),
            ...[nodePath, '--v8-pool-size=1', '--max-old-space-size=16', '--max-semi-space-size=1'],
            `${runtimeMount}/${FORWARDER_FILE}`,
            `${NETWORK_MOUNT}/forwarder.json`,
            ...command,
          ],
    beforeStart: (sandboxPid) => (lowPorts ? allowLowPorts(sandboxPid) : Promise.resolve()),
    close,
  };
}

/** This process's parent of the network folders, made once (see {@link privateFolder}). */
let parentFolder: Promise<string> | undefined;

/**
 * A fresh folder for one sandbox's network, in a parent this process made with `mkdtemp` (so no
 * other user can have planted it) and that no one else can list (0711): the folder is the node's
 * own, 0711 too, so the sandbox user may reach the sockets and files it knows the names of but
 * change nothing there, and another host user would have to guess a random name. Each socket is
 * the sandbox user's, mode 0600. The parent goes when the process exits, or, if it was killed,
 * at the next node's start (`stale-folders.ts`).
 */
async function privateFolder(): Promise<string> {
  parentFolder ??= mkdtemp(join(tmpdir(), networkFolderPrefix())).then(async (parent) => {
    await chmod(parent, 0o711);
    process.once('exit', () => rmSync(parent, { recursive: true, force: true }));
    return parent;
  });
  const dir = join(await parentFolder, randomUUID());
  await mkdir(dir, { mode: 0o711 });
  await chmod(dir, 0o711);
  return dir;
}

async function serveEndpoint(
  path: string,
  endpoint: PlacedEndpoint,
  sockets: Set<Socket>,
  report: (event: ConnectionEvent) => void,
  sandboxUser: { uid: number; gid: number } | undefined,
): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (inner) => {
    const { host, port } = endpoint;
    if (!endpoint.allowed) {
      report({ host, port, outcome: 'refused', reason: 'not allowed by the node (--allow-connect)' });
      inner.destroy();
      return;
    }
    if (sockets.size >= 2 * MAX_CONNECTIONS) {
      // Each one holds two of the node's file descriptors: a task may not exhaust them.
      report({ host, port, outcome: 'refused', reason: `more than ${MAX_CONNECTIONS} connections at once` });
      inner.destroy();
      return;
    }
    forward(inner, endpoint, sockets, report);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  await chmod(path, 0o600);
  if (sandboxUser !== undefined) {
    await chown(path, sandboxUser.uid, sandboxUser.gid);
  }
  return server;
}

/** Pipes one connection from the sandbox to the real endpoint, both ways, half-close included. */
function forward(
  inner: Socket,
  endpoint: PlacedEndpoint,
  sockets: Set<Socket>,
  report: (event: ConnectionEvent) => void,
): void {
  const { host, port } = endpoint;
  const outer = connect({ host, port, allowHalfOpen: true });
  sockets.add(inner).add(outer);
  let opened = false;
  const close = (): void => {
    inner.destroy();
    outer.destroy();
    sockets.delete(inner);
    sockets.delete(outer);
  };
  outer.once('connect', () => {
    opened = true;
    report({ host, port, outcome: 'opened' });
  });
  outer.on('error', (error: NodeJS.ErrnoException) => {
    if (!opened) {
      report({ host, port, outcome: 'failed', reason: error.code ?? error.message });
    }
    close();
  });
  inner.on('error', close);
  inner.on('close', close);
  outer.on('close', close);
  inner.pipe(outer);
  outer.pipe(inner);
}

/** Lets unprivileged processes bind any port in the sandbox's own network namespace (root only). */
function allowLowPorts(sandboxPid: number): Promise<void> {
  const args = [
    `--net=/proc/${sandboxPid}/ns/net`,
    '--',
    'sysctl',
    '-q',
    '-w',
    'net.ipv4.ip_unprivileged_port_start=0',
  ];
  return execFileAsync('nsenter', args, { timeout: 5000 }).then(() => undefined);
}
