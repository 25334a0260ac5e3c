/** The node's option defaults, apart from the zod schemas so the CLI's `--help` loads no zod. */
import { GiB } from '../core/limit-values.js';
import { METRICS_DEFAULT_HOST } from '../core/metrics-defaults.js';

/** The default of each node option that has a fixed one (the CLI shows them in `--help`). */
export const NODE_DEFAULTS = {
  cacheMaxBytes: 10 * GiB,
  drainTimeoutMs: 30_000,
  cachePruneMs: 60_000,
  cgroupName: 'tydra',
  heartbeatMs: 5000,
  lockDurationMs: 30_000,
  unsafeNoSandbox: false,
  warmIdleMs: 300_000,
  metricsHost: METRICS_DEFAULT_HOST,
} as const;
