/**
 * The pieces every component's options share: the Redis URL and logger options, and the zod
 * types they are built from. Each component compiles its own options in its folder
 * (`lib/client/options.ts`, `lib/master/options.ts`, …): raw (all optional, what callers pass) →
 * compiled (defaults applied, validated once). Nothing past `compile*Options` re-checks its input.
 */
import { z } from 'zod';

import type { Logger } from './logger.js';
import { DEFAULT_NAMESPACE, MAX_NAMESPACE_LENGTH, NAMESPACE_PATTERN } from './namespace.js';
import { redisTargetSchema } from './redis-target-schema.js';
import type { RedisSentinelTarget } from './redis-url.js';

export const MiB = 1024 * 1024;

/** Default Redis URL of every component (defined with the environment, which zod-free `--help` reads). */
export { DEFAULT_REDIS_URL } from './config.js';

/** `redis://`, `rediss://` or `redis-sentinel://` URL, or a Sentinel object; compiles to a URL string. */
export const redisUrlSchema = redisTargetSchema;
/** A namespace (`lib/core/namespace.ts`): 1 to 32 of `a-z 0-9 _ -`. */
export const namespaceSchema = z
  .string()
  .min(1, 'expected a namespace of at least one character')
  .max(MAX_NAMESPACE_LENGTH, `expected a namespace of at most ${MAX_NAMESPACE_LENGTH} characters`)
  .regex(NAMESPACE_PATTERN, 'expected a namespace of lower-case letters, digits, `_` and `-` only')
  .default(DEFAULT_NAMESPACE);
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
  /**
   * The tydra installation inside that Redis: every key and queue carries the hash tag `{NAME}`,
   * so installations sharing a Redis never see each other's packages, TaskInstances or nodes,
   * and on a Redis Cluster each one lives in one hash slot. 1 to 32 of `a-z 0-9 _ -`.
   * @defaultValue `tydra`
   */
  namespace?: string;
  /** Where log lines go. @defaultValue a silent logger (the CLI passes a pino logger on stderr). */
  logger?: Logger;
}
