/**
 * The package layer's defaults, defined once. The role options (`lib/client/options.ts`,
 * `lib/master/options.ts`) build their schemas' defaults from these, and the CLI reads them from
 * there; `lib/packages` itself uses them when a caller passes nothing (tests, the bench).
 */
import { MiB } from '../core/limit-values.js';

export const PACKAGE_DEFAULTS = {
  /** How long a deploy holds the version it stored before anything references it (ms). */
  deployLeaseMs: 10 * 60_000,
  /** Time a version must stay without holders before a prune may delete it (ms). */
  pruneGraceMs: 10 * 60_000,
  /** Holders younger than this are never audited by a prune: their submit may still be enqueuing (ms). */
  pruneAuditAfterMs: 60_000,
  /** SCAN COUNT and audit page size of a prune pass. */
  pruneBatch: 200,
} as const;

/** The package limits' defaults, defined once (`limits.ts` re-exports them with their schema). */
export const PACKAGE_LIMIT_DEFAULTS = Object.freeze({
  maxPackageBytes: 50 * MiB,
  maxUnpackedBytes: 250 * MiB,
  maxEntries: 10_000,
  maxPathDepth: 64,
  maxPathLength: 1024,
});
