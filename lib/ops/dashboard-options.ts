/** Options of the dashboard ({@link Dashboard}): raw → compiled, validated once. */
import { z } from 'zod';

import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import { type CommonOptions, DEFAULT_REDIS_URL, loggerSchema, positiveInt, redisUrlSchema } from '../core/options.js';
import { parseOptions } from '../core/validate.js';

/** Options of the dashboard ({@link Dashboard}). */
export interface DashboardOptions extends CommonOptions {
  /** TCP port. 0 picks a free one. @defaultValue 3000 */
  port?: number;
  /** Address to bind. Anything but loopback should have `auth`. @defaultValue `127.0.0.1` */
  host?: string;
  /** Basic-auth credentials; never logged. @defaultValue none (open dashboard) */
  auth?: { user: string; password: string };
  /** How often the list of node queues is refreshed. @defaultValue 5,000 ms */
  refreshMs?: number;
}
export interface CompiledDashboardOptions {
  redisUrl: string;
  logger: Logger;
  port: number;
  host: string;
  auth: { user: string; password: string } | undefined;
  refreshMs: number;
}

const dashboardSchema = z.strictObject({
  redis: redisUrlSchema.default(DEFAULT_REDIS_URL),
  logger: loggerSchema,
  port: z.number().int().min(0).max(65535).default(3000),
  host: z.string().min(1).default('127.0.0.1'),
  auth: z.strictObject({ user: z.string().min(1), password: z.string().min(1) }).optional(),
  refreshMs: positiveInt.min(100).default(5000),
});

export function compileDashboardOptions(raw: DashboardOptions = {}): CompiledDashboardOptions {
  const parsed = parseOptions(dashboardSchema, raw);
  return { ...parsed, redisUrl: parsed.redis, logger: parsed.logger ?? silentLogger(), auth: parsed.auth };
}
