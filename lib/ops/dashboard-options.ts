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

/** The default of each dashboard option, as documented above (the CLI shows them in `--help`). */
export const DASHBOARD_DEFAULTS = { port: 3000, host: '127.0.0.1', refreshMs: 5000 } as const;

const dashboardSchema = z.strictObject({
  redis: redisUrlSchema.default(DEFAULT_REDIS_URL),
  logger: loggerSchema,
  port: z.number().int().min(0).max(65535).default(DASHBOARD_DEFAULTS.port),
  host: z.string().min(1).default(DASHBOARD_DEFAULTS.host),
  auth: z.strictObject({ user: z.string().min(1), password: z.string().min(1) }).optional(),
  refreshMs: positiveInt.min(100).default(DASHBOARD_DEFAULTS.refreshMs),
});

export function compileDashboardOptions(raw: DashboardOptions = {}): CompiledDashboardOptions {
  const parsed = parseOptions(dashboardSchema, raw);
  return { ...parsed, redisUrl: parsed.redis, logger: parsed.logger ?? silentLogger(), auth: parsed.auth };
}
