/**
 * The cancel request of a TaskInstance (`tydra:cancel:<id>`): written by `cancel` before anything
 * else, so a master or node that picks the job up later sees it; read to tell a TaskInstance
 * cancelled before it started (its job removed) from an unknown id. Such a TaskInstance has no job
 * left to list, so `cancel` also adds its id to `tydra:cancelled-unstarted` (scored by submit
 * time), which `runs()` reads beside BullMQ's sets.
 */
import type { Redis } from 'ioredis';

import type { TaskInstanceData } from '../../queues/tasks.js';
import type { Keyspace } from '../redis/keys.js';

/** How long a cancel request is remembered (it only matters until the TaskInstance ends). */
const CANCEL_TTL_SECONDS = 7 * 24 * 3600;
/**
 * Most ids `tydra:cancelled-unstarted` keeps (the newest by submit time): the bound of its memory
 * and of a listing's cost. An id whose record expired is dropped when a listing meets it.
 */
const MAX_UNSTARTED = 10_000;
const PAGE = 200;

export interface CancelRecord {
  /** The pinned reference of the cancelled TaskInstance ('' if unknown). */
  ref: string;
  /** When it was asked to stop (ms since the epoch; 0 if unknown). */
  at: number;
  /** When it was submitted (ms since the epoch); undefined in a record written without it. */
  submittedAt: number | undefined;
  /** A re-run: the id of the TaskInstance it re-ran. */
  rerunOf?: string;
  /** A step of a sequence: the sequence's TaskInstance id. */
  sequenceId?: string;
}

export async function writeCancelRecord(
  redis: Redis,
  keys: Keyspace,
  id: string,
  data: Pick<TaskInstanceData, 'ref' | 'submittedAt' | 'rerunOf' | 'parentSequence'>,
): Promise<void> {
  const record = {
    ref: data.ref,
    at: Date.now(),
    submittedAt: data.submittedAt,
    ...(data.rerunOf !== undefined ? { rerunOf: data.rerunOf } : {}),
    ...(data.parentSequence !== undefined ? { sequenceId: data.parentSequence.id } : {}),
  };
  await redis.set(keys.cancel(id), JSON.stringify(record), 'EX', CANCEL_TTL_SECONDS);
}

/** Lists `id`, whose job `cancel` removed before it started, for `runs()`; keeps the newest {@link MAX_UNSTARTED}. */
export async function recordUnstartedCancel(redis: Redis, keys: Keyspace, id: string, submittedAt: number) {
  await redis
    .multi()
    .zadd(keys.cancelledUnstarted, submittedAt, id)
    .zremrangebyrank(keys.cancelledUnstarted, 0, -(MAX_UNSTARTED + 1))
    .exec();
}

export async function readCancelRecord(redis: Redis, keys: Keyspace, id: string): Promise<CancelRecord | undefined> {
  const text = await redis.get(keys.cancel(id));
  return text === null ? undefined : parseCancelRecord(text);
}

function parseCancelRecord(text: string): CancelRecord {
  try {
    const record = JSON.parse(text) as Record<string, unknown>;
    const { rerunOf, sequenceId } = record;
    return {
      ref: typeof record.ref === 'string' ? record.ref : '',
      at: typeof record.at === 'number' ? record.at : 0,
      submittedAt: typeof record.submittedAt === 'number' ? record.submittedAt : undefined,
      ...(typeof rerunOf === 'string' ? { rerunOf } : {}),
      ...(typeof sequenceId === 'string' ? { sequenceId } : {}),
    };
  } catch {
    return { ref: '', at: 0, submittedAt: undefined };
  }
}

/** A TaskInstance cancelled before it started, as {@link listUnstartedCancels} finds it. */
export interface UnstartedCancel {
  id: string;
  record: CancelRecord & { submittedAt: number };
}

/**
 * TaskInstances cancelled before they started and submitted at or after `since`, newest first by
 * submit time, that `accept` takes: at most `limit`, reading no more than the set holds. An id
 * whose record expired is left out and dropped from the set.
 */
export async function listUnstartedCancels(
  redis: Redis,
  keys: Keyspace,
  options: { since: number; limit: number; accept: (found: UnstartedCancel) => boolean },
): Promise<UnstartedCancel[]> {
  const found: UnstartedCancel[] = [];
  const expired: string[] = [];
  for (let offset = 0; offset < MAX_UNSTARTED && found.length < options.limit; offset += PAGE) {
    const page = await redis.zrevrangebyscore(
      keys.cancelledUnstarted,
      '+inf',
      options.since,
      'WITHSCORES',
      'LIMIT',
      offset,
      PAGE,
    );
    const ids = page.filter((_, index) => index % 2 === 0);
    if (ids.length === 0) {
      break;
    }
    // Every key of a namespace shares its hash tag: one MGET, on a Redis Cluster too.
    const texts = await redis.mget(ids.map((id) => keys.cancel(id)));
    for (const [index, id] of ids.entries()) {
      const text = texts[index];
      if (text === null || text === undefined) {
        expired.push(id);
        continue;
      }
      // The score is the submit time, which a record rewritten since may lack (a master cancelling
      // a sequence's steps writes only `ref` and `at`).
      const record = parseCancelRecord(text);
      const unstarted = { id, record: { ...record, submittedAt: record.submittedAt ?? Number(page[2 * index + 1]) } };
      if (options.accept(unstarted) && found.length < options.limit) {
        found.push(unstarted);
      }
    }
    if (ids.length < PAGE) {
      break;
    }
  }
  if (expired.length > 0) {
    await redis.zrem(keys.cancelledUnstarted, ...expired);
  }
  return found;
}
