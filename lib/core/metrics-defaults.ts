/** The metrics endpoint's defaults, apart from prom-client and zod so the CLI's `--help` loads neither. */

/** The address a master's or node's `/metrics` binds to unless `--metrics-host` says otherwise. */
export const METRICS_DEFAULT_HOST = '127.0.0.1';
