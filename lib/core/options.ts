/**
 * The pieces every component's options share: the Redis URL and logger options, and the zod
 * types they are built from. Each component compiles its own options in its folder
 * (`lib/client/options.ts`, `lib/master/options.ts`, …): raw (all optional, what callers pass) →
 * compiled (defaults applied, validated once). Nothing past `compile*Options` re-checks its input.
 */
import { z } from 'zod';

import type { Logger } from './logger.js';

export const MiB = 1024 * 1024;

/** Default Redis URL of every component (defined with the environment, which zod-free `--help` reads). */
export { DEFAULT_REDIS_URL } from './config.js';

export const redisUrlSchema = z.string().refine((url) => /^rediss?:\/\//.test(url), 'a redis:// or rediss:// URL');
export const positiveInt = z.number().int().positive();
export const loggerSchema = z.custom<Logger>().optional();

export interface CommonOptions {
  /** Redis URL shared by every tydra process of a cluster. @defaultValue `redis://127.0.0.1:6379` */
  redis?: string;
  /** Where log lines go. @defaultValue a silent logger (the CLI passes a pino logger on stderr). */
  logger?: Logger;
}
