/**
 * `tydra dev`: a whole cluster in one process for local work: a private redis-server (unless a
 * Redis URL is given), a master, N nodes, and the dashboard.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { Registry } from 'prom-client';

import { Dashboard } from './dashboard.js';
import { DEV_CLUSTER_DEFAULTS } from './defaults.js';
import { compileDashboardOptions, DASHBOARD_DEFAULTS, type DashboardUser } from './dashboard-options.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import { Master } from '../master/master.js';
import { TydraNode } from '../node/node.js';
import { defaultSandboxUser } from '../node/options.js';
import { unreachableFolder } from '../core/path-access.js';
import { type RedisServer, startRedisServer } from './redis-server.js';

export interface DevClusterOptions {
  /** Use this Redis instead of starting a private one. */
  redis?: string;
  /** The namespace of every role (`lib/core/namespace.ts`): one Redis may hold several installations. @defaultValue `tydra` */
  namespace?: string;
  /** Nodes to start. @defaultValue 2 */
  nodes?: number;
  /** Project-local folder for Redis data and node caches. @defaultValue `./.tydra` */
  dataDir?: string;
  /** Dashboard port (0 = any free port). @defaultValue 3000 */
  dashboardPort?: number;
  /** Address the dashboard binds; beyond loopback it needs `dashboardAuth` (see `DashboardOptions.host`). @defaultValue `127.0.0.1` */
  dashboardHost?: string;
  /** The dashboard's users (see `DashboardOptions.auth`). @defaultValue none (open, loopback only) */
  dashboardAuth?: DashboardUser[];
  /** Serve the dashboard without authentication even beyond loopback. @defaultValue false */
  insecureNoAuth?: boolean;
  /** Concurrency of each node. @defaultValue 2 */
  nodeConcurrency?: number;
  unsafeNoSandbox?: boolean;
  /** The nodes' secret key (base64 or hex; `TYDRA_SECRET_KEY`), so tasks get their secrets. @defaultValue none */
  secretKey?: string;
  logger?: Logger;
}

export { DEV_CLUSTER_DEFAULTS };

/** The master's drain: its dispatch steps are short, and it only closes once the nodes have drained. */
const DEV_MASTER_DRAIN_MS = 1000;

/** The private redis-server's time to save its append-only file after SIGTERM before SIGKILL. */
const REDIS_STOP_GRACE_MS = 1000;

export interface DevCluster {
  redisUrl: string;
  dashboardUrl: string;
  master: Master;
  nodes: TydraNode[];
  dashboard: Dashboard;
  /** The one prom-client registry of the master, the nodes and the dashboard: its `/metrics` shows them all. */
  metrics: Registry;
  /**
   * Stops the nodes (each within its drain timeout plus 5 s), then the master (1 s drain) and the
   * dashboard, then the private redis-server, last. `force: true` force-closes
   * the roles (see `TydraNode.close`), also while a graceful close is under way. Idempotent.
   */
  close(options?: { force?: boolean }): Promise<void>;
}

/**
 * `<dataDir>/cache`, unless the node's sandbox user (nobody, when running as root) could not
 * reach it, as in a clone under `/root`: then a folder under `/var/cache/tydra/dev-<hash>`,
 * one per data folder.
 */
async function devCacheRoot(dataDir: string, logger: Logger): Promise<string> {
  const local = join(dataDir, 'cache');
  const user = defaultSandboxUser();
  if (user === undefined) {
    return local;
  }
  await mkdir(local, { recursive: true, mode: 0o755 });
  if ((await unreachableFolder(local, user.uid, user.gid)) === undefined) {
    return local;
  }
  const shared = join('/var/cache/tydra', `dev-${createHash('sha1').update(dataDir).digest('hex').slice(0, 12)}`);
  logger.info(
    { cacheDir: shared, reason: `${local} is not reachable by the sandbox user` },
    'node caches go to /var/cache/tydra',
  );
  return shared;
}

/** The dashboard's options, with the namespace the roles share: compiled before anything starts. */
function devDashboardOptions(options: DevClusterOptions, namespace: { namespace?: string }) {
  return {
    ...namespace,
    port: options.dashboardPort ?? DEV_CLUSTER_DEFAULTS.dashboardPort,
    host: options.dashboardHost ?? DASHBOARD_DEFAULTS.host,
    ...(options.dashboardAuth !== undefined && options.dashboardAuth.length > 0 ? { auth: options.dashboardAuth } : {}),
    insecureNoAuth: options.insecureNoAuth ?? false,
  };
}

export async function startDevCluster(options: DevClusterOptions = {}): Promise<DevCluster> {
  const logger = options.logger ?? silentLogger();
  const dataDir = resolve(options.dataDir ?? DEV_CLUSTER_DEFAULTS.dataDir);
  const nodeCount = options.nodes ?? DEV_CLUSTER_DEFAULTS.nodes;
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 64) {
    throw new TypeError(`Expected the \`nodes\` option to be an integer from 1 to 64, got \`${String(nodeCount)}\``);
  }
  const namespace = options.namespace === undefined ? {} : { namespace: options.namespace };
  // Refuse an unsafe dashboard or a bad namespace before anything starts (a redis-server would outlive the throw).
  const dashboardOptions = devDashboardOptions(options, namespace);
  compileDashboardOptions(dashboardOptions);
  let redisServer: RedisServer | undefined;
  let redisUrl = options.redis;
  if (redisUrl === undefined) {
    // Its own process group: the terminal's Ctrl-C reaches `tydra dev` (which drains the roles
    // first) but not redis-server, which would otherwise exit under the running roles.
    redisServer = await startRedisServer({
      dir: join(dataDir, 'redis'),
      ownProcessGroup: true,
      stopGraceMs: REDIS_STOP_GRACE_MS,
    });
    redisUrl = redisServer.url;
    logger.info({ url: redisUrl, dir: join(dataDir, 'redis') }, 'started a private redis-server');
  }
  // One registry for every role: the dashboard's `/metrics` shows them all.
  const shared = { redis: redisUrl, ...namespace, logger, metrics: new Registry() };
  const master = new Master({ ...shared, drainTimeoutMs: DEV_MASTER_DRAIN_MS });
  const cacheRoot = await devCacheRoot(dataDir, logger);
  const nodes = Array.from(
    { length: nodeCount },
    (_, index) =>
      new TydraNode({
        ...shared,
        id: `dev-${index + 1}`,
        concurrency: options.nodeConcurrency ?? DEV_CLUSTER_DEFAULTS.nodeConcurrency,
        cacheDir: join(cacheRoot, `dev-${index + 1}`),
        unsafeNoSandbox: options.unsafeNoSandbox ?? false,
        ...(options.secretKey !== undefined ? { secretKey: options.secretKey } : {}),
      }),
  );
  const dashboard = new Dashboard({ ...shared, ...dashboardOptions });
  let closing: Promise<void> | undefined;
  const close = (closeOptions: { force?: boolean } = {}): Promise<void> => {
    const force = closeOptions.force ?? false;
    const nodesClosed = Promise.allSettled(nodes.map((node) => node.close({ force })));
    // The master outlives the nodes' drain: it completes the TaskInstances they finish. Redis
    // goes last: the roles' closes (final job states, re-routing) need it.
    closing ??= nodesClosed
      .then(() => Promise.allSettled([dashboard.close(), master.close({ force })]))
      .then(() => redisServer?.stop());
    return closing;
  };
  try {
    await master.start();
    await Promise.all(nodes.map((node) => node.start()));
    const dashboardUrl = await dashboard.start();
    return { redisUrl, dashboardUrl, master, nodes, dashboard, metrics: shared.metrics, close };
  } catch (error) {
    await close();
    throw error;
  }
}
