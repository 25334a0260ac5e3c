/** Options of a master ({@link Master}): raw → compiled, validated once. */
import { z } from 'zod';

import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import {
  type CompiledMetricsOptions,
  compileMetricsOptions,
  type MetricsOptions,
  metricsShape,
} from '../core/metrics-options.js';
import {
  type CommonOptions,
  DEFAULT_REDIS_URL,
  loggerSchema,
  positiveInt,
  namespaceSchema,
  redisUrlSchema,
} from '../core/options.js';
import { parseOptions } from '../core/validate.js';
import { MASTER_DEFAULTS } from './defaults.js';

/** Options of a master ({@link Master}). */
export interface MasterOptions extends CommonOptions, MetricsOptions {
  /** TaskInstances the master dispatches at once. Dispatch is I/O only. @defaultValue 16 */
  concurrency?: number;
  /** How long a submission waits between looks for a live node when none is up. @defaultValue 1,000 ms */
  noNodeRetryMs?: number;
  /** How often the queues of dead or stopped nodes are swept for stranded TaskInstances. @defaultValue 5,000 ms */
  sweepIntervalMs?: number;
  /**
   * Times a TaskInstance may be taken back from a node that died while running it before it
   * fails for good (a task that kills its node must not take the whole cluster down in turn).
   * Work taken back from a node that never started it (a drain, or a queue of a dead node) does
   * not count.
   * @defaultValue 3
   */
  maxReroutes?: number;
  /**
   * How long a lost (dead or stopped) node stays listed in `{NAME}:nodes`, `tydra nodes` and the
   * dashboard after it was last heard from; it is forgotten only once its queue holds no pending
   * job. @defaultValue 3,600,000 ms (1 h)
   */
  nodeRetentionMs?: number;
  /** Period of the package prune job (a BullMQ job scheduler in `maintenance`). @defaultValue 60,000 ms */
  pruneEveryMs?: number;
  /** Time a version must stay without holders before the prune job deletes it. @defaultValue 600,000 ms */
  pruneGraceMs?: number;
  /**
   * On `close()`, how long the dispatch steps under way may finish and the connections close
   * gracefully; then the master force-closes them (with Redis down a graceful close never ends).
   * `close()` resolves within this plus 5 s. A step cut short is taken over by another master
   * once its lock expires.
   * @defaultValue 10,000 ms
   */
  drainTimeoutMs?: number;
}
export interface CompiledMasterOptions extends CompiledMetricsOptions {
  redisUrl: string;
  /** The namespace every key and queue lives in (`lib/core/namespace.ts`). */
  namespace: string;
  logger: Logger;
  concurrency: number;
  noNodeRetryMs: number;
  sweepIntervalMs: number;
  maxReroutes: number;
  nodeRetentionMs: number;
  pruneEveryMs: number;
  pruneGraceMs: number;
  drainTimeoutMs: number;
}

export { MASTER_DEFAULTS };

const DAY_MS = 86_400_000;

const masterSchema = z.strictObject({
  redis: redisUrlSchema.default(DEFAULT_REDIS_URL),
  namespace: namespaceSchema,
  logger: loggerSchema,
  concurrency: positiveInt.max(10_000).default(MASTER_DEFAULTS.concurrency),
  noNodeRetryMs: positiveInt.default(MASTER_DEFAULTS.noNodeRetryMs),
  sweepIntervalMs: positiveInt.min(50).max(600_000).default(MASTER_DEFAULTS.sweepIntervalMs),
  maxReroutes: z.number().int().min(0).default(MASTER_DEFAULTS.maxReroutes),
  nodeRetentionMs: z
    .number()
    .int()
    .min(0)
    .max(30 * DAY_MS)
    .default(MASTER_DEFAULTS.nodeRetentionMs),
  pruneEveryMs: positiveInt.min(100).max(DAY_MS).default(MASTER_DEFAULTS.pruneEveryMs),
  pruneGraceMs: z
    .number()
    .int()
    .min(0)
    .max(30 * DAY_MS)
    .default(MASTER_DEFAULTS.pruneGraceMs),
  drainTimeoutMs: z.number().int().min(0).max(DAY_MS).default(MASTER_DEFAULTS.drainTimeoutMs),
  ...metricsShape,
});

export function compileMasterOptions(raw: MasterOptions = {}): CompiledMasterOptions {
  const parsed = parseOptions(masterSchema, raw);
  return {
    ...parsed,
    ...compileMetricsOptions(parsed),
    redisUrl: parsed.redis,
    namespace: parsed.namespace,
    logger: parsed.logger ?? silentLogger(),
  };
}
