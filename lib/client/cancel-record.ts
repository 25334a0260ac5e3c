/**
 * The client's side of a cancel request (its shape: `lib/redis/cancel-record.ts`): `cancel` writes
 * it before anything else, from the job's data; it tells a TaskInstance cancelled before it started
 * (its job removed) from an unknown id. Such a TaskInstance has no job left to list, so `cancel`
 * also adds its id to `tydra:cancelled-unstarted` (scored by submit time), which `runs()` reads
 * beside BullMQ's sets.
 */
import type { Redis } from 'ioredis';

import type { TaskInstanceData } from '../../queues/tasks.js';
import { type CancelRecord, parseCancelRecord, writeCancelRecord as writeRecord } from '../redis/cancel-record.js';
import type { Keyspace } from '../redis/keys.js';

export { type CancelRecord, readCancelRecord } from '../redis/cancel-record.js';

/**
 * Most ids `tydra:cancelled-unstarted` keeps (the newest by submit time): the bound of its memory
 * and of a listing's cost. An id whose record expired is dropped when a listing meets it.
 */
const MAX_UNSTARTED = 10_000;
const PAGE = 200;

/** The client's cancel request of the TaskInstance `data` describes (see `lib/redis/cancel-record.ts`). */
export async function writeCancelRecord(
  redis: Redis,
  keys: Keyspace,
  id: string,
  data: Pick<TaskInstanceData, 'ref' | 'submittedAt' | 'rerunOf' | 'parentSequence'>,
): Promise<void> {
  await writeRecord(redis, keys, id, {
    ref: data.ref,
    submittedAt: data.submittedAt,
    ...(data.rerunOf !== undefined ? { rerunOf: data.rerunOf } : {}),
    ...(data.parentSequence !== undefined ? { sequenceId: data.parentSequence.id } : {}),
  });
}

/** Lists `id`, whose job `cancel` removed before it started, for `runs()`; keeps the newest {@link MAX_UNSTARTED}. */
export async function recordUnstartedCancel(redis: Redis, keys: Keyspace, id: string, submittedAt: number) {
  await redis
    .multi()
    .zadd(keys.cancelledUnstarted, submittedAt, id)
    .zremrangebyrank(keys.cancelledUnstarted, 0, -(MAX_UNSTARTED + 1))
    .exec();
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
