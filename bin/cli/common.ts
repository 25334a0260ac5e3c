/** What every command shares: the Redis flags, the client's lifetime, and how the process ends. */
import { Option } from 'commander';

import { CLIENT_DEFAULTS } from '../../lib/client/options.js';
import { readEnvConfig } from '../../lib/core/config.js';
import { Tydra } from '../../lib/index.js';
import { redactRedisUrl } from '../../lib/redis/connection.js';
import { integer } from './parse.js';

export const env = readEnvConfig();

/** The flags of every command that talks to Redis as a client. */
export interface ClientFlags {
  redis: string;
  connectTimeout: number;
}

export const redisOption = () =>
  new Option('--redis <url>', 'Redis URL (env TYDRA_REDIS_URL)').default(env.redisUrl, redactRedisUrl(env.redisUrl));
export const connectTimeoutOption = () =>
  new Option('--connect-timeout <ms>', 'how long to wait for Redis before giving up')
    .argParser(integer)
    .default(CLIENT_DEFAULTS.connectTimeoutMs);
export const jsonOption = () => new Option('--json', 'print JSON instead of text');

export async function withClient(flags: ClientFlags, fn: (tydra: Tydra) => Promise<void>): Promise<void> {
  const tydra = new Tydra({ redis: flags.redis, connectTimeoutMs: flags.connectTimeout });
  try {
    await fn(tydra);
  } finally {
    await tydra.close();
  }
}

export function waitForever(): Promise<never> {
  return new Promise(() => setInterval(() => undefined, 1 << 30));
}

/**
 * First SIGINT/SIGTERM: close gracefully (running tasks finish), then exit. Second: exit now.
 * Returns the graceful stop so a command can also call it itself.
 */
export function onShutdown(close: () => Promise<void>): () => Promise<void> {
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

/** A command that finished should end the process; if a handle lingers, say so and exit anyway. */
export function exitSoon(): void {
  setTimeout(() => {
    process.stderr.write('tydra: open handles kept the process alive after the command finished; exiting\n');
    process.exit(process.exitCode ?? 0);
  }, 5000).unref();
}
