/** The master's option defaults, apart from the zod schemas so the CLI's `--help` loads no zod. */
import { METRICS_DEFAULT_HOST } from '../core/metrics-defaults.js';
import { PACKAGE_DEFAULTS } from '../packages/defaults.js';

/** The default of each master option, as documented above (the CLI shows them in `--help`). */
export const MASTER_DEFAULTS = {
  concurrency: 16,
  noNodeRetryMs: 1000,
  sweepIntervalMs: 5000,
  maxReroutes: 3,
  nodeRetentionMs: 3_600_000,
  pruneEveryMs: 60_000,
  pruneGraceMs: PACKAGE_DEFAULTS.pruneGraceMs,
  drainTimeoutMs: 10_000,
  metricsHost: METRICS_DEFAULT_HOST,
} as const;
