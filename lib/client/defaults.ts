/** The client's option defaults, apart from the zod schemas so the CLI's `--help` loads no zod. */
import { DEFAULT_REDIS_URL } from '../core/config.js';
import { MiB } from '../core/limit-values.js';
import { PACKAGE_DEFAULTS, PACKAGE_LIMIT_DEFAULTS } from '../packages/defaults.js';

/** How long finished TaskInstances are kept, by count and age (BullMQ's removeOnComplete / removeOnFail). */
export const RETENTION_DEFAULTS = Object.freeze({
  keepCompleted: Object.freeze({ count: 10_000, ageMs: 24 * 3600 * 1000 }),
  keepFailed: Object.freeze({ ageMs: 7 * 24 * 3600 * 1000 }),
});

/** Every default of the client's options, defined once (the CLI reads them from here). */
export const CLIENT_DEFAULTS = Object.freeze({
  redis: DEFAULT_REDIS_URL,
  limits: PACKAGE_LIMIT_DEFAULTS,
  maxInputBytes: MiB,
  deployLeaseMs: PACKAGE_DEFAULTS.deployLeaseMs,
  connectTimeoutMs: 10_000,
  durableSubmit: { replicas: 1, timeoutMs: 1000 },
  idempotencyWindowMs: 24 * 3600 * 1000,
  ...RETENTION_DEFAULTS,
});
