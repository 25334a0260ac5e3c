/**
 * The pieces every component's options share: the Redis URL and logger options, and the zod
 * types they are built from. Each component compiles its own options in its folder
 * (`lib/client/options.ts`, `lib/master/options.ts`, …): raw (all optional, what callers pass) →
 * compiled (defaults applied, validated once). Nothing past `compile*Options` re-checks its input.
 */
import { z } from 'zod';

import type { Logger } from './logger.js';
import { redisTargetSchema } from './redis-target-schema.js';
import type { RedisSentinelTarget } from './redis-url.js';

export const MiB = 1024 * 1024;

/** Default Redis URL of every component (defined with the environment, which zod-free `--help` reads). */
export { DEFAULT_REDIS_URL } from './config.js';

/** `redis://`, `rediss://` or `redis-sentinel://` URL, or a Sentinel object; compiles to a URL string. */
export const redisUrlSchema = redisTargetSchema;
export const positiveInt = z.number().int().positive();
export const loggerSchema = z.custom<Logger>().optional();

export interface CommonOptions {
  /**
   * The Redis every tydra process of a cluster shares: a `redis://` or `rediss://` URL, a
   * Sentinel deployment as `redis-sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…][/DB]#MASTERNAME`,
   * or the same as an object `{ sentinels: [{ host, port }], name, password? }`.
   * @defaultValue `redis://127.0.0.1:6379`
   */
  redis?: string | RedisSentinelTarget;
  /** Where log lines go. @defaultValue a silent logger (the CLI passes a pino logger on stderr). */
  logger?: Logger;
}
