/** Options of the dashboard ({@link Dashboard}): raw → compiled, validated once. */
import { Registry } from 'prom-client';
import { z } from 'zod';

import { InvalidOptionError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import {
  type CommonOptions,
  DEFAULT_REDIS_URL,
  loggerSchema,
  positiveInt,
  namespaceSchema,
  redisUrlSchema,
} from '../core/options.js';
import { parseOptions } from '../core/validate.js';
import { DASHBOARD_DEFAULTS } from './defaults.js';

/**
 * What a dashboard user may do. `admin`: every button the board offers on a queue that allows it.
 * `read-only`: Bull Board's `readOnlyMode` on every queue (no pause, retry, clean, add or edit)
 * and no tydra actions.
 */
export type DashboardRole = 'admin' | 'read-only';

/** One basic-auth user of the dashboard. */
export interface DashboardUser {
  user: string;
  /** Compared in constant time; never logged. */
  password: string;
  /** @defaultValue `admin` */
  role?: DashboardRole;
}

/** Options of the dashboard ({@link Dashboard}). */
export interface DashboardOptions extends CommonOptions {
  /** TCP port. 0 picks a free one. @defaultValue 3000 */
  port?: number;
  /**
   * Address to bind. Beyond loopback (anything but `127.*`, `::1`, `localhost`) the dashboard
   * refuses to start without `auth`, unless `insecureNoAuth`: dashboard access is Redis access.
   * @defaultValue `127.0.0.1`
   */
  host?: string;
  /** Basic-auth users (one, or several with roles); user names must differ. @defaultValue none (open dashboard) */
  auth?: DashboardUser | DashboardUser[];
  /** Serve without authentication even beyond loopback (CLI `--insecure-no-auth`). @defaultValue false */
  insecureNoAuth?: boolean;
  /** How often the list of node queues is refreshed. @defaultValue 5,000 ms */
  refreshMs?: number;
  /**
   * The prom-client registry `GET /metrics` serves (with BullMQ's queue metrics appended); pass
   * the one the roles of this process use to see theirs there (`tydra dev` does).
   * @defaultValue a new registry of this instance's own (only `tydra_nodes_alive` then)
   */
  metrics?: Registry;
}
export interface CompiledDashboardOptions {
  redisUrl: string;
  /** The namespace every key and queue lives in (`lib/core/namespace.ts`). */
  namespace: string;
  logger: Logger;
  port: number;
  host: string;
  /** Empty: an open dashboard (loopback, or `insecureNoAuth`), where everyone is admin. */
  users: Array<Required<DashboardUser>>;
  insecureNoAuth: boolean;
  refreshMs: number;
  metrics: Registry;
}

export { DASHBOARD_DEFAULTS };

const userSchema = z.strictObject({
  user: z
    .string()
    .min(1)
    .regex(/^[^:]*$/, 'a user name without `:`'),
  password: z.string().min(1),
  role: z.enum(['admin', 'read-only']).default('admin'),
});

const dashboardSchema = z.strictObject({
  redis: redisUrlSchema.default(DEFAULT_REDIS_URL),
  namespace: namespaceSchema,
  logger: loggerSchema,
  port: z.number().int().min(0).max(65535).default(DASHBOARD_DEFAULTS.port),
  host: z.string().min(1).default(DASHBOARD_DEFAULTS.host),
  auth: z.union([userSchema, z.array(userSchema)]).optional(),
  insecureNoAuth: z.boolean().default(false),
  refreshMs: positiveInt.min(100).default(DASHBOARD_DEFAULTS.refreshMs),
  metrics: z.custom<Registry>((value) => value instanceof Registry, 'a prom-client Registry').optional(),
});

/** Whether `host` only answers on this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function compileDashboardOptions(raw: DashboardOptions = {}): CompiledDashboardOptions {
  const parsed = parseOptions(dashboardSchema, raw);
  const users = parsed.auth === undefined ? [] : Array.isArray(parsed.auth) ? parsed.auth : [parsed.auth];
  const names = users.map((user) => user.user);
  const twice = names.find((name, index) => names.indexOf(name) !== index);
  if (twice !== undefined) {
    throw new InvalidOptionError(`Expected the \`auth\` users to have distinct names, got \`${twice}\` twice`);
  }
  if (users.length > 0 && parsed.insecureNoAuth) {
    throw new InvalidOptionError('Expected either `auth` or `insecureNoAuth`, got both');
  }
  if (users.length === 0 && !parsed.insecureNoAuth && !isLoopback(parsed.host)) {
    throw new InvalidOptionError(
      `Expected dashboard credentials (TYDRA_DASHBOARD_USER and TYDRA_DASHBOARD_PASSWORD, or the \`auth\` option) ` +
        `to serve beyond loopback on \`${parsed.host}\`, got none; pass --insecure-no-auth (\`insecureNoAuth\`) to serve it open anyway`,
    );
  }
  return {
    redisUrl: parsed.redis,
    namespace: parsed.namespace,
    logger: parsed.logger ?? silentLogger(),
    port: parsed.port,
    host: parsed.host,
    users,
    insecureNoAuth: parsed.insecureNoAuth,
    refreshMs: parsed.refreshMs,
    metrics: parsed.metrics ?? new Registry(),
  };
}
