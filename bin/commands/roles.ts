/**
 * The long-running commands: `dev`, `master`, `node`, `dashboard`. Each maps its flags to the
 * options object of one library class; defaults shown in `--help` come from the options modules,
 * and the class validates (an `InvalidOptionError` ends the command with one line). The role's
 * class (and with it BullMQ, Express, …) is imported when the command runs: `--help` stays fast.
 */
import { fileURLToPath } from 'node:url';

import { type Command, Option } from 'commander';

import { CLIENT_DEFAULTS } from '../../lib/client/defaults.js';
import { FORCE_CLOSE_MS } from '../../lib/core/bounded-close.js';
import { InvalidOptionError } from '../../lib/core/errors.js';
import {
  DEFAULT_MAX_TASK_LIMITS,
  DEFAULT_TASK_LIMITS,
  formatBytes,
  formatDuration,
  limitFlagOf,
  type LimitName,
  type TaskLimits,
} from '../../lib/core/limit-values.js';
import { MASTER_DEFAULTS } from '../../lib/master/defaults.js';
import { NODE_DEFAULTS } from '../../lib/node/defaults.js';
import { DASHBOARD_DEFAULTS, DEV_CLUSTER_DEFAULTS } from '../../lib/ops/defaults.js';
import { redactRedisUrl } from '../../lib/redis/url.js';
import { env, onShutdown, namespaceOption, redisOption, secretKeyOf, waitForever, withClient } from '../cli/common.js';
import {
  DASHBOARD_AUTH_HELP,
  dashboardAuthFromEnv,
  insecureNoAuthOption,
  logFormatOption,
  roleLogger,
} from '../cli/role-flags.js';
import { ProgressBar } from '../cli/progress.js';
import { bytesOf, collectLimits, integer, LIMIT_FLAG_NAMES, stripUndefined, userValue } from '../cli/parse.js';

const EXAMPLES_DIR = fileURLToPath(new URL('../../../examples/', import.meta.url));

/** `--name <value>` parsed by `parse`, defaulting to (and showing) the library's default. */
const defaulted = (
  flags: string,
  description: string,
  parse: (text: string) => number,
  value: number,
  shown?: string,
) => new Option(flags, description).argParser(parse).default(value, shown);

/** Adds `--metrics-port` and `--metrics-host` (a master's or a node's `/metrics`) to `command`. */
const withMetricsOptions = (command: Command, host: string): Command =>
  command
    .option(
      '--metrics-port <port>',
      'serve Prometheus metrics at GET /metrics on this port (0 = any free port)',
      integer,
    )
    .option('--metrics-host <host>', 'address the metrics endpoint binds to (it has no authentication)', host);

export function registerRoles(program: Command): void {
  registerDev(program);
  registerMaster(program);
  registerNode(program);
  registerDashboard(program);
}

interface DevFlags {
  redis?: string;
  namespace: string;
  nodes: number;
  port: number;
  dataDir: string;
  demo?: boolean;
  exit?: boolean;
  unsafeNoSandbox?: boolean;
  host: string;
  insecureNoAuth?: boolean;
  logFormat: string;
}

function registerDev(program: Command): void {
  program
    .command('dev')
    .description('start a local cluster: a private redis-server (unless --redis), a master, N nodes and the dashboard')
    .option('--redis <url>', 'use this Redis instead of starting a private one (env TYDRA_REDIS_URL)')
    .addOption(namespaceOption())
    .addOption(defaulted('-n, --nodes <n>', 'nodes to start', integer, DEV_CLUSTER_DEFAULTS.nodes))
    .addOption(defaulted('-p, --port <port>', 'dashboard port (0 = any free port)', integer, DASHBOARD_DEFAULTS.port))
    .option(
      '--host <host>',
      `dashboard address to bind; beyond loopback it needs credentials (${DASHBOARD_AUTH_HELP})`,
      DASHBOARD_DEFAULTS.host,
    )
    .addOption(insecureNoAuthOption())
    .option('--data-dir <dir>', 'project-local folder for Redis data and node caches', DEV_CLUSTER_DEFAULTS.dataDir)
    .option('--demo', 'deploy the example packages, run a task of each and print the results')
    .option('--exit', 'with --demo: stop the cluster after the demo instead of waiting for Ctrl-C')
    .option('--unsafe-no-sandbox', 'DEVELOPMENT ONLY: run tasks without bubblewrap')
    .addOption(logFormatOption())
    .action(runDev);
}

async function runDev(flags: DevFlags): Promise<void> {
  const { startDevCluster } = await import('../../lib/ops/dev-cluster.js');
  const logger = await roleLogger(flags);
  const cluster = await startDevCluster({
    redis: flags.redis ?? (env.redisUrlSet ? env.redisUrl : undefined),
    namespace: flags.namespace,
    nodes: flags.nodes,
    dashboardPort: flags.port,
    dashboardHost: flags.host,
    dashboardAuth: await dashboardAuthFromEnv(),
    insecureNoAuth: flags.insecureNoAuth ?? false,
    dataDir: flags.dataDir,
    unsafeNoSandbox: flags.unsafeNoSandbox ?? false,
    ...secretKeyOf(undefined),
    logger,
  });
  // Nodes drain first, then the master: the bound is the sum of both drains plus the force margin.
  const drainMs =
    Math.max(...cluster.nodes.map((node) => node.options.drainTimeoutMs)) + cluster.master.options.drainTimeoutMs;
  const stop = onShutdown((force) => cluster.close({ force }), drainMs + FORCE_CLOSE_MS, logger);
  process.stdout.write(`tydra dev: ${cluster.nodes.length} node(s) on ${redactRedisUrl(cluster.redisUrl)}\n`);
  process.stdout.write(`dashboard: ${cluster.dashboardUrl}\n`);
  if (flags.demo) {
    await runDemo(cluster.redisUrl, flags.namespace);
    process.stdout.write(`dashboard: ${cluster.dashboardUrl}\n`);
  }
  if (flags.demo && flags.exit) {
    await stop();
    return;
  }
  process.stdout.write('press Ctrl-C to stop\n');
  await waitForever();
}

async function runDemo(redis: string, namespace: string): Promise<void> {
  await withClient({ redis, namespace, connectTimeout: CLIENT_DEFAULTS.connectTimeoutMs }, async (tydra) => {
    for (const dir of ['hello', 'shout', 'wordcount', 'montecarlo-pi', 'report']) {
      const deployed = await tydra.deploy(`${EXAMPLES_DIR}${dir}`);
      process.stdout.write(`deployed ${deployed.ref}\n`);
    }
    for (const [ref, input] of DEMO_RUNS) {
      const run = await tydra.submit(ref, input);
      // A parallel task's workunits spread over the nodes: a progress bar shows them (terminal only).
      const bar = new ProgressBar(process.stderr);
      if (bar.enabled) {
        run.on('progress', (progress) => bar.update(progress));
      }
      try {
        const result = await run.result({ timeoutMs: 120_000 });
        bar.clear();
        // A sequence's steps each ran on a node of their own: it has none to name.
        const { nodeId } = await run.status();
        const where = nodeId === undefined ? '' : ` on ${nodeId}`;
        process.stdout.write(`ran ${ref}${where} (TaskInstance ${run.id}): ${JSON.stringify(result)}\n`);
      } finally {
        run.close();
        bar.clear();
      }
    }
  });
}

const DEMO_RUNS = [
  ['hello/greet', { name: 'tydra' }],
  ['shout/shout', { text: 'hello from a sandbox' }],
  ['wordcount/count', { copies: 400 }],
  ['montecarlo-pi/estimate', { units: 40, samples: 20_000 }],
  ['report/report', { copies: 5 }],
] as const;

function registerMaster(program: Command): void {
  const d = MASTER_DEFAULTS;
  const command = program
    .command('master')
    .description('run a master: schedule submitted TaskInstances onto live nodes')
    .addOption(redisOption())
    .addOption(namespaceOption())
    .addOption(defaulted('-c, --concurrency <n>', 'TaskInstances dispatched at once', integer, d.concurrency))
    .addOption(
      defaulted(
        '--sweep-interval <ms>',
        'how often dead nodes are swept for TaskInstances',
        integer,
        d.sweepIntervalMs,
      ),
    )
    .addOption(
      defaulted(
        '--node-retention <ms>',
        'how long a dead or stopped node stays listed once its queue is empty',
        integer,
        d.nodeRetentionMs,
      ),
    )
    .addOption(defaulted('--prune-every <ms>', 'period of the package prune job', integer, d.pruneEveryMs))
    .addOption(
      defaulted(
        '--prune-grace <ms>',
        'how long a version stays without holders before it is deleted',
        integer,
        d.pruneGraceMs,
      ),
    )
    .addOption(
      defaulted(
        '--drain-timeout <ms>',
        'on SIGTERM/Ctrl-C, how long dispatch steps may finish before the master force-closes',
        integer,
        d.drainTimeoutMs,
      ),
    )
    .addOption(logFormatOption());
  withMetricsOptions(command, d.metricsHost).action(runMaster);
}

interface MasterFlags {
  redis: string;
  namespace: string;
  concurrency: number;
  sweepInterval: number;
  nodeRetention: number;
  pruneEvery: number;
  pruneGrace: number;
  drainTimeout: number;
  logFormat: string;
  metricsPort?: number;
  metricsHost: string;
}

async function runMaster(flags: MasterFlags): Promise<void> {
  const { Master } = await import('../../lib/master/master.js');
  const logger = await roleLogger(flags);
  const master = new Master({
    ...stripUndefined({ metricsPort: flags.metricsPort, metricsHost: flags.metricsHost }),
    redis: flags.redis,
    namespace: flags.namespace,
    concurrency: flags.concurrency,
    sweepIntervalMs: flags.sweepInterval,
    nodeRetentionMs: flags.nodeRetention,
    pruneEveryMs: flags.pruneEvery,
    pruneGraceMs: flags.pruneGrace,
    drainTimeoutMs: flags.drainTimeout,
    logger,
  });
  await master.start();
  onShutdown((force) => master.close({ force }), master.options.drainTimeoutMs + FORCE_CLOSE_MS, logger);
  await waitForever();
}

interface NodeFlags {
  redis: string;
  namespace: string;
  id?: string;
  concurrency?: number;
  cacheDir?: string;
  timeout?: number;
  limit?: TaskLimits;
  maxLimit?: TaskLimits;
  drainTimeout: number;
  cacheMax: number;
  heartbeat: number;
  lockDuration: number;
  sandboxUser?: { uid: number; gid: number };
  sandboxUsers?: number;
  unsafeNoSandbox?: boolean;
  secretKeyFile?: string;
  allowConnect?: string[];
  logFormat: string;
  metricsPort?: number;
  metricsHost: string;
  warmMax?: number;
  warmIdle: number;
}

/** `--allow-connect HOST:PORT`, repeatable; the patterns are checked by the node's options. */
function allowConnectOption(): Option {
  return new Option(
    '--allow-connect <host:port>',
    'endpoint a task that declares it in network.connect may reach, repeatable: db.internal:5432, *.internal:5432, 127.0.0.1:* (default: none)',
  ).argParser((text: string, previous: string[] = []) => [...previous, text]);
}

/**
 * As `lib/cluster/node-registry.ts` reads heartbeats: late after three silent periods, lost once
 * its lock has expired too.
 */
const HEARTBEAT_HELP = 'heartbeat period; late after 3 missed beats, dead once its lock duration has passed too';

function registerNode(program: Command): void {
  const d = NODE_DEFAULTS;
  const command = program
    .command('node')
    .description('run a node: take TaskInstances from node.<id> and run each in a fresh sandbox')
    .addOption(redisOption())
    .addOption(namespaceOption())
    .option('--id <id>', 'node id (default: <hostname>-<pid>)')
    .option('-c, --concurrency <n>', 'TaskInstances run at once (default: number of CPUs)', integer)
    .option(
      '--cache-dir <dir>',
      'package cache folder (env TYDRA_CACHE_DIR; default /var/cache/tydra/packages as root, else ~/.cache/tydra/packages)',
      env.cacheDir,
    )
    .option(
      '--timeout <ms>',
      `default wall-clock limit of a task, same as --limit timeout=<ms> (default: ${formatDuration(DEFAULT_TASK_LIMITS.timeoutMs)})`,
      integer,
    )
    .option('--limit <name=value>', `default task limit, repeatable; names: ${LIMIT_FLAG_NAMES}`, collectLimits)
    .option('--max-limit <name=value>', 'most a submission or tydra.json may ask for, repeatable', collectLimits)
    .addOption(
      defaulted(
        '--drain-timeout <ms>',
        'on SIGTERM/Ctrl-C, how long running tasks may finish before they are killed and re-routed',
        integer,
        d.drainTimeoutMs,
      ),
    )
    .addOption(
      defaulted(
        '--cache-max <bytes>',
        'package cache budget, e.g. 10GiB',
        bytesOf('--cache-max'),
        d.cacheMaxBytes,
        formatBytes(d.cacheMaxBytes),
      ),
    )
    .addOption(defaulted('--heartbeat <ms>', HEARTBEAT_HELP, integer, d.heartbeatMs))
    .addOption(
      defaulted(
        '--lock-duration <ms>',
        'lock of a running job; after a crash its tasks move once it expires',
        integer,
        d.lockDurationMs,
      ),
    )
    .option(
      '--secret-key-file <file>',
      'file holding the 32-byte secret key (base64 or hex) that opens task secrets (or env TYDRA_SECRET_KEY)',
    )
    .addOption(allowConnectOption())
    .addOption(logFormatOption());
  withMetricsOptions(withWarmOptions(withSandboxOptions(command)), d.metricsHost).action(runNode);
}

/** Who sandboxes run as, or none (`lib/node/options.ts`, `sandbox/launcher/sandbox-users.ts`). */
function withSandboxOptions(command: Command): Command {
  return command
    .option(
      '--sandbox-user <uid:gid>',
      'host user the sandboxes run as, the first of --sandbox-users (default when root: 60000:65534)',
      userValue,
    )
    .option(
      '--sandbox-users <n>',
      'host users sandboxes take turns as, consecutive uids from --sandbox-user, one per live sandbox (default when root: 256, or 1 with --sandbox-user)',
      integer,
    )
    .option('--unsafe-no-sandbox', 'DEVELOPMENT ONLY: run tasks without bubblewrap (logged loudly)');
}

/** The warm pool's flags (`lib/node/warm-pool.ts`). */
function withWarmOptions(command: Command): Command {
  return command
    .option(
      '--warm-max <n>',
      'pre-started single-use sandboxes kept for recently run JavaScript tasks; 0: none (default: the concurrency)',
      integer,
    )
    .addOption(
      defaulted(
        '--warm-idle <ms>',
        'how long a pre-started sandbox waits for a task',
        integer,
        NODE_DEFAULTS.warmIdleMs,
      ),
    );
}

/**
 * A default task limit above the maximum, refused in the flags' words: the node refuses it too,
 * but names its options (`taskLimits.memoryBytes`, `maxTaskLimits.memoryBytes`) and bare numbers.
 */
function checkLimitsWithinMax(flags: NodeFlags): void {
  const max = { ...DEFAULT_MAX_TASK_LIMITS, ...flags.maxLimit };
  const given: TaskLimits = { ...flags.limit, ...(flags.timeout !== undefined ? { timeoutMs: flags.timeout } : {}) };
  for (const [name, value] of Object.entries(given) as Array<[LimitName, number]>) {
    if (value <= max[name]) {
      continue;
    }
    const flag = name === 'timeoutMs' && flags.timeout !== undefined ? '--timeout' : `--limit ${limitFlagOf(name)}`;
    const ceiling =
      flags.maxLimit?.[name] !== undefined ? `--max-limit ${limitFlagOf(name)}` : `tydra's maximum without --max-limit`;
    throw new InvalidOptionError(
      `Expected ${flag} to be at most ${ceiling} (${showLimit(name, max[name])}), got ${showLimit(name, value)}`,
    );
  }
}

function showLimit(name: LimitName, value: number): string {
  if (name.endsWith('Bytes')) {
    return formatBytes(value);
  }
  return name.endsWith('Ms') ? formatDuration(value) : String(value);
}

async function runNode(flags: NodeFlags): Promise<void> {
  checkLimitsWithinMax(flags);
  const { TydraNode } = await import('../../lib/node/node.js');
  const logger = await roleLogger(flags);
  const node = new TydraNode(
    stripUndefined({
      redis: flags.redis,
      namespace: flags.namespace,
      id: flags.id,
      concurrency: flags.concurrency,
      cacheDir: flags.cacheDir,
      taskLimits: { ...flags.limit, ...(flags.timeout !== undefined ? { timeoutMs: flags.timeout } : {}) },
      maxTaskLimits: flags.maxLimit,
      drainTimeoutMs: flags.drainTimeout,
      cacheMaxBytes: flags.cacheMax,
      heartbeatMs: flags.heartbeat,
      lockDurationMs: flags.lockDuration,
      warmMax: flags.warmMax,
      warmIdleMs: flags.warmIdle,
      sandboxUser: flags.sandboxUser,
      sandboxUsers: flags.sandboxUsers,
      unsafeNoSandbox: flags.unsafeNoSandbox ?? false,
      metricsPort: flags.metricsPort,
      metricsHost: flags.metricsHost,
      ...secretKeyOf(flags.secretKeyFile),
      allowConnect: flags.allowConnect,
      logger,
    }),
  );
  await node.start();
  onShutdown((force) => node.close({ force }), node.options.drainTimeoutMs + FORCE_CLOSE_MS, logger);
  await waitForever();
}

interface DashboardFlags {
  redis: string;
  namespace: string;
  port: number;
  host: string;
  insecureNoAuth?: boolean;
  logFormat: string;
}

function registerDashboard(program: Command): void {
  program
    .command('dashboard')
    .description(`serve Bull Board over every tydra queue; ${DASHBOARD_AUTH_HELP}`)
    .addOption(redisOption())
    .addOption(namespaceOption())
    .addOption(defaulted('-p, --port <port>', 'TCP port', integer, DASHBOARD_DEFAULTS.port))
    .option('--host <host>', 'address to bind; beyond loopback it needs credentials', DASHBOARD_DEFAULTS.host)
    .addOption(insecureNoAuthOption())
    .addOption(logFormatOption())
    .action(runDashboard);
}

async function runDashboard(flags: DashboardFlags): Promise<void> {
  const { Dashboard } = await import('../../lib/ops/dashboard.js');
  const logger = await roleLogger(flags);
  const dashboard = new Dashboard(
    stripUndefined({
      redis: flags.redis,
      namespace: flags.namespace,
      port: flags.port,
      host: flags.host,
      auth: await dashboardAuthFromEnv(),
      insecureNoAuth: flags.insecureNoAuth,
      logger,
    }),
  );
  const url = await dashboard.start();
  process.stdout.write(`dashboard: ${url}\n`);
  onShutdown(() => dashboard.close(), FORCE_CLOSE_MS, logger);
  await waitForever();
}
