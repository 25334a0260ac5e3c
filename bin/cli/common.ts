/**
 * What every command shares: the Redis flags, the client's lifetime, and how the process ends.
 * Only light modules here (defaults, no zod, ioredis or BullMQ): `--help` loads this file, and the
 * client library is imported when a command runs.
 */
import { constants } from 'node:os';

import { type Command, InvalidArgumentError, Option } from 'commander';

import type { Tydra } from '../../lib/client/client.js';
import { CLIENT_DEFAULTS } from '../../lib/client/defaults.js';
import type { Logger } from '../../lib/core/logger.js';
import { readEnvConfig } from '../../lib/core/config.js';
import { MAX_NAMESPACE_LENGTH, NAMESPACE_PATTERN } from '../../lib/core/namespace.js';
import { withRedisPassword } from '../../lib/core/redis-url.js';
import { redactRedisUrl } from '../../lib/redis/url.js';
import { integer, keepValue } from './parse.js';

export const env = readEnvConfig();

/** The flags of every command that talks to Redis as a client. */
export interface ClientFlags {
  redis: string;
  namespace: string;
  connectTimeout: number;
  /** `tydra run --durable-submit`. */
  durableSubmit?: boolean;
  /** `tydra secret set --secret-key-file`. */
  secretKeyFile?: string;
  /** `tydra run|rerun --keep-completed` / `--keep-failed`: retention of what they submit. */
  keepCompleted?: { count?: number; ageMs?: number };
  keepFailed?: { count?: number; ageMs?: number };
}

/** `--redis`: the password may come from TYDRA_REDIS_PASSWORD instead of the URL (the command line is public). */
export const redisOption = () =>
  new Option(
    '--redis <url>',
    'Redis URL: redis://, rediss://, redis-sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…]#MASTERNAME or redis-cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…] (env TYDRA_REDIS_URL; password also from TYDRA_REDIS_PASSWORD)',
  )
    .argParser((url: string) => withRedisPassword(url, env.redisPassword))
    .default(env.redisUrl, redactRedisUrl(env.redisUrl));
/** `--namespace`: which tydra installation of that Redis (checked here too, so a bad value fails before any connect). */
export const namespaceOption = () =>
  new Option(
    '--namespace <name>',
    `tydra installation in that Redis: every key and queue under the hash tag {NAME} (1-${MAX_NAMESPACE_LENGTH} of a-z 0-9 _ -; env TYDRA_NAMESPACE)`,
  )
    .argParser((name: string) => {
      if (name.length > MAX_NAMESPACE_LENGTH || !NAMESPACE_PATTERN.test(name)) {
        throw new InvalidArgumentError(
          `expected 1 to ${MAX_NAMESPACE_LENGTH} of a-z 0-9 _ -, got ${JSON.stringify(name)}`,
        );
      }
      return name;
    })
    .default(env.namespace);
export const connectTimeoutOption = () =>
  new Option('--connect-timeout <ms>', 'how long to wait for Redis before giving up')
    .argParser(integer)
    .default(CLIENT_DEFAULTS.connectTimeoutMs);
export const jsonOption = () => new Option('--json', 'print JSON instead of text');

export async function withClient(flags: ClientFlags, fn: (tydra: Tydra) => Promise<void>): Promise<void> {
  const { Tydra } = await import('../../lib/client/client.js');
  const tydra = new Tydra({
    redis: flags.redis,
    namespace: flags.namespace,
    connectTimeoutMs: flags.connectTimeout,
    ...(flags.durableSubmit === true ? { durableSubmit: true } : {}),
    ...(flags.keepCompleted !== undefined ? { keepCompleted: flags.keepCompleted } : {}),
    ...(flags.keepFailed !== undefined ? { keepFailed: flags.keepFailed } : {}),
    ...secretKeyOf(flags.secretKeyFile),
  });
  try {
    await fn(tydra);
  } finally {
    await tydra.close();
  }
}

/** The secret key options: the file given, else `TYDRA_SECRET_KEY`, else none (only setting secrets and nodes need one). */
export function secretKeyOf(file: string | undefined): { secretKey?: string; secretKeyFile?: string } {
  if (file !== undefined) {
    return { secretKeyFile: file };
  }
  return env.secretKey !== undefined ? { secretKey: env.secretKey } : {};
}

export function waitForever(): Promise<never> {
  return new Promise(() => setInterval(() => undefined, 1 << 30));
}

/** Signals that stop a long-running command. SIGHUP too: a closed terminal must not orphan a dev redis-server. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * How a long-running command stops. First SIGINT/SIGTERM/SIGHUP (Ctrl-C included): close
 * gracefully (running TaskInstances finish within the drain timeout), then exit 0. Second: force
 * the close (running TaskInstances are killed and handed back), then exit 128 + the signal's
 * number (130 for SIGINT). Third: exit at once. The library bounds every close (`boundMs`: the
 * drain timeout plus 5 s); a watchdog exits with 1 should a close outlive it anyway.
 * What it says goes through the role's `logger` (a `stopped` record ends the log), so that
 * `--log-format json` stays one JSON object a line to the end.
 * Returns the graceful stop so a command can also call it itself.
 */
export function onShutdown(
  close: (force: boolean) => Promise<void>,
  boundMs: number,
  roleLogger: Logger,
): () => Promise<void> {
  const logger = roleLogger.child({ component: 'cli' });
  let stopping: Promise<void> | undefined;
  /** Set by a second signal: the exit status then names it. */
  let forcedBy: NodeJS.Signals | undefined;
  const stop = (): Promise<void> => {
    stopping ??= close(false).then(() => logger.info({ forcedBy }, 'stopped'));
    return stopping;
  };
  const exit = (): never => process.exit(forcedBy === undefined ? 0 : 128 + constants.signals[forcedBy]);
  const handler = (signal: NodeJS.Signals): void => {
    if (forcedBy !== undefined) {
      logger.warn({ signal }, `third ${signal}, exiting now`);
      process.exit(128 + constants.signals[signal]);
    }
    if (stopping !== undefined) {
      forcedBy = signal;
      logger.warn({ signal }, `second ${signal}, force-closing (running tasks are killed and re-routed)`);
      // The same close, cut short: `stopping` resolves when it is done, and exits.
      void close(true);
      return;
    }
    logger.info({ signal }, `${signal} received, stopping (send it again to force)`);
    setTimeout(() => {
      logger.error({ boundMs }, `the stop did not finish within ${boundMs} ms; exiting`);
      process.exit(1);
    }, boundMs).unref();
    void stop().then(exit);
  };
  for (const signal of STOP_SIGNALS) {
    process.on(signal, handler);
  }
  return stop;
}

/** A command that finished should end the process; if a handle lingers, say so and exit anyway. */
export function exitSoon(): void {
  setTimeout(() => {
    process.stderr.write('tydra: open handles kept the process alive after the command finished; exiting\n');
    process.exit(process.exitCode ?? 0);
  }, 5000).unref();
}

/** `--keep-completed` and `--keep-failed` of the commands that submit (`run`, `rerun`). */
export function addRetentionOptions(command: Command): Command {
  const { keepCompleted, keepFailed } = CLIENT_DEFAULTS;
  return command
    .addOption(
      new Option(
        '--keep-completed <count,age>',
        `keep at most COUNT completed TaskInstances, none older than AGE: 1000, 24h or 1000,24h (default: ${formatKeep(keepCompleted)})`,
      ).argParser(keepValue),
    )
    .addOption(
      new Option(
        '--keep-failed <count,age>',
        `the same for failed and cancelled TaskInstances (default: ${formatKeep(keepFailed)})`,
      ).argParser(keepValue),
    );
}

/** `10000,24h`: a retention as `--keep-completed` takes it. */
function formatKeep(keep: { count?: number; ageMs?: number }): string {
  const age =
    keep.ageMs === undefined
      ? undefined
      : keep.ageMs % 86_400_000 === 0
        ? `${keep.ageMs / 86_400_000}d`
        : `${keep.ageMs / 3_600_000}h`;
  return [keep.count, age].filter((part) => part !== undefined).join(',');
}
