/**
 * The Redis side of a parallel TaskInstance (see `lib/node/parallel/`): its state hash, its
 * per-unit results and failures, and the set of its batches not yet ended. Every write that must
 * count a unit once is in `record-units-4.lua`; the rest are single commands or MULTIs.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';

import { secretMappingSchema } from '../core/secret-box.js';
import { taskEnvSchema } from '../core/task-env.js';
import type { Keyspace } from './keys.js';
import { runScript } from './scripts.js';

/** What every node needs to run a unit of the TaskInstance, written once by its coordinator. */
export const parallelMetaSchema = z.object({
  ref: z.string(),
  package: z.object({ name: z.string(), sha1: z.string() }),
  task: z.string(),
  limits: z.record(z.string(), z.unknown()).optional(),
  retryOnLimit: z.boolean().optional(),
  attempts: z.number().int().min(1),
  /** The submission's environment, set in every work sandbox. */
  env: taskEnvSchema.optional(),
  /** The submission's secret mapping (names only): each node opens the values with its own key. */
  secrets: secretMappingSchema.optional(),
  /** The coordinator's node queue and job id, promoted when the last unit ends. */
  owner: z.object({ queue: z.string(), jobId: z.string() }),
});
export type ParallelMeta = z.infer<typeof parallelMetaSchema>;

/** Why the TaskInstance's units must stop: a unit failed past the policy, or a cancel. */
export type ParallelAbort =
  { kind: 'workunit'; index: number } | { kind: 'cancelled' } | { kind: 'failed'; message: string };

export interface ParallelCounts {
  enqueued: number;
  total: number;
  done: number;
  failed: number;
  running: number;
  splitDone: boolean;
  abort: ParallelAbort | undefined;
  /** The TaskInstance ended (its coordinator is done): its progress is final. */
  ended: boolean;
}

/** How long the state of an ended TaskInstance stays readable (`tydra status`). */
const ENDED_TTL_S = 3600;

function int(value: string | null | undefined): number {
  const parsed = Number(value ?? 0);
  return Number.isFinite(parsed) ? parsed : 0;
}

function parseAbort(raw: string | null | undefined): ParallelAbort | undefined {
  return raw ? (JSON.parse(raw) as ParallelAbort) : undefined;
}

/**
 * Creates the state on the first run of the coordinator (a re-run after a lost node keeps what is
 * there: the units already enqueued are not enqueued again). Refreshes the owner, which moves with
 * the coordinator's node job. An ended state is left as it is, expiry included (see
 * `init-parallel-1.lua`): its counts say `ended`, and `readReducedValue` has reduce's value.
 */
export async function initParallel(
  redis: Redis,
  keys: Keyspace,
  id: string,
  meta: ParallelMeta,
  maxFailed: number,
): Promise<ParallelCounts> {
  await runScript(redis, {
    script: 'initParallel',
    keys: [keys.parallelState(id)],
    argv: [String(maxFailed), JSON.stringify(meta)],
  });
  return readCounts(redis, keys, id);
}

/**
 * The value reduce returned, as `endParallel` stored it (masked, JSON); undefined when the
 * TaskInstance has not reduced (still running, or it ended with an error).
 */
export async function readReducedValue(
  redis: Redis,
  keys: Keyspace,
  id: string,
): Promise<{ value: unknown } | undefined> {
  const raw = await redis.hget(keys.parallelState(id), 'value');
  return raw === null ? undefined : { value: JSON.parse(raw) as unknown };
}

export async function readMeta(redis: Redis, keys: Keyspace, id: string): Promise<ParallelMeta | undefined> {
  const raw = await redis.hget(keys.parallelState(id), 'meta');
  return raw === null ? undefined : parallelMetaSchema.parse(JSON.parse(raw));
}

export async function readCounts(redis: Redis, keys: Keyspace, id: string): Promise<ParallelCounts> {
  const [enqueued, total, done, failed, running, splitDone, abort, ended] = await redis.hmget(
    keys.parallelState(id),
    'enqueued',
    'total',
    'done',
    'failed',
    'running',
    'splitDone',
    'abort',
    'ended',
  );
  return {
    enqueued: int(enqueued),
    total: int(total),
    done: int(done),
    failed: int(failed),
    running: Math.max(0, int(running)),
    splitDone: splitDone === '1',
    abort: parseAbort(abort),
    ended: ended === '1',
  };
}

/** Records units `[0, enqueued)` as enqueued (after their batches were added) and their batch ids. */
export async function markEnqueued(
  redis: Redis,
  keys: Keyspace,
  id: string,
  enqueued: number,
  batchIds: string[],
): Promise<void> {
  const multi = redis.multi().hset(keys.parallelState(id), 'enqueued', String(enqueued), 'total', String(enqueued));
  if (batchIds.length > 0) {
    multi.sadd(keys.parallelBatches(id), ...batchIds);
  }
  await multi.exec();
}

export async function markSplitDone(redis: Redis, keys: Keyspace, id: string, total: number): Promise<ParallelCounts> {
  await redis.hset(keys.parallelState(id), 'splitDone', '1', 'total', String(total), 'enqueued', String(total));
  return readCounts(redis, keys, id);
}

/** Sets the abort reason unless one is set; returns the one that holds. */
export async function abortParallel(
  redis: Redis,
  keys: Keyspace,
  id: string,
  abort: ParallelAbort,
): Promise<ParallelAbort> {
  const key = keys.parallelState(id);
  const [, [, current]] = (await redis
    .multi()
    .hsetnx(key, 'abort', JSON.stringify(abort))
    .hget(key, 'abort')
    .exec()) as [[Error | null, unknown], [Error | null, string | null]];
  return parseAbort(current) ?? abort;
}

/**
 * Before a batch runs: its instance's meta, abort reason and whether a cancel was asked (its cancel
 * key), and the units marked running, in one round trip. `undefined` when the instance's state is gone.
 */
export async function startBatch(
  redis: Redis,
  keys: Keyspace,
  id: string,
  units: number,
): Promise<{ meta: ParallelMeta; abort: ParallelAbort | undefined; cancelled: boolean } | undefined> {
  const key = keys.parallelState(id);
  const replies =
    (await redis.multi().hmget(key, 'meta', 'abort').hincrby(key, 'running', units).exists(keys.cancel(id)).exec()) ??
    [];
  const [meta, abort] = (replies[0]?.[1] as Array<string | null> | undefined) ?? [];
  if (meta === null || meta === undefined) {
    // The instance ended long ago (its state expired): the HINCRBY just made a stray key.
    await redis.del(key);
    return undefined;
  }
  return {
    meta: parallelMetaSchema.parse(JSON.parse(meta)),
    abort: parseAbort(abort),
    cancelled: replies[2]?.[1] === 1,
  };
}

export type UnitRecord =
  { index: number; ok: true; value: string } | { index: number; ok: false; message: string; stack?: string };

/** Records a batch's ended units; undefined when the state is gone. See `record-units-4.lua`. */
export async function recordUnits(
  redis: Redis,
  keys: Keyspace,
  id: string,
  batchId: string,
  running: number,
  records: readonly UnitRecord[],
): Promise<Omit<ParallelCounts, 'enqueued' | 'ended'> | undefined> {
  const argv = [batchId, String(running)];
  for (const record of records) {
    argv.push(
      String(record.index),
      record.ok ? 'ok' : 'fail',
      record.ok ? record.value : JSON.stringify({ message: record.message, stack: record.stack }),
    );
  }
  const reply = (await runScript(redis, {
    script: 'recordUnits',
    keys: [keys.parallelState(id), keys.parallelResults(id), keys.parallelFailures(id), keys.parallelBatches(id)],
    argv,
  })) as Array<number | string>;
  if (reply[0] === -1) {
    return undefined;
  }
  const [done, failed, total, splitDone, running2, abort] = reply;
  return {
    done: Number(done),
    failed: Number(failed),
    total: Number(total),
    splitDone: Number(splitDone) === 1,
    running: Math.max(0, Number(running2)),
    abort: parseAbort(String(abort)),
  };
}

/** Adds retry batches to the set of batches not yet ended. */
export async function addBatches(redis: Redis, keys: Keyspace, id: string, batchIds: string[]): Promise<void> {
  if (batchIds.length > 0) {
    await redis.sadd(keys.parallelBatches(id), ...batchIds);
  }
}

export async function pendingBatches(redis: Redis, keys: Keyspace, id: string): Promise<string[]> {
  return redis.smembers(keys.parallelBatches(id));
}

/** Results `[from, from + count)` as raw JSON texts (`null` for a missing one), in index order. */
export async function readResultsPage(
  redis: Redis,
  keys: Keyspace,
  id: string,
  from: number,
  count: number,
): Promise<Array<string | null>> {
  const fields = Array.from({ length: count }, (_, i) => String(from + i));
  return fields.length === 0 ? [] : redis.hmget(keys.parallelResults(id), ...fields);
}

export async function readFailures(
  redis: Redis,
  keys: Keyspace,
  id: string,
): Promise<Array<{ index: number; message: string; stack?: string }>> {
  const all = await redis.hgetall(keys.parallelFailures(id));
  return Object.entries(all)
    .map(([index, raw]) => ({ index: Number(index), ...(JSON.parse(raw) as { message: string; stack?: string }) }))
    .sort((a, b) => a.index - b.index);
}

export async function readFailure(
  redis: Redis,
  keys: Keyspace,
  id: string,
  index: number,
): Promise<{ message: string; stack?: string } | undefined> {
  const raw = await redis.hget(keys.parallelFailures(id), String(index));
  return raw === null ? undefined : (JSON.parse(raw) as { message: string; stack?: string });
}

/**
 * The TaskInstance ended: the results and batches go at once (they can be large), the state and
 * failures stay an hour for `tydra status`. `reduced` is reduce's value when it ended with one:
 * kept in the state for that hour, so a coordinator that runs again after this (its node job's
 * lock expired, or its node died before the job completed) answers with it instead of reducing
 * the deleted results again.
 */
export async function endParallel(
  redis: Redis,
  keys: Keyspace,
  id: string,
  reduced?: { value: unknown },
): Promise<void> {
  const state = keys.parallelState(id);
  const multi = redis.multi();
  if (reduced !== undefined) {
    // `undefined` has no JSON: reduce's "no value" is stored, and settled, as null.
    multi.hset(state, 'value', JSON.stringify(reduced.value ?? null));
  }
  await multi
    .hset(state, 'ended', '1', 'running', '0')
    .unlink(keys.parallelResults(id), keys.parallelBatches(id))
    .expire(state, ENDED_TTL_S)
    .expire(keys.parallelFailures(id), ENDED_TTL_S)
    .exec();
}

/**
 * Forgets the state of an ended run (a retried TaskInstance runs again from its split): without
 * this, its new coordinator would find the old run's `splitDone`, counts and abort reason.
 */
export async function resetParallel(redis: Redis, keys: Keyspace, id: string): Promise<void> {
  await redis.unlink(
    keys.parallelState(id),
    keys.parallelResults(id),
    keys.parallelFailures(id),
    keys.parallelBatches(id),
  );
}

/**
 * One page of a TaskInstance's failed workunits, by unit index (the TaskInstance page): `total`
 * failures, and those from the `from`-th on, at most `count`. The failures hash is keyed by unit
 * index: its keys are read and sorted here (HKEYS, a few bytes per failure), the page's values only.
 */
export async function readFailuresPage(
  redis: Redis,
  keys: Keyspace,
  id: string,
  from: number,
  count: number,
): Promise<{ total: number; failures: Array<{ index: number; message: string }> }> {
  const indexes = (await redis.hkeys(keys.parallelFailures(id))).map(Number).sort((a, b) => a - b);
  const page = indexes.slice(from, from + count);
  const raws = page.length === 0 ? [] : await redis.hmget(keys.parallelFailures(id), ...page.map(String));
  const failures = page.flatMap((index, i) => {
    const raw = raws[i];
    // Ended TaskInstances' failures expire: one may go between the two reads.
    return raw === null || raw === undefined
      ? []
      : [{ index, message: (JSON.parse(raw) as { message: string }).message }];
  });
  return { total: indexes.length, failures };
}
