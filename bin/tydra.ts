#!/usr/bin/env node
/**
 * The `tydra` CLI. Thin by design: parse strictly, map flags to library options, call the
 * library, clean up. Every command takes `--redis` (env TYDRA_REDIS_URL); commands that print
 * data take `--json`.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

import { Command, InvalidArgumentError, Option } from 'commander';

import { readEnvConfig } from '../lib/core/config.js';
import { LIMIT_FLAGS, parseLimitValue, type TaskLimits } from '../lib/core/limits.js';
import { redactRedisUrl } from '../lib/redis/connection.js';
import {
  Dashboard,
  Master,
  type NodeInfo,
  startDevCluster,
  TaskCancelledError,
  TaskFailedError,
  type TaskStatus,
  Tydra,
  TydraNode,
  createLogger,
} from '../lib/index.js';

const env = readEnvConfig();
const LIMIT_FLAG_NAMES = Object.keys(LIMIT_FLAGS).join(', ');
const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
const EXAMPLES_DIR = fileURLToPath(new URL('../../examples/', import.meta.url));

const program = new Command('tydra')
  .description('A distributed task runner on Redis and BullMQ: every task in its own bubblewrap sandbox.')
  .version(packageJson.version)
  .showHelpAfterError()
  .configureHelp({ sortSubcommands: false });

const redisOption = () =>
  new Option('--redis <url>', 'Redis URL (env TYDRA_REDIS_URL)').default(env.redisUrl, redactRedisUrl(env.redisUrl));
const jsonOption = () => new Option('--json', 'print JSON instead of text');

program
  .command('dev')
  .description('start a local cluster: a private redis-server (unless --redis), a master, N nodes and the dashboard')
  .option('--redis <url>', 'use this Redis instead of starting a private one (env TYDRA_REDIS_URL)')
  .option('-n, --nodes <n>', 'nodes to start', integer(1, 64), 2)
  .option('-p, --port <port>', 'dashboard port (0 = any free port)', integer(0, 65535), 3000)
  .option('--data-dir <dir>', 'project-local folder for Redis data and node caches', '.tydra')
  .option('--demo', 'deploy the example packages, run a task of each and print the results')
  .option('--exit', 'with --demo: stop the cluster after the demo instead of waiting for Ctrl-C')
  .option('--unsafe-no-sandbox', 'DEVELOPMENT ONLY: run tasks without bubblewrap')
  .action(
    async (opts: {
      redis?: string;
      nodes: number;
      port: number;
      dataDir: string;
      demo?: boolean;
      exit?: boolean;
      unsafeNoSandbox?: boolean;
    }) => {
      const logger = createLogger();
      const cluster = await startDevCluster({
        redis: opts.redis ?? (process.env.TYDRA_REDIS_URL ? env.redisUrl : undefined),
        nodes: opts.nodes,
        dashboardPort: opts.port,
        dataDir: opts.dataDir,
        unsafeNoSandbox: opts.unsafeNoSandbox ?? false,
        logger,
      });
      const stop = onShutdown(() => cluster.close());
      process.stdout.write(`tydra dev: ${cluster.nodes.length} node(s) on ${redactRedisUrl(cluster.redisUrl)}\n`);
      process.stdout.write(`dashboard: ${cluster.dashboardUrl}\n`);
      if (opts.demo) {
        await runDemo(cluster.redisUrl);
        process.stdout.write(`dashboard: ${cluster.dashboardUrl}\n`);
      }
      if (opts.demo && opts.exit) {
        await stop();
        return;
      }
      process.stdout.write('press Ctrl-C to stop\n');
      await waitForever();
    },
  );

program
  .command('master')
  .description('run a master: schedule submitted TaskInstances onto live nodes')
  .addOption(redisOption())
  .option('-c, --concurrency <n>', 'TaskInstances dispatched at once', integer(1, 10_000), 16)
  .option(
    '--sweep-interval <ms>',
    'how often queues of dead nodes are checked for stranded TaskInstances',
    integer(50, 600_000),
    5000,
  )
  .option('--prune-every <ms>', 'period of the package prune job', integer(100, 86_400_000), 60_000)
  .option(
    '--prune-grace <ms>',
    'how long a version stays without holders before the prune job deletes it',
    integer(0, 30 * 86_400_000),
    600_000,
  )
  .action(
    async (opts: {
      redis: string;
      concurrency: number;
      sweepInterval: number;
      pruneEvery: number;
      pruneGrace: number;
    }) => {
      const master = new Master({
        redis: opts.redis,
        concurrency: opts.concurrency,
        sweepIntervalMs: opts.sweepInterval,
        pruneEveryMs: opts.pruneEvery,
        pruneGraceMs: opts.pruneGrace,
        logger: createLogger(),
      });
      await master.start();
      onShutdown(() => master.close());
      await waitForever();
    },
  );

program
  .command('node')
  .description('run a node: take TaskInstances from node.<id> and run each in a fresh sandbox')
  .addOption(redisOption())
  .option('--id <id>', 'node id (default: <hostname>-<pid>)')
  .option('-c, --concurrency <n>', 'TaskInstances run at once (default: number of CPUs)', integer(1, 1024))
  .option(
    '--cache-dir <dir>',
    'package cache folder (env TYDRA_CACHE_DIR; default ~/.cache/tydra/packages)',
    env.cacheDir,
  )
  .option('--timeout <ms>', 'default wall-clock limit of a task (same as --limit timeout=<ms>)', integer(1, 86_400_000))
  .option(
    '--limit <name=value>',
    `default task limit, repeatable; names: ${LIMIT_FLAG_NAMES} (e.g. memory=1GiB, timeout=90s)`,
    collectLimits,
    {},
  )
  .option(
    '--max-limit <name=value>',
    'most a submission or tydra.json may ask for, repeatable (same names)',
    collectLimits,
    {},
  )
  .option(
    '--drain-timeout <ms>',
    'on SIGTERM, how long running tasks may finish before they are killed and re-routed',
    integer(0, 86_400_000),
    30_000,
  )
  .option(
    '--cache-max <bytes>',
    'package cache budget, e.g. 10GiB; least recently used versions not in use are evicted above it',
    bytesValue,
    10 * 1024 ** 3,
  )
  .option(
    '--heartbeat <ms>',
    'heartbeat period; the node counts as dead after 3 missed beats',
    integer(100, 600_000),
    5000,
  )
  .option(
    '--lock-duration <ms>',
    'BullMQ lock of a running job; after a crash its TaskInstances move to another node once it expires',
    integer(1000, 3_600_000),
    30_000,
  )
  .option(
    '--sandbox-user <uid:gid>',
    'host user the sandboxes run as (default when root: 65534:65534, nobody)',
    userValue,
  )
  .option('--unsafe-no-sandbox', 'DEVELOPMENT ONLY: run tasks without bubblewrap (logged loudly)')
  .action(
    async (opts: {
      redis: string;
      id?: string;
      concurrency?: number;
      cacheDir?: string;
      timeout?: number;
      limit: TaskLimits;
      maxLimit: TaskLimits;
      drainTimeout: number;
      cacheMax: number;
      heartbeat: number;
      lockDuration: number;
      sandboxUser?: { uid: number; gid: number };
      unsafeNoSandbox?: boolean;
    }) => {
      const node = new TydraNode(
        stripUndefined({
          redis: opts.redis,
          id: opts.id,
          concurrency: opts.concurrency,
          cacheDir: opts.cacheDir,
          taskLimits: { ...opts.limit, ...(opts.timeout !== undefined ? { timeoutMs: opts.timeout } : {}) },
          maxTaskLimits: opts.maxLimit,
          drainTimeoutMs: opts.drainTimeout,
          cacheMaxBytes: opts.cacheMax,
          heartbeatMs: opts.heartbeat,
          lockDurationMs: opts.lockDuration,
          sandboxUser: opts.sandboxUser,
          unsafeNoSandbox: opts.unsafeNoSandbox ?? false,
          logger: createLogger(),
        }),
      );
      await node.start();
      onShutdown(() => node.close());
      await waitForever();
    },
  );

program
  .command('dashboard')
  .description(
    'serve Bull Board over every tydra queue (basic auth: env TYDRA_DASHBOARD_USER / TYDRA_DASHBOARD_PASSWORD)',
  )
  .addOption(redisOption())
  .option('-p, --port <port>', 'TCP port', integer(0, 65535), 3000)
  .option('--host <host>', 'address to bind', '127.0.0.1')
  .action(async (opts: { redis: string; port: number; host: string }) => {
    const auth =
      env.dashboardUser && env.dashboardPassword
        ? { user: env.dashboardUser, password: env.dashboardPassword }
        : undefined;
    const dashboard = new Dashboard(
      stripUndefined({ redis: opts.redis, port: opts.port, host: opts.host, auth, logger: createLogger() }),
    );
    const url = await dashboard.start();
    process.stdout.write(`dashboard: ${url}\n`);
    onShutdown(() => dashboard.close());
    await waitForever();
  });

program
  .command('deploy')
  .description('pack DIR deterministically and store it as a version of its package; prints name@sha1')
  .argument('<dir>', 'package folder (with tydra.json)')
  .addOption(redisOption())
  .addOption(jsonOption())
  .action(async (dir: string, opts: { redis: string; json?: boolean }) => {
    await withClient(opts.redis, async (tydra) => {
      const result = await tydra.deploy(dir);
      print(opts.json, result, `${result.ref}${result.stored ? '' : ' (unchanged)'}`);
    });
  });

program
  .command('run')
  .description('submit a TaskInstance of REF (name[@sha1]/task) and print its result as JSON')
  .argument('<ref>', 'task reference, e.g. hello/greet or hello@1a2b3c4/greet')
  .addOption(redisOption())
  .addOption(new Option('--input <json>', 'input as JSON').conflicts('inputFile'))
  .option('--input-file <file>', 'read the input JSON from a file')
  .option('--detach', 'print the TaskInstance id and return without waiting')
  .option('--timeout <ms>', 'wall-clock limit of the task', integer(1, 86_400_000))
  .option('--attempts <n>', 'runs before the task fails for good', integer(1, 100))
  .option('--limit <name=value>', `limit for this run, repeatable; names: ${LIMIT_FLAG_NAMES}`, collectLimits, {})
  .option('--retry-on-limit', 'retry (within --attempts) a run that broke a limit')
  .addOption(jsonOption())
  .action(
    async (
      ref: string,
      opts: {
        redis: string;
        input?: string;
        inputFile?: string;
        detach?: boolean;
        timeout?: number;
        attempts?: number;
        limit: TaskLimits;
        retryOnLimit?: boolean;
        json?: boolean;
      },
    ) => {
      const text = opts.inputFile !== undefined ? await readFile(opts.inputFile, 'utf8') : (opts.input ?? 'null');
      let input: unknown;
      try {
        input = JSON.parse(text);
      } catch (error) {
        throw new InvalidArgumentError(`Expected the input to be JSON, got a parse error: ${(error as Error).message}`);
      }
      await withClient(opts.redis, async (tydra) => {
        const run = await tydra.submit(
          ref,
          input,
          stripUndefined({
            timeoutMs: opts.timeout,
            attempts: opts.attempts,
            limits: Object.keys(opts.limit).length > 0 ? opts.limit : undefined,
            retryOnLimit: opts.retryOnLimit,
          }),
        );
        if (opts.detach) {
          print(opts.json, { id: run.id, ref: run.ref }, run.id);
          return;
        }
        try {
          const result = await run.result();
          process.stdout.write(
            `${JSON.stringify(opts.json ? { id: run.id, ref: run.ref, state: 'completed', result } : result, null, 2)}\n`,
          );
        } catch (error) {
          if (error instanceof TaskFailedError) {
            const state = error instanceof TaskCancelledError ? 'cancelled' : 'failed';
            if (opts.json) {
              process.stdout.write(`${JSON.stringify({ id: run.id, ref: run.ref, state, error: error.message })}\n`);
            }
            process.stderr.write(
              `TaskInstance ${run.id} ${state === 'cancelled' ? 'was cancelled' : `failed: ${error.message}`}\n`,
            );
            process.exitCode = 1;
            return;
          }
          throw error;
        }
      });
    },
  );

program
  .command('cancel')
  .description('cancel a TaskInstance: removed if it has not started, killed on its node if it runs')
  .argument('<id>', 'TaskInstance id')
  .addOption(redisOption())
  .option('--wait', 'wait until a running TaskInstance has ended')
  .addOption(jsonOption())
  .action(async (id: string, opts: { redis: string; wait?: boolean; json?: boolean }) => {
    await withClient(opts.redis, async (tydra) => {
      const result = await tydra.cancel(id);
      if (opts.wait && result.outcome === 'cancelling') {
        await tydra
          .run(id)
          .result({ timeoutMs: 60_000 })
          .catch(() => undefined);
      }
      const text = {
        removed: `${id}: removed before it started`,
        cancelling: `${id}: running; its node was told to kill it`,
        finished: `${id}: already finished; nothing to cancel`,
      }[result.outcome];
      print(opts.json, result, text);
    });
  });

program
  .command('status')
  .description('show the state, node, progress, result or error and logs of a TaskInstance')
  .argument('<id>', 'TaskInstance id')
  .addOption(redisOption())
  .addOption(jsonOption())
  .action(async (id: string, opts: { redis: string; json?: boolean }) => {
    await withClient(opts.redis, async (tydra) => {
      const status = await tydra.run(id).status();
      print(opts.json, status, formatStatus(status));
    });
  });

program
  .command('nodes')
  .description('list registered nodes and whether they are alive')
  .addOption(redisOption())
  .addOption(jsonOption())
  .action(async (opts: { redis: string; json?: boolean }) => {
    await withClient(opts.redis, async (tydra) => {
      const nodes = await tydra.nodes();
      print(opts.json, nodes, nodes.length === 0 ? 'no nodes registered' : nodes.map(formatNode).join('\n'));
    });
  });

program
  .command('packages')
  .description('list deployed packages, or the versions of NAME')
  .argument('[name]', 'package name')
  .addOption(redisOption())
  .addOption(jsonOption())
  .action(async (name: string | undefined, opts: { redis: string; json?: boolean }) => {
    await withClient(opts.redis, async (tydra) => {
      if (name === undefined) {
        const names = await tydra.packageNames();
        print(opts.json, names, names.length === 0 ? 'no packages deployed' : names.join('\n'));
        return;
      }
      const { latest, versions } = await tydra.packageVersions(name);
      const rows = versions.map((v) => ({
        sha1: v.sha1,
        size: v.size,
        deployedAt: new Date(v.deployedAt).toISOString(),
        latest: v.sha1 === latest,
        undeployed: v.undeployed,
        references: v.references,
        holderStates: v.holderStates,
        leaseMs: v.leaseMs,
        idleSince: v.idleSince === undefined ? null : new Date(v.idleSince).toISOString(),
        tasks: Object.keys(v.manifest.tasks),
      }));
      const text =
        rows.length === 0
          ? `no versions of ${name}`
          : rows
              .map((r) => {
                const flags = [
                  r.latest ? 'latest' : '',
                  r.undeployed ? 'undeployed' : '',
                  r.leaseMs > 0 ? `lease ${Math.ceil(r.leaseMs / 1000)} s` : '',
                ].filter(Boolean);
                const states = Object.entries(r.holderStates)
                  .map(([state, count]) => `${state} ${count}`)
                  .join(', ');
                return `${name}@${r.sha1}  ${r.size} B  deployed ${r.deployedAt}  refs ${r.references}${states ? ` (${states})` : ''}${flags.length > 0 ? `  ${flags.join(', ')}` : ''}  tasks: ${r.tasks.join(', ')}`;
              })
              .join('\n');
      print(opts.json, rows, text);
    });
  });

program
  .command('undeploy')
  .description(
    'remove a version (NAME@SHA1PREFIX) or every version (NAME) from use; bytes stay until no TaskInstance holds them',
  )
  .argument('<target>', 'NAME or NAME@SHA1PREFIX')
  .addOption(redisOption())
  .addOption(jsonOption())
  .action(async (target: string, opts: { redis: string; json?: boolean }) => {
    const at = target.indexOf('@');
    const name = at === -1 ? target : target.slice(0, at);
    const version = at === -1 ? undefined : target.slice(at + 1);
    if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(name) || (version !== undefined && !/^[0-9a-f]{4,40}$/.test(version))) {
      throw new InvalidArgumentError(`Expected NAME or NAME@SHA1PREFIX (4 to 40 hex digits), got \`${target}\``);
    }
    await withClient(opts.redis, async (tydra) => {
      const result = await tydra.undeploy(name, version);
      const text = [
        result.undeployed.length === 0
          ? `nothing to undeploy: already out of use`
          : result.undeployed.map((sha1) => `undeployed ${name}@${sha1}`).join('\n'),
        `latest: ${result.latest === null ? 'none (the package can no longer be submitted)' : `${name}@${result.latest}`}`,
      ].join('\n');
      print(opts.json, result, text);
    });
  });

program
  .command('prune')
  .description(
    'delete package versions no TaskInstance can need (same logic as the prune job), and say why others are kept',
  )
  .addOption(redisOption())
  .option('--dry-run', 'report what would be removed; change nothing')
  .option('--grace <ms>', 'how long a version must have been without holders', integer(0, 30 * 86_400_000), 600_000)
  .addOption(jsonOption())
  .action(async (opts: { redis: string; dryRun?: boolean; grace: number; json?: boolean }) => {
    await withClient(opts.redis, async (tydra) => {
      const report = await tydra.prune({ dryRun: opts.dryRun ?? false, graceMs: opts.grace });
      const verb = report.dryRun ? 'would remove' : 'removed';
      const lines = [
        ...report.healed.map(
          (h) =>
            `${report.dryRun ? 'would heal' : 'healed'} ${h.name}@${h.sha1}: reference of ${h.instanceId} (job ${h.why})`,
        ),
        ...report.removed.map((d) => `${verb} ${d.name}@${d.sha1}: ${d.reason}`),
        ...report.kept.map((d) => `kept ${d.name}@${d.sha1}: ${d.reason}`),
        `${report.packages} package(s), ${report.versions} version(s): ${report.removed.length} ${verb}, ${report.kept.length} kept (${report.ms} ms)${report.dryRun ? '; dry run, nothing changed' : ''}`,
      ];
      print(opts.json, report, lines.join('\n'));
    });
  });

async function runDemo(redisUrl: string): Promise<void> {
  await withClient(redisUrl, async (tydra) => {
    for (const dir of ['hello', 'shout']) {
      const deployed = await tydra.deploy(`${EXAMPLES_DIR}${dir}`);
      process.stdout.write(`deployed ${deployed.ref}\n`);
    }
    for (const [ref, input] of [
      ['hello/greet', { name: 'tydra' }],
      ['shout/shout', { text: 'hello from a sandbox' }],
    ] as const) {
      const run = await tydra.submit(ref, input);
      const result = await run.result({ timeoutMs: 120_000 });
      const status = await run.status();
      process.stdout.write(
        `ran ${ref} on ${status.nodeId ?? '?'} (TaskInstance ${run.id}): ${JSON.stringify(result)}\n`,
      );
    }
  });
}

async function withClient(redis: string, fn: (tydra: Tydra) => Promise<void>): Promise<void> {
  const tydra = new Tydra({ redis });
  try {
    await fn(tydra);
  } finally {
    await tydra.close();
  }
}

function print(json: boolean | undefined, data: unknown, text: string): void {
  process.stdout.write(`${json ? JSON.stringify(data, null, 2) : text}\n`);
}

function formatStatus(s: TaskStatus): string {
  const lines = [
    `${s.id}  ${s.state}`,
    `ref: ${s.ref}`,
    `node: ${s.nodeId ?? '-'}`,
    `submitted: ${new Date(s.submittedAt).toISOString()}`,
  ];
  if (s.progress !== 0 && s.progress !== undefined) {
    lines.push(`progress: ${JSON.stringify(s.progress)}`);
  }
  if (s.state === 'completed') {
    lines.push(`result: ${JSON.stringify(s.result)}`);
  }
  if (s.error !== undefined) {
    lines.push(`error: ${s.error}`);
  }
  if (s.logs.length > 0) {
    lines.push('logs:', ...s.logs.map((line) => `  ${line}`));
  }
  return lines.join('\n');
}

function formatNode(n: NodeInfo): string {
  const seen = n.lastSeen ? `${Math.round((Date.now() - n.lastSeen) / 1000)} s ago` : 'never';
  return `${n.id}  ${n.alive ? 'alive' : n.state === 'stopped' ? 'stopped' : 'dead'}  concurrency ${n.concurrency}  host ${n.hostname} pid ${n.pid}  last heartbeat ${seen}`;
}

function integer(min: number, max: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!/^-?\d+$/.test(value) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`Expected an integer from ${min} to ${max}, got \`${value}\``);
    }
    return parsed;
  };
}

/** Commander reducer for repeated `--limit name=value`. */
function collectLimits(text: string, previous: TaskLimits): TaskLimits {
  const at = text.indexOf('=');
  const flag = at === -1 ? text : text.slice(0, at);
  const name = LIMIT_FLAGS[flag];
  if (name === undefined || at === -1) {
    throw new InvalidArgumentError(`Expected name=value with a name among ${LIMIT_FLAG_NAMES}, got \`${text}\``);
  }
  try {
    return { ...previous, [name]: parseLimitValue(name, text.slice(at + 1)) };
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

function userValue(text: string): { uid: number; gid: number } {
  const match = /^(\d{1,10}):(\d{1,10})$/.exec(text);
  if (match === null) {
    throw new InvalidArgumentError(`Expected UID:GID as numbers, got \`${text}\``);
  }
  return { uid: Number(match[1]), gid: Number(match[2]) };
}

function bytesValue(text: string): number {
  try {
    return parseLimitValue('memoryBytes', text);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

function stripUndefined<T extends object>(object: T): T {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as T;
}

function waitForever(): Promise<never> {
  return new Promise(() => setInterval(() => undefined, 1 << 30));
}

/**
 * First SIGINT/SIGTERM: close gracefully (running tasks finish), then exit. Second: exit now.
 * Returns the graceful stop so a command can also call it itself.
 */
function onShutdown(close: () => Promise<void>): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= close();
    return stopping;
  };
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping !== undefined) {
      process.stderr.write(`tydra: second ${signal}, exiting now\n`);
      process.exit(130);
    }
    process.stderr.write(`tydra: ${signal} received, stopping (send it again to force)\n`);
    void stop().then(() => process.exit(0));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return stop;
}

program.parseAsync().then(
  () => exitSoon(),
  (error: unknown) => {
    process.stderr.write(`tydra: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = process.exitCode || 1;
    exitSoon();
  },
);

/** A command that finished should end the process; if a handle lingers, say so and exit anyway. */
function exitSoon(): void {
  setTimeout(() => {
    process.stderr.write('tydra: open handles kept the process alive after the command finished; exiting\n');
    process.exit(process.exitCode ?? 0);
  }, 5000).unref();
}
