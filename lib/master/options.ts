/** Options of a master ({@link Master}): raw → compiled, validated once. */
import { z } from 'zod';

import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import { type CommonOptions, DEFAULT_REDIS_URL, loggerSchema, positiveInt, redisUrlSchema } from '../core/options.js';
import { parseOptions } from '../core/validate.js';

/** Options of a master ({@link Master}). */
export interface MasterOptions extends CommonOptions {
  /** TaskInstances the master dispatches at once. Dispatch is I/O only. @defaultValue 16 */
  concurrency?: number;
  /** How long a submission waits between looks for a live node when none is up. @defaultValue 1,000 ms */
  noNodeRetryMs?: number;
  /** How often the queues of dead or stopped nodes are swept for stranded TaskInstances. @defaultValue 5,000 ms */
  sweepIntervalMs?: number;
  /**
   * Times a TaskInstance may be taken back from a node that died while holding it before it
   * fails for good (a task that kills its node must not take the whole cluster down in turn).
   * @defaultValue 3
   */
  maxReroutes?: number;
  /** Period of the package prune job (a BullMQ job scheduler in `maintenance`). @defaultValue 60,000 ms */
  pruneEveryMs?: number;
  /** Time a version must stay without holders before the prune job deletes it. @defaultValue 600,000 ms */
  pruneGraceMs?: number;
}
export interface CompiledMasterOptions {
  redisUrl: string;
  logger: Logger;
  concurrency: number;
  noNodeRetryMs: number;
  sweepIntervalMs: number;
  maxReroutes: number;
  pruneEveryMs: number;
  pruneGraceMs: number;
}

const masterSchema = z.strictObject({
  redis: redisUrlSchema.default(DEFAULT_REDIS_URL),
  logger: loggerSchema,
  concurrency: positiveInt.default(16),
  noNodeRetryMs: positiveInt.default(1000),
  sweepIntervalMs: positiveInt.min(50).default(5000),
  maxReroutes: z.number().int().min(0).default(3),
  pruneEveryMs: positiveInt.min(100).default(60_000),
  pruneGraceMs: z
    .number()
    .int()
    .min(0)
    .default(10 * 60_000),
});

export function compileMasterOptions(raw: MasterOptions = {}): CompiledMasterOptions {
  const parsed = parseOptions(masterSchema, raw);
  return { ...parsed, redisUrl: parsed.redis, logger: parsed.logger ?? silentLogger() };
}
