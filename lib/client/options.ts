/** Options of the client library ({@link Tydra}): raw → compiled, validated once. */
import { z } from 'zod';

import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import { type CommonOptions, loggerSchema, positiveInt, namespaceSchema, redisUrlSchema } from '../core/options.js';
import { loadSecretKey } from '../core/secret-box.js';
import { parseOptions } from '../core/validate.js';
import { CLIENT_DEFAULTS } from './defaults.js';
import { type CompiledPackageLimits, compilePackageLimits, type PackageLimits } from '../packages/limits.js';
import { type KeepFinished, keepFinishedSchema } from './retention.js';

export { CLIENT_DEFAULTS };

/** How many replicas must acknowledge a submit, and how long to wait for them. */
export interface DurableSubmit {
  /** @defaultValue 1 */
  replicas?: number;
  /** @defaultValue 1,000 ms */
  timeoutMs?: number;
}

/** Options of the client library ({@link Tydra}). */
export interface TydraOptions extends CommonOptions {
  /** Package limits enforced at deploy. */
  limits?: PackageLimits;
  /** Largest submitted input, as JSON bytes. @defaultValue 1 MiB */
  maxInputBytes?: number;
  /**
   * How long a deploy holds the version it stored, so a submit shortly after finds it even if
   * it is no longer latest. @defaultValue 600,000 ms (10 minutes)
   */
  deployLeaseMs?: number;
  /**
   * How long a call may wait for Redis, at the first connect or after the connection was lost,
   * before it fails with `could not reach Redis at host:port (no password): <reason>`.
   * Waiting for a running TaskInstance's result is not bounded by it. @defaultValue 10,000 ms
   */
  connectTimeoutMs?: number;
  /**
   * Confirm each submit with Redis `WAIT`: `submit()` resolves only once `replicas` replicas have
   * the TaskInstance, and otherwise fails with `SubmitNotReplicatedError` after `timeoutMs`. For a
   * replicated Redis (Sentinel), where a failover loses the writes the old primary had not yet
   * passed on. `true` is `{ replicas: 1, timeoutMs: 1000 }`. @defaultValue false
   */
  durableSubmit?: boolean | DurableSubmit;
  /**
   * How long a submit's idempotency `key` (scoped by package and task) names its TaskInstance: a
   * submit with the same key within this window returns that TaskInstance. @defaultValue 24 h
   */
  idempotencyWindowMs?: number;
  /**
   * How many completed TaskInstances BullMQ keeps, and how long (set on each TaskInstance at its
   * submit; the first limit reached applies). @defaultValue `{ count: 10_000, ageMs: 24 h }`
   */
  keepCompleted?: KeepFinished;
  /** The same for failed (and cancelled) TaskInstances. @defaultValue `{ ageMs: 7 days }` */
  keepFailed?: KeepFinished;
  /**
   * The secret key (32 bytes, base64 or hex) that seals what `setSecret` stores; the CLI reads
   * `TYDRA_SECRET_KEY`. Needed only to set secrets. Never logged. @defaultValue none
   */
  secretKey?: string;
  /** A file holding the secret key instead (`--secret-key-file`). @defaultValue none */
  secretKeyFile?: string;
}
export interface CompiledTydraOptions {
  redisUrl: string;
  /** The namespace every key and queue lives in (`lib/core/namespace.ts`). */
  namespace: string;
  logger: Logger;
  limits: CompiledPackageLimits;
  maxInputBytes: number;
  deployLeaseMs: number;
  connectTimeoutMs: number;
  durableSubmit: Required<DurableSubmit> | undefined;
  idempotencyWindowMs: number;
  keepCompleted: KeepFinished;
  keepFailed: KeepFinished;
  /** The 32-byte secret key, when given. */
  secretKey: Buffer | undefined;
}

const durableSubmitSchema = z.union([
  z.boolean(),
  z.strictObject({ replicas: positiveInt.optional(), timeoutMs: positiveInt.max(3_600_000).optional() }),
]);

export const tydraOptionsSchema = z.strictObject({
  redis: redisUrlSchema.default(CLIENT_DEFAULTS.redis),
  namespace: namespaceSchema,
  logger: loggerSchema,
  limits: z.record(z.string(), z.unknown()).optional(),
  maxInputBytes: positiveInt.default(CLIENT_DEFAULTS.maxInputBytes),
  deployLeaseMs: positiveInt.default(CLIENT_DEFAULTS.deployLeaseMs),
  connectTimeoutMs: positiveInt.max(3_600_000).default(CLIENT_DEFAULTS.connectTimeoutMs),
  durableSubmit: durableSubmitSchema.default(false),
  idempotencyWindowMs: positiveInt.max(365 * 24 * 3600 * 1000).default(CLIENT_DEFAULTS.idempotencyWindowMs),
  keepCompleted: keepFinishedSchema.default(CLIENT_DEFAULTS.keepCompleted),
  keepFailed: keepFinishedSchema.default(CLIENT_DEFAULTS.keepFailed),
  secretKey: z.string().optional(),
  secretKeyFile: z.string().min(1).optional(),
});

export function compileTydraOptions(raw: TydraOptions = {}): CompiledTydraOptions {
  const parsed = parseOptions(tydraOptionsSchema, raw);
  return {
    redisUrl: parsed.redis,
    namespace: parsed.namespace,
    logger: parsed.logger ?? silentLogger(),
    limits: compilePackageLimits(raw.limits),
    maxInputBytes: parsed.maxInputBytes,
    deployLeaseMs: parsed.deployLeaseMs,
    connectTimeoutMs: parsed.connectTimeoutMs,
    durableSubmit:
      parsed.durableSubmit === false
        ? undefined
        : { ...CLIENT_DEFAULTS.durableSubmit, ...(parsed.durableSubmit === true ? {} : parsed.durableSubmit) },
    idempotencyWindowMs: parsed.idempotencyWindowMs,
    keepCompleted: parsed.keepCompleted,
    keepFailed: parsed.keepFailed,
    secretKey: loadSecretKey({ secretKey: parsed.secretKey, secretKeyFile: parsed.secretKeyFile }),
  };
}
