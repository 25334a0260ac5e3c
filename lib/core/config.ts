/**
 * The one place that reads `process.env`. Library classes never read the environment; the CLI
 * and the dev cluster pass these values in explicitly.
 */
/** Default Redis URL of every component (`options.ts` re-exports it). */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
import { DEFAULT_NAMESPACE } from './namespace.js';
import { withRedisPassword } from './redis-url.js';

export interface EnvConfig {
  /**
   * `TYDRA_REDIS_URL`, with `TYDRA_REDIS_PASSWORD` filled in when the URL has no password.
   * @defaultValue `redis://127.0.0.1:6379`
   */
  redisUrl: string;
  /** `TYDRA_NAMESPACE`: the namespace of every command (`--namespace`). @defaultValue `tydra` */
  namespace: string;
  /** `TYDRA_REDIS_PASSWORD`, when set: the password of a `--redis` URL given without one. */
  redisPassword: string | undefined;
  /** `TYDRA_CACHE_DIR`, when set. */
  cacheDir: string | undefined;
  /** `TYDRA_DASHBOARD_USER`: the dashboard's admin user (with a password or a password file). */
  dashboardUser: string | undefined;
  /** `TYDRA_DASHBOARD_PASSWORD`: the admin's password. Never logged. */
  dashboardPassword: string | undefined;
  /** `TYDRA_DASHBOARD_PASSWORD_FILE`: a file holding the admin's password (a mounted secret). */
  dashboardPasswordFile: string | undefined;
  /** `TYDRA_DASHBOARD_READONLY_USER`: a user who may look but not act (Bull Board's read-only mode). */
  dashboardReadOnlyUser: string | undefined;
  /** `TYDRA_DASHBOARD_READONLY_PASSWORD`: the read-only user's password. Never logged. */
  dashboardReadOnlyPassword: string | undefined;
  /** `TYDRA_DASHBOARD_READONLY_PASSWORD_FILE`: a file holding the read-only user's password. */
  dashboardReadOnlyPasswordFile: string | undefined;
  /** `TYDRA_LOG_FORMAT`: `auto` (readable on a terminal, JSON otherwise), `pretty` or `json`. */
  logFormat: string | undefined;
  /** `TYDRA_LOG_LEVEL`: pino's level of every default logger (`createLogger`). */
  logLevel: string | undefined;
  /** `NO_COLOR` set (https://no-color.org): a readable log has no colours, even on a terminal. */
  noColor: boolean;
  /** Whether `TYDRA_REDIS_URL` was set: `tydra dev` then uses that Redis instead of starting its own. */
  redisUrlSet: boolean;
  /** `TYDRA_SECRET_KEY`: the 32-byte secret key (base64 or hex) of clients setting secrets and of nodes. Never logged. */
  secretKey: string | undefined;
}

export function readEnvConfig(env: NodeJS.ProcessEnv = process.env): EnvConfig {
  return {
    redisUrl: withRedisPassword(env.TYDRA_REDIS_URL || DEFAULT_REDIS_URL, env.TYDRA_REDIS_PASSWORD || undefined),
    namespace: env.TYDRA_NAMESPACE || DEFAULT_NAMESPACE,
    redisPassword: env.TYDRA_REDIS_PASSWORD || undefined,
    cacheDir: env.TYDRA_CACHE_DIR || undefined,
    dashboardUser: env.TYDRA_DASHBOARD_USER || undefined,
    dashboardPassword: env.TYDRA_DASHBOARD_PASSWORD || undefined,
    dashboardPasswordFile: env.TYDRA_DASHBOARD_PASSWORD_FILE || undefined,
    dashboardReadOnlyUser: env.TYDRA_DASHBOARD_READONLY_USER || undefined,
    dashboardReadOnlyPassword: env.TYDRA_DASHBOARD_READONLY_PASSWORD || undefined,
    dashboardReadOnlyPasswordFile: env.TYDRA_DASHBOARD_READONLY_PASSWORD_FILE || undefined,
    logFormat: env.TYDRA_LOG_FORMAT || undefined,
    logLevel: env.TYDRA_LOG_LEVEL || undefined,
    noColor: Boolean(env.NO_COLOR),
    redisUrlSet: Boolean(env.TYDRA_REDIS_URL),
    secretKey: env.TYDRA_SECRET_KEY || undefined,
  };
}
