/**
 * The one place that reads `process.env`. Library classes never read the environment; the CLI
 * and the dev cluster pass these values in explicitly.
 */
import { DEFAULT_REDIS_URL } from './options.js';
import { withRedisPassword } from './redis-url.js';

export interface EnvConfig {
  /**
   * `TYDRA_REDIS_URL`, with `TYDRA_REDIS_PASSWORD` filled in when the URL has no password.
   * @defaultValue `redis://127.0.0.1:6379`
   */
  redisUrl: string;
  /** `TYDRA_REDIS_PASSWORD`, when set: the password of a `--redis` URL given without one. */
  redisPassword: string | undefined;
  /** `TYDRA_CACHE_DIR`, when set. */
  cacheDir: string | undefined;
  /** `TYDRA_DASHBOARD_USER` / `TYDRA_DASHBOARD_PASSWORD`: basic auth for the dashboard when both are set. */
  dashboardUser: string | undefined;
  dashboardPassword: string | undefined;
}

export function readEnvConfig(env: NodeJS.ProcessEnv = process.env): EnvConfig {
  return {
    redisUrl: withRedisPassword(env.TYDRA_REDIS_URL || DEFAULT_REDIS_URL, env.TYDRA_REDIS_PASSWORD || undefined),
    redisPassword: env.TYDRA_REDIS_PASSWORD || undefined,
    cacheDir: env.TYDRA_CACHE_DIR || undefined,
    dashboardUser: env.TYDRA_DASHBOARD_USER || undefined,
    dashboardPassword: env.TYDRA_DASHBOARD_PASSWORD || undefined,
  };
}
